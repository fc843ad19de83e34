//! One HTTP response as a raw-socket test client read it. Shared by two packages' tests: this
//! one's support module, and the `kelp` package's `tests/volume_support` and
//! `tests/master_common` (which include this file by path and add `json()`), so the three
//! clients keep one definition.

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
