//! Crash safety of compaction, on the simulated disk: a compaction in small steps, with
//! writes, overwrites and deletes (fsynced, so acknowledged means durable) landing between
//! the steps, runs with a fault at every step of copy, replay and commit in turn: the step
//! fails, or the process crashes there. Then the disk reboots (process crash or power loss)
//! and the volume is opened again. After each:
//!
//! - the volume is wholly the old one (its `.dat` begins with the old bytes, old revision) or
//!   wholly the new one (revision + 1, the `.idx` byte for byte and the `.dat` as long as
//!   what the compaction makes without a fault), no compaction file is left, and opening
//!   it never had to rebuild the `.idx` (a `.dat` paired with the other volume's `.idx`
//!   would need that);
//! - the same when the process crashes again at any step of that opening (which finishes or
//!   undoes the swap);
//! - every acknowledged write and delete is there (unacknowledged ones whole or absent);
//! - a compaction that returned Ok survives any crash after it, and one that failed before
//!   its commit left the old volume serving, which a crash then keeps;
//! - the volume takes writes and compacts again.
//!
//! Two seeds run here; `KELP_CRASH_SEEDS=N` runs N (see `support::campaign_seeds`).

mod support;

use kelp_engine::format::SuperBlock;
use kelp_engine::volume::FileVolume;
use kelp_engine::volume::compact::{
    CompactError, CompactIo, Compaction, Step, StepLimits, Throttle, make_swap_durable,
};
use std::io;
use std::path::Path;
use support::sim::{CrashModel, Fault, SimStorage};
use support::{Model, Outcome, cookie, data_for, delete_outcome, needle, write_outcome};

const DIR: &str = "/sim";
/// Enough keys that the live ones outnumber the `.idx` entries recovery checks in full (64),
/// so an `.idx` paired with the other volume's `.dat` would be trusted in part.
const KEYS: u64 = 200;
const LIMITS: StepLimits = StepLimits {
    needles_max: 8,
    bytes_max: 20_000,
    commit_tail_entries_max: 1,
    replay_steps_max: 6,
};
/// Reboots tried per power loss: each keeps another random part of what was not synced.
const POWER_LOSS_OUTCOMES: usize = 4;
/// Far in the future of the needles (none has a TTL, so none expires).
const NOW_NS: u64 = 1 << 62;

type SimVolume = FileVolume<SimStorage>;

/// The volume before the compaction: 200 keys written, 60 % deleted, two overwritten, synced.
fn setup(seed: u64) -> (SimStorage, SimVolume, Model) {
    let storage = SimStorage::new(seed);
    let mut volume = support::create(storage.clone(), Path::new(DIR));
    let mut model = Model::default();
    for key in 1..=KEYS {
        let data = data_for(key, 0);
        volume.write(&needle(key, &data), false).unwrap();
        model.record(key, Some(data), Outcome::Acked);
    }
    for key in (1..=KEYS).filter(|key| key % 5 < 3) {
        volume.delete(key, cookie(key), false).unwrap();
        model.record(key, None, Outcome::Acked);
    }
    for key in [4, 9] {
        let data = data_for(key, 1);
        volume.write(&needle(key, &data), false).unwrap();
        model.record(key, Some(data), Outcome::Acked);
    }
    volume.sync().unwrap();
    (storage, volume, model)
}

/// The append a server takes between steps `step` and `step + 1`: fsynced writes of new
/// and copied keys, overwrites, and deletes of copied keys (which keys depends on `seed`).
fn user_append(volume: &mut SimVolume, model: &mut Model, seed: u64, step: u64) {
    let key = 1 + (step * 5 + seed * 3) % (KEYS + 4);
    if (step + seed) % 3 == 2 && volume.core().lookup(key).is_some() {
        let outcome = delete_outcome(volume.delete(key, cookie(key), true));
        model.record(key, None, outcome);
    } else {
        let data = data_for(key, 100 + step as u32);
        let outcome = write_outcome(volume.write(&needle(key, &data), true));
        model.record(key, Some(data), outcome);
    }
}

/// How a run ended.
enum Ended {
    Compacted(SimVolume),
    /// Failed before its commit; the old volume serves on.
    Aborted(SimVolume),
    /// Failed in its commit: the volume must be opened again.
    Reopen,
}

/// The compaction, step by step, with an append between steps and one more after the last
/// (it arrives before the appends are held, so the commit has a tail to replay); stops at
/// the first error.
fn compact(mut volume: SimVolume, model: &mut Model, seed: u64) -> Ended {
    let (mut compaction, start) = Compaction::start_with(volume.core(), LIMITS);
    let (storage, paths) = (volume.storage().clone(), volume.paths().clone());
    let mut io = match CompactIo::create(storage, paths, volume.dat_file(), &start) {
        Ok(io) => io,
        Err(_) => return Ended::Aborted(volume),
    };
    let mut step = 0;
    loop {
        let done = match compaction.next_step(volume.core(), NOW_NS) {
            Step::Copy(batch) => io.copy(&batch),
            Step::Replay(batch) => io.replay(&batch),
            Step::Commit => break,
        };
        match done {
            Ok(done) => compaction.apply(done),
            Err(_) => {
                let _ = io.abort();
                return Ended::Aborted(volume);
            }
        }
        user_append(&mut volume, model, seed, step);
        step += 1;
    }
    user_append(&mut volume, model, seed, step);
    let batch = compaction.plan_commit(volume.core());
    match io.commit(&batch) {
        Ok(done) => {
            let compacted = compaction.finish(volume.core(), done).0;
            let _ = make_swap_durable(compacted.storage(), compacted.paths());
            Ended::Compacted(compacted)
        }
        Err(error) if error.reopen_required() => Ended::Reopen,
        Err(CompactError::Io(_)) => Ended::Aborted(volume),
        Err(error) => panic!("{error}"),
    }
}

struct Run {
    storage: SimStorage,
    model: Model,
    ended: Ended,
    /// The `.dat` before the compaction.
    old_dat: Vec<u8>,
    /// Steps the compaction phase took.
    steps: u64,
}

fn run(seed: u64, fault: Option<(u64, Fault)>) -> Run {
    let (storage, volume, mut model) = setup(seed);
    let old_dat = storage.contents(&volume.paths().dat).unwrap();
    let base = storage.steps();
    if let Some((at, fault)) = fault {
        storage.arm(base + at, fault);
    }
    let ended = compact(volume, &mut model, seed);
    let steps = storage.steps() - base;
    Run {
        storage,
        model,
        ended,
        old_dat,
        steps,
    }
}

/// What the compaction makes without a fault: the `.dat` length and the `.idx` (the
/// needles appended meanwhile carry the clock's time, so `.dat` bytes differ run to run).
struct NewFiles {
    dat_len: usize,
    idx: Vec<u8>,
}

/// Which volume the files are, after a reboot: old (false) or new (true). Panics unless it
/// is wholly one of them.
fn wholly_one(storage: &SimStorage, old_dat: &[u8], new: &NewFiles) -> bool {
    let dir = Path::new(DIR);
    let dat = storage.contents(&dir.join("c_3.dat")).unwrap();
    let names = storage.file_names();
    assert_eq!(names, ["c_3.dat", "c_3.idx", "c_3.vif"], "leftovers");
    let revision = SuperBlock::decode(&dat).unwrap().compaction_revision;
    match revision {
        0 => assert!(dat.starts_with(old_dat), "the old .dat was changed"),
        1 => {
            let idx = storage.contents(&dir.join("c_3.idx")).unwrap();
            assert!(idx == new.idx, "the new .idx is not the compaction's");
            assert_eq!(
                dat.len(),
                new.dat_len,
                "the new .dat is not the compaction's"
            );
        }
        other => panic!("revision {other}"),
    }
    revision == 1
}

/// Opens the rebooted disk with a crash at each step of the opening in turn, reboots again
/// and checks; the disk itself is left as it was.
fn crash_while_opening(rebooted: &SimStorage, crash: CrashModel, run: &Run, new: &NewFiles) {
    let dir = Path::new(DIR);
    let probe = rebooted.restart(CrashModel::Process);
    drop(support::reopen(probe.clone(), dir));
    for at in 1..=probe.steps() {
        let copy = rebooted.restart(CrashModel::Process);
        copy.arm(at, Fault::Crash);
        let options = Default::default();
        let opened = FileVolume::open_in(copy.clone(), dir, "c", 3, &options);
        assert!(
            opened.is_err(),
            "the crash at step {at} of {} stops the open",
            probe.steps()
        );
        let again = copy.restart(crash);
        let (volume, report) = support::reopen_with_report(again.clone(), dir);
        assert!(
            !report.idx_rebuilt,
            "{crash:?}, opening crashed at {at}: {report:?}"
        );
        let mut model = run.model.clone();
        if let Err(error) = model.check_and_settle(&volume) {
            panic!("{crash:?}, opening crashed at {at}: {error}");
        }
        wholly_one(&again, &run.old_dat, new);
    }
}

/// Reboots, opens, and checks the run (see the module docs). A power loss is tried
/// `POWER_LOSS_OUTCOMES` times on the same crashed disk (each keeps other changes).
fn check_run(mut run: Run, crash: CrashModel, new: &NewFiles, exact: bool) {
    let must_be = match &run.ended {
        Ended::Compacted(volume) => {
            if !run.storage.has_crashed() {
                let served = run.model.check_and_settle(volume);
                served.expect("the compacted volume serves");
            }
            Some(true)
        }
        Ended::Aborted(volume) if !run.storage.has_crashed() => {
            let served = run.model.check_and_settle(volume);
            served.expect("the old volume serves on");
            Some(false)
        }
        Ended::Aborted(_) | Ended::Reopen => None,
    };
    run.storage.crash();
    let outcomes = match crash {
        CrashModel::Process => 1,
        CrashModel::PowerLoss => POWER_LOSS_OUTCOMES,
    };
    for outcome in 0..outcomes {
        let rebooted = run.storage.restart(crash);
        if exact && outcome == 0 {
            crash_while_opening(&rebooted, crash, &run, new);
        }
        let mut model = run.model.clone();
        let volume = reopen_and_check(&rebooted, crash, &mut model);
        if exact {
            let is_new = wholly_one(&rebooted, &run.old_dat, new);
            let expected = must_be.is_none_or(|new| new == is_new);
            assert!(expected, "{crash:?}: new {is_new}");
        }
        if outcome == 0 {
            write_and_compact_again(volume, &mut model);
        }
    }
}

/// Opens the rebooted volume: no `.idx` rebuild (see the module docs), every key allowed.
fn reopen_and_check(rebooted: &SimStorage, crash: CrashModel, model: &mut Model) -> SimVolume {
    let (volume, report) = support::reopen_with_report(rebooted.clone(), Path::new(DIR));
    assert!(!report.idx_rebuilt, "{crash:?}: {report:?}");
    if let Err(error) = model.check_and_settle(&volume) {
        panic!("{crash:?}: {error}");
    }
    volume
}

fn write_and_compact_again(mut volume: SimVolume, model: &mut Model) {
    let data = data_for(2, 7_777);
    let written = volume.write(&needle(2, &data), true);
    model.record(2, Some(data), write_outcome(written));
    let compacted = volume.compact(&mut Throttle::new(0));
    compacted.expect("compacts again");
    model
        .check_and_settle(&volume)
        .expect("after a second compaction");
}

fn campaign(crash: CrashModel, seeds: std::ops::Range<u64>) -> usize {
    let mut runs = 0;
    for seed in seeds {
        let clean = run(seed, None);
        let Ended::Compacted(volume) = &clean.ended else {
            panic!("a compaction without faults succeeds");
        };
        let new = NewFiles {
            dat_len: clean.storage.contents(&volume.paths().dat).unwrap().len(),
            idx: clean.storage.contents(&volume.paths().idx).unwrap(),
        };
        assert!(new.dat_len < clean.old_dat.len());
        for at in 1..=clean.steps {
            let crashed = run(seed, Some((at, Fault::Crash)));
            check_run(crashed, crash, &new, true);
            let failed = run(seed, Some((at, Fault::Fail(io::ErrorKind::Other))));
            check_run(failed, crash, &new, false);
            runs += 2;
        }
    }
    runs
}

// Proves a process crash or a failed step at any point of a compaction (copy, replay,
// commit) leaves wholly the old or wholly the new volume with every acknowledged append.
#[test]
fn process_crash_at_every_step_of_a_compaction() {
    let runs = campaign(CrashModel::Process, support::campaign_seeds(2));
    assert!(runs > 100, "{runs} runs");
    eprintln!("{runs} runs");
}

// Proves the same under power loss: only what was fsynced is sure to be on the disk, of
// the rest (file data and directory changes) a random part survives.
#[test]
fn power_loss_at_every_step_of_a_compaction() {
    let runs = campaign(CrashModel::PowerLoss, support::campaign_seeds(2));
    assert!(runs > 100, "{runs} runs");
    eprintln!("{runs} runs");
}
