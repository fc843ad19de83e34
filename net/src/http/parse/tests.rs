use super::*;
use proptest::prelude::*;

const LIMITS: ParseLimits = ParseLimits {
    header_bytes_max: 1024,
    body_bytes_max: 4096,
};

/// Feeds all of `input` at once and collects requests until the reader needs more or fails.
fn parse_all(input: &[u8]) -> (Vec<(Request, RequestMeta)>, Option<ParseError>) {
    let mut reader = RequestReader::new(LIMITS);
    reader.feed(input);
    drain(&mut reader)
}

fn drain(reader: &mut RequestReader) -> (Vec<(Request, RequestMeta)>, Option<ParseError>) {
    let mut requests = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Event::Request(request, meta)) => requests.push((request, meta)),
            Ok(Event::SendContinue) => continue,
            Ok(Event::NeedMore) => return (requests, None),
            Err(error) => return (requests, Some(error)),
        }
    }
}

/// Feeds `input` in pieces cut at `cuts`, collecting everything produced along the way.
fn parse_split(input: &[u8], cuts: &[usize]) -> (Vec<(Request, RequestMeta)>, Option<ParseError>) {
    let mut reader = RequestReader::new(LIMITS);
    let mut requests = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort();
    let mut start = 0;
    for point in points {
        reader.feed(&input[start..point]);
        start = point;
        let (mut more, error) = drain(&mut reader);
        requests.append(&mut more);
        if error.is_some() {
            return (requests, error);
        }
    }
    (requests, None)
}

// Proves a simple GET parses into method, raw path, raw query and lower-cased headers.
#[test]
fn get_with_query() {
    let (requests, error) =
        parse_all(b"GET /3,01637037d6?ts=5&x=%20 HTTP/1.1\r\nHost: a\r\nX-Up: V\r\n\r\n");
    assert_eq!(error, None);
    let (request, meta) = &requests[0];
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, "/3,01637037d6");
    assert_eq!(request.query, "ts=5&x=%20");
    assert_eq!(request.headers.get("x-up"), Some("V"));
    assert_eq!(request.headers.get("host"), Some("a"));
    assert!(request.body.is_empty());
    assert!(meta.keep_alive);
}

// Proves Content-Length bodies are taken exactly and the next pipelined request follows.
#[test]
fn pipelined_bodies() {
    let input = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
    let (requests, error) = parse_all(input);
    assert_eq!(error, None);
    assert_eq!(requests.len(), 2);
    assert_eq!(&requests[0].0.body[..], b"hello");
    assert_eq!(requests[1].0.path, "/b");
}

// Proves chunked bodies are decoded, with extensions and trailers skipped.
#[test]
fn chunked_body() {
    let input = b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let (requests, error) = parse_all(input);
    assert_eq!(error, None);
    assert_eq!(requests.len(), 2);
    assert_eq!(&requests[0].0.body[..], b"hello world");
}

// Proves HTTP/1.0 closes by default, keeps alive on request, and 1.1 honours close.
#[test]
fn keep_alive_rules() {
    let (requests, _) = parse_all(b"GET / HTTP/1.0\r\n\r\n");
    assert!(!requests[0].1.keep_alive);
    let (requests, _) = parse_all(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(requests[0].1.keep_alive);
    let (requests, _) = parse_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(!requests[0].1.keep_alive);
}

// Proves 100-continue is signalled once, only while the body is missing, then the body read.
#[test]
fn expect_continue_signalled_once() {
    let mut reader = RequestReader::new(LIMITS);
    reader.feed(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(reader.next_event(), Ok(Event::SendContinue));
    assert_eq!(reader.next_event(), Ok(Event::NeedMore));
    reader.feed(b"abc");
    let Ok(Event::Request(request, _)) = reader.next_event() else {
        panic!("request expected")
    };
    assert_eq!(&request.body[..], b"abc");
}

// Proves each refusal maps to its status: 400, 413, 431, 501.
#[test]
fn refusals_have_statuses() {
    let cases: [(&[u8], u16); 8] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET nopath HTTP/1.1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n",
            413,
        ),
    ];
    for (input, status) in cases {
        let (requests, error) = parse_all(input);
        assert!(requests.is_empty());
        let error = error.unwrap_or_else(|| panic!("no error for {input:?}"));
        assert_eq!(error.status(), status, "{input:?}: {error}");
    }
    let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge.resize(2000, b'a');
    let (_, error) = parse_all(&huge);
    assert_eq!(error.map(|e| e.status()), Some(431));
}

// Proves a reader stays failed after an error (the connection must close; it never resyncs).
#[test]
fn failure_is_sticky() {
    let mut reader = RequestReader::new(LIMITS);
    reader.feed(b"BAD\x01 / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert!(reader.next_event().is_err());
    assert!(reader.next_event().is_err());
}

fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD"]);
    let path = "/[a-z0-9,_]{0,12}(\\?[a-z=&0-9]{0,10})?";
    let body = prop::collection::vec(any::<u8>(), 0..300);
    let chunked = any::<bool>();
    (method, path, body, chunked).prop_map(|(method, path, body, chunked)| {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: h\r\n").into_bytes();
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        }
        out
    })
}

proptest! {
    // Proves the parser never panics on arbitrary bytes, and splitting them anywhere gives the
    // same requests and the same error as one read.
    #[test]
    fn arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(parse_split(&input, &cuts), parse_all(&input));
    }

    // Proves the same for inputs that look like HTTP, where the interesting branches are.
    #[test]
    fn http_like_bytes_split_agree(
        pieces in prop::collection::vec(prop::sample::select(vec![
            &b"GET / HTTP/1.1\r\n"[..], b"POST /x HTTP/1.0\r\n", b"\r\n", b"\n",
            b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n",
            b"0\r\n", b"Expect: 100-continue\r\n", b"X: y\r\n", b"abc", b":", b" ",
            b"ff\r\n", b"\x00",
        ]), 0..24),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = pieces.concat();
        prop_assert_eq!(parse_split(&input, &cuts), parse_all(&input));
    }

    // Proves any split of valid pipelined requests gives the same requests as one read.
    #[test]
    fn splits_give_same_requests(
        requests in prop::collection::vec(valid_request(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let input: Vec<u8> = requests.concat();
        let whole = parse_all(&input);
        prop_assert_eq!(whole.1.clone(), None);
        prop_assert_eq!(whole.0.len(), requests.len());
        prop_assert_eq!(parse_split(&input, &cuts), whole);
    }

    // Proves a valid request followed by garbage yields the request, then an error or a wait,
    // identically however the bytes are split.
    #[test]
    fn splits_with_garbage_agree(
        request in valid_request(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut input = request;
        input.extend_from_slice(&garbage);
        let whole = parse_all(&input);
        prop_assert!(!whole.0.is_empty());
        prop_assert_eq!(parse_split(&input, &cuts), whole);
    }
}

// Proves an idle connection does not keep the large buffer a big upload grew: after the
// request is taken, releasing leaves at most the small limit, and a small buffer is reused.
#[test]
fn idle_buffer_released_after_big_body() {
    let limits = ParseLimits {
        header_bytes_max: 1024,
        body_bytes_max: 1 << 20,
    };
    let mut reader = RequestReader::new(limits);
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 300000\r\n\r\n");
    reader.feed(&vec![7u8; 300_000]);
    let Ok(Event::Request(request, _)) = reader.next_event() else {
        panic!("request expected")
    };
    assert_eq!(request.body.len(), 300_000);
    reader.release_idle_buffer(8192);
    assert!(reader.take_buffer(0).capacity() <= 8192);

    let mut reader = RequestReader::new(limits);
    reader.feed(b"GET / HTTP/1.1\r\n\r\n");
    assert!(matches!(reader.next_event(), Ok(Event::Request(..))));
    let kept = reader.take_buffer(0);
    let capacity = kept.capacity();
    reader.restore_buffer(kept);
    reader.release_idle_buffer(8192);
    assert_eq!(reader.take_buffer(0).capacity(), capacity);
}
