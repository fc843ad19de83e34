//! The master's connections as hyper sees them: bytes reach hyper only once `kelp_net`'s
//! request parser (the volume server's, fuzzed) has accepted them, so a malformed request
//! is answered here with its status and a JSON error, as the volume server answers it.
//! hyper alone closes such a connection without a word.
//!
//! A request head is held until it is whole and checked; a Content-Length body then passes
//! as it arrives; a chunked request is held until its last chunk is checked (hyper would
//! otherwise see half of a request whose end turns out malformed). Once a request is
//! refused, hyper gets the end of the stream after the requests before it, answers those,
//! and [`CheckedStream::finish`] then sends the refusal and closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kelp_net::http::parse::{Event, ParseError, ParseLimits, RequestReader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::limits::{
    REFUSAL_LINGER_BYTES_MAX, REFUSAL_LINGER_MS_MAX, REFUSAL_WRITE_TIMEOUT_MS,
    REQUEST_BODY_BYTES_MAX, REQUEST_HEAD_BYTES_MAX,
};

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Raw bytes one held request may take: its head plus its body, chunk framing included.
const HELD_BYTES_MAX: usize = REQUEST_HEAD_BYTES_MAX + 2 * REQUEST_BODY_BYTES_MAX;

/// A request this stream refused: the answer [`CheckedStream::finish`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: u16,
    message: String,
}

impl From<ParseError> for Refusal {
    fn from(error: ParseError) -> Self {
        Refusal {
            status: error.status(),
            message: error.to_string(),
        }
    }
}

pub struct CheckedStream {
    stream: TcpStream,
    checker: RequestChecker,
}

impl CheckedStream {
    pub fn new(stream: TcpStream) -> CheckedStream {
        CheckedStream {
            stream,
            checker: RequestChecker::new(),
        }
    }

    /// After hyper is done with the connection: sends the refusal, if a request was refused,
    /// then closes (draining what the client still sends for a moment, so that its unread
    /// bytes do not make the kernel reset the connection before the answer is read).
    pub async fn finish(mut self) {
        let Some(refusal) = self.checker.refusal.take() else {
            let _ = self.stream.shutdown().await;
            return;
        };
        let answer = encode_refusal(&refusal);
        let write = self.stream.write_all(&answer);
        let timeout = Duration::from_millis(REFUSAL_WRITE_TIMEOUT_MS);
        if !matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(()))) {
            return;
        }
        let _ = self.stream.shutdown().await;
        let linger = Duration::from_millis(REFUSAL_LINGER_MS_MAX);
        let drain = async {
            let mut drained = 0;
            let mut buffer = vec![0u8; READ_CHUNK_BYTES];
            while drained < REFUSAL_LINGER_BYTES_MAX {
                match self.stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        };
        let _ = tokio::time::timeout(linger, drain).await;
    }
}

/// `{"error": message}` with `Connection: close`, as the volume server refuses.
fn encode_refusal(refusal: &Refusal) -> Vec<u8> {
    let body = serde_json::json!({ "error": refusal.message }).to_string();
    let reason = hyper::StatusCode::from_u16(refusal.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ndate: {date}\r\n\r\n",
        refusal.status,
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

impl AsyncRead for CheckedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.checker.take_released(buf) || this.checker.is_done() {
                // Checked bytes, or the end of the stream (hyper then finishes its answers).
                return Poll::Ready(Ok(()));
            }
            let start = this.checker.pending.len();
            this.checker.pending.reserve(READ_CHUNK_BYTES);
            let mut fresh = ReadBuf::uninit(this.checker.pending.spare_capacity_mut());
            let polled = Pin::new(&mut this.stream).poll_read(context, &mut fresh);
            let received = fresh.filled().len();
            // SAFETY: the read wrote (initialized) the `received` bytes ReadBuf counts as
            // filled, at the start of the spare capacity, right after the `start` bytes.
            unsafe { this.checker.pending.set_len(start + received) };
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => this.checker.received(start),
            }
        }
    }
}

impl AsyncWrite for CheckedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// The check itself, without I/O: bytes in, released bytes and at most one refusal out.
struct RequestChecker {
    /// Bytes received and not yet taken by hyper: the first `released` are checked, the
    /// rest belong to the request being checked.
    pending: BytesMut,
    released: usize,
    /// The volume server's parser, run over the same bytes; its requests are dropped.
    parser: RequestReader,
    /// Body bytes of a Content-Length request whose head was checked: they pass as is.
    passing_body_bytes: u64,
    refusal: Option<Refusal>,
    peer_closed: bool,
}

impl RequestChecker {
    fn new() -> RequestChecker {
        RequestChecker {
            pending: BytesMut::new(),
            released: 0,
            parser: RequestReader::new(parse_limits()),
            passing_body_bytes: 0,
            refusal: None,
            peer_closed: false,
        }
    }

    /// Copies released bytes into `buf`; false when none are released.
    fn take_released(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let count = self.released.min(buf.remaining());
        if count == 0 {
            return false;
        }
        buf.put_slice(&self.pending[..count]);
        self.pending.advance(count);
        self.released -= count;
        true
    }

    /// No more bytes will be released: a request was refused, or the client closed.
    fn is_done(&self) -> bool {
        self.released == 0 && (self.refusal.is_some() || self.peer_closed)
    }

    /// Bytes from `start` on were just appended to `pending` (none: the client closed).
    fn received(&mut self, start: usize) {
        if start == self.pending.len() {
            self.peer_closed = true;
            return;
        }
        let passing = (self.pending.len() - start).min(self.passing_body_bytes as usize);
        self.passing_body_bytes -= passing as u64;
        let unchecked = start + passing;
        if passing > 0 {
            self.released = unchecked;
        }
        if unchecked == self.pending.len() {
            return;
        }
        if self.pending.len() - self.released > HELD_BYTES_MAX {
            self.refusal = Some(Refusal {
                status: 413,
                message: format!("request over {HELD_BYTES_MAX} bytes"),
            });
            return;
        }
        self.parser.feed(&self.pending[unchecked..]);
        self.advance();
    }

    /// Runs the parser over what it has; releases what it accepted.
    fn advance(&mut self) {
        loop {
            let head_start = self.released;
            let event = match self.parser.next_event() {
                Ok(event) => event,
                Err(error) => return self.refuse(Refusal::from(error)),
            };
            let whole_request = matches!(event, Event::Request(..));
            let body_missing = self.parser.body_bytes_missing();
            if !whole_request && body_missing.is_none() {
                return; // a head, or a chunked request, not whole yet
            }
            if let Err(refusal) = check_as_hyper(&self.pending[head_start..], &event) {
                return self.refuse(refusal);
            }
            if let Some(missing) = body_missing.filter(|_| !whole_request) {
                // A checked head whose Content-Length body is arriving: everything held is
                // that body's, and the rest of it passes without the parser.
                self.released = self.pending.len();
                self.passing_body_bytes = missing;
                self.parser = RequestReader::new(parse_limits());
                return;
            }
            self.released = self.pending.len() - self.parser.buffered_bytes();
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.refusal = Some(refusal);
    }
}

fn parse_limits() -> ParseLimits {
    ParseLimits {
        header_bytes_max: REQUEST_HEAD_BYTES_MAX,
        body_bytes_max: REQUEST_BODY_BYTES_MAX as u64,
    }
}

/// What hyper refuses beyond the volume server's parser (it would close without a word): a
/// request target that is not a URI, and Transfer-Encoding in an HTTP/1.0 request.
fn check_as_hyper(head: &[u8], event: &Event) -> Result<(), Refusal> {
    let malformed = |what: &str| Refusal {
        status: 400,
        message: format!("malformed request: {what}"),
    };
    let line_start = head.iter().position(|&b| b != b'\r' && b != b'\n');
    let line = &head[line_start.unwrap_or(head.len())..];
    let line = &line[..line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len())];
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    if hyper::Uri::try_from(target).is_err() {
        return Err(malformed("invalid request target"));
    }
    if let Event::Request(request, meta) = event
        && meta.version_minor == 0
        && request.headers.get_bytes("transfer-encoding").is_some()
    {
        return Err(malformed("Transfer-Encoding in an HTTP/1.0 request"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
