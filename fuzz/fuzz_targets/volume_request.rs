//! cargo-fuzz target: the volume server's request parsers that live in the `kelp` binary
//! (multipart bodies, `Range` headers, fid paths) and the HTTP client's response framing
//! (`kelp_net`'s `client/response.rs`, crate-private) never panic, and what they accept is
//! consistent: a file part is a slice of its body ending where the boundary closes it, a 206
//! range lies inside the body, a fid path prints back to text that parses to the same fid.
//! The sources are compiled in with `#[path]`; they use nothing but std, bytes, memchr and
//! httparse.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/volume/multipart.rs"]
mod multipart;

#[allow(dead_code)]
#[path = "../../src/volume/range.rs"]
mod range;

#[allow(dead_code)]
#[path = "../../src/volume/fid.rs"]
mod fid;

/// `response.rs` takes this from its parent module, here the crate root.
const RESPONSE_HEADERS_COUNT_MAX: usize = kelp_net::http::client::RESPONSE_HEADERS_COUNT_MAX;

#[allow(dead_code)]
#[path = "../../net/src/http/client/response.rs"]
mod response;

/// A response head either needs more bytes, is refused, or is parsed from a prefix whose
/// length it reports, and that prefix alone parses to the same head; chunked framing
/// overrides Content-Length; chunk sizes stay under 2^60.
fn check_response(bytes: &[u8]) {
    if let Ok(Some((head, head_len))) = response::parse_head(bytes) {
        assert!(head_len <= bytes.len());
        assert!(head.status >= 100);
        assert!(!(head.chunked && head.content_length.is_some()));
        let (again, again_len) = response::parse_head(&bytes[..head_len])
            .expect("the head's own bytes parse")
            .expect("the head's own bytes are complete");
        assert_eq!(again_len, head_len);
        assert_eq!(again.status, head.status);
        assert_eq!(again.headers, head.headers);
        assert_eq!(again.content_length, head.content_length);
        assert_eq!((again.chunked, again.keep_alive), (head.chunked, head.keep_alive));
    }
    if let Ok(size) = response::parse_chunk_size(bytes) {
        assert!(size < 1 << 60);
    }
}

/// The first byte picks how the rest is split: a content type, then a body.
fn check_multipart(bytes: &[u8]) {
    let Some((&split, rest)) = bytes.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (content_type, body) = rest.split_at(split);
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    let Some(Ok(boundary)) = multipart::boundary_of(content_type) else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    let Ok(part) = multipart::parse_file_part(&body, &boundary) else {
        return;
    };
    let closer = format!("\r\n--{boundary}");
    let inside = memchr::memmem::find(&part.data, closer.as_bytes());
    assert!(inside.is_none(), "a part's data holds its closing boundary");
    if part.data.is_empty() {
        return; // an empty slice of a `Bytes` need not point into it
    }
    let data_start = (part.data.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    assert!(data_start < body.len(), "the part's data is not a slice of the body");
    let data_end = data_start + part.data.len();
    assert!(body[data_end..].starts_with(closer.as_bytes()));
}

fn check_range(text: &str, total_len: u64) {
    match range::decide(Some(text), total_len) {
        range::RangeDecision::Partial { start, len } => {
            assert!(len > 0 && start.checked_add(len).is_some_and(|end| end <= total_len));
            let _ = range::content_range(start, len, total_len);
        }
        range::RangeDecision::Full | range::RangeDecision::Unsatisfiable => {}
    }
}

fn check_fid_path(text: &str) {
    let Ok(parsed) = fid::parse_path(text) else {
        return;
    };
    let again = fid::parse_path(&format!("/{}", parsed.fid)).expect("a printed fid parses");
    assert_eq!(again.fid, parsed.fid);
}

fuzz_target!(|bytes: &[u8]| {
    check_response(bytes);
    check_multipart(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let total_len = bytes.iter().fold(0u64, |sum, &b| sum.wrapping_mul(31) ^ u64::from(b)) % 4096;
    check_range(text, total_len);
    check_fid_path(text);
});
