//! Vacuum end to end, with real `kelp master` and `kelp volume` processes: the space of
//! deleted files comes back while readers and writers go on; a replica that was down is
//! compacted when it returns; a crash during the copy or the commit loses no acknowledged
//! write; a full disk refuses writes cleanly.

mod master_common;
mod support;
mod vacuum_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use master_common::{MasterProcess, get};
use support::{free_port, wait_until};
use vacuum_support::{Files, Volume, dat_bytes, data_for, metric, read_all, upload};

fn master(dir: &std::path::Path, extra: &[&str]) -> MasterProcess {
    let mut args = vec!["--vacuum-interval", "0", "--volume-size-limit-mb", "32"];
    args.extend(extra);
    MasterProcess::start(dir, "master", free_port(), "", &args)
}

/// `/vol/vacuum` on the master: its `Vacuum` summary.
fn vacuum(master: &str, query: &str) -> serde_json::Value {
    let answer = get(master, &format!("/vol/vacuum?{query}")).expect("vacuum");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    assert!(json["Topology"].is_object(), "SeaweedFS's answer: {json}");
    json["Vacuum"].clone()
}

// Proves the vacuum's promise end to end: 60 % of the files deleted, then vacuumed through
// the master while a reader and a writer run: the collection's .dat files shrink by about
// the deleted bytes, every live file (the new ones too) reads back byte-identical, every
// deleted one is 404, and the reader saw no error at any time.
#[test]
fn vacuum_gives_space_back_while_reads_and_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path(), &[]);
    // Throttled, so the copy lasts long enough for the writer to land during it.
    let volume = Volume::start(
        &dir.path().join("v"),
        &master.address,
        &["--compaction-mb-per-second", "1"],
    );
    let mut files = Files::write(&master.address, "vac", 60, 16 * 1024);
    let deleted = files.delete_share(60);
    let before = dat_bytes(&volume.dir, "vac");

    let stop = Arc::new(AtomicBool::new(false));
    let reader = files.spawn_reader(stop.clone());
    let writer = Files::spawn_writer(&master.address, "vac", stop.clone());
    let summary = vacuum(&master.address, "garbageThreshold=0.3&collection=vac");
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    let written = writer.join().unwrap();
    assert_eq!(
        reads.errors,
        Vec::<String>::new(),
        "reads during the vacuum"
    );
    assert!(
        reads.count > 20,
        "the reader ran through the vacuum: {}",
        reads.count
    );
    assert!(!written.is_empty(), "writes landed during the vacuum");

    assert_eq!(summary["replicasFailed"], 0, "{summary}");
    assert!(
        summary["replicasCompacted"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    let after = dat_bytes(&volume.dir, "vac");
    let new_bytes: u64 = written.values().map(|(_, d)| d.len() as u64 + 64).sum();
    let deleted_bytes = deleted.len() as u64 * 16 * 1024;
    assert!(
        after + deleted_bytes * 9 / 10 <= before + new_bytes,
        "the deleted files' space came back: {before} -> {after} bytes (+{new_bytes} new): {summary}"
    );
    files.live.extend(written);
    read_all(&files.live, &deleted);
    assert!(metric(&volume.address(), "kelp_volume_compactions_committed_total") >= 1.0);
    assert!(
        metric(
            &volume.address(),
            "kelp_volume_compaction_reclaimed_bytes_total"
        ) > 0.0
    );
}

// Proves a replica that was down while its volume was vacuumed is compacted when it comes
// back (its compaction revision is behind the other replica's), without a second vacuum.
#[test]
fn replica_down_during_the_vacuum_is_compacted_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path(), &["--default-replication", "001"]);
    let first = Volume::start(&dir.path().join("a"), &master.address, &[]);
    let mut second = Volume::start(&dir.path().join("b"), &master.address, &[]);
    let mut files = Files::write(&master.address, "rep", 30, 8 * 1024);
    let deleted = files.delete_share(60);
    second.kill();
    let summary = vacuum(&master.address, "garbageThreshold=0.3&collection=rep");
    assert!(
        summary["replicasCompacted"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    let revisions = |volume: &Volume| volume.revisions("rep");
    let compacted = revisions(&first);
    assert!(compacted.values().any(|r| *r > 0), "{compacted:?}");

    let behind = dat_bytes(&second.dir, "rep");
    second.spawn();
    wait_until(
        "the returned replica to be compacted too",
        Duration::from_secs(30),
        || revisions(&second) == compacted,
    );
    assert!(dat_bytes(&second.dir, "rep") < behind);
    read_all(&files.live, &deleted);
    files.read_each_replica(&[&first, &second]);
}

// Proves a SIGKILL in the middle of a compaction's copy, with writes landing, loses no
// acknowledged write: after the restart every acknowledged file reads back, every deleted
// one is 404, and a vacuum then succeeds.
#[test]
fn crash_during_the_copy_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path(), &[]);
    let mut volume = Volume::start(
        &dir.path().join("v"),
        &master.address,
        &["--compaction-mb-per-second", "1"],
    );
    let mut files = Files::write(&master.address, "crash", 40, 32 * 1024);
    let deleted = files.delete_share(60);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = Files::spawn_writer(&master.address, "crash", stop.clone());
    let address = master.address.clone();
    let vacuum_call = std::thread::spawn(move || {
        get(
            &address,
            "/vol/vacuum?garbageThreshold=0.3&collection=crash",
        )
        .map(|a| a.status)
    });
    wait_until("a compaction to copy", Duration::from_secs(20), || {
        metric(&volume.address(), "kelp_volume_compactions_running") >= 1.0
    });
    std::thread::sleep(Duration::from_millis(300));
    volume.kill();
    stop.store(true, Ordering::Relaxed);
    files.live.extend(writer.join().unwrap());
    let _ = vacuum_call.join().unwrap();
    volume.spawn();
    read_all(&files.live, &deleted);
    volume.wait_reported(&master.address, "crash");
    let summary = vacuum(&master.address, "garbageThreshold=0.3&collection=crash");
    assert_eq!(summary["replicasFailed"], 0, "{summary}");
    read_all(&files.live, &deleted);
}

// Proves a SIGKILL while a commit holds the volume's writes (a test hook stretches the
// commit) loses no acknowledged write, and the volume reopens whole: the old files or the
// new ones, every acknowledged file readable, every deleted one 404.
#[test]
fn crash_during_the_commit_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path(), &[]);
    let hook = ["--compaction-commit-delay-ms", "3000"];
    let mut volume = Volume::start(&dir.path().join("v"), &master.address, &hook);
    let mut files = Files::write(&master.address, "commit", 40, 8 * 1024);
    let deleted = files.delete_share(60);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = Files::spawn_writer(&master.address, "commit", stop.clone());
    let address = master.address.clone();
    let vacuum_call = std::thread::spawn(move || {
        get(
            &address,
            "/vol/vacuum?garbageThreshold=0.3&collection=commit",
        )
        .map(|a| a.status)
    });
    wait_until(
        "a commit to hold the writes",
        Duration::from_secs(30),
        || volume.any_phase("commit", "committing"),
    );
    std::thread::sleep(Duration::from_millis(500));
    volume.kill();
    stop.store(true, Ordering::Relaxed);
    files.live.extend(writer.join().unwrap());
    let _ = vacuum_call.join().unwrap();
    volume.spawn();
    read_all(&files.live, &deleted);
    for (id, revision) in volume.revisions("commit") {
        assert!(revision <= 1, "volume {id}: revision {revision}");
    }
}

// Proves a disk that fills (here: another file takes most of it) turns writes into a clear
// refusal before they start, never a write failed midway: the volume reports read-only
// once less than twice --min-free-space-mb is free, the master then answers assignments
// with a clear error, a write still sent is refused 507 naming the flag, and every
// acknowledged file reads back. The disk is a 64 MiB tmpfs, so nothing else fills it.
#[test]
#[ignore = "needs root: mounts a tmpfs (test.sh runs it)"]
fn tmpfs_full_disk_refuses_writes_before_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let _mount = vacuum_support::Tmpfs::mount(&disk, 64);
    let master = master(dir.path(), &[]);
    let flags = ["--min-free-space-mb", "8", "--max", "0"];
    let volume = Volume::start(&disk, &master.address, &flags);
    let (fid, url) = vacuum_support::assign(&master.address, "full");
    assert_eq!(upload(&url, &fid, b"first").status, 201);
    std::fs::write(disk.join("other.bin"), vec![7u8; 36 << 20]).unwrap();
    let data = data_for(7, 1 << 20);
    let mut acknowledged = BTreeMap::from([(fid, (url, b"first".to_vec()))]);
    let mut assign_refusal = None;
    for _ in 0..60 {
        let assigned = get(&master.address, "/dir/assign?collection=full").unwrap();
        if assigned.status != 200 {
            assign_refusal = Some((assigned.status, assigned.text()));
            break;
        }
        let assigned = assigned.json();
        let fid = assigned["fid"].as_str().unwrap().to_string();
        let url = assigned["url"].as_str().unwrap().to_string();
        let answer = upload(&url, &fid, &data);
        match answer.status {
            201 => drop(acknowledged.insert(fid, (url, data.clone()))),
            507 => {
                let error = answer.json()["error"].as_str().unwrap().to_string();
                assert!(error.contains("--min-free-space-mb"), "{error}");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => panic!("a write answered {other}: {}", answer.text()),
        }
    }
    let (status, text) = assign_refusal.expect("assignments refused once the disk filled");
    assert_eq!(status, 406, "{text}");
    assert!(text.contains("free volume slot"), "{text}");
    assert!(acknowledged.len() >= 5, "{} writes fit", acknowledged.len());
    read_all(&acknowledged, &[]);
    let volumes = volume.status()["Volumes"].as_array().unwrap().clone();
    assert!(volumes.iter().all(|v| v["ReadOnly"] == true), "{volumes:?}");
}

/// A free port whose gRPC companion (port + 10000) is free too (SeaweedFS listens on both).
fn free_peer_port() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000) found");
}

// Proves volumes compacted by Kelp's volume server (while it served) open in SeaweedFS 4.48's
// volume server: every live file reads back byte-identical there, every deleted one is 404.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_serves_volumes_kelp_vacuumed() {
    let _ = support::weed_binary();
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path(), &[]);
    let vdir = dir.path().join("v");
    let mut volume = Volume::start(&vdir, &master.address, &[]);
    let mut files = Files::write(&master.address, "peer", 40, 8 * 1024);
    let deleted = files.delete_share(60);
    let summary = vacuum(&master.address, "garbageThreshold=0.3&collection=peer");
    assert!(
        summary["replicasCompacted"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(volume.revisions("peer").values().any(|r| *r == 1));
    volume.terminate();
    drop(master);

    let root = dir.path().join("weed");
    let ports = (free_peer_port(), free_peer_port());
    let mut weed = support::WeedCluster::start(&root, &vdir, ports, 30_720, 20);
    let weed_url = format!("127.0.0.1:{}", weed.volume_port);
    let (first, _) = files.live.iter().next().unwrap();
    wait_until(
        "SeaweedFS to serve the volumes",
        Duration::from_secs(30),
        || get(&weed_url, &format!("/{first}")).is_ok_and(|a| a.status == 200),
    );
    let live = files
        .live
        .iter()
        .map(|(fid, (_, data))| (fid.clone(), (weed_url.clone(), data.clone())))
        .collect();
    let deleted: Vec<(String, String)> = deleted
        .into_iter()
        .map(|(fid, _)| (fid, weed_url.clone()))
        .collect();
    read_all(&live, &deleted);
    weed.stop();
}
