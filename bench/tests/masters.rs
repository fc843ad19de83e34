//! `--master` with several masters: the benchmark follows the leader past a dead master and a
//! follower, and `--fsync` reaches the volume server as `?fsync=true`.

mod fake;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use clap::Parser;
use kelp_bench::Args;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

#[test]
fn follows_the_leader_through_the_master_list() {
    // Proves: with masters "dead, follower, leader" every one of 50 writes succeeds (a refused
    // connection and a "not the leader" answer both move on to the next master), the leader
    // sees exactly one assign per file, and each upload asks for fsync.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().unwrap().to_string()
    };
    let leader_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let leader = leader_listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let leader_log = log.clone();
    std::thread::spawn(move || fake::fake_cluster_logged(leader_listener, 1_000_000, leader_log));
    let follower_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let follower = follower_listener.local_addr().unwrap().to_string();
    let leader_name = leader.clone();
    std::thread::spawn(move || fake::fake_follower(follower_listener, leader_name));

    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    let masters = format!("{dead},{follower},{leader}");
    let argv = [
        "benchmark",
        "--master",
        &masters,
        "-n",
        "50",
        "-c",
        "2",
        "--threads",
        "1",
        "--write-only",
        "--fsync",
        "--list",
        list.to_str().unwrap(),
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let report = kelp_bench::run_benchmark(&args, false).expect("run");
    assert_eq!(report.aborted, None);
    assert_eq!(
        (report.phases[0].completed, report.phases[0].failed),
        (50, 0)
    );

    let log = log.lock().unwrap();
    let assigns = log
        .iter()
        .filter(|line| line.starts_with("GET /dir/assign"))
        .count();
    let uploads: Vec<_> = log
        .iter()
        .filter(|line| line.starts_with("POST "))
        .collect();
    assert_eq!(assigns, 50);
    assert_eq!(uploads.len(), 50);
    assert!(
        uploads
            .iter()
            .all(|line| line.starts_with("POST /1,01deadbeef?fsync=true ")),
        "{uploads:?}"
    );
}
