//! `multipart/form-data` bodies (RFC 7578), as `curl -F file=@x` sends them: the upload is
//! the first part that carries a filename, else the first part. Zero-copy: the part's data is
//! a slice of the request body.

use super::limits::{BOUNDARY_BYTES_MAX, PARTS_MAX};
use bytes::Bytes;
use memchr::memmem;
use std::fmt;

/// The file part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    NoBoundary,
    BoundaryTooLong,
    NoFirstDelimiter,
    UnterminatedHeaders,
    UnterminatedPart,
    NoParts,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            MultipartError::NoBoundary => "multipart Content-Type has no boundary",
            MultipartError::BoundaryTooLong => "multipart boundary is longer than 70 bytes",
            MultipartError::NoFirstDelimiter => "multipart body does not start with its boundary",
            MultipartError::UnterminatedHeaders => "multipart part headers are not terminated",
            MultipartError::UnterminatedPart => "multipart part is not closed by a boundary",
            MultipartError::NoParts => "multipart body has no parts",
        };
        f.write_str(text)
    }
}

impl std::error::Error for MultipartError {}

/// The boundary from a `multipart/form-data; boundary=...` Content-Type, or None when the
/// content type is not multipart.
pub fn boundary_of(content_type: &str) -> Option<Result<String, MultipartError>> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim().trim_matches('"');
            if value.is_empty() {
                return Some(Err(MultipartError::NoBoundary));
            }
            if value.len() > BOUNDARY_BYTES_MAX {
                return Some(Err(MultipartError::BoundaryTooLong));
            }
            return Some(Ok(value.to_string()));
        }
    }
    Some(Err(MultipartError::NoBoundary))
}

/// The upload in `body`: the first part with a filename, else the first part.
pub fn parse_file_part(body: &Bytes, boundary: &str) -> Result<FilePart, MultipartError> {
    assert!(!boundary.is_empty() && boundary.len() <= BOUNDARY_BYTES_MAX);
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // A part's data ends at the first `\r\n--boundary` after it. One SIMD searcher, built
    // once per body, scans the data; comparing the boundary at every byte cost half the CPU
    // of 64 KB uploads.
    let closer = format!("\r\n--{boundary}");
    let closer = memmem::Finder::new(closer.as_bytes());
    let first = find(body, delimiter, 0).ok_or(MultipartError::NoFirstDelimiter)?;
    let mut cursor = first + delimiter.len();
    let mut first_part: Option<FilePart> = None;
    for _ in 0..PARTS_MAX {
        if body[cursor..].starts_with(b"--") {
            break; // closing delimiter
        }
        let headers_start = skip_line(body, cursor).ok_or(MultipartError::UnterminatedHeaders)?;
        let (headers_end, data_start) = if body[headers_start..].starts_with(b"\r\n") {
            (headers_start, headers_start + 2) // a part without headers
        } else {
            let end = find(body, b"\r\n\r\n", headers_start)
                .ok_or(MultipartError::UnterminatedHeaders)?;
            (end, end + 4)
        };
        let close = closer
            .find(&body[data_start..])
            .map(|at| data_start + at)
            .ok_or(MultipartError::UnterminatedPart)?;
        let part = part_from(body, &body[headers_start..headers_end], data_start, close);
        if part.filename.is_some() {
            return Ok(part);
        }
        first_part.get_or_insert(part);
        cursor = close + 2 + delimiter.len();
    }
    first_part.ok_or(MultipartError::NoParts)
}

fn part_from(body: &Bytes, headers: &[u8], data_start: usize, data_end: usize) -> FilePart {
    let mut part = FilePart {
        filename: None,
        content_type: None,
        content_encoding: None,
        data: body.slice(data_start..data_end),
    };
    for line in headers.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.trim_end_matches('\r').split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => part.filename = disposition_filename(value),
            "content-type" => part.content_type = Some(value.to_string()),
            "content-encoding" => part.content_encoding = Some(value.to_string()),
            _ => {}
        }
    }
    part
}

/// `filename` of a Content-Disposition value (`form-data; name="file"; filename="a.txt"`);
/// a path in it is cut to its last component, as browsers and Go's multipart reader do.
pub fn disposition_filename(value: &str) -> Option<String> {
    for param in value.split(';').skip(1) {
        let Some((name, raw)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("filename") {
            continue;
        }
        let unquoted = raw.trim().trim_matches('"');
        let base = unquoted.rsplit(['/', '\\']).next().unwrap_or(unquoted);
        return Some(base.to_string()).filter(|name| !name.is_empty());
    }
    None
}

fn skip_line(body: &[u8], from: usize) -> Option<usize> {
    find(body, b"\r\n", from).map(|at| at + 2)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() || needle.is_empty() {
        return None;
    }
    memmem::find(&haystack[from..], needle).map(|at| at + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &str)], boundary: &str) -> Bytes {
        let mut text = String::new();
        for (headers, data) in parts {
            text.push_str(&format!("--{boundary}\r\n{headers}\r\n\r\n{data}\r\n"));
        }
        text.push_str(&format!("--{boundary}--\r\n"));
        Bytes::from(text)
    }

    // Proves the part curl -F sends is found with its filename, type and exact data.
    #[test]
    fn curl_style_upload() {
        let headers = "Content-Disposition: form-data; name=\"file\"; filename=\"dir/cat.jpg\"\r\nContent-Type: image/jpeg";
        let body = body(&[(headers, "hello\r\nworld")], "XyZ");
        let part = parse_file_part(&body, "XyZ").unwrap();
        assert_eq!(part.filename.as_deref(), Some("cat.jpg"));
        assert_eq!(part.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(&part.data[..], b"hello\r\nworld");
    }

    // Proves a field part before the file part is skipped, and a fileless body uses part one.
    #[test]
    fn first_part_with_filename_wins() {
        let field = "Content-Disposition: form-data; name=\"note\"";
        let file = "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"";
        let both = body(&[(field, "x"), (file, "data")], "b");
        assert_eq!(&parse_file_part(&both, "b").unwrap().data[..], b"data");
        let only_field = body(&[(field, "x")], "b");
        let part = parse_file_part(&only_field, "b").unwrap();
        assert_eq!((part.filename, &part.data[..]), (None, &b"x"[..]));
    }

    // Proves the boundary is read from the Content-Type, and bad ones are named.
    #[test]
    fn boundary_from_content_type() {
        let ok = boundary_of("multipart/form-data; boundary=\"abc\"");
        assert_eq!(ok, Some(Ok("abc".to_string())));
        assert_eq!(boundary_of("text/plain"), None);
        assert_eq!(
            boundary_of("multipart/form-data"),
            Some(Err(MultipartError::NoBoundary))
        );
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(
            boundary_of(&long),
            Some(Err(MultipartError::BoundaryTooLong))
        );
    }

    // Proves truncated bodies are errors, not panics or silent partial data.
    #[test]
    fn truncated_bodies_are_errors() {
        let headers = "Content-Disposition: form-data; name=\"f\"; filename=\"a\"";
        let full = body(&[(headers, "data")], "b");
        let no_close = full.slice(..full.len() - 10);
        assert_eq!(
            parse_file_part(&no_close, "b"),
            Err(MultipartError::UnterminatedPart)
        );
        let no_header_end = Bytes::from_static(b"--b\r\nContent-Type: x\r\n");
        assert_eq!(
            parse_file_part(&no_header_end, "b"),
            Err(MultipartError::UnterminatedHeaders)
        );
        assert_eq!(
            parse_file_part(&Bytes::from_static(b"junk"), "b"),
            Err(MultipartError::NoFirstDelimiter)
        );
    }

    // Proves the boundary text inside the data ends the part only after a CRLF, as RFC 2046
    // says: `--XyZ` at the start of data or after a bare LF is data.
    #[test]
    fn boundary_text_without_crlf_is_data() {
        let headers = "Content-Disposition: form-data; name=\"f\"; filename=\"a\"";
        let data = "--XyZ a--XyZ\n--XyZ\r--XyZ end";
        let part = parse_file_part(&body(&[(headers, data)], "XyZ"), "XyZ").unwrap();
        assert_eq!(&part.data[..], data.as_bytes());
    }

    proptest::proptest! {
        // Proves arbitrary bytes never make the parser panic.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_file_part(&Bytes::from(data), "b");
        }

        // Proves arbitrary bytes after a valid prefix never panic either (deeper paths).
        #[test]
        fn arbitrary_tails_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut data = b"--b\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\n".to_vec();
            data.extend_from_slice(&tail);
            let _ = parse_file_part(&Bytes::from(data), "b");
        }

        // Proves the SIMD search finds what a byte-by-byte search finds, from any start.
        #[test]
        fn find_matches_naive_search(
            haystack in proptest::collection::vec(0u8..4, 0..300),
            needle in proptest::collection::vec(0u8..4, 1..6),
            from in 0usize..310,
        ) {
            let naive = if from > haystack.len() {
                None
            } else {
                haystack[from..].windows(needle.len()).position(|w| w == &needle[..]).map(|at| at + from)
            };
            proptest::prop_assert_eq!(find(&haystack, &needle, from), naive);
        }

        // Proves any data survives a round trip through the multipart encoding.
        #[test]
        fn data_round_trips(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let boundary = "------------------------d74496d66958873e";
            let mut encoded = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n").into_bytes();
            encoded.extend_from_slice(&data);
            encoded.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let part = parse_file_part(&Bytes::from(encoded), boundary).unwrap();
            proptest::prop_assert_eq!(&part.data[..], &data[..]);
        }
    }
}
