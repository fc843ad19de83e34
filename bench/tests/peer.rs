//! `kelp benchmark` against the real SeaweedFS 4.48 (the peer): every file written is read
//! back intact, and the delete and mixed modes run without failures.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use kelp_bench::Args;
use kelp_net::http::client::Client;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

/// A weed process, killed by pid and reaped when dropped.
struct Weed(Child);

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weed_path() -> String {
    std::env::var("KELP_PEER_WEED").unwrap_or_else(|_| {
        panic!("KELP_PEER_WEED is not set: point it at SeaweedFS 4.48's weed (./test.sh does)")
    })
}

/// A port in the peer tests' range (23000-23999) that is free, with port + 10000 (weed's gRPC
/// port) free too; `taken` is a port already handed out (its server may not listen yet).
fn free_port_pair(taken: Option<u16>) -> u16 {
    let start = 23_000 + (std::process::id() % 900) as u16;
    (0..1000)
        .map(|i| 23_000 + (start - 23_000 + i * 7) % 1000)
        .find(|&port| {
            taken.is_none_or(|taken| port.abs_diff(taken) > 1)
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
                && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        })
        .expect("a free port pair in 23000-23999 / 33000-33999")
}

fn spawn_weed(args: &[String], log: &Path) -> Weed {
    let log = std::fs::File::create(log).expect("weed log");
    let child = Command::new(weed_path())
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("log fd")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn weed");
    Weed(child)
}

/// Start a master and a volume server; returns them and the master's address once
/// `/dir/assign` hands out fids.
fn start_cluster(dir: &Path) -> (Weed, Weed, String) {
    let master_port = free_port_pair(None);
    let master = spawn_weed(
        &[
            "master".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={master_port}"),
            format!("-mdir={}", dir.join("m").display()),
            "-volumeSizeLimitMB=256".into(),
            "-peers=none".into(),
            "-telemetry=false".into(),
        ],
        &dir.join("master.log"),
    );
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::create_dir_all(dir.join("v")).unwrap();
    let volume_port = free_port_pair(Some(master_port));
    let volume = spawn_weed(
        &[
            "volume".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={volume_port}"),
            format!("-dir={}", dir.join("v").display()),
            "-max=20".into(),
            "-preStopSeconds=0".into(),
            format!("-master=127.0.0.1:{master_port}"),
            // SeaweedFS's default (1% of the disk free) turns every volume read-only, and every
            // assign into 406, on a nearly full CI disk that still has gigabytes free.
            "-minFreeSpace=64MiB".into(),
        ],
        &dir.join("volume.log"),
    );
    let addr = format!("127.0.0.1:{master_port}");
    wait_for_assign(&addr, dir);
    (master, volume, addr)
}

fn wait_for_assign(addr: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    while Instant::now() < deadline {
        let ready = runtime.block_on(async {
            let Ok(mut client) = Client::connect(addr).await else {
                return false;
            };
            let answer = client.request("GET", "/dir/assign", &[], b"").await;
            answer.is_ok_and(|r| r.status == 200 && r.body.windows(6).any(|w| w == b"\"fid\":"))
        });
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("master.log")).unwrap_or_default();
    panic!("SeaweedFS master {addr} did not assign within 30 s; log:\n{log}");
}

fn args(argv: &[&str]) -> Args {
    let mut full = vec!["benchmark"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).expect("arguments parse").args
}

#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn benchmark_against_seaweedfs_reads_back_every_file() {
    // Proves the workload works end to end on the real SeaweedFS: 2000 assigns + uploads all
    // succeed, the fid list has 2000 lines, and reading each listed file once returns exactly
    // the bytes written (length and the id at the front are checked per read). Then the
    // --read-only path reads the list back, and the delete and mixed modes run clean.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_master, _volume, master) = start_cluster(dir.path());
    let list = dir.path().join("list.txt");
    let list = list.to_str().unwrap();

    let run = args(&[
        "--master",
        &master,
        "-n",
        "2000",
        "-c",
        "8",
        "--threads",
        "2",
        "--list",
        list,
        "--read-sequentially",
    ]);
    let report = kelp_bench::run_benchmark(&run, false).expect("benchmark runs");
    assert_eq!(report.aborted, None);
    let [write, read] = &report.phases[..] else {
        panic!("expected a write and a read phase, got {:?}", report.phases);
    };
    assert_eq!((write.completed, write.failed), (2000, 0));
    assert!(write.bytes >= 2000 * 1024 && write.bytes <= 2000 * (1024 + 63));
    assert_eq!((read.completed, read.failed), (2000, 0));
    assert_eq!(read.bytes, write.bytes, "every file read back once, whole");
    let listed = std::fs::read_to_string(list).unwrap();
    assert_eq!(listed.lines().count(), 2000);

    let read_only = args(&[
        "--master",
        &master,
        "-n",
        "500",
        "-c",
        "4",
        "--read-only",
        "--list",
        list,
    ]);
    let report = kelp_bench::run_benchmark(&read_only, false).expect("read-only run");
    assert_eq!(report.phases.len(), 1);
    assert_eq!(
        (report.phases[0].completed, report.phases[0].failed),
        (500, 0)
    );

    let deletes = args(&[
        "--master",
        &master,
        "-n",
        "300",
        "-c",
        "4",
        "--write-only",
        "--delete-percent",
        "20",
        "--list",
        list,
    ]);
    let report = kelp_bench::run_benchmark(&deletes, false).expect("delete run");
    let write = &report.phases[0];
    assert_eq!(write.failed, 0);
    // Every write completed, plus one completed delete per file not in the list.
    let kept = std::fs::read_to_string(list).unwrap().lines().count() as u64;
    assert!(kept < 300, "some files were deleted, {kept} kept");
    assert_eq!(write.completed, 300 + (300 - kept));

    let mixed = args(&[
        "--master",
        &master,
        "-n",
        "600",
        "-c",
        "4",
        "--mixed-read-percent",
        "50",
        "--list",
        list,
    ]);
    let report = kelp_bench::run_benchmark(&mixed, false).expect("mixed run");
    let [writes, reads] = &report.phases[..] else {
        panic!("expected mixed writes and reads, got {:?}", report.phases);
    };
    assert_eq!(writes.failed + reads.failed, 0);
    assert_eq!(writes.completed + reads.completed, 600);
    assert!(reads.completed > 0 && writes.completed > 0);
}
