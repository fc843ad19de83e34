use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream as StdStream};
use std::thread::JoinHandle;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("compio runtime")
        .block_on(future)
}

/// A one-thread test server on a free loopback port running `script` on its listener.
fn serve<T: Send + 'static>(
    script: impl FnOnce(TcpListener) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr").to_string();
    (addr, std::thread::spawn(move || script(listener)))
}

/// Read one request (head + Content-Length body) from `stream`; None at end of stream.
fn read_request(stream: &mut StdStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).expect("test server read") == 0 {
            return None;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8(request.clone()).expect("utf-8 head");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .map_or(0, |value| value.trim().parse::<usize>().expect("length"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("test server body");
    request.extend_from_slice(&body);
    Some(request)
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn sends_exact_request_bytes_and_parses_content_length_response() {
    // Proves the wire format of a request (method, target, Host, caller headers,
    // Content-Length, body) and that status, headers and body of the answer come back.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        let request = read_request(&mut stream).expect("one request");
        stream
            .write_all(b"HTTP/1.1 201 Created\r\nX-Thing: a b\r\nContent-Length: 5\r\n\r\nhello")
            .expect("write");
        request
    });
    let response = block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        client
            .request("POST", "/3,01?x=1", &[("Seaweed-Name", "v")], b"abc")
            .await
            .expect("request")
    });
    let request = server.join().expect("server thread");
    let expected = format!(
        "POST /3,01?x=1 HTTP/1.1\r\nHost: {addr}\r\nSeaweed-Name: v\r\nContent-Length: 3\r\n\r\nabc"
    );
    assert_eq!(String::from_utf8(request).unwrap(), expected);
    assert_eq!(response.status, 201);
    assert_eq!(response.header("x-thing"), Some("a b"));
    assert_eq!(response.header("X-THING"), Some("a b"));
    assert_eq!(response.header("missing"), None);
    assert_eq!(&response.body[..], b"hello");
}

#[test]
fn body_written_in_place_goes_out_like_a_body_slice() {
    // Proves `request_writing_body` sends the same bytes as `request` with the body as a
    // slice (Content-Length from `body_len`), twice on one connection, so the send buffer is
    // rebuilt from its start for each request.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut requests = Vec::new();
        for _ in 0..2 {
            requests.push(read_request(&mut stream).expect("a request"));
            stream.write_all(&ok_response("done")).expect("write");
        }
        requests
    });
    let statuses = block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        let mut statuses = Vec::new();
        for body in [&b"first body"[..], b"2nd"] {
            let response = client
                .request_writing_body("PUT", "/7,02", &[("X-A", "b")], body.len(), |out| {
                    out.extend_from_slice(body)
                })
                .await
                .expect("request");
            statuses.push(response.status);
        }
        statuses
    });
    let requests = server.join().expect("server thread");
    assert_eq!(statuses, [200, 200]);
    let head = format!("PUT /7,02 HTTP/1.1\r\nHost: {addr}\r\nX-A: b\r\n");
    assert_eq!(
        String::from_utf8(requests[0].clone()).unwrap(),
        format!("{head}Content-Length: 10\r\n\r\nfirst body")
    );
    assert_eq!(
        String::from_utf8(requests[1].clone()).unwrap(),
        format!("{head}Content-Length: 3\r\n\r\n2nd")
    );
}

#[test]
#[should_panic(expected = "write_body appended another length than body_len")]
fn body_written_in_place_must_match_its_length() {
    // Proves a body of another length than announced is never sent: the Content-Length
    // would not match what follows it on the connection.
    let (addr, _server) = serve(|listener| listener.accept().map(|_| ()));
    block_on(async {
        let mut client = Client::new(&addr, ClientOptions::default());
        let _ = client
            .request_writing_body("POST", "/1,01", &[], 4, |out| out.extend_from_slice(b"abc"))
            .await;
    });
}

#[test]
fn keep_alive_reuses_one_connection() {
    // Proves that consecutive requests (GET, HEAD, POST) share one TCP connection, and that a
    // HEAD answer's Content-Length does not make the client wait for a body.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut served = 0;
        while let Some(request) = read_request(&mut stream) {
            let response = if request.starts_with(b"HEAD") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n".to_vec()
            } else {
                ok_response(&format!("answer {served}"))
            };
            stream.write_all(&response).expect("write");
            served += 1;
        }
        listener.set_nonblocking(true).expect("nonblocking");
        let second_connection = listener.accept().is_ok();
        (served, second_connection)
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        let first = client.request("GET", "/a", &[], b"").await.expect("first");
        assert_eq!(&first.body[..], b"answer 0");
        let head = client.request("HEAD", "/a", &[], b"").await.expect("head");
        assert_eq!(head.header("content-length"), Some("4000"));
        assert!(head.body.is_empty());
        let third = client
            .request("POST", "/b", &[], b"xyz")
            .await
            .expect("third");
        assert_eq!(&third.body[..], b"answer 2");
        assert_eq!(client.connections_opened(), 1);
        client.disconnect();
    });
    assert_eq!(server.join().expect("server"), (3, false));
}

#[test]
fn decodes_chunked_response_with_extensions_and_trailers() {
    // Proves chunked bodies are reassembled (chunk extensions and trailer fields skipped)
    // and that the connection stays usable for the next request afterwards.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream).expect("request 1");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer-A: 1\r\n\r\n";
        // Byte by byte, so every parsing step also sees partial input.
        for byte in chunked.iter() {
            stream.write_all(&[*byte]).expect("write");
        }
        read_request(&mut stream).expect("request 2");
        stream.write_all(&ok_response("next")).expect("write");
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        let response = client
            .request("GET", "/c", &[], b"")
            .await
            .expect("chunked");
        assert_eq!(&response.body[..], b"hello, world");
        let next = client.request("GET", "/d", &[], b"").await.expect("next");
        assert_eq!(&next.body[..], b"next");
        assert_eq!(client.connections_opened(), 1);
    });
    server.join().expect("server");
}

#[test]
fn skips_100_continue_and_reads_close_delimited_bodies() {
    // Proves an interim "100 Continue" is skipped for the final answer, and that an
    // HTTP/1.0 answer without Content-Length is read to the end of the connection, which
    // is then not reused.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream).expect("request 1");
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        stream.write_all(answer).expect("write");
        read_request(&mut stream).expect("request 2");
        stream
            .write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            .expect("write");
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        let first = client
            .request("POST", "/a", &[], b"x")
            .await
            .expect("first");
        assert_eq!((first.status, &first.body[..]), (200, &b"ok"[..]));
        let second = client.request("GET", "/b", &[], b"").await.expect("second");
        assert_eq!(&second.body[..], b"until the end");
        assert!(!client.is_connected());
    });
    server.join().expect("server");
}

#[test]
fn large_body_arrives_whole() {
    // Proves a body much larger than the receive buffer is read completely and exactly.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = body.clone();
    let (addr, server) = serve(move |listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream).expect("request");
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).expect("head");
        stream.write_all(&body).expect("body");
    });
    let response = block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        client.request("GET", "/big", &[], b"").await.expect("big")
    });
    server.join().expect("server");
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body[..] == expected[..]);
}

#[test]
fn reconnects_after_server_closed_idle_connection() {
    // Proves that a connection the server closed while idle is replaced transparently, for a
    // GET and also for a POST (nothing was sent on the dead connection).
    let (addr, server) = serve(|listener| {
        let mut accepted = 0;
        for _ in 0..3 {
            let (mut stream, _) = listener.accept().expect("accept");
            accepted += 1;
            read_request(&mut stream).expect("request");
            let close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            stream.write_all(close).expect("write");
            // Close the idle keep-alive connection, as a server's idle timeout does.
            drop(stream);
        }
        accepted
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        for method in ["GET", "POST", "GET"] {
            let response = client.request(method, "/x", &[], b"").await;
            assert_eq!(response.expect(method).status, 200);
            // Idle past IDLE_PEEK_AFTER_MS, so the client peeks and sees the server's FIN.
            compio::time::sleep(Duration::from_millis(IDLE_PEEK_AFTER_MS + 50)).await;
        }
        assert_eq!(client.connections_opened(), 3);
    });
    assert_eq!(server.join().expect("server"), 3);
}

#[test]
fn connection_close_header_closes_after_response() {
    // Proves `Connection: close` is honoured: the next request opens a new connection.
    let (addr, server) = serve(|listener| {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().expect("accept");
            read_request(&mut stream).expect("request");
            let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz";
            stream.write_all(response).expect("write");
        }
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        client.request("GET", "/1", &[], b"").await.expect("first");
        assert!(!client.is_connected());
        client.request("GET", "/2", &[], b"").await.expect("second");
        assert_eq!(client.connections_opened(), 2);
    });
    server.join().expect("server");
}

#[test]
fn post_is_not_resent_when_connection_drops_after_sending() {
    // Proves a non-idempotent request that the server received and then dropped without an
    // answer fails with an error (it is not silently resent), while a GET in the same
    // situation is retried once on a fresh connection.
    let (addr, server) = serve(|listener| {
        let mut requests = Vec::new();
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream).expect("warm-up");
        stream.write_all(&ok_response("warm")).expect("write");
        requests.push(read_request(&mut stream).expect("post"));
        drop(stream);
        let (mut stream, _) = listener.accept().expect("accept 2");
        read_request(&mut stream).expect("warm-up 2");
        stream.write_all(&ok_response("warm")).expect("write");
        requests.push(read_request(&mut stream).expect("get"));
        drop(stream);
        let (mut stream, _) = listener.accept().expect("accept retry");
        requests.push(read_request(&mut stream).expect("get retry"));
        stream.write_all(&ok_response("retried")).expect("write");
        requests
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        client
            .request("GET", "/w", &[], b"")
            .await
            .expect("warm-up");
        let error = client.request("POST", "/p", &[], b"1").await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Io { source, .. }
                if source.kind() == io::ErrorKind::UnexpectedEof),
            "{error}"
        );
        client
            .request("GET", "/w", &[], b"")
            .await
            .expect("warm-up 2");
        let retried = client.request("GET", "/g", &[], b"").await.expect("get");
        assert_eq!(&retried.body[..], b"retried");
    });
    let requests = server.join().expect("server");
    let lines: Vec<_> = requests
        .iter()
        .map(|r| {
            String::from_utf8_lossy(&r[..r.iter().position(|b| *b == b'\r').unwrap()]).into_owned()
        })
        .collect();
    assert_eq!(
        lines,
        ["POST /p HTTP/1.1", "GET /g HTTP/1.1", "GET /g HTTP/1.1"]
    );
}

#[test]
fn request_timeout_names_the_server() {
    // Proves a server that accepts but never answers yields a Timeout error naming the
    // address, after about the configured time rather than hanging.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream).expect("request");
        // Hold the connection open without answering until the client gives up.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    let error = block_on(async {
        let options = ClientOptions {
            request_timeout_ms: 200,
            ..ClientOptions::default()
        };
        let mut client = Client::connect_with(&addr, options).await.expect("connect");
        let error = client.request("GET", "/slow", &[], b"").await.unwrap_err();
        assert!(!client.is_connected());
        error
    });
    server.join().expect("server");
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                timeout_ms: 200,
                operation: "request",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&addr), "{error}");
}

#[test]
fn connect_refused_names_the_server() {
    // Proves connecting to a closed port is a Connect error whose message names the address.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let error = block_on(Client::connect(&addr)).err().expect("refused");
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&addr), "{error}");
    assert_eq!(error.addr(), addr);
}

#[test]
fn malformed_responses_are_errors() {
    // Proves garbage, a status below 100, a bad Content-Length, a bad chunk size and an
    // oversized body are each reported as Malformed (never as a success with a wrong body).
    let answers: [&[u8]; 5] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n",
    ];
    for answer in answers {
        let (addr, server) = serve(move |listener| {
            let (mut stream, _) = listener.accept().expect("accept");
            read_request(&mut stream).expect("request");
            stream.write_all(answer).expect("write");
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        });
        let error = block_on(async {
            let options = ClientOptions {
                body_bytes_max: 1000,
                ..ClientOptions::default()
            };
            let mut client = Client::connect_with(&addr, options).await.expect("connect");
            let error = client.request("GET", "/", &[], b"").await.unwrap_err();
            drop(client);
            error
        });
        server.join().expect("server");
        assert!(matches!(error, ClientError::Malformed { .. }), "{error}");
    }
}

/// (method, target, headers) of a request the client must refuse.
type RequestCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn invalid_requests_are_refused_before_sending() {
    // Proves header injection and malformed targets are rejected locally.
    let (addr, server) = serve(|listener| {
        let (mut stream, _) = listener.accept().expect("accept");
        read_request(&mut stream)
    });
    block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        let cases: [RequestCase; 4] = [
            ("GET", "/a b", &[]),
            ("GET", "no-slash", &[]),
            ("G ET", "/", &[]),
            ("GET", "/", &[("X", "a\r\nEvil: 1")]),
        ];
        for (method, target, headers) in cases {
            let error = client
                .request(method, target, headers, b"")
                .await
                .unwrap_err();
            assert!(
                matches!(error, ClientError::InvalidRequest { .. }),
                "{error}"
            );
        }
        client.disconnect();
    });
    assert!(server.join().expect("server").is_none(), "nothing was sent");
}

#[test]
fn chunk_size_parser() {
    // Proves the chunk-size grammar: hex digits, optional extensions, bounded length.
    assert_eq!(parse_chunk_size(b"1a"), Ok(26));
    assert_eq!(parse_chunk_size(b"FF;name=value"), Ok(255));
    assert_eq!(parse_chunk_size(b"0"), Ok(0));
    assert!(parse_chunk_size(b"").is_err());
    assert!(parse_chunk_size(b"g1").is_err());
    assert!(parse_chunk_size(b"1234567890123456").is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn response_head_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Proves any bytes from a server give a parsed head, "need more" or an error;
            // never a panic, and never a head longer than the input.
            if let Ok(Some((head, head_len))) = parse_head(&input) {
                prop_assert!(head_len <= input.len());
                prop_assert!(head.status >= 100 && head.status <= 999);
            }
        }

        #[test]
        fn chunk_sizes_round_trip(size in 0u64..(1 << 60), upper in any::<bool>(), ext in any::<bool>()) {
            // Proves every size a server can write in hex (either case, with or without a
            // chunk extension) is read back as the same number.
            let mut line = if upper { format!("{size:X}") } else { format!("{size:x}") };
            if ext {
                line.push_str(";name=value");
            }
            prop_assert_eq!(parse_chunk_size(line.as_bytes()), Ok(size));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn chunked_bodies_reassemble_whatever_the_chunking(
            body in proptest::collection::vec(any::<u8>(), 0..20_000),
            cuts in proptest::collection::vec(1usize..5_000, 1..8),
        ) {
            // Proves a chunked body cut into arbitrary chunk sizes, sent in arbitrary write
            // sizes over a real socket, arrives byte for byte.
            let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut rest = &body[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let take = (*cut.next().unwrap()).min(rest.len());
                wire.extend_from_slice(format!("{take:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..take]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[take..];
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let writes = cuts.clone();
            let (addr, server) = serve(move |listener| {
                let (mut stream, _) = listener.accept().expect("accept");
                read_request(&mut stream).expect("request");
                let mut rest = &wire[..];
                for size in writes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let take = (*size * 3 + 1).min(rest.len());
                    stream.write_all(&rest[..take]).expect("write");
                    rest = &rest[take..];
                }
            });
            let response = block_on(async {
                let mut client = Client::connect(&addr).await.expect("connect");
                client.request("GET", "/", &[], b"").await.expect("chunked response")
            });
            server.join().expect("server");
            prop_assert_eq!(&response.body[..], &body[..]);
        }
    }
}
