//! Compaction throughput and pauses (`cargo bench -p kelp-engine --bench compact`): a volume
//! of 200,000 needles (512..1535 bytes of data), 60 % deleted, compacted
//!
//! - offline (`FileVolume::compact`, every step in a row), and
//! - online, step by step, with one fsynced write and one delete landing on the volume
//!   between steps (what a volume server would take meanwhile), measuring what the owner's
//!   event loop spends per step (planning and applying) apart from the I/O, each I/O step,
//!   and the commit's pause (from `plan_commit` to the new volume in place).
//!
//! Several rounds, medians (the machine is shared). The files are fresh, so the old `.dat`
//! is read from the page cache; the fsyncs go to the disk.

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::compact::{
    CompactIo, CompactReport, Compaction, Step, Throttle, make_swap_durable,
};
use kelp_engine::volume::{FileVolume, default_config};
use std::path::Path;
use std::time::{Duration, Instant};

const NEEDLES: u64 = 200_000;
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn needle(key: u64, data: &[u8]) -> Needle<'_> {
    Needle {
        key,
        cookie: 0x1234_5678,
        data,
        name: Some(b"photo.jpg"),
        last_modified_s: Some(1_700_000_000),
        ..Needle::default()
    }
}

/// 200,000 needles written, those with `key % 5 < 3` deleted, synced.
fn fill(dir: &Path) -> FileVolume {
    let config = default_config(1, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir, config).unwrap();
    let bytes = vec![9u8; 1536];
    for key in 1..=NEEDLES {
        let len = 512 + (key as usize * 7_919) % 1024;
        volume.write(&needle(key, &bytes[..len]), false).unwrap();
    }
    for key in (1..=NEEDLES).filter(|key| key % 5 < 3) {
        volume.delete(key, 0x1234_5678, false).unwrap();
    }
    volume.sync().unwrap();
    volume
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn offline_round(dir: &Path) -> (f64, CompactReport) {
    let mut volume = fill(dir);
    let started = Instant::now();
    let report = volume.compact(&mut Throttle::new(0)).unwrap();
    let rate = mb_per_s(
        report.bytes_copied + report.bytes_replayed,
        started.elapsed(),
    );
    volume.destroy().unwrap();
    (rate, report)
}

/// What one online round measured.
struct Online {
    mb_per_s: f64,
    /// Owner-side time per step (plan + apply), median and max, microseconds.
    owner_us: (f64, f64),
    /// I/O time per step, median and max, microseconds.
    io_us: (f64, f64),
    /// From `plan_commit` to the new volume in place (appends held), microseconds.
    pause_us: f64,
    /// Closing the old files (the kernel frees the replaced `.dat`), microseconds.
    drop_old_us: f64,
    /// The commit's I/O alone (`CompactReport::commit_io_micros`).
    commit_io_us: f64,
    commit_records: u64,
    steps: u64,
}

fn online_round(dir: &Path) -> Online {
    let mut volume = fill(dir);
    let (mut owner, mut io_times) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let (mut compaction, start) = Compaction::start(volume.core());
    let storage = *volume.storage();
    let mut io =
        CompactIo::create(storage, volume.paths().clone(), volume.dat_file(), &start).unwrap();
    let data = vec![5u8; 1000];
    let mut next_key = NEEDLES + 1;
    loop {
        let planned = Instant::now();
        let step = compaction.next_step(volume.core(), 0);
        let plan_time = planned.elapsed();
        let began = Instant::now();
        let done = match step {
            Step::Copy(batch) => io.copy(&batch).unwrap(),
            Step::Replay(batch) => io.replay(&batch).unwrap(),
            Step::Commit => break,
        };
        io_times.push(began.elapsed().as_secs_f64() * 1e6);
        let applied = Instant::now();
        compaction.apply(done);
        owner.push((plan_time + applied.elapsed()).as_secs_f64() * 1e6);
        volume.write(&needle(next_key, &data), true).unwrap();
        volume.delete(next_key - NEEDLES, 0x1234_5678, true).ok();
        next_key += 1;
    }
    let paused = Instant::now();
    let batch = compaction.plan_commit(volume.core());
    let done = io.commit(&batch).unwrap();
    let (compacted, report) = compaction.finish(volume.core(), done);
    let old = std::mem::replace(&mut volume, compacted);
    let pause_us = paused.elapsed().as_secs_f64() * 1e6;
    let dropping = Instant::now();
    drop(old);
    let drop_old_us = dropping.elapsed().as_secs_f64() * 1e6;
    make_swap_durable(volume.storage(), volume.paths()).unwrap();
    let elapsed = started.elapsed();
    volume.destroy().unwrap();
    let max = |values: &[f64]| values.iter().cloned().fold(0.0, f64::max);
    Online {
        mb_per_s: mb_per_s(report.bytes_copied + report.bytes_replayed, elapsed),
        owner_us: (median(owner.clone()), max(&owner)),
        io_us: (median(io_times.clone()), max(&io_times)),
        pause_us,
        drop_old_us,
        commit_io_us: report.commit_io_micros as f64,
        commit_records: report.commit_records,
        steps: report.steps,
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let dir = tempfile::tempdir_in(std::env::var("KELP_BENCH_DIR").unwrap_or(".".into()))
        .expect("a scratch directory (KELP_BENCH_DIR, default .)");
    let (mut offline, mut online) = (Vec::new(), Vec::new());
    let mut last_report = None;
    for _ in 0..ROUNDS {
        let (rate, report) = offline_round(dir.path());
        offline.push(rate);
        last_report = Some(report);
        online.push(online_round(dir.path()));
    }
    let report = last_report.unwrap();
    println!(
        "volume: {} needles, .dat {} -> {} bytes ({} kept)",
        NEEDLES, report.dat_bytes_before, report.dat_bytes_after, report.needles_after
    );
    println!(
        "offline compaction        {:>8.0} MB/s copied (median)",
        median(offline)
    );
    let field = |f: &dyn Fn(&Online) -> f64| median(online.iter().map(f).collect());
    println!(
        "online compaction         {:>8.0} MB/s copied, {:.0} steps",
        field(&|o| o.mb_per_s),
        field(&|o| o.steps as f64)
    );
    println!(
        "  owner per step          {:>8.1} us median, {:.1} us max",
        field(&|o| o.owner_us.0),
        field(&|o| o.owner_us.1)
    );
    println!(
        "  I/O per step            {:>8.1} us median, {:.1} us max",
        field(&|o| o.io_us.0),
        field(&|o| o.io_us.1)
    );
    println!(
        "  commit pause            {:>8.1} us ({:.0} records replayed in it)",
        field(&|o| o.pause_us),
        field(&|o| o.commit_records as f64)
    );
    println!(
        "    of which commit I/O   {:>8.1} us (replay, fsyncs, marker, renames)",
        field(&|o| o.commit_io_us)
    );
    println!(
        "  closing the old files   {:>8.1} us (after the swap, off the event loop)",
        field(&|o| o.drop_old_us)
    );
}
