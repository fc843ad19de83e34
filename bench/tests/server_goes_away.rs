//! A server that disappears in the middle of a run: the benchmark must stop on its own, say
//! which server went away, and still give the report of what was done until then.

mod fake;

use std::net::TcpListener;

use clap::Parser;
use kelp_bench::Args;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

#[test]
fn server_that_goes_away_ends_the_run_with_a_partial_report() {
    // Proves: when the only server stops after 400 requests, the benchmark ends by itself
    // (well before its 1,000,000 writes), names the server in the reason, reports the writes
    // that completed, and `run` turns the abort into an error.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || fake::fake_cluster(listener, 400));
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    let json = dir.path().join("report.json");
    let argv = [
        "benchmark",
        "--master",
        &addr,
        "-n",
        "1000000",
        "-c",
        "4",
        "--threads",
        "2",
        "--list",
        list.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--duration",
        "20",
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let report = kelp_bench::run_benchmark(&args, false).expect("run returns its report");
    server.join().expect("fake server");

    let reason = report.aborted.as_deref().expect("the run was aborted");
    assert!(
        reason.contains("went away") && reason.contains(&addr),
        "{reason}"
    );
    assert_eq!(
        report.phases.len(),
        1,
        "no read phase after an aborted write phase"
    );
    let write = &report.phases[0];
    assert!(
        write.completed > 0 && write.completed < 200,
        "completed {}",
        write.completed
    );
    assert!(write.failed >= 3, "failed {}", write.failed);
    assert_eq!(write.aborted.as_deref(), Some(reason));
    let listed = std::fs::read_to_string(&list).expect("fid list written");
    assert_eq!(listed.lines().count() as u64, write.completed);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).unwrap();
    assert_eq!(json["phases"][0]["completed"], write.completed);
    assert!(json["aborted"].as_str().unwrap().contains("went away"));

    // The CLI entry point reports the same run as an error.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || fake::fake_cluster(listener, 50));
    let argv = [
        "benchmark",
        "--master",
        &addr,
        "-n",
        "1000000",
        "-c",
        "2",
        "--threads",
        "1",
        "--list",
        list.to_str().unwrap(),
        "--duration",
        "20",
    ];
    let args = Cli::try_parse_from(argv).expect("parses").args;
    let error = kelp_bench::run(args).unwrap_err().to_string();
    server.join().expect("fake server");
    assert!(
        error.starts_with("benchmark aborted: a server went away"),
        "{error}"
    );
}
