//! Real Redis and PostgreSQL servers for the filer's store tests, started on 127.0.0.1 in a
//! scratch directory and stopped (by pid) when dropped. Shared by the unit tests of the
//! stores (included with `#[path]`) and the end-to-end filer tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a store test cannot run here, for its panic message.
pub const REDIS_MISSING: &str =
    "redis-server not found (apt-get install redis-server; test.sh runs this test only when it is)";
pub const POSTGRES_MISSING: &str = "PostgreSQL server binaries not found under /usr/lib/postgresql \
     (apt-get install postgresql; test.sh runs this test only when they are)";

/// A loopback port free now, from 20000-29999 (below the ephemeral range, away from the
/// ports tests/support hands out).
pub fn store_port() -> u16 {
    for _ in 0..500 {
        let port = 20_000 + (rand_u32() % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port for a store server");
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    hasher.finish() as u32
}

pub fn redis_binary() -> Option<PathBuf> {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The newest `/usr/lib/postgresql/N/bin` holding `postgres` and `initdb`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before listening on {port}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not listening on {port} after 30 s");
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this process spawned.
    unsafe {
        libc_kill(pid as i32, signal);
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Stop a server child: `first` signal, then SIGKILL after a few seconds.
fn stop(child: &mut Child, first: i32) {
    signal(child.id(), first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start redis-server with no persistence (tests only need a live server); panics naming
    /// the reason when it cannot.
    pub fn start() -> RedisServer {
        let binary = redis_binary().expect(REDIS_MISSING);
        let dir = tempfile::tempdir().expect("scratch dir");
        let port = store_port();
        let log = dir.path().join("redis.log");
        let out = std::fs::File::create(&log).expect("redis log");
        let mut child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn redis-server");
        wait_for_port(port, "redis-server", &mut child, &log);
        RedisServer {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop(&mut self.child, 15);
    }
}

pub struct PostgresServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// The uid and gid of the `postgres` user: PostgreSQL refuses to run as root.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .flatten()
    })
}

fn as_postgres_user(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    if root {
        let (uid, gid) = postgres_user().expect("user postgres (made by the postgresql package)");
        command.uid(uid).gid(gid);
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl PostgresServer {
    /// initdb a scratch cluster (trust auth, user `postgres`) and start it on a loopback
    /// port; panics naming the reason when it cannot.
    pub fn start() -> PostgresServer {
        let bin = postgres_bin_dir().expect(POSTGRES_MISSING);
        let dir = tempfile::tempdir().expect("scratch dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some((uid, gid)) = postgres_user() {
            let _ = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(dir.path())
                .arg(&data)
                .status();
        }
        let log = dir.path().join("postgres.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        as_postgres_user(&mut initdb);
        let output = initdb.output().expect("run initdb");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = store_port();
        let out = std::fs::File::create(&log).expect("postgres log");
        if let Some((uid, gid)) = postgres_user() {
            let _ = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(&log)
                .status();
        }
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "max_connections=100"])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        as_postgres_user(&mut command);
        let mut child = command.spawn().expect("spawn postgres");
        wait_for_port(port, "postgres", &mut child, &log);
        // Listening comes a moment before accepting logins.
        std::thread::sleep(Duration::from_millis(300));
        PostgresServer {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the backends go with the postmaster.
        stop(&mut self.child, 3);
    }
}
