//! The filer API cases of filer_support/cases.rs against SeaweedFS 4.48's own filer: the
//! answers Kelp's filer is tested for are the ones SeaweedFS gives.

mod filer_support;
mod support;

use std::time::Duration;

/// A free port whose gRPC companion (port + 10000) is free too.
fn free_peer_port() -> u16 {
    for _ in 0..200 {
        let port = support::free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000) found");
}

// Proves SeaweedFS's filer answers every shared case as the tests expect of Kelp's.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_filer_answers_the_shared_cases() {
    let root = tempfile::tempdir().unwrap();
    let (master_port, volume_port, filer_port) =
        (free_peer_port(), free_peer_port(), free_peer_port());
    let _cluster = support::WeedCluster::start(
        root.path(),
        &root.path().join("v"),
        (master_port, volume_port),
        64,
        50,
    );
    support::wait_until("SeaweedFS assigns", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", master_port)).is_ok()
            && filer_support::http(master_port, "GET", "/dir/assign", &[], b"").status == 200
    });
    let store = root.path().join("f");
    std::fs::create_dir_all(&store).unwrap();
    let args = vec![
        "filer".to_string(),
        "-ip=127.0.0.1".into(),
        format!("-port={filer_port}"),
        format!("-master=127.0.0.1:{master_port}"),
        format!("-defaultStoreDir={}", store.display()),
    ];
    let _filer = support::spawn_weed("weed filer", &args, &root.path().join("filer.log"));
    support::wait_until("SeaweedFS's filer", Duration::from_secs(60), || {
        support::port_is_open(filer_port)
            && filer_support::http(
                filer_port,
                "GET",
                "/",
                &[("Accept", "application/json")],
                b"",
            )
            .status
                == 200
    });
    filer_support::cases::run_all(filer_port, "/p");
}
