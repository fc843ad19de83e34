//! Compaction (vacuum) of a volume: what a user relies on. The space of deleted, overwritten
//! and expired needles comes back; every live needle reads back byte-identical, every
//! deleted one stays deleted, also for writes and deletes that landed while the copy ran;
//! the compaction revision goes up by one; the result reopens clean; bad starting points
//! (full disk, an unfinished commit) are refused with the old volume untouched.

mod support;

use kelp_engine::format::{Needle, ReplicaPlacement, SuperBlock, Ttl};
use kelp_engine::volume::compact::{
    CompactError, CompactIo, CompactReport, Compaction, CompactionRecovery, Step, StepLimits,
    Throttle,
};
use kelp_engine::volume::{FileVolume, StdStorage, Storage, VolumeCore, default_config};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::sim::SimStorage;
use support::{Model, Outcome, cookie, data_for, needle};

const TINY: StepLimits = StepLimits {
    needles_max: 3,
    bytes_max: 6_000,
    commit_tail_entries_max: 1,
    replay_steps_max: 16,
};

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// 40 keys written, 24 of them deleted, 4 of the rest overwritten: 60 % of the keys gone.
fn fill<S: Storage>(volume: &mut FileVolume<S>, model: &mut Model) {
    for key in 1..=40 {
        let data = data_for(key, 0);
        volume.write(&needle(key, &data), false).unwrap();
        model.record(key, Some(data), Outcome::Acked);
    }
    for key in (1..=40).filter(|key| key % 5 < 3) {
        volume.delete(key, cookie(key), false).unwrap();
        model.record(key, None, Outcome::Acked);
    }
    for key in [4, 9, 14, 19] {
        let data = data_for(key, 1);
        volume.write(&needle(key, &data), false).unwrap();
        model.record(key, Some(data), Outcome::Acked);
    }
    volume.sync().unwrap();
}

fn live_record_bytes(volume: &FileVolume<impl Storage>) -> u64 {
    volume.stats().live_record_bytes
}

// Proves an offline compaction gives back exactly the garbage: the new .dat is the
// superblock plus the live records, every live key reads back, every deleted key is gone,
// the revision is up by one, and the volume reopens clean with the same contents.
#[test]
fn compaction_keeps_live_needles_and_drops_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    let mut model = Model::default();
    fill(&mut volume, &mut model);
    let garbage = volume.core().garbage_bytes();
    let before = volume.core().dat_bytes();
    assert!(volume.core().garbage_ratio() > 0.5, "60 % of the keys gone");
    let report = volume.compact(&mut Throttle::new(0)).unwrap();
    assert_eq!(report.bytes_reclaimed(), garbage);
    assert_eq!(report.dat_bytes_before, before);
    assert_eq!(report.dat_bytes_after, 8 + live_record_bytes(&volume));
    assert_eq!((report.old_revision, report.new_revision), (0, 1));
    assert_eq!(report.needles_after, 16);
    assert_eq!(volume.core().garbage_bytes(), 0);
    assert_eq!(volume.core().config().superblock.compaction_revision, 1);
    model.check_and_settle(&volume).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 3, "only .dat, .idx, .vif are left");
    drop(volume);
    let (volume, report) = FileVolume::open(dir.path(), "c", 3, &Default::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    model.check_and_settle(&volume).unwrap();
    let dat = std::fs::read(dir.path().join("c_3.dat")).unwrap();
    assert_eq!(SuperBlock::decode(&dat).unwrap().compaction_revision, 1);
}

/// Drives a compaction step by step, calling `between` after every step (where a server
/// would serve requests), then commits; `volume` becomes the compacted one.
fn compact_online<S: Storage>(
    volume: &mut FileVolume<S>,
    limits: StepLimits,
    now_ns: u64,
    mut between: impl FnMut(&mut FileVolume<S>),
) -> Result<CompactReport, CompactError> {
    let (mut compaction, start) = Compaction::start_with(volume.core(), limits);
    let storage = volume.storage().clone();
    let paths = volume.paths().clone();
    let mut io = CompactIo::create(storage, paths, volume.dat_file(), &start)?;
    loop {
        let done = match compaction.next_step(volume.core(), now_ns) {
            Step::Copy(batch) => io.copy(&batch)?,
            Step::Replay(batch) => io.replay(&batch)?,
            Step::Commit => break,
        };
        compaction.apply(done);
        between(volume);
    }
    let batch = compaction.plan_commit(volume.core());
    let done = io.commit(&batch)?;
    let (compacted, report) = compaction.finish(volume.core(), done);
    *volume = compacted;
    Ok(report)
}

// Proves writes, overwrites and deletes that land on the volume while the copy and the
// replay run are all in the compacted volume (a key copied and then deleted stays deleted,
// one copied and then overwritten has its new bytes), with many small steps.
#[test]
fn appends_during_the_compaction_are_kept() {
    let storage = SimStorage::new(3);
    let dir = Path::new("/sim");
    let mut volume = support::create(storage.clone(), dir);
    let mut model = Model::default();
    fill(&mut volume, &mut model);
    let mut step = 0u64;
    let report = compact_online(&mut volume, TINY, now_ns(), |volume| {
        step += 1;
        let key = 1 + (step * 7) % 50;
        let data = data_for(key, 10 + step as u32);
        if step.is_multiple_of(3) && volume.core().lookup(key).is_some() {
            volume.delete(key, cookie(key), false).unwrap();
            model.record(key, None, Outcome::Acked);
        } else {
            volume.write(&needle(key, &data), false).unwrap();
            model.record(key, Some(data), Outcome::Acked);
        }
    })
    .unwrap();
    assert!(
        report.steps > 16 / 3,
        "16 live needles, 3 a step: {report:?}"
    );
    assert!(
        report.records_replayed > 0 && report.commit_records <= 2,
        "{report:?}"
    );
    model.check_and_settle(&volume).unwrap();
    assert_eq!(
        volume.stats().live_count,
        model
            .keys()
            .filter(|k| volume.core().lookup(*k).is_some())
            .count() as u64
    );
    drop(volume);
    let volume = support::reopen(storage, dir);
    model.check_and_settle(&volume).unwrap();
}

// Proves a write whose `.idx` write fails while a compaction runs leaves the key as it was
// (not lost): the volume takes the change back, so the map never holds what the `.idx`
// (which the compaction replays) does not.
#[test]
fn failed_index_write_during_a_compaction_keeps_the_older_value() {
    let storage = SimStorage::new(9);
    let dir = Path::new("/sim");
    let mut volume = support::create(storage.clone(), dir);
    let mut model = Model::default();
    for key in 1..=6 {
        let data = data_for(key, 0);
        volume.write(&needle(key, &data), true).unwrap();
        model.record(key, Some(data), Outcome::Acked);
    }
    let mut failed = false;
    compact_online(&mut volume, TINY, now_ns(), |volume| {
        if failed {
            return;
        }
        failed = true;
        let data = data_for(5, 1);
        storage.arm(
            storage.steps() + 2,
            support::sim::Fault::Fail(std::io::ErrorKind::Other),
        );
        let written = volume.write(&needle(5, &data), false);
        assert!(written.is_err(), "the .idx write fails");
        model.record(5, Some(data), Outcome::Unacked);
        let read = volume.read(5, cookie(5)).unwrap();
        let taken_back = read.needle().data == data_for(5, 0);
        assert!(taken_back, "the volume took the write back");
    })
    .unwrap();
    assert!(failed);
    model.check_and_settle(&volume).unwrap();
    let older = volume.read(5, cookie(5)).unwrap().needle().data == data_for(5, 0);
    assert!(older, "the compacted volume has the older value");
}

// Proves a compaction refuses to commit new files that lack a live needle of the volume
// (here a write whose `.idx` entry was never written and not taken back), and that the
// old volume then serves on with no compaction file left.
#[test]
fn new_files_missing_a_live_needle_are_not_committed() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    for key in 1..=4 {
        volume
            .write(&needle(key, &data_for(key, 0)), false)
            .unwrap();
    }
    let error = compact_online(&mut volume, TINY, now_ns(), |volume| {
        if volume.core().lookup(9).is_some() {
            return;
        }
        let data = data_for(9, 0);
        let plan = volume
            .core_mut()
            .plan_write(&needle(9, &data), now_ns())
            .unwrap();
        volume
            .dat_file()
            .write_all_at(&plan.record, plan.offset)
            .unwrap();
        let _unwritten = volume.core_mut().complete(&plan);
    })
    .unwrap_err();
    match &error {
        CompactError::Diverged {
            live_now,
            live_new,
            dropped,
            ..
        } => {
            assert_eq!((*live_now, *live_new, *dropped), (5, 4, 0), "{error}");
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("not committed"), "{error}");
    assert!(!error.reopen_required());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no leftovers"
    );
    assert!(volume.read(1, cookie(1)).is_ok());
    assert_eq!(volume.core().config().superblock.compaction_revision, 0);
}

// Proves needles past their TTL are dropped and counted, and live ones kept.
#[test]
fn expired_needles_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    let ttl = Some(Ttl::parse("1m").unwrap());
    for key in 1..=10u64 {
        let data = data_for(key, 0);
        let needle = Needle {
            ttl: if key % 2 == 0 { ttl } else { None },
            last_modified_s: Some(1_700_000_000),
            ..needle(key, &data)
        };
        volume.write(&needle, false).unwrap();
    }
    let later_ns = now_ns() + 2 * 60 * 1_000_000_000;
    let limits = StepLimits::default();
    let report = compact_online(&mut volume, limits, later_ns, |_| {}).unwrap();
    assert_eq!(report.needles_expired, 5);
    assert_eq!(volume.stats().live_count, 5);
    for key in 1..=10u64 {
        assert_eq!(
            volume.read(key, cookie(key)).is_ok(),
            key % 2 == 1,
            "key {key}"
        );
    }
}

// Proves a compaction refuses to start when the disk has less free space than the live
// data, says how much it needs, and leaves the volume as it was.
#[test]
fn full_disk_is_refused() {
    let storage = SimStorage::new(5);
    let dir = Path::new("/sim");
    let mut volume = support::create(storage.clone(), dir);
    let mut model = Model::default();
    fill(&mut volume, &mut model);
    let needed = 8 + live_record_bytes(&volume) + 16 * 17;
    assert_eq!(
        kelp_engine::volume::compact::space_needed(volume.core()),
        needed
    );
    storage.set_free_bytes(needed - 1);
    let names = storage.file_names();
    match volume.compact(&mut Throttle::new(0)) {
        Err(CompactError::NoSpace {
            needed_bytes,
            free_bytes,
            ..
        }) => {
            assert_eq!((needed_bytes, free_bytes), (needed, needed - 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(storage.file_names(), names, "no file made");
    model.check_and_settle(&volume).unwrap();
    storage.set_free_bytes(needed);
    volume.compact(&mut Throttle::new(0)).unwrap();
    model.check_and_settle(&volume).unwrap();
}

// Proves a needle whose record does not decode (a flipped bit) is dropped and named in
// the report, and the others are copied.
#[test]
fn corrupt_needle_is_dropped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    let mut offsets = BTreeMap::new();
    for key in 1..=5u64 {
        let data = data_for(key, 0);
        let written = volume.write(&needle(key, &data), true).unwrap();
        offsets.insert(key, written.offset);
    }
    let dat_path = dir.path().join("c_3.dat");
    let mut dat = std::fs::read(&dat_path).unwrap();
    dat[offsets[&3] as usize + 30] ^= 0x40;
    std::fs::write(&dat_path, &dat).unwrap();
    let report = volume.compact(&mut Throttle::new(0)).unwrap();
    assert_eq!(report.needles_corrupt, 1);
    assert_eq!(report.corrupt, vec![(3, offsets[&3])]);
    assert_eq!(volume.stats().live_count, 4);
    assert!(volume.read(3, cookie(3)).is_err());
    assert!(volume.read(4, cookie(4)).is_ok());
}

// Proves the revision wraps from 65535 to 0 as SeaweedFS's u16 does.
#[test]
fn revision_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = default_config(3, "c", ReplicaPlacement::default(), Ttl::EMPTY);
    config.superblock.compaction_revision = u16::MAX;
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    volume.write(&needle(1, b"x"), false).unwrap();
    let report = volume.compact(&mut Throttle::new(0)).unwrap();
    assert_eq!((report.old_revision, report.new_revision), (u16::MAX, 0));
    assert_eq!(volume.core().config().superblock.compaction_revision, 0);
}

// Proves opening a volume settles a compaction's leftovers: new files without a commit
// marker are removed (the old volume stands); with the marker, the swap is finished.
#[test]
fn open_settles_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    let mut model = Model::default();
    fill(&mut volume, &mut model);
    let paths = volume.paths().clone();
    drop(volume);
    std::fs::write(&paths.cpd, b"half a copy").unwrap();
    std::fs::write(&paths.cpx, b"").unwrap();
    let (volume, report) = FileVolume::open(dir.path(), "c", 3, &Default::default()).unwrap();
    assert_eq!(
        report.compaction,
        CompactionRecovery::Abandoned { removed: 2 }
    );
    assert!(!paths.cpd.exists() && !paths.cpx.exists());
    model.check_and_settle(&volume).unwrap();

    // A committed compaction whose renames did not happen: build it with a second copy.
    let copy = tempfile::tempdir().unwrap();
    let mut compacted = support::create(StdStorage, copy.path());
    let mut copy_model = Model::default();
    fill(&mut compacted, &mut copy_model);
    compacted.compact(&mut Throttle::new(0)).unwrap();
    drop((volume, compacted));
    std::fs::copy(copy.path().join("c_3.dat"), &paths.cpd).unwrap();
    std::fs::copy(copy.path().join("c_3.idx"), &paths.cpx).unwrap();
    std::fs::write(&paths.cpc, b"").unwrap();
    let (volume, report) = FileVolume::open(dir.path(), "c", 3, &Default::default()).unwrap();
    assert_eq!(
        report.compaction,
        CompactionRecovery::Finished { renamed: 2 }
    );
    assert_eq!(volume.core().config().superblock.compaction_revision, 1);
    assert!(!paths.cpc.exists() && !paths.cpd.exists());
    model.check_and_settle(&volume).unwrap();
}

// Proves a compaction refuses to start over an unfinished commit (marker plus files), which
// only opening the volume may settle.
#[test]
fn unfinished_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    volume.write(&needle(1, b"x"), false).unwrap();
    let paths = volume.paths().clone();
    std::fs::write(&paths.cpc, b"").unwrap();
    std::fs::write(&paths.cpx, b"").unwrap();
    let error = volume.compact(&mut Throttle::new(0)).unwrap_err();
    assert!(
        matches!(error, CompactError::UnfinishedCommit { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("c_3.cpc"), "{error}");
    assert!(volume.read(1, cookie(1)).is_ok());
}

// Proves the garbage ratio counts deleted and overwritten needles and delete markers as the
// share of the .dat a compaction gives back.
#[test]
fn garbage_ratio_is_the_share_given_back() {
    let config = default_config(1, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut core = VolumeCore::new(config);
    assert_eq!(core.garbage_ratio(), 0.0);
    let mut record_lens = Vec::new();
    for key in 1..=4u64 {
        let plan = core.plan_write(&needle(key, &[7u8; 100]), 1).unwrap();
        record_lens.push(plan.record.len() as u64);
        core.complete(&plan);
    }
    assert_eq!(core.garbage_bytes(), 0);
    let plan = core.plan_delete(1, cookie(1), 2).unwrap();
    let marker = plan.record.len() as u64;
    core.complete(&plan);
    assert_eq!(core.garbage_bytes(), record_lens[0] + marker);
    let total = core.dat_bytes() - 8;
    let ratio = core.garbage_ratio();
    assert!((ratio - (record_lens[0] + marker) as f64 / total as f64).abs() < 1e-12);
}

// Proves the throttle spreads bytes over time at the given rate, and 0 means no pause.
#[test]
fn throttle_paces_to_the_rate() {
    let start = Instant::now();
    let mut unpaced = Throttle::new(0);
    assert_eq!(unpaced.pause_after(1 << 30, start), Duration::ZERO);
    let mut paced = Throttle::new(1_000_000);
    assert_eq!(
        paced.pause_after(500_000, start),
        Duration::from_millis(500)
    );
    let later = start + Duration::from_millis(300);
    assert_eq!(
        paced.pause_after(500_000, later),
        Duration::from_millis(700)
    );
    let much_later = start + Duration::from_secs(5);
    assert_eq!(paced.pause_after(1_000, much_later), Duration::ZERO);
}

// Proves a volume's TTL clock (the newest append time of its live needles) comes from its
// files: after a reopen, not moved by a delete of an older needle, and after a compaction
// that copied the needles in key order, which is not their append order.
#[test]
fn newest_live_append_survives_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::create(StdStorage, dir.path());
    let mut newest = 0;
    for key in [5u64, 2, 9, 7] {
        let data = data_for(key, 0);
        newest = volume
            .write(&needle(key, &data), false)
            .unwrap()
            .append_at_ns;
    }
    assert_eq!(volume.newest_live_append_ns(), newest);
    volume.delete(2, cookie(2), false).unwrap();
    let reopen = |volume: FileVolume| {
        drop(volume);
        support::reopen(StdStorage, dir.path())
    };
    let mut volume = reopen(volume);
    assert_eq!(
        volume.newest_live_append_ns(),
        newest,
        "key 7, written last"
    );
    volume.compact(&mut Throttle::new(0)).unwrap();
    let mut volume = reopen(volume);
    assert_eq!(
        volume.newest_live_append_ns(),
        newest,
        "key 7, copied before key 9"
    );
    let data = data_for(1, 0);
    let later = volume.write(&needle(1, &data), false).unwrap().append_at_ns;
    let volume = reopen(volume);
    assert_eq!(volume.newest_live_append_ns(), later);
}
