//! Model check (redb-style): random sequences of writes, overwrites, deletes, reopens and
//! crashes (files cut back to the last sync, plus a random torn tail) against a reference
//! `BTreeMap`. After every step each key reads back exactly as the model says.

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{FileReadError, FileVolume, OpenOptions, ReadError, default_config};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const KEYS: u64 = 12;

#[derive(Debug, Clone)]
enum Op {
    Write {
        key: u64,
        len: usize,
        seed: u8,
    },
    Delete {
        key: u64,
    },
    Sync,
    Reopen,
    /// Cut both files back to the last sync, then leave `torn` garbage bytes on the `.dat`.
    Crash {
        torn: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=KEYS, 1usize..300, any::<u8>()).prop_map(|(key, len, seed)| Op::Write { key, len, seed }),
        2 => (1..=KEYS).prop_map(|key| Op::Delete { key }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (0usize..100).prop_map(|torn| Op::Crash { torn }),
    ]
}

fn data_for(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

fn reopen(dir: &Path) -> FileVolume {
    FileVolume::open(dir, "m", 1, &OpenOptions::default())
        .unwrap()
        .0
}

fn check(volume: &FileVolume, model: &BTreeMap<u64, Vec<u8>>) -> Result<(), TestCaseError> {
    for key in 1..=KEYS {
        match (model.get(&key), volume.read(key, key as u32)) {
            (Some(data), Ok(read)) => prop_assert_eq!(read.needle().data, &data[..]),
            (None, Err(FileReadError::Read(ReadError::NotFound { .. }))) => {}
            (want, got) => prop_assert!(false, "key {}: want {:?}, got {:?}", key, want, got),
        }
    }
    prop_assert_eq!(volume.stats().live_count, model.len() as u64);
    Ok(())
}

/// File images and model at the last sync: what a crash falls back to.
struct Synced {
    dat: Vec<u8>,
    idx: Vec<u8>,
    model: BTreeMap<u64, Vec<u8>>,
}

fn snapshot(dir: &Path, model: &BTreeMap<u64, Vec<u8>>) -> Synced {
    Synced {
        dat: std::fs::read(dir.join("m_1.dat")).unwrap(),
        idx: std::fs::read(dir.join("m_1.idx")).unwrap(),
        model: model.clone(),
    }
}

fn crash(dir: &Path, synced: &Synced, torn: usize) {
    let mut dat = synced.dat.clone();
    dat.extend((0..torn).map(|i| (i * 37) as u8));
    std::fs::write(dir.join("m_1.dat"), dat).unwrap();
    std::fs::write(dir.join("m_1.idx"), &synced.idx).unwrap();
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = default_config(1, "m", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    let mut model = BTreeMap::new();
    let mut synced = snapshot(dir.path(), &model);
    for op in ops {
        match op {
            Op::Write { key, len, seed } => {
                let data = data_for(*len, *seed);
                let needle = Needle {
                    key: *key,
                    cookie: *key as u32,
                    data: &data,
                    ..Needle::default()
                };
                volume.write(&needle, false).unwrap();
                model.insert(*key, data);
            }
            Op::Delete { key } => {
                let deleted = volume.delete(*key, *key as u32, false).is_ok();
                prop_assert_eq!(deleted, model.remove(key).is_some());
            }
            Op::Sync => {
                volume.sync().unwrap();
                synced = snapshot(dir.path(), &model);
            }
            Op::Reopen => {
                drop(volume);
                volume = reopen(dir.path());
            }
            Op::Crash { torn } => {
                drop(volume);
                crash(dir.path(), &synced, *torn);
                model = synced.model.clone();
                volume = reopen(dir.path());
            }
        }
        check(&volume, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // Proves the volume behaves like a map through writes, deletes, reopens and crashes that
    // lose everything after the last sync and leave a torn tail.
    #[test]
    fn volume_matches_the_model(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        run(&ops)?;
    }
}

/// Plans `lens.len()` writes up front, then completes or aborts them in the order given
/// by `order` (`fates[i]` says whether plan `i` completes). Returns the `.dat` and `.idx`
/// images as the I/O would have left them and the model of what must be readable.
#[allow(clippy::type_complexity)]
fn in_flight(
    keys: &[u64],
    order: &[usize],
    fates: &[bool],
) -> (
    kelp_engine::volume::VolumeCore,
    Vec<u8>,
    Vec<u8>,
    BTreeMap<u64, Vec<u8>>,
) {
    let config = default_config(1, "m", ReplicaPlacement::default(), Ttl::EMPTY);
    let superblock = config.superblock.encode();
    let mut core = kelp_engine::volume::VolumeCore::new(config);
    let mut plans: Vec<Option<_>> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let data = data_for(i * 13 + 1, i as u8);
        let needle = Needle {
            key: *key,
            cookie: *key as u32,
            data: &data,
            ..Needle::default()
        };
        plans.push(Some((core.plan_write(&needle, 0).unwrap(), data)));
    }
    let (mut dat, mut idx, mut model) = (superblock.to_vec(), Vec::new(), BTreeMap::new());
    for &i in order {
        let (plan, data) = plans[i].take().unwrap();
        if !fates[i] {
            core.abort(plan);
            continue;
        }
        let end = plan.offset as usize + plan.record.len();
        dat.resize(dat.len().max(end), 0);
        dat[plan.offset as usize..end].copy_from_slice(&plan.record);
        let entry = core.complete(&plan);
        assert_eq!(entry.offset as usize, idx.len());
        idx.extend_from_slice(entry.bytes());
        model.insert(plan.key, data);
    }
    (core, dat, idx, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    // Proves appends in flight at once, completed or aborted in any order, leave the core
    // and the files agreeing with the completion order: the core serves exactly the
    // completed needles, and the files reopen (recovery included) to the same contents.
    #[test]
    fn appends_in_flight_in_any_order(
        plan in (1usize..10).prop_flat_map(|n| (
            proptest::collection::vec(1u64..5, n),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::collection::vec(proptest::bool::weighted(0.8), n),
        ))
    ) {
        let (keys, order, fates) = plan;
        let (core, dat, idx, model) = in_flight(&keys, &order, &fates);
        prop_assert_eq!(core.appends_in_flight(), 0);
        for key in 1..5u64 {
            match (model.get(&key), core.plan_read(key)) {
                (Some(data), Ok(read)) => {
                    let record = &dat[read.offset as usize..(read.offset + read.len) as usize];
                    let needle = core.finish_read(&read, record, key as u32, 0).unwrap();
                    prop_assert_eq!(needle.data, &data[..]);
                }
                (None, Err(_)) => {}
                (want, got) => prop_assert!(false, "key {}: want {:?}, got {:?}", key, want, got),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let config = default_config(1, "m", ReplicaPlacement::default(), Ttl::EMPTY);
        drop(FileVolume::create(dir.path(), config).unwrap());
        std::fs::write(dir.path().join("m_1.dat"), &dat).unwrap();
        std::fs::write(dir.path().join("m_1.idx"), &idx).unwrap();
        check(&reopen(dir.path()), &model)?;
    }
}
