//! HTTP/1.1 client on compio: one keep-alive connection to one `host:port`, one request in
//! flight at a time. Used for heartbeats, replication and lookups between Kelp's servers and by
//! `kelp benchmark`, so the hot path reuses its buffers and costs one send and (usually) one
//! receive per request.
//!
//! Reconnects: a reused connection may have been closed by the server while idle. Before reusing
//! one idle for `IDLE_PEEK_AFTER_MS` or more the client peeks at the socket (one non-blocking
//! `recv(MSG_PEEK)`), and reconnects when the peer has gone; nothing was sent then, so any request
//! may go on the new connection. A request
//! that still fails on a reused connection before any byte of the answer arrived is sent once more
//! on a fresh connection only when its method is idempotent (the server may have acted on it).

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;

mod response;
use response::{ResponseHead, parse_chunk_size, parse_head};

/// Longest response head (status line + headers) accepted.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most header fields in one response head.
pub const RESPONSE_HEADERS_COUNT_MAX: usize = 64;
/// Largest response body accepted by default (`ClientOptions::body_bytes_max`).
pub const RESPONSE_BODY_BYTES_DEFAULT_MAX: u64 = 1 << 30;
/// Longest chunk-size line (with extensions) of a chunked body.
pub const CHUNK_LINE_BYTES_MAX: usize = 4 * 1024;
/// Most informational (1xx) responses skipped before the final one.
pub const INFORMATIONAL_RESPONSES_MAX: usize = 8;
/// A connection idle at least this long is peeked before reuse (see the module comment); one
/// used more recently is reused directly, saving a syscall per request under load (a server's
/// idle timeout is seconds, not milliseconds).
pub const IDLE_PEEK_AFTER_MS: u64 = 100;
/// Bytes requested from the socket per receive (the buffer grows to this much spare room).
const RECEIVE_BYTES: usize = 16 * 1024;

const _: () = assert!(RECEIVE_BYTES <= RESPONSE_HEAD_BYTES_MAX);
const _: () = assert!(CHUNK_LINE_BYTES_MAX < RESPONSE_HEAD_BYTES_MAX);

/// Timeouts and limits of one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound on resolving and connecting.
    pub connect_timeout_ms: u64,
    /// Bound on one exchange: sending the request and receiving the whole response.
    pub request_timeout_ms: u64,
    /// Largest response body accepted; a larger one is `Malformed` and the connection is closed.
    pub body_bytes_max: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            body_bytes_max: RESPONSE_BODY_BYTES_DEFAULT_MAX,
        }
    }
}

/// What went wrong, always naming the server address.
#[derive(Debug)]
pub enum ClientError {
    /// Resolving or connecting to `addr` failed.
    Connect { addr: String, source: io::Error },
    /// Sending or receiving failed (`operation` is "send", "receive" or "peek"); a connection
    /// closed before the whole response arrived is `UnexpectedEof`.
    Io {
        addr: String,
        operation: &'static str,
        source: io::Error,
    },
    /// The server's answer is not valid HTTP/1.x or breaks a limit.
    Malformed { addr: String, reason: String },
    /// `operation` ("connect" or "request") took longer than `timeout_ms`.
    Timeout {
        addr: String,
        operation: &'static str,
        timeout_ms: u64,
    },
    /// The caller's request cannot be encoded (bad method, path or header).
    InvalidRequest { addr: String, reason: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(f, "connect to {addr}: {source}"),
            ClientError::Io {
                addr,
                operation,
                source,
            } => write!(f, "{operation} on connection to {addr}: {source}"),
            ClientError::Malformed { addr, reason } => {
                write!(f, "malformed response from {addr}: {reason}")
            }
            ClientError::Timeout {
                addr,
                operation,
                timeout_ms,
            } => write!(f, "{operation} to {addr} timed out after {timeout_ms} ms"),
            ClientError::InvalidRequest { addr, reason } => {
                write!(f, "invalid request for {addr}: {reason}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } | ClientError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ClientError {
    /// The address of the server this error concerns.
    pub fn addr(&self) -> &str {
        match self {
            ClientError::Connect { addr, .. }
            | ClientError::Io { addr, .. }
            | ClientError::Malformed { addr, .. }
            | ClientError::Timeout { addr, .. }
            | ClientError::InvalidRequest { addr, .. } => addr,
        }
    }
}

/// One complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    /// Header fields in the order received (names as sent by the server).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ClientResponse {
    /// First header field called `name` (any case).
    pub fn header(&self, name_case_insensitive: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(name_case_insensitive))
            .map(|(_, value)| value.as_str())
    }
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
pub fn method_is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// One connection to one `host:port`, reconnected on demand.
pub struct Client {
    addr: String,
    options: ClientOptions,
    stream: Option<TcpStream>,
    /// Received bytes not yet consumed: `receive_buffer[receive_start..]`.
    receive_buffer: Vec<u8>,
    receive_start: usize,
    /// The encoded request, reused between requests.
    send_buffer: Vec<u8>,
    connections_opened: u64,
    /// When the last response ended (or the connection opened).
    last_used: Instant,
}

impl Client {
    /// Connect to `addr` ("host:port") with the default options.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connect to `addr` ("host:port") with `options`.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let mut client = Client::new(addr, options);
        client.open().await?;
        Ok(client)
    }

    /// A client that connects at its first request.
    pub fn new(addr: &str, options: ClientOptions) -> Client {
        assert!(options.connect_timeout_ms > 0);
        assert!(options.request_timeout_ms > 0);
        Client {
            addr: addr.to_string(),
            options,
            stream: None,
            receive_buffer: Vec::with_capacity(RECEIVE_BYTES),
            receive_start: 0,
            send_buffer: Vec::with_capacity(1024),
            connections_opened: 0,
            last_used: Instant::now(),
        }
    }

    /// The "host:port" this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How many TCP connections this client has opened so far (reuse shows as 1).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened
    }

    /// Is a connection open now (it may still have been closed by the peer)?
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Close the connection now; the next request opens a new one.
    pub fn disconnect(&mut self) {
        self.stream = None;
        self.receive_buffer.clear();
        self.receive_start = 0;
    }

    /// Send one request and return the whole response. Adds `Host` and `Content-Length` unless
    /// given in `headers`.
    pub async fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<ClientResponse, ClientError> {
        let write_body = |out: &mut Vec<u8>| out.extend_from_slice(body);
        self.request_writing_body(method, path_and_query, headers, body.len(), write_body)
            .await
    }

    /// `request` with a body of `body_len` bytes that `write_body` appends straight to the
    /// request being built, so a large upload is copied into the send buffer once instead of
    /// being built elsewhere and copied again. Panics if `write_body` appends another length.
    pub async fn request_writing_body(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body_len: usize,
        write_body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<ClientResponse, ClientError> {
        self.encode_head(method, path_and_query, headers, body_len)?;
        let head_len = self.send_buffer.len();
        self.send_buffer.reserve(body_len);
        write_body(&mut self.send_buffer);
        assert_eq!(
            self.send_buffer.len() - head_len,
            body_len,
            "write_body appended another length than body_len"
        );
        self.send_encoded(method).await
    }

    /// Sends the request in `send_buffer` (on a new connection if the old one cannot be reused)
    /// and receives the response; resends it once on a fresh connection when a reused one
    /// failed before any response and the method is idempotent.
    async fn send_encoded(&mut self, method: &str) -> Result<ClientResponse, ClientError> {
        let head_only = method == "HEAD";
        let reused = self.stream.is_some() && self.reuse_is_safe();
        if !reused {
            self.disconnect();
            self.open().await?;
        }
        match self.exchange_with_timeout(head_only).await {
            Ok(response) => {
                self.last_used = Instant::now();
                Ok(response)
            }
            Err(failure) => {
                self.disconnect();
                let retry = reused && failure.before_response && method_is_idempotent(method);
                if !retry {
                    return Err(failure.error);
                }
                self.open().await?;
                let result = self.exchange_with_timeout(head_only).await;
                self.last_used = Instant::now();
                result.map_err(|failure| {
                    self.disconnect();
                    failure.error
                })
            }
        }
    }

    async fn open(&mut self) -> Result<(), ClientError> {
        assert!(self.stream.is_none());
        let timeout = Duration::from_millis(self.options.connect_timeout_ms);
        let connected = compio::time::timeout(timeout, TcpStream::connect(self.addr.as_str()));
        let stream = match connected.await {
            Err(_elapsed) => {
                return Err(ClientError::Timeout {
                    addr: self.addr.clone(),
                    operation: "connect",
                    timeout_ms: self.options.connect_timeout_ms,
                });
            }
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: self.addr.clone(),
                    source,
                });
            }
            Ok(Ok(stream)) => stream,
        };
        // Requests are small and written whole; Nagle would only add latency.
        stream
            .set_nodelay(true)
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        self.stream = Some(stream);
        self.receive_buffer.clear();
        self.receive_start = 0;
        self.connections_opened += 1;
        self.last_used = Instant::now();
        Ok(())
    }

    /// Whether the idle connection still looks open: no bytes and no end-of-stream pending.
    /// Bytes pending on an idle connection mean the server sent something unasked (or closed),
    /// so the connection is not reused either.
    fn reuse_is_safe(&self) -> bool {
        let Some(stream) = self.stream.as_ref() else {
            return false;
        };
        if self.receive_start < self.receive_buffer.len() {
            return false;
        }
        if self.last_used.elapsed() < Duration::from_millis(IDLE_PEEK_AFTER_MS) {
            return true;
        }
        let mut byte = [0u8; 1];
        // SAFETY: recv(2) into a live 1-byte stack buffer on a socket we own; MSG_DONTWAIT keeps
        // the runtime from blocking and MSG_PEEK leaves any data in the socket.
        let received = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            return error.kind() == io::ErrorKind::WouldBlock;
        }
        false
    }

    /// Checks and writes the request line and headers into `send_buffer`, with `Host` and
    /// `Content-Length` (for `body_len`) unless `headers` has them; the body goes after.
    fn encode_head(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body_len: usize,
    ) -> Result<(), ClientError> {
        let invalid = |reason: String| ClientError::InvalidRequest {
            addr: self.addr.clone(),
            reason,
        };
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            return Err(invalid(format!("method {method:?} is not an HTTP token")));
        }
        if !path_and_query.starts_with('/') || !path_and_query.bytes().all(is_target_byte) {
            return Err(invalid(format!(
                "target {path_and_query:?} must start with '/' and hold no space or control byte"
            )));
        }
        let mut has_host = false;
        let mut has_length = false;
        for &(name, value) in headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(invalid(format!(
                    "header name {name:?} is not an HTTP token"
                )));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(invalid(format!("header {name} holds CR, LF or NUL")));
            }
            has_host |= name.eq_ignore_ascii_case("host");
            has_length |= name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding");
        }
        let out = &mut self.send_buffer;
        out.clear();
        out.reserve(256);
        for part in [method, " ", path_and_query, " HTTP/1.1\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
        if !has_host {
            for part in ["Host: ", self.addr.as_str(), "\r\n"] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        for &(name, value) in headers {
            for part in [name, ": ", value, "\r\n"] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        let method_sends_body = !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS");
        if !has_length && (method_sends_body || body_len > 0) {
            out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    async fn exchange_with_timeout(&mut self, head_only: bool) -> Result<ClientResponse, Failure> {
        let timeout = Duration::from_millis(self.options.request_timeout_ms);
        match compio::time::timeout(timeout, self.exchange(head_only)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Failure {
                // The request may have been acted on; never resend it after a timeout.
                before_response: false,
                error: ClientError::Timeout {
                    addr: self.addr.clone(),
                    operation: "request",
                    timeout_ms: self.options.request_timeout_ms,
                },
            }),
        }
    }

    async fn exchange(&mut self, head_only: bool) -> Result<ClientResponse, Failure> {
        let stream = self
            .stream
            .as_mut()
            .expect("exchange needs an open connection");
        let request = std::mem::take(&mut self.send_buffer);
        let BufResult(sent, request) = stream.write_all(request).await;
        self.send_buffer = request;
        if let Err(source) = sent {
            return Err(Failure {
                before_response: true,
                error: self.io_error("send", source),
            });
        }
        let mut skipped_informational = 0;
        loop {
            let head = self.receive_head().await?;
            if (100..200).contains(&head.status) && head.status != 101 {
                skipped_informational += 1;
                if skipped_informational > INFORMATIONAL_RESPONSES_MAX {
                    return Err(self.malformed("too many informational (1xx) responses"));
                }
                continue;
            }
            return self.receive_body(head, head_only).await;
        }
    }

    /// Receive and parse one response head; the bytes after it stay buffered.
    async fn receive_head(&mut self) -> Result<ResponseHead, Failure> {
        let mut received_any = self.receive_start < self.receive_buffer.len();
        loop {
            let unread = &self.receive_buffer[self.receive_start..];
            if let Some((head, head_len)) = parse_head(unread).map_err(|r| self.malformed(&r))? {
                self.consume(head_len);
                return Ok(head);
            }
            if unread.len() >= RESPONSE_HEAD_BYTES_MAX {
                return Err(self.malformed(&format!(
                    "response head longer than {RESPONSE_HEAD_BYTES_MAX} bytes"
                )));
            }
            let received = self.receive_more().await.map_err(|source| Failure {
                before_response: !received_any,
                error: self.io_error("receive", source),
            })?;
            if received == 0 {
                return Err(Failure {
                    before_response: !received_any,
                    error: self.io_error("receive", eof("connection closed before the response")),
                });
            }
            received_any = true;
        }
    }

    async fn receive_body(
        &mut self,
        head: ResponseHead,
        head_only: bool,
    ) -> Result<ClientResponse, Failure> {
        let no_body = head_only || head.status == 204 || head.status == 304;
        let body = if no_body {
            Bytes::new()
        } else if head.chunked {
            self.receive_chunked().await?
        } else if let Some(length) = head.content_length {
            if length > self.options.body_bytes_max {
                return Err(self.malformed(&format!(
                    "body of {length} bytes is over the limit of {} bytes",
                    self.options.body_bytes_max
                )));
            }
            self.receive_exact(length as usize).await?
        } else {
            self.receive_until_close().await?
        };
        let close_delimited = !no_body && !head.chunked && head.content_length.is_none();
        if !head.keep_alive || close_delimited {
            self.disconnect();
        }
        Ok(ClientResponse {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// The next `length` bytes, from the buffer first and then straight from the socket.
    async fn receive_exact(&mut self, length: usize) -> Result<Bytes, Failure> {
        let buffered = self.receive_buffer.len() - self.receive_start;
        if buffered >= length {
            let start = self.receive_start;
            let body = Bytes::copy_from_slice(&self.receive_buffer[start..start + length]);
            self.consume(length);
            return Ok(body);
        }
        let mut body = Vec::with_capacity(length);
        body.extend_from_slice(&self.receive_buffer[self.receive_start..]);
        self.consume(buffered);
        let stream = self
            .stream
            .as_mut()
            .expect("receive needs an open connection");
        while body.len() < length {
            let filled = body.len();
            let BufResult(received, slice) = stream.read(body.slice(filled..length)).await;
            body = slice.into_inner();
            match received {
                Ok(0) => {
                    let source = eof(&format!(
                        "connection closed after {filled} of {length} body bytes"
                    ));
                    return Err(self.failure_after_head(self.io_error("receive", source)));
                }
                Ok(count) => assert!(body.len() == filled + count),
                Err(source) => {
                    return Err(self.failure_after_head(self.io_error("receive", source)));
                }
            }
        }
        assert!(body.len() == length);
        Ok(Bytes::from(body))
    }

    async fn receive_chunked(&mut self) -> Result<Bytes, Failure> {
        let mut body = Vec::new();
        loop {
            let line = self.receive_line().await?;
            let size = parse_chunk_size(&line).map_err(|r| self.malformed(&r))?;
            if body.len() as u64 + size > self.options.body_bytes_max {
                return Err(self.malformed(&format!(
                    "chunked body over the limit of {} bytes",
                    self.options.body_bytes_max
                )));
            }
            if size == 0 {
                // Trailer fields, up to the empty line; Kelp has no use for them.
                while !self.receive_line().await?.is_empty() {}
                return Ok(Bytes::from(body));
            }
            let chunk = self.receive_exact(size as usize).await?;
            body.extend_from_slice(&chunk);
            if !self.receive_line().await?.is_empty() {
                return Err(self.malformed("chunk data not followed by CRLF"));
            }
        }
    }

    /// One CRLF-terminated line (without the CRLF).
    async fn receive_line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            let unread = &self.receive_buffer[self.receive_start..];
            if let Some(end) = unread.windows(2).position(|pair| pair == b"\r\n") {
                let line = unread[..end].to_vec();
                self.consume(end + 2);
                return Ok(line);
            }
            if unread.len() > CHUNK_LINE_BYTES_MAX {
                return Err(self.malformed("chunk-size line too long"));
            }
            match self.receive_more().await {
                Ok(0) => {
                    let source = eof("connection closed inside a chunked body");
                    return Err(self.failure_after_head(self.io_error("receive", source)));
                }
                Ok(_) => {}
                Err(source) => {
                    return Err(self.failure_after_head(self.io_error("receive", source)));
                }
            }
        }
    }

    async fn receive_until_close(&mut self) -> Result<Bytes, Failure> {
        loop {
            let buffered = (self.receive_buffer.len() - self.receive_start) as u64;
            if buffered > self.options.body_bytes_max {
                return Err(self.malformed(&format!(
                    "body over the limit of {} bytes",
                    self.options.body_bytes_max
                )));
            }
            match self.receive_more().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(source) => {
                    return Err(self.failure_after_head(self.io_error("receive", source)));
                }
            }
        }
        let body = Bytes::copy_from_slice(&self.receive_buffer[self.receive_start..]);
        self.consume(body.len());
        Ok(body)
    }

    /// Append what the socket has to the buffer; `Ok(0)` is end of stream.
    async fn receive_more(&mut self) -> io::Result<usize> {
        if self.receive_start > 0 {
            self.receive_buffer.drain(..self.receive_start);
            self.receive_start = 0;
        }
        self.receive_buffer.reserve(RECEIVE_BYTES);
        let stream = self
            .stream
            .as_mut()
            .expect("receive needs an open connection");
        let buffer = std::mem::take(&mut self.receive_buffer);
        let BufResult(received, buffer) = stream.append(buffer).await;
        self.receive_buffer = buffer;
        received
    }

    fn consume(&mut self, count: usize) {
        assert!(self.receive_start + count <= self.receive_buffer.len());
        self.receive_start += count;
        if self.receive_start == self.receive_buffer.len() {
            self.receive_buffer.clear();
            self.receive_start = 0;
        }
    }

    fn io_error(&self, operation: &'static str, source: io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            operation,
            source,
        }
    }

    fn malformed(&self, reason: &str) -> Failure {
        self.failure_after_head(ClientError::Malformed {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        })
    }

    fn failure_after_head(&self, error: ClientError) -> Failure {
        Failure {
            before_response: false,
            error,
        }
    }
}

/// A failed exchange, and whether it failed before any byte of the response arrived (only then
/// may an idempotent request be resent).
struct Failure {
    before_response: bool,
    error: ClientError,
}

fn eof(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, message.to_string())
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_target_byte(byte: u8) -> bool {
    byte.is_ascii_graphic()
}

#[cfg(test)]
mod tests;
