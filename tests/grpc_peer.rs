//! SeaweedFS 4.48's own tools on Kelp, through Kelp's gRPC: `weed benchmark` against a Kelp
//! master, `weed filer` (and `weed s3` on it, driven by boto3) storing its chunks in Kelp
//! volumes and deleting them with BatchDelete, `weed shell` printing Kelp's topology, and a
//! filer that keeps working when the leader of three Kelp masters is killed.
//! Ignored without the peer (KELP_PEER_WEED); the S3 case needs boto3 (KELP_S3_PYTHON), both
//! installed by test.sh.

mod master_common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use master_common::{MasterProcess, get, http, launch_together, multipart_file, wait_for_leader};
use support::{ChildGuard, spawn_weed, wait_until};

/// A `kelp server` (no filer) on free ports; waits until it assigns.
struct KelpServer {
    _guard: ChildGuard,
    master: String,
    volume_port: u16,
}

impl KelpServer {
    fn start(root: &Path) -> KelpServer {
        let master_port = support::free_port_pair_run(1);
        let volume_port = support::free_port_pair_run(3);
        let dir = root.join("kelp");
        let (master_text, volume_text) = (master_port.to_string(), volume_port.to_string());
        let args = [
            "server",
            "--dir",
            dir.to_str().unwrap(),
            "--master-port",
            &master_text,
            "--volume-port",
            &volume_text,
            "--filer-port",
            "0",
            "--cores",
            "2",
            "--pulse-seconds",
            "1",
        ];
        let guard = ChildGuard::spawn_kelp("kelp server", &args, &root.join("kelp.log"));
        let master = format!("127.0.0.1:{master_port}");
        wait_until("kelp server to assign", Duration::from_secs(60), || {
            get(&master, "/dir/assign").is_ok_and(|a| a.status == 200)
        });
        KelpServer {
            _guard: guard,
            master,
            volume_port,
        }
    }
}

// Proves `weed benchmark` runs its write and read phases against a Kelp master with no
// failed request: it assigns over gRPC and reads with the volume locations Kelp pushes over
// KeepConnected.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_benchmark_writes_and_reads_through_kelp() {
    let root = tempfile::tempdir().unwrap();
    let kelp = KelpServer::start(root.path());
    let list = root.path().join("list.txt");
    let master = format!("-master={}", kelp.master);
    let list_flag = format!("-list={}", list.display());
    let args = [
        "benchmark",
        &master,
        "-n=2000",
        "-c=8",
        "-size=1024",
        "-collection=bench",
        &list_flag,
    ];
    let output = support::run_weed(&args, "", Duration::from_secs(120));
    let phases: Vec<&str> = output.split("Benchmark ----------").skip(1).collect();
    assert_eq!(phases.len(), 2, "a write and a read phase:\n{output}");
    for phase in phases {
        let completed = phase.lines().find(|l| l.starts_with("Completed requests:"));
        let failed = phase.lines().find(|l| l.starts_with("Failed requests:"));
        let number = |line: Option<&str>| {
            line.and_then(|l| l.split_whitespace().nth(2))
                .and_then(|n| n.parse::<u64>().ok())
        };
        assert_eq!(number(completed), Some(2000), "{output}");
        assert_eq!(number(failed), Some(0), "{output}");
    }
}

/// Start `weed filer` on Kelp's masters; waits until it answers.
fn start_weed_filer(root: &Path, masters: &str) -> (ChildGuard, String) {
    let port = support::free_port_pair_run(1);
    let store = root.join("filer-store");
    std::fs::create_dir_all(&store).unwrap();
    let args = vec![
        "filer".to_string(),
        "-ip=127.0.0.1".into(),
        format!("-port={port}"),
        format!("-master={masters}"),
        format!("-defaultStoreDir={}", store.display()),
    ];
    let guard = spawn_weed("weed filer", &args, &root.join("filer.log"));
    let address = format!("127.0.0.1:{port}");
    wait_until("weed filer on Kelp", Duration::from_secs(60), || {
        let listing = http("GET", &address, "/", &[("Accept", "application/json")], b"");
        listing.is_ok_and(|a| a.status == 200)
    });
    (guard, address)
}

/// Upload `data` as `path` through the filer (multipart POST).
fn filer_upload(filer: &str, path: &str, data: &[u8]) -> Result<u16, String> {
    let name = path.rsplit('/').next().unwrap();
    let (content_type, body) = multipart_file(name, data);
    let directory = &path[..path.len() - name.len()];
    let answer = http(
        "POST",
        filer,
        directory,
        &[("Content-Type", &content_type)],
        &body,
    )?;
    Ok(answer.status)
}

/// The chunk file ids of the filer entry at `path`.
fn chunk_fids(filer: &str, path: &str) -> Vec<String> {
    let answer = get(filer, &format!("{path}?metadata=true")).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let entry = answer.json();
    let chunks = entry["chunks"].as_array().cloned().unwrap_or_default();
    chunks
        .iter()
        .map(|c| c["file_id"].as_str().unwrap().to_string())
        .collect()
}

/// The answer of Kelp's volume server for `fid`, found through Kelp's master.
fn read_from_kelp(master: &str, fid: &str) -> master_common::Answer {
    let lookup = get(master, &format!("/dir/lookup?fileId={fid}")).unwrap();
    assert_eq!(lookup.status, 200, "{fid}: {}", lookup.text());
    let url = lookup.json()["locations"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    get(&url, &format!("/{fid}")).unwrap()
}

const S3_SCRIPT: &str = r#"
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
    aws_access_key_id="kelpaccess", aws_secret_access_key="kelpsecret",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
s3.create_bucket(Bucket="kelp-bucket")
assert "kelp-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
body = os.urandom(300_000)
s3.put_object(Bucket="kelp-bucket", Key="a/one.bin", Body=body)
s3.put_object(Bucket="kelp-bucket", Key="two.txt", Body=b"hello kelp")
assert s3.get_object(Bucket="kelp-bucket", Key="a/one.bin")["Body"].read() == body
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kelp-bucket")["Contents"]]
assert keys == ["a/one.bin", "two.txt"], keys
s3.delete_object(Bucket="kelp-bucket", Key="a/one.bin")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kelp-bucket").get("Contents", [])]
assert keys == ["two.txt"], keys
print("s3 ok")
"#;

const S3_IDENTITIES: &str = r#"{"identities":[{"name":"kelp","credentials":[{"accessKey":"kelpaccess","secretKey":"kelpsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#;

/// `weed s3` on `filer`, then the S3 script with boto3 against it.
fn s3_round_trip(root: &Path, filer: &str) {
    let python = std::env::var("KELP_S3_PYTHON")
        .expect("KELP_S3_PYTHON must name a python with boto3 (test.sh installs one)");
    let port = support::free_port_pair_run(1);
    let identities = root.join("s3.json");
    std::fs::write(&identities, S3_IDENTITIES).unwrap();
    let args = vec![
        "s3".to_string(),
        format!("-filer={filer}"),
        "-ip.bind=127.0.0.1".into(),
        format!("-port={port}"),
        "-port.iceberg=0".into(),
        "-port.lance=0".into(),
        format!("-localSocket={}", root.join("s3.sock").display()),
        format!("-config={}", identities.display()),
    ];
    let _s3 = spawn_weed("weed s3", &args, &root.join("s3.log"));
    wait_until("weed s3", Duration::from_secs(60), || {
        support::port_is_open(port)
    });
    let output = std::process::Command::new(&python)
        .args(["-c", S3_SCRIPT])
        .env("S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap_or_else(|e| panic!("run {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && text.contains("s3 ok"), "{text}");
}

/// `weed shell` on Kelp's master: `command`'s output.
fn weed_shell(master: &str, command: &str) -> String {
    let master = format!("-master={master}");
    support::run_weed(&["shell", &master], command, Duration::from_secs(60))
}

// Proves `weed filer` runs on a Kelp master: files uploaded through it (one chunk, and one of
// two chunks) are stored in Kelp volumes, read back byte-identical through the filer and from
// Kelp's volume server, and deleting them frees their needles (the filer's BatchDelete over
// Kelp's volume gRPC). Then `weed s3` on that filer serves boto3, and `weed shell` prints
// Kelp's collections, volumes and cluster (with the filer that connected).
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_filer_s3_and_shell_run_on_kelp() {
    let root = tempfile::tempdir().unwrap();
    let kelp = KelpServer::start(root.path());
    let (_filer, filer) = start_weed_filer(root.path(), &kelp.master);
    let small: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let large: Vec<u8> = (0..5_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    for (path, data) in [("/docs/small.bin", &small), ("/docs/large.bin", &large)] {
        assert_eq!(filer_upload(&filer, path, data), Ok(201), "{path}");
        let read = get(&filer, path).unwrap();
        assert_eq!(read.status, 200, "{path}");
        assert!(read.body == *data, "{path} reads back byte-identical");
    }
    let fids: Vec<String> = ["/docs/small.bin", "/docs/large.bin"]
        .iter()
        .flat_map(|path| chunk_fids(&filer, path))
        .collect();
    assert_eq!(fids.len(), 3, "one chunk and two chunks: {fids:?}");
    assert_eq!(read_from_kelp(&kelp.master, &fids[0]).body, small);
    for fid in &fids {
        assert_eq!(read_from_kelp(&kelp.master, fid).status, 200, "{fid}");
    }
    for path in ["/docs/small.bin", "/docs/large.bin"] {
        let deleted = http("DELETE", &filer, path, &[], b"").unwrap();
        assert_eq!(deleted.status, 204, "{path}");
    }
    wait_until(
        "the filer to delete its chunks",
        Duration::from_secs(30),
        || {
            fids.iter()
                .all(|fid| read_from_kelp(&kelp.master, fid).status == 404)
        },
    );

    s3_round_trip(root.path(), &filer);

    let collections = weed_shell(&kelp.master, "collection.list");
    assert!(collections.contains("Total"), "{collections}");
    let volumes = weed_shell(&kelp.master, "volume.list");
    let node = format!("DataNode 127.0.0.1:{}", kelp.volume_port);
    assert!(volumes.contains(&node), "{volumes}");
    assert!(volumes.contains("volume Id:1,"), "{volumes}");
    let cluster = weed_shell(&kelp.master, "cluster.ps");
    assert!(cluster.contains("* filers 1"), "{cluster}");
    assert!(cluster.contains(&filer), "{cluster}");
    assert!(cluster.contains("* volume servers 1"), "{cluster}");
    let listed = format!("* 127.0.0.1:{}", kelp.volume_port);
    assert!(cluster.contains(&listed), "{cluster}");
}

// Proves `weed filer` on three Kelp masters keeps working when the leader is killed: its
// KeepConnected stream to the dead leader ends, a follower redirects it to the new leader,
// and uploads and reads go on, those from before the failover included.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_filer_survives_kelp_leader_failover() {
    let root = tempfile::tempdir().unwrap();
    let mut masters = launch_together(root.path(), 3);
    let all: Vec<&MasterProcess> = masters.iter().collect();
    let leader = wait_for_leader(&all, 3, Duration::from_secs(30));
    let peers = masters
        .iter()
        .map(|m| m.address.clone())
        .collect::<Vec<_>>()
        .join(",");
    let _volume = master_common::RealVolumeServer::start(&root.path().join("v"), &peers, "", 8);
    let (_filer, filer) = start_weed_filer(root.path(), &peers);
    wait_until(
        "an upload through the filer",
        Duration::from_secs(30),
        || filer_upload(&filer, "/f/before.txt", b"before failover") == Ok(201),
    );
    let index = masters.iter().position(|m| m.address == leader).unwrap();
    masters[index].kill();
    let killed = Instant::now();
    wait_until(
        "an upload after the failover",
        Duration::from_secs(30),
        || filer_upload(&filer, "/f/after.txt", b"after failover") == Ok(201),
    );
    let took = killed.elapsed();
    for (path, text) in [
        ("/f/before.txt", "before failover"),
        ("/f/after.txt", "after failover"),
    ] {
        let read = get(&filer, path).unwrap();
        assert_eq!(
            (read.status, read.text()),
            (200, text.to_string()),
            "{path}"
        );
    }
    let survivors: Vec<&MasterProcess> = masters.iter().filter(|m| m.guard.is_some()).collect();
    let new_leader = wait_for_leader(&survivors, 3, Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    eprintln!("upload through weed filer worked again {took:?} after the leader died");
}
