//! `kelp backup` against a real master and volume server: a first run copies the volume
//! whole, later runs pull only the new records (and deletes), a compaction on the source
//! makes the next run copy it whole again, and the backup is a volume that `kelp export` and
//! a volume server open and serve byte-identical.

mod master_common;
mod support;

use std::path::Path;
use std::time::Duration;

use master_common::{MasterProcess, RealVolumeServer, get, http, multipart_file};
use support::{ChildGuard, dead_address, free_port, free_port_run, wait_until};

/// Stores `data` through the master; its fid.
fn store(master: &str, data: &[u8]) -> String {
    let (content_type, body) = multipart_file("f.bin", data);
    let headers = [("Content-Type", content_type.as_str())];
    let mut answer = http("POST", master, "/submit", &headers, &body).unwrap();
    for _ in 0..50 {
        if answer.status == 201 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        answer = http("POST", master, "/submit", &headers, &body).unwrap();
    }
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()["fid"].as_str().unwrap().to_string()
}

fn volume_of(fid: &str) -> u32 {
    fid.split(',').next().unwrap().parse().unwrap()
}

/// Stores files until `count` of them landed in `volume_id` (bounded); those (fid, bytes).
fn store_in(master: &str, volume_id: u32, count: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut stored = Vec::new();
    for index in 0..200 {
        if stored.len() == count {
            return stored;
        }
        let data = format!("{tag} {index}").into_bytes();
        let fid = store(master, &data);
        if volume_of(&fid) == volume_id {
            stored.push((fid, data));
        }
    }
    panic!("{count} files never landed in volume {volume_id}");
}

/// `kelp backup` into `dir`; its output, asserting success.
fn backup(master: &str, dir: &Path, volume_id: u32) -> String {
    let output = std::process::Command::new(support::kelp_bin())
        .args(["backup", "--master", master, "--dir"])
        .arg(dir)
        .args(["--volume-id", &volume_id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}{errors}");
    text
}

/// The number printed before `what` in a backup's summary.
fn count_of(output: &str, what: &str) -> u64 {
    let summary = output.lines().last().unwrap();
    let before = summary.split(what).next().unwrap();
    let number = before.trim_end().rsplit(' ').next().unwrap();
    number
        .parse()
        .unwrap_or_else(|_| panic!("{what} in {summary:?}"))
}

fn location(master: &str, volume_id: u32) -> String {
    let lookup = get(master, &format!("/dir/lookup?volumeId={volume_id}")).unwrap();
    lookup.json()["locations"][0]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

// Proves the backup's runs: whole, then only the new records and a delete (bytes pulled a
// fraction of the volume), then whole again after the source's compaction; and that the
// backup opens in `kelp export` and in a volume server, which serves every live file
// byte-identical and the deleted one not at all.
#[test]
fn backup_full_incremental_and_after_compaction() {
    let root = tempfile::tempdir().unwrap();
    let master = MasterProcess::start(root.path(), "m", free_port(), "", &[]);
    let m = master.address.clone();
    let _server = RealVolumeServer::start(&root.path().join("v"), &m, "dc1", 10);
    let big = vec![b'k'; 300_000];
    let big_fid = store(&m, &big);
    let volume = volume_of(&big_fid);
    let mut files = vec![(big_fid.clone(), big)];
    files.extend(store_in(&m, volume, 3, "first"));
    let dir = root.path().join("backup");

    let first = backup(&m, &dir, volume);
    assert!(first.contains("copied whole"), "{first}");
    assert!(count_of(&first, "bytes pulled") > 300_000, "{first}");

    let newer = store_in(&m, volume, 3, "second");
    let source = location(&m, volume);
    let gone = files[1].0.clone();
    let deleted = http("DELETE", &source, &format!("/{gone}"), &[], b"").unwrap();
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    files.remove(1);
    files.extend(newer);
    let second = backup(&m, &dir, volume);
    assert!(second.contains("brought up to date"), "{second}");
    assert_eq!(count_of(&second, "needles appended"), 3, "{second}");
    assert_eq!(count_of(&second, "deletes applied"), 1, "{second}");
    assert!(count_of(&second, "bytes pulled") < 2_000, "{second}");
    let quiet = backup(&m, &dir, volume);
    assert_eq!(count_of(&quiet, "bytes pulled"), 0, "{quiet}");

    let vacuum = get(
        &m,
        &format!("/vol/vacuum?garbageThreshold=0.00001&volumeId={volume}"),
    );
    assert_eq!(vacuum.unwrap().status, 200);
    let third = backup(&m, &dir, volume);
    assert!(
        third.contains("compacted") && third.contains("copied whole"),
        "{third}"
    );
    let after_compaction = store_in(&m, volume, 1, "third");
    files.extend(after_compaction);
    let fourth = backup(&m, &dir, volume);
    assert_eq!(count_of(&fourth, "needles appended"), 1, "{fourth}");

    eprintln!("{first}{second}{quiet}{third}{fourth}");

    // What a whole copy cut short leaves: the old .idx removed, partial .backup files.
    std::fs::remove_file(dir.join(format!("{volume}.idx"))).unwrap();
    std::fs::write(dir.join(format!("{volume}.dat.backup")), b"partial").unwrap();
    std::fs::write(dir.join(format!("{volume}.idx.backup")), b"partial").unwrap();
    let resumed = backup(&m, &dir, volume);
    assert!(resumed.contains("brought up to date"), "{resumed}");
    assert!(
        dir.join(format!("{volume}.idx")).exists(),
        "the open rebuilt the .idx"
    );
    assert!(!dir.join(format!("{volume}.dat.backup")).exists());
    let unknown = std::process::Command::new(support::kelp_bin())
        .args(["backup", "--master", &m, "--dir"])
        .arg(&dir)
        .args(["--volume-id", "999"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success() && said.contains("999"), "{said}");

    let export = std::process::Command::new(support::kelp_bin())
        .args(["export", "--dir"])
        .arg(&dir)
        .args(["--volume-id", &volume.to_string()])
        .output()
        .unwrap();
    assert!(export.status.success(), "{:?}", export);
    assert_readable_from_backup(&dir, &files, &gone, &source);
}

/// A volume server on the backup directory serves every file of `files` as `source` does,
/// and not `gone`.
fn assert_readable_from_backup(dir: &Path, files: &[(String, Vec<u8>)], gone: &str, source: &str) {
    let port = free_port_run(2);
    let dir_text = dir.display().to_string();
    let master = dead_address();
    let args = [
        "volume",
        "--dir",
        &dir_text,
        "--port",
        &port.to_string(),
        "--cores",
        "1",
        "--master",
        &master,
    ];
    let log = dir.with_extension("log");
    let _served = ChildGuard::spawn_kelp("volume on the backup", &args, &log);
    let address = format!("127.0.0.1:{port}");
    wait_until("the backup served", Duration::from_secs(20), || {
        get(&address, "/healthz").is_ok_and(|a| a.status == 200)
    });
    for (fid, data) in files {
        let read = get(&address, &format!("/{fid}")).unwrap();
        assert_eq!(read.status, 200, "{fid}: {}", read.text());
        assert_eq!(&read.body, data, "{fid}");
        let original = get(source, &format!("/{fid}")).unwrap();
        assert_eq!(read.body, original.body, "{fid} as the source serves it");
    }
    assert_eq!(get(&address, &format!("/{gone}")).unwrap().status, 404);
}
