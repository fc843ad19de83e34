//! File tokens between Kelp and the real SeaweedFS 4.48 with the same write key: a token
//! Kelp's master issues is taken by SeaweedFS's volume server, and a token SeaweedFS's
//! master issues is taken by Kelp's volume server (ignored without the peer: `test.sh` sets
//! `KELP_PEER_WEED`).

mod master_common;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use master_common::{Answer, MasterProcess, get, http, multipart_file};
use support::{ChildGuard, free_port, free_port_run, wait_until, weed_binary};

const KEY: &str = "shared-write-key";

/// A free port whose gRPC companion (port + 10000) is free too.
fn free_peer_port() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000) found");
}

/// `weed <args>` with the write key given as SeaweedFS reads it from the environment
/// (`WEED_JWT_SIGNING_KEY`, the same as `[jwt.signing] key`), logging to `root/<name>.log`.
fn spawn_weed(root: &Path, name: &str, args: &[String]) -> ChildGuard {
    let log_path = root.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(weed_binary())
        .args(args)
        .current_dir(root)
        .env("WEED_JWT_SIGNING_KEY", KEY)
        .env("WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS", "60")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    ChildGuard::adopt(name, child, &log_path)
}

fn upload(address: &str, fid: &str, token: &str) -> Answer {
    let (content_type, body) = multipart_file("t.txt", b"across");
    let headers = [
        ("Content-Type", content_type.as_str()),
        ("Authorization", token),
    ];
    http("POST", address, &format!("/{fid}"), &headers, &body).unwrap()
}

fn assign(master: &str) -> Answer {
    let mut answer = None;
    wait_until(
        &format!("an assignment from {master}"),
        Duration::from_secs(30),
        || {
            let got = get(master, "/dir/assign");
            let ok = got.as_ref().is_ok_and(|a| a.status == 200);
            answer = got.ok();
            ok
        },
    );
    answer.unwrap()
}

// Proves Kelp's tokens and SeaweedFS's are the same: each side's volume server takes the
// other side's master's token for the same fid and key, and SeaweedFS refuses a token of
// another key (so it does check).
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED, set by test.sh)"]
fn tokens_cross_between_kelp_and_seaweedfs() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (weed_master_port, weed_volume_port) = (free_peer_port(), free_peer_port());
    std::fs::create_dir_all(root.join("wm")).unwrap();
    std::fs::create_dir_all(root.join("wv")).unwrap();
    let _weed_master = spawn_weed(
        root,
        "weed-master",
        &[
            "master".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={weed_master_port}"),
            format!("-mdir={}", root.join("wm").display()),
            "-peers=none".into(),
            "-telemetry=false".into(),
        ],
    );
    let _weed_volume = spawn_weed(
        root,
        "weed-volume",
        &[
            "volume".into(),
            "-ip=127.0.0.1".into(),
            format!("-port={weed_volume_port}"),
            format!("-dir={}", root.join("wv").display()),
            "-max=8".into(),
            "-preStopSeconds=0".into(),
            format!("-master=127.0.0.1:{weed_master_port}"),
            "-minFreeSpace=64MiB".into(),
        ],
    );
    let security = root.join("security.toml");
    let text = format!("[jwt.signing]\nkey = \"{KEY}\"\nexpires_after_seconds = 60\n");
    std::fs::write(&security, text).unwrap();
    let security = security.display().to_string();
    let kelp_master = MasterProcess::start(
        root,
        "kelp-master",
        free_port(),
        "",
        &["--security", &security],
    );
    let kelp_volume_port = free_port_run(2);
    let kelp_dir = root.join("kv");
    std::fs::create_dir_all(&kelp_dir).unwrap();
    let kelp_args = [
        "volume".to_string(),
        "--dir".into(),
        kelp_dir.display().to_string(),
        "--port".into(),
        kelp_volume_port.to_string(),
        "--cores".into(),
        "1".into(),
        "--max".into(),
        "8".into(),
        "--master".into(),
        kelp_master.address.clone(),
        "--security".into(),
        security.clone(),
    ];
    let kelp_args: Vec<&str> = kelp_args.iter().map(String::as_str).collect();
    let _kelp_volume = ChildGuard::spawn_kelp("kelp volume", &kelp_args, &root.join("kv.log"));

    let weed_master = format!("127.0.0.1:{weed_master_port}");
    let weed_assigned = assign(&weed_master);
    let weed_fid = weed_assigned.json()["fid"].as_str().unwrap().to_string();
    let weed_token = weed_assigned
        .header("authorization")
        .expect("weed's token")
        .to_string();
    let kelp_assigned = assign(&kelp_master.address);
    let kelp_url = kelp_assigned.json()["url"].as_str().unwrap().to_string();
    let weed_url = format!("127.0.0.1:{weed_volume_port}");

    // Kelp's master signs a token for SeaweedFS's fid (its volume id is one Kelp also has).
    let lookup = format!("/dir/lookup?fileId={weed_fid}");
    let kelp_token = get(&kelp_master.address, &lookup).unwrap();
    let kelp_token = kelp_token
        .header("authorization")
        .unwrap_or_else(|| panic!("Kelp's lookup of {weed_fid}: {}", kelp_token.text()))
        .to_string();
    let other_key = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJmaWQiOiIxLDAxIn0.x";
    assert_eq!(upload(&weed_url, &weed_fid, other_key).status, 401);
    let taken = upload(&weed_url, &weed_fid, &kelp_token);
    assert_eq!(
        taken.status,
        201,
        "SeaweedFS took Kelp's token? {}",
        taken.text()
    );
    // SeaweedFS's token for the same fid, on Kelp's volume server.
    let taken = upload(&kelp_url, &weed_fid, &weed_token);
    assert_eq!(
        taken.status,
        201,
        "Kelp took SeaweedFS's token? {}",
        taken.text()
    );
}
