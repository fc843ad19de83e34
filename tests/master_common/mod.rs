//! Helpers of the master and cluster end-to-end tests: a tiny blocking HTTP client, masters
//! started as real `kelp master` processes, and a fake volume server (admin calls, uploads,
//! heartbeats) that stands in for `kelp volume`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{ChildGuard, free_port, wait_until};

// A complete HTTP answer: the raw-socket test clients' response type.
#[path = "../../net/tests/support/raw_response.rs"]
mod raw_response;
pub use raw_response::RawResponse as Answer;

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One request on a fresh connection (`Connection: close`); Err when the server is down.
pub fn http(
    method: &str,
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, String> {
    // Bounded: a peer cut off by a partition drops the SYN, and connect would wait minutes.
    let socket = std::net::ToSocketAddrs::to_socket_addrs(address)
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(3))
        .map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("{address}: send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("{address}: read: {e}"))?;
    parse_answer(&raw, method == "HEAD").ok_or_else(|| format!("{address}: malformed answer"))
}

fn parse_answer(raw: &[u8], head_only: bool) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = if head_only {
        Vec::new()
    } else {
        raw[end + 4..].to_vec()
    };
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

pub fn get(address: &str, path: &str) -> Result<Answer, String> {
    http("GET", address, path, &[], b"")
}

pub fn post(address: &str, path: &str, body: &[u8]) -> Result<Answer, String> {
    http(
        "POST",
        address,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A `kelp master` process with short Raft timeouts and a 1 s pulse (both changeable before
/// it is spawned), on 127.0.0.1 or on `ip` inside the network namespace `netns`.
pub struct MasterProcess {
    pub address: String,
    pub port: u16,
    pub ip: String,
    pub netns: Option<String>,
    pub mdir: std::path::PathBuf,
    pub peers: String,
    pub log: std::path::PathBuf,
    pub pulse_seconds: u64,
    pub raft_election_ms: u64,
    pub guard: Option<ChildGuard>,
}

impl MasterProcess {
    /// A master not yet spawned (see `spawn` and `launch`).
    pub fn new(dir: &Path, name: &str, port: u16, peers: &str) -> MasterProcess {
        MasterProcess {
            address: format!("127.0.0.1:{port}"),
            port,
            ip: "127.0.0.1".to_string(),
            netns: None,
            mdir: dir.join(name),
            peers: peers.to_string(),
            log: dir.join(format!("{name}.log")),
            pulse_seconds: 1,
            raft_election_ms: 500,
            guard: None,
        }
    }

    pub fn start(dir: &Path, name: &str, port: u16, peers: &str, extra: &[&str]) -> MasterProcess {
        let mut master = MasterProcess::new(dir, name, port, peers);
        master.spawn(extra);
        master
    }

    /// Spawn and wait until it listens.
    pub fn spawn(&mut self, extra: &[&str]) {
        self.launch(extra);
        self.wait_listening();
    }

    /// Spawn without waiting (masters started at the same instant).
    pub fn launch(&mut self, extra: &[&str]) {
        let port = self.port.to_string();
        let mdir = self.mdir.to_string_lossy().into_owned();
        let pulse = self.pulse_seconds.to_string();
        let election = self.raft_election_ms.to_string();
        let heartbeat = (self.raft_election_ms / 5).to_string();
        let mut args = vec![
            "master",
            "--port",
            &port,
            "--ip",
            &self.ip,
            "--mdir",
            &mdir,
            "--pulse-seconds",
            &pulse,
            "--raft-heartbeat-ms",
            &heartbeat,
            "--raft-election-ms",
            &election,
        ];
        if !self.peers.is_empty() {
            args.extend(["--peers", &self.peers]);
        }
        args.extend(extra);
        let name = format!("master {}", self.address);
        self.guard = Some(match &self.netns {
            None => ChildGuard::spawn_kelp(&name, &args, &self.log),
            Some(netns) => crate::support::spawn_kelp_in_netns(netns, &name, &args, &self.log),
        });
    }

    pub fn wait_listening(&self) {
        let address = self.address.clone();
        let socket: std::net::SocketAddr = address.parse().expect("master address is ip:port");
        wait_until("the master to listen", Duration::from_secs(20), || {
            TcpStream::connect_timeout(&socket, Duration::from_millis(200)).is_ok()
        });
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        let answer = get(&self.address, "/cluster/status").ok()?;
        (answer.status == 200).then(|| answer.json())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A volume the fake server holds.
#[derive(Debug, Clone)]
pub struct FakeVolume {
    pub id: u32,
    pub collection: String,
    pub replication: String,
    pub ttl: String,
}

/// Stands in for a volume server: answers `/admin/volume/create|delete` (507 past `max`),
/// stores uploads in memory, and heartbeats to the masters every second while `beating`.
pub struct FakeVolumeServer {
    pub port: u16,
    pub address: String,
    pub volumes: Arc<Mutex<BTreeMap<u32, FakeVolume>>>,
    pub files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub beating: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeVolumeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(&self.address);
    }
}

impl FakeVolumeServer {
    pub fn start(masters: Vec<String>, data_center: &str, rack: &str, max: u32) -> Self {
        FakeVolumeServer::start_on("127.0.0.1", free_port(), masters, data_center, rack, max)
    }

    /// `start`, listening on `ip:port` (and advertising it).
    pub fn start_on(
        ip: &str,
        port: u16,
        masters: Vec<String>,
        data_center: &str,
        rack: &str,
        max: u32,
    ) -> Self {
        let listener = TcpListener::bind((ip, port)).expect("bind fake volume server");
        let server = FakeVolumeServer {
            port,
            address: format!("{ip}:{port}"),
            volumes: Arc::default(),
            files: Arc::default(),
            beating: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (volumes, files, stop) = (
            server.volumes.clone(),
            server.files.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || serve_fake(listener, volumes, files, stop, max));
        let beat = Beater {
            ip: ip.to_string(),
            port,
            data_center: data_center.to_string(),
            rack: rack.to_string(),
            max,
            masters,
            volumes: server.volumes.clone(),
            beating: server.beating.clone(),
            stop: server.stop.clone(),
        };
        std::thread::spawn(move || beat.run());
        server
    }

    pub fn volume_ids(&self) -> Vec<u32> {
        self.volumes.lock().unwrap().keys().copied().collect()
    }
}

struct Beater {
    ip: String,
    port: u16,
    data_center: String,
    rack: String,
    max: u32,
    masters: Vec<String>,
    volumes: Arc<Mutex<BTreeMap<u32, FakeVolume>>>,
    beating: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Beater {
    fn body(&self) -> Vec<u8> {
        let volumes: Vec<serde_json::Value> = self
            .volumes
            .lock()
            .unwrap()
            .values()
            .map(|v| {
                serde_json::json!({
                    "id": v.id, "port": self.port, "size": 100, "collection": v.collection,
                    "fileCount": 1, "deleteCount": 0, "deletedByteCount": 0, "readOnly": false,
                    "replicaPlacement": v.replication, "ttl": v.ttl, "compactRevision": 0,
                })
            })
            .collect();
        let beat = serde_json::json!({
            "ip": self.ip, "port": self.port, "publicUrl": format!("{}:{}", self.ip, self.port),
            "dataCenter": self.data_center, "rack": self.rack, "maxVolumeCount": self.max,
            "maxFileKey": 0, "volumes": volumes,
        });
        beat.to_string().into_bytes()
    }

    /// Beat to the current master; on failure try the next; follow the `leader` it names.
    fn run(self) {
        let mut target = self.masters[0].clone();
        let mut next = 0;
        while !self.stop.load(Ordering::Acquire) {
            if self.beating.load(Ordering::Acquire) {
                match post(&target, "/heartbeat", &self.body()) {
                    Ok(answer) if answer.status == 200 => {
                        let leader = answer.json()["leader"].as_str().unwrap_or("").to_string();
                        if !leader.is_empty() {
                            target = leader;
                        }
                    }
                    _ => {
                        // The master after the one that failed (not the same one again).
                        if let Some(failed) = self.masters.iter().position(|m| *m == target) {
                            next = failed;
                        }
                        next = (next + 1) % self.masters.len();
                        target = self.masters[next].clone();
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(700));
        }
    }
}

type Volumes = Arc<Mutex<BTreeMap<u32, FakeVolume>>>;
type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

fn serve_fake(
    listener: TcpListener,
    volumes: Volumes,
    files: Files,
    stop: Arc<AtomicBool>,
    max: u32,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (volumes, files) = (volumes.clone(), files.clone());
        std::thread::spawn(move || {
            let _ = handle_fake(stream, &volumes, &files, max);
        });
    }
}

fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        raw.extend_from_slice(&buffer[..read]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut parts = head.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..read]);
    }
    Some((method, target, body))
}

fn handle_fake(mut stream: TcpStream, volumes: &Volumes, files: &Files, max: u32) -> Option<()> {
    let (method, target, body) = read_request(&mut stream)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let (status, answer) = match path {
        "/admin/volume/create" => {
            let id: u32 = param("volume").parse().ok()?;
            let mut volumes = volumes.lock().unwrap();
            if volumes.len() as u32 >= max && !volumes.contains_key(&id) {
                (507, r#"{"error":"max volumes reached"}"#.to_string())
            } else {
                let volume = FakeVolume {
                    id,
                    collection: param("collection"),
                    replication: param("replication"),
                    ttl: param("ttl"),
                };
                volumes.insert(id, volume);
                // As the real volume server answers: the port that serves the new volume.
                let port = stream.local_addr().ok()?.port();
                (200, format!(r#"{{"volume":{id},"port":{port}}}"#))
            }
        }
        "/admin/volume/delete" => {
            let id: u32 = param("volume").parse().ok()?;
            match volumes.lock().unwrap().remove(&id) {
                Some(_) => (200, "{}".to_string()),
                None => (404, r#"{"error":"no such volume"}"#.to_string()),
            }
        }
        _ if method == "POST" => {
            let fid = path.trim_start_matches('/').to_string();
            let size = body.len();
            files.lock().unwrap().insert(fid, body);
            (
                201,
                format!(r#"{{"name":"upload","size":{size},"eTag":"00000000"}}"#),
            )
        }
        _ => match files.lock().unwrap().get(path.trim_start_matches('/')) {
            Some(data) => (200, String::from_utf8_lossy(data).into_owned()),
            None => (404, String::new()),
        },
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(answer.as_bytes()).ok()
}

/// The leader's address once every listed master agrees on it and knows all `members`.
pub fn wait_for_leader(masters: &[&MasterProcess], members: usize, timeout: Duration) -> String {
    let mut leader = String::new();
    wait_until("one leader that all masters agree on", timeout, || {
        let statuses: Vec<serde_json::Value> = masters.iter().filter_map(|m| m.status()).collect();
        if statuses.len() != masters.len() {
            return false;
        }
        let first = statuses[0]["Leader"].as_str().unwrap_or("").to_string();
        let agreed = !first.is_empty()
            && statuses.iter().all(|s| {
                s["Leader"].as_str() == Some(first.as_str())
                    && s["Peers"].as_array().map_or(0, Vec::len) + 1 == members
            });
        let leaders = statuses.iter().filter(|s| s["IsLeader"] == true).count();
        if agreed && leaders == 1 {
            leader = first;
        }
        agreed && leaders == 1
    });
    leader
}

/// Assign through `address`, retrying 503s (leader changing) for up to `timeout`.
pub fn assign_retrying(address: &str, query: &str, timeout: Duration) -> serde_json::Value {
    let mut last = String::new();
    let mut result = None;
    wait_until(
        &format!("an assignment through {address}"),
        timeout,
        || match get(address, &format!("/dir/assign?{query}")) {
            Ok(answer) if answer.status == 200 => {
                result = Some(answer.json());
                true
            }
            Ok(answer) => {
                last = answer.text();
                false
            }
            Err(error) => {
                last = error;
                false
            }
        },
    );
    let _ = last;
    result.expect("assignment")
}

/// A real `kelp volume` process (ports `port..=port+cores`).
pub struct RealVolumeServer {
    pub port: u16,
    pub address: String,
    pub dir: std::path::PathBuf,
    pub log: std::path::PathBuf,
    args: Vec<String>,
    cores: u16,
    pub guard: Option<ChildGuard>,
}

/// Where a volume server stands: its own address, data center and rack.
pub struct Site<'a> {
    pub ip: &'a str,
    pub data_center: &'a str,
    pub rack: &'a str,
}

impl RealVolumeServer {
    pub fn start(dir: &Path, masters: &str, data_center: &str, max: u32) -> RealVolumeServer {
        let site = Site {
            ip: "127.0.0.1",
            data_center,
            rack: "",
        };
        RealVolumeServer::start_at(dir, masters, &site, max, 2)
    }

    /// On `site.ip` with its data center and rack, `cores` cores.
    pub fn start_at(
        dir: &Path,
        masters: &str,
        site: &Site,
        max: u32,
        cores: u16,
    ) -> RealVolumeServer {
        RealVolumeServer::start_with(dir, masters, site, max, cores, &[])
    }

    /// `start_at` with more flags.
    pub fn start_with(
        dir: &Path,
        masters: &str,
        site: &Site,
        max: u32,
        cores: u16,
        extra: &[&str],
    ) -> RealVolumeServer {
        std::fs::create_dir_all(dir).unwrap();
        let port = crate::support::free_port_run(cores + 1);
        let mut args: Vec<String> = [
            "volume",
            "--dir",
            &dir.display().to_string(),
            "--ip",
            site.ip,
            "--port",
            &port.to_string(),
            "--cores",
            &cores.to_string(),
            "--master",
            masters,
            "--data-center",
            site.data_center,
            "--max",
            &max.to_string(),
        ]
        .map(String::from)
        .to_vec();
        if !site.rack.is_empty() {
            args.extend(["--rack".to_string(), site.rack.to_string()]);
        }
        args.extend(extra.iter().map(|flag| flag.to_string()));
        let mut server = RealVolumeServer {
            port,
            address: format!("{}:{port}", site.ip),
            dir: dir.to_path_buf(),
            log: dir.with_extension("log"),
            args,
            cores,
            guard: None,
        };
        server.spawn();
        server
    }

    pub fn spawn(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let name = format!("volume {}", self.address);
        self.guard = Some(ChildGuard::spawn_kelp(&name, &args, &self.log));
        let ip = self
            .address
            .rsplit_once(':')
            .expect("ip:port")
            .0
            .to_string();
        let ports: Vec<u16> = (self.port..=self.port + self.cores).collect();
        wait_until(
            "kelp volume to answer /healthz",
            Duration::from_secs(20),
            || {
                ports
                    .iter()
                    .all(|p| get(&format!("{ip}:{p}"), "/healthz").is_ok_and(|a| a.status == 200))
            },
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }
}

/// `kelp volume` on its own address `ip` (127.0.0.x) with its own data center (rack `r1`),
/// one core, the default 8 volume slots, its data in `<dir>/<data center>`.
pub struct PlacedVolumeServer;

impl PlacedVolumeServer {
    pub fn start(
        dir: &Path,
        ip: &str,
        data_center: &str,
        master: &str,
        extra: &[&str],
    ) -> RealVolumeServer {
        let site = Site {
            ip,
            data_center,
            rack: "r1",
        };
        RealVolumeServer::start_with(&dir.join(data_center), master, &site, 8, 1, extra)
    }
}

/// A `curl -F file=@<name>` body: (content type, bytes).
pub fn multipart_file(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "------------------------kelpboundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Assign through `master` and upload `data`; the fid once stored (201), None while the
/// cluster cannot take it.
pub fn assign_and_upload(master: &str, data: &[u8]) -> Option<String> {
    let assigned = get(master, "/dir/assign").ok()?;
    if assigned.status != 200 {
        return None;
    }
    let json = assigned.json();
    let fid = json["fid"].as_str()?.to_string();
    let url = json["url"].as_str()?.to_string();
    let (content_type, body) = multipart_file("f.txt", data);
    let headers = [("Content-Type", content_type.as_str())];
    let stored = http("POST", &url, &format!("/{fid}"), &headers, &body).ok()?;
    (stored.status == 201).then_some(fid)
}

/// `curl -L`: follow redirects (up to 5) and return the final answer.
pub fn get_following(address: &str, path: &str) -> Result<Answer, String> {
    let mut answer = get(address, path)?;
    for _ in 0..5 {
        if !(300..400).contains(&answer.status) {
            break;
        }
        let location = answer
            .header("location")
            .ok_or("redirect without location")?;
        let rest = location
            .strip_prefix("http://")
            .ok_or("location is not http")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        answer = get(host, path)?;
    }
    Ok(answer)
}

/// `count` masters that know each other (m0, m1, ...), every process spawned before any is
/// waited for: they start at the same instant.
pub fn launch_together(dir: &Path, count: usize) -> Vec<MasterProcess> {
    launch_together_with(dir, count, |_| {})
}

/// `launch_together`, each master changed by `configure` before it is spawned.
pub fn launch_together_with(
    dir: &Path,
    count: usize,
    configure: impl Fn(&mut MasterProcess),
) -> Vec<MasterProcess> {
    let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
    let peers = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut masters: Vec<MasterProcess> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| MasterProcess::new(dir, &format!("m{i}"), *port, &peers))
        .collect();
    for master in &mut masters {
        configure(master);
    }
    for master in &mut masters {
        master.launch(&[]);
    }
    for master in &masters {
        master.wait_listening();
    }
    masters
}

/// The members a `/cluster/status` answer lists: (address, role, reachable, is leader).
pub fn members_of(status: &serde_json::Value) -> Vec<(String, String, bool, bool)> {
    let Some(members) = status["Members"].as_array() else {
        return Vec::new();
    };
    members
        .iter()
        .map(|m| {
            (
                m["Address"].as_str().unwrap_or("").to_string(),
                m["Role"].as_str().unwrap_or("").to_string(),
                m["Reachable"] == true,
                m["IsLeader"] == true,
            )
        })
        .collect()
}

/// Whether every status lists exactly `voters` (as reachable voters, no learners) and names
/// the same leader, which alone says `IsLeader`; that leader's address.
pub fn agreed_voters(statuses: &[serde_json::Value], voters: &[String]) -> Option<String> {
    let leader = statuses.first()?["Leader"].as_str()?.to_string();
    let mut expected: Vec<&String> = voters.iter().collect();
    expected.sort();
    for status in statuses {
        let members = members_of(status);
        let mut listed: Vec<&String> = members
            .iter()
            .filter(|(_, role, reachable, _)| role == "voter" && *reachable)
            .map(|(address, ..)| address)
            .collect();
        listed.sort();
        let leaders: Vec<&String> = members
            .iter()
            .filter(|m| m.3)
            .map(|(address, ..)| address)
            .collect();
        if status["Leader"].as_str() != Some(leader.as_str())
            || listed != expected
            || members.len() != voters.len()
            || leaders != [&leader]
        {
            return None;
        }
    }
    let leading = statuses.iter().filter(|s| s["IsLeader"] == true).count();
    (!leader.is_empty() && leading == 1).then_some(leader)
}

/// Wait until every one of `masters` lists all of them as reachable voters and they agree on
/// one leader; returns the leader. Panics with the last statuses seen.
pub fn wait_for_voters(masters: &[&MasterProcess], timeout: Duration) -> String {
    let voters: Vec<String> = masters.iter().map(|m| m.address.clone()).collect();
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        last = masters
            .iter()
            .map(|m| m.status().unwrap_or_default())
            .collect();
        if let Some(leader) = agreed_voters(&last, &voters) {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no agreement on {voters:?} as voters with one leader within {timeout:?}; last statuses: {last:#?}"
    );
}

/// The file key of a fid (the hex between the comma and the 8-digit cookie).
pub fn key_of(fid: &str) -> u64 {
    let hex = fid.split_once(',').expect("fid has a comma").1;
    u64::from_str_radix(&hex[..hex.len() - 8], 16).expect("key hex")
}

/// Keys handed out so far, as ranges `first -> end` (end exclusive).
#[derive(Default)]
pub struct KeyRanges {
    pub ranges: BTreeMap<u64, u64>,
    pub keys: u64,
}

/// Record the keys of an assignment (`count` keys from the fid's key); fail on any overlap.
pub fn record(seen: &mut KeyRanges, answer: &serde_json::Value) {
    let fid = answer["fid"].as_str().expect("fid");
    let count = answer["count"].as_u64().expect("count");
    let (first, end) = (key_of(fid), key_of(fid) + count);
    if let Some((_, before_end)) = seen.ranges.range(..=first).next_back() {
        assert!(
            *before_end <= first,
            "key {first} handed out twice (fid {fid})"
        );
    }
    if let Some((after_first, _)) = seen.ranges.range(first..).next() {
        assert!(
            end <= *after_first,
            "key {after_first} handed out twice (fid {fid})"
        );
    }
    seen.ranges.insert(first, end);
    seen.keys += count;
}
