//! End-to-end tests of `kelp volume` against hostile or unlucky clients: admin calls from
//! strangers, silent connections, taken ports, corrupt gzip uploads, unsatisfiable ranges.

mod support;
mod volume_support;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::{ChildGuard, dead_address, free_port_run};
use volume_support::{VolumeServer, connect, get, request, request_from};

/// A loopback address that is not the server's master (127.0.0.1 in these tests).
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

// Proves an upload labelled `Content-Encoding: gzip` whose body is not a whole, intact gzip
// stream (not gzip at all, cut short, or with a wrong CRC) is refused with 400 and a JSON
// error and stores nothing, raw or multipart, while a good one is stored.
#[test]
fn gzip_uploads_are_checked() {
    let server = VolumeServer::start(1, "", &[]);
    server.create_volume(1, "");
    let good = gzip(&b"squeeze me ".repeat(100));
    let mut wrong_crc = good.clone();
    let crc_at = wrong_crc.len() - 8;
    wrong_crc[crc_at] ^= 0xff;
    let cut = good[..good.len() - 4].to_vec();
    let gz = [("Content-Encoding", "gzip")];
    for (index, body) in [b"not gzip".to_vec(), wrong_crc, cut].iter().enumerate() {
        let fid = format!("/1,0{}000000aa", index + 1);
        let refused = request(server.port, "POST", &fid, &gz, body);
        assert_eq!(refused.status, 400, "body {index}: {}", refused.text());
        let message = refused.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains("gzip"), "{message}");
        assert_eq!(get(server.port, &fid).status, 404, "nothing stored");
    }
    let boundary = "kelpboundary";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
         Content-Encoding: gzip\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(b"still not gzip");
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [("Content-Type", content_type.as_str())];
    let refused = request(server.port, "POST", "/1,05000000aa", &headers, &multipart);
    assert_eq!(refused.status, 400, "multipart part: {}", refused.text());
    assert_eq!(get(server.port, "/1,05000000aa").status, 404);

    let stored = request(server.port, "POST", "/1,06000000aa", &gz, &good);
    assert_eq!(stored.status, 201, "{}", stored.text());
    let plain = get(server.port, "/1,06000000aa");
    assert_eq!(plain.body, b"squeeze me ".repeat(100));
}

// Proves a range past the end is answered 416 with `Content-Range: bytes */LEN` and a JSON
// error body, like every other error.
#[test]
fn unsatisfiable_range_is_a_json_error() {
    let server = VolumeServer::start(1, "", &[]);
    server.create_volume(1, "");
    let gz = [("Content-Encoding", "gzip")];
    let zipped = gzip(b"0123456789");
    assert_eq!(
        request(server.port, "POST", "/1,01000000aa", &[], b"0123456789").status,
        201
    );
    assert_eq!(
        request(server.port, "POST", "/1,02000000aa", &gz, &zipped).status,
        201
    );
    for (fid, length) in [("/1,01000000aa", 10), ("/1,02000000aa", 10)] {
        let past = request(server.port, "GET", fid, &[("Range", "bytes=10-")], b"");
        assert_eq!(past.status, 416, "{fid}");
        assert_eq!(
            past.header("content-range"),
            Some(format!("bytes */{length}").as_str())
        );
        assert_eq!(past.header("content-type"), Some("application/json"));
        assert_eq!(past.header("content-encoding"), None, "{fid}");
        let message = past.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains("range"), "{message}");
    }
}

// Proves admin calls are refused with 403 and a JSON error when they come from an address
// that is not one of the server's --master hosts, on the main port and on a core's own port
// (before any hand-off to the owner core), and that the volume and its files stay; the same
// call from the master's host still works.
#[test]
fn admin_calls_come_only_from_master_hosts() {
    let server = VolumeServer::start(2, "", &[]);
    server.create_volume(1, "");
    let written = request(server.port, "POST", "/1,01637037d6", &[], b"keep me");
    assert_eq!(written.status, 201, "{}", written.text());
    let calls = [
        "/admin/volume/delete?volume=1",
        "/admin/volume/create?volume=2",
        "/admin/volume/create?volume=3",
        "/admin/anything",
    ];
    for port in [server.port, server.core_port(0), server.core_port(1)] {
        for path in calls {
            let refused = request_from(STRANGER, port, "POST", path);
            assert_eq!(
                refused.status,
                403,
                "POST {path} on {port}: {}",
                refused.text()
            );
            let message = refused.json()["error"].as_str().unwrap().to_string();
            assert!(message.contains("127.0.0.2"), "{message}");
        }
    }
    let kept = get(server.port, "/1,01637037d6");
    assert_eq!((kept.status, kept.body.as_slice()), (200, &b"keep me"[..]));
    assert!(server.dir.join("1.dat").exists());
    let status = get(server.port, "/status").json();
    assert_eq!(status["Volumes"].as_array().unwrap().len(), 1, "{status}");
    let reads = request_from(STRANGER, server.port, "GET", "/1,01637037d6");
    assert_eq!(reads.status, 200, "only admin calls are restricted");
    let dropped = request(
        server.port,
        "POST",
        "/admin/volume/delete?volume=1",
        &[],
        b"",
    );
    assert_eq!(
        dropped.status,
        200,
        "from the master's host: {}",
        dropped.text()
    );
}

/// Starts `kelp volume` on `port` with 2 cores and waits for it to exit; returns its exit
/// code and log.
fn start_expecting_exit(port: u16) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("volume.log");
    let (data, port_text, master) = (
        dir.path().display().to_string(),
        port.to_string(),
        dead_address(),
    );
    let args = [
        "volume", "--dir", &data, "--port", &port_text, "--cores", "2", "--master", &master,
    ];
    let mut guard = ChildGuard::spawn_kelp("kelp volume", &args, &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = guard.child.try_wait().unwrap() {
            return (status.code(), std::fs::read_to_string(&log).unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    guard.kill();
    panic!("kelp volume still runs 10 s after start with a port taken; log:\n{text}");
}

// Proves a port the server cannot bind (the main port, core 0's or core 1's own port) stops
// the start at once: exit status 1 and a message naming the address and the flag.
#[test]
fn a_taken_port_stops_the_start() {
    for offset in [2u16, 1, 0] {
        let port = free_port_run(3);
        let taken = port + offset;
        let _holder = TcpListener::bind(("127.0.0.1", taken)).expect("hold the port");
        let (code, log) = start_expecting_exit(port);
        assert_eq!(code, Some(1), "port {taken} taken; log:\n{log}");
        assert!(log.contains(&format!("127.0.0.1:{taken}")), "{log}");
        assert!(log.contains("--port"), "names the flag: {log}");
        assert!(log.contains("in use"), "{log}");
    }
}

/// Reads until the server closes the connection; panics if it stays open past `limit`.
fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return started.elapsed();
            }
            Err(error) => panic!(
                "connection still open after {:?}: {error}",
                started.elapsed()
            ),
        }
    }
}

/// `count` connections that send nothing and hold a slot each: one refused at once (a 503,
/// while the server had not yet seen an earlier client's close) is replaced.
fn open_silent_connections(port: u16, count: usize) -> Vec<TcpStream> {
    let mut silent = Vec::new();
    for _ in 0..count * 10 {
        if silent.len() == count {
            return silent;
        }
        let mut stream = connect(port);
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let refused = stream.read(&mut [0u8; 1]).is_ok();
        if !refused {
            silent.push(stream);
        }
    }
    panic!("could not hold {count} connection slots");
}

// Proves connections with no request in progress are closed after --idle-timeout-seconds:
// silent ones that never sent a byte (which, with a small --max-connections, made every
// other client's request a 503 for as long as they stayed) and keep-alive ones idle after a
// request. A request head that has started is given the header timeout instead.
#[test]
fn idle_connections_are_closed() {
    let extra = [
        "--max-connections",
        "4",
        "--idle-timeout-seconds",
        "1",
        "--header-timeout-seconds",
        "3",
    ];
    let server = VolumeServer::start(1, "", &extra);
    let mut silent = open_silent_connections(server.port, 4);
    let starved = get(server.port, "/healthz");
    assert_eq!(starved.status, 503, "4 silent sockets take every slot");
    for stream in &mut silent {
        let open_for = wait_for_close(stream, Duration::from_secs(5));
        assert!(
            open_for < Duration::from_secs(3),
            "closed after {open_for:?}"
        );
    }
    assert_eq!(get(server.port, "/healthz").status, 200, "slots free again");

    let mut kept_alive = connect(server.port);
    kept_alive
        .write_all(&volume_support::encode("GET", "/healthz", &[], b""))
        .unwrap();
    assert_eq!(
        volume_support::read_response(&mut kept_alive, false).status,
        200
    );
    let open_for = wait_for_close(&mut kept_alive, Duration::from_secs(5));
    assert!(
        open_for < Duration::from_secs(3),
        "keep-alive closed after {open_for:?}"
    );

    let mut slow_head = connect(server.port);
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_000));
    let timed_out = volume_support::read_response(&mut slow_head, false);
    assert_eq!(
        timed_out.status, 408,
        "a started head gets the header timeout, not idle"
    );
}
