//! Kelp's filer answers SeaweedFS's filer HTTP API (the cases in filer_support/cases.rs) with
//! each store, streams large files in chunks, deletes the chunks of deleted files, and with a
//! shared store (Redis, PostgreSQL) two filers see each other's writes at once.

mod filer_support;
mod support;

use std::time::Duration;

use filer_support::cases::{self, assert_json_error};
use filer_support::servers::{PostgresServer, RedisServer};
use filer_support::{KelpCluster, http, start_filer};

/// What Kelp adds to, or answers differently from, SeaweedFS's filer.
fn kelp_only_cases(port: u16, base: &str) {
    // A raw POST is taken like a PUT (SeaweedFS 4.48 answers 500 "isn't multipart").
    assert_eq!(
        http(port, "POST", &format!("{base}/k/raw"), &[], b"posted").status,
        201
    );
    assert_eq!(
        http(port, "GET", &format!("{base}/k/raw"), &[], b"").body,
        b"posted"
    );
    // Bad input is a 4xx with a JSON error (SeaweedFS takes a bad TTL silently).
    assert_json_error(
        &http(port, "PUT", &format!("{base}/k/t?ttl=xx"), &[], b"t"),
        400,
    );
    assert_json_error(&http(port, "GET", &format!("{base}/k/none"), &[], b""), 404);
    assert_json_error(&http(port, "GET", &format!("{base}/a/../b"), &[], b""), 400);
    assert_json_error(
        &http(port, "PUT", &format!("{base}/k/raw/under"), &[], b"x"),
        409,
    );
    assert_json_error(
        &http(
            port,
            "GET",
            &format!("{base}/k/?limit=x"),
            &[("Accept", "application/json")],
            b"",
        ),
        400,
    );
    assert_json_error(
        &http(port, "PUT", &format!("{base}/k/raw?op=nope"), &[], b""),
        400,
    );
    // FastDFS metadata: overwrite, merge, get, without touching the data.
    let target = format!("{base}/k/raw");
    let set = http(
        port,
        "POST",
        &format!("{target}?op=meta"),
        &[],
        br#"{"a":"1","b":"2"}"#,
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let merged = http(
        port,
        "POST",
        &format!("{target}?op=meta&mode=merge"),
        &[],
        br#"{"b":"3","c":"4"}"#,
    );
    assert_eq!(
        merged.json(),
        serde_json::json!({"a": "1", "b": "3", "c": "4"})
    );
    let replaced = http(
        port,
        "POST",
        &format!("{target}?op=meta&mode=overwrite"),
        &[],
        br#"{"z":"9"}"#,
    );
    assert_eq!(replaced.json(), serde_json::json!({"z": "9"}));
    assert_eq!(
        http(port, "GET", &format!("{target}?op=meta"), &[], b"").json(),
        serde_json::json!({"z": "9"})
    );
    let too_long = format!("{{\"k\":\"{}\"}}", "v".repeat(257));
    assert_json_error(
        &http(
            port,
            "POST",
            &format!("{target}?op=meta"),
            &[],
            too_long.as_bytes(),
        ),
        400,
    );
    assert_eq!(http(port, "GET", &target, &[], b"").body, b"posted");
    // Appendable files: append, then truncate.
    assert_eq!(
        http(port, "POST", &format!("{target}?op=append"), &[], b"+more").json()["size"],
        11
    );
    let cut = http(
        port,
        "POST",
        &format!("{target}?op=truncate&size=8"),
        &[],
        b"",
    );
    assert_eq!(cut.json()["size"], 8);
    assert_eq!(http(port, "GET", &target, &[], b"").body, b"posted+m");
    assert_json_error(
        &http(
            port,
            "POST",
            &format!("{target}?op=truncate&size=99"),
            &[],
            b"",
        ),
        400,
    );
    assert_eq!(
        http(port, "GET", &format!("{target}?op=meta"), &[], b"").json(),
        serde_json::json!({"z": "9"})
    );
}

/// A 9 MiB file is stored as 3 chunks of at most 4 MiB, read back whole and in ranges across
/// chunk edges; deleting it deletes its chunks from the volume server.
fn large_files(port: u16, volume_port: u16, base: &str) {
    let data: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let target = format!("{base}/big/file.bin");
    assert_eq!(http(port, "PUT", &target, &[], &data).status, 201);
    let entry = http(port, "GET", &format!("{target}?metadata=true"), &[], b"").json();
    let chunks = entry["chunks"].as_array().unwrap().clone();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1]["offset"], 4 * 1024 * 1024);
    let read = http(port, "GET", &target, &[], b"");
    assert_eq!(read.body.len(), data.len());
    assert!(read.body == data, "the file read back differs");
    let edge = 4 * 1024 * 1024 - 5;
    let ranged = http(
        port,
        "GET",
        &target,
        &[("Range", &format!("bytes={edge}-{}", edge + 9))],
        b"",
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, data[edge..edge + 10]);
    let fid = chunks[0]["file_id"].as_str().unwrap().to_string();
    assert_eq!(
        http(volume_port, "GET", &format!("/{fid}"), &[], b"").status,
        200
    );
    assert_eq!(http(port, "DELETE", &target, &[], b"").status, 204);
    support::wait_until(
        "the deleted file's chunk to leave the volume",
        Duration::from_secs(20),
        || http(volume_port, "GET", &format!("/{fid}"), &[], b"").status == 404,
    );
}

// Proves the embedded-store filer of `kelp server` answers the API cases, Kelp's own cases,
// large files in chunks, and deletes chunks of deleted files.
#[test]
fn filer_api_with_the_embedded_store() {
    let root = tempfile::tempdir().unwrap();
    let filer_port = support::free_port();
    let cluster = KelpCluster::start(root.path(), filer_port);
    cases::run_all(filer_port, "/t");
    kelp_only_cases(filer_port, "/t");
    large_files(filer_port, cluster.volume_port, "/t");
    let metrics = http(filer_port, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("kelp_filer_files_written_total"),
        "{metrics}"
    );
    assert!(metrics.contains("kelp_filer_store_info{store=\"redb\"} 1"));
}

/// Two filers on one shared store: the API cases on the first, then each sees the other's
/// writes at once.
fn shared_store(store_url: &str) {
    let root = tempfile::tempdir().unwrap();
    let cluster = KelpCluster::start(root.path(), 0);
    let (port_a, port_b) = (support::free_port(), support::free_port());
    let _a = start_filer(root.path(), "filer-a", port_a, &cluster.master(), store_url);
    let _b = start_filer(root.path(), "filer-b", port_b, &cluster.master(), store_url);
    cases::run_all(port_a, "/s");
    kelp_only_cases(port_b, "/s");
    for index in 0..20 {
        let target = format!("/shared/f{index}");
        let (writer, reader) = if index % 2 == 0 {
            (port_a, port_b)
        } else {
            (port_b, port_a)
        };
        assert_eq!(
            http(writer, "PUT", &target, &[], target.as_bytes()).status,
            201
        );
        assert_eq!(
            http(reader, "GET", &target, &[], b"").body,
            target.as_bytes()
        );
        assert_eq!(http(reader, "DELETE", &target, &[], b"").status, 204);
        assert_eq!(http(writer, "GET", &target, &[], b"").status, 404);
    }
    let listed = http(
        port_b,
        "GET",
        "/s/u/",
        &[("Accept", "application/json")],
        b"",
    )
    .json();
    assert_eq!(listed["Entries"].as_array().map(Vec::len), Some(2));
    large_files(port_b, cluster.volume_port, "/s");
}

// Proves filers started at once on a fresh PostgreSQL database all start: the first creates
// the tables and the others wait for it (concurrent CREATE TABLE IF NOT EXISTS races in
// PostgreSQL: "duplicate key value violates unique constraint pg_type_typname_nsp_index").
#[test]
#[ignore = "needs PostgreSQL (initdb, postgres): test.sh runs it when installed (apt-get install postgresql)"]
fn filers_started_at_once_share_a_fresh_database_needs_postgres() {
    let postgres = PostgresServer::start();
    let root = tempfile::tempdir().unwrap();
    let cluster = KelpCluster::start(root.path(), 0);
    let ports: Vec<u16> = (0..6).map(|_| support::free_port()).collect();
    let store = postgres.url();
    let filers: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            let name = format!("filer-{index}");
            let dir = root.path().join(&name);
            let (port, dir) = (port.to_string(), dir.to_string_lossy().into_owned());
            let master = cluster.master();
            let args = [
                "filer", "--port", &port, "--master", &master, "--store", &store, "--dir", &dir,
            ];
            let log = root.path().join(format!("{name}.log"));
            support::ChildGuard::spawn_kelp(&name, &args, &log)
        })
        .collect();
    for (index, port) in ports.iter().enumerate() {
        support::wait_until(&format!("filer-{index}"), Duration::from_secs(30), || {
            support::port_is_open(*port)
        });
    }
    let target = "/fresh/one";
    assert_eq!(http(ports[0], "PUT", target, &[], b"x").status, 201);
    assert_eq!(http(ports[5], "GET", target, &[], b"").body, b"x");
    drop(filers);
}

// Proves the filer answers the API cases on a Redis store, shared by two filers.
#[test]
#[ignore = "needs redis-server: test.sh runs it when installed (apt-get install redis-server)"]
fn filer_api_needs_redis() {
    let redis = RedisServer::start();
    shared_store(&redis.url());
}

// Proves the filer answers the API cases on a PostgreSQL store, shared by two filers.
#[test]
#[ignore = "needs PostgreSQL: test.sh runs it when installed (apt-get install postgresql)"]
fn filer_api_needs_postgres() {
    let postgres = PostgresServer::start();
    shared_store(&postgres.url());
}
