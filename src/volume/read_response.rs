//! The read path's decisions (`GET|HEAD /<fid>`), pure: status, headers and which bytes of the
//! body to send, given what the needle holds and what the request asks.

use super::store::NeedleMeta;
use super::{codec, conditional, range};

/// What the request asks, besides the fid.
#[derive(Debug, Clone, Default)]
pub struct ReadAsk<'a> {
    /// Extension from the path (`.jpg`), "" when none.
    pub ext: &'a str,
    /// Name from the `/vid/fid/<name>` path form.
    pub path_filename: Option<&'a str>,
    pub range: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
}

/// The answer: status, headers, and the byte range of the body to send (None: no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `(start, len)` within the body the caller chose (stored or inflated bytes).
    pub body: Option<(u64, u64)>,
}

/// Must the stored bytes be inflated for this client (gzip stored, gzip not accepted)?
pub fn needs_inflate(meta: &NeedleMeta, ask: &ReadAsk<'_>) -> bool {
    meta.gzipped && !codec::accepts_gzip(ask.accept_encoding)
}

pub fn etag(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Plan the response. `body_len` is the length of the bytes to be sent: the stored data, or
/// the inflated data when `needs_inflate`.
pub fn plan(meta: &NeedleMeta, ask: &ReadAsk<'_>, body_len: u64) -> ReadPlan {
    let etag = etag(meta.crc);
    let mut headers = vec![("ETag".to_string(), format!("\"{etag}\""))];
    if meta.last_modified_unix_s != 0 {
        let date = conditional::http_date(meta.last_modified_unix_s);
        headers.push(("Last-Modified".to_string(), date));
    }
    let modified = meta.last_modified_unix_s;
    if conditional::not_modified(ask.if_none_match, ask.if_modified_since, &etag, modified) {
        return ReadPlan {
            status: 304,
            headers,
            body: None,
        };
    }
    let (status, body, content_range) = match range::decide(ask.range, body_len) {
        range::RangeDecision::Full => (200, Some((0, body_len)), None),
        range::RangeDecision::Partial { start, len } => {
            let content_range = range::content_range(start, len, body_len);
            (206, Some((start, len)), Some(content_range))
        }
        range::RangeDecision::Unsatisfiable => (416, None, Some(format!("bytes */{body_len}"))),
    };
    // A 416 is answered with a JSON error, not with the file: no representation headers.
    if status != 416 {
        headers.extend(representation_headers(meta, ask));
    }
    if let Some(content_range) = content_range {
        headers.push(("Content-Range".to_string(), content_range));
    }
    ReadPlan {
        status,
        headers,
        body,
    }
}

/// Content-Type, Content-Disposition, Content-Encoding, Accept-Ranges and the pairs.
fn representation_headers(meta: &NeedleMeta, ask: &ReadAsk<'_>) -> Vec<(String, String)> {
    let name = ask.path_filename.or(meta.name.as_deref());
    let content_type = match (&meta.mime, ask.ext, name) {
        (Some(mime), _, _) => mime.clone(),
        (None, ext, _) if !ext.is_empty() => codec::mime_for_extension(ext),
        (None, _, Some(name)) => codec::mime_for_extension(super::fid::extension_of(name)),
        (None, _, None) => "application/octet-stream".to_string(),
    };
    let mut headers = vec![
        ("Content-Type".to_string(), content_type),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        headers.push(("Content-Disposition".to_string(), disposition(name)));
    }
    if meta.gzipped && !needs_inflate(meta, ask) {
        headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
    }
    for (name, value) in &meta.pairs {
        if is_pair_name_allowed(name) && is_header_safe(value) {
            headers.push((name.clone(), value.clone()));
        }
    }
    headers
}

/// `inline; filename=...`, quoted (with escapes) when the name is not a plain token.
fn disposition(name: &str) -> String {
    let is_token = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b));
    if is_token {
        format!("inline; filename={name}")
    } else {
        let escaped: String = name
            .chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                _ => vec![c],
            })
            .collect();
        format!("inline; filename=\"{escaped}\"")
    }
}

/// Headers a stored pair may not set: framing and connection management (a pair named
/// Content-Length would corrupt the response) and the ones this module sets itself.
const RESERVED_HEADERS: [&str; 16] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "date",
    "content-type",
    "content-range",
    "content-encoding",
    "content-disposition",
    "etag",
    "last-modified",
    "accept-ranges",
];

/// A pair name becomes a header only when it is an HTTP token and not reserved.
fn is_pair_name_allowed(name: &str) -> bool {
    let is_token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    is_token
        && !RESERVED_HEADERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
}

/// Stored pairs become headers only when they cannot split or corrupt the response.
fn is_header_safe(text: &str) -> bool {
    !text.is_empty() && !text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> NeedleMeta {
        NeedleMeta {
            crc: 0x353d_d8be,
            name: Some("h.txt".to_string()),
            mime: None,
            last_modified_unix_s: 784_111_777,
            gzipped: false,
            pairs: vec![("Owner".to_string(), "me".to_string())],
        }
    }

    fn header<'a>(plan: &'a ReadPlan, name: &str) -> Option<&'a str> {
        plan.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    // Proves a plain GET carries every header SeaweedFS sends, and the whole body.
    #[test]
    fn full_get_headers() {
        let plan = plan(&meta(), &ReadAsk::default(), 6);
        assert_eq!((plan.status, plan.body), (200, Some((0, 6))));
        assert_eq!(header(&plan, "ETag"), Some("\"353dd8be\""));
        assert_eq!(header(&plan, "Content-Type"), Some("text/plain"));
        assert_eq!(header(&plan, "Accept-Ranges"), Some("bytes"));
        assert_eq!(
            header(&plan, "Content-Disposition"),
            Some("inline; filename=h.txt")
        );
        assert_eq!(
            header(&plan, "Last-Modified"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(header(&plan, "Owner"), Some("me"));
        assert_eq!(header(&plan, "Content-Encoding"), None);
    }

    // Proves ranges give 206/416 with Content-Range, and validators give 304 without a body.
    #[test]
    fn ranges_and_validators() {
        let ranged = ReadAsk {
            range: Some("bytes=1-2"),
            ..ReadAsk::default()
        };
        let partial = plan(&meta(), &ranged, 6);
        assert_eq!((partial.status, partial.body), (206, Some((1, 2))));
        assert_eq!(header(&partial, "Content-Range"), Some("bytes 1-2/6"));
        let outside = ReadAsk {
            range: Some("bytes=100-"),
            ..ReadAsk::default()
        };
        let refused = plan(&meta(), &outside, 6);
        assert_eq!((refused.status, refused.body), (416, None));
        assert_eq!(header(&refused, "Content-Range"), Some("bytes */6"));
        assert_eq!(
            header(&refused, "Content-Type"),
            None,
            "the answer is a JSON error"
        );
        let cached = ReadAsk {
            if_none_match: Some("\"353dd8be\""),
            ..ReadAsk::default()
        };
        assert_eq!(plan(&meta(), &cached, 6).status, 304);
    }

    // Proves stored pairs cannot set framing or representation headers, nor inject lines.
    #[test]
    fn pairs_cannot_override_framing() {
        let hostile = NeedleMeta {
            pairs: vec![
                ("Content-Length".to_string(), "0".to_string()),
                ("Transfer-Encoding".to_string(), "chunked".to_string()),
                ("Bad Name".to_string(), "x".to_string()),
                ("Split".to_string(), "a\r\nInjected: 1".to_string()),
                ("Owner".to_string(), "me".to_string()),
            ],
            ..meta()
        };
        let plan = plan(&hostile, &ReadAsk::default(), 6);
        assert_eq!(header(&plan, "Content-Length"), None);
        assert_eq!(header(&plan, "Transfer-Encoding"), None);
        assert_eq!(header(&plan, "Bad Name"), None);
        assert_eq!(header(&plan, "Split"), None);
        assert_eq!(header(&plan, "Owner"), Some("me"));
    }

    // Proves gzip is served as stored to clients that accept it and flagged for inflation
    // for those that do not; the path's extension and name override the stored ones.
    #[test]
    fn gzip_and_names() {
        let gz = NeedleMeta {
            gzipped: true,
            ..meta()
        };
        let accepting = ReadAsk {
            accept_encoding: Some("gzip"),
            ..ReadAsk::default()
        };
        assert!(!needs_inflate(&gz, &accepting));
        assert_eq!(
            header(&plan(&gz, &accepting, 20), "Content-Encoding"),
            Some("gzip")
        );
        assert!(needs_inflate(&gz, &ReadAsk::default()));
        assert_eq!(
            header(&plan(&gz, &ReadAsk::default(), 6), "Content-Encoding"),
            None
        );
        let named = ReadAsk {
            ext: ".png",
            path_filename: Some("my cat.png"),
            ..ReadAsk::default()
        };
        let plan = plan(&meta(), &named, 6);
        assert_eq!(header(&plan, "Content-Type"), Some("image/png"));
        assert_eq!(
            header(&plan, "Content-Disposition"),
            Some("inline; filename=\"my cat.png\"")
        );
    }
}
