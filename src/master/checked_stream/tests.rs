use super::*;

/// Feeds `pieces` one after another (as reads from the socket would bring them) and takes
/// every released byte, as hyper would; returns what hyper saw and the refusal, if any.
fn run(pieces: &[&[u8]]) -> (Vec<u8>, Option<Refusal>) {
    let mut checker = RequestChecker::new();
    let mut seen = Vec::new();
    for piece in pieces {
        let start = checker.pending.len();
        checker.pending.extend_from_slice(piece);
        checker.received(start);
        take_all(&mut checker, &mut seen);
    }
    (seen, checker.refusal)
}

fn take_all(checker: &mut RequestChecker, seen: &mut Vec<u8>) {
    let mut space = [0u8; 7];
    loop {
        let mut buf = ReadBuf::new(&mut space);
        if !checker.take_released(&mut buf) {
            return;
        }
        seen.extend_from_slice(buf.filled());
    }
}

const GET: &[u8] = b"GET /dir/assign HTTP/1.1\r\nHost: m\r\n\r\n";

// Proves whole requests pass, a head is held until it is whole, a Content-Length body
// passes as it arrives (the head first), and the request after it is checked again.
#[test]
fn good_requests_pass_in_order() {
    let post = b"POST /heartbeat HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    let (seen, refusal) = run(&[&GET[..10], &GET[10..], post, b"01234", b"56789", GET]);
    assert_eq!(refusal, None);
    assert_eq!(seen, [GET, post, b"0123456789", GET].concat());
    let mut checker = RequestChecker::new();
    checker.pending.extend_from_slice(&GET[..20]);
    checker.received(0);
    assert_eq!(checker.released, 0, "half a head is held");
}

// Proves a chunked request is held until its last chunk, then passes whole.
#[test]
fn chunked_requests_are_held_until_whole() {
    let head = b"POST /heartbeat HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut checker = RequestChecker::new();
    checker
        .pending
        .extend_from_slice(&[&head[..], b"3\r\nabc\r\n"].concat());
    checker.received(0);
    assert_eq!(checker.released, 0);
    let (seen, refusal) = run(&[head, b"3\r\nabc\r\n", b"0\r\n\r\n"]);
    assert_eq!(refusal, None);
    assert_eq!(seen, [&head[..], b"3\r\nabc\r\n0\r\n\r\n"].concat());
}

// Proves each kind of malformed request is refused with the volume server's status and
// message, after the requests before it passed, and nothing of it reaches hyper.
#[test]
fn malformed_requests_are_refused() {
    let big_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let cases: [(&[u8], u16, &str); 7] = [
        (b"GARBAGE\r\n\r\n", 400, "malformed request"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400, "header"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "chunk size",
        ),
        (big_header.as_bytes(), 431, "exceed"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n",
            413,
            "body",
        ),
        (b"GET /a<b> HTTP/1.1\r\n\r\n", 400, "request target"),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "HTTP/1.0",
        ),
    ];
    for (bad, status, words) in cases {
        let (seen, refusal) = run(&[GET, bad]);
        let refusal =
            refusal.unwrap_or_else(|| panic!("{:?} passed", String::from_utf8_lossy(bad)));
        assert_eq!(refusal.status, status, "{}", refusal.message);
        assert!(refusal.message.contains(words), "{}", refusal.message);
        assert_eq!(seen, GET, "only the good request before it");
    }
}

// Proves the refusal is a whole HTTP answer with a JSON error and `Connection: close`.
#[test]
fn refusal_is_json_and_closes() {
    let refusal = Refusal {
        status: 431,
        message: "too \"big\"".into(),
    };
    let text = String::from_utf8(encode_refusal(&refusal)).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{head}"
    );
    assert!(head.contains("connection: close") && head.contains("application/json"));
    assert!(head.contains(&format!("content-length: {}", body.len())));
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "too \"big\"");
}

proptest::proptest! {
    // Proves, for any bytes cut at any points: nothing panics, what hyper sees is a prefix
    // of the input, and a stream of good requests passes whole whatever the cuts.
    #[test]
    fn any_input_any_cuts(
        input in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        cuts in proptest::collection::vec(0usize..300, 0..6),
        copies in 1usize..4,
    ) {
        let split = |bytes: &[u8]| -> Vec<Vec<u8>> {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            points.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
        };
        let pieces = split(&input);
        let slices: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (seen, _) = run(&slices);
        proptest::prop_assert!(input.starts_with(&seen));
        let good = [GET, &b"POST /submit HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..]]
            .concat()
            .repeat(copies);
        let pieces = split(&good);
        let slices: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (seen, refusal) = run(&slices);
        proptest::prop_assert_eq!(refusal, None);
        proptest::prop_assert_eq!(seen, good);
    }
}
