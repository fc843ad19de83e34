//! `kelp server` (master + volume server in one process) running SeaweedFS's walk-through:
//! submit, read from the volume server, read through the master (redirect), delete, 404.

mod master_common;
mod support;

use std::time::Duration;

use master_common::{get, get_following, http, multipart_file};
use support::{ChildGuard, free_port, free_port_run, wait_until};

/// `kelp server` on 2 cores with its data in `dir/data`.
fn server_args(
    dir: &std::path::Path,
    master_port: u16,
    volume_port: u16,
    pulse_s: u32,
) -> Vec<String> {
    let data = dir.join("data").to_string_lossy().into_owned();
    [
        "server",
        "--dir",
        &data,
        "--master-port",
        &master_port.to_string(),
        "--volume-port",
        &volume_port.to_string(),
        "--cores",
        "2",
        "--pulse-seconds",
        &pulse_s.to_string(),
        "--filer-port",
        &free_port().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

// Proves the README's quick start works: `kelp server --dir D` says when it is ready, and
// from then on takes a `curl -F` upload on the master's /submit, serves it from the volume server and through a 301 from the master,
// deletes it, and then answers 404 both ways. Then it restarts and still knows its volumes.
#[test]
fn seed_walkthrough_against_kelp_server() {
    let dir = tempfile::tempdir().unwrap();
    let (master_port, volume_port) = (free_port(), free_port_run(3));
    let args = server_args(dir.path(), master_port, volume_port, 1);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("server.log");
    let mut server = ChildGuard::spawn_kelp("kelp server", &args, &log);
    let master = format!("127.0.0.1:{master_port}");
    let (content_type, body) = multipart_file("hello.txt", b"hello weed-fs!\n");
    let headers = [("Content-Type", content_type.as_str())];
    wait_until(
        "kelp server to say it is ready",
        Duration::from_secs(20),
        || std::fs::read_to_string(&log).is_ok_and(|text| text.contains("server: ready")),
    );
    // Once it says so, the first /submit is taken.
    let answer = http("POST", &master, "/submit", &headers, &body).expect("submit");
    assert_eq!(answer.status, 201, "{}", answer.text());
    let submitted = answer.json();
    assert_eq!(submitted["fileName"], "hello.txt");
    assert_eq!(submitted["size"], 15);
    let fid = submitted["fid"].as_str().unwrap().to_string();
    let file_url = submitted["fileUrl"].as_str().unwrap().to_string();
    let (volume_host, path) = file_url.split_at(file_url.find('/').unwrap());
    assert_eq!(get(volume_host, path).unwrap().text(), "hello weed-fs!\n");

    let redirect = get(&master, &format!("/{fid}")).unwrap();
    assert_eq!(redirect.status, 301);
    assert!(redirect.text().contains("Moved Permanently"));
    let followed = get_following(&master, &format!("/{fid}")).unwrap();
    assert_eq!(followed.text(), "hello weed-fs!\n");

    let deleted = http("DELETE", volume_host, path, &[], b"").unwrap();
    assert!(
        deleted.status == 202 || deleted.status == 200,
        "{}",
        deleted.text()
    );
    assert!(deleted.json()["size"].as_u64().unwrap() > 0);
    assert_eq!(get(volume_host, path).unwrap().status, 404);
    assert_eq!(
        get_following(&master, &format!("/{fid}")).unwrap().status,
        404
    );

    server.terminate(Duration::from_secs(5));
    let _server = ChildGuard::spawn_kelp("kelp server again", &args, &log);
    let volume = fid.split(',').next().unwrap().to_string();
    wait_until(
        "the restarted server to know its volume",
        Duration::from_secs(20),
        || get(&master, &format!("/dir/lookup?volumeId={volume}")).is_ok_and(|a| a.status == 200),
    );
    let second = http("POST", &master, "/submit", &headers, &body).unwrap();
    assert_eq!(second.status, 201, "{}", second.text());
    assert_ne!(
        second.json()["fid"],
        fid.as_str(),
        "a restarted server never reuses a fid"
    );
}

// Proves the master gives out a new volume's owner-core port (`--volume-port + 1 + v % cores`)
// from its first assignment on, before any heartbeat reports it: clients then reach the core
// that owns the volume without a cross-core hand-off.
#[test]
fn new_volumes_are_assigned_on_their_owner_core_port() {
    let dir = tempfile::tempdir().unwrap();
    let (master_port, volume_port) = (free_port(), free_port_run(3));
    let args = server_args(dir.path(), master_port, volume_port, 600);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("server.log");
    let _server = ChildGuard::spawn_kelp("kelp server", &args, &log);
    let master = format!("127.0.0.1:{master_port}");
    let mut assigned = None;
    wait_until(
        "a first assignment",
        Duration::from_secs(20),
        || match http("GET", &master, "/dir/assign?collection=owners", &[], b"") {
            Ok(answer) if answer.status == 200 => {
                assigned = Some(answer.json());
                true
            }
            _ => false,
        },
    );
    for _ in 0..20 {
        let answer = assigned.take().unwrap_or_else(|| {
            http("GET", &master, "/dir/assign?collection=owners", &[], b"")
                .unwrap()
                .json()
        });
        let fid = answer["fid"].as_str().unwrap();
        let volume_id: u16 = fid.split(',').next().unwrap().parse().unwrap();
        let owner_port = volume_port + 1 + volume_id % 2;
        assert_eq!(
            answer["url"],
            format!("127.0.0.1:{owner_port}"),
            "volume {volume_id}: {answer}"
        );
    }
}

// Proves `server: ready` means an assignment succeeds: on a fresh directory, concurrent
// assignments sent from the moment the line appears all get a fid (none is told that the new
// leader waits for heartbeats, which a leader with no volume ids to wait for never does).
#[test]
fn assignments_succeed_once_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (master_port, volume_port) = (free_port(), free_port_run(3));
    let args = server_args(dir.path(), master_port, volume_port, 5);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("server.log");
    let _server = ChildGuard::spawn_kelp("kelp server", &args, &log);
    let master = format!("127.0.0.1:{master_port}");
    let ready = || std::fs::read_to_string(&log).is_ok_and(|text| text.contains("server: ready"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "no `server: ready` in 20 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Eight clients, starting 3 ms apart, assign back to back (at most 25 each, within a
    // second): some of them ask while the first assignment grows the first volumes.
    let askers: Vec<_> = (0..8u64)
        .map(|index| {
            let master = master.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(index * 3));
                let started = std::time::Instant::now();
                let mut answers = Vec::new();
                while answers.len() < 25 && started.elapsed() < Duration::from_secs(1) {
                    answers.push(http("GET", &master, "/dir/assign", &[], b"").expect("assign"));
                }
                answers
            })
        })
        .collect();
    for asker in askers {
        for answer in asker.join().unwrap() {
            assert_eq!(answer.status, 200, "{}", answer.text());
            assert!(answer.json()["fid"].is_string());
        }
    }
}
