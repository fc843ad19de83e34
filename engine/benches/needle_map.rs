//! Needle-map benchmark: bytes per needle, lookups per second (hits and misses), inserts per
//! second and `.idx` load time, for monotonic and random keys, next to a
//! `HashMap<u64, (u64, u32)>` (ahash) measured in the same run.
//!
//! Run: `cargo bench -p kelp-engine --bench needle_map` (release profile).
//! `KELP_BENCH_NEEDLES=n` changes the needle count (default 10,000,000);
//! `KELP_BENCH_SKIP_INSERTS=1` skips the (slow, for random keys) one-by-one insert runs;
//! `KELP_BENCH_KEYS=monotonic` (or `random`) runs one of the two workloads.
//!
//! The `.idx` files are written and parsed with `kelp_engine::format::idx` (17-byte entries of
//! SeaweedFS's 5-byte-offset build, as the peer writes them).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kelp_engine::format::idx::{self, IdxEntry, OffsetWidth};
use kelp_engine::needle_map::{NeedleMap, NeedleValue};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Counts live heap bytes, to cross-check `NeedleMap::memory_bytes`.
struct CountingAllocator;

static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const IDX_WIDTH: OffsetWidth = OffsetWidth::Five;
const ROUNDS: usize = 3;

type HashBaseline = HashMap<u64, (u64, u32), ahash::RandomState>;

struct Workload {
    name: &'static str,
    /// Index entries in file order.
    entries: Vec<(u64, NeedleValue)>,
    hits: Vec<u64>,
    misses: Vec<u64>,
}

fn main() {
    let needles: usize = std::env::var("KELP_BENCH_NEEDLES")
        .ok()
        .map(|text| text.parse().expect("KELP_BENCH_NEEDLES must be a number"))
        .unwrap_or(10_000_000);
    let directory = tempfile::tempdir().expect("temporary directory for the .idx files");
    println!("needle map benchmark: {needles} needles, sizes uniform 1..=16384 bytes");
    let only = std::env::var("KELP_BENCH_KEYS").ok();
    for monotonic in [true, false] {
        let name = if monotonic { "monotonic" } else { "random" };
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let workload = make_workload(needles, monotonic);
        run_workload(&workload, directory.path());
    }
}

fn make_workload(needles: usize, monotonic: bool) -> Workload {
    let mut rng = SmallRng::seed_from_u64(if monotonic { 1 } else { 2 });
    let mut entries = Vec::with_capacity(needles);
    let mut key = 0u64;
    let mut offset_units = 1u64; // The superblock takes the first 8 bytes.
    for _ in 0..needles {
        key = if monotonic {
            key + rng.random_range(1..=8) // Keys shared with other volumes: gaps.
        } else {
            rng.random()
        };
        let size: u32 = rng.random_range(1..=16_384);
        entries.push((key, NeedleValue { offset_units, size }));
        offset_units += (u64::from(size) + 28) / 8 + 1; // Version-3 needle with padding.
    }
    let mut sorted_keys: Vec<u64> = entries.iter().map(|e| e.0).collect();
    sorted_keys.sort_unstable();
    let hits = (0..needles)
        .map(|_| entries[rng.random_range(0..needles)].0)
        .collect();
    let (low, high) = (sorted_keys[0], sorted_keys[needles - 1]);
    let mut misses = Vec::with_capacity(needles);
    while misses.len() < needles {
        let probe = rng.random_range(low..=high);
        if sorted_keys.binary_search(&probe).is_err() {
            misses.push(probe);
        }
    }
    let name = if monotonic { "monotonic" } else { "random" };
    Workload {
        name,
        entries,
        hits,
        misses,
    }
}

fn run_workload(workload: &Workload, directory: &Path) {
    let count = workload.entries.len();
    println!("\n== {} keys ==", workload.name);
    let idx_path = directory.join(format!("{}.idx", workload.name));
    write_idx(&idx_path, &workload.entries);

    let (map, kelp_heap_bytes, kelp_rss_bytes) = measure_heap(|| load_idx(&idx_path));
    let (hash, hash_heap_bytes, hash_rss_bytes) = measure_heap(|| load_idx_hash(&idx_path));
    assert_eq!(map.len(), hash.len());
    let live = map.len() as f64;
    println!(
        "bytes per live needle: kelp memory_bytes {:.2}, allocator {:.2}, RSS delta {:.2}; \
         hashmap allocator {:.2}, RSS delta {:.2}",
        map.memory_bytes() as f64 / live,
        kelp_heap_bytes as f64 / live,
        kelp_rss_bytes as f64 / live,
        hash_heap_bytes as f64 / live,
        hash_rss_bytes as f64 / live,
    );

    let mut load = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        load.0
            .push(seconds(|| drop(black_box(load_idx(&idx_path)))));
        load.1
            .push(seconds(|| drop(black_box(load_idx_hash(&idx_path)))));
    }
    println!(
        ".idx load ({count} entries, {} MB): kelp {:.3} s, hashmap {:.3} s (median of {ROUNDS})",
        count * IDX_WIDTH.entry_bytes() / 1_000_000,
        median(load.0),
        median(load.1),
    );

    if std::env::var_os("KELP_BENCH_SKIP_INSERTS").is_none() {
        report_inserts(&workload.entries);
    }
    report_lookups(&map, &hash, workload);
}

fn report_inserts(entries: &[(u64, NeedleValue)]) {
    let count = entries.len();
    let mut inserts = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        inserts
            .0
            .push(seconds(|| drop(black_box(insert_all(entries)))));
        inserts
            .1
            .push(seconds(|| drop(black_box(insert_all_hash(entries)))));
    }
    println!(
        "inserts in file order: kelp {:.1} M/s, hashmap {:.1} M/s",
        count as f64 / median(inserts.0) / 1e6,
        count as f64 / median(inserts.1) / 1e6,
    );
}

/// Runs `build`, returning its result with the heap bytes and RSS it added.
fn measure_heap<T>(build: impl FnOnce() -> T) -> (T, usize, usize) {
    let heap_before = ALLOCATED_BYTES.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let built = build();
    let heap_after = ALLOCATED_BYTES.load(Ordering::Relaxed);
    let rss_after = rss_bytes();
    (
        built,
        heap_after.saturating_sub(heap_before),
        rss_after.saturating_sub(rss_before),
    )
}

fn report_lookups(map: &NeedleMap, hash: &HashBaseline, workload: &Workload) {
    let mut rates: [Vec<f64>; 6] = Default::default();
    let lookups = workload.hits.len() as f64;
    let mut values = vec![None; workload.hits.len()];
    // Interleaved rounds: the machine is shared, so A and B see the same noise.
    for _ in 0..ROUNDS {
        rates[0].push(lookups / seconds(|| lookup_kelp(map, &workload.hits, true)));
        rates[1].push(lookups / seconds(|| lookup_many(map, &workload.hits, &mut values, true)));
        rates[2].push(lookups / seconds(|| lookup_hash(hash, &workload.hits, true)));
        rates[3].push(lookups / seconds(|| lookup_kelp(map, &workload.misses, false)));
        rates[4].push(lookups / seconds(|| lookup_many(map, &workload.misses, &mut values, false)));
        rates[5].push(lookups / seconds(|| lookup_hash(hash, &workload.misses, false)));
    }
    let [hits, hits_many, hits_hash, misses, misses_many, misses_hash] = rates.map(median);
    report_latency(map, hash, workload);
    println!(
        "lookups per CPU second, hits: kelp get {:.1} M/s, get_many {:.1} M/s, hashmap {:.1} M/s \
         (get/hashmap {:.2}, get_many/hashmap {:.2})",
        hits / 1e6,
        hits_many / 1e6,
        hits_hash / 1e6,
        hits / hits_hash,
        hits_many / hits_hash,
    );
    println!(
        "lookups per CPU second, misses: kelp get {:.1} M/s, get_many {:.1} M/s, hashmap {:.1} M/s \
         (get/hashmap {:.2}, get_many/hashmap {:.2})",
        misses / 1e6,
        misses_many / 1e6,
        misses_hash / 1e6,
        misses / misses_hash,
        misses_many / misses_hash,
    );
}

/// Dependent lookups: each key is chosen by the value the previous lookup returned, so no
/// two lookups overlap in the CPU. This is the time of one lookup alone (a request that waits
/// for its answer), where the loops above measure throughput: independent lookups that the
/// CPU's out-of-order window overlaps (the shorter a lookup's code, the more of them overlap,
/// which favours the HashMap's short probe).
fn report_latency(map: &NeedleMap, hash: &HashBaseline, workload: &Workload) {
    const CHAIN_LOOKUPS: usize = 2_000_000;
    let keys = &workload.hits;
    let mut times = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        times.0.push(seconds(|| {
            chain(keys, CHAIN_LOOKUPS, |key| {
                map.get(key).map(|value| value.offset_units)
            })
        }));
        times.1.push(seconds(|| {
            chain(keys, CHAIN_LOOKUPS, |key| {
                hash.get(&key).map(|value| value.0)
            })
        }));
    }
    let (kelp, baseline) = (median(times.0), median(times.1));
    println!(
        "dependent lookups (hits, each key picked by the previous result): kelp get {:.0} ns, \
         hashmap {:.0} ns per lookup ({:.1} / {:.1} M/s)",
        kelp * 1e9 / CHAIN_LOOKUPS as f64,
        baseline * 1e9 / CHAIN_LOOKUPS as f64,
        CHAIN_LOOKUPS as f64 / kelp / 1e6,
        CHAIN_LOOKUPS as f64 / baseline / 1e6,
    );
}

/// `lookups` lookups of `keys`, the next index derived from the previous lookup's offset.
fn chain(keys: &[u64], lookups: usize, lookup: impl Fn(u64) -> Option<u64>) {
    let mut index = 0usize;
    for step in 0..lookups {
        let offset = lookup(keys[index]).expect("the chain looks up present keys");
        index = (offset as usize ^ step.wrapping_mul(0x9E37_79B9)) % keys.len();
    }
    black_box(index);
}

#[inline(never)] // Its own symbol, so a profiler can count its instructions.
fn lookup_many(map: &NeedleMap, keys: &[u64], values: &mut [Option<NeedleValue>], present: bool) {
    map.get_many(black_box(keys), values);
    let found = values.iter().filter(|value| value.is_some()).count();
    black_box(&values);
    assert_eq!(found, if present { keys.len() } else { 0 });
}

#[inline(never)] // Its own symbol, so a profiler can count its instructions.
fn lookup_kelp(map: &NeedleMap, keys: &[u64], present: bool) {
    let mut found = 0usize;
    let mut offsets = 0u64;
    for &key in keys {
        if let Some(value) = map.get(black_box(key)) {
            found += 1;
            offsets = offsets.wrapping_add(value.offset_units);
        }
    }
    black_box(offsets);
    assert_eq!(found, if present { keys.len() } else { 0 });
}

#[inline(never)] // Its own symbol, so a profiler can count its instructions.
fn lookup_hash(hash: &HashBaseline, keys: &[u64], present: bool) {
    let mut found = 0usize;
    let mut offsets = 0u64;
    for &key in keys {
        if let Some(value) = hash.get(&black_box(key)) {
            found += 1;
            offsets = offsets.wrapping_add(value.0);
        }
    }
    black_box(offsets);
    assert_eq!(found, if present { keys.len() } else { 0 });
}

fn insert_all(entries: &[(u64, NeedleValue)]) -> NeedleMap {
    let mut map = NeedleMap::new();
    for &(key, value) in entries {
        map.insert(key, value);
    }
    map
}

fn insert_all_hash(entries: &[(u64, NeedleValue)]) -> HashBaseline {
    let mut hash = HashBaseline::default();
    for &(key, value) in entries {
        hash.insert(key, (value.offset_units, value.size));
    }
    hash
}

fn write_idx(path: &Path, entries: &[(u64, NeedleValue)]) {
    let entry_bytes = IDX_WIDTH.entry_bytes();
    let mut bytes = vec![0u8; entries.len() * entry_bytes];
    for (&(key, value), out) in entries.iter().zip(bytes.chunks_exact_mut(entry_bytes)) {
        let entry = IdxEntry {
            key,
            offset_units: value.offset_units,
            size: value.size,
        };
        entry.encode(IDX_WIDTH, out).expect("offsets fit 40 bits");
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn read_idx(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The entries of an `.idx` image; a torn tail is a bug of `write_idx` here.
fn decode_idx(bytes: &[u8]) -> impl Iterator<Item = (u64, NeedleValue)> + '_ {
    let (entries, torn) = idx::parse_entries(bytes, IDX_WIDTH);
    assert!(torn.is_none(), "torn .idx: {torn:?}");
    entries.map(|entry| {
        let value = NeedleValue {
            offset_units: entry.offset_units,
            size: entry.size,
        };
        (entry.key, value)
    })
}

fn load_idx(path: &Path) -> NeedleMap {
    NeedleMap::from_sorted_or_not(decode_idx(&read_idx(path)))
}

/// What SeaweedFS does with its in-memory map: one insert or delete per entry.
fn load_idx_hash(path: &Path) -> HashBaseline {
    let mut hash = HashBaseline::default();
    for (key, value) in decode_idx(&read_idx(path)) {
        if value.size == u32::MAX {
            hash.remove(&key);
        } else {
            hash.insert(key, (value.offset_units, value.size));
        }
    }
    hash
}

/// CPU seconds this thread spent in `work`: the machine is shared (2 cores, many
/// processes), so wall time would count the time other processes ran. Rates per "core" below
/// are per CPU second of this thread.
fn seconds(work: impl FnOnce()) -> f64 {
    let start = thread_cpu_seconds();
    let wall = Instant::now();
    work();
    let cpu = thread_cpu_seconds() - start;
    assert!(cpu <= wall.elapsed().as_secs_f64() + 0.01);
    cpu
}

#[repr(C)]
struct Timespec {
    seconds: i64,
    nanoseconds: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

fn thread_cpu_seconds() -> f64 {
    let mut time = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: clock_gettime writes one Timespec (the C layout above, for 64-bit Linux).
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    time.seconds as f64 + time.nanoseconds as f64 * 1e-9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
