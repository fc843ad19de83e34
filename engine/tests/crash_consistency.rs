//! Crash consistency of a volume's appends through the storage seam (redb's crash tests,
//! done on a simulated disk): random sequences of writes, overwrites and deletes run with a
//! fault at every step in turn: the step fails (and the sequence goes on), or the process
//! crashes there; then the disk reboots under a process-crash or a power-loss model and the
//! volume is opened again. Every key must read back as its last acknowledged state or as
//! the state of an unacknowledged operation after it (never a corrupt needle, never an older
//! state), and the volume must take writes after.
//!
//! Acknowledged means returned Ok; under the power-loss model every operation asks for
//! fsync, so Ok means durable. Three seeds run here; `KELP_CRASH_SEEDS=N` runs N.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::path::Path;
use support::sim::{CrashModel, Fault, SimStorage};
use support::{Model, data_for, delete_outcome, needle, write_outcome};

const KEYS: u64 = 6;
const OPS: usize = 20;
const SEEDS: u64 = 3;

#[derive(Clone, Copy, Debug)]
enum Op {
    Write { key: u64, version: u32 },
    Delete { key: u64 },
}

fn ops_for(seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..OPS as u32)
        .map(|version| {
            let key = rng.random_range(1..=KEYS);
            if rng.random_bool(0.7) {
                Op::Write { key, version }
            } else {
                Op::Delete { key }
            }
        })
        .collect()
}

/// Runs `ops` on a new volume with `fault` armed at step `at` (counted after the create);
/// returns the model, the disk, and how many steps the ops took.
fn run(ops: &[Op], fsync: bool, fault: Option<(u64, Fault)>) -> (Model, SimStorage, u64) {
    let dir = Path::new("/sim");
    let storage = SimStorage::new(7);
    let mut volume = support::create(storage.clone(), dir);
    let base = storage.steps();
    if let Some((at, fault)) = fault {
        storage.arm(base + at, fault);
    }
    let mut model = Model::default();
    for op in ops {
        if storage.has_crashed() {
            break;
        }
        match *op {
            Op::Write { key, version } => {
                let data = data_for(key, version);
                let outcome = write_outcome(volume.write(&needle(key, &data), fsync));
                model.record(key, Some(data), outcome);
            }
            Op::Delete { key } => {
                let outcome = delete_outcome(volume.delete(key, support::cookie(key), fsync));
                model.record(key, None, outcome);
            }
        }
    }
    let steps = storage.steps() - base;
    (model, storage, steps)
}

/// Reboots the disk, opens the volume, checks every key, then writes once more and checks
/// again after a clean reopen.
fn check_after_crash(storage: &SimStorage, crash: CrashModel, mut model: Model) {
    let dir = Path::new("/sim");
    storage.crash();
    let rebooted = storage.restart(crash);
    let mut volume = support::reopen(rebooted.clone(), dir);
    if let Err(error) = model.check_and_settle(&volume) {
        panic!("{crash:?}: {error}");
    }
    let data = data_for(1, 999);
    let written = volume.write(&needle(1, &data), true);
    model.record(1, Some(data), write_outcome(written));
    drop(volume);
    let volume = support::reopen(rebooted, dir);
    model
        .check_and_settle(&volume)
        .expect("after a clean reopen");
}

fn campaign(crash: CrashModel, fsync: bool, seeds: std::ops::Range<u64>) -> usize {
    let mut runs = 0;
    for seed in seeds {
        let ops = ops_for(seed);
        let (_, _, total) = run(&ops, fsync, None);
        assert!(total > 0);
        for at in 1..=total {
            let kinds = [Fault::Crash, Fault::Fail(io::ErrorKind::Other)];
            for fault in kinds {
                let (model, storage, _) = run(&ops, fsync, Some((at, fault)));
                check_after_crash(&storage, crash, model);
                runs += 1;
            }
        }
    }
    runs
}

// Proves a process crash (or a failed write or fsync followed by one) at any step of any of
// the sequences loses no acknowledged write or delete, without fsync.
#[test]
fn process_crash_at_every_step_keeps_acknowledged_appends() {
    let runs = campaign(CrashModel::Process, false, support::campaign_seeds(SEEDS));
    assert!(runs > 100, "{runs} runs");
    eprintln!("{runs} runs");
}

// Proves a power loss at any step (or after a failed write or fsync) keeps every append
// acknowledged with fsync, and leaves unacknowledged ones whole or absent.
#[test]
fn power_loss_at_every_step_keeps_fsynced_appends() {
    let runs = campaign(CrashModel::PowerLoss, true, support::campaign_seeds(SEEDS));
    assert!(runs > 100, "{runs} runs");
    eprintln!("{runs} runs");
}

// Proves the simulated disk itself keeps and loses what the models say: unsynced data of a
// file survives a process crash and not (wholly) a power loss; a synced one survives both.
#[test]
fn the_simulated_disk_follows_its_models() {
    use kelp_engine::volume::{OpenMode, Storage, StorageFile};
    let storage = SimStorage::new(1);
    let path = Path::new("/sim/a");
    let file = storage.open(path, OpenMode::CreateNew).unwrap();
    file.write_all_at(b"synced", 0).unwrap();
    file.sync_data().unwrap();
    storage.sync_dir(Path::new("/sim")).unwrap();
    file.write_all_at(b"+later", 6).unwrap();
    storage.crash();
    assert!(
        file.write_all_at(b"x", 0).is_err(),
        "a crashed process writes nothing"
    );
    let process = storage.restart(CrashModel::Process);
    assert_eq!(process.contents(path).unwrap(), b"synced+later");
    let mut lost_some = false;
    for seed in 0..32 {
        let storage = SimStorage::new(seed);
        let file = storage.open(path, OpenMode::CreateNew).unwrap();
        file.write_all_at(b"synced", 0).unwrap();
        file.sync_data().unwrap();
        storage.sync_dir(Path::new("/sim")).unwrap();
        file.write_all_at(b"+later", 6).unwrap();
        let power = storage.restart(CrashModel::PowerLoss);
        let contents = power.contents(path).unwrap();
        assert!(contents.starts_with(b"synced"));
        lost_some |= contents != b"synced+later";
    }
    assert!(lost_some, "a power loss drops unsynced writes");
}
