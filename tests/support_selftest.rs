//! Proves the end-to-end test helpers themselves work: a free port can be bound, a run of free
//! ports is free, and a spawned child's output lands in its log.
mod support;

use std::time::Duration;

#[test]
fn free_port_run_gives_bindable_consecutive_ports() {
    let base = support::free_port_run(3);
    for port in base..base + 3 {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .expect("port from free_port_run is bindable");
    }
}

#[test]
fn child_guard_logs_the_output_of_kelp() {
    let dir = tempfile::tempdir().unwrap();
    let mut guard = support::ChildGuard::spawn_kelp("help", &["--help"], &dir.path().join("log"));
    support::wait_until("kelp --help to exit", Duration::from_secs(10), || {
        matches!(guard.child.try_wait(), Ok(Some(_)))
    });
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("Usage"), "kelp --help printed usage: {log}");
}
