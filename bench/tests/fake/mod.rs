//! A fake SeaweedFS cluster for the benchmark's tests: master and volume server in one std::net
//! listener that answers `/dir/assign` and uploads, optionally only for the first N requests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Read one request head + Content-Length body; None when the peer closed.
pub fn read_request(stream: &mut TcpStream) -> Option<String> {
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
pub fn fake_cluster(listener: TcpListener, requests_max: u64) {
    fake_cluster_logged(listener, requests_max, Arc::new(Mutex::new(Vec::new())));
}

/// `fake_cluster`, appending the request line of every request it answers to `log`.
pub fn fake_cluster_logged(listener: TcpListener, requests_max: u64, log: Arc<Mutex<Vec<String>>>) {
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
        let (addr, requests, stop, log) =
            (addr.clone(), requests.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || {
            serve_connection(stream, &addr, &requests, &stop, requests_max, &log)
        });
    }
    // Dropping the listener here: new connections are refused from now on.
}

fn serve_connection(
    mut stream: TcpStream,
    addr: &str,
    requests: &AtomicU64,
    stop: &AtomicBool,
    requests_max: u64,
    log: &Mutex<Vec<String>>,
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
        let request_line = head.lines().next().unwrap_or("").to_string();
        log.lock().unwrap().push(request_line);
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

/// A master that is not the leader: every request gets 503 naming `leader`.
pub fn fake_follower(listener: TcpListener, leader: String) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        let leader = leader.clone();
        std::thread::spawn(move || {
            while read_request(&mut stream).is_some() {
                let body = format!(r#"{{"error":"not the leader; leader is {leader}"}}"#);
                let response = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}
