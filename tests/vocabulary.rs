//! The domain words (TTL, collection, replica placement) mean the same on the master and on
//! the volume server of a `kelp server`: a TTL spelled two ways is one layout across
//! heartbeats, a collection with `_` goes the whole way (assign, upload, file name, restart),
//! and a placement text gets the same verdict from both.

mod master_common;
mod support;

use std::path::Path;
use std::time::Duration;

use master_common::{get, http, multipart_file};
use support::{ChildGuard, free_port, free_port_run, wait_until};

/// A `kelp server` on one core with a one-second pulse, its data in `dir/data`.
struct Server {
    master: String,
    volume: String,
    data: std::path::PathBuf,
    args: Vec<String>,
    log: std::path::PathBuf,
    guard: ChildGuard,
}

impl Server {
    fn start(dir: &Path, max_volumes: u32) -> Server {
        let (master_port, volume_port) = (free_port(), free_port_run(2));
        let data = dir.join("data");
        let args: Vec<String> = [
            "server",
            "--dir",
            &data.to_string_lossy(),
            "--master-port",
            &master_port.to_string(),
            "--volume-port",
            &volume_port.to_string(),
            "--filer-port",
            "0",
            "--cores",
            "1",
            "--max",
            &max_volumes.to_string(),
            "--pulse-seconds",
            "1",
        ]
        .map(String::from)
        .to_vec();
        let log = dir.join("server.log");
        let guard = Server::spawn(&args, &log);
        Server {
            master: format!("127.0.0.1:{master_port}"),
            volume: format!("127.0.0.1:{volume_port}"),
            data,
            args,
            log,
            guard,
        }
    }

    fn spawn(args: &[String], log: &Path) -> ChildGuard {
        let _ = std::fs::remove_file(log);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let guard = ChildGuard::spawn_kelp("kelp server", &args, log);
        wait_until(
            "kelp server to say it is ready",
            Duration::from_secs(20),
            || std::fs::read_to_string(log).is_ok_and(|text| text.contains("server: ready")),
        );
        guard
    }

    fn restart(&mut self) {
        self.guard.terminate(Duration::from_secs(5));
        self.guard = Server::spawn(&self.args, &self.log);
    }

    /// `/dir/assign?<query>` answered 200: (fid, url).
    fn assign(&self, query: &str) -> (String, String) {
        let answer = get(&self.master, &format!("/dir/assign?{query}")).unwrap();
        assert_eq!(answer.status, 200, "assign {query}: {}", answer.text());
        let json = answer.json();
        let fid = json["fid"].as_str().unwrap().to_string();
        (fid, json["url"].as_str().unwrap().to_string())
    }

    /// Names of the `.dat` files in the data directory, sorted.
    fn dat_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.data)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".dat"))
            .collect();
        names.sort();
        names
    }

    /// The TTL the volume server reports for `volume_id` in its `/status`.
    fn reported_ttl(&self, volume_id: u64) -> String {
        let status = get(&self.volume, "/status").unwrap().json();
        let volumes = status["Volumes"].as_array().expect("a Volumes list");
        let volume = volumes
            .iter()
            .find(|v| v["Id"].as_u64() == Some(volume_id))
            .unwrap_or_else(|| panic!("volume {volume_id} not in {status}"));
        volume["Ttl"].as_str().unwrap().to_string()
    }
}

fn create_volume(volume_server: &str, query: &str) -> master_common::Answer {
    let path = format!("/admin/volume/create?{query}");
    http("POST", volume_server, &path, &[], b"").unwrap()
}

fn volume_id_of(fid: &str) -> u64 {
    fid.split(',').next().unwrap().parse().unwrap()
}

// Proves each TTL spelling maps to the layout of its duration (`60m` and `1h` are one layout,
// `7d` and `1w` another, `24h` is `1d`): the first round grows three layouts of seven volumes,
// and after two heartbeats, which report the volumes' TTLs back, a second round of the same
// spellings is served from those volumes without growing any.
#[test]
fn ttl_spellings_share_one_layout_across_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 40);
    let spellings = [
        ("60m", "1h"),
        ("1h", "1h"),
        ("7d", "1w"),
        ("1w", "1w"),
        ("24h", "1d"),
    ];
    for (spelling, canonical) in spellings {
        let (fid, _) = server.assign(&format!("ttl={spelling}"));
        assert_eq!(server.reported_ttl(volume_id_of(&fid)), canonical);
    }
    let grown = server.dat_files();
    assert_eq!(grown.len(), 3 * 7, "three layouts: {grown:?}");
    std::thread::sleep(Duration::from_millis(2_500));
    for (spelling, canonical) in spellings {
        let (fid, _) = server.assign(&format!("ttl={spelling}"));
        assert_eq!(server.reported_ttl(volume_id_of(&fid)), canonical);
    }
    assert_eq!(
        server.dat_files(),
        grown,
        "no volume grown after the heartbeats"
    );
}

// Proves a collection name with `_` is assigned, uploaded to, read back, stored as
// `<collection>_<id>.dat`, and after a restart (the name parsed back by its last `_`) still
// read and assigned from the same volumes.
#[test]
fn collection_with_underscore_goes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), 10);
    let (fid, url) = server.assign("collection=pics_2024_a");
    let (content_type, body) = multipart_file("cat.txt", b"a cat in a collection");
    let headers = [("Content-Type", content_type.as_str())];
    let stored = http("POST", &url, &format!("/{fid}"), &headers, &body).unwrap();
    assert_eq!(stored.status, 201, "{}", stored.text());
    let read = get(&url, &format!("/{fid}")).unwrap();
    assert_eq!(read.text(), "a cat in a collection");
    let volume_file = format!("pics_2024_a_{}.dat", volume_id_of(&fid));
    let files = server.dat_files();
    assert!(files.contains(&volume_file), "{files:?}");

    server.restart();
    let read = get(&url, &format!("/{fid}")).unwrap();
    assert_eq!(read.text(), "a cat in a collection");
    let (again, _) = server.assign("collection=pics_2024_a");
    assert!(files.contains(&format!("pics_2024_a_{}.dat", volume_id_of(&again))));
    assert_eq!(
        server.dat_files(),
        files,
        "no volume grown after the restart"
    );
}

// Proves `replication=1` (short for `001`), `0001` (four digits) and `9x9` (not digits) get the
// same verdict from the master's /dir/assign and the volume server's /admin/volume/create:
// `1` is taken as `001` by both, the other two are refused by both with a 400 naming the text.
#[test]
fn placement_text_gets_one_verdict_on_master_and_volume_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), 10);
    let short = get(&server.master, "/dir/assign?replication=1").unwrap();
    let full = get(&server.master, "/dir/assign?replication=001").unwrap();
    assert_eq!(
        (short.status, short.text()),
        (full.status, full.text()),
        "`1` is `001` on the master"
    );
    let created = create_volume(&server.volume, "volume=90&replication=1");
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["replication"], "001");
    for text in ["0001", "9x9"] {
        let assign = get(&server.master, &format!("/dir/assign?replication={text}")).unwrap();
        let create = create_volume(&server.volume, &format!("volume=91&replication={text}"));
        for (who, answer) in [("master", &assign), ("volume server", &create)] {
            assert_eq!(answer.status, 400, "{who} on {text}: {}", answer.text());
            let error = answer.json()["error"].as_str().unwrap().to_string();
            assert!(error.contains(text), "{who} on {text}: {error}");
        }
    }
}
