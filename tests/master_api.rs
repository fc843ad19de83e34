//! One real `kelp master` with fake volume servers: growth and placement, lookups and
//! redirects, `/submit`, collections, dead servers, bad parameters, restarts.

mod master_common;
mod support;

use std::time::Duration;

use master_common::{FakeVolumeServer, MasterProcess, get, http, post, wait_for_leader};
use support::{free_port, wait_until};

fn start_master(dir: &std::path::Path) -> MasterProcess {
    let master = MasterProcess::start(dir, "m", free_port(), "", &[]);
    wait_for_leader(&[&master], 1, Duration::from_secs(10));
    master
}

/// Wait until the master lists `count` data nodes in `/dir/status`.
fn wait_for_nodes(master: &MasterProcess, count: usize) {
    wait_until(
        &format!("{count} volume servers"),
        Duration::from_secs(10),
        || {
            let status = get(&master.address, "/dir/status").unwrap().json();
            let racks = status["Topology"]["DataCenters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let nodes: usize = racks
                .iter()
                .flat_map(|dc| dc["Racks"].as_array().cloned().unwrap_or_default())
                .map(|rack| rack["DataNodes"].as_array().map_or(0, Vec::len))
                .sum();
            nodes == count
        },
    );
}

// Proves growth follows the placement: 000 grows a batch on the servers, 100 needs two data
// centers (406 with SeaweedFS's message while there is one, growth once a second appears),
// the volume server's --max is respected, and every volume is found by lookup.
#[test]
fn growth_follows_placement_and_max() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let masters = vec![master.address.clone()];
    let dc1 = FakeVolumeServer::start(masters.clone(), "dc1", "rack1", 5);
    wait_for_nodes(&master, 1);

    let answer = get(&master.address, "/dir/assign").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        dc1.volume_ids().len(),
        5,
        "a batch of 7 is capped by --max 5"
    );
    assert_eq!(answer.json()["url"], dc1.address.as_str());

    let refused = get(&master.address, "/dir/assign?replication=100&collection=c").unwrap();
    assert_eq!(refused.status, 406);
    let message = "Cannot grow volume group! Not enough data node found!";
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(message),
        "SeaweedFS's words first: {error}"
    );
    assert!(error.contains("free volume slot"), "and why: {error}");

    let dc2 = FakeVolumeServer::start(masters.clone(), "dc2", "rack1", 5);
    let dc3 = FakeVolumeServer::start(masters.clone(), "dc2", "rack1", 5);
    wait_for_nodes(&master, 3);
    let refused = get(&master.address, "/dir/assign?replication=100&collection=c").unwrap();
    assert_eq!(
        refused.status, 406,
        "dc1 is full (--max), so no second data center"
    );

    let grown = get(
        &master.address,
        "/vol/grow?count=2&replication=001&collection=c",
    )
    .unwrap();
    assert_eq!(grown.status, 200, "{}", grown.text());
    assert_eq!(grown.json()["count"], 2);
    let assigned = get(&master.address, "/dir/assign?replication=001&collection=c").unwrap();
    assert_eq!(assigned.status, 200, "{}", assigned.text());
    let fid = assigned.json()["fid"].as_str().unwrap().to_string();
    let lookup = get(&master.address, &format!("/dir/lookup?fileId={fid}")).unwrap();
    assert_eq!(lookup.status, 200);
    let mut urls: Vec<String> = lookup.json()["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    let mut expected = vec![dc2.address.clone(), dc3.address.clone()];
    expected.sort();
    assert_eq!(urls, expected, "001 puts both copies in one rack");
}

// Proves `/submit` assigns and uploads in one call, `GET /<fid>` on the master redirects
// (301) rotating between the replicas, and lookups of unknown volumes answer 404.
#[test]
fn submit_redirect_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let masters = vec![master.address.clone()];
    let one = FakeVolumeServer::start(masters.clone(), "dc1", "rack1", 3);
    let two = FakeVolumeServer::start(masters.clone(), "dc1", "rack1", 3);
    wait_for_nodes(&master, 2);

    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\r\nhello weed-fs!\n\r\n--XyZ--\r\n";
    let headers = [("Content-Type", "multipart/form-data; boundary=XyZ")];
    let answer = http(
        "POST",
        &master.address,
        "/submit?replication=001",
        &headers,
        multipart.as_bytes(),
    )
    .unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text());
    let json = answer.json();
    let fid = json["fid"].as_str().unwrap().to_string();
    assert!(json["fileUrl"].as_str().unwrap().ends_with(&fid));
    let stored = [&one, &two]
        .iter()
        .filter(|server| server.files.lock().unwrap().contains_key(&fid))
        .count();
    assert_eq!(
        stored, 1,
        "the master uploads once; the volume server replicates"
    );

    let mut targets = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let redirect = get(&master.address, &format!("/{fid}")).unwrap();
        assert_eq!(redirect.status, 301);
        let location = redirect.header("location").unwrap().to_string();
        assert!(location.ends_with(&format!("/{fid}")), "{location}");
        targets.insert(location);
    }
    assert_eq!(
        targets.len(),
        2,
        "redirects rotate between the two replicas"
    );

    let missing = get(&master.address, "/dir/lookup?volumeId=999").unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("999"));
    assert_eq!(get(&master.address, "/999,01637037d6").unwrap().status, 404);
    let not_multipart = post(&master.address, "/submit", b"{}").unwrap();
    assert_eq!(not_multipart.status, 400);
}

// Proves `/col/delete` drops the collection's volumes on the volume servers and from
// lookups, and an unknown collection is a 400 (SeaweedFS's answer).
#[test]
fn collection_delete_drops_its_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let server = FakeVolumeServer::start(vec![master.address.clone()], "", "", 10);
    wait_for_nodes(&master, 1);
    let pictures = get(&master.address, "/dir/assign?collection=pictures").unwrap();
    assert_eq!(pictures.status, 200, "{}", pictures.text());
    let plain = get(&master.address, "/dir/assign?collection=docs").unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text());
    let pictures_fid = pictures.json()["fid"].as_str().unwrap().to_string();
    let before = server.volumes.lock().unwrap().len();
    assert!(before > 1);

    let deleted = get(&master.address, "/col/delete?collection=pictures").unwrap();
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let left = server.volumes.lock().unwrap();
    assert!(left.values().all(|v| v.collection == "docs"), "{left:?}");
    assert!(!left.is_empty());
    drop(left);
    let lookup = get(
        &master.address,
        &format!("/dir/lookup?fileId={pictures_fid}"),
    )
    .unwrap();
    assert_eq!(lookup.status, 404);
    let unknown = get(&master.address, "/col/delete?collection=nothing").unwrap();
    assert_eq!(unknown.status, 400, "as SeaweedFS answers");
    assert_eq!(unknown.json()["error"], "collection nothing does not exist");
}

// Proves a volume server that stops heartbeating is dropped after three missed beats: its
// volumes leave lookups and assignments (406, nothing left to grow on).
#[test]
fn silent_volume_server_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let server = FakeVolumeServer::start(vec![master.address.clone()], "", "", 4);
    wait_for_nodes(&master, 1);
    let answer = get(&master.address, "/dir/assign").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let volume = server.volume_ids()[0];
    server
        .beating
        .store(false, std::sync::atomic::Ordering::Release);
    wait_until(
        "the silent server to be dropped",
        Duration::from_secs(8),
        || {
            get(&master.address, &format!("/dir/lookup?volumeId={volume}"))
                .unwrap()
                .status
                == 404
        },
    );
    assert_eq!(get(&master.address, "/dir/assign").unwrap().status, 406);
}

// Proves every bad parameter gets a 4xx with a JSON error, and unknown paths are 404.
#[test]
fn bad_parameters_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(dir.path());
    let cases = [
        ("/dir/assign?count=abc", 400),
        ("/dir/assign?count=0", 400),
        ("/dir/assign?replication=0001", 400),
        ("/dir/assign?replication=0x0", 400),
        ("/dir/assign?ttl=5q", 400),
        ("/dir/assign?collection=../x", 400),
        ("/dir/lookup", 400),
        ("/dir/lookup?volumeId=abc", 400),
        ("/dir/lookup?fileId=3,zz", 400),
        ("/vol/grow", 400),
        ("/vol/grow?count=-1", 400),
        ("/col/delete", 400),
        ("/vol/vacuum?garbageThreshold=abc", 406),
        ("/vol/vacuum?garbageThreshold=1.5", 400),
        ("/vol/vacuum?volumeId=x", 400),
        ("/no/such/thing", 404),
    ];
    for (path, status) in cases {
        let answer = get(&master.address, path).unwrap();
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert!(answer.json()["error"].is_string(), "{path}");
    }
    let bad_beat = post(&master.address, "/heartbeat", b"{not json").unwrap();
    assert_eq!(bad_beat.status, 400);
    assert_eq!(get(&master.address, "/heartbeat").unwrap().status, 405);
    let pretty = get(&master.address, "/cluster/status?pretty=y").unwrap();
    assert!(
        pretty.text().contains("\n  \"IsLeader\": true"),
        "{}",
        pretty.text()
    );
    assert_eq!(get(&master.address, "/healthz").unwrap().status, 200);
    let metrics = get(&master.address, "/metrics").unwrap().text();
    assert!(metrics.contains("kelp_master_is_leader 1"), "{metrics}");
}

// Proves a master killed with SIGKILL restarts from its Raft log: the max volume id is kept
// and new keys start above every key handed out before the crash.
#[test]
fn restarted_master_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_master(dir.path());
    let _server = FakeVolumeServer::start(vec![master.address.clone()], "", "", 7);
    wait_for_nodes(&master, 1);
    let mut last_key = 0;
    for _ in 0..20 {
        let answer = get(&master.address, "/dir/assign?count=3").unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let fid = answer.json()["fid"].as_str().unwrap().to_string();
        let hex = fid.split_once(',').unwrap().1;
        last_key = u64::from_str_radix(&hex[..hex.len() - 8], 16).unwrap();
    }
    let max_volume_id = master.status().unwrap()["MaxVolumeId"].as_u64().unwrap();
    assert_eq!(max_volume_id, 7);
    master.kill();
    master.spawn(&[]);
    wait_for_leader(&[&master], 1, Duration::from_secs(10));
    wait_for_nodes(&master, 1);
    let answer = get(&master.address, "/dir/assign").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let fid = answer.json()["fid"].as_str().unwrap().to_string();
    let hex = fid.split_once(',').unwrap().1;
    let key = u64::from_str_radix(&hex[..hex.len() - 8], 16).unwrap();
    assert!(
        key > last_key + 2,
        "key {key} after a crash must pass {last_key}"
    );
    assert_eq!(master.status().unwrap()["MaxVolumeId"], max_volume_id);
}
