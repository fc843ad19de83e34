//! One real master and two real volume servers on their own addresses (127.0.0.2 in dc1,
//! 127.0.0.3 in dc2), volumes with replication `100`: with dc2's server down, writes and
//! deletes are refused and nothing changes on either replica, also once the master has dropped
//! dc2 (the volume server checks the placement's copy count itself).

mod master_common;
mod support;

use std::time::Duration;

use master_common::{
    Answer, MasterProcess, PlacedVolumeServer as Server, assign_retrying, get, http, multipart_file,
};
use support::{free_port, wait_until};

fn submit(master: &str, data: &[u8]) -> Answer {
    let (content_type, body) = multipart_file("f.txt", data);
    let headers = [("Content-Type", content_type.as_str())];
    http(
        "POST",
        master,
        "/submit?replication=100&dataCenter=dc1",
        &headers,
        &body,
    )
    .expect("master answers")
}

fn upload(server: &str, fid: &str, data: &[u8]) -> Answer {
    let (content_type, body) = multipart_file("f.txt", data);
    let headers = [("Content-Type", content_type.as_str())];
    http("POST", server, &format!("/{fid}"), &headers, &body).expect("volume server answers")
}

// Proves the placement is never reported met with one copy: with dc2's server killed, a
// /submit fails with SeaweedFS's wording and leaves no readable file, a delete is refused and
// the file stays; once the master dropped dc2, an upload to a fid assigned earlier is refused
// too; after dc2 returns and a repair interval passed, both replicas hold the file the refused
// delete named and neither the refused upload.
#[test]
fn replica_down_refuses_writes_and_deletes() {
    if !std::path::Path::new("/proc/sys/net/ipv4").exists() {
        eprintln!("ignored: no IPv4 loopback to bind 127.0.0.2/3 on");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut master = MasterProcess::new(dir.path(), "m", port, "");
    master.spawn(&["--default-replication", "100"]);
    let master_addr = master.address.clone();
    let repair = ["--repair-interval-seconds", "2"];
    let _dc1 = Server::start(dir.path(), "127.0.0.2", "dc1", &master_addr, &repair);
    let mut dc2 = Server::start(dir.path(), "127.0.0.3", "dc2", &master_addr, &repair);

    let reserved = assign_retrying(&master_addr, "replication=100", Duration::from_secs(20));
    let stored = submit(&master_addr, b"two copies");
    assert_eq!(stored.status, 201, "{}", stored.text());
    let fid = stored.json()["fid"].as_str().unwrap().to_string();
    let volume_id: u32 = fid.split(',').next().unwrap().parse().unwrap();
    let lookup = get(&master_addr, &format!("/dir/lookup?volumeId={volume_id}")).unwrap();
    let holders: Vec<String> = lookup.json()["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(holders.len(), 2, "{}", lookup.text());
    for holder in &holders {
        assert_eq!(get(holder, &format!("/{fid}")).unwrap().body, b"two copies");
    }
    let live = holders
        .iter()
        .find(|h| h.starts_with("127.0.0.2"))
        .unwrap()
        .clone();

    dc2.kill();
    let refused = submit(&master_addr, b"one copy");
    assert_eq!(refused.status, 500, "{}", refused.text());
    let lonely = refused.json()["error"].as_str().unwrap().to_string();
    assert!(lonely.contains("replication copy count [2]"), "{lonely}");
    let lonely_fid = lonely.split(':').next().unwrap().to_string();
    let read = get(&live, &format!("/{lonely_fid}")).unwrap();
    assert_eq!(
        read.status,
        404,
        "nothing written: {lonely_fid} {}",
        read.text()
    );

    let delete = http("DELETE", &live, &format!("/{fid}"), &[], b"").unwrap();
    assert_eq!(delete.status, 500, "{}", delete.text());
    assert_eq!(get(&live, &format!("/{fid}")).unwrap().body, b"two copies");

    // The master drops dc2 after missed heartbeats; the volume server still refuses.
    wait_until("the master to drop dc2", Duration::from_secs(20), || {
        let lookup = get(&master_addr, &format!("/dir/lookup?volumeId={volume_id}"));
        lookup.is_ok_and(|a| !a.text().contains("127.0.0.3"))
    });
    std::thread::sleep(Duration::from_secs(3)); // the volume server's lookup cache
    let late = upload(&live, reserved["fid"].as_str().unwrap(), b"late");
    assert_eq!(late.status, 500, "{}", late.text());
    assert!(
        late.text()
            .contains("replication locations [1] is less than volume"),
        "{}",
        late.text()
    );
    let delete = http("DELETE", &live, &format!("/{fid}"), &[], b"").unwrap();
    assert_eq!(delete.status, 500, "{}", delete.text());
    assert!(
        delete.text().contains("replication locations [1]"),
        "{}",
        delete.text()
    );

    dc2.spawn();
    // Within a repair interval (2 s) and a pass, the replicas still agree: the file whose
    // delete was refused is on both, the refused upload on neither.
    std::thread::sleep(Duration::from_secs(7));
    for holder in &holders {
        assert_eq!(get(holder, &format!("/{fid}")).unwrap().body, b"two copies");
        let read = get(holder, &format!("/{lonely_fid}")).unwrap();
        assert_eq!(read.status, 404, "{holder}: {lonely_fid} {}", read.text());
    }
}
