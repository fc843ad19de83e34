//! Re-replication and trimming by the master, with real volume servers on their own addresses
//! (127.0.0.2 and up) in their own racks and data centers, and short absence and trim delays:
//! a server gone longer than `--replica-absence-max-seconds` has its volumes copied to a server
//! keeping the placement; when it returns its stale copies are trimmed after
//! `--replica-trim-delay-seconds`; a new leader waits a full window; nothing is copied to a
//! weaker placement; a lost `.dat` is copied back by `/vol/fix_replication?apply=true`.

mod master_common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use master_common::{Answer, MasterProcess, RealVolumeServer, Site, get, http, multipart_file};
use support::{free_port, kelp_shell_ok, wait_until};

/// `kelp volume` on its own address, data center and rack (one core, 20 volume slots).
struct Host {
    ip: String,
    server: RealVolumeServer,
}

impl Host {
    fn start(root: &Path, ip: &str, data_center: &str, rack: &str, master: &str) -> Host {
        let site = Site {
            ip,
            data_center,
            rack,
        };
        let server = RealVolumeServer::start_at(&root.join(ip), master, &site, 20, 1);
        Host {
            ip: ip.to_string(),
            server,
        }
    }
}

impl std::ops::Deref for Host {
    type Target = RealVolumeServer;
    fn deref(&self) -> &RealVolumeServer {
        &self.server
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut RealVolumeServer {
        &mut self.server
    }
}

fn loopback_aliases_work() -> bool {
    std::net::TcpListener::bind("127.0.0.4:0").is_ok()
}

fn start_master(root: &Path, replication: &str, absence_s: u64, trim_s: u64) -> MasterProcess {
    let mut master = MasterProcess::new(root, "m", free_port(), "");
    let (absence, trim) = (absence_s.to_string(), trim_s.to_string());
    master.spawn(&[
        "--default-replication",
        replication,
        "--replica-absence-max-seconds",
        &absence,
        "--replica-trim-delay-seconds",
        &trim,
    ]);
    master
}

/// Stores `count` files through the master; (fid, content) of each.
fn store_files(master: &str, count: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut stored = Vec::new();
    for index in 0..count {
        let data = format!("{tag} file {index} {}", "x".repeat(index * 7)).into_bytes();
        let (content_type, body) = multipart_file("f.txt", &data);
        let headers = [("Content-Type", content_type.as_str())];
        let deadline = Instant::now() + Duration::from_secs(20);
        let answer = loop {
            let answer = http("POST", master, "/submit", &headers, &body).unwrap();
            if answer.status == 201 || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(answer.status, 201, "{}", answer.text());
        stored.push((answer.json()["fid"].as_str().unwrap().to_string(), data));
    }
    stored
}

fn volume_of(fid: &str) -> u32 {
    fid.split(',').next().unwrap().parse().unwrap()
}

/// The hosts (by their address, without the port: a volume is served on its core's port)
/// the master lists for `volume_id`.
fn holders(master: &str, volume_id: u32) -> Vec<String> {
    let answer = get(master, &format!("/dir/lookup?volumeId={volume_id}")).unwrap();
    if answer.status != 200 {
        return Vec::new();
    }
    let mut urls: Vec<String> = answer.json()["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["url"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    urls.sort();
    urls
}

fn fix_replication(master: &str, query: &str) -> Answer {
    http(
        "POST",
        master,
        &format!("/vol/fix_replication?{query}"),
        &[],
        b"",
    )
    .unwrap()
}

/// Every file of `files` reads back byte-identical from the copy on host `ip`.
fn assert_readable(master: &str, files: &[(String, Vec<u8>)], ip: &str) {
    for (fid, data) in files {
        let lookup = get(master, &format!("/dir/lookup?volumeId={}", volume_of(fid))).unwrap();
        let json = lookup.json();
        let location = json["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["url"].as_str().unwrap().to_string())
            .find(|url| url.starts_with(&format!("{ip}:")))
            .unwrap_or_else(|| panic!("no copy of {fid} on {ip}: {json}"));
        let read = get(&location, &format!("/{fid}")).unwrap();
        assert_eq!(read.status, 200, "{fid} on {location}: {}", read.text());
        assert_eq!(&read.body, data, "{fid} on {location}");
    }
}

fn metric(master: &str, name: &str) -> u64 {
    let text = get(master, "/metrics").unwrap().text();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
    line.and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0)
}

// Proves a server killed longer than the absence limit has its volumes copied to the only
// server keeping placement 010 (C, the other rack), every file readable from both copies;
// when it comes back its stale copies are trimmed, and not before the trim delay.
#[test]
fn absent_server_rereplicated_then_trimmed() {
    if !loopback_aliases_work() {
        eprintln!("ignored: 127.0.0.x addresses cannot be bound here");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let master = start_master(root.path(), "010", 6, 6);
    let m = master.address.clone();
    let a = Host::start(root.path(), "127.0.0.2", "dc1", "r1", &m);
    let mut b = Host::start(root.path(), "127.0.0.3", "dc1", "r2", &m);
    let files = store_files(&m, 6, "before");
    let c = Host::start(root.path(), "127.0.0.4", "dc1", "r2", &m);
    let mut volumes: Vec<u32> = files.iter().map(|(fid, _)| volume_of(fid)).collect();
    volumes.sort();
    volumes.dedup();
    for volume in &volumes {
        assert_eq!(holders(&m, *volume), vec![a.ip.clone(), b.ip.clone()]);
    }

    b.kill();
    let expected = vec![a.ip.clone(), c.ip.clone()];
    wait_until("B's volumes copied to C", Duration::from_secs(60), || {
        volumes.iter().all(|v| holders(&m, *v) == expected)
    });
    assert_readable(&m, &files, &a.ip);
    assert_readable(&m, &files, &c.ip);
    assert!(metric(&m, "kelp_master_replica_copies_total") >= volumes.len() as u64);
    let after = store_files(&m, 3, "after");

    b.spawn();
    let back = Instant::now();
    let three = |v: &u32| holders(&m, *v).len() == 3;
    wait_until("B's stale copies seen", Duration::from_secs(10), || {
        volumes.iter().any(three)
    });
    wait_until("B's stale copies trimmed", Duration::from_secs(60), || {
        volumes.iter().all(|v| holders(&m, *v) == expected)
    });
    assert!(
        back.elapsed() >= Duration::from_secs(5),
        "trimmed {:?} after B returned, before the 6 s delay",
        back.elapsed()
    );
    assert_readable(&m, &files, &a.ip);
    assert_readable(&m, &files, &c.ip);
    assert_readable(&m, &after, &a.ip);
    assert_readable(&m, &after, &c.ip);
    assert!(metric(&m, "kelp_master_replica_trims_total") >= volumes.len() as u64);
}

// Proves a leader that has not led for a full absence window copies nothing (though its plan
// shows the copy), and does once it has watched the whole window.
#[test]
fn fresh_leader_waits_a_full_window() {
    if !loopback_aliases_work() {
        eprintln!("ignored: 127.0.0.x addresses cannot be bound here");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut master = start_master(root.path(), "010", 12, 600);
    let m = master.address.clone();
    let a = Host::start(root.path(), "127.0.0.2", "dc1", "r1", &m);
    let mut b = Host::start(root.path(), "127.0.0.3", "dc1", "r2", &m);
    let files = store_files(&m, 2, "kept");
    let volume = volume_of(&files[0].0);
    let files: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter(|(f, _)| volume_of(f) == volume)
        .collect();
    let c = Host::start(root.path(), "127.0.0.4", "dc1", "r2", &m);

    b.kill();
    master.kill();
    master.spawn(&[
        "--default-replication",
        "010",
        "--replica-absence-max-seconds",
        "12",
    ]);
    let led = Instant::now();
    wait_until("the plan to show the copy", Duration::from_secs(20), || {
        let plan = fix_replication(&m, &format!("volumeId={volume}"));
        plan.status == 200 && plan.text().contains(&c.address)
    });
    let plan = fix_replication(&m, &format!("volumeId={volume}")).json();
    let action = &plan["volumes"][0]["actions"][0];
    assert_eq!(action["action"], "copy");
    assert_eq!(action["from"], a.address.as_str());
    assert_eq!(action["done"], false);
    while led.elapsed() < Duration::from_secs(9) {
        assert_eq!(holders(&m, volume), vec![a.ip.clone()], "copied too early");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until("the copy after the window", Duration::from_secs(40), || {
        holders(&m, volume) == vec![a.ip.clone(), c.ip.clone()]
    });
    assert_readable(&m, &files, &c.ip);
}

// Proves that with no server keeping the placement (100: the only other data center is
// gone) nothing is copied, even after the absence window, and the plan says why.
#[test]
fn no_legal_target_copies_nothing() {
    if !loopback_aliases_work() {
        eprintln!("ignored: 127.0.0.x addresses cannot be bound here");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let master = start_master(root.path(), "100", 3, 600);
    let m = master.address.clone();
    let a = Host::start(root.path(), "127.0.0.2", "dc1", "r1", &m);
    let mut b = Host::start(root.path(), "127.0.0.3", "dc2", "r1", &m);
    let files = store_files(&m, 2, "far");
    let volume = volume_of(&files[0].0);
    let _c = Host::start(root.path(), "127.0.0.4", "dc1", "r2", &m);
    b.kill();
    wait_until("B dropped", Duration::from_secs(20), || {
        holders(&m, volume) == vec![a.ip.clone()]
    });
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(holders(&m, volume), vec![a.ip.clone()]);
    let applied = fix_replication(&m, &format!("volumeId={volume}&apply=true"));
    assert_eq!(applied.status, 200, "{}", applied.text());
    let plan = &applied.json()["volumes"][0];
    assert_eq!(plan["actions"].as_array().unwrap().len(), 0, "{plan}");
    let reason = plan["reason"].as_str().unwrap();
    assert!(
        reason.contains("placement 100") && reason.contains("weaker"),
        "{reason}"
    );
    assert_eq!(plan["placement"], "100");
    assert_eq!(metric(&m, "kelp_master_replica_copies_total"), 0);
    assert!(metric(&m, "kelp_master_replica_blocked_volumes") >= 1);
}

// Proves a replica whose `.dat` was deleted while its server was stopped is planned (and
// not copied) without apply, and copied back by `apply=true`, every file then readable there.
#[test]
fn lost_dat_copied_back_by_apply() {
    if !loopback_aliases_work() {
        eprintln!("ignored: 127.0.0.x addresses cannot be bound here");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let master = start_master(root.path(), "010", 0, 600);
    let m = master.address.clone();
    let a = Host::start(root.path(), "127.0.0.2", "dc1", "r1", &m);
    let mut b = Host::start(root.path(), "127.0.0.3", "dc1", "r2", &m);
    let files = store_files(&m, 4, "lost");
    let volume = volume_of(&files[0].0);
    let on_volume: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|(f, _)| volume_of(f) == volume)
        .cloned()
        .collect();

    b.kill();
    for ext in ["dat", "idx"] {
        std::fs::remove_file(b.dir.join(format!("{volume}.{ext}"))).unwrap();
    }
    b.spawn();
    wait_until(
        "B to report without the volume",
        Duration::from_secs(20),
        || holders(&m, volume) == vec![a.ip.clone()],
    );
    let bad = fix_replication(&m, "volumeId=x");
    assert_eq!(bad.status, 400, "{}", bad.text());
    let plan = fix_replication(&m, &format!("volumeId={volume}"));
    assert_eq!(plan.status, 200, "{}", plan.text());
    let expected_action = serde_json::json!({
        "action": "copy", "from": a.address, "to": b.address, "done": false, "error": null
    });
    assert_eq!(plan.json()["volumes"][0]["actions"][0], expected_action);
    assert_eq!(plan.json()["volumes"][0]["replicas"][0], a.address.as_str());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        holders(&m, volume),
        vec![a.ip.clone()],
        "a plan copies nothing"
    );

    // The shell's volume.fix.replication says the same, and makes the copy with -apply.
    let id = volume.to_string();
    let copy = format!("copy {} -> {}", a.address, b.address);
    let planned = kelp_shell_ok(&m, &["volume.fix.replication", "-volumeId", &id]);
    assert!(planned.contains(&format!("{copy}: planned")), "{planned}");
    assert!(planned.contains("run with -apply"), "{planned}");
    assert_eq!(
        holders(&m, volume),
        vec![a.ip.clone()],
        "a plan copies nothing"
    );
    let applied = kelp_shell_ok(&m, &["volume.fix.replication", "-volumeId", &id, "-apply"]);
    assert!(applied.contains(&format!("{copy}: done")), "{applied}");
    assert_eq!(holders(&m, volume), vec![a.ip.clone(), b.ip.clone()]);
    assert_readable(&m, &on_volume, &b.ip);
    let again = fix_replication(&m, &format!("volumeId={volume}&apply=true"));
    assert_eq!(again.json()["volumes"], serde_json::json!([]));
}
