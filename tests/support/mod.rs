//! Helpers shared by the end-to-end tests: the `kelp` binary, free loopback ports, and child
//! processes that are stopped (by pid) when the test ends, pass or fail.
//! Include with `mod support;` from a file in `tests/`. Append new helpers at the end.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `kelp` binary cargo built for these tests.
pub fn kelp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kelp")
}

/// Test ports come from here, below the kernel's ephemeral range (32768 and up on Linux by
/// default): a port the kernel hands out with `bind(0)` may be taken a moment later by any
/// outgoing connection as its local port, before the test's server binds it; these never are.
/// Other tools here use explicit ports at 23000 and above.
const TEST_PORTS: std::ops::Range<u16> = 10_000..20_000;

/// The next candidate of `TEST_PORTS` for this process: a process-wide cursor, so the tests
/// of one binary (threads) never get the same port, starting at a place drawn from the pid,
/// so test binaries run side by side start far apart.
fn next_test_port(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let seed = (std::process::id().wrapping_mul(7919)) % span;
    let _ = CURSOR.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    let offset = CURSOR.fetch_add(u32::from(count), Ordering::Relaxed) % span;
    let offset = offset.min(span - u32::from(count));
    TEST_PORTS.start + offset as u16
}

/// A loopback port that is free (bound and released to check) and outside the ephemeral range.
pub fn free_port() -> u16 {
    free_port_run(1)
}

/// A loopback address where nothing listens, ever: port 1 is privileged and unused, so a
/// connection there is refused. (A port from `free_port` may be taken by another test's server
/// a moment later, which would then answer in place of "nobody".)
pub fn dead_address() -> String {
    "127.0.0.1:1".to_string()
}

/// `count` consecutive free loopback ports (for servers that take `--port` and use port+1, ...).
pub fn free_port_run(count: u16) -> u16 {
    assert!((1..TEST_PORTS.end - TEST_PORTS.start).contains(&count));
    for _ in 0..200 {
        let base = next_test_port(count);
        let all_free =
            (base..base + count).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no run of {count} free loopback ports found");
}

/// `count` consecutive free loopback ports below 55000 (a Kelp volume server takes its port
/// and one per core) whose first port's gRPC companion (+10000) is free too.
pub fn free_port_pair_run(count: u16) -> u16 {
    for _ in 0..200 {
        let port = free_port_run(count);
        let grpc_free = TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
        if port < 55_000 && grpc_free {
            return port;
        }
    }
    panic!("no run of {count} free ports with a free gRPC companion found");
}

/// A spawned process, killed (SIGKILL, by pid) and reaped when dropped. When dropped by a
/// failing test, the end of its log is printed, so a CI failure shows why the server misbehaved.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
    log_path: std::path::PathBuf,
}

impl ChildGuard {
    /// Spawn `kelp <args>`, stdout/stderr appended to `log_path`.
    pub fn spawn_kelp(name: &str, args: &[&str], log_path: &Path) -> ChildGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log_path.display()));
        ChildGuard::spawn_logged(name, Command::new(kelp_bin()).args(args), log, log_path)
    }

    /// Spawn `command` with stdout and stderr written to `log`.
    fn spawn_logged(
        name: &str,
        command: &mut Command,
        log: std::fs::File,
        log_path: &Path,
    ) -> ChildGuard {
        let child = command
            .stdout(Stdio::from(log.try_clone().expect("clone log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({command:?}): {e}"));
        ChildGuard::adopt(name, child, log_path)
    }

    /// Guard a child spawned elsewhere whose output goes to `log_path`.
    pub fn adopt(name: &str, child: Child, log_path: &Path) -> ChildGuard {
        ChildGuard {
            child,
            name: name.to_string(),
            log_path: log_path.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL now (a crash), and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; SIGKILL after that.
    pub fn terminate(&mut self, timeout: Duration) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the pid of our own child; no memory is touched.
        unsafe {
            libc_kill(pid, 15);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

impl ChildGuard {
    /// The last `LOG_TAIL_LINES` lines of the child's log, to stderr.
    fn print_log_tail(&self) {
        const LOG_TAIL_LINES: usize = 40;
        let path = &self.log_path;
        let text = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        eprintln!(
            "--- last {} lines of {} ({}) ---\n{}\n--- end of {} ---",
            tail.len(),
            self.name,
            path.display(),
            tail.join("\n"),
            self.name
        );
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Poll `probe` every 50 ms until it returns true or `timeout` passes; panics naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if probe() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Is something accepting TCP connections on 127.0.0.1:`port`?
pub fn port_is_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// The SeaweedFS `weed` binary named by `KELP_PEER_WEED`; panics with a clear message when the
/// variable is unset (tests that need the peer must fail, not pass, without it).
pub fn weed_binary() -> std::path::PathBuf {
    let path = std::env::var("KELP_PEER_WEED")
        .expect("KELP_PEER_WEED must name the SeaweedFS `weed` binary (test.sh sets it)");
    std::path::PathBuf::from(path)
}

/// Spawn `weed <args>`, stdout/stderr written to `log_path`.
pub fn spawn_weed(name: &str, args: &[String], log_path: &Path) -> ChildGuard {
    let log = std::fs::File::create(log_path)
        .unwrap_or_else(|e| panic!("create log {}: {e}", log_path.display()));
    ChildGuard::spawn_logged(name, Command::new(weed_binary()).args(args), log, log_path)
}

/// Run `weed <args>` with `stdin` to completion (killed after `timeout`, by pid); its stdout
/// and stderr.
pub fn run_weed(args: &[&str], stdin: &str, timeout: Duration) -> String {
    use std::io::Write;
    let mut child = Command::new(weed_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run weed {args:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "weed {args:?} did not finish within {timeout:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The free disk space below which the peer's volume server turns read-only: a little more than
/// the peer tests write.
const WEED_FREE_SPACE_MIN: &str = "64MiB";

/// A SeaweedFS master and one volume server (each killed when dropped).
pub struct WeedCluster {
    pub master: ChildGuard,
    pub volume: ChildGuard,
    pub master_port: u16,
    pub volume_port: u16,
}

impl WeedCluster {
    /// Start `weed master` (its data in `root/m`, volumes of `volume_size_limit_mb`) and
    /// `weed volume` on `vdir` holding at most `max_volumes`; logs go to `root/master.log` and
    /// `root/volume.log`. Both ports need their gRPC twin (port + 10000) free.
    pub fn start(
        root: &Path,
        vdir: &Path,
        (master_port, volume_port): (u16, u16),
        volume_size_limit_mb: u32,
        max_volumes: u32,
    ) -> WeedCluster {
        let mdir = root.join("m");
        std::fs::create_dir_all(&mdir).unwrap();
        std::fs::create_dir_all(vdir).unwrap();
        let master_args = vec![
            "master".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={master_port}"),
            format!("-mdir={}", mdir.display()),
            format!("-volumeSizeLimitMB={volume_size_limit_mb}"),
            "-peers=none".into(),
            "-telemetry=false".into(),
        ];
        let volume_args = vec![
            "volume".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={volume_port}"),
            format!("-dir={}", vdir.display()),
            format!("-max={max_volumes}"),
            "-preStopSeconds=0".into(),
            format!("-master=127.0.0.1:{master_port}"),
            // SeaweedFS's default (1% of the disk free) turns every volume read-only, and every
            // assign into 406, on a nearly full CI disk that still has gigabytes free.
            format!("-minFreeSpace={WEED_FREE_SPACE_MIN}"),
        ];
        WeedCluster {
            master: spawn_weed("weed master", &master_args, &root.join("master.log")),
            volume: spawn_weed("weed volume", &volume_args, &root.join("volume.log")),
            master_port,
            volume_port,
        }
    }

    /// SIGTERM the volume server, then the master, so both flush their files.
    pub fn stop(&mut self) {
        self.volume.terminate(Duration::from_secs(10));
        self.master.terminate(Duration::from_secs(10));
    }
}

/// Spawn `kelp <args>` inside the network namespace `netns` (`ip netns exec` execs the
/// binary, so the guarded pid is kelp's own), stdout/stderr appended to `log_path`.
pub fn spawn_kelp_in_netns(netns: &str, name: &str, args: &[&str], log_path: &Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", log_path.display()));
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns, kelp_bin()])
        .args(args);
    ChildGuard::spawn_logged(name, &mut command, log, log_path)
}

unsafe extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// A network namespace with a private address on a veth interface (SeaweedFS 4.48's
/// VolumeCopy refuses to dial a source on loopback); the calling thread, and the threads
/// and processes it starts, live in it until drop.
pub struct PrivateNetwork {
    name: String,
    home: std::fs::File,
}

impl PrivateNetwork {
    pub const ADDRESS: &'static str = "10.231.0.1";

    pub fn enter() -> PrivateNetwork {
        use std::os::fd::AsRawFd;
        let ip = |args: &[&str]| {
            let output = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("run ip");
            assert!(
                output.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let home = std::fs::File::open("/proc/thread-self/ns/net").expect("own namespace");
        let name = format!("kelpsw{}", std::process::id());
        ip(&["netns", "add", &name]);
        let network = PrivateNetwork { name, home };
        let name = network.name.as_str();
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&[
            "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{}/24", Self::ADDRESS),
            "dev",
            "v0",
        ]);
        ip(&["-n", name, "link", "set", "v0", "up"]);
        ip(&["-n", name, "link", "set", "v1", "up"]);
        let path = format!("/var/run/netns/{name}");
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) on a namespace file held open; it changes only this thread.
        let done = unsafe { setns(file.as_raw_fd(), 0x4000_0000) };
        assert_eq!(done, 0, "setns {path}: {}", std::io::Error::last_os_error());
        network
    }
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) back into the namespace this thread started in.
        unsafe { setns(self.home.as_raw_fd(), 0x4000_0000) };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `kelp shell --master MASTER ARGS...`: (success, stdout, stderr).
pub fn kelp_shell(master: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(kelp_bin())
        .args(["shell", "--master", master])
        .args(args)
        .output()
        .expect("run kelp shell");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stdout, stderr)
}

/// `kelp_shell` that must succeed: its stdout.
pub fn kelp_shell_ok(master: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kelp_shell(master, args);
    assert!(ok, "kelp shell {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}
