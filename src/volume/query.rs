//! Query strings: `a=1&b=x%20y`, values percent- and plus-decoded.

use super::fid::percent_decode;

/// The first value of `name` in a raw query string.
pub fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(&value.replace('+', " ")))
    })
}

/// A boolean flag: `fsync=true` (also `1`, `yes`).
pub fn flag(query: &str, name: &str) -> bool {
    matches!(
        param(query, name).as_deref(),
        Some("true" | "1" | "yes" | "y")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves values are found by name and decoded, and flags read as booleans.
    #[test]
    fn params_and_flags() {
        let query = "ttl=3d&type=replicate&name=a%20b+c&fsync=true&empty";
        assert_eq!(param(query, "ttl").as_deref(), Some("3d"));
        assert_eq!(param(query, "name").as_deref(), Some("a b c"));
        assert_eq!(param(query, "empty").as_deref(), Some(""));
        assert_eq!(param(query, "missing"), None);
        assert!(flag(query, "fsync"));
        assert!(!flag(query, "type"));
        assert!(!flag("", "fsync"));
    }
}
