//! Three real masters and two real volume servers: uploads continue through a leader kill,
//! and a volume server killed and restarted comes back with its volumes.

mod master_common;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use master_common::{
    MasterProcess, RealVolumeServer, assign_and_upload, get, get_following, wait_for_leader,
};
use support::{free_port, wait_until};

/// Assign through any master and upload `data`; None while the cluster cannot take it.
fn upload(masters: &[String], round: usize, data: &[u8]) -> Option<String> {
    assign_and_upload(&masters[round % masters.len()], data)
}

fn upload_some(masters: &[String], files: &mut BTreeMap<String, Vec<u8>>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = files.len();
    let target = files.len() + count;
    while files.len() < target {
        assert!(
            Instant::now() < deadline,
            "uploads stalled at {} files",
            files.len()
        );
        let data = format!("file number {round}").into_bytes();
        match upload(masters, round, &data) {
            Some(fid) => assert!(files.insert(fid, data).is_none(), "fid handed out twice"),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
        round += 1;
    }
}

// Proves uploads keep working through a SIGKILL of the leader master (a new leader takes the
// volume servers' heartbeats and assigns), that a SIGKILLed volume server restarts with its
// volumes back in lookups, and that every file reads back through the masters' redirects.
#[test]
fn uploads_survive_leader_and_volume_server_kills() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut masters: Vec<MasterProcess> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| MasterProcess::start(dir.path(), &format!("m{i}"), *p, &peers.join(","), &[]))
        .collect();
    let leader = wait_for_leader(
        &masters.iter().collect::<Vec<_>>(),
        3,
        Duration::from_secs(20),
    );
    let mut volume_a = RealVolumeServer::start(&dir.path().join("va"), &peers.join(","), "dc1", 6);
    let _volume_b = RealVolumeServer::start(&dir.path().join("vb"), &peers.join(","), "dc1", 6);

    let mut files = BTreeMap::new();
    upload_some(&peers, &mut files, 40);

    let leader_index = peers.iter().position(|p| *p == leader).unwrap();
    masters[leader_index].kill();
    let survivors: Vec<String> = peers.iter().filter(|p| **p != leader).cloned().collect();
    upload_some(&survivors, &mut files, 40);

    let on_a: HashSet<u32> = volume_ids_in(&volume_a.dir);
    assert!(!on_a.is_empty(), "server A holds volumes");
    volume_a.kill();
    volume_a.spawn();
    let probe = *on_a.iter().next().unwrap();
    wait_until(
        "server A's volumes back in lookups",
        Duration::from_secs(15),
        || {
            get(&survivors[0], &format!("/dir/lookup?volumeId={probe}")).is_ok_and(|a| {
                let text = a.text();
                let on_core =
                    |core: u16| text.contains(&format!("127.0.0.1:{}", volume_a.port + core));
                a.status == 200 && (on_core(1) || on_core(2))
            })
        },
    );
    upload_some(&survivors, &mut files, 20);

    for (fid, data) in &files {
        let answer = get_following(&survivors[1], &format!("/{fid}")).unwrap();
        assert_eq!(answer.status, 200, "{fid}: {}", answer.text());
        assert_eq!(&answer.body, data, "{fid}");
    }
}

fn volume_ids_in(dir: &std::path::Path) -> HashSet<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".dat")?.parse().ok()
        })
        .collect()
}
