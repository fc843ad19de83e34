//! Three real `kelp master` processes: election, proxying, failover, rejoin, and no fid ever
//! handed out twice. A fake volume server (tests/master_common) heartbeats and creates volumes.

mod master_common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use master_common::{
    FakeVolumeServer, KeyRanges, MasterProcess, RealVolumeServer, assign_retrying, get,
    launch_together, launch_together_with, post, record, wait_for_leader, wait_for_voters,
};
use support::free_port;

/// Start `count` masters that know each other (m0, m1, ...) and wait until they agree on a
/// leader; returns them in start order with the leader's address.
fn start_masters(dir: &Path, count: usize) -> (Vec<MasterProcess>, String) {
    let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
    let peers = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let masters: Vec<MasterProcess> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| MasterProcess::start(dir, &format!("m{i}"), *port, &peers, &[]))
        .collect();
    let leader = wait_for_leader(
        &masters.iter().collect::<Vec<_>>(),
        count,
        Duration::from_secs(20),
    );
    (masters, leader)
}

/// The masters but those at `stopped` (indexes into `masters`).
fn all_but<'a>(masters: &'a [MasterProcess], stopped: &[usize]) -> Vec<&'a MasterProcess> {
    masters
        .iter()
        .enumerate()
        .filter(|(i, _)| !stopped.contains(i))
        .map(|(_, m)| m)
        .collect()
}

/// `rounds` assignments with `query`, through each of `masters` in turn, recorded in `seen`.
fn assign_in_turn(seen: &mut KeyRanges, masters: &[&MasterProcess], rounds: usize, query: &str) {
    for round in 0..rounds {
        let through = &masters[round % masters.len()].address;
        record(
            seen,
            &assign_retrying(through, query, Duration::from_secs(10)),
        );
    }
}

// Proves: three masters elect one leader that all agree on; a follower proxies assignments
// to the leader; after the leader is SIGKILLed a new leader serves assignments within a few
// election timeouts; the old leader, restarted, rejoins as a follower; and across all of it
// no file key is handed out twice.
#[test]
fn three_masters_fail_over_without_repeating_a_fid() {
    let dir = tempfile::tempdir().unwrap();
    let (mut masters, leader) = start_masters(dir.path(), 3);
    let addresses: Vec<String> = masters.iter().map(|m| m.address.clone()).collect();
    let _volume_server = FakeVolumeServer::start(addresses.clone(), "dc1", "rack1", 20);

    let mut seen = KeyRanges::default();
    for round in 0..60 {
        let through = &addresses[round % 3];
        let count = if round % 7 == 0 { 5 } else { 1 };
        let answer = assign_retrying(through, &format!("count={count}"), Duration::from_secs(10));
        record(&mut seen, &answer);
    }
    let follower = addresses.iter().find(|a| **a != leader).unwrap();
    let proxied = get(follower, "/dir/status").unwrap();
    assert_eq!(proxied.status, 200, "a follower answers through the leader");
    assert!(proxied.json()["Topology"]["DataCenters"][0]["Id"] == "dc1");

    let leader_index = addresses.iter().position(|a| *a == leader).unwrap();
    masters[leader_index].kill();
    let killed_at = Instant::now();
    let survivor = addresses[(leader_index + 1) % 3].clone();
    let answer = assign_retrying(&survivor, "count=1", Duration::from_secs(15));
    let failover = killed_at.elapsed();
    record(&mut seen, &answer);
    eprintln!("failover: first assignment {failover:?} after the leader was killed");
    // Election timeouts are 500-1000 ms; the new leader also waits up to 1.5 pulses (1.5 s)
    // for the volume server's heartbeat before it assigns.
    assert!(
        failover < Duration::from_secs(6),
        "failover took {failover:?}"
    );
    let survivors = all_but(&masters, &[leader_index]);
    let new_leader = wait_for_leader(&survivors, 3, Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    assign_in_turn(&mut seen, &survivors, 40, "count=3");

    masters[leader_index].spawn(&[]);
    let all: Vec<&MasterProcess> = masters.iter().collect();
    let after_rejoin = wait_for_leader(&all, 3, Duration::from_secs(20));
    assert_eq!(
        after_rejoin, new_leader,
        "the restarted master follows the new leader"
    );
    for _ in 0..30 {
        record(
            &mut seen,
            &assign_retrying(&leader, "count=2", Duration::from_secs(10)),
        );
    }
    let rejoined = &masters[leader_index];
    assert_eq!(rejoined.status().unwrap()["IsLeader"], false);
    support::wait_until(
        "the rejoined master to catch up",
        Duration::from_secs(5),
        || rejoined.status().unwrap()["MaxVolumeId"].as_u64().unwrap() >= 1,
    );
    assert_eq!(seen.ranges.len(), 60 + 1 + 40 + 30);
    assert_eq!(seen.keys, (9 * 5 + 51) + 1 + 40 * 3 + 30 * 2);
}

// Proves a heartbeat posted to a follower reaches the leader (a volume server may talk to any
// master), and that the answer names the leader and the pulse.
#[test]
fn follower_forwards_heartbeats_to_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (masters, leader) = start_masters(dir.path(), 3);
    let follower = masters.iter().find(|m| m.address != leader).unwrap();
    let beat = serde_json::json!({
        "ip": "127.0.0.1", "port": 1, "publicUrl": "127.0.0.1:1", "maxVolumeCount": 3,
        "volumes": [{"id": 42, "replicaPlacement": "000", "size": 10}],
    });
    let answer = post(&follower.address, "/heartbeat", beat.to_string().as_bytes()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["leader"], leader.as_str());
    assert_eq!(answer.json()["pulseSeconds"], 1);
    let lookup = get(&leader, "/dir/lookup?volumeId=42").unwrap();
    assert_eq!(lookup.status, 200, "{}", lookup.text());
    assert_eq!(lookup.json()["locations"][0]["url"], "127.0.0.1:1");
    // The reported volume id raised the replicated max volume id on every master.
    support::wait_until("MaxVolumeId 42 everywhere", Duration::from_secs(5), || {
        masters
            .iter()
            .all(|m| m.status().is_some_and(|s| s["MaxVolumeId"] == 42))
    });
}

fn metric(address: &str, name: &str) -> Option<u64> {
    let text = get(address, "/metrics").ok()?.text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
}

// Proves a master beyond the first one's list joins by itself (started with --peers naming
// the running master and itself, it asks to be added and becomes a voter) and, since the
// leader snapshotted and purged its log, catches up through a snapshot install: its
// replicated key high-water mark and max volume id match the leader's. (Each count=100000
// assignment needs its own Raft lease entry.)
#[test]
fn late_master_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let peers = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let first = MasterProcess::start(dir.path(), "m0", ports[0], "", &[]);
    support::wait_until("the first master to lead", Duration::from_secs(15), || {
        first.status().is_some_and(|s| s["IsLeader"] == true)
    });
    let _volume_server = FakeVolumeServer::start(vec![first.address.clone()], "", "", 4);
    let mut seen = KeyRanges::default();
    for _ in 0..620 {
        let answer = assign_retrying(&first.address, "count=100000", Duration::from_secs(10));
        record(&mut seen, &answer);
    }
    support::wait_until("a snapshot on disk", Duration::from_secs(10), || {
        first.mdir.join("snapshot.json").exists()
    });
    let second = MasterProcess::start(dir.path(), "m1", ports[1], &peers, &[]);
    let leader = wait_for_voters(&[&first, &second], Duration::from_secs(30));
    assert_eq!(leader, first.address);
    let high_water = "kelp_master_file_key_high_water";
    support::wait_until(
        "the late master to catch up",
        Duration::from_secs(10),
        || {
            let leader_mark = metric(&first.address, high_water);
            leader_mark.is_some() && metric(&second.address, high_water) == leader_mark
        },
    );
    assert!(metric(&second.address, high_water).unwrap() >= 620 * 100_000);
    assert_eq!(
        second.status().unwrap()["MaxVolumeId"],
        first.status().unwrap()["MaxVolumeId"]
    );
    assert!(
        second.mdir.join("snapshot.json").exists(),
        "installed snapshot is persisted"
    );
}

/// Wait until an assignment through `address` answers 503 with a JSON error that says there
/// is no quorum (and contains `detail`); that error.
fn wait_for_no_quorum(address: &str, detail: &str) -> String {
    let mut last = String::new();
    support::wait_until(
        &format!("{address} to answer 503 no quorum"),
        Duration::from_secs(15),
        || {
            let Ok(answer) = get(address, "/dir/assign") else {
                return false;
            };
            last = answer.text();
            let is_json = answer.header("content-type") == Some("application/json");
            let error = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_default();
            answer.status == 503 && is_json && error.contains("no quorum") && error.contains(detail)
        },
    );
    last
}

// Proves five masters started together form one group of five voters: with the leader and
// one more master SIGKILLed, the remaining three (a quorum only if all five vote) elect a
// leader and serve assignments above every key handed out before. With a third master
// killed, assignments through either survivor answer 503 with a JSON error saying there is
// no quorum (the new leader's lease lapses); so they do with the leader killed as well.
#[test]
fn five_masters_survive_losing_two() {
    let dir = tempfile::tempdir().unwrap();
    let (mut masters, leader) = start_masters(dir.path(), 5);
    let addresses: Vec<String> = masters.iter().map(|m| m.address.clone()).collect();
    let _volume_server = FakeVolumeServer::start(addresses.clone(), "", "", 7);
    let mut seen = KeyRanges::default();
    for round in 0..10 {
        let through = &addresses[round % 5];
        record(
            &mut seen,
            &assign_retrying(through, "count=1", Duration::from_secs(10)),
        );
    }
    let leader_index = addresses.iter().position(|a| *a == leader).unwrap();
    let other_index = (leader_index + 1) % 5;
    masters[leader_index].kill();
    masters[other_index].kill();
    let survivors = all_but(&masters, &[leader_index, other_index]);
    let new_leader = wait_for_leader(&survivors, 5, Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    assign_in_turn(&mut seen, &survivors, 10, "count=1");
    assert_eq!(seen.keys, 20);

    let new_leader_index = addresses.iter().position(|a| *a == new_leader).unwrap();
    let third_index = (0..5)
        .find(|i| ![leader_index, other_index, new_leader_index].contains(i))
        .unwrap();
    masters[third_index].kill();
    let dead = [leader_index, other_index, third_index];
    for survivor in all_but(&masters, &dead) {
        let error = wait_for_no_quorum(&survivor.address, "");
        eprintln!("{}: {error}", survivor.address);
    }
    masters[new_leader_index].kill();
    let last = all_but(
        &masters,
        &[leader_index, other_index, third_index, new_leader_index],
    );
    let error = wait_for_no_quorum(&last[0].address, "1 of 5 voting masters reachable");
    eprintln!("{}: {error}", last[0].address);
}

// Proves three masters started at the same instant with the same --peers form one group of
// three voters: /cluster/status on each lists all three as reachable voters, and all name
// the same leader, the only one that says IsLeader. Three rounds, fresh directories each (a
// bootstrap in which the second and third master raced to join left a two-voter group).
#[test]
fn three_masters_started_at_once_are_three_voters() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let masters = launch_together(dir.path(), 3);
        let all: Vec<&MasterProcess> = masters.iter().collect();
        let leader = wait_for_voters(&all, Duration::from_secs(30));
        eprintln!("round {round}: leader {leader}");
        for master in &masters {
            let status = master.status().expect("status");
            assert_eq!(status["Leader"], leader.as_str(), "{status}");
            assert_eq!(status["Members"].as_array().unwrap().len(), 3, "{status}");
        }
    }
}

// Proves a real volume server follows a new leader at once rather than a pulse later: with a
// 5 s pulse, after the leader is SIGKILLed the first assignment through a survivor succeeds
// within 3 s (the election takes about 1.2 s with a 500 ms election timeout). The volume
// server hears of the dead leader through /cluster/watch, and of the new one as soon as it is
// elected; a new leader knows no volume until a volume server heartbeats to it.
#[test]
fn volume_server_follows_a_new_leader_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut masters = launch_together_with(dir.path(), 3, |m| m.pulse_seconds = 5);
    let all: Vec<&MasterProcess> = masters.iter().collect();
    let leader = wait_for_voters(&all, Duration::from_secs(30));
    let addresses: Vec<String> = masters.iter().map(|m| m.address.clone()).collect();
    let _volume = RealVolumeServer::start(&dir.path().join("v"), &addresses.join(","), "", 10);
    let mut seen = KeyRanges::default();
    record(
        &mut seen,
        &assign_retrying(&leader, "count=1", Duration::from_secs(30)),
    );
    let leader_index = addresses.iter().position(|a| *a == leader).unwrap();
    masters[leader_index].kill();
    let killed_at = Instant::now();
    let survivor = &addresses[(leader_index + 1) % 3];
    let answer = assign_retrying(survivor, "count=1", Duration::from_secs(20));
    let failover = killed_at.elapsed();
    record(&mut seen, &answer);
    eprintln!("failover with a real volume server: {failover:?}");
    assert!(
        failover < Duration::from_secs(3),
        "first assignment {failover:?} after the leader was killed"
    );
}

/// `kelp cluster <args>`: (success, stdout, stderr).
fn kelp_cluster(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(support::kelp_bin())
        .arg("cluster")
        .args(args)
        .output()
        .expect("run kelp cluster");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Add a fourth master as a learner with the CLI before it runs, then start it: it is listed
/// as an unreachable learner, then as a reachable one, and does not promote itself.
fn learner_added_before_it_runs(
    dir: &Path,
    masters: &[MasterProcess],
    leader: &str,
) -> MasterProcess {
    let list = masters
        .iter()
        .map(|m| m.address.clone())
        .collect::<Vec<_>>()
        .join(",");
    let port = free_port();
    let fourth_address = format!("127.0.0.1:{port}");
    let (ok, out, err) = kelp_cluster(&[
        "add",
        "--master",
        &list,
        "--address",
        &fourth_address,
        "--learner",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{fourth_address}  learner  unreachable")),
        "{out}"
    );
    let (ok, out, err) = kelp_cluster(&["ps", "--master", &list]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{leader}  voter    reachable leader")),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("voter")).count(),
        3,
        "{out}"
    );

    let peers = format!("{list},{fourth_address}");
    let fourth = MasterProcess::start(dir, "m3", port, &peers, &[]);
    support::wait_until(
        "the learner to be reachable",
        Duration::from_secs(20),
        || {
            master_common::members_of(&masters[0].status().unwrap())
                .iter()
                .any(|(a, role, reachable, _)| {
                    *a == fourth_address && role == "learner" && *reachable
                })
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let status = fourth.status().unwrap();
    let own = master_common::members_of(&status);
    assert!(
        own.iter()
            .any(|(a, role, ..)| *a == fourth_address && role == "learner"),
        "{status}"
    );

    fourth
}

// Proves masters can be added and removed with the CLI, and /cluster/status shows it: a
// fourth master added as a learner before it runs is listed as an unreachable learner; once
// started (with --peers naming the cluster and itself) it is reachable and does not promote
// itself; `add` again makes it a voter (four voters everywhere); removing the leader leaves
// three voters that elect a new leader and assign. Bad addresses are refused naming the flag.
#[test]
fn masters_are_added_and_removed_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let masters = launch_together(dir.path(), 3);
    let all: Vec<&MasterProcess> = masters.iter().collect();
    let leader = wait_for_voters(&all, Duration::from_secs(30));
    let list = masters
        .iter()
        .map(|m| m.address.clone())
        .collect::<Vec<_>>()
        .join(",");
    let fourth = learner_added_before_it_runs(dir.path(), &masters, &leader);
    let fourth_address = fourth.address.clone();
    let (ok, out, err) = kelp_cluster(&["add", "--master", &list, "--address", &fourth_address]);
    assert!(ok, "{out}{err}");
    let mut four: Vec<&MasterProcess> = masters.iter().collect();
    four.push(&fourth);
    assert_eq!(wait_for_voters(&four, Duration::from_secs(30)), leader);

    let peers = format!("{list},{fourth_address}");
    let (ok, out, err) = kelp_cluster(&["remove", "--master", &peers, "--address", &leader]);
    assert!(ok, "{out}{err}");
    let rest: Vec<&MasterProcess> = four
        .iter()
        .copied()
        .filter(|m| m.address != leader)
        .collect();
    let new_leader = wait_for_voters(&rest, Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    let _volume_server = FakeVolumeServer::start(vec![new_leader.clone()], "", "", 4);
    assign_retrying(&new_leader, "count=1", Duration::from_secs(15));

    let (ok, _, err) = kelp_cluster(&["add", "--master", &list, "--address", "nohost"]);
    assert!(
        !ok && err.contains("--address") && err.contains("host:port"),
        "{err}"
    );
    let (ok, _, err) = kelp_cluster(&["ps", "--master", "a"]);
    assert!(!ok && err.contains("--master"), "{err}");
}
