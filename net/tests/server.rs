//! The HTTP/1.1 server over real sockets on 127.0.0.1 with a test handler.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kelp_net::runtime::DriverKind;
use support::{ResponseReader, TestServer, body_file_expected, limits};

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// A server with the default limits and one client connection to it.
fn start_and_connect() -> (TestServer, ResponseReader) {
    let server = TestServer::start(limits());
    let client = ResponseReader::new(server.connect());
    (server, client)
}

/// A new connection to `server` gets a request answered with 200.
fn assert_new_connection_served(server: &TestServer) {
    let mut fresh = ResponseReader::new(server.connect());
    fresh.send(&get("/echo"));
    assert_eq!(fresh.next(false).unwrap().status, 200);
}

/// Two connections, each with a request answered with 200; both stay open.
fn both_served(first: TcpStream, second: TcpStream) -> (ResponseReader, ResponseReader) {
    let (mut first, mut second) = (ResponseReader::new(first), ResponseReader::new(second));
    first.send(&get("/echo"));
    second.send(&get("/echo"));
    assert_eq!(first.next(false).unwrap().status, 200);
    assert_eq!(second.next(false).unwrap().status, 200);
    (first, second)
}

/// `body` is the first `len` bytes of the test file's region, byte for byte.
fn assert_body_exact(body: &[u8], len: u64) {
    assert_eq!(body.len() as u64, len);
    assert!(body == body_file_expected(len), "len {len} differs");
}

// Proves several requests are answered on one kept-alive connection.
#[test]
fn keep_alive_serves_many_requests() {
    let (_server, mut client) = start_and_connect();
    for i in 0..5 {
        client.send(&get(&format!("/echo?i={i}")));
        let response = client.next(false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), format!("Get /echo?i={i}"));
        assert_eq!(response.header("connection"), Some("keep-alive"));
        assert!(response.header("date").is_some());
    }
}

// Proves pipelined requests sent in one write are answered in order, even when the first is
// the slowest.
#[test]
fn pipelined_requests_answered_in_order() {
    let (_server, mut client) = start_and_connect();
    let mut batch = get("/sleep?ms=150");
    batch.extend(get("/echo?n=2"));
    batch.extend(b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    batch.extend(get("/echo?n=4"));
    client.send(&batch);
    let texts: Vec<String> = (0..4).map(|_| client.next(false).unwrap().text()).collect();
    assert_eq!(
        texts,
        ["slept 150", "Get /echo?n=2", "abc", "Get /echo?n=4"]
    );
}

// Proves every request of a connection carries the client's address (what the socket
// reports), so handlers can decide by it.
#[test]
fn requests_carry_the_peer_address() {
    let (_server, mut client) = start_and_connect();
    let local = client.stream.local_addr().unwrap();
    for _ in 0..2 {
        client.send(&get("/peer"));
        assert_eq!(client.next(false).unwrap().text(), format!("Some({local})"));
    }
}

// Proves a chunked request body reaches the handler decoded.
#[test]
fn chunked_body_is_decoded() {
    let (_server, mut client) = start_and_connect();
    client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nkelp\r\n");
    std::thread::sleep(Duration::from_millis(50));
    client.send(b"6\r\n store\r\n0\r\n\r\n");
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "kelp store");
}

// Proves `Expect: 100-continue` gets `100 Continue` before the body is sent, then the answer.
#[test]
fn expect_continue_then_body() {
    let (_server, mut client) = start_and_connect();
    let body = vec![b'x'; 2000];
    client.send(b"PUT /echo HTTP/1.1\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n");
    let interim = client.next(false).unwrap();
    assert_eq!(interim.status, 100);
    client.send(&body);
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, body);
}

// Proves a body over the limit announced with 100-continue gets 413 at once, no 100.
#[test]
fn expect_continue_over_limit_gets_413() {
    let (_server, mut client) = start_and_connect();
    client.send(b"PUT /echo HTTP/1.1\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n");
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 413);
    assert!(response.text().contains("\"error\""), "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed());
}

// Proves a malformed request gets 400 with a JSON error and the connection closes, while a new
// connection is served normally.
#[test]
fn malformed_request_400_then_new_connection_works() {
    let (server, mut client) = start_and_connect();
    client.send(b"GET /echo HTTP/1.1\r\nBad Header\r\n\r\n");
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(
        response.text().starts_with("{\"error\":"),
        "{}",
        response.text()
    );
    assert!(client.closed());

    assert_new_connection_served(&server);
}

// Proves a good request before a bad one on the same connection is answered, the bad one gets
// 400, and the connection then closes: a good request after it is NOT answered (the server
// cannot know where it starts).
#[test]
fn good_then_bad_then_good_on_one_connection() {
    let (_server, mut client) = start_and_connect();
    let mut batch = get("/echo?first");
    batch.extend(b"NOT-HTTP\r\n\r\n");
    batch.extend(get("/echo?third"));
    client.send(&batch);
    assert_eq!(client.next(false).unwrap().status, 200);
    assert_eq!(client.next(false).unwrap().status, 400);
    assert!(client.next(false).is_none());
}

// Proves request heads over the header limit get 431.
#[test]
fn header_too_large_431() {
    let (_server, mut client) = start_and_connect();
    let big = format!("GET /echo HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
    client.send(big.as_bytes());
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 431);
    assert!(client.closed());
}

// Proves a body over the limit gets 413 (declared length and chunked alike), read by the client
// although it was still sending.
#[test]
fn body_over_limit_413() {
    let (server, mut client) = start_and_connect();
    client.send(b"POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n");
    let _ = client.stream.write_all(&vec![b'y'; 100_000]);
    assert_eq!(client.next(false).unwrap().status, 413);

    let mut client = ResponseReader::new(server.connect());
    client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 600_000, "z".repeat(600_000));
    let _ = client.stream.write_all(chunk.as_bytes());
    let _ = client.stream.write_all(chunk.as_bytes());
    assert_eq!(client.next(false).unwrap().status, 413);
}

// Proves a client sending one byte per 100 ms does not delay another client's requests.
#[test]
fn slow_client_does_not_block_others() {
    let server = TestServer::start(limits());
    let slow_addr = server.addr;
    let slow = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(slow_addr).unwrap();
        for byte in b"GET /echo?slow HTTP/1.1\r\n".iter() {
            stream.write_all(&[*byte]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut fast = ResponseReader::new(server.connect());
    for _ in 0..20 {
        fast.send(&get("/echo?fast"));
        assert_eq!(fast.next(false).unwrap().text(), "Get /echo?fast");
    }
    // The slow client is still mid-head: the fast one finished while it trickled.
    assert!(!slow.is_finished());
    slow.join().unwrap();
}

// Proves an idle connection is closed after the idle timeout, and a head sent too slowly gets
// 408 after the header timeout.
#[test]
fn idle_and_header_timeouts_close() {
    let mut short = limits();
    short.idle_timeout_ms = 300;
    short.header_timeout_ms = 300;
    let server = TestServer::start(short);
    let mut idle = ResponseReader::new(server.connect());
    let started = Instant::now();
    assert!(idle.closed());
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut partial = ResponseReader::new(server.connect());
    partial.send(b"GET /echo HTTP/1.1\r\nHost:");
    let response = partial.next(false).unwrap();
    assert_eq!(response.status, 408);
    assert!(partial.closed());
}

// Proves HEAD answers with the GET's headers (Content-Length of the body) and no body bytes:
// the next response on the connection starts right after the head.
#[test]
fn head_has_length_but_no_body() {
    let (_server, mut client) = start_and_connect();
    client.send(b"HEAD /file?len=1234 HTTP/1.1\r\n\r\n");
    let head = client.next(true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1234"));
    client.send(&get("/echo?after"));
    assert_eq!(client.next(false).unwrap().text(), "Get /echo?after");
}

// Proves `Body::File` regions arrive byte-exact below and above the zero-copy threshold.
#[test]
fn file_regions_byte_exact() {
    let (_server, mut client) = start_and_connect();
    for len in [0u64, 1, 1000, 64 * 1024 - 1, 64 * 1024, 300_000, 2 << 20] {
        client.send(&get(&format!("/file?len={len}")));
        let response = client.next(false).unwrap();
        assert_eq!(response.status, 200);
        assert_body_exact(&response.body, len);
    }
}

// Proves HTTP/1.0 requests get `Connection: close` and the connection closes after the answer.
#[test]
fn http10_closes() {
    let (server, mut client) = start_and_connect();
    client.send(b"GET /echo HTTP/1.0\r\n\r\n");
    let response = client.next(false).unwrap();
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed());

    let mut client = ResponseReader::new(server.connect());
    client.send(b"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(client.next(false).unwrap().status, 200);
    assert!(client.closed());
}

// Proves connections past `connections_max` get 503 and a JSON error, and a slot frees up
// when a connection closes.
#[test]
fn connections_max_refuses_with_503() {
    let mut two = limits();
    two.connections_max = 2;
    let server = TestServer::start(two);
    let (first, _second) = both_served(server.connect(), server.connect());
    let mut third = ResponseReader::new(server.connect());
    let refused = third.next(false).unwrap();
    assert_eq!(refused.status, 503);
    assert!(refused.text().contains("connections"), "{}", refused.text());
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = ResponseReader::new(server.connect());
        again.send(&get("/echo"));
        if again.next(false).unwrap().status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Proves `serve_listeners` counts the connections of all its listeners against one
// `connections_max` (one core's limit, not one per port), and one shutdown stops them all.
#[test]
fn connections_max_counts_every_listener_of_a_core() {
    let mut two = limits();
    two.connections_max = 2;
    let (server, second_addr) = TestServer::start_two_listeners(two);
    let connect_second = || {
        let stream = std::net::TcpStream::connect(second_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let _open = both_served(server.connect(), connect_second());
    for stream in [server.connect(), connect_second()] {
        let refused = ResponseReader::new(stream).next(false).unwrap();
        assert_eq!(refused.status, 503, "{}", refused.text());
    }
    server.trigger_shutdown();
    server.join_within(Duration::from_secs(10));
    // The kernel tears an io_uring down after its last fd closes, in a work queue of its
    // own: a multishot accept still in flight holds the listening socket until then, so
    // the port stops answering shortly after the server's thread ends, not at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(second_addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still listening 5 s after shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Proves the server works on the poll driver (the fallback where io_uring is blocked),
// including file bodies above the zero-copy threshold.
#[test]
fn poll_driver_serves() {
    let server = TestServer::start_with(limits(), DriverKind::Poll);
    let mut client = ResponseReader::new(server.connect());
    client.send(&get("/echo?poll"));
    assert_eq!(client.next(false).unwrap().text(), "Get /echo?poll");
    client.send(&get("/file?len=200000"));
    assert_eq!(
        client.next(false).unwrap().body,
        body_file_expected(200_000)
    );
}

// Proves a client that stops reading its responses is disconnected after the idle timeout
// instead of holding the connection's task forever: of 60 MB asked for, it gets far less,
// then the connection ends.
#[test]
fn client_not_reading_is_disconnected() {
    let mut short = limits();
    short.idle_timeout_ms = 300;
    let server = TestServer::start(short);
    let mut client = ResponseReader::new(server.connect());
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend(get("/file?len=3000000"));
    }
    client.send(&batch);
    std::thread::sleep(Duration::from_millis(1500));
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut client.stream, &mut chunk) {
            Ok(0) => break,
            Ok(count) => received += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                assert_ne!(error.kind(), std::io::ErrorKind::WouldBlock, "still open");
                break;
            }
        }
    }
    assert!(received < 60_000_000, "received everything: {received}");
}

// Proves a panicking handler costs its request a 500 JSON error and the connection a close,
// while the server keeps serving other connections.
#[test]
fn handler_panic_gives_500() {
    let (server, mut client) = start_and_connect();
    client.send(&get("/panic"));
    let response = client.next(false).unwrap();
    assert_eq!(response.status, 500);
    assert!(
        response.text().contains("test handler asked to panic"),
        "{}",
        response.text()
    );
    assert!(client.closed());
    assert_new_connection_served(&server);
}

// Proves shutdown lets a request in progress finish (its answer says `Connection: close`),
// and stops accepting new connections.
#[test]
fn shutdown_finishes_requests_in_progress() {
    let server = TestServer::start(limits());
    let mut busy = ResponseReader::new(server.connect());
    // Wait until the server serves (it builds its test file first).
    busy.send(&get("/echo"));
    assert_eq!(busy.next(false).unwrap().status, 200);
    busy.send(&get("/sleep?ms=300"));
    std::thread::sleep(Duration::from_millis(100));
    server.trigger_shutdown();
    let response = busy.next(false).unwrap();
    assert_eq!(response.text(), "slept 300");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(busy.closed());
    let addr = server.addr;
    drop(server);
    // Nothing listens any more (unless another process took the port in between).
    if let Ok(stream) = std::net::TcpStream::connect(addr) {
        let mut reader = ResponseReader::new(stream);
        reader.send(&get("/echo?after-shutdown"));
        let answer = reader.next(false);
        assert!(answer.is_none_or(|r| r.text() != "Get /echo?after-shutdown"));
    }
}

// Proves a 204 or 304 answer goes out without the body the handler attached (it would be
// read as the start of the next response), and the connection stays usable.
#[test]
fn no_body_for_204_and_304() {
    let (_server, mut client) = start_and_connect();
    for code in [204, 304] {
        client.send(&get(&format!("/status?code={code}")));
        let response = client.next(false).unwrap();
        assert_eq!(response.status, code);
        assert_eq!(response.header("content-length"), None);
        assert!(response.body.is_empty());
    }
    client.send(&get("/echo?next"));
    assert_eq!(client.next(false).unwrap().text(), "Get /echo?next");
}

// Proves large in-memory bodies (sent with the head in one writev, no copy) arrive
// byte-exact, back to back on one connection.
#[test]
fn large_bytes_bodies_byte_exact() {
    let (_server, mut client) = start_and_connect();
    for len in [65_537u64, 200_000, 1 << 20] {
        client.send(&get(&format!("/big?len={len}")));
        let response = client.next(false).unwrap();
        assert_body_exact(&response.body, len);
    }
}

// Proves in-memory bodies sent with SEND_ZC (io_uring's zero-copy send, threshold 0 here)
// arrive byte-exact and in order, small and large, with pipelined requests before and after,
// and that the connection keeps serving.
#[test]
fn send_zc_bodies_byte_exact() {
    let mut limits = limits();
    limits.send_zc_min_bytes = 0;
    let server = TestServer::start(limits);
    let mut client = ResponseReader::new(server.connect());
    for len in [1u64, 4096, 65_537, 1 << 20, 3 << 20] {
        client.send(
            &[
                get("/echo?a"),
                get(&format!("/big?len={len}")),
                get("/echo?b"),
            ]
            .concat(),
        );
        assert_eq!(client.next(false).unwrap().text(), "Get /echo?a");
        let response = client.next(false).unwrap();
        assert_eq!(response.status, 200);
        assert_body_exact(&response.body, len);
        assert_eq!(client.next(false).unwrap().text(), "Get /echo?b");
    }
}

// Proves a file region reaching past the end of its file (a handler bug or a truncated file)
// ends the connection after the bytes that exist, on both the copy and the splice path,
// instead of hanging or sending other bytes.
#[test]
fn region_past_end_of_file_closes_connection() {
    // The threshold picks the path: never splice (copy), always splice.
    for zero_copy_min_bytes in [u64::MAX, 0] {
        let mut limits = limits();
        limits.zero_copy_min_bytes = zero_copy_min_bytes;
        let server = TestServer::start(limits);
        let mut stream = server.connect();
        // The region starts at offset 3, so this ends 1000 bytes past the end of the file.
        let oversized = support::FILE_BYTES - 3 + 1000;
        stream
            .write_all(&get(&format!("/file?len={oversized}")))
            .unwrap();
        let mut received = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            match std::io::Read::read(&mut stream, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(count) => received.extend_from_slice(&chunk[..count]),
            }
        }
        let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = &received[head_end..];
        assert!((body.len() as u64) < oversized, "sent {} bytes", body.len());
        assert!(
            body == &body_file_expected(body.len() as u64)[..],
            "wrong bytes"
        );
    }
}
