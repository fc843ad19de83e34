//! A real `kelp master` against malformed requests sent over raw TCP: each gets a status and a
//! JSON error, as from the volume server, never a silent close; methods an endpoint does not
//! take get 405 with `Allow`.

mod master_common;
mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use master_common::{Answer, FakeVolumeServer, MasterProcess, get, http, wait_for_leader};
use support::free_port;

fn start_master(dir: &std::path::Path) -> MasterProcess {
    let master = MasterProcess::start(dir, "m", free_port(), "", &[]);
    wait_for_leader(&[&master], 1, Duration::from_secs(10));
    master
}

/// Sends `raw` on a new connection and reads every response until the server closes it.
fn exchange(address: &str, raw: &[u8]) -> Vec<Answer> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut received = Vec::new();
    stream
        .read_to_end(&mut received)
        .unwrap_or_else(|e| panic!("read after {:?}: {e}", String::from_utf8_lossy(&received)));
    parse_responses(&received)
}

fn parse_responses(mut raw: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = std::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body = raw[end + 4..end + 4 + length].to_vec();
        raw = &raw[end + 4 + length..];
        answers.push(Answer {
            status,
            headers,
            body,
        });
    }
    assert!(
        raw.is_empty(),
        "trailing bytes: {:?}",
        String::from_utf8_lossy(raw)
    );
    answers
}

// Proves a bad request line, a header without a colon, a bad chunk size, a header block over
// the limit and a body over the limit each get a status with a JSON error and
// `Connection: close` instead of a silent close; requests before the bad one in a pipeline
// are answered first, in order.
#[test]
fn malformed_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let huge_header = format!("X-Filler: {}\r\n", "a".repeat(70 * 1024));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "bad request line",
            b"GARBAGE \x01 NOT-HTTP\r\n\r\n".to_vec(),
            400,
        ),
        (
            "header without colon",
            b"GET /dir/status HTTP/1.1\r\nHost: m\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST /heartbeat HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
            400,
        ),
        (
            "header block over the limit",
            format!("GET /dir/status HTTP/1.1\r\nHost: m\r\n{huge_header}\r\n").into_bytes(),
            431,
        ),
        (
            "body over the limit",
            b"POST /submit HTTP/1.1\r\nHost: m\r\nContent-Length: 999999999999\r\n\r\n".to_vec(),
            413,
        ),
    ];
    for (what, raw, status) in cases {
        let answers = exchange(&master.address, &raw);
        assert_eq!(answers.len(), 1, "{what}");
        let answer = &answers[0];
        assert_eq!(answer.status, status, "{what}: {}", answer.text());
        assert!(answer.json()["error"].is_string(), "{what}");
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
    }
    let mut pipeline = b"GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n".to_vec();
    pipeline.extend_from_slice(
        b"POST /dir/assign HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    pipeline.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost m\r\n\r\n");
    let answers = exchange(&master.address, &pipeline);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 406, 400], "in order: {answers:?}");
    assert!(answers[2].json()["error"].is_string());
    assert_eq!(get(&master.address, "/healthz").unwrap().status, 200);
}

// Proves methods an endpoint does not take get 405 with `Allow` and a JSON error (PATCH used to
// assign), while the methods it does take still work.
#[test]
fn unsupported_methods_get_405_with_allow() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let cases = [
        ("PATCH", "/dir/assign", "GET, POST"),
        ("DELETE", "/dir/assign", "GET, POST"),
        ("PUT", "/dir/status", "GET, HEAD"),
        ("GET", "/cluster/join", "POST"),
        ("GET", "/raft/vote", "POST"),
        ("PATCH", "/3,01637037d6", "GET, HEAD, POST, PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        let answer = http(method, &master.address, path, &[], b"").unwrap();
        assert_eq!(answer.status, 405, "{method} {path}: {}", answer.text());
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
        assert!(answer.json()["error"].is_string(), "{method} {path}");
    }
    for method in ["GET", "POST"] {
        let answer = http(method, &master.address, "/dir/assign", &[], b"").unwrap();
        assert_eq!(
            answer.status,
            406,
            "{method}: no volume server yet: {}",
            answer.text()
        );
    }
}

// Proves the warm-up of a new leader still holds for the volume ids it should wait for: after
// a restart, with Raft knowing volumes 1-7 that no heartbeat reports (the volume server lost
// them), an assignment is answered 503 until 1.5 pulses have passed, and then grows volumes
// above 7. (A leader that grew volumes itself never waits for them: see
// server_walkthrough::assignments_succeed_once_ready.)
#[test]
fn a_restarted_leader_waits_only_for_volumes_no_heartbeat_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_master(dir.path());
    let server = FakeVolumeServer::start(vec![master.address.clone()], "", "", 20);
    let first = master_common::assign_retrying(&master.address, "", Duration::from_secs(10));
    assert!(first["fid"].is_string());
    assert_eq!(server.volume_ids(), (1..=7).collect::<Vec<u32>>());
    server.volumes.lock().unwrap().clear();
    master.kill();
    master.spawn(&[]);
    wait_for_leader(&[&master], 1, Duration::from_secs(10));
    let waiting = get(&master.address, "/dir/assign").unwrap();
    assert_eq!(waiting.status, 503, "{}", waiting.text());
    assert_eq!(
        waiting.json()["error"],
        "the leader is new and waits for heartbeats"
    );
    let grown = master_common::assign_retrying(&master.address, "", Duration::from_secs(10));
    let volume_id: u32 = grown["fid"]
        .as_str()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        volume_id > 7,
        "new volumes above the ones Raft knew: {grown}"
    );
}
