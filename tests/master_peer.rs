//! Kelp's master and SeaweedFS 4.48's master answer the same calls with the same shapes.

mod master_common;
mod support;

use std::net::TcpListener;
use std::time::Duration;

use master_common::{FakeVolumeServer, MasterProcess, get, wait_for_leader};
use support::{WeedCluster, free_port, wait_until};

/// A port in 25000..26000 (this test's range) whose gRPC twin (+10000) is free too.
fn weed_port(taken: &[u16]) -> u16 {
    (25000..26000)
        .find(|p| {
            !taken.contains(p)
                && TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && TcpListener::bind(("127.0.0.1", *p + 10000)).is_ok()
        })
        .expect("a free port pair in 25000..26000")
}

fn keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

// Proves the answers a client parses match SeaweedFS's: `/dir/assign` has the same fields,
// an unknown volume in `/dir/lookup` gives the same 404 body, deleting an unknown collection
// the same 400 body, and `/cluster/status` has every field SeaweedFS's has.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn answers_match_seaweedfs() {
    let _ = support::weed_binary();
    let dir = tempfile::tempdir().unwrap();
    let master_port = weed_port(&[]);
    let volume_port = weed_port(&[master_port]);
    let vdir = dir.path().join("wv");
    let _weed = WeedCluster::start(dir.path(), &vdir, (master_port, volume_port), 1024, 10);
    let weed = format!("127.0.0.1:{master_port}");
    wait_until("SeaweedFS to assign", Duration::from_secs(30), || {
        get(&weed, "/dir/assign").is_ok_and(|a| a.status == 200)
    });

    let kelp_master = MasterProcess::start(dir.path(), "km", free_port(), "", &[]);
    wait_for_leader(&[&kelp_master], 1, Duration::from_secs(10));
    let kelp = kelp_master.address.clone();
    let _fake = FakeVolumeServer::start(vec![kelp.clone()], "", "", 10);
    wait_until("Kelp to assign", Duration::from_secs(10), || {
        get(&kelp, "/dir/assign").is_ok_and(|a| a.status == 200)
    });

    let (weed_assign, kelp_assign) = (
        get(&weed, "/dir/assign").unwrap(),
        get(&kelp, "/dir/assign").unwrap(),
    );
    assert_eq!(keys(&kelp_assign.json()), keys(&weed_assign.json()));
    let fid = kelp_assign.json()["fid"].as_str().unwrap().to_string();
    assert_eq!(
        fid.split_once(',').unwrap().1.len() % 2,
        0,
        "whole bytes of hex: {fid}"
    );

    for path in ["/dir/lookup?volumeId=999", "/col/delete?collection=nope"] {
        let (weed_answer, kelp_answer) = (get(&weed, path).unwrap(), get(&kelp, path).unwrap());
        assert_eq!(kelp_answer.status, weed_answer.status, "{path}");
        assert_eq!(kelp_answer.json(), weed_answer.json(), "{path}");
    }
    let weed_status = get(&weed, "/cluster/status").unwrap().json();
    let kelp_status = get(&kelp, "/cluster/status").unwrap().json();
    for key in keys(&weed_status) {
        assert!(
            kelp_status.get(&key).is_some(),
            "/cluster/status lacks {key}"
        );
    }
}
