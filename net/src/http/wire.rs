//! Response heads on the wire.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Response;

/// Headers the server owns; a handler's copies are dropped so none is sent twice.
fn is_server_owned(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("date")
        || name.eq_ignore_ascii_case("connection")
        || name.eq_ignore_ascii_case("transfer-encoding")
}

/// Whether the handler asked for the connection to close after this response.
pub(crate) fn wants_close(response: &Response) -> bool {
    response.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
    })
}

/// Appends the status line and headers (ending with the blank line) to `out`.
pub(crate) fn encode_head(out: &mut Vec<u8>, response: &Response, keep_alive: bool) {
    let status = response.status;
    assert!((100..=999).contains(&status));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &response.headers {
        if is_server_owned(name) {
            continue;
        }
        push_header_text(out, name);
        out.extend_from_slice(b": ");
        push_header_text(out, value);
        out.extend_from_slice(b"\r\n");
    }
    if status_allows_body(status) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, response.body.len());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Date: ");
    with_http_date(|date| out.extend_from_slice(date));
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    });
}

/// 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6, §15.3.5, §15.4.5).
pub(crate) fn status_allows_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

/// Header text without CR/LF, so a handler value cannot split the response.
fn push_header_text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

thread_local! {
    /// (unix second, formatted IMF-fixdate): formatting once a second per core.
    static DATE_CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
}

fn with_http_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE_CACHE.with_borrow_mut(|(cached_second, text)| {
        if *cached_second != second || text.is_empty() {
            *cached_second = second;
            *text = httpdate::fmt_http_date(now).into_bytes();
        }
        f(text);
    });
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the head carries the server-owned headers once, drops the handler's copies, and
    // strips CR/LF from handler text (no response splitting).
    #[test]
    fn head_has_server_headers_once() {
        let response = Response::new(201)
            .header("Content-Length", "999")
            .header("X-Name", "a\r\nInjected: 1")
            .body_bytes(&b"hello"[..]);
        let mut out = Vec::new();
        encode_head(&mut out, &response, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
        assert!(text.contains("\r\nX-Name: a  Injected: 1\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 5\r\n"), "{text}");
        assert!(!text.contains("999"), "{text}");
        assert!(text.contains("\r\nDate: "), "{text}");
        assert!(
            text.ends_with("\r\nConnection: keep-alive\r\n\r\n"),
            "{text}"
        );
    }

    // Proves 204 and 304 answers carry no Content-Length (a client would wait for a body).
    #[test]
    fn no_content_length_for_204_304() {
        for status in [204, 304] {
            let mut out = Vec::new();
            encode_head(&mut out, &Response::new(status), false);
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains("Content-Length"), "{text}");
            assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        }
    }
}
