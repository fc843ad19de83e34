//! A request's query string as decoded name/value pairs (`a=1&b=x%20y&flag`).

use super::error::FilerError;
use super::limits::QUERY_BYTES_MAX;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: &str) -> Result<Params, FilerError> {
        if query.len() > QUERY_BYTES_MAX {
            return Err(FilerError::new(
                414,
                format!(
                    "query string of {} bytes is over {QUERY_BYTES_MAX}",
                    query.len()
                ),
            ));
        }
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        Ok(Params { pairs })
    }

    /// The first value of `name` (Some("") for a bare `name` or `name=`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value of `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `name=true` (also `1`, `yes`, `y`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1" | "yes" | "y"))
    }
}

fn decode(text: &str) -> String {
    crate::volume::fid::percent_decode(&text.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves names and values are decoded, bare names are present with "", flags read.
    #[test]
    fn pairs_and_flags() {
        let params = Params::parse("mv.from=%2Fa%20b&tagging&recursive=true&x=1+2").unwrap();
        assert_eq!(params.get("mv.from"), Some("/a b"));
        assert!(params.has("tagging"));
        assert_eq!(params.value("tagging"), None);
        assert!(params.flag("recursive"));
        assert_eq!(params.get("x"), Some("1 2"));
        assert_eq!(params.get("none"), None);
        assert_eq!(
            Params::parse(&"a".repeat(QUERY_BYTES_MAX + 1))
                .unwrap_err()
                .status,
            414
        );
    }
}
