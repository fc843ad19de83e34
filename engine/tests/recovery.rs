//! Crash recovery: a volume's files are cut as a crash could leave them (the `.dat` at every
//! byte of its last needles and at random points; the `.idx` whole, cut to match, torn, or
//! missing), then opened. After open, every needle that was completely written reads back
//! byte-identical, nothing else does, and the volume takes new writes.

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{FileReadError, FileVolume, OpenOptions, ReadError, default_config};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// One append of the script: the expected live contents after it, and the file sizes.
struct Step {
    dat_len: u64,
    idx_len: u64,
    live: BTreeMap<u64, Vec<u8>>,
}

const COOKIE: u32 = 0x5eed;

/// Writes a fixed script (writes of several sizes, an overwrite, deletes) and returns the
/// final `.dat` and `.idx` images and the state after each step.
fn write_script(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<Step>) {
    let config = default_config(1, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir, config).unwrap();
    let mut live = BTreeMap::new();
    let mut steps = vec![Step {
        dat_len: 8,
        idx_len: 0,
        live: live.clone(),
    }];
    let ops: [(u64, usize); 9] = [
        (1, 10),
        (2, 1),
        (3, 100),
        (2, 0),
        (4, 33),
        (1, 7),
        (5, 64),
        (3, 0),
        (6, 20),
    ];
    for (key, len) in ops {
        if len == 0 {
            volume.delete(key, COOKIE, false).unwrap();
            live.remove(&key);
        } else {
            let data: Vec<u8> = (0..len).map(|i| (key as usize * 31 + i) as u8).collect();
            let name = format!("file{key}.bin");
            let needle = Needle {
                key,
                cookie: COOKIE,
                data: &data,
                name: Some(name.as_bytes()),
                ..Needle::default()
            };
            volume.write(&needle, false).unwrap();
            live.insert(key, data);
        }
        let core = volume.core();
        steps.push(Step {
            dat_len: core.dat_bytes(),
            idx_len: core.idx_bytes(),
            live: live.clone(),
        });
    }
    volume.sync().unwrap();
    let dat = fs::read(dir.join("1.dat")).unwrap();
    let idx = fs::read(dir.join("1.idx")).unwrap();
    (dat, idx, steps)
}

#[derive(Clone, Copy, Debug)]
enum IdxCut {
    Whole,
    Matching,
    Torn(u64),
    Missing,
}

/// Writes the cut files into `dir`, opens the volume, and checks it against the last step
/// whose needle was completely written.
fn check_cut(dir: &Path, dat: &[u8], idx: &[u8], steps: &[Step], dat_cut: u64, idx_cut: IdxCut) {
    let expected = steps.iter().rev().find(|s| s.dat_len <= dat_cut).unwrap();
    fs::write(dir.join("1.dat"), &dat[..dat_cut as usize]).unwrap();
    let idx_len = match idx_cut {
        IdxCut::Whole => Some(idx.len() as u64),
        IdxCut::Matching => Some(expected.idx_len),
        IdxCut::Torn(len) => Some(len.min(idx.len() as u64)),
        IdxCut::Missing => None,
    };
    let _ = fs::remove_file(dir.join("1.idx"));
    if let Some(len) = idx_len {
        fs::write(dir.join("1.idx"), &idx[..len as usize]).unwrap();
    }
    let context = format!("dat cut at {dat_cut}, idx {idx_cut:?}");
    let (mut volume, _report) = FileVolume::open(dir, "", 1, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
    for key in 1..=6u64 {
        match (expected.live.get(&key), volume.read(key, COOKIE)) {
            (Some(data), Ok(read)) => {
                assert_eq!(read.needle().data, &data[..], "{context}: key {key}")
            }
            (None, Err(FileReadError::Read(ReadError::NotFound { .. }))) => {}
            (want, got) => panic!("{context}: key {key}: want {want:?}, got {got:?}"),
        }
    }
    assert_eq!(
        volume.stats().live_count,
        expected.live.len() as u64,
        "{context}"
    );
    assert_eq!(
        volume.core().dat_bytes(),
        expected.dat_len,
        "{context}: torn bytes cut"
    );
    let data = b"after recovery";
    volume
        .write(
            &Needle {
                key: 99,
                cookie: 1,
                data,
                ..Needle::default()
            },
            false,
        )
        .unwrap();
    drop(volume);
    let (volume, report) = FileVolume::open(dir, "", 1, &OpenOptions::default()).unwrap();
    assert!(
        report.is_clean(),
        "{context}: second open not clean: {report:?}"
    );
    assert_eq!(volume.read(99, 1).unwrap().needle().data, data, "{context}");
}

// Proves recovery at every byte boundary of the last three needles, with the `.idx` whole
// (entries pointing past the cut), matching, or missing.
#[test]
fn cut_at_every_byte_of_the_last_needles() {
    let source = tempfile::tempdir().unwrap();
    let (dat, idx, steps) = write_script(source.path());
    let work = tempfile::tempdir().unwrap();
    let from = steps[steps.len() - 4].dat_len;
    for dat_cut in from..=dat.len() as u64 {
        for idx_cut in [IdxCut::Whole, IdxCut::Matching, IdxCut::Missing] {
            check_cut(work.path(), &dat, &idx, &steps, dat_cut, idx_cut);
        }
    }
}

// Proves recovery at random cut points of the whole `.dat`, with a torn `.idx` cut at a
// random byte as well.
#[test]
fn cut_at_random_points() {
    let source = tempfile::tempdir().unwrap();
    let (dat, idx, steps) = write_script(source.path());
    let work = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..150 {
        let dat_cut = rng.random_range(8..=dat.len() as u64);
        let idx_cut = match rng.random_range(0..3) {
            0 => IdxCut::Torn(rng.random_range(0..=idx.len() as u64)),
            1 => IdxCut::Matching,
            _ => IdxCut::Whole,
        };
        check_cut(work.path(), &dat, &idx, &steps, dat_cut, idx_cut);
    }
}

// Proves a corrupt `.idx` (garbage entries pointing outside the `.dat`) is rebuilt from the
// `.dat`, and that a flipped bit in the last needle cuts that needle away (its CRC fails).
#[test]
fn corrupt_index_is_rebuilt_and_bad_crc_is_cut() {
    let source = tempfile::tempdir().unwrap();
    let (dat, mut idx, steps) = write_script(source.path());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for byte in &mut idx[8..17] {
        *byte = 0xff;
    }
    fs::write(dir.join("1.dat"), &dat).unwrap();
    fs::write(dir.join("1.idx"), &idx).unwrap();
    let (volume, report) = FileVolume::open(dir, "", 1, &OpenOptions::default()).unwrap();
    let last = steps.last().unwrap();
    assert_eq!(volume.stats().live_count, last.live.len() as u64);
    assert!(
        report.idx_rebuilt || report.idx_entries_dropped > 0,
        "{report:?}"
    );
    for (key, data) in &last.live {
        assert_eq!(volume.read(*key, COOKIE).unwrap().needle().data, &data[..]);
    }
    drop(volume);

    let mut flipped = dat.clone();
    let last_data_at = steps[steps.len() - 2].dat_len as usize + 20;
    flipped[last_data_at] ^= 0x40;
    fs::write(dir.join("1.dat"), &flipped).unwrap();
    let (volume, report) = FileVolume::open(dir, "", 1, &OpenOptions::default()).unwrap();
    assert!(report.dat_bytes_truncated > 0, "{report:?}");
    assert!(
        report
            .dat_torn_reason
            .as_ref()
            .unwrap()
            .to_string()
            .contains("bad CRC")
    );
    assert!(volume.read(6, COOKIE).is_err());
    assert_eq!(volume.read(5, COOKIE).unwrap().needle().data.len(), 64);
}

// Proves that in a long `.idx` (more entries than recovery checks in full), an entry far
// from the end that points outside the `.dat` makes recovery rebuild the whole `.idx` from
// the `.dat`, losing nothing; and that a long clean volume opens clean.
#[test]
fn corrupt_entry_deep_in_a_long_index_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_config(2, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    for key in 1..=200u64 {
        let data = key.to_be_bytes().repeat(key as usize % 7 + 1);
        volume
            .write(
                &Needle {
                    key,
                    cookie: COOKIE,
                    data: &data,
                    ..Needle::default()
                },
                false,
            )
            .unwrap();
    }
    drop(volume);
    let (_, report) = FileVolume::open(dir.path(), "", 2, &OpenOptions::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let idx_path = dir.path().join("2.idx");
    let mut idx = fs::read(&idx_path).unwrap();
    idx[10 * 17 + 8..10 * 17 + 13].fill(0x7f);
    fs::write(&idx_path, &idx).unwrap();
    let (volume, report) = FileVolume::open(dir.path(), "", 2, &OpenOptions::default()).unwrap();
    assert!(report.idx_rebuilt, "{report:?}");
    assert_eq!(volume.stats().live_count, 200);
    for key in 1..=200u64 {
        let data = key.to_be_bytes().repeat(key as usize % 7 + 1);
        assert_eq!(
            volume.read(key, COOKIE).unwrap().needle().data,
            &data[..],
            "key {key}"
        );
    }
}

// Proves a zero-filled tail (a file system that kept the new length but not the data) is
// cut away, not indexed as needles of key 0.
#[test]
fn zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_config(3, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    volume
        .write(
            &Needle {
                key: 1,
                cookie: COOKIE,
                data: b"kept",
                ..Needle::default()
            },
            true,
        )
        .unwrap();
    let dat_len = volume.core().dat_bytes();
    drop(volume);
    let dat_path = dir.path().join("3.dat");
    let mut dat = fs::read(&dat_path).unwrap();
    dat.resize(dat.len() + 4096, 0);
    fs::write(&dat_path, &dat).unwrap();
    let idx_before = fs::read(dir.path().join("3.idx")).unwrap();
    let (volume, report) = FileVolume::open(dir.path(), "", 3, &OpenOptions::default()).unwrap();
    assert_eq!(report.dat_bytes_truncated, 4096, "{report:?}");
    assert_eq!(report.needles_reindexed, 0);
    assert_eq!(fs::metadata(&dat_path).unwrap().len(), dat_len);
    assert_eq!(fs::read(dir.path().join("3.idx")).unwrap(), idx_before);
    assert_eq!(volume.read(1, COOKIE).unwrap().needle().data, b"kept");
}
