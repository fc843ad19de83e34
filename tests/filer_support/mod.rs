//! Helpers of the filer tests: an HTTP client, a Kelp cluster with its filer(s), and the
//! SeaweedFS filer API cases shared by the tests against Kelp (each store) and against
//! SeaweedFS 4.48's own filer.
#![allow(dead_code)]

pub mod cases;
pub mod servers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::support::{self, ChildGuard};

/// An answer: status, lower-cased header names with values, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the filer");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    parse_response(&response, method == "HEAD")
}

fn parse_response(response: &[u8], head_only: bool) -> Answer {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A multipart/form-data body with one file part.
pub fn multipart(filename: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "kelpfilerboundary7d3";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `kelp server` (master, one single-core volume server, and unless `filer_port` is 0 a
/// filer on redb), ready to take files.
pub struct KelpCluster {
    pub server: ChildGuard,
    pub master_port: u16,
    pub volume_port: u16,
}

impl KelpCluster {
    pub fn start(root: &Path, filer_port: u16) -> KelpCluster {
        KelpCluster::start_with(root, filer_port, &[])
    }

    /// `start` with more flags for `kelp server`.
    pub fn start_with(root: &Path, filer_port: u16, extra: &[&str]) -> KelpCluster {
        let master_port = support::free_port();
        let volume_port = support::free_port_run(2);
        let dir = root.join("data");
        let args = [
            "server".to_string(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
            "--master-port".into(),
            master_port.to_string(),
            "--volume-port".into(),
            volume_port.to_string(),
            "--filer-port".into(),
            filer_port.to_string(),
            "--cores".into(),
            "1".into(),
            "--max".into(),
            "16".into(),
        ];
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(extra);
        let log = root.join("server.log");
        let server = ChildGuard::spawn_kelp("kelp server", &args, &log);
        support::wait_until("kelp server ready", Duration::from_secs(60), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("server: ready"))
        });
        KelpCluster {
            server,
            master_port,
            volume_port,
        }
    }

    pub fn master(&self) -> String {
        format!("127.0.0.1:{}", self.master_port)
    }
}

/// `kelp filer` on `store` against `master`, listening on `port`.
pub fn start_filer(root: &Path, name: &str, port: u16, master: &str, store: &str) -> ChildGuard {
    start_filer_with(root, name, port, master, store, &[])
}

/// `start_filer` with more flags.
pub fn start_filer_with(
    root: &Path,
    name: &str,
    port: u16,
    master: &str,
    store: &str,
    extra: &[&str],
) -> ChildGuard {
    let dir = root.join(name);
    let args = [
        "filer".to_string(),
        "--port".into(),
        port.to_string(),
        "--master".into(),
        master.to_string(),
        "--store".into(),
        store.to_string(),
        "--dir".into(),
        dir.to_string_lossy().into_owned(),
    ];
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(extra);
    let filer = ChildGuard::spawn_kelp(name, &args, &root.join(format!("{name}.log")));
    support::wait_until(name, Duration::from_secs(30), || {
        support::port_is_open(port)
    });
    filer
}
