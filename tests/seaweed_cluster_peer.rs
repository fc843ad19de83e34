//! A Kelp volume server in a SeaweedFS 4.48 cluster: `weed master`, one `weed volume` and one
//! `kelp volume` that joins the SeaweedFS master with its `SendHeartbeat` stream. `weed shell`
//! lists both servers, the master allocates volumes on Kelp over gRPC and assigns uploads to
//! it, replication `001` keeps a copy on each server, and `weed shell` moves volumes between
//! them.
//! Ignored without the peer (KELP_PEER_WEED, installed by test.sh).

mod master_common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use master_common::{Answer, get, http, multipart_file};
use support::{ChildGuard, PrivateNetwork, spawn_weed, wait_until};

/// `weed master` + `weed volume` + `kelp volume` (2 cores), all on 127.0.0.1.
struct MixedCluster {
    weed_master: ChildGuard,
    weed_volume: ChildGuard,
    kelp: ChildGuard,
    master: String,
    go_volume: String,
    kelp_volume: String,
}

impl MixedCluster {
    fn start(root: &Path, volume_size_limit_mb: u32) -> MixedCluster {
        MixedCluster::start_on(root, "127.0.0.1", volume_size_limit_mb)
    }

    /// The three servers listening on `ip`.
    fn start_on(root: &Path, ip: &str, volume_size_limit_mb: u32) -> MixedCluster {
        let ports = (
            support::free_port_pair_run(1),
            support::free_port_pair_run(1),
        );
        let (weed_master, weed_volume) = start_weed(root, ip, ports, volume_size_limit_mb);
        let master = format!("{ip}:{}", ports.0);
        let mut kelp_port = support::free_port_pair_run(3);
        while (kelp_port..kelp_port + 3).any(|p| p == ports.0 || p == ports.1) {
            kelp_port = support::free_port_pair_run(3);
        }
        let kelp_dir = root.join("kelp");
        std::fs::create_dir_all(&kelp_dir).unwrap();
        let (port_text, master_text) = (kelp_port.to_string(), master.clone());
        let args = [
            "volume",
            "--dir",
            kelp_dir.to_str().unwrap(),
            "--ip",
            ip,
            "--port",
            &port_text,
            "--master",
            &master_text,
            "--cores",
            "2",
            "--max",
            "10",
            "--min-free-space-mb",
            "64",
        ];
        let kelp = ChildGuard::spawn_kelp("kelp volume", &args, &root.join("kelp.log"));
        let cluster = MixedCluster {
            weed_master,
            weed_volume,
            kelp,
            master,
            go_volume: format!("{ip}:{}", ports.1),
            kelp_volume: format!("{ip}:{kelp_port}"),
        };
        wait_until(
            "both volume servers in the master's topology",
            Duration::from_secs(40),
            || {
                let nodes = cluster.data_nodes();
                nodes.contains(&cluster.go_volume) && nodes.contains(&cluster.kelp_volume)
            },
        );
        cluster
    }

    /// The data nodes the master's `/dir/status` lists.
    fn data_nodes(&self) -> Vec<String> {
        let Ok(answer) = get(&self.master, "/dir/status") else {
            return Vec::new();
        };
        if answer.status != 200 {
            return Vec::new();
        }
        let mut nodes = Vec::new();
        let topology = answer.json();
        for dc in topology["Topology"]["DataCenters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for rack in dc["Racks"].as_array().into_iter().flatten() {
                for node in rack["DataNodes"].as_array().into_iter().flatten() {
                    nodes.push(node["Url"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        nodes
    }

    /// `weed shell` running `commands` against the master; its output.
    fn shell(&self, commands: &str) -> String {
        let master = format!("-master={}", self.master);
        support::run_weed(&["shell", &master], commands, Duration::from_secs(50))
    }

    /// Start `weed shell` on `commands` without waiting for it to finish (it is stopped by
    /// pid when the guard drops); its output goes to `log_path`.
    fn shell_started(&self, commands: &str, log_path: &Path) -> ChildGuard {
        use std::io::Write;
        let log = std::fs::File::create(log_path).unwrap();
        let mut child = std::process::Command::new(support::weed_binary())
            .args(["shell", &format!("-master={}", self.master)])
            .stdin(std::process::Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("run weed shell: {e}"));
        let mut input = child.stdin.take().unwrap();
        input.write_all(commands.as_bytes()).unwrap();
        drop(input);
        ChildGuard::adopt("weed shell", child, log_path)
    }

    /// Assign from the SeaweedFS master until the answer names `server` (bounded); the fid.
    fn assign_on(&self, server: &str, query: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let answer = get(&self.master, &format!("/dir/assign?{query}")).unwrap();
            if answer.status == 200 {
                let json = answer.json();
                if json["url"].as_str() == Some(server) {
                    return json["fid"].as_str().unwrap().to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the master assigned nothing on {server} within 30 s ({query})");
    }

    /// The servers the master says hold volume `volume_id`.
    fn locations(&self, volume_id: &str) -> Vec<String> {
        let answer = get(&self.master, &format!("/dir/lookup?volumeId={volume_id}")).unwrap();
        if answer.status != 200 {
            return Vec::new();
        }
        let json = answer.json();
        let mut urls: Vec<String> = json["locations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| l["url"].as_str().unwrap_or_default().to_string())
            .collect();
        urls.sort();
        urls
    }
}

impl Drop for MixedCluster {
    fn drop(&mut self) {
        self.kelp.terminate(Duration::from_secs(10));
        self.weed_volume.terminate(Duration::from_secs(10));
        self.weed_master.terminate(Duration::from_secs(10));
    }
}

/// `weed master` and `weed volume` (at most 10 volumes) on `ip`, ports `(master, volume)`.
fn start_weed(
    root: &Path,
    ip: &str,
    (master_port, volume_port): (u16, u16),
    volume_size_limit_mb: u32,
) -> (ChildGuard, ChildGuard) {
    let (mdir, vdir) = (root.join("m"), root.join("go"));
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::create_dir_all(&vdir).unwrap();
    let master_args = vec![
        "master".into(),
        format!("-ip={ip}"),
        format!("-port={master_port}"),
        format!("-mdir={}", mdir.display()),
        format!("-volumeSizeLimitMB={volume_size_limit_mb}"),
        "-peers=none".into(),
        "-telemetry=false".into(),
    ];
    let volume_args = vec![
        "volume".into(),
        format!("-ip={ip}"),
        format!("-port={volume_port}"),
        format!("-dir={}", vdir.display()),
        "-max=10".into(),
        "-preStopSeconds=0".into(),
        format!("-master={ip}:{master_port}"),
        "-minFreeSpace=64MiB".into(),
    ];
    let master = spawn_weed("weed master", &master_args, &root.join("master.log"));
    let volume = spawn_weed("weed volume", &volume_args, &root.join("volume.log"));
    (master, volume)
}

/// Upload `data` as `fid` to `server` (multipart, as `curl -F`); the status.
fn upload(server: &str, fid: &str, data: &[u8]) -> u16 {
    let (content_type, body) = multipart_file("f.bin", data);
    let answer = http(
        "POST",
        server,
        &format!("/{fid}"),
        &[("Content-Type", &content_type)],
        &body,
    )
    .unwrap_or_else(|e| panic!("upload {fid} to {server}: {e}"));
    answer.status
}

fn read(server: &str, fid: &str) -> Answer {
    get(server, &format!("/{fid}")).unwrap_or_else(|e| panic!("read {fid} from {server}: {e}"))
}

fn volume_of(fid: &str) -> &str {
    fid.split(',').next().unwrap()
}

/// Some bytes that differ per `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

// Proves a Kelp volume server joins a SeaweedFS master as a Go one does: `weed shell
// volume.list` lists it beside the Go server, with the volumes the master allocated on it over
// gRPC; an upload the master assigns to Kelp reads back from Kelp; and with replication 001
// a write to either server leaves the same bytes on both.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn kelp_volume_serves_in_a_seaweedfs_cluster() {
    let root = tempfile::tempdir().unwrap();
    let cluster = MixedCluster::start(root.path(), 64);

    let data = payload(1, 5000);
    let fid = cluster.assign_on(&cluster.kelp_volume, "");
    assert_eq!(upload(&cluster.kelp_volume, &fid, &data), 201);
    let answer = read(&cluster.kelp_volume, &fid);
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, data.as_slice())
    );
    assert_eq!(
        cluster.locations(volume_of(&fid)),
        std::slice::from_ref(&cluster.kelp_volume)
    );

    let listing = cluster.shell("volume.list\n");
    for server in [&cluster.go_volume, &cluster.kelp_volume] {
        assert!(listing.contains(&format!("DataNode {server}")), "{listing}");
    }
    assert!(
        listing.contains(&format!("volume Id:{},", volume_of(&fid))),
        "the volume written is listed:\n{listing}"
    );

    let both = {
        let mut both = vec![cluster.go_volume.clone(), cluster.kelp_volume.clone()];
        both.sort();
        both
    };
    for (seed, first) in [(2, &cluster.kelp_volume), (3, &cluster.go_volume)] {
        let data = payload(seed, 3000);
        let fid = cluster.assign_on(first, "replication=001");
        assert_eq!(cluster.locations(volume_of(&fid)), both, "{fid}");
        assert_eq!(upload(first, &fid, &data), 201, "{fid} on {first}");
        for server in &both {
            let answer = read(server, &fid);
            assert_eq!(answer.status, 200, "{fid} on {server}: {}", answer.text());
            assert_eq!(answer.body, data, "{fid} on {server}");
        }
    }
}

/// Files written straight into volume `volume_id` on `server` (keys from `first_key`).
fn write_files(server: &str, volume_id: u32, first_key: u64, count: u64) -> Vec<(String, Vec<u8>)> {
    (first_key..first_key + count)
        .map(|key| {
            let fid = format!("{volume_id},{key:x}1234abcd");
            let data = payload(key, 2000 + (key as usize % 7) * 1000);
            assert_eq!(upload(server, &fid, &data), 201, "{fid} on {server}");
            (fid, data)
        })
        .collect()
}

/// Reads `files` over and over from wherever the master says their volume is (each
/// location in turn, as SeaweedFS's clients do) until `stop`; (reads, failures with why).
fn read_until(
    master: &str,
    files: &[(String, Vec<u8>)],
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut reads, mut failures) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < deadline {
        for (fid, data) in files {
            let lookup = get(master, &format!("/dir/lookup?fileId={fid}"));
            let urls: Vec<String> = lookup
                .ok()
                .filter(|answer| answer.status == 200)
                .map(|answer| answer.json())
                .and_then(|json| json["locations"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|l| l["url"].as_str().map(str::to_string))
                .collect();
            let read_ok = urls.iter().any(|url| {
                get(url, &format!("/{fid}")).is_ok_and(|a| a.status == 200 && a.body == *data)
            });
            reads += 1;
            if !read_ok {
                failures.push(format!("{fid} from {urls:?}"));
            }
        }
    }
    (reads, failures)
}

/// Move volume `volume_id` (holding `files`) along `moves` (source, target) with
/// `weed shell volume.move` while a reader reads the files through the master; after each
/// move every file reads the same on the target. Asserts no read failed.
fn move_under_reads(
    cluster: &MixedCluster,
    volume_id: u32,
    files: &[(String, Vec<u8>)],
    moves: &[(&String, &String)],
) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reads, failures) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_until(&cluster.master, files, &stop));
        for (source, target) in moves {
            let command = format!(
                "lock\nvolume.move -source={source} -target={target} -volumeId={volume_id}\nunlock\n"
            );
            let output = cluster.shell(&command);
            wait_until(
                &format!("volume {volume_id} only on {target}:\n{output}"),
                Duration::from_secs(15),
                || cluster.locations(&volume_id.to_string()) == [target.to_string()],
            );
            for (fid, data) in files {
                let answer = read(target, fid);
                assert_eq!(answer.status, 200, "{fid} on {target}: {}", answer.text());
                assert_eq!(&answer.body, data, "{fid} on {target}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {failures:?}",
        failures.len()
    );
}

// Proves `weed shell volume.move` moves a volume from the Go volume server to Kelp while a
// reader reads its files: Kelp pulls the files with VolumeCopy (the Go server's
// ReadVolumeFileStatus and CopyFile), then catches up with VolumeTailReceiver, and the Go
// server deletes its copy. No read fails, and every file reads the same on Kelp. (The way
// back needs an address other than loopback: see the netns_peer_ test.)
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_shell_moves_a_volume_from_go_to_kelp_under_reads() {
    let root = tempfile::tempdir().unwrap();
    let cluster = MixedCluster::start(root.path(), 64);
    let fid = cluster.assign_on(&cluster.go_volume, "collection=mv");
    let volume_id: u32 = volume_of(&fid).parse().unwrap();
    let files = write_files(&cluster.go_volume, volume_id, 0x100, 30);
    let moves = [(&cluster.go_volume, &cluster.kelp_volume)];
    move_under_reads(&cluster, volume_id, &files, &moves);
}

// Proves a volume moves from the Go volume server to Kelp and back with `weed shell
// volume.move` while a reader reads its files, with no failed read: on the way back the Go
// server pulls Kelp's files (Kelp's ReadVolumeFileStatus, CopyFile, VolumeTailSender). Every
// file reads the same on both ends. In a network namespace of its own, on a private address.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED) and a network namespace (root, ip netns)"]
fn netns_peer_weed_shell_moves_a_volume_to_kelp_and_back_under_reads() {
    let root = tempfile::tempdir().unwrap();
    let _network = PrivateNetwork::enter();
    let cluster = MixedCluster::start_on(root.path(), PrivateNetwork::ADDRESS, 64);
    let fid = cluster.assign_on(&cluster.go_volume, "collection=mv");
    let volume_id: u32 = volume_of(&fid).parse().unwrap();
    let files = write_files(&cluster.go_volume, volume_id, 0x100, 30);
    let moves = [
        (&cluster.go_volume, &cluster.kelp_volume),
        (&cluster.kelp_volume, &cluster.go_volume),
    ];
    move_under_reads(&cluster, volume_id, &files, &moves);
}

/// Kelp's `/status` entry of volume `volume_id` (Null when it does not hold it).
fn kelp_volume_status(kelp: &str, volume_id: u32) -> serde_json::Value {
    let status = get(kelp, "/status").unwrap().json();
    status["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["Id"].as_u64() == Some(u64::from(volume_id)))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

// Proves `weed shell volume.vacuum` compacts a volume Kelp holds through the SeaweedFS
// master (VacuumVolumeCheck, VacuumVolumeCompact, VacuumVolumeCommit): the `.dat` shrinks
// to about the live files, which still read, while the deleted ones stay deleted.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_shell_vacuums_a_kelp_volume() {
    let root = tempfile::tempdir().unwrap();
    let cluster = MixedCluster::start(root.path(), 64);
    let fid = cluster.assign_on(&cluster.kelp_volume, "collection=vac");
    let volume_id: u32 = volume_of(&fid).parse().unwrap();
    let files = write_files(&cluster.kelp_volume, volume_id, 0x200, 40);
    let (deleted, kept) = files.split_at(30);
    for (fid, _) in deleted {
        let answer = http("DELETE", &cluster.kelp_volume, &format!("/{fid}"), &[], b"").unwrap();
        assert_eq!(answer.status, 202, "{fid}: {}", answer.text());
    }
    let before = kelp_volume_status(&cluster.kelp_volume, volume_id)["Size"]
        .as_u64()
        .unwrap();
    let command =
        format!("lock\nvolume.vacuum -volumeId={volume_id} -garbageThreshold=0.1\nunlock\n");
    let output = cluster.shell(&command);
    wait_until(
        &format!("volume {volume_id} compacted on Kelp:\n{output}"),
        Duration::from_secs(20),
        || {
            let status = kelp_volume_status(&cluster.kelp_volume, volume_id);
            status["CompactRevision"].as_u64() == Some(1)
        },
    );
    let after = kelp_volume_status(&cluster.kelp_volume, volume_id)["Size"]
        .as_u64()
        .unwrap();
    assert!(
        after * 2 < before,
        "{before} bytes before, {after} after:\n{output}"
    );
    for (fid, data) in kept {
        let answer = read(&cluster.kelp_volume, fid);
        assert_eq!((answer.status, &answer.body), (200, data), "{fid}");
    }
    for (fid, _) in deleted {
        assert_eq!(read(&cluster.kelp_volume, fid).status, 404, "{fid}");
    }
}

// Proves `weed shell` repairs a replica on Kelp: `volume.check.disk` copies the records the
// Go replica has and Kelp's lacks (ReadNeedleBlob on Go, WriteNeedleBlob on Kelp), and after
// Kelp's copy of the `001` volume is deleted (`volume.delete`, Kelp's VolumeDelete),
// `volume.fix.replication` copies the Go replica back to Kelp (Kelp's VolumeCopy).
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_shell_repairs_a_replica_on_kelp() {
    let root = tempfile::tempdir().unwrap();
    let cluster = MixedCluster::start(root.path(), 64);
    let fid = cluster.assign_on(&cluster.go_volume, "collection=fix&replication=001");
    let volume_id: u32 = volume_of(&fid).parse().unwrap();
    let mut files = write_files(&cluster.go_volume, volume_id, 0x300, 20);
    // Two more on the Go replica only (a replica's write, not fanned out).
    for key in [0x400u64, 0x401] {
        let fid = format!("{volume_id},{key:x}1234abcd");
        let data = payload(key, 4000);
        let (content_type, body) = multipart_file("f.bin", &data);
        let path = format!("/{fid}?type=replicate");
        let answer = http(
            "POST",
            &cluster.go_volume,
            &path,
            &[("Content-Type", &content_type)],
            &body,
        )
        .unwrap();
        assert_eq!(answer.status, 201, "{}", answer.text());
        assert_eq!(
            read(&cluster.kelp_volume, &fid).status,
            404,
            "{fid} only on Go"
        );
        files.push((fid, data));
    }
    // `volume.check.disk` compares the file counts in the master's topology: wait until the
    // heartbeats brought them (20 on Kelp, 22 on Go).
    let counts = |listing: &str| -> Vec<u64> {
        let mut counts: Vec<u64> = listing
            .lines()
            .filter(|line| line.contains(&format!("volume Id:{volume_id},")))
            .filter_map(|line| line.split("FileCount:").nth(1))
            .filter_map(|rest| rest.split(',').next()?.trim().parse().ok())
            .collect();
        counts.sort_unstable();
        counts
    };
    wait_until(
        "the master to see both file counts",
        Duration::from_secs(30),
        || counts(&cluster.shell("volume.list\n")) == [20, 22],
    );
    let output = cluster.shell(&format!(
        "lock\nvolume.check.disk -volumeId={volume_id} -apply -resurrectMissingNeedles\nunlock\n"
    ));
    for (fid, data) in &files {
        let answer = read(&cluster.kelp_volume, fid);
        assert_eq!(
            (answer.status, &answer.body),
            (200, data),
            "{fid}:\n{output}"
        );
    }

    let output = cluster.shell(&format!(
        "lock\nvolume.delete -node={} -volumeId={volume_id}\nunlock\n",
        cluster.kelp_volume
    ));
    wait_until(
        &format!("volume {volume_id} gone from Kelp:\n{output}"),
        Duration::from_secs(15),
        || cluster.locations(&volume_id.to_string()) == [cluster.go_volume.clone()],
    );
    // `volume.fix.replication -apply` waits 15 s, copies the replica back, then waits 15 s
    // more for a second pass that finds nothing to do: the test waits for the copy only.
    let log = root.path().join("fix.log");
    let fixing = cluster.shell_started("lock\nvolume.fix.replication -apply\nunlock\n", &log);
    wait_until(
        &format!("volume {volume_id} back on Kelp (weed shell output in {log:?})"),
        Duration::from_secs(40),
        || cluster.locations(&volume_id.to_string()).len() == 2,
    );
    drop(fixing);
    let output = std::fs::read_to_string(&log).unwrap();
    for (fid, data) in &files {
        let answer = read(&cluster.kelp_volume, fid);
        assert_eq!(
            (answer.status, &answer.body),
            (200, data),
            "{fid}:\n{output}"
        );
    }
}

// Proves `weed shell` administers a volume on Kelp as on a Go server:
// `volume.configure.replication` changes its placement (Kelp's VolumeConfigure: superblock
// and `.vif`), which Kelp then reports; `volume.unmount` takes it out of service and the
// master drops the location while the files stay; `volume.mount` serves it again, every file
// reading back.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn weed_shell_configures_unmounts_and_mounts_a_kelp_volume() {
    let root = tempfile::tempdir().unwrap();
    let cluster = MixedCluster::start(root.path(), 64);
    let fid = cluster.assign_on(&cluster.kelp_volume, "collection=cfg");
    let volume_id: u32 = volume_of(&fid).parse().unwrap();
    let files = write_files(&cluster.kelp_volume, volume_id, 0x500, 10);
    let output = cluster.shell(&format!(
        "lock\nvolume.configure.replication -volumeId={volume_id} -replication=001\nunlock\n"
    ));
    wait_until(
        &format!("volume {volume_id} placed 001 on Kelp:\n{output}"),
        Duration::from_secs(15),
        || kelp_volume_status(&cluster.kelp_volume, volume_id)["ReplicaPlacement"] == "001",
    );
    let dat = root
        .path()
        .join("kelp")
        .join(format!("cfg_{volume_id}.dat"));
    assert_eq!(std::fs::read(&dat).unwrap()[1], 1, "001 in the superblock");

    let node = &cluster.kelp_volume;
    let output = cluster.shell(&format!(
        "lock\nvolume.unmount -node={node} -volumeId={volume_id}\nunlock\n"
    ));
    wait_until(
        &format!("volume {volume_id} unmounted:\n{output}"),
        Duration::from_secs(15),
        || {
            kelp_volume_status(node, volume_id).is_null()
                && cluster.locations(&volume_id.to_string()).is_empty()
        },
    );
    assert!(dat.exists(), "the files stay");
    let output = cluster.shell(&format!(
        "lock\nvolume.mount -node={node} -volumeId={volume_id}\nunlock\n"
    ));
    wait_until(
        &format!("volume {volume_id} mounted again:\n{output}"),
        Duration::from_secs(15),
        || cluster.locations(&volume_id.to_string()) == [node.clone()],
    );
    for (fid, data) in &files {
        let answer = read(node, fid);
        assert_eq!((answer.status, &answer.body), (200, data), "{fid}");
    }
}
