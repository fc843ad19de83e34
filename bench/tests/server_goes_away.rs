//! A server that disappears in the middle of a run: the benchmark must stop on its own, say
//! which server went away, and still give the report of what was done until then.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use kelp_bench::Args;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

/// Read one request head + Content-Length body; None when the peer closed.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}

/// Master and volume server in one: answers assigns and uploads until `requests_max` requests,
/// then stops listening and drops every connection.
fn fake_cluster(listener: TcpListener, requests_max: u64) {
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let Ok((stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        stream.set_nonblocking(false).unwrap();
        let (addr, requests, stop) = (addr.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || serve_connection(stream, &addr, &requests, &stop, requests_max));
    }
    // Dropping the listener here: new connections are refused from now on.
}

fn serve_connection(
    mut stream: TcpStream,
    addr: &str,
    requests: &AtomicU64,
    stop: &AtomicBool,
    requests_max: u64,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(head) = read_request(&mut stream) else {
            // Idle past the read timeout or closed by the client: check `stop` again.
            if stream.peek(&mut [0u8; 1]).is_ok_and(|n| n == 0) {
                return;
            }
            continue;
        };
        if requests.fetch_add(1, Ordering::SeqCst) + 1 >= requests_max {
            stop.store(true, Ordering::SeqCst);
            return;
        }
        let body = if head.starts_with("GET /dir/assign") {
            format!(r#"{{"fid":"1,01deadbeef","url":"{addr}","publicUrl":"{addr}","count":1}}"#)
        } else {
            r#"{"name":".","size":1000}"#.to_string()
        };
        let status = if head.starts_with("GET") {
            "200 OK"
        } else {
            "201 Created"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn server_that_goes_away_ends_the_run_with_a_partial_report() {
    // Proves: when the only server stops after 400 requests, the benchmark ends by itself
    // (well before its 1,000,000 writes), names the server in the reason, reports the writes
    // that completed, and `run` turns the abort into an error.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || fake_cluster(listener, 400));
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    let json = dir.path().join("report.json");
    let argv = [
        "benchmark",
        "--master",
        &addr,
        "-n",
        "1000000",
        "-c",
        "4",
        "--threads",
        "2",
        "--list",
        list.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--duration",
        "20",
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let report = kelp_bench::run_benchmark(&args, false).expect("run returns its report");
    server.join().expect("fake server");

    let reason = report.aborted.as_deref().expect("the run was aborted");
    assert!(
        reason.contains("went away") && reason.contains(&addr),
        "{reason}"
    );
    assert_eq!(
        report.phases.len(),
        1,
        "no read phase after an aborted write phase"
    );
    let write = &report.phases[0];
    assert!(
        write.completed > 0 && write.completed < 200,
        "completed {}",
        write.completed
    );
    assert!(write.failed >= 3, "failed {}", write.failed);
    assert_eq!(write.aborted.as_deref(), Some(reason));
    let listed = std::fs::read_to_string(&list).expect("fid list written");
    assert_eq!(listed.lines().count() as u64, write.completed);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).unwrap();
    assert_eq!(json["phases"][0]["completed"], write.completed);
    assert!(json["aborted"].as_str().unwrap().contains("went away"));

    // The CLI entry point reports the same run as an error.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || fake_cluster(listener, 50));
    let argv = [
        "benchmark",
        "--master",
        &addr,
        "-n",
        "1000000",
        "-c",
        "2",
        "--threads",
        "1",
        "--list",
        list.to_str().unwrap(),
        "--duration",
        "20",
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let error = kelp_bench::run(args).unwrap_err().to_string();
    server.join().expect("fake server");
    assert!(
        error.starts_with("benchmark aborted: a server went away"),
        "{error}"
    );
}
