//! Argument handling of `kelp benchmark`: defaults like `weed benchmark`, and a clear error
//! naming the flag for every bad value.

use clap::Parser;
use kelp_bench::{Args, ArgsError};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
    let mut full = vec!["benchmark"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).map(|cli| cli.args)
}

fn validation_error(argv: &[&str]) -> String {
    let args = parse(argv).expect("parses");
    match args.validate() {
        Err(ArgsError(message)) => message,
        Ok(()) => panic!("{argv:?} should be refused"),
    }
}

#[test]
fn defaults_match_weed_benchmark() {
    // Proves the defaults are weed benchmark's, so a bare run is the same workload.
    let args = parse(&[]).expect("parses");
    assert_eq!(args.master, "localhost:9333");
    assert_eq!(args.n, 1_048_576);
    assert_eq!(args.c, 16);
    assert_eq!(args.size, 1024);
    assert_eq!(args.size_jitter, 63);
    assert_eq!(args.collection, "benchmark");
    assert_eq!(args.replication, "000");
    assert!(!args.fsync && !args.read_only && !args.write_only);
    args.validate().expect("defaults are valid");
}

#[test]
fn master_list_is_split_and_checked() {
    // Proves a comma-separated master list is accepted (scheme and spaces tolerated) and a
    // master without a port is refused by name.
    let args = parse(&["--master", "http://10.0.0.1:9333, 10.0.0.2:9333"]).expect("parses");
    assert_eq!(args.masters().unwrap(), ["10.0.0.1:9333", "10.0.0.2:9333"]);
    let message = validation_error(&["--master", "10.0.0.1:9333,hostonly"]);
    assert!(
        message.contains("--master") && message.contains("hostonly"),
        "{message}"
    );
    let message = validation_error(&["--master", ","]);
    assert!(message.contains("--master"), "{message}");
}

#[test]
fn out_of_range_values_name_their_flag() {
    // Proves each bound is checked and the message says which flag to change.
    let cases: [(&[&str], &str); 14] = [
        (&["-n", "0"], "-n"),
        (&["-c", "0"], "-c"),
        (&["-c", "5000"], "-c"),
        (&["--size", "0"], "--size"),
        (&["--size", "100000000"], "--size"),
        (&["--delete-percent", "101"], "--delete-percent"),
        (&["--duration", "0"], "--duration"),
        (&["--rate=-5"], "--rate"),
        (&["--threads", "0"], "--threads"),
        (&["--replication", "0001"], "--replication"),
        (&["--replication", "9x9"], "--replication"),
        (&["--replication", "300"], "--replication"),
        (&["--collection", "a/b"], "--collection"),
        (&["--collection", ".hidden"], "--collection"),
    ];
    for (argv, flag) in cases {
        let message = validation_error(argv);
        assert!(message.starts_with(flag), "{argv:?}: {message}");
    }
}

#[test]
fn read_only_needs_a_list_and_modes_conflict() {
    // Proves --read-only without --list is refused, and that clap refuses contradictory modes.
    let message = validation_error(&["--read-only"]);
    assert!(message.contains("--list"), "{message}");
    assert!(parse(&["--read-only", "--write-only"]).is_err());
    assert!(parse(&["--write-only", "--mixed-read-percent", "50"]).is_err());
    assert!(parse(&["-n", "lots"]).is_err());
}

#[test]
fn bad_list_files_are_named_in_the_error() {
    // Proves a missing list and a list with a line that is not a fid fail with the path (and
    // line number), while comments and blank lines are skipped as weed does.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.txt");
    let error = kelp_bench::read_list(&missing).unwrap_err().to_string();
    assert!(error.contains("missing.txt"), "{error}");

    let good = dir.path().join("good.txt");
    std::fs::write(&good, "# written by weed\n3,01637037d6\n\n4,02a1b2c3d4\n").unwrap();
    let fids: Vec<_> = kelp_bench::read_list(&good)
        .unwrap()
        .into_iter()
        .map(|record| record.fid)
        .collect();
    assert_eq!(fids, ["3,01637037d6", "4,02a1b2c3d4"]);

    let bad = dir.path().join("bad.txt");
    for line in ["not a fid", "3,zz637037d6", "x,01637037d6"] {
        std::fs::write(&bad, format!("3,01637037d6\n{line}\n")).unwrap();
        let error = kelp_bench::read_list(&bad).unwrap_err().to_string();
        assert!(
            error.contains("bad.txt") && error.contains("line 2") && error.contains(line),
            "{error}"
        );
    }

    let args = parse(&["--read-only", "--list", missing.to_str().unwrap()]).unwrap();
    let error = kelp_bench::run_benchmark(&args, false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing.txt"), "{error}");
}
