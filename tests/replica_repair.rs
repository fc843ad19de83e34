//! Replica repair (anti-entropy) with one real master and two real volume servers on their own
//! addresses (127.0.0.2 in dc1, 127.0.0.3 in dc2), replication `100`: a write or a delete
//! that reached one replica only (`type=replicate` straight to it, what a crash in the middle
//! of a fan-out leaves) is on both or gone from both within a repair interval; a replica whose
//! `.dat` was cut and whose `.idx` was deleted gets every file back; a delete forgotten by a
//! compaction never brings a needle back; the master's `/vol/repair` answers per replica.

mod master_common;
mod support;

use std::time::Duration;

use master_common::{
    Answer, MasterProcess, PlacedVolumeServer, RealVolumeServer as Server, get, http,
    multipart_file, post,
};
use support::{free_port, kelp_shell, kelp_shell_ok, wait_until};

/// Seconds between scheduled repair passes in these tests.
const INTERVAL_SECONDS: u64 = 2;

struct Cluster {
    _dir: tempfile::TempDir,
    _master: MasterProcess,
    master: String,
    dc1: Server,
    dc2: Server,
}

/// A master and two volume servers (dc1, dc2) repairing every `interval` seconds (0: only
/// on demand), with the volume flags `extra`.
fn cluster(interval: u64, extra: &[&str]) -> Option<Cluster> {
    if !std::path::Path::new("/proc/sys/net/ipv4").exists() {
        eprintln!("ignored: no IPv4 loopback to bind 127.0.0.2/3 on");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut master = MasterProcess::new(dir.path(), "m", free_port(), "");
    master.spawn(&["--default-replication", "100"]);
    let address = master.address.clone();
    let interval = interval.to_string();
    let mut flags = vec!["--repair-interval-seconds", interval.as_str()];
    flags.extend(extra);
    let dc1 = PlacedVolumeServer::start(dir.path(), "127.0.0.2", "dc1", &address, &flags);
    let dc2 = PlacedVolumeServer::start(dir.path(), "127.0.0.3", "dc2", &address, &flags);
    wait_until("both servers to join", Duration::from_secs(20), || {
        get(&address, "/dir/status").is_ok_and(|a| {
            let text = a.text();
            text.contains("127.0.0.2") && text.contains("127.0.0.3")
        })
    });
    Some(Cluster {
        _dir: dir,
        _master: master,
        master: address,
        dc1,
        dc2,
    })
}

/// `/submit` through the master: the fid (stored on both replicas).
fn submit(master: &str, name: &str, data: &[u8]) -> String {
    let (content_type, body) = multipart_file(name, data);
    let headers = [("Content-Type", content_type.as_str())];
    let path = "/submit?replication=100";
    let mut stored = None;
    wait_until("a /submit to succeed", Duration::from_secs(30), || {
        let Ok(answer) = http("POST", master, path, &headers, &body) else {
            return false; // not listening yet
        };
        stored = (answer.status == 201).then(|| answer.json()["fid"].as_str().unwrap().to_string());
        stored.is_some()
    });
    stored.unwrap()
}

/// An upload of `fid` to `server` alone (`type=replicate`: not fanned out).
fn upload_one(server: &str, fid: &str, name: &str, data: &[u8]) {
    let (content_type, body) = multipart_file(name, data);
    let headers = [("Content-Type", content_type.as_str())];
    let path = format!("/{fid}?type=replicate");
    let answer = http("POST", server, &path, &headers, &body).unwrap();
    assert!(answer.status < 300, "{}", answer.text());
}

/// A delete of `fid` on `server` alone.
fn delete_one(server: &str, fid: &str) {
    let answer = http(
        "DELETE",
        server,
        &format!("/{fid}?type=replicate"),
        &[],
        b"",
    )
    .unwrap();
    assert!(answer.status < 300, "{}", answer.text());
}

fn read(server: &str, fid: &str) -> Answer {
    get(server, &format!("/{fid}")).unwrap()
}

/// What a client sees of a file: status, body, name and type.
fn seen(server: &str, fid: &str) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    let answer = read(server, fid);
    let disposition = answer.header("content-disposition").map(str::to_string);
    let content_type = answer.header("content-type").map(str::to_string);
    (answer.status, answer.body, disposition, content_type)
}

/// The value of the counter `name` in `server`'s /metrics.
fn counter(server: &str, name: &str) -> u64 {
    let text = get(server, "/metrics").unwrap().text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the metrics of {server}"))
}

/// `count` fids of one volume (`/dir/assign?count=`: keys from the one assigned on), and
/// the server to upload them to.
fn assign_many(master: &str, count: u64) -> (Vec<String>, String) {
    let query = format!("replication=100&count={count}");
    let assigned = master_common::assign_retrying(master, &query, Duration::from_secs(20));
    let fid = assigned["fid"].as_str().unwrap();
    let (volume, rest) = fid.split_once(',').unwrap();
    let (key, cookie) = rest.split_at(rest.len() - 8);
    let key = u64::from_str_radix(key, 16).unwrap();
    let fids = (0..count)
        .map(|i| format!("{volume},{:x}{cookie}", key + i))
        .collect();
    (fids, assigned["url"].as_str().unwrap().to_string())
}

/// An upload of `fid` to `server`, which copies it to the other replica.
fn upload_replicated(server: &str, fid: &str, name: &str, data: &[u8]) {
    let (content_type, body) = multipart_file(name, data);
    let headers = [("Content-Type", content_type.as_str())];
    let answer = http("POST", server, &format!("/{fid}"), &headers, &body).unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn assign(master: &str) -> String {
    let assigned =
        master_common::assign_retrying(master, "replication=100", Duration::from_secs(20));
    assigned["fid"].as_str().unwrap().to_string()
}

// Proves a delete that reached dc1 only is applied on dc2, and an upload that reached dc2 only
// is copied to dc1 (read back identical: bytes, name, type), within one repair interval, and
// nothing else moves; the passes are counted in /metrics.
#[test]
fn one_sided_write_and_delete_reach_both_replicas() {
    let Some(cluster) = cluster(INTERVAL_SECONDS, &[]) else {
        return;
    };
    let (dc1, dc2) = (&cluster.dc1.address, &cluster.dc2.address);
    // Three fids of one volume, so that its walk meets a file both replicas hold.
    let (fids, url) = assign_many(&cluster.master, 3);
    let [gone, kept, lonely] = [&fids[0], &fids[1], &fids[2]];
    upload_replicated(&url, gone, "gone.txt", b"deleted on dc1 only");
    upload_replicated(&url, kept, "kept.txt", b"untouched");
    delete_one(dc1, gone);
    upload_one(dc2, lonely, "lonely.txt", b"written on dc2 only");
    assert_eq!(read(dc2, gone).status, 200);
    assert_eq!(read(dc1, lonely).status, 404);

    let deadline = Duration::from_secs(2 * INTERVAL_SECONDS + 10);
    wait_until("the replicas to agree", deadline, || {
        read(dc2, gone).status == 404 && read(dc1, lonely).status == 200
    });
    assert_eq!(seen(dc1, lonely), seen(dc2, lonely));
    assert_eq!(read(dc1, lonely).body, b"written on dc2 only");
    for server in [dc1, dc2] {
        assert_eq!(read(server, kept).body, b"untouched");
    }
    // Only what differed moved: the copies of one write (each replica stamped its own
    // append time) are left alone.
    assert_eq!(counter(dc2, "kelp_volume_repair_deleted_total"), 1);
    assert_eq!(counter(dc2, "kelp_volume_repair_copied_total"), 0);
    assert_eq!(counter(dc1, "kelp_volume_repair_copied_total"), 1);
    assert_eq!(counter(dc1, "kelp_volume_repair_deleted_total"), 0);
    assert!(counter(dc1, "kelp_volume_repair_passes_total") >= 1);
    assert_eq!(counter(dc1, "kelp_volume_repair_failed_total"), 0);
}

// Proves a replica whose volume lost the tail of its `.dat` and its whole `.idx` while the
// server was stopped serves every file again, byte-identical, one repair interval after it
// restarts.
#[test]
fn cut_dat_and_deleted_idx_are_repaired() {
    let Some(mut cluster) = cluster(INTERVAL_SECONDS, &[]) else {
        return;
    };
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let data = format!("file {i} ").repeat(40 + i).into_bytes();
            (submit(&cluster.master, &format!("f{i}.txt"), &data), data)
        })
        .collect();
    cluster.dc2.kill();
    let mut damaged = 0;
    for entry in std::fs::read_dir(&cluster.dc2.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dat") {
            let len = std::fs::metadata(&path).unwrap().len();
            if len > 8 + 1024 {
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(8 + (len - 8) / 3).unwrap();
                std::fs::remove_file(path.with_extension("idx")).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "a volume with data to damage");
    cluster.dc2.spawn();
    let dc2 = &cluster.dc2.address;
    let deadline = Duration::from_secs(2 * INTERVAL_SECONDS + 15);
    wait_until("dc2 to serve every file again", deadline, || {
        files.iter().all(|(fid, _)| read(dc2, fid).status == 200)
    });
    for (fid, data) in &files {
        assert_eq!(&read(dc2, fid).body, data, "{fid}");
        assert_eq!(seen(dc2, fid), seen(&cluster.dc1.address, fid), "{fid}");
    }
    assert!(counter(dc2, "kelp_volume_repair_copied_total") > 0);
}

// Proves `/vol/repair` runs a pass on each replica and answers per replica, and that a
// volume server's `/admin/volume/repair` answers as the contract says (404 for a volume it
// does not hold).
#[test]
fn master_repair_answers_per_replica() {
    let Some(cluster) = cluster(0, &[]) else {
        return;
    };
    let (dc1, dc2) = (&cluster.dc1.address, &cluster.dc2.address);
    let fid = assign(&cluster.master);
    let volume_id: u32 = fid.split(',').next().unwrap().parse().unwrap();
    upload_one(dc1, &fid, "one.txt", b"on dc1 only");
    let answer = post(
        &cluster.master,
        &format!("/vol/repair?volumeId={volume_id}"),
        b"",
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let volumes = answer.json()["volumes"].as_array().unwrap().clone();
    assert_eq!(volumes.len(), 1, "{}", answer.text());
    assert_eq!(volumes[0]["volumeId"], volume_id);
    let replicas = volumes[0]["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{}", answer.text());
    let copied_on = |url: &str| {
        let replica = replicas.iter().find(|r| r["url"] == url).unwrap();
        assert!(replica["error"].is_null(), "{replica}");
        assert_eq!(replica["deleted"], 0);
        assert_eq!(replica["skipped"], 0);
        replica["copied"].as_u64().unwrap()
    };
    assert_eq!(copied_on(dc2), 1);
    assert_eq!(copied_on(dc1), 0);
    assert_eq!(read(dc2, &fid).body, b"on dc1 only");

    let all = post(&cluster.master, "/vol/repair", b"").unwrap();
    assert_eq!(all.status, 200, "{}", all.text());
    let volumes = all.json()["volumes"].as_array().unwrap().clone();
    assert!(!volumes.is_empty());
    for volume in &volumes {
        for replica in volume["replicas"].as_array().unwrap() {
            assert!(replica["error"].is_null(), "{replica}");
            assert_eq!(replica["copied"], 0, "the replicas agree now: {volume}");
        }
    }
    // kelp shell's volume.check.disk runs the same passes through the master.
    let second = assign(&cluster.master);
    let second_volume = second.split(',').next().unwrap().to_string();
    upload_one(dc2, &second, "two.txt", b"on dc2 only");
    let checked = kelp_shell_ok(
        &cluster.master,
        &["volume.check.disk", "-volumeId", &second_volume],
    );
    let line = |url: &str, copied: u32| {
        format!("volume {second_volume} on {url}: copied {copied} deleted 0 skipped 0")
    };
    assert!(checked.contains(&line(dc1, 1)), "{checked}");
    assert!(checked.contains(&line(dc2, 0)), "{checked}");
    assert_eq!(read(dc1, &second).body, b"on dc2 only");
    let (ok, _, error) = kelp_shell(&cluster.master, &["volume.check.disk", "-volumeId", "9999"]);
    assert!(!ok && error.contains("9999"), "{error}");

    let missing = post(&cluster.master, "/vol/repair?volumeId=9999", b"").unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text());
    let direct = post(
        dc1,
        &format!("/admin/volume/repair?volume={volume_id}"),
        b"",
    )
    .unwrap();
    assert_eq!(direct.status, 200, "{}", direct.text());
    let direct = direct.json();
    assert_eq!(direct["volumeId"], volume_id);
    let peers = direct["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{direct}");
    assert!(
        peers[0].as_str().unwrap().starts_with("127.0.0.3:"),
        "{direct}"
    );
    let absent = post(dc1, "/admin/volume/repair?volume=9999", b"").unwrap();
    assert_eq!(absent.status, 404, "{}", absent.text());
}

/// `/vol/repair?volumeId=N`: (copied, deleted, skipped) of the replica on `host` (its ip).
fn repair_counts(master: &str, volume_id: u32, host: &str) -> (u64, u64, u64) {
    let answer = post(master, &format!("/vol/repair?volumeId={volume_id}"), b"").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    let replicas = json["volumes"][0]["replicas"].as_array().unwrap();
    let replica = replicas
        .iter()
        .find(|r| r["url"].as_str().unwrap().starts_with(host))
        .unwrap_or_else(|| panic!("no replica on {host}: {json}"));
    assert!(replica["error"].is_null(), "{replica}");
    let count = |name: &str| replica[name].as_u64().unwrap();
    (count("copied"), count("deleted"), count("skipped"))
}

/// A file on both replicas whose delete reached dc1 only, then a vacuum of its volume (dc1's
/// delete marker is compacted away): the fid and its volume.
fn forgotten_delete(cluster: &Cluster) -> (String, u32) {
    let fid = submit(&cluster.master, "undead.txt", b"deleted on dc1 only");
    let volume_id: u32 = fid.split(',').next().unwrap().parse().unwrap();
    delete_one(&cluster.dc1.address, &fid);
    let path = format!("/vol/vacuum?garbageThreshold=0.0001&volumeId={volume_id}");
    let vacuum = get(&cluster.master, &path).unwrap();
    assert_eq!(vacuum.status, 200, "{}", vacuum.text());
    let dat = cluster.dc1.dir.join(format!("{volume_id}.dat"));
    let bytes = std::fs::read(&dat).unwrap();
    let data = b"deleted on dc1 only";
    let left = bytes.windows(data.len()).any(|w| w == data);
    assert!(
        !left,
        "the vacuum dropped the file's record from dc1's {dat:?}"
    );
    (fid, volume_id)
}

// Proves a delete that reached one replica only and was then compacted away there is still
// applied on the other replica (the compaction kept it, `<base>.deletes`): gone from both.
#[test]
fn delete_compacted_away_is_still_applied() {
    let Some(cluster) = cluster(0, &[]) else {
        return;
    };
    let (fid, volume_id) = forgotten_delete(&cluster);
    let kept = cluster.dc1.dir.join(format!("{volume_id}.deletes"));
    assert!(kept.exists(), "the compaction kept the delete in {kept:?}");
    assert_eq!(
        repair_counts(&cluster.master, volume_id, "127.0.0.3"),
        (0, 1, 0)
    );
    for server in [&cluster.dc1.address, &cluster.dc2.address] {
        assert_eq!(read(server, &fid).status, 404, "{server}");
    }
    assert_eq!(
        repair_counts(&cluster.master, volume_id, "127.0.0.2"),
        (0, 0, 0)
    );
}

// Proves that with no deletes kept (retention 0) a needle whose delete was compacted away is
// never copied back to the replica that deleted it: it is skipped and counted.
#[test]
fn delete_compacted_away_never_resurrects() {
    let Some(cluster) = cluster(0, &["--delete-retention-seconds", "0"]) else {
        return;
    };
    let (fid, volume_id) = forgotten_delete(&cluster);
    assert_eq!(
        repair_counts(&cluster.master, volume_id, "127.0.0.2"),
        (0, 0, 1)
    );
    assert_eq!(read(&cluster.dc1.address, &fid).status, 404);
    assert_eq!(
        repair_counts(&cluster.master, volume_id, "127.0.0.2"),
        (0, 0, 1)
    );
    assert_eq!(
        read(&cluster.dc1.address, &fid).status,
        404,
        "still not resurrected"
    );
}

/// `weed shell -master=<master>` reading `commands` from stdin: its output.
fn weed_shell(master: &str, commands: &str) -> String {
    use std::io::Write;
    let mut shell = std::process::Command::new(support::weed_binary())
        .arg("shell")
        .arg(format!("-master={master}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weed shell starts");
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(commands.as_bytes()).unwrap();
    drop(stdin);
    let output = shell
        .wait_with_output()
        .expect("weed shell ends at the end of its input");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// `weed volume` on `ip` in `data_center`, its gRPC port the port + 10000.
fn weed_volume(
    dir: &std::path::Path,
    ip: &str,
    data_center: &str,
    master: &str,
) -> (String, support::ChildGuard) {
    let port = free_port();
    let data = dir.join(data_center);
    std::fs::create_dir_all(&data).unwrap();
    let args: Vec<String> = vec![
        "volume".into(),
        format!("-ip={ip}"),
        format!("-port={port}"),
        format!("-dir={}", data.display()),
        "-max=5".into(),
        format!("-dataCenter={data_center}"),
        "-rack=r1".into(),
        "-preStopSeconds=0".into(),
        format!("-master={master}"),
        "-minFreeSpace=64MiB".into(),
    ];
    let log = dir.join(format!("{data_center}.log"));
    (
        format!("{ip}:{port}"),
        support::spawn_weed(data_center, &args, &log),
    )
}

// Proves what SeaweedFS 4.48 does in the scenario Kelp repairs on its own (README "Replicas
// and failures"): a delete sent to dc1 only and an upload sent to dc2 only stay one-sided;
// `volume.check.disk -apply` changes neither, `-slow -syncDeleted` applies the delete.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_check_disk_side_by_side_peer() {
    let dir = tempfile::tempdir().unwrap();
    let master_port = free_port();
    let master = format!("127.0.0.1:{master_port}");
    let master_args: Vec<String> = vec![
        "master".into(),
        "-ip=127.0.0.1".into(),
        format!("-port={master_port}"),
        format!("-mdir={}", dir.path().join("m").display()),
        "-defaultReplication=100".into(),
        "-peers=none".into(),
        "-telemetry=false".into(),
    ];
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    let _master = support::spawn_weed("weed master", &master_args, &dir.path().join("m.log"));
    let (dc1, _dc1) = weed_volume(dir.path(), "127.0.0.2", "dc1", &master);
    let (dc2, _dc2) = weed_volume(dir.path(), "127.0.0.3", "dc2", &master);
    let gone = submit(&master, "gone.txt", b"deleted on dc1 only");
    let lonely = assign(&master);
    delete_one(&dc1, &gone);
    upload_one(&dc2, &lonely, "lonely.txt", b"written on dc2 only");
    let state = || (read(&dc2, &gone).status, read(&dc1, &lonely).status);
    assert_eq!(state(), (200, 404));
    let plain = weed_shell(&master, "lock\nvolume.check.disk -apply\nunlock\n");
    assert_eq!(
        state(),
        (200, 404),
        "volume.check.disk -apply changed nothing:\n{plain}"
    );
    let synced = weed_shell(
        &master,
        "lock\nvolume.check.disk -apply -slow -syncDeleted\nunlock\n",
    );
    assert_eq!(
        read(&dc2, &gone).status,
        404,
        "-syncDeleted applies the delete:\n{synced}"
    );
    eprintln!(
        "after -syncDeleted, the upload on dc1: {}",
        read(&dc1, &lonely).status
    );
}
