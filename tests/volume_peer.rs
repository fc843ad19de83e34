//! Compatibility with the real SeaweedFS 4.48: a volume directory written by `weed volume`
//! is served by `kelp volume` unchanged (needs the peer binary, see test.sh).

mod support;
mod volume_support;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;
use support::{WeedCluster, wait_until};
use volume_support::{VolumeServer, curl, get, request};

/// A port in the peer tests' range whose SeaweedFS gRPC twin (port + 10000) is free too.
fn weed_port(from: u16) -> u16 {
    (from..24999)
        .find(|&p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        })
        .expect("a free port pair for SeaweedFS")
}

/// Start a SeaweedFS master and volume server on `vdir`. Each test starts the port search at
/// its own `first_port`, so parallel tests do not collide.
fn start_weed(temp: &std::path::Path, vdir: &std::path::Path, first_port: u16) -> WeedCluster {
    let master_port = weed_port(first_port);
    let volume_port = weed_port(master_port + 1);
    WeedCluster::start(temp, vdir, (master_port, volume_port), 64, 3)
}

// Proves SeaweedFS serves a volume kelp wrote: same bytes, ETag, name and type.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_serves_a_volume_written_by_kelp() {
    let temp = tempfile::tempdir().unwrap();
    let vdir = temp.path().join("v");
    std::fs::create_dir_all(&vdir).unwrap();
    let mut kelp = VolumeServer::start_in(&vdir, 1, "", &[]);
    kelp.create_volume(5, "");
    let file = temp.path().join("pic.png");
    std::fs::write(&file, b"not really a png").unwrap();
    let kelp_url = format!("http://127.0.0.1:{}/5,01637037d6", kelp.port);
    let (written, _) = curl(&["-F", &format!("file=@{}", file.display()), &kelp_url]);
    let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
    let raw = request(
        kelp.port,
        "POST",
        "/5,02637037d6",
        &[("Seaweed-Owner", "bob")],
        b"second",
    );
    assert_eq!(raw.status, 201);
    kelp.guard.terminate(Duration::from_secs(5));
    let weed = start_weed(temp.path(), &vdir, 24950);
    let volume_port = weed.volume_port;
    let weed_url = format!("http://127.0.0.1:{volume_port}/5,01637037d6");
    wait_until(
        "SeaweedFS to serve volume 5",
        Duration::from_secs(25),
        || {
            Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &weed_url])
                .status()
                .is_ok_and(|s| s.success())
        },
    );
    let (body, _) = curl(&[&weed_url]);
    assert_eq!(body, b"not really a png");
    let (head, _) = curl(&["-sI", &weed_url]);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let etag = written["eTag"].as_str().unwrap();
    assert!(head.contains(&format!("etag: \"{etag}\"")), "{head}");
    assert!(head.contains("content-type: image/png"), "{head}");
    assert!(head.contains("filename=pic.png"), "{head}");
    let (second, _) = curl(&[&format!("http://127.0.0.1:{volume_port}/5,02637037d6")]);
    assert_eq!(second, b"second");
}

// Proves kelp serves SeaweedFS's own volume files: the same bytes, ETag and Content-Type for
// a multipart and a raw upload, the pair header back, and a needle SeaweedFS deleted is 404.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn serves_a_volume_written_by_seaweedfs() {
    let temp = tempfile::tempdir().unwrap();
    let vdir = temp.path().join("v");
    std::fs::create_dir_all(&vdir).unwrap();
    let mut weed = start_weed(temp.path(), &vdir, 24900);
    let (master_port, volume_port) = (weed.master_port, weed.volume_port);
    let assign_url = format!("http://127.0.0.1:{master_port}/dir/assign");
    let mut fids = Vec::new();
    wait_until("SeaweedFS to assign", Duration::from_secs(25), || {
        let Ok(output) = Command::new("curl").args(["-sf", &assign_url]).output() else {
            return false;
        };
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if let Some(fid) = answer["fid"].as_str() {
            fids.push(fid.to_string());
        }
        fids.len() >= 3
    });
    let file = temp.path().join("note.txt");
    std::fs::write(&file, b"written by seaweedfs\n").unwrap();
    let url = |fid: &str| format!("http://127.0.0.1:{volume_port}/{fid}");
    let (multipart, _) = curl(&["-F", &format!("file=@{}", file.display()), &url(&fids[0])]);
    let (raw, _) = curl(&[
        "-H",
        "Seaweed-Owner: alice",
        "-H",
        "Content-Type: image/x-kelp",
        "--data-binary",
        "raw bytes",
        &url(&fids[1]),
    ]);
    curl(&["--data-binary", "short lived", &url(&fids[2])]);
    curl(&["-X", "DELETE", &url(&fids[2])]);
    weed.stop();
    let kelp = VolumeServer::start_in(&vdir, 1, "", &[]);
    let multipart: serde_json::Value = serde_json::from_slice(&multipart).unwrap();
    let first = get(kelp.port, &format!("/{}", fids[0]));
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.body, b"written by seaweedfs\n");
    assert_eq!(
        first.header("etag"),
        Some(format!("\"{}\"", multipart["eTag"].as_str().unwrap()).as_str())
    );
    assert_eq!(first.header("content-type"), Some("text/plain"));
    assert_eq!(
        first.header("content-disposition"),
        Some("inline; filename=note.txt")
    );
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let second = get(kelp.port, &format!("/{}", fids[1]));
    assert_eq!(second.body, b"raw bytes");
    assert_eq!(
        second.header("etag"),
        Some(format!("\"{}\"", raw["eTag"].as_str().unwrap()).as_str())
    );
    assert_eq!(second.header("content-type"), Some("image/x-kelp"));
    assert_eq!(second.header("owner"), Some("alice"));
    assert_eq!(get(kelp.port, &format!("/{}", fids[2])).status, 404);
    let status = get(kelp.port, "/status").json();
    assert!(!status["Volumes"].as_array().unwrap().is_empty());
    let again = request(
        kelp.port,
        "POST",
        &format!("/{}", fids[0]),
        &[],
        b"kelp appends",
    );
    assert_eq!(
        again.status,
        201,
        "kelp appends to SeaweedFS's volume: {}",
        again.text()
    );
}
