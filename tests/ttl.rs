//! TTL end to end, with real `kelp master` and `kelp volume` processes: a file uploaded with
//! `ttl=1m` is 404 once its minute passed; its volume then leaves the master's lookups and
//! its files are deleted after the removal delay; and a volume's TTL clock is read from its
//! needles, so it survives a restart.

mod master_common;
mod support;
mod vacuum_support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kelp_engine::format::{FileId, Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{FileVolume, default_config};
use master_common::{MasterProcess, get};
use support::{free_port, wait_until};
use vacuum_support::{Volume, assign, upload};

fn master(dir: &Path) -> MasterProcess {
    MasterProcess::start(dir, "master", free_port(), "", &["--vacuum-interval", "0"])
}

fn volume_files(dir: &Path, base: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{base}.")))
        .collect()
}

/// Waits until `deadline` (a moment measured from `start`).
fn sleep_until(start: Instant, deadline: Duration) {
    if let Some(left) = deadline.checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
}

// Proves a TTL's whole course at real time (the TTL unit is the minute): files uploaded to a
// `ttl=1m` volume read back at 58 s and are 404 by 61 s; the volume then leaves the master's
// lookups (no more assignments) and its files are deleted after the removal delay
// (min(TTL/10, --ttl-removal-delay-max-seconds 1) = 1 s); a file without TTL on the same
// server is untouched.
#[test]
fn ttl_files_and_their_volume_expire() {
    let dir = tempfile::tempdir().unwrap();
    let master = master(dir.path());
    let delay = ["--ttl-removal-delay-max-seconds", "1"];
    let volume = Volume::start(&dir.path().join("v"), &master.address, &delay);
    let (kept_fid, kept_url) = assign(&master.address, "keep");
    assert_eq!(upload(&kept_url, &kept_fid, b"no ttl").status, 201);
    let mut fids = Vec::new();
    for index in 0..3u8 {
        let answer = get(&master.address, "/dir/assign?collection=short&ttl=1m").unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let answer = answer.json();
        let fid = answer["fid"].as_str().unwrap().to_string();
        let url = answer["url"].as_str().unwrap().to_string();
        assert_eq!(upload(&url, &fid, &[b'a' + index; 100]).status, 201);
        fids.push((fid, url));
    }
    let written = Instant::now();
    let volume_id = fids[0].0.split(',').next().unwrap().to_string();
    let base = format!("short_{volume_id}");
    assert!(!volume_files(&volume.dir, &base).is_empty());

    sleep_until(written, Duration::from_secs(58));
    for (fid, url) in &fids {
        let status = get(url, &format!("/{fid}")).unwrap().status;
        assert_eq!(status, 200, "{fid} before its minute");
    }
    sleep_until(written, Duration::from_secs(61));
    for (fid, url) in &fids {
        assert_eq!(
            get(url, &format!("/{fid}")).unwrap().status,
            404,
            "{fid} after it"
        );
    }
    wait_until(
        "the volume to leave the lookups",
        Duration::from_secs(4),
        || {
            let path = format!("/dir/lookup?volumeId={volume_id}");
            get(&master.address, &path).is_ok_and(|a| a.status == 404)
        },
    );
    wait_until(
        "the volume's files to be deleted",
        Duration::from_secs(4),
        || volume_files(&volume.dir, &base).is_empty(),
    );
    assert_eq!(
        get(&kept_url, &format!("/{kept_fid}")).unwrap().text(),
        "no ttl"
    );
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A `ttl=1m` volume in `dir` with three needles appended `age` ago; their fids.
fn old_ttl_volume(dir: &Path, volume_id: u32, age: Duration) -> Vec<FileId> {
    let ttl = Ttl::parse("1m").unwrap();
    let config = default_config(volume_id, "aged", ReplicaPlacement::default(), ttl);
    let mut volume = FileVolume::create(dir, config).unwrap();
    let appended_ns = now_ns() - age.as_nanos() as u64;
    (1..=3u64)
        .map(|key| {
            let fid = FileId {
                volume_id,
                key,
                cookie: 0x1234_0000 + key as u32,
            };
            let needle = Needle {
                key,
                cookie: fid.cookie,
                data: b"aged data",
                ttl: Some(ttl),
                last_modified_s: Some(appended_ns / 1_000_000_000),
                ..Needle::default()
            };
            volume.write_at(&needle, appended_ns, true).unwrap();
            fid
        })
        .collect()
}

// Proves a TTL volume's clock is read from its needles when the server starts, not started
// by the process: a volume whose needles were appended 63 s before the start is expired at
// once (left out of the heartbeat, its files 404, deleted after the removal delay of 6 s),
// while one appended 10 s before is served.
#[test]
fn ttl_clock_comes_from_the_needles_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("v");
    std::fs::create_dir_all(&data).unwrap();
    let expired = old_ttl_volume(&data, 9, Duration::from_secs(63));
    let fresh = old_ttl_volume(&data, 10, Duration::from_secs(10));
    let master = master(dir.path());
    let volume = Volume::start(&data, &master.address, &[]);
    let ids: Vec<u64> = volume.revisions("aged").keys().copied().collect();
    assert_eq!(ids, vec![10], "the expired volume is not reported");
    for fid in &expired {
        assert_eq!(
            get(&volume.address(), &format!("/{fid}")).unwrap().status,
            404
        );
    }
    for fid in &fresh {
        let answer = get(&volume.address(), &format!("/{fid}")).unwrap();
        assert_eq!(answer.text(), "aged data", "{fid}");
    }
    wait_until(
        "the expired volume's files to go",
        Duration::from_secs(15),
        || volume_files(&data, "aged_9").is_empty(),
    );
    assert!(!volume_files(&data, "aged_10").is_empty());
}
