//! The per-core HTTP/1.1 server: a SO_REUSEPORT listener per core, one task per connection,
//! keep-alive, pipelining (answers in order, gathered into one send), chunked bodies,
//! `Expect: 100-continue`, and limits so a slow or hostile client costs one connection slot.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::StreamExt;

use super::parse::{Event, ParseError, ParseLimits, RequestMeta, RequestReader};
use super::send_file::{self, SplicePipe};
use super::send_zc;
use super::{Handler, Method, Response, wire};
use crate::limits::{
    BODY_BYTES_MAX_DEFAULT, CONNECTIONS_MAX_DEFAULT, HEADER_BYTES_MAX_DEFAULT,
    HEADER_TIMEOUT_MS_DEFAULT, IDLE_BUFFER_BYTES_MAX, IDLE_TIMEOUT_MS_DEFAULT, LINGER_BYTES_MAX,
    LINGER_MS_MAX, LISTEN_BACKLOG_MAX, PIPELINE_BATCH_BYTES_MAX, READ_CHUNK_BYTES,
    SEND_ZC_MIN_BYTES_DEFAULT, SHUTDOWN_DRAIN_MS_MAX, ZERO_COPY_MIN_BYTES_DEFAULT,
};
use crate::runtime::{Either, Shutdown, select2};

/// Limits of one `serve*` call on one core: `connections_max` counts the connections of the
/// listeners that call serves (one, or all of them for [`serve_listeners`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line plus headers; more gets 431.
    pub header_bytes_max: usize,
    /// Request body (declared or decoded); more gets 413.
    pub body_bytes_max: u64,
    /// Open connections of the call's listeners on this core; one more is answered 503 and
    /// closed.
    pub connections_max: usize,
    /// Time from the first byte of a request head to its end; then 408 and close.
    pub header_timeout_ms: u64,
    /// Time a connection may wait for the next request, or between reads of a body.
    pub idle_timeout_ms: u64,
    /// `Body::File` regions of at least this many bytes are spliced (zero-copy).
    pub zero_copy_min_bytes: u64,
    /// `Body::Bytes` bodies of at least this many bytes go out with SEND_ZC (io_uring only).
    pub send_zc_min_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            header_timeout_ms: HEADER_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            zero_copy_min_bytes: ZERO_COPY_MIN_BYTES_DEFAULT,
            send_zc_min_bytes: SEND_ZC_MIN_BYTES_DEFAULT,
        }
    }
}

impl HttpLimits {
    fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            header_bytes_max: self.header_bytes_max,
            body_bytes_max: self.body_bytes_max,
        }
    }

    fn assert_valid(&self) {
        assert!(self.header_bytes_max >= 64, "header_bytes_max too small");
        assert!(self.connections_max > 0, "connections_max must be > 0");
        assert!(self.header_timeout_ms > 0 && self.idle_timeout_ms > 0);
    }
}

/// A TCP listener with SO_REUSEADDR and SO_REUSEPORT, so every core can bind the same address
/// and the kernel spreads connections across cores.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    // Every step's error names the address: a start-up failure must say which port it was.
    listen_reuseport(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("listen on {addr}: {error}")))
}

fn listen_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the fd is owned by `OwnedFd` right after.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor nobody else owns.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set_socket_flag(fd, libc::SO_REUSEADDR)?;
    set_socket_flag(fd, libc::SO_REUSEPORT)?;
    let (storage, length) = socket_addr_to_c(addr);
    // SAFETY: `storage` holds a sockaddr of `length` bytes matching `family`.
    let bound = unsafe { libc::bind(fd, (&raw const storage).cast(), length) };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen(2) on the socket bound above.
    if unsafe { libc::listen(fd, LISTEN_BACKLOG_MAX) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(std::net::TcpListener::from(owned))
}

fn set_socket_flag(fd: i32, option: i32) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int option value of the right size.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn socket_addr_to_c(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match addr {
        SocketAddr::V4(v4) => {
            let c = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), c) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let c = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), c) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

/// Binds `addr` with SO_REUSEPORT on this core and serves it forever.
pub async fn serve<H: Handler>(
    addr: SocketAddr,
    limits: HttpLimits,
    handler: Rc<H>,
) -> io::Result<()> {
    serve_until(addr, limits, handler, std::future::pending()).await
}

/// Binds `addr` with SO_REUSEPORT on this core and serves until `shutdown` completes.
pub async fn serve_until<H: Handler>(
    addr: SocketAddr,
    limits: HttpLimits,
    handler: Rc<H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let listener = bind_reuseport(addr)?;
    serve_listener(listener, limits, handler, shutdown).await
}

/// Serves an already bound listener (e.g. from [`bind_reuseport`] on port 0) until `shutdown`
/// completes; then stops accepting, lets requests in progress finish (their answers close the
/// connection; at most `SHUTDOWN_DRAIN_MS_MAX`) and returns. Idle keep-alive connections end
/// when the core's runtime does.
pub async fn serve_listener<H: Handler>(
    listener: std::net::TcpListener,
    limits: HttpLimits,
    handler: Rc<H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    limits.assert_valid();
    let connections = Rc::new(CoreConnections::default());
    let served = accept_until(listener, limits, handler, &connections, shutdown).await;
    drain(&connections).await;
    served
}

/// [`serve_listener`] for several listeners of one core (a port shared by every core and the
/// core's own port): `connections_max` counts their connections together, and all stop and
/// drain on `shutdown`. Returns the first listener's error, after the others stopped too.
pub async fn serve_listeners<H: Handler>(
    listeners: Vec<std::net::TcpListener>,
    limits: HttpLimits,
    handler: Rc<H>,
    shutdown: Shutdown,
) -> io::Result<()> {
    limits.assert_valid();
    let connections = Rc::new(CoreConnections::default());
    // One listener failing ends them all: each loop also stops on `stop`.
    let stop = Shutdown::new();
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let (handler, connections) = (handler.clone(), connections.clone());
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            compio::runtime::spawn(async move {
                let until = select2(shutdown.wait(), stop.wait());
                let served = accept_until(listener, limits, handler, &connections, until).await;
                stop.trigger();
                served
            })
        })
        .collect();
    let mut first = Ok(());
    for accept_loop in loops {
        let served = accept_loop
            .await
            .unwrap_or_else(|_| Err(io::Error::other("accept loop panicked")));
        first = first.and(served);
    }
    drain(&connections).await;
    first
}

/// Accepts connections on `listener` and serves each in its own task until `shutdown`
/// completes, counting them in `connections`.
async fn accept_until<H: Handler>(
    listener: std::net::TcpListener,
    limits: HttpLimits,
    handler: Rc<H>,
    connections: &Rc<CoreConnections>,
    shutdown: impl Future,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let mut shutdown = std::pin::pin!(shutdown);
    // Multishot accept on io_uring: one submission yields connections until it is cancelled.
    let mut incoming = listener.incoming();
    loop {
        let accepted = match select2(incoming.next(), shutdown.as_mut()).await {
            Either::Left(Some(accepted)) => accepted,
            Either::Left(None) => return Ok(()),
            Either::Right(_) => return Ok(()),
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) if is_transient_accept_error(&error) => {
                tracing::warn!("accept failed, continuing: {error}");
                compio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let slot = ConnectionSlot::take(connections, limits.connections_max);
        let handler = handler.clone();
        compio::runtime::spawn(async move {
            match slot {
                Some(slot) => serve_connection(stream, limits, handler, slot).await,
                None => refuse_connection(stream, limits.connections_max).await,
            }
        })
        .detach();
    }
}

/// After shutdown: lets requests in progress finish (bounded by `SHUTDOWN_DRAIN_MS_MAX`);
/// idle keep-alive connections are not waited for.
async fn drain(connections: &CoreConnections) {
    connections.draining.set(true);
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX);
    while connections.busy.get() > 0 && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    if connections.busy.get() > 0 {
        let busy = connections.busy.get();
        tracing::warn!("shutdown: {busy} requests still in progress after the drain time");
    }
}

/// Out of file descriptors or a connection reset while queued: the listener still works.
fn is_transient_accept_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
    ) || error.kind() == io::ErrorKind::ConnectionAborted
}

/// This core's connections: how many are open, how many are inside a request, and whether the
/// listener is draining (shutting down: finish requests in progress, start no new ones).
#[derive(Default)]
struct CoreConnections {
    open: Cell<usize>,
    busy: Cell<usize>,
    draining: Cell<bool>,
}

/// One counted connection; the counts drop when this does.
struct ConnectionSlot {
    connections: Rc<CoreConnections>,
    busy: Cell<bool>,
}

impl ConnectionSlot {
    fn take(connections: &Rc<CoreConnections>, connections_max: usize) -> Option<Self> {
        let open = connections.open.get();
        assert!(open <= connections_max);
        if open == connections_max {
            return None;
        }
        connections.open.set(open + 1);
        Some(ConnectionSlot {
            connections: connections.clone(),
            busy: Cell::new(false),
        })
    }

    /// Marks the connection as inside a request (bytes of it received) or idle.
    fn set_busy(&self, busy: bool) {
        if self.busy.replace(busy) == busy {
            return;
        }
        let count = self.connections.busy.get();
        self.connections
            .busy
            .set(if busy { count + 1 } else { count - 1 });
    }

    fn draining(&self) -> bool {
        self.connections.draining.get()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.set_busy(false);
        let open = self.connections.open.get();
        assert!(open > 0);
        self.connections.open.set(open - 1);
    }
}

async fn refuse_connection(stream: TcpStream, connections_max: usize) {
    let message = format!("server busy: {connections_max} connections open on this core");
    let response = Response::error(503, &message);
    let parse_limits = ParseLimits {
        header_bytes_max: 64,
        body_bytes_max: 0,
    };
    let mut connection = Connection::new(stream, parse_limits, REFUSAL_WRITE_TIMEOUT);
    let _ = connection.send_final(response).await;
}

/// Runs `future`, turning a panic inside it into `Err(message)` so one bad request costs its
/// connection a 500 answer instead of the connection vanishing without a word.
async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|context| {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            future.as_mut().poll(context)
        }));
        match polled {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic".to_string());
                std::task::Poll::Ready(Err(message))
            }
        }
    })
    .await
}

/// A refused connection gets this long to take its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Why a connection stopped; logged at debug level only (clients hang up all the time).
#[derive(Debug)]
enum Close {
    Done,
    Io(io::Error),
}

impl From<io::Error> for Close {
    fn from(error: io::Error) -> Self {
        Close::Io(error)
    }
}

struct Connection {
    stream: TcpStream,
    reader: RequestReader,
    /// Responses not yet sent (gathered while pipelined requests are waiting).
    outgoing: Vec<u8>,
    /// Splice needs io_uring: the poll driver cannot wait on a regular file.
    splice_allowed: bool,
    pipe: Option<SplicePipe>,
    /// Longest wait for the client to take bytes of a response.
    write_timeout: Duration,
    /// `None` for a connection refused at the limit (it is not counted).
    slot: Option<ConnectionSlot>,
    /// The client's address, given to every request of the connection.
    peer: Option<SocketAddr>,
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    limits: HttpLimits,
    handler: Rc<H>,
    slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    let write_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let peer = stream.peer_addr().ok();
    let mut connection = Connection::new(stream, limits.parse_limits(), write_timeout);
    connection.slot = Some(slot);
    connection.peer = peer;
    let close = connection.run(&limits, &*handler).await;
    if let Close::Io(error) = close {
        tracing::debug!("connection closed: {error}");
    }
}

impl Connection {
    fn new(stream: TcpStream, parse_limits: ParseLimits, write_timeout: Duration) -> Self {
        Connection {
            write_timeout,
            slot: None,
            peer: None,
            stream,
            reader: RequestReader::new(parse_limits),
            outgoing: Vec::with_capacity(1024),
            splice_allowed: compio::runtime::Runtime::with_current(|runtime| {
                runtime.driver_type().is_iouring()
            }),
            pipe: None,
        }
    }

    async fn run<H: Handler>(&mut self, limits: &HttpLimits, handler: &H) -> Close {
        let mut head_started: Option<Instant> = None;
        loop {
            let event = match self.reader.next_event() {
                Ok(event) => event,
                Err(error) => return self.refuse(&error).await,
            };
            let result = match event {
                Event::Request(mut request, meta) => {
                    head_started = None;
                    request.peer = self.peer;
                    self.answer(limits, handler, request, meta).await
                }
                Event::SendContinue => self.send_continue().await,
                Event::NeedMore => self.receive(limits, &mut head_started).await,
            };
            match result {
                Ok(true) => continue,
                Ok(false) => return Close::Done,
                Err(close) => return close,
            }
        }
    }

    /// Calls the handler and queues (or sends) its response. False when the connection ends.
    async fn answer<H: Handler>(
        &mut self,
        limits: &HttpLimits,
        handler: &H,
        request: super::Request,
        meta: RequestMeta,
    ) -> Result<bool, Close> {
        let is_head = request.method == Method::Head;
        let (response, panicked) = match catch_panic(handler.handle(request)).await {
            Ok(response) => (response, false),
            Err(message) => {
                tracing::error!("handler panicked: {message}");
                let text = format!("internal error: the handler panicked: {message}");
                (Response::error(500, &text), true)
            }
        };
        // After a panic the handler's state is suspect for this connection: close it. While
        // draining for shutdown, every answer is the connection's last.
        let draining = self.slot.as_ref().is_some_and(ConnectionSlot::draining);
        let keep_alive = meta.keep_alive && !panicked && !draining && !wire::wants_close(&response);
        wire::encode_head(&mut self.outgoing, &response, keep_alive);
        // HEAD gets the GET's head only; 1xx/204/304 never carry a body, whatever was given.
        if !is_head && wire::status_allows_body(response.status) {
            self.queue_body(limits, response.body).await?;
        }
        let more_buffered = self.reader.buffered_bytes() > 0;
        if !keep_alive || !more_buffered || self.outgoing.len() >= PIPELINE_BATCH_BYTES_MAX {
            self.flush().await?;
        }
        if !keep_alive {
            self.linger().await?;
        }
        Ok(keep_alive)
    }

    async fn queue_body(&mut self, limits: &HttpLimits, body: super::Body) -> Result<(), Close> {
        match body {
            super::Body::Empty => Ok(()),
            super::Body::Bytes(bytes) if bytes.len() <= PIPELINE_BATCH_BYTES_MAX => {
                self.outgoing.extend_from_slice(&bytes);
                Ok(())
            }
            super::Body::Bytes(bytes)
                if self.splice_allowed && bytes.len() as u64 >= limits.send_zc_min_bytes =>
            {
                self.flush().await?;
                let timeout = self.write_timeout;
                send_zc::send_zero_copy(&mut self.stream, bytes, timeout)
                    .await
                    .map_err(Close::Io)
            }
            super::Body::Bytes(bytes) => {
                // Large bodies go out with the queued heads in one writev, without a copy.
                let queued = std::mem::replace(&mut self.outgoing, Vec::with_capacity(1024));
                let head = bytes::Bytes::from(queued);
                let write = self.stream.write_vectored_all([head, bytes]);
                let BufResult(result, _) = send_file::timed(self.write_timeout, write).await?;
                result?;
                Ok(())
            }
            super::Body::File(region) => {
                let zero_copy = self.splice_allowed && region.len >= limits.zero_copy_min_bytes;
                let pipe = zero_copy.then_some(&mut self.pipe);
                let timeout = self.write_timeout;
                let outgoing = &mut self.outgoing;
                send_file::send_region(&mut self.stream, outgoing, region, pipe, timeout)
                    .await
                    .map_err(Close::Io)
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let outgoing = std::mem::take(&mut self.outgoing);
        let write = self.stream.write_all(outgoing);
        let BufResult(result, mut outgoing) = send_file::timed(self.write_timeout, write).await?;
        outgoing.clear();
        self.outgoing = outgoing;
        result
    }

    async fn send_continue(&mut self) -> Result<bool, Close> {
        self.flush().await?;
        let write = self.stream.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
        let BufResult(result, _) = send_file::timed(self.write_timeout, write).await?;
        result?;
        Ok(true)
    }

    /// Reads more bytes under the right deadline. False when the peer closed or timed out.
    async fn receive(
        &mut self,
        limits: &HttpLimits,
        head_started: &mut Option<Instant>,
    ) -> Result<bool, Close> {
        self.flush().await?;
        let in_request = self.reader.in_request();
        let reading_head = in_request && !self.reader.reading_body();
        let wait = if reading_head {
            let started = *head_started.get_or_insert_with(Instant::now);
            let deadline = started + Duration::from_millis(limits.header_timeout_ms);
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(limits.idle_timeout_ms)
        };
        let spare = match self.reader.body_bytes_missing() {
            Some(missing) => (missing as usize).clamp(READ_CHUNK_BYTES, 1 << 20),
            None => READ_CHUNK_BYTES,
        };
        if !in_request {
            self.reader.release_idle_buffer(IDLE_BUFFER_BYTES_MAX);
            if let Some(slot) = &self.slot {
                slot.set_busy(false);
                if slot.draining() {
                    return Ok(false);
                }
            }
        }
        let buffer = self.reader.take_buffer(spare);
        let read = compio::time::timeout(wait, self.stream.append(buffer)).await;
        let BufResult(result, buffer) = match read {
            Ok(read) => read,
            Err(_elapsed) if in_request => {
                self.reader.restore_buffer(bytes::BytesMut::new());
                let response = Response::error(408, "timed out waiting for the request");
                return self.send_final(response).await.map(|()| false);
            }
            Err(_elapsed) => return Ok(false),
        };
        self.reader.restore_buffer(buffer);
        let received = result?;
        if received == 0 {
            return Ok(false);
        }
        if let Some(slot) = &self.slot {
            slot.set_busy(true);
        }
        if head_started.is_none() && !self.reader.reading_body() {
            *head_started = Some(Instant::now());
        }
        Ok(true)
    }

    async fn refuse(&mut self, error: &ParseError) -> Close {
        let response = Response::error(error.status(), &error.to_string());
        match self.send_final(response).await {
            Ok(()) => Close::Done,
            Err(close) => close,
        }
    }

    /// Sends a last response with `Connection: close`, then closes gracefully: shut down our
    /// side and drain what the client still sends for a bounded time, so the kernel does not
    /// answer unread bytes with a reset that would destroy the response before it is read.
    async fn send_final(&mut self, response: Response) -> Result<(), Close> {
        wire::encode_head(&mut self.outgoing, &response, false);
        if let super::Body::Bytes(bytes) = &response.body {
            self.outgoing.extend_from_slice(bytes);
        }
        self.flush().await?;
        self.linger().await
    }

    /// Shuts our side down and reads what the client still sends (bounded in bytes and
    /// time), so that unread request bytes do not make the kernel reset the connection and
    /// destroy a response the client has not read yet.
    async fn linger(&mut self) -> Result<(), Close> {
        self.stream.shutdown().await?;
        let deadline = Instant::now() + Duration::from_millis(LINGER_MS_MAX);
        let mut drained = 0usize;
        let mut buffer = Vec::with_capacity(READ_CHUNK_BYTES);
        while drained < LINGER_BYTES_MAX {
            let wait = deadline.saturating_duration_since(Instant::now());
            buffer.clear();
            let read = compio::time::timeout(wait, self.stream.read(buffer)).await;
            let Ok(BufResult(Ok(received), returned)) = read else {
                break;
            };
            if received == 0 {
                break;
            }
            drained += received;
            buffer = returned;
        }
        Ok(())
    }
}
