//! Engine micro-benchmarks (`cargo bench -p kelp-engine`), bounded to a few seconds.
//! Each comparison runs A and B interleaved, several rounds, and reports medians and the
//! ratio, because the machine is shared and noisy.

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl, Version};
use kelp_engine::volume::{FileVolume, OpenOptions, default_config};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const ROUNDS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// Runs `a` and `b` interleaved for `ROUNDS` rounds; each returns operations done; prints
/// the median operations per second of each and the ratio.
fn compare(label_a: &str, label_b: &str, mut a: impl FnMut() -> u64, mut b: impl FnMut() -> u64) {
    let (mut rates_a, mut rates_b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (run, rates) in [
            (&mut a as &mut dyn FnMut() -> u64, &mut rates_a),
            (&mut b, &mut rates_b),
        ] {
            let start = Instant::now();
            let ops = run();
            rates.push(ops as f64 / start.elapsed().as_secs_f64());
        }
    }
    let (median_a, median_b) = (median(rates_a), median(rates_b));
    println!("{label_a:<44} {median_a:>12.0} ops/s");
    println!(
        "{label_b:<44} {median_b:>12.0} ops/s   (B/A = {:.2})",
        median_b / median_a
    );
}

fn sample_needle(key: u64, data: &[u8]) -> Needle<'_> {
    Needle {
        key,
        cookie: 0x1234_5678,
        data,
        name: Some(b"photo.jpg"),
        mime: Some(b"image/jpeg"),
        last_modified_s: Some(1_700_000_000),
        ..Needle::default()
    }
}

fn bench_codec() {
    let data = vec![7u8; 1024];
    let needle = sample_needle(1, &data);
    let mut record = Vec::with_capacity(2048);
    needle.encode(Version::V3, &mut record).unwrap();
    const N: u64 = 200_000;
    compare(
        "needle encode 1 KiB (A)",
        "needle decode 1 KiB, CRC checked (B)",
        || {
            let mut out = Vec::with_capacity(2048);
            for key in 0..N {
                out.clear();
                black_box(
                    sample_needle(key, &data)
                        .encode(Version::V3, &mut out)
                        .unwrap(),
                );
            }
            N
        },
        || {
            for _ in 0..N {
                black_box(Needle::decode(black_box(&record), Version::V3).unwrap());
            }
            N
        },
    );
}

fn fill_volume(dir: &Path, id: u32, count: u64) -> FileVolume {
    let config = default_config(id, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(dir, config).unwrap();
    let data = vec![3u8; 1024];
    for key in 1..=count {
        volume.write(&sample_needle(key, &data), false).unwrap();
    }
    volume
}

fn bench_volume(dir: &Path) {
    const COUNT: u64 = 50_000;
    let volume = fill_volume(dir, 1, COUNT);
    let keys: Vec<u64> = (0..COUNT).map(|i| (i * 7_919) % COUNT + 1).collect();
    compare(
        "FileVolume::read 1 KiB, random key (A)",
        "FileVolume::locate 1 KiB, random key (B)",
        || {
            for &key in &keys {
                black_box(volume.read(key, 0x1234_5678).unwrap());
            }
            COUNT
        },
        || {
            for &key in &keys {
                black_box(volume.locate(key, 0x1234_5678).unwrap());
            }
            COUNT
        },
    );
    drop(volume);
    let idx = dir.join("1.idx");
    let saved = std::fs::read(&idx).unwrap();
    compare(
        "open 50k-needle volume, clean .idx (A)",
        "open 50k-needle volume, .idx rebuilt (B)",
        || {
            black_box(FileVolume::open(dir, "", 1, &OpenOptions::default()).unwrap());
            1
        },
        || {
            std::fs::remove_file(&idx).unwrap();
            black_box(FileVolume::open(dir, "", 1, &OpenOptions::default()).unwrap());
            assert_eq!(std::fs::read(&idx).unwrap(), saved);
            1
        },
    );
}

fn bench_write(dir: &Path) {
    const COUNT: u64 = 20_000;
    let round = std::cell::Cell::new(10u32);
    let data = vec![5u8; 1024];
    let append = |fsync_every: u64| {
        round.set(round.get() + 1);
        let config = default_config(round.get(), "", ReplicaPlacement::default(), Ttl::EMPTY);
        let mut volume = FileVolume::create(dir, config).unwrap();
        for key in 1..=COUNT {
            volume
                .write(&sample_needle(key, &data), key % fsync_every == 0)
                .unwrap();
        }
        volume.destroy().unwrap();
        COUNT
    };
    compare(
        "FileVolume::write 1 KiB, no fsync (A)",
        "FileVolume::write 1 KiB, fsync every 1000 (B)",
        || append(u64::MAX),
        || append(1_000),
    );
}

/// Writes a volume of `count` 16-byte needles straight from the encoder (fast to build).
fn build_large_volume(dir: &Path, id: u32, count: u64) {
    let config = default_config(id, "", ReplicaPlacement::default(), Ttl::EMPTY);
    drop(FileVolume::create(dir, config.clone()).unwrap());
    let mut core = kelp_engine::volume::VolumeCore::new(config.clone());
    let mut dat = config.superblock.encode().to_vec();
    let mut idx = Vec::new();
    for key in 1..=count {
        let data = key.to_be_bytes().repeat(2);
        let needle = Needle {
            key,
            cookie: 1,
            data: &data,
            ..Needle::default()
        };
        let plan = core.plan_write(&needle, key).unwrap();
        dat.extend_from_slice(&plan.record);
        idx.extend_from_slice(core.complete(&plan).bytes());
    }
    std::fs::write(dir.join(format!("{id}.dat")), dat).unwrap();
    std::fs::write(dir.join(format!("{id}.idx")), idx).unwrap();
}

fn bench_large_open(dir: &Path) {
    const COUNT: u64 = 1_000_000;
    build_large_volume(dir, 50, COUNT);
    let idx = dir.join("50.idx");
    compare(
        "open 1M-needle volume, clean .idx (A)",
        "open 1M-needle volume, .idx rebuilt (B)",
        || {
            let (volume, _) = FileVolume::open(dir, "", 50, &OpenOptions::default()).unwrap();
            assert_eq!(volume.stats().live_count, COUNT);
            1
        },
        || {
            std::fs::remove_file(&idx).unwrap();
            black_box(FileVolume::open(dir, "", 50, &OpenOptions::default()).unwrap());
            1
        },
    );
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let dir = tempfile::tempdir().unwrap();
    bench_codec();
    bench_volume(dir.path());
    bench_write(dir.path());
    bench_large_open(dir.path());
}
