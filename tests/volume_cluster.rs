//! End-to-end tests of `kelp volume` across cores and servers: hand-off between cores,
//! redirects and replication through a fake master, and the heartbeat.

mod support;
mod volume_support;

use std::time::Duration;
use volume_support::{FakeMaster, VolumeServer, get, request};

// Proves that with --cores 2 every volume is readable and writable through the main port and
// through every core's own port (requests on a non-owning core are handed to the owner).
#[test]
fn cross_core_hand_off() {
    let server = VolumeServer::start(2, "", &[]);
    server.create_volume(1, "");
    server.create_volume(2, "");
    let ports = [server.port, server.core_port(0), server.core_port(1)];
    for volume_id in [1u32, 2] {
        for (i, &port) in ports.iter().enumerate() {
            let path = format!("/{volume_id},{:02x}00000aaa", i + 1);
            let body = format!("volume {volume_id} via port {port}");
            let up = request(port, "POST", &path, &[], body.as_bytes());
            assert_eq!(up.status, 201, "POST {path} on {port}: {}", up.text());
            for &reader in &ports {
                let response = get(reader, &path);
                assert_eq!(response.text(), body, "GET {path} on {reader}");
            }
        }
    }
    let status = get(server.core_port(1), "/status").json();
    let ports_reported: Vec<u64> = status["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Port"].as_u64().unwrap())
        .collect();
    // Volume 1 is owned by core 1, volume 2 by core 0.
    assert_eq!(
        ports_reported,
        vec![
            u64::from(server.core_port(1)),
            u64::from(server.core_port(0))
        ]
    );
}

// Proves a fid of a volume held elsewhere is redirected to the server the master names (301
// for reads, 307 for writes), and an unknown volume is 404 with a JSON error.
#[test]
fn redirect_through_master_lookup() {
    let master = FakeMaster::start();
    master.set_locations(7, &["127.0.0.1:1".to_string()]);
    let server = VolumeServer::start(1, &master.addr(), &[]);
    let response = get(server.port, "/7,01637037d6.jpg?x=1");
    assert_eq!(response.status, 301, "{}", response.text());
    assert_eq!(
        response.header("location"),
        Some("http://127.0.0.1:1/7,01637037d6.jpg?x=1")
    );
    let write = request(server.port, "POST", "/7,01637037d6", &[], b"elsewhere");
    assert_eq!(
        write.status,
        307,
        "writes keep their method: {}",
        write.text()
    );
    assert_eq!(
        write.header("location"),
        Some("http://127.0.0.1:1/7,01637037d6")
    );
    let unknown = get(server.port, "/8,01637037d6");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("volume 8")
    );
}

// Proves the heartbeat reaches the master with the volumes and their owning core's port.
#[test]
fn heartbeat_reports_volumes() {
    let master = FakeMaster::start();
    let server = VolumeServer::start(2, &master.addr(), &["--data-center", "dc9", "--rack", "r3"]);
    server.create_volume(3, "replication=000");
    let heartbeats = master.heartbeats.clone();
    support::wait_until("a heartbeat with volume 3", Duration::from_secs(15), || {
        heartbeats
            .lock()
            .unwrap()
            .iter()
            .any(|beat| beat["volumes"].as_array().is_some_and(|v| !v.is_empty()))
    });
    let beats = heartbeats.lock().unwrap();
    let beat = beats
        .iter()
        .rev()
        .find(|b| !b["volumes"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(beat["port"], server.port);
    assert_eq!(beat["dataCenter"], "dc9");
    assert_eq!(beat["rack"], "r3");
    assert_eq!(beat["volumes"][0]["id"], 3);
    assert_eq!(beat["volumes"][0]["port"], server.core_port(1)); // 3 % 2 = core 1
}

// Proves writes and deletes on a replicated volume (001) are copied to the other replica
// before the answer, and a dead replica makes the write fail with 500 naming it.
#[test]
fn replication_fan_out() {
    let master = FakeMaster::start();
    let first = VolumeServer::start(1, &master.addr(), &[]);
    let second = VolumeServer::start(1, &master.addr(), &[]);
    first.create_volume(4, "replication=001");
    second.create_volume(4, "replication=001");
    master.set_locations(4, &[first.url(), second.url()]);
    let up = request(
        first.port,
        "POST",
        "/4,01000000aa",
        &[("Seaweed-Tag", "x")],
        b"copied",
    );
    assert_eq!(up.status, 201, "{}", up.text());
    let copy = get(second.port, "/4,01000000aa");
    assert_eq!(copy.body, b"copied");
    assert_eq!(copy.header("tag"), Some("x"));
    assert_eq!(
        request(first.port, "DELETE", "/4,01000000aa", &[], b"").status,
        202
    );
    assert_eq!(get(second.port, "/4,01000000aa").status, 404);
    let dead = support::dead_address();
    master.set_locations(5, &[first.url(), dead.clone()]);
    first.create_volume(5, "replication=001");
    let failed = request(first.port, "POST", "/5,01000000aa", &[], b"lonely");
    assert_eq!(failed.status, 500);
    assert!(failed.text().contains(&dead), "{}", failed.text());
}

// Proves a replicated volume (010) whose other replica the master no longer lists refuses
// writes and deletes with SeaweedFS's wording instead of answering success with one copy, and
// that nothing the refused calls touched changes on the live replica.
#[test]
fn replication_refuses_with_placement_unmet() {
    let master = FakeMaster::start();
    let first = VolumeServer::start(1, &master.addr(), &[]);
    let second = VolumeServer::start(1, &master.addr(), &[]);
    first.create_volume(6, "replication=010");
    second.create_volume(6, "replication=010");
    // The file is put on each replica directly (as a replica copy), so neither server has
    // looked volume 6 up before the master's view changes below.
    for server in [&first, &second] {
        let path = "/6,01000000aa?type=replicate";
        let kept = request(server.port, "POST", path, &[], b"two copies");
        assert_eq!(kept.status, 201, "{}", kept.text());
    }
    // The master dropped the second replica (missed heartbeats): only the first is listed.
    let other = VolumeServer::start(1, &master.addr(), &[]);
    other.create_volume(7, "replication=010");
    master.set_locations(7, &[other.url()]);
    let refused = request(other.port, "POST", "/7,02000000bb", &[], b"one copy");
    assert_eq!(refused.status, 500, "{}", refused.text());
    let message = refused.json()["error"].as_str().unwrap().to_string();
    assert!(
        message
            .contains("replication locations [1] is less than volume 7 replication copy count [2]"),
        "{message}"
    );
    assert_eq!(
        get(other.port, "/7,02000000bb").status,
        404,
        "no visible single copy"
    );
    // A delete with the placement unmet is refused and the file stays.
    master.set_locations(6, &[first.url()]);
    let delete = request(first.port, "DELETE", "/6,01000000aa", &[], b"");
    assert_eq!(delete.status, 500, "{}", delete.text());
    assert!(
        delete
            .text()
            .contains("is less than volume 6 replication copy count [2]")
    );
    assert_eq!(get(first.port, "/6,01000000aa").body, b"two copies");
    assert_eq!(get(second.port, "/6,01000000aa").body, b"two copies");
}

// Proves a write whose copy to a listed replica fails leaves no visible file on the replica
// that took it, and a delete whose copy fails is refused with the file kept on both replicas.
#[test]
fn replication_failure_leaves_no_single_copy() {
    let master = FakeMaster::start();
    let first = VolumeServer::start(1, &master.addr(), &[]);
    let second = VolumeServer::start(1, &master.addr(), &[]);
    first.create_volume(8, "replication=001");
    second.create_volume(8, "replication=001");
    for server in [&first, &second] {
        let path = "/8,01000000aa?type=replicate";
        let kept = request(server.port, "POST", path, &[], b"kept");
        assert_eq!(kept.status, 201, "{}", kept.text());
    }
    // The first lookup of volume 8 lists a replica that is down.
    let dead = support::dead_address();
    master.set_locations(8, &[first.url(), dead.clone()]);
    let failed = request(first.port, "POST", "/8,03000000cc", &[], b"lonely");
    assert_eq!(failed.status, 500, "{}", failed.text());
    assert!(failed.text().contains(&dead), "{}", failed.text());
    assert_eq!(
        get(first.port, "/8,03000000cc").status,
        404,
        "undone locally"
    );
    let delete = request(first.port, "DELETE", "/8,01000000aa", &[], b"");
    assert_eq!(delete.status, 500, "{}", delete.text());
    assert_eq!(get(first.port, "/8,01000000aa").body, b"kept");
    assert_eq!(get(second.port, "/8,01000000aa").body, b"kept");
    // Deleting a missing fid on a replicated volume is still 404.
    master.set_locations(8, &[first.url(), second.url()]);
    // A replica that lacks the needle takes the delete as done: it is gone everywhere.
    let only_first = request(
        first.port,
        "POST",
        "/8,05000000ee?type=replicate",
        &[],
        b"one",
    );
    assert_eq!(only_first.status, 201, "{}", only_first.text());
    let delete = request(first.port, "DELETE", "/8,05000000ee", &[], b"");
    assert_eq!(delete.status, 202, "{}", delete.text());
    assert_eq!(get(first.port, "/8,05000000ee").status, 404);
    let missing = request(first.port, "DELETE", "/8,09000000dd", &[], b"");
    assert_eq!(missing.status, 404, "{}", missing.text());
}
