//! A server that disappears in the middle of a run: the benchmark must stop on its own, say
//! which server went away, and still give the report of what was done until then.

mod fake;

use std::net::TcpListener;
use std::path::Path;
use std::thread::JoinHandle;

use clap::Parser;
use kelp_bench::Args;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

/// A fake cluster on a free loopback port that answers `requests_max` requests, then goes
/// away; returns its address and its thread.
fn start_fake_cluster(requests_max: u64) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || fake::fake_cluster(listener, requests_max));
    (addr, server)
}

/// `kelp benchmark` arguments: 1,000,000 writes to `addr` with `concurrency` requests in
/// flight on `threads` threads, for at most 20 s, listing fids in `list`, plus `extra`.
fn million_writes(
    addr: &str,
    concurrency: &str,
    threads: &str,
    list: &Path,
    extra: &[&str],
) -> Args {
    let list = list.to_str().unwrap();
    let mut argv = vec![
        "benchmark",
        "--master",
        addr,
        "-n",
        "1000000",
        "-c",
        concurrency,
    ];
    argv.extend(["--threads", threads, "--list", list, "--duration", "20"]);
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).expect("parses").args
}

#[test]
fn server_that_goes_away_ends_the_run_with_a_partial_report() {
    // Proves: when the only server stops after 400 requests, the benchmark ends by itself
    // (well before its 1,000,000 writes), names the server in the reason, reports the writes
    // that completed, and `run` turns the abort into an error.
    let (addr, server) = start_fake_cluster(400);
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    let json = dir.path().join("report.json");
    let args = million_writes(&addr, "4", "2", &list, &["--json", json.to_str().unwrap()]);
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
    let (addr, server) = start_fake_cluster(50);
    let args = million_writes(&addr, "2", "1", &list, &[]);
    let error = kelp_bench::run(args).unwrap_err().to_string();
    server.join().expect("fake server");
    assert!(
        error.starts_with("benchmark aborted: a server went away"),
        "{error}"
    );
}
