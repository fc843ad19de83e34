//! `Range: bytes=...` (RFC 9110 §14): one range is served as 206; several ranges are served
//! as the whole body (allowed by the RFC); a range outside the body is 416.

/// What to send for a body of `len` bytes given the request's Range header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes `start..start+len` and `Content-Range: bytes start-end/total`.
    Partial { start: u64, len: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

/// Decide from the Range header value (None when absent). A header that is not a byte range
/// at all is 416, as SeaweedFS answers; a multi-range is served whole.
pub fn decide(range_header: Option<&str>, total_len: u64) -> RangeDecision {
    let Some(value) = range_header else {
        return RangeDecision::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeDecision::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeDecision::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    match (parse_u64(first), parse_u64(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(suffix_len)) if first.is_empty() => {
            if suffix_len == 0 || total_len == 0 {
                return RangeDecision::Unsatisfiable;
            }
            let len = suffix_len.min(total_len);
            RangeDecision::Partial {
                start: total_len - len,
                len,
            }
        }
        // bytes=A- and bytes=A-B.
        (Some(start), end) if last.is_empty() || end.is_some() => {
            if start >= total_len {
                return RangeDecision::Unsatisfiable;
            }
            let end_inclusive = end.unwrap_or(u64::MAX).min(total_len - 1);
            if end_inclusive < start {
                return RangeDecision::Unsatisfiable;
            }
            RangeDecision::Partial {
                start,
                len: end_inclusive - start + 1,
            }
        }
        _ => RangeDecision::Unsatisfiable,
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `Content-Range` value of a 206.
pub fn content_range(start: u64, len: u64, total_len: u64) -> String {
    assert!(len > 0 && start + len <= total_len);
    format!("bytes {}-{}/{}", start, start + len - 1, total_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeDecision::*;

    // Proves each single-range form picks the right bytes, clamped to the body.
    #[test]
    fn single_ranges() {
        assert_eq!(decide(None, 10), Full);
        assert_eq!(decide(Some("bytes=0-3"), 10), Partial { start: 0, len: 4 });
        assert_eq!(decide(Some("bytes=5-"), 10), Partial { start: 5, len: 5 });
        assert_eq!(decide(Some("bytes=-3"), 10), Partial { start: 7, len: 3 });
        assert_eq!(decide(Some("bytes=-30"), 10), Partial { start: 0, len: 10 });
        assert_eq!(
            decide(Some("bytes=8-100"), 10),
            Partial { start: 8, len: 2 }
        );
        assert_eq!(content_range(8, 2, 10), "bytes 8-9/10");
    }

    // Proves ranges outside the body and garbage are 416, several ranges are served whole.
    #[test]
    fn unsatisfiable_and_multi() {
        assert_eq!(decide(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=5-2"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(decide(Some("items=0-1"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=a-b"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=-"), 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=0-1,4-5"), 10), Full);
    }

    proptest::proptest! {
        // Proves every Partial answer lies inside the body, whatever the header says.
        #[test]
        fn partial_is_inside_body(header in "bytes=[0-9]{0,3}-[0-9]{0,3}", total in 0u64..2000) {
            if let Partial { start, len } = decide(Some(&header), total) {
                proptest::prop_assert!(len > 0 && start + len <= total);
            }
        }
    }
}
