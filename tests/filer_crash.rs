//! The embedded store after a crash: a filer killed (SIGKILL) during concurrent creates
//! restarts with every acknowledged entry, each reading back its data, and sweeps the file-id
//! leases the killed run left open.

mod filer_support;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filer_support::{KelpCluster, http, start_filer};

// Proves every create the filer acknowledged before SIGKILL is there after restart.
#[test]
fn acknowledged_creates_survive_sigkill() {
    let root = tempfile::tempdir().unwrap();
    let cluster = KelpCluster::start(root.path(), 0);
    let port = support::free_port();
    let mut filer = start_filer(root.path(), "filer", port, &cluster.master(), "redb");
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            for index in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let target = format!("/crash/w{writer}/f{index}");
                let answer =
                    std::panic::catch_unwind(|| http(port, "PUT", &target, &[], target.as_bytes()));
                match answer {
                    Ok(answer) if answer.status == 201 => acknowledged.lock().unwrap().push(target),
                    _ => return,
                }
            }
        }));
    }
    support::wait_until("a few hundred creates", Duration::from_secs(60), || {
        acknowledged.lock().unwrap().len() >= 300
    });
    filer.kill();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let _filer = start_filer(root.path(), "filer", port, &cluster.master(), "redb");
    for target in &acknowledged {
        let answer = http(port, "GET", target, &[], b"");
        assert_eq!(
            answer.status,
            200,
            "{target} was acknowledged before the crash: {}",
            answer.text()
        );
        assert_eq!(answer.body, target.as_bytes());
    }
    let log = root.path().join("filer.log");
    support::wait_until(
        "the sweep of the leases left open",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("unreferenced fids queued for deletion"))
        },
    );
}
