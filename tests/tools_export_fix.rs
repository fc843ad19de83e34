//! `kelp export` and `kelp fix` on a volume written by Kelp's engine, run as the real binary.

mod support;

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{FileVolume, OpenOptions, default_config};
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn kelp(args: &[&str]) -> std::process::Output {
    Command::new(support::kelp_bin())
        .args(args)
        .output()
        .expect("run kelp")
}

/// Run `kelp TOOL` on volume 5 of collection "docs" in `dir` (plus `extra` arguments) and
/// require it to succeed.
fn run_on_docs_volume(tool: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        tool,
        "--dir",
        dir,
        "--volume-id",
        "5",
        "--collection",
        "docs",
    ];
    args.extend_from_slice(extra);
    let out = kelp(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Volume 5 of collection "docs": a text file, a gzipped file, a deleted file, and a file
/// with a 150-byte name.
fn make_volume(dir: &Path) {
    let config = default_config(5, "docs", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir, config).unwrap();
    let plain = Needle {
        key: 0x04,
        cookie: 0x3426e6f6,
        data: b"plain text",
        name: Some(b"a.txt"),
        mime: Some(b"text/plain"),
        last_modified_s: Some(1_700_000_000),
        ..Needle::default()
    };
    volume.write(&plain, false).unwrap();
    let zipped = gzip(b"zipped text");
    let gz = Needle {
        key: 0x44,
        cookie: 7,
        data: &zipped,
        flags: 0x01,
        name: Some(b"b.txt"),
        ..Needle::default()
    };
    volume.write(&gz, false).unwrap();
    volume
        .write(
            &Needle {
                key: 0x45,
                cookie: 8,
                data: b"gone",
                ..Needle::default()
            },
            false,
        )
        .unwrap();
    volume.delete(0x45, 8, false).unwrap();
    let long_name = "n".repeat(150);
    let long = Needle {
        key: 0x46,
        cookie: 9,
        data: b"long",
        name: Some(long_name.as_bytes()),
        ..Needle::default()
    };
    volume.write(&long, true).unwrap();
}

// Proves `kelp export` lists exactly the live needles, each line starting with its fid text
// followed by size, name, mime, last-modified and CRC.
#[test]
fn export_lists_live_needles() {
    let dir = tempfile::tempdir().unwrap();
    make_volume(dir.path());
    let out = run_on_docs_volume("export", dir.path(), &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 live needles:\n{text}");
    let crc = format!("{:08x}", kelp_engine::format::crc32c(b"plain text"));
    assert_eq!(
        lines[1],
        format!("5,043426e6f6\t10\ta.txt\ttext/plain\t2023-11-14T22:13:20\t{crc}\tfalse\t")
    );
    assert!(
        lines[2].starts_with("5,4400000007\t") && lines[2].contains("\ttrue\t"),
        "{}",
        lines[2]
    );
    assert!(
        !text.contains("5,4500000008"),
        "deleted needle listed:\n{text}"
    );
}

// Proves `kelp export --out` writes a tar that tar(1) reads, with the original bytes
// (gzip undone) and the long name intact.
#[test]
fn export_writes_a_tar() {
    let dir = tempfile::tempdir().unwrap();
    make_volume(dir.path());
    let tar = dir.path().join("out.tar");
    run_on_docs_volume("export", dir.path(), &["--out", tar.to_str().unwrap()]);
    let extract = dir.path().join("x");
    std::fs::create_dir(&extract).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&extract)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(extract.join("5,043426e6f6_a.txt")).unwrap(),
        b"plain text"
    );
    assert_eq!(
        std::fs::read(extract.join("5,4400000007_b.txt")).unwrap(),
        b"zipped text"
    );
    let long = format!("5,4600000009_{}", "n".repeat(150));
    assert_eq!(std::fs::read(extract.join(long)).unwrap(), b"long");
    assert_eq!(std::fs::read_dir(&extract).unwrap().count(), 3);
}

// Proves `kelp fix` rebuilds a lost `.idx` identical to the one written live, and that the
// volume then opens clean with the same contents.
#[test]
fn fix_rebuilds_the_index() {
    let dir = tempfile::tempdir().unwrap();
    make_volume(dir.path());
    let idx = dir.path().join("docs_5.idx");
    let original = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, b"garbage").unwrap();
    run_on_docs_volume("fix", dir.path(), &[]);
    assert_eq!(std::fs::read(&idx).unwrap(), original);
    let (volume, report) =
        FileVolume::open(dir.path(), "docs", 5, &OpenOptions::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        volume.read(0x04, 0x3426e6f6).unwrap().needle().data,
        b"plain text"
    );
    assert!(volume.read(0x45, 8).is_err());
}

// Proves the tools fail with exit status 1 and a message naming the file and the problem.
#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = kelp(&["export", "--dir", d, "--volume-id", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("9.dat") && stderr.contains("No such file"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("9.dat"), [7u8, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let out = kelp(&["fix", "--dir", d, "--volume-id", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("9.dat") && stderr.contains("unknown volume version 7"),
        "{stderr}"
    );
}
