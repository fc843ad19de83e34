//! `--duration` and `--rate`: a phase stops at its time bound, and a target rate paces requests
//! instead of running flat out.

mod fake;

use std::net::TcpListener;

use clap::Parser;
use kelp_bench::Args;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn run_against_fake(extra: &[&str]) -> kelp_bench::report::RunReport {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    // The fake stops after this many requests, which ends its thread; far more than the run.
    std::thread::spawn(move || fake::fake_cluster(listener, 1_000_000));
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.txt");
    let mut argv = vec![
        "benchmark",
        "--master",
        &addr,
        "--write-only",
        "--threads",
        "1",
    ];
    let list = list.to_str().unwrap().to_string();
    argv.extend_from_slice(&["--list", &list]);
    argv.extend_from_slice(extra);
    let args = Cli::try_parse_from(argv).expect("parses").args;
    kelp_bench::run_benchmark(&args, false).expect("run")
}

#[test]
fn duration_bounds_a_phase() {
    // Proves --duration ends a phase that -n alone would keep running for hours, and that the
    // phase is reported as complete (not aborted) with what it did.
    let report = run_against_fake(&["-n", "100000000", "-c", "2", "--duration", "0.5"]);
    assert_eq!(report.aborted, None);
    let write = &report.phases[0];
    assert!(write.completed > 0 && write.completed < 100_000_000);
    assert_eq!(write.failed, 0);
    assert!(
        write.seconds < 5.0,
        "stopped near the bound, took {} s",
        write.seconds
    );
}

#[test]
fn rate_paces_requests() {
    // Proves --rate 100 issues about 100 writes per second instead of as many as possible:
    // in a 1 s window at most rate x time + one per worker can have started, while the same
    // fake server takes thousands per second unpaced. Latencies are corrected (reported).
    let report = run_against_fake(&[
        "-n",
        "100000000",
        "-c",
        "4",
        "--duration",
        "1",
        "--rate",
        "100",
    ]);
    let write = &report.phases[0];
    assert_eq!(write.failed, 0);
    assert!(
        write.completed <= 105,
        "paced to 100/s, got {}",
        write.completed
    );
    assert!(
        write.completed >= 50,
        "about 100 in one second, got {}",
        write.completed
    );
    assert_eq!(write.target_rate_per_second, Some(100.0));
}

#[test]
fn stop_file_ends_a_phase() {
    // Proves --stop-file ends a phase that -n and --duration would keep running long after
    // the file appears, as a complete phase (not aborted, no failure).
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    let stop_text = stop.to_str().unwrap().to_string();
    let creator = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(&stop, b"").expect("create the stop file");
    });
    let report = run_against_fake(&[
        "-n",
        "100000000",
        "-c",
        "2",
        "--duration",
        "60",
        "--stop-file",
        &stop_text,
    ]);
    creator.join().unwrap();
    assert_eq!(report.aborted, None);
    let write = &report.phases[0];
    assert_eq!(write.failed, 0);
    assert!(write.completed > 0);
    assert!(
        write.seconds < 5.0,
        "stopped at the file, took {} s",
        write.seconds
    );
}
