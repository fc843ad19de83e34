//! Conditional GETs (RFC 9110 §13): If-None-Match wins over If-Modified-Since.

/// True when the request's validators say the client's copy is current (answer 304).
/// `etag` is unquoted; `last_modified_unix_s` is 0 when the needle has no time.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    last_modified_unix_s: u64,
) -> bool {
    if let Some(candidates) = if_none_match {
        return candidates.split(',').any(|candidate| {
            let candidate = candidate.trim();
            let candidate = candidate.strip_prefix("W/").unwrap_or(candidate);
            candidate == "*" || candidate.trim_matches('"') == etag
        });
    }
    let Some(since_text) = if_modified_since else {
        return false;
    };
    if last_modified_unix_s == 0 {
        return false;
    }
    match httpdate::parse_http_date(since_text.trim()) {
        Ok(since) => {
            let since_unix_s = since
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            last_modified_unix_s <= since_unix_s
        }
        Err(_) => false,
    }
}

/// An HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`) for unix seconds.
pub fn http_date(unix_s: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a matching ETag (quoted, weak, listed or *) gives 304 and a different one not.
    #[test]
    fn if_none_match() {
        assert!(not_modified(Some("\"abcd\""), None, "abcd", 0));
        assert!(not_modified(Some("W/\"abcd\""), None, "abcd", 0));
        assert!(not_modified(Some("\"x\", \"abcd\""), None, "abcd", 0));
        assert!(not_modified(Some("*"), None, "abcd", 0));
        assert!(!not_modified(Some("\"other\""), None, "abcd", 0));
    }

    // Proves If-Modified-Since compares seconds, and If-None-Match takes precedence.
    #[test]
    fn if_modified_since() {
        let modified = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(http_date(modified), same);
        assert!(not_modified(None, Some(same), "e", modified));
        assert!(!not_modified(None, Some(same), "e", modified + 1));
        assert!(!not_modified(None, Some("garbage"), "e", modified));
        assert!(!not_modified(None, Some(same), "e", 0));
        assert!(!not_modified(Some("\"x\""), Some(same), "e", modified));
    }
}
