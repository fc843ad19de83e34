//! HTTP/1.1 on compio: the request/response types handlers see, the sans-I/O request parser
//! ([`parse`]), the per-core server ([`server`]) and the client ([`client`]).

pub mod client;
pub mod parse;
mod send_file;
mod send_zc;
pub mod server;
mod wire;

use std::sync::Arc;

pub use server::{HttpLimits, bind_reuseport, serve, serve_listener, serve_listeners, serve_until};

/// Request method. Methods Kelp does not serve are `Other` (handlers answer 405).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// Request headers: the raw head bytes (names lower-cased in place) plus the position of each
/// name and value, so parsing a request allocates one small vector and copies nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    head: bytes::Bytes,
    spans: Vec<HeaderSpan>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderSpan {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

impl Headers {
    /// Builds headers from (name, value) pairs; names are lower-cased. For handlers' tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Headers {
        let mut head = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let name_start = head.len() as u32;
            head.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            let value_start = head.len() as u32;
            head.extend_from_slice(value);
            spans.push(HeaderSpan {
                name_start,
                name_len: name.len() as u32,
                value_start,
                value_len: value.len() as u32,
            });
        }
        Headers {
            head: head.into(),
            spans,
        }
    }

    /// `head` holds the header bytes; each span's name is already lower-case ASCII.
    pub(crate) fn from_spans(head: bytes::Bytes, spans: Vec<(usize, usize, usize, usize)>) -> Self {
        let spans = spans
            .into_iter()
            .map(|(name_start, name_len, value_start, value_len)| {
                assert!(name_start + name_len <= head.len());
                assert!(value_start + value_len <= head.len());
                HeaderSpan {
                    name_start: name_start as u32,
                    name_len: name_len as u32,
                    value_start: value_start as u32,
                    value_len: value_len as u32,
                }
            })
            .collect();
        Headers { head, spans }
    }

    /// The first value of `name_lowercase`, when it is valid UTF-8.
    pub fn get(&self, name_lowercase: &str) -> Option<&str> {
        self.get_bytes(name_lowercase)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The first value of `name_lowercase`, raw. (Any case matches; lower case is fastest.)
    pub fn get_bytes(&self, name_lowercase: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(name_lowercase))
            .map(|(_, value)| value)
    }

    /// All headers in the order received: (lower-case name, raw value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|span| {
            let name_end = (span.name_start + span.name_len) as usize;
            let name = &self.head[span.name_start as usize..name_end];
            let value_end = (span.value_start + span.value_len) as usize;
            let value = &self.head[span.value_start as usize..value_end];
            // Names passed httparse's token check, so they are ASCII.
            (std::str::from_utf8(name).unwrap_or(""), value)
        })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// One parsed request, body complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Raw path, without the query, not percent-decoded.
    pub path: String,
    /// Raw query without '?', "" when none.
    pub query: String,
    pub headers: Headers,
    /// Whole body, chunked already decoded, bounded by `HttpLimits::body_bytes_max`.
    pub body: bytes::Bytes,
    /// The client's address as the socket reports it; `None` for a request that did not come
    /// from a socket (built by a test or the parser alone).
    pub peer: Option<std::net::SocketAddr>,
}

/// A part of an open file sent as a response body (splice above the zero-copy threshold).
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Bytes(bytes::Bytes),
    File(FileRegion),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File(region) => region.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response. The server adds `Content-Length` (from the body), `Date` and `Connection`;
/// handlers should not set those three (a handler's `Connection: close` is honoured).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Self {
        assert!(
            (100..=999).contains(&status),
            "status {status} out of range"
        );
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body_bytes(mut self, body: impl Into<bytes::Bytes>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    pub fn body_file(mut self, region: FileRegion) -> Self {
        self.body = Body::File(region);
        self
    }

    /// `json_text` must already be JSON; sets `Content-Type: application/json`.
    pub fn json(status: u16, json_text: String) -> Self {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body_bytes(json_text)
    }

    /// `{"error": message}` with the message JSON-escaped.
    pub fn error(status: u16, message: &str) -> Self {
        let mut text = String::with_capacity(message.len() + 16);
        text.push_str("{\"error\":\"");
        json_escape_into(&mut text, message);
        text.push_str("\"}");
        Response::json(status, text)
    }
}

/// Appends `text` to `out` escaped for a JSON string (RFC 8259 §7).
pub fn json_escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The application: one instance per core (not `Send`), called once per request, in order per
/// connection.
pub trait Handler: 'static {
    fn handle(&self, request: Request) -> impl std::future::Future<Output = Response>;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves error bodies are valid JSON whatever the message contains.
    #[test]
    fn error_body_escapes_message() {
        let response = Response::error(400, "bad \"fid\"\n\\ \u{1}");
        let Body::Bytes(body) = &response.body else {
            panic!("error body must be bytes")
        };
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            r#"{"error":"bad \"fid\"\n\\ \u0001"}"#
        );
        assert_eq!(
            response.headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
    }

    // Proves lookups are by lower-case name and return the first of repeated headers.
    #[test]
    fn headers_lookup_first_value() {
        let headers = Headers::from_pairs([
            ("Content-Type", &b"text/plain"[..]),
            ("X-A", b"1"),
            ("x-a", b"2"),
            ("x-bin", b"\xff"),
        ]);
        assert_eq!(headers.get("content-type"), Some("text/plain"));
        assert_eq!(headers.get("x-a"), Some("1"));
        assert_eq!(headers.get("x-bin"), None);
        assert_eq!(headers.get_bytes("x-bin"), Some(&b"\xff"[..]));
        assert_eq!(headers.get("missing"), None);
        assert_eq!(headers.get("Content-Type"), Some("text/plain"));
        assert_eq!(headers.iter().count(), 4);
    }
}
