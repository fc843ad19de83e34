//! A test server on its own thread and a blocking raw-socket client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kelp_net::http::{FileRegion, Handler, HttpLimits, Method, Request, Response};
use kelp_net::runtime::{DriverKind, Shutdown, build_runtime};

mod raw_response;
pub use raw_response::RawResponse;

/// Answers: `/echo` (body echoed, or "METHOD path?query"), `/sleep?ms=N`, `/file?len=N`
/// (bytes 3..3+N of a fixed file), `/status?code=N`, `/peer` (the client's address).
pub struct TestHandler {
    pub file: Arc<std::fs::File>,
}

/// Content of the test file: byte i is (i * 7 + i / 251) as u8, so offsets show.
pub fn file_byte(index: u64) -> u8 {
    (index.wrapping_mul(7).wrapping_add(index / 251)) as u8
}

pub const FILE_BYTES: u64 = 3 << 20;

fn make_file() -> Arc<std::fs::File> {
    let mut file = tempfile::tempfile().unwrap();
    let content: Vec<u8> = (0..FILE_BYTES).map(file_byte).collect();
    file.write_all(&content).unwrap();
    Arc::new(file)
}

fn query_number(request: &Request, key: &str) -> Option<u64> {
    request.query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key).then(|| value.parse().ok())?
    })
}

impl Handler for TestHandler {
    async fn handle(&self, request: Request) -> Response {
        match request.path.as_str() {
            "/echo" if !request.body.is_empty() => Response::new(200).body_bytes(request.body),
            "/echo" => {
                let text = format!("{:?} {}?{}", request.method, request.path, request.query);
                Response::new(200).body_bytes(text)
            }
            "/sleep" => {
                let ms = query_number(&request, "ms").unwrap_or(0);
                compio::time::sleep(Duration::from_millis(ms)).await;
                Response::new(200).body_bytes(format!("slept {ms}"))
            }
            "/file" => {
                let len = query_number(&request, "len").unwrap_or(0);
                Response::new(200).body_file(FileRegion {
                    file: self.file.clone(),
                    offset: 3,
                    len,
                })
            }
            "/big" => {
                let len = query_number(&request, "len").unwrap_or(0);
                Response::new(200).body_bytes(body_file_expected(len))
            }
            "/peer" => Response::new(200).body_bytes(format!("{:?}", request.peer)),
            "/panic" => panic!("test handler asked to panic"),
            "/status" => {
                // Always with a body, also for statuses that must not carry one.
                let code = query_number(&request, "code").unwrap_or(200) as u16;
                Response::error(code, "as asked")
            }
            _ if request.method == Method::Other => Response::error(405, "method"),
            _ => Response::error(404, "no such path"),
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(limits: HttpLimits) -> TestServer {
        TestServer::start_with(limits, default_driver())
    }

    pub fn start_with(limits: HttpLimits, driver: DriverKind) -> TestServer {
        let listener = kelp_net::http::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = build_runtime(driver).unwrap();
            let handler = Rc::new(TestHandler { file: make_file() });
            runtime
                .block_on(kelp_net::http::serve_listener(
                    listener,
                    limits,
                    handler,
                    stop.wait(),
                ))
                .unwrap();
        });
        TestServer {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// A server on two listeners of one core (`serve_listeners`); `addr` is the first, the
    /// second is returned beside it.
    pub fn start_two_listeners(limits: HttpLimits) -> (TestServer, SocketAddr) {
        let bind = || kelp_net::http::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let listeners = vec![bind(), bind()];
        let addr = listeners[0].local_addr().unwrap();
        let second = listeners[1].local_addr().unwrap();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = build_runtime(default_driver()).unwrap();
            let handler = Rc::new(TestHandler { file: make_file() });
            runtime
                .block_on(kelp_net::http::serve_listeners(
                    listeners, limits, handler, stop,
                ))
                .unwrap();
        });
        let server = TestServer {
            addr,
            shutdown,
            thread: Some(thread),
        };
        (server, second)
    }

    /// Waits for the server thread to end (after a shutdown), at most `timeout`.
    pub fn join_within(mut self, timeout: Duration) {
        let thread = self.thread.take().expect("server thread");
        let deadline = std::time::Instant::now() + timeout;
        while !thread.is_finished() {
            assert!(std::time::Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().expect("server thread panicked");
    }

    /// Starts the shutdown without waiting for the server thread.
    pub fn trigger_shutdown(&self) {
        self.shutdown.trigger();
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn default_driver() -> DriverKind {
    if kelp_net::runtime::io_uring_unavailable_reason().is_none() {
        DriverKind::IoUring
    } else {
        DriverKind::Poll
    }
}

/// Reads responses off one connection, keeping bytes that belong to the next one.
pub struct ResponseReader {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl ResponseReader {
    pub fn new(stream: TcpStream) -> Self {
        ResponseReader {
            stream,
            buffer: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        // No EINTR retry on purpose: nothing in this process should interrupt the test thread.
        // (It did once: the io_uring probe ran on the caller's thread, and the probe ring's
        // teardown interrupted the caller's next read. These tests are its regression test.)
        let read = match self.stream.read(&mut chunk) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {
                panic!("client read interrupted (EINTR): {error}")
            }
            other => other.unwrap_or(0),
        };
        self.buffer.extend_from_slice(&chunk[..read]);
        read
    }

    /// The next response; `None` when the server closed the connection first.
    pub fn next(&mut self, head_request: bool) -> Option<RawResponse> {
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buffer).unwrap() {
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
                    .collect::<Vec<(String, String)>>();
                break (parsed.code.unwrap(), headers, len);
            }
            if self.fill() == 0 {
                assert!(
                    self.buffer.is_empty(),
                    "closed mid-response: {:?}",
                    self.buffer
                );
                return None;
            }
        };
        self.buffer.drain(..head_len);
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let length = if head_request || status < 200 {
            0
        } else {
            length
        };
        while self.buffer.len() < length {
            assert!(self.fill() > 0, "closed mid-body");
        }
        let body = self.buffer.drain(..length).collect();
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    pub fn closed(&mut self) -> bool {
        self.buffer.is_empty() && self.fill() == 0
    }
}

pub fn body_file_expected(len: u64) -> Vec<u8> {
    (3..3 + len).map(file_byte).collect()
}

pub fn limits() -> HttpLimits {
    HttpLimits {
        header_bytes_max: 4096,
        body_bytes_max: 1 << 20,
        connections_max: 64,
        header_timeout_ms: 2_000,
        idle_timeout_ms: 5_000,
        zero_copy_min_bytes: 64 * 1024,
        send_zc_min_bytes: u64::MAX,
    }
}
