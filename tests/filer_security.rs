//! The filer against masters and volume servers with SeaweedFS's JWT keys: every case of
//! SeaweedFS's filer API works, with the filer signing its tokens itself (`--security` with
//! the keys, as `kelp server --security` gives it) or asking the master for them; and the
//! chunks of a deleted file are deleted with a token.

mod filer_support;
mod support;

use std::time::Duration;

use filer_support::cases;
use filer_support::{KelpCluster, http, start_filer_with};

const SECURITY: &str = "[jwt.signing]\nkey = \"filer-write\"\nexpires_after_seconds = 10\n\n\
                        [jwt.signing.read]\nkey = \"filer-read\"\nexpires_after_seconds = 10\n";

/// A 5 MiB file (two chunks) written, read, and deleted; its first chunk leaves the volume.
fn chunks_are_deleted_with_tokens(port: u16, cluster: &KelpCluster, base: &str) {
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let target = format!("{base}/big.bin");
    assert_eq!(http(port, "PUT", &target, &[], &data).status, 201);
    let read = http(port, "GET", &target, &[], b"");
    assert!(
        read.status == 200 && read.body == data,
        "read back: {}",
        read.status
    );
    let entry = http(port, "GET", &format!("{target}?metadata=true"), &[], b"").json();
    let fid = entry["chunks"][0]["file_id"].as_str().unwrap().to_string();
    let chunk = format!("/{fid}");
    // The volume server wants a read token: without one the chunk is refused.
    assert_eq!(
        http(cluster.volume_port, "GET", &chunk, &[], b"").status,
        401
    );
    // A read with a fresh read token from the master: the chunk's status.
    let status = || {
        let lookup = format!("/dir/lookup?fileId={fid}&read=yes");
        let token = http(cluster.master_port, "GET", &lookup, &[], b"");
        let token = token
            .header("authorization")
            .expect("a read token")
            .to_string();
        let with_token = [("Authorization", token.as_str())];
        http(cluster.volume_port, "GET", &chunk, &with_token, b"").status
    };
    assert_eq!(status(), 200);
    assert_eq!(http(port, "DELETE", &target, &[], b"").status, 204);
    support::wait_until(
        "the chunk to leave the volume",
        Duration::from_secs(20),
        || status() == 404,
    );
}

// Proves a filer that signs its own tokens (kelp server --security) and one that asks the
// master for them both answer every filer API case, stream chunked files, and delete the
// chunks of deleted files, while the volume server refuses tokenless reads.
#[test]
fn the_filer_carries_tokens() {
    let root = tempfile::tempdir().unwrap();
    let security = root.path().join("security.toml");
    std::fs::write(&security, SECURITY).unwrap();
    let security = security.display().to_string();
    let filer_port = support::free_port();
    let cluster = KelpCluster::start_with(root.path(), filer_port, &["--security", &security]);
    cases::run_all(filer_port, "/signs");
    chunks_are_deleted_with_tokens(filer_port, &cluster, "/signs");
    let asking_port = support::free_port();
    let master = cluster.master();
    let _asking = start_filer_with(root.path(), "asking", asking_port, &master, "redb", &[]);
    cases::run_all(asking_port, "/asks");
    chunks_are_deleted_with_tokens(asking_port, &cluster, "/asks");
}
