//! Sans-I/O HTTP/1.1 request reader: bytes in, requests (or a 100-continue cue) out.
//!
//! The reader owns the connection's receive buffer so the server can hand it to the kernel by
//! ownership (compio) and get it back with the bytes appended. Everything here is pure and
//! fuzzed: `net/fuzz_targets/http_request.rs` and the proptests below.

use bytes::{Buf, BytesMut};

use super::{Headers, Method, Request};
use crate::limits::{CHUNK_LINE_BYTES_MAX, CHUNK_TRAILER_BYTES_MAX, HEADER_COUNT_MAX};

/// What the reader enforces while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    pub header_bytes_max: usize,
    pub body_bytes_max: u64,
}

/// Why a request was refused. Each maps to a status; after any of them the connection closes,
/// because the reader no longer knows where the next request starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not HTTP/1.x syntax: 400.
    Malformed(&'static str),
    /// Request line plus headers over `header_bytes_max` or too many header lines: 431.
    HeaderTooLarge { limit_bytes: usize },
    /// Declared or decoded body over `body_bytes_max`: 413.
    BodyTooLarge { limit_bytes: u64 },
    /// A transfer coding other than `chunked`: 501.
    UnsupportedTransferEncoding,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::HeaderTooLarge { .. } => 431,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::UnsupportedTransferEncoding => 501,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Malformed(what) => write!(f, "malformed request: {what}"),
            ParseError::HeaderTooLarge { limit_bytes } => {
                write!(
                    f,
                    "request headers exceed {limit_bytes} bytes or {HEADER_COUNT_MAX} lines"
                )
            }
            ParseError::BodyTooLarge { limit_bytes } => {
                write!(f, "request body exceeds the limit of {limit_bytes} bytes")
            }
            ParseError::UnsupportedTransferEncoding => {
                write!(f, "only the chunked transfer coding is supported")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Per-request facts the server needs besides the [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Whether the client allows the connection to stay open after the response.
    pub keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Read more bytes into the buffer, then call `next_event` again.
    NeedMore,
    /// The client waits for `100 Continue` before it sends the body: send it, then read.
    SendContinue,
    Request(Request, RequestMeta),
}

// One per connection, and a request's head moves through `Body` on the hot path: boxing
// it would cost an allocation per request to save bytes no one has many of.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    Head,
    Body(PendingBody),
    Failed(ParseError),
}

#[derive(Debug)]
struct PendingBody {
    request: Request,
    meta: RequestMeta,
    kind: BodyKind,
    expect_continue: bool,
}

#[derive(Debug)]
enum BodyKind {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Reads requests one after another from one connection's bytes.
#[derive(Debug)]
pub struct RequestReader {
    buffer: BytesMut,
    state: State,
    limits: ParseLimits,
}

impl RequestReader {
    pub fn new(limits: ParseLimits) -> Self {
        assert!(limits.header_bytes_max > 0);
        RequestReader {
            buffer: BytesMut::new(),
            state: State::Head,
            limits,
        }
    }

    /// Appends received bytes (tests and fuzzing; the server reads into `take_buffer`).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Lends the receive buffer out, with at least `spare_bytes` of spare capacity for a read.
    pub fn take_buffer(&mut self, spare_bytes: usize) -> BytesMut {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.reserve(spare_bytes);
        buffer
    }

    /// Takes the buffer back after a read appended to it.
    pub fn restore_buffer(&mut self, buffer: BytesMut) {
        assert!(self.buffer.is_empty(), "buffer restored twice");
        self.buffer = buffer;
    }

    /// Frees a large receive buffer while nothing is buffered, so an idle connection holds at
    /// most `keep_bytes_max` of receive memory (a small buffer is kept: reusing it spares an
    /// allocation per request). A large one would also pin the allocation shared with the
    /// last request's body.
    pub fn release_idle_buffer(&mut self, keep_bytes_max: usize) {
        let idle = self.buffer.is_empty() && matches!(self.state, State::Head);
        if idle && self.buffer.capacity() > keep_bytes_max {
            self.buffer = BytesMut::new();
        }
    }

    /// Bytes received and not yet consumed by a request.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a request is partly read (so EOF now is an error, not a clean close).
    pub fn in_request(&self) -> bool {
        !self.buffer.is_empty() || matches!(self.state, State::Body(_))
    }

    /// Whether the head is parsed and the body is being read.
    pub fn reading_body(&self) -> bool {
        matches!(self.state, State::Body(_))
    }

    /// Body bytes still missing for the request being read, when that is known up front.
    pub fn body_bytes_missing(&self) -> Option<u64> {
        match &self.state {
            State::Body(PendingBody {
                kind: BodyKind::Length(length),
                ..
            }) => Some(length.saturating_sub(self.buffer.len() as u64)),
            _ => None,
        }
    }

    /// Advances as far as the buffered bytes allow.
    pub fn next_event(&mut self) -> Result<Event, ParseError> {
        let result = self.advance();
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
        }
        result
    }

    fn advance(&mut self) -> Result<Event, ParseError> {
        loop {
            match &mut self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Head => match parse_head(&mut self.buffer, self.limits)? {
                    None => return Ok(Event::NeedMore),
                    Some(pending) => self.state = State::Body(pending),
                },
                State::Body(pending) => {
                    let done = match &mut pending.kind {
                        BodyKind::Length(length) => {
                            if (self.buffer.len() as u64) < *length {
                                false
                            } else {
                                let body = self.buffer.split_to(*length as usize).freeze();
                                pending.request.body = body;
                                true
                            }
                        }
                        BodyKind::Chunked(decoder) => {
                            if decoder.decode(&mut self.buffer, self.limits)? {
                                pending.request.body = decoder.take_body();
                                true
                            } else {
                                false
                            }
                        }
                    };
                    if done {
                        let State::Body(pending) = std::mem::replace(&mut self.state, State::Head)
                        else {
                            unreachable!("state checked above")
                        };
                        return Ok(Event::Request(pending.request, pending.meta));
                    }
                    if pending.expect_continue {
                        pending.expect_continue = false;
                        return Ok(Event::SendContinue);
                    }
                    return Ok(Event::NeedMore);
                }
            }
        }
    }
}

/// Parses a request head at the start of `buffer`, consuming it when complete.
fn parse_head(
    buffer: &mut BytesMut,
    limits: ParseLimits,
) -> Result<Option<PendingBody>, ParseError> {
    let too_large = ParseError::HeaderTooLarge {
        limit_bytes: limits.header_bytes_max,
    };
    let mut header_slots = [httparse::EMPTY_HEADER; HEADER_COUNT_MAX];
    let mut parsed = httparse::Request::new(&mut header_slots);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if buffer.len() > limits.header_bytes_max => {
            return Err(too_large);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(too_large),
        Err(error) => return Err(ParseError::Malformed(httparse_error_text(error))),
    };
    if head_len > limits.header_bytes_max {
        return Err(too_large);
    }
    let version_minor = parsed.version.expect("complete head has a version");
    let method = Method::from_bytes(parsed.method.expect("complete head").as_bytes());
    let (path, query) = split_target(parsed.path.expect("complete head has a target"))?;
    let base = buffer.as_ptr() as usize;
    let spans: Vec<(usize, usize, usize, usize)> = parsed
        .headers
        .iter()
        .map(|header| {
            let name_start = header.name.as_ptr() as usize - base;
            let value_start = header.value.as_ptr() as usize - base;
            (
                name_start,
                header.name.len(),
                value_start,
                header.value.len(),
            )
        })
        .collect();
    let mut head = buffer.split_to(head_len);
    for &(name_start, name_len, _, _) in &spans {
        head[name_start..name_start + name_len].make_ascii_lowercase();
    }
    let headers = Headers::from_spans(head.freeze(), spans);
    let framing = body_framing(&headers, limits)?;
    let meta = RequestMeta {
        version_minor,
        keep_alive: keep_alive(&headers, version_minor),
    };
    let expect_continue = version_minor == 1
        && headers
            .get_bytes("expect")
            .is_some_and(|value| value.eq_ignore_ascii_case(b"100-continue"));
    let request = Request {
        method,
        path,
        query,
        headers,
        body: bytes::Bytes::new(),
        peer: None,
    };
    Ok(Some(PendingBody {
        request,
        meta,
        kind: framing,
        expect_continue,
    }))
}

fn httparse_error_text(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "unsupported HTTP version",
    }
}

/// Splits the request target into (path, query); accepts origin form, absolute form and `*`.
fn split_target(target: &str) -> Result<(String, String), ParseError> {
    let origin_form = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |slash| &rest[slash..])
    } else {
        target
    };
    if !origin_form.starts_with('/') && origin_form != "*" {
        return Err(ParseError::Malformed("request target must start with '/'"));
    }
    Ok(match origin_form.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (origin_form.to_string(), String::new()),
    })
}

/// Decides how the body is delimited (RFC 9112 §6.3), refusing ambiguous framing.
fn body_framing(headers: &Headers, limits: ParseLimits) -> Result<BodyKind, ParseError> {
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    for (name, value) in headers.iter() {
        if name == "content-length" {
            let length = parse_content_length(value)?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(ParseError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name == "transfer-encoding" {
            if chunked || !is_chunked_only(value) {
                return Err(ParseError::UnsupportedTransferEncoding);
            }
            chunked = true;
        }
    }
    match (chunked, content_length) {
        (true, Some(_)) => Err(ParseError::Malformed(
            "both Transfer-Encoding and Content-Length",
        )),
        (true, None) => Ok(BodyKind::Chunked(ChunkedDecoder::default())),
        (false, Some(length)) if length > limits.body_bytes_max => Err(ParseError::BodyTooLarge {
            limit_bytes: limits.body_bytes_max,
        }),
        (false, length) => Ok(BodyKind::Length(length.unwrap_or(0))),
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Malformed("invalid Content-Length"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0')))
}

fn is_chunked_only(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

fn keep_alive(headers: &Headers, version_minor: u8) -> bool {
    let mut close = false;
    let mut keep = false;
    for (name, value) in headers.iter() {
        if name != "connection" {
            continue;
        }
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    if version_minor == 0 {
        keep && !close
    } else {
        !close
    }
}

#[derive(Debug, Default)]
enum ChunkState {
    #[default]
    SizeLine,
    Data {
        remaining: u64,
    },
    DataEnd,
    Trailer {
        bytes: usize,
    },
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are read and dropped.
#[derive(Debug, Default)]
struct ChunkedDecoder {
    state: ChunkState,
    body: BytesMut,
}

impl ChunkedDecoder {
    /// Consumes what it can from `buffer`; true once the last chunk and trailers are read.
    fn decode(&mut self, buffer: &mut BytesMut, limits: ParseLimits) -> Result<bool, ParseError> {
        loop {
            match self.state {
                ChunkState::SizeLine => {
                    let Some(line) = take_line(buffer, CHUNK_LINE_BYTES_MAX)? else {
                        return Ok(false);
                    };
                    let size = parse_chunk_size(&line)?;
                    let total = (self.body.len() as u64).saturating_add(size);
                    if total > limits.body_bytes_max {
                        return Err(ParseError::BodyTooLarge {
                            limit_bytes: limits.body_bytes_max,
                        });
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer { bytes: 0 }
                    } else {
                        ChunkState::Data { remaining: size }
                    };
                }
                ChunkState::Data { remaining } => {
                    if buffer.is_empty() {
                        return Ok(false);
                    }
                    let take = remaining.min(buffer.len() as u64) as usize;
                    self.body.extend_from_slice(&buffer[..take]);
                    buffer.advance(take);
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { remaining }
                    };
                }
                ChunkState::DataEnd => {
                    if buffer.len() < 2 {
                        return Ok(false);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(ParseError::Malformed("chunk data not followed by CRLF"));
                    }
                    buffer.advance(2);
                    self.state = ChunkState::SizeLine;
                }
                ChunkState::Trailer { bytes } => {
                    let Some(line) =
                        take_line(buffer, CHUNK_TRAILER_BYTES_MAX.saturating_sub(bytes))?
                    else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::SizeLine;
                        return Ok(true);
                    }
                    self.state = ChunkState::Trailer {
                        bytes: bytes + line.len() + 2,
                    };
                }
            }
        }
    }

    fn take_body(&mut self) -> bytes::Bytes {
        std::mem::take(&mut self.body).freeze()
    }
}

/// Takes one CRLF-terminated line (without the CRLF) off `buffer`, if complete.
fn take_line(buffer: &mut BytesMut, line_bytes_max: usize) -> Result<Option<BytesMut>, ParseError> {
    let scan = buffer.len().min(line_bytes_max + 2);
    let Some(newline) = buffer[..scan].iter().position(|&b| b == b'\n') else {
        if buffer.len() >= line_bytes_max + 2 {
            return Err(ParseError::Malformed("chunk line or trailer too long"));
        }
        return Ok(None);
    };
    if newline == 0 || buffer[newline - 1] != b'\r' {
        return Err(ParseError::Malformed("chunk line not terminated by CRLF"));
    }
    let mut line = buffer.split_to(newline + 1);
    line.truncate(newline - 1);
    Ok(Some(line))
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let size_text = match line.iter().position(|&b| b == b';') {
        Some(semicolon) => &line[..semicolon],
        None => line,
    }
    .trim_ascii();
    if size_text.is_empty() || size_text.len() > 15 {
        return Err(ParseError::Malformed("invalid chunk size"));
    }
    let mut size = 0u64;
    for &digit in size_text {
        let value = (digit as char)
            .to_digit(16)
            .ok_or(ParseError::Malformed("invalid chunk size"))?;
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}

#[cfg(test)]
mod tests;
