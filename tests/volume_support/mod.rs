//! Helpers for the volume server's end-to-end tests: start `kelp volume`, speak raw HTTP/1.1
//! over std TcpStream, run curl, and a tiny fake master on a std TcpListener.
#![allow(dead_code)]

use crate::support::{ChildGuard, dead_address, free_port_run, port_is_open, wait_until};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct VolumeServer {
    pub guard: ChildGuard,
    pub dir: PathBuf,
    pub port: u16,
    pub cores: usize,
    pub log: PathBuf,
    args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl VolumeServer {
    /// Start `kelp volume` on fresh ports in a fresh directory; `master` "" = a dead port.
    pub fn start(cores: usize, master: &str, extra: &[&str]) -> VolumeServer {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut server = VolumeServer::start_in(&dir, cores, master, extra);
        server._temp = Some(temp);
        server
    }

    pub fn start_in(dir: &Path, cores: usize, master: &str, extra: &[&str]) -> VolumeServer {
        let port = free_port_run(cores as u16 + 1);
        let master = if master.is_empty() {
            dead_address()
        } else {
            master.to_string()
        };
        let mut args: Vec<String> = vec![
            "volume".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--master".into(),
            master,
            "--cores".into(),
            cores.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join("volume.log");
        let guard = spawn(&args, port, &log);
        let server = VolumeServer {
            guard,
            dir: dir.to_path_buf(),
            port,
            cores,
            log,
            args,
            _temp: None,
        };
        server.wait_ready();
        server
    }

    fn ports(&self) -> Vec<u16> {
        (0..=self.cores as u16).map(|i| self.port + i).collect()
    }

    /// Ready = every port answers `/healthz` (an open port alone may still be the listener
    /// of a killed process whose io_uring is being torn down).
    fn wait_ready(&self) {
        let ports = self.ports();
        let log = self.log.clone();
        wait_until(
            &format!("kelp volume on ports {ports:?} (log {})", log.display()),
            Duration::from_secs(20),
            || ports.iter().all(|&p| healthy(p)),
        );
    }

    /// SIGKILL and start again on the same directory and ports.
    pub fn crash_and_restart(&mut self) {
        self.guard.kill();
        let ports = self.ports();
        wait_until(
            "the killed server's ports to close",
            Duration::from_secs(10),
            || ports.iter().all(|&p| !port_is_open(p)),
        );
        self.guard = spawn(&self.args, self.port, &self.log);
        self.wait_ready();
    }

    /// SIGTERM; asserts the server stops by itself with status 0 (within 10 s), then starts
    /// it again on the same directory and ports.
    pub fn stop_and_restart(&mut self) {
        self.guard.terminate(Duration::from_secs(10));
        let status = self.guard.child.try_wait().expect("wait").expect("reaped");
        assert!(
            status.success(),
            "a stopped server exits 0, got {status}; log:\n{}",
            self.log_text()
        );
        self.guard = spawn(&self.args, self.port, &self.log);
        self.wait_ready();
    }

    pub fn core_port(&self, core: usize) -> u16 {
        self.port + 1 + core as u16
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `POST /admin/volume/create?volume=<id>&<extra>`, asserting 200.
    pub fn create_volume(&self, volume_id: u32, extra_query: &str) {
        let path = format!("/admin/volume/create?volume={volume_id}&{extra_query}");
        let response = request(self.port, "POST", &path, &[], b"");
        assert_eq!(
            response.status,
            200,
            "create volume {volume_id}: {}",
            response.text()
        );
    }
}

/// Does `GET /healthz` on `port` answer 200?
pub fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(&encode("GET", "/healthz", &[], b""))
        .is_err()
    {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok() && &answer[9..12] == b"200"
}

fn spawn(args: &[String], port: u16, log: &Path) -> ChildGuard {
    let mut full: Vec<String> = args.to_vec();
    full.push("--port".into());
    full.push(port.to_string());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ChildGuard::spawn_kelp("kelp volume", &refs, log)
}

// The net crate's raw-socket tests read responses into the same type.
#[path = "../../net/tests/support/raw_response.rs"]
mod raw_response;
pub use raw_response::RawResponse;

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Encode one request (Content-Length always set).
pub fn encode(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a new connection.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = connect(port);
    stream
        .write_all(&encode(method, path, headers, body))
        .expect("send request");
    read_response(&mut stream, method == "HEAD")
}

pub fn get(port: u16, path: &str) -> RawResponse {
    request(port, "GET", path, &[], b"")
}

/// Read one response (Content-Length framed; HEAD and 1xx/204/304 have no body); the
/// connection must have no other response in flight (see `read_responses` for pipelining).
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> RawResponse {
    let mut pending = Vec::new();
    let response = read_buffered(stream, &mut pending, head_only);
    assert!(
        pending.is_empty(),
        "bytes after the response: {:?}",
        String::from_utf8_lossy(&pending)
    );
    response
}

/// Read `count` pipelined responses (none to HEAD).
pub fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<RawResponse> {
    let mut pending = Vec::new();
    (0..count)
        .map(|_| read_buffered(stream, &mut pending, false))
        .collect()
}

fn read_buffered(stream: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> RawResponse {
    let mut buffer = std::mem::take(pending);
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).expect("read response head");
        assert!(
            read > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let no_body = head_only || status == 304 || status == 204 || status < 200;
    let want = if no_body { 0 } else { length };
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < want {
        let mut chunk = vec![0u8; (want - body.len()).min(1 << 20)];
        let read = stream.read(&mut chunk).expect("read response body");
        assert!(read > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..read]);
    }
    *pending = body.split_off(want);
    RawResponse {
        status,
        headers,
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Run curl with `args`; returns (stdout, stderr), asserting it ran.
pub fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A fake master answering `/dir/lookup` from a table and recording heartbeats.
pub struct FakeMaster {
    pub port: u16,
    pub locations: Arc<Mutex<HashMap<u32, Vec<String>>>>,
    pub heartbeats: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeMaster {
    pub fn start() -> FakeMaster {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake master");
        let port = listener.local_addr().expect("addr").port();
        let locations: Arc<Mutex<HashMap<u32, Vec<String>>>> = Arc::default();
        let heartbeats: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let (table, beats) = (locations.clone(), heartbeats.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (table, beats) = (table.clone(), beats.clone());
                std::thread::spawn(move || serve_fake_master(stream, &table, &beats));
            }
        });
        FakeMaster {
            port,
            locations,
            heartbeats,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_locations(&self, volume_id: u32, urls: &[String]) {
        self.locations
            .lock()
            .unwrap()
            .insert(volume_id, urls.to_vec());
    }
}

fn serve_fake_master(
    mut stream: TcpStream,
    table: &Mutex<HashMap<u32, Vec<String>>>,
    beats: &Mutex<Vec<serde_json::Value>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        let Some((path, body)) = read_request(&mut stream) else {
            return;
        };
        let (status, answer) = if path.starts_with("/heartbeat") {
            if let Ok(json) = serde_json::from_slice(&body) {
                beats.lock().unwrap().push(json);
            }
            (
                200,
                r#"{"volumeSizeLimit":1073741824,"pulseSeconds":1,"leader":""}"#.to_string(),
            )
        } else if let Some(id) = path.split("volumeId=").nth(1) {
            let id: u32 = id.split('&').next().unwrap_or("").parse().unwrap_or(0);
            match table.lock().unwrap().get(&id) {
                Some(urls) => {
                    let locations: Vec<String> = urls
                        .iter()
                        .map(|u| format!(r#"{{"url":"{u}","publicUrl":"{u}","dataCenter":"dc"}}"#))
                        .collect();
                    (
                        200,
                        format!(
                            r#"{{"volumeOrFileId":"{id}","locations":[{}]}}"#,
                            locations.join(",")
                        ),
                    )
                }
                None => (404, format!(r#"{{"error":"volume id {id} not found"}}"#)),
            }
        } else {
            (404, r#"{"error":"unknown path"}"#.to_string())
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let path = head.split(' ').nth(1)?.to_string();
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some((path, body))
}

/// A connection to 127.0.0.1:`port` whose local address is `source` (another loopback
/// address, such as 127.0.0.2), so the server sees a peer other than 127.0.0.1.
pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd as _;
    let address = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, owned by the TcpStream built from it below (or closed on error).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is ours; nothing else owns it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = address(source, 0);
    // SAFETY: bind(2) with a sockaddr_in of `length` bytes.
    let bound = unsafe { libc::bind(fd, (&raw const local).cast(), length) };
    assert_eq!(
        bound,
        0,
        "bind {source}: {}",
        std::io::Error::last_os_error()
    );
    let remote = address(std::net::Ipv4Addr::LOCALHOST, port);
    // SAFETY: connect(2) with a sockaddr_in of `length` bytes.
    let connected = unsafe { libc::connect(fd, (&raw const remote).cast(), length) };
    assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// One request from local address `source` on a new connection.
pub fn request_from(
    source: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
) -> RawResponse {
    let mut stream = connect_from(source, port);
    stream
        .write_all(&encode(method, path, &[], b""))
        .expect("send request");
    read_response(&mut stream, method == "HEAD")
}
