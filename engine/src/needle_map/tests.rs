//! The needle map against a `BTreeMap` reference, plus edge cases.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Geometry, NeedleMap, NeedleValue, TOMBSTONE_SIZE};

type Reference = BTreeMap<u64, NeedleValue>;

const TINY: Geometry = Geometry {
    block_entries_max: 3,
    block_patches_max: 2,
    segment_blocks_max: 2,
};

fn value(offset_units: u64, size: u32) -> NeedleValue {
    NeedleValue { offset_units, size }
}

/// Checks every structural invariant and that the map holds exactly `reference`.
fn check(map: &NeedleMap, reference: &Reference) {
    check_structure(map);
    assert_eq!(map.len(), reference.len());
    assert_eq!(map.is_empty(), reference.is_empty());
    let entries: Vec<_> = map.iter().collect();
    let expected: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(entries, expected);
    for (key, value) in reference {
        assert_eq!(map.get(*key), Some(*value), "key {key}");
    }
    let mut probes: Vec<u64> = reference.keys().copied().collect();
    probes.extend(reference.keys().map(|key| key.wrapping_add(1)));
    probes.extend([0, 1, u64::MAX, 1 << 56]);
    let mut values = vec![None; probes.len()];
    map.get_many(&probes, &mut values);
    for (key, value) in probes.iter().zip(&values) {
        assert_eq!(*value, reference.get(key).copied(), "get_many of {key}");
    }
    for (key, _) in reference.iter().take(64) {
        for probe in [key.wrapping_sub(1), key.wrapping_add(1)] {
            assert_eq!(
                map.get(probe),
                reference.get(&probe).copied(),
                "probe {probe}"
            );
        }
    }
    if !reference.is_empty() {
        assert!(map.memory_bytes() > 0);
    }
    let stride = (probes.len() / 16).max(1);
    for from in probes.iter().step_by(stride) {
        let entries: Vec<_> = map.iter_from(*from).collect();
        let expected: Vec<_> = reference.range(*from..).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(entries, expected, "iter_from({from})");
    }
}

fn check_structure(map: &NeedleMap) {
    let geometry = map.geometry;
    assert_eq!(map.segments.len(), map.segment_bounds.len());
    assert_eq!(map.segments.is_empty(), map.tail_start == 0);
    assert!(map.segment_bounds.first().is_none_or(|b| *b == 0));
    assert!(map.segment_bounds.windows(2).all(|w| w[0] < w[1]));
    assert!(map.tail.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(map.tail.iter().all(|e| e.0 >= map.tail_start));
    assert!(map.tail.len() <= usize::from(geometry.block_entries_max));
    let mut all_bounds = Vec::new();
    for (segment, bound) in map.segments.iter().zip(&map.segment_bounds) {
        assert!(!segment.blocks.is_empty());
        assert!(segment.blocks.len() <= usize::from(geometry.segment_blocks_max));
        assert_eq!(segment.bounds.len(), segment.blocks.len() + 1);
        assert_eq!(segment.bounds[0], *bound);
        for (bound, block) in segment.bounds.iter().zip(&segment.blocks) {
            assert!(*bound <= block.base_key());
        }
        all_bounds.extend(segment.bounds[..segment.blocks.len()].iter().copied());
    }
    assert!(all_bounds.windows(2).all(|w| w[0] < w[1]));
    // Each segment's sentinel is where the next one starts (the last: `tail_start`).
    for (index, segment) in map.segments.iter().enumerate() {
        let end = map
            .segment_bounds
            .get(index + 1)
            .copied()
            .unwrap_or(map.tail_start);
        assert_eq!(segment.bounds[segment.blocks.len()], end);
    }
    map.directory.check(&map.segments, map.tail_start);
    let blocks = map.segments.iter().flat_map(|s| s.blocks.iter());
    for (index, block) in blocks.enumerate() {
        assert!(block.packed_count() <= usize::from(geometry.block_entries_max));
        assert!(block.patch_count() < usize::from(geometry.block_patches_max));
        let end = all_bounds.get(index + 1).copied().unwrap_or(map.tail_start);
        let mut entries = Vec::new();
        block.materialize_into(&mut entries);
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            entries
                .iter()
                .all(|e| all_bounds[index] <= e.0 && e.0 < end)
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u64, NeedleValue),
    Remove(u64),
    Get(u64),
    /// Replace the map by a bulk load of these entries (tombstones included).
    Load(Vec<(u64, NeedleValue)>),
}

fn key_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..200,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(0u64),
        1 => (1u64 << 56) - 3..(1u64 << 56) + 3,
    ]
}

fn value_strategy() -> impl Strategy<Value = NeedleValue> {
    prop_oneof![
        3 => (0u64..10_000, 0u32..5_000).prop_map(|(o, s)| value(o, s)),
        1 => (0u64..1 << 40, 0u32..TOMBSTONE_SIZE).prop_map(|(o, s)| value(o, s)),
        1 => Just(value((1 << 40) - 1, TOMBSTONE_SIZE - 1)),
    ]
}

fn load_entry_strategy() -> impl Strategy<Value = (u64, NeedleValue)> {
    let tombstone = Just(value(0, TOMBSTONE_SIZE));
    (
        key_strategy(),
        prop_oneof![4 => value_strategy(), 1 => tombstone],
    )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key_strategy(), value_strategy()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key_strategy().prop_map(Op::Remove),
        2 => key_strategy().prop_map(Op::Get),
        1 => prop::collection::vec(load_entry_strategy(), 0..200).prop_map(Op::Load),
    ]
}

fn geometry_strategy() -> impl Strategy<Value = Geometry> {
    prop_oneof![
        Just(TINY),
        Just(Geometry::DEFAULT),
        (2u16..8, 1u16..4, 2u16..4).prop_map(|(b, p, s)| Geometry {
            block_entries_max: b,
            block_patches_max: p,
            segment_blocks_max: s,
        }),
    ]
}

fn reference_load(entries: &[(u64, NeedleValue)]) -> Reference {
    let mut reference = Reference::new();
    for &(key, value) in entries {
        if value.size == TOMBSTONE_SIZE {
            reference.remove(&key);
        } else {
            reference.insert(key, value);
        }
    }
    reference
}

fn run_ops(geometry: Geometry, ops: &[Op]) {
    let mut map = NeedleMap::with_geometry(geometry);
    let mut reference = Reference::new();
    for op in ops {
        match op {
            Op::Insert(key, value) => {
                assert_eq!(map.insert(*key, *value), reference.insert(*key, *value));
            }
            Op::Remove(key) => assert_eq!(map.remove(*key), reference.remove(key)),
            Op::Get(key) => assert_eq!(map.get(*key), reference.get(key).copied()),
            Op::Load(entries) => {
                map =
                    NeedleMap::from_sorted_or_not_with_geometry(entries.iter().copied(), geometry);
                reference = reference_load(entries);
            }
        }
        check_structure(&map);
        assert_eq!(map.len(), reference.len());
    }
    check(&map, &reference);
}

/// Needles appended back to back, as a volume writes them: keys increase by `gaps`, each
/// offset follows the previous needle (version-3 layout with padding).
fn appended(gaps: &[u64], sizes: &[u32]) -> Vec<(u64, NeedleValue)> {
    let mut key = 0u64;
    let mut offset_units = 1u64;
    gaps.iter()
        .zip(sizes)
        .map(|(gap, size)| {
            key += gap;
            let entry = (key, value(offset_units, *size));
            offset_units += (u64::from(*size) + 28) / 8 + 1;
            entry
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of inserts, removes, lookups and bulk loads gives the same answers as a
    /// BTreeMap, and the map's structure stays valid after every step.
    #[test]
    fn random_operations_match_reference(
        geometry in geometry_strategy(),
        ops in prop::collection::vec(op_strategy(), 0..400),
    ) {
        run_ops(geometry, &ops);
    }

    /// A bulk load of entries in any order (duplicates, tombstones) keeps the last entry of
    /// each key and drops tombstoned keys, for every shape.
    #[test]
    fn bulk_load_keeps_last_entry(
        geometry in geometry_strategy(),
        entries in prop::collection::vec(load_entry_strategy(), 0..600),
    ) {
        let map = NeedleMap::from_sorted_or_not_with_geometry(entries.iter().copied(), geometry);
        check(&map, &reference_load(&entries));
    }

    /// Needles appended back to back (the derived-size encoding), then updated and removed at
    /// random, read back exactly.
    #[test]
    fn appended_needles_then_changes_match_reference(
        geometry in geometry_strategy(),
        gaps in prop::collection::vec(1u64..5, 1..500),
        sizes in prop::collection::vec(prop_oneof![0u32..64, 0u32..100_000, Just(1024u32)], 500),
        ops in prop::collection::vec(op_strategy(), 0..100),
    ) {
        let entries = appended(&gaps, &sizes);
        let mut map = NeedleMap::from_sorted_or_not_with_geometry(entries.iter().copied(), geometry);
        let mut reference = reference_load(&entries);
        check(&map, &reference);
        for op in &ops {
            match op {
                Op::Insert(key, value) => {
                    prop_assert_eq!(map.insert(*key, *value), reference.insert(*key, *value));
                }
                Op::Remove(key) => prop_assert_eq!(map.remove(*key), reference.remove(key)),
                Op::Get(key) => prop_assert_eq!(map.get(*key), reference.get(key).copied()),
                Op::Load(_) => {}
            }
        }
        check(&map, &reference);
    }
}

/// An empty map answers every query with nothing.
#[test]
fn empty_map_is_empty() {
    let mut map = NeedleMap::new();
    assert_eq!(map.get(0), None);
    assert_eq!(map.get(u64::MAX), None);
    assert_eq!(map.remove(7), None);
    assert_eq!(map.len(), 0);
    assert!(map.is_empty());
    assert_eq!(map.iter().count(), 0);
    let loaded = NeedleMap::from_sorted_or_not(std::iter::empty());
    assert!(loaded.is_empty());
}

/// Extreme keys, 40-bit offsets and the largest live size survive sealing into blocks.
#[test]
fn extreme_values_round_trip() {
    let mut map = NeedleMap::with_geometry(TINY);
    let mut reference = Reference::new();
    let keys = [
        0,
        1,
        1 << 56,
        (1 << 56) + 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    for (i, key) in keys.into_iter().enumerate() {
        let v = if i % 2 == 0 {
            value((1 << 40) - 1, TOMBSTONE_SIZE - 1)
        } else {
            value(0, 0)
        };
        assert_eq!(map.insert(key, v), None);
        reference.insert(key, v);
    }
    check(&map, &reference);
    assert_eq!(map.remove(u64::MAX), reference.remove(&u64::MAX));
    assert_eq!(map.remove(0), reference.remove(&0));
    check(&map, &reference);
}

/// Removing every key, in any order, empties the map and it can be filled again.
#[test]
fn remove_all_then_refill() {
    let mut map = NeedleMap::with_geometry(TINY);
    let mut reference = Reference::new();
    for key in 0..200u64 {
        map.insert(key * 3, value(key, key as u32));
        reference.insert(key * 3, value(key, key as u32));
    }
    check(&map, &reference);
    for key in (0..200u64).rev().step_by(2).chain((0..200u64).step_by(2)) {
        assert_eq!(map.remove(key * 3), reference.remove(&(key * 3)));
        check_structure(&map);
    }
    check(&map, &reference);
    assert!(map.is_empty());
    for key in (0..100u64).rev() {
        map.insert(key, value(key, 1));
        reference.insert(key, value(key, 1));
    }
    check(&map, &reference);
}

/// A bulk load where a tombstone precedes the key's only put keeps the put, and a tombstone
/// after a put removes it.
#[test]
fn bulk_load_tombstone_order_matters() {
    let tombstone = value(0, TOMBSTONE_SIZE);
    let entries = [
        (5, tombstone),
        (5, value(10, 100)),
        (9, value(20, 100)),
        (3, value(30, 100)),
        (9, tombstone),
        (3, value(40, 7)),
    ];
    let map = NeedleMap::from_sorted_or_not(entries.into_iter());
    let loaded: Vec<_> = map.iter().collect();
    assert_eq!(loaded, vec![(3, value(40, 7)), (5, value(10, 100))]);
}

/// Inserting a tombstone is a caller bug, not a silent removal.
#[test]
#[should_panic(expected = "tombstone")]
fn insert_of_tombstone_panics() {
    NeedleMap::new().insert(1, value(1, TOMBSTONE_SIZE));
}

/// Needles appended back to back by a volume cost few bytes each: sealed blocks pack a key
/// delta, an offset delta and the 3-bit padding residual per needle.
#[test]
fn appended_needles_are_compact() {
    let count = 200_000;
    let gaps: Vec<u64> = (0..count).map(|i| 1 + (i * 7919) % 5).collect();
    let sizes: Vec<u32> = (0..count)
        .map(|i| 1 + ((i * 104_729) % 16_384) as u32)
        .collect();
    let entries = appended(&gaps, &sizes);
    let map = NeedleMap::from_sorted_or_not(entries.iter().copied());
    assert_eq!(map.len(), count as usize);
    let bytes_per_needle = map.memory_bytes() as f64 / count as f64;
    assert!(
        bytes_per_needle < 6.0,
        "{bytes_per_needle} bytes per needle"
    );
    for (key, value) in entries.iter().step_by(97) {
        assert_eq!(map.get(*key), Some(*value));
    }
    // Such blocks are read by the compact path (constant field widths).
    let blocks: Vec<_> = map.segments.iter().flat_map(|s| s.blocks.iter()).collect();
    let compact = blocks.iter().filter(|b| b.takes_compact_path()).count();
    assert!(
        compact * 10 >= blocks.len() * 9,
        "{compact} of {} blocks compact",
        blocks.len()
    );
}

/// The bucket sort used by bulk loads orders by key and keeps entries of one key in input
/// order (the last one must win), for inputs large enough to take the bucket pass.
#[test]
fn bucket_sort_is_stable() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for key_range in [1_000u64, 1 << 40, u64::MAX] {
        let entries: Vec<_> = (0..100_000u64)
            .map(|sequence| {
                let key = rng.random_range(0..key_range);
                (key, value(sequence, 0))
            })
            .collect();
        let mut expected = entries.clone();
        expected.sort_by_key(|e| e.0);
        assert_eq!(super::load::sort_stable_by_key(entries), expected);
    }
}

/// A large bulk load in random order (the bucket-sort and rebuild path), with rewrites of
/// keys and tombstones, keeps the last entry of each key.
#[test]
fn large_random_bulk_load_keeps_last_entry() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let entries: Vec<_> = (0..150_000u64)
        .map(|sequence| {
            let key = rng.random_range(0..100_000u64) * 0x9E37_79B9;
            let size = if rng.random_ratio(1, 10) {
                TOMBSTONE_SIZE
            } else {
                rng.random_range(0..20_000)
            };
            (key, value(sequence, size))
        })
        .collect();
    let map = NeedleMap::from_sorted_or_not(entries.iter().copied());
    check(&map, &reference_load(&entries));
}

/// Sorted, distinct keys for one block: from a start anywhere in u64 (0 and the top of the
/// range included), gaps from dense to the widest a block allows.
fn block_keys_strategy() -> impl Strategy<Value = Vec<u64>> {
    let start = prop_oneof![Just(0u64), any::<u64>(), Just(u64::MAX - 1000)];
    let gap = prop_oneof![4 => 1u64..9, 1 => 1u64..1 << 20, 1 => 1u64..1 << 40];
    (start, prop::collection::vec(gap, 0..300)).prop_map(|(start, gaps)| {
        let mut keys = vec![start];
        for gap in gaps {
            let next = keys[keys.len() - 1].saturating_add(gap);
            if next == keys[keys.len() - 1] || next - keys[0] >= 1 << 55 {
                break;
            }
            keys.push(next);
        }
        keys
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A block packs any sorted entries (appended needles, arbitrary offsets and sizes up to
    /// the widest fields) so that `get` finds every key's value and no key it does not hold.
    #[test]
    fn block_round_trips_any_entries(
        keys in block_keys_strategy(),
        appended_sizes in prop::collection::vec(0u32..100_000, 300),
        values in prop::collection::vec(value_strategy(), 300),
        back_to_back in any::<bool>(),
    ) {
        let entries: Vec<(u64, NeedleValue)> = if back_to_back {
            let mut offset_units = 1u64;
            keys.iter().zip(&appended_sizes).map(|(key, size)| {
                let entry = (*key, value(offset_units, *size));
                offset_units += (u64::from(*size) + 28) / 8 + 1;
                entry
            }).collect()
        } else {
            keys.iter().copied().zip(values.iter().copied()).collect()
        };
        let block = super::block::Block::encode(&entries);
        prop_assert_eq!(block.packed_count(), entries.len());
        let mut decoded = Vec::new();
        block.materialize_into(&mut decoded);
        prop_assert_eq!(&decoded, &entries);
        for (key, value) in &entries {
            prop_assert_eq!(block.get(*key), Some(*value));
            for absent in [key.wrapping_sub(1), key.wrapping_add(1), !key] {
                if entries.binary_search_by_key(&absent, |e| e.0).is_err() {
                    prop_assert_eq!(block.get(absent), None, "absent key {}", absent);
                }
            }
        }
    }
}

/// Blocks of the directory-tests' maps in total.
fn block_count(map: &NeedleMap) -> usize {
    map.segments.iter().map(|s| s.blocks.len()).sum()
}

/// A map grown by appends rebuilds its directory as it grows: the directory stays exact,
/// within `BUCKETS_PER_BLOCK_MAX` buckets per block, and for evenly spread keys nearly
/// every bucket is settled by the one-compare step (the fast path is what lookups take).
#[test]
fn directory_follows_appends() {
    let geometry = Geometry {
        block_entries_max: 16,
        block_patches_max: 4,
        segment_blocks_max: 8,
    };
    let mut map = NeedleMap::with_geometry(geometry);
    let mut reference = Reference::new();
    let mut key = 1_000_000u64;
    for i in 0..20_000u64 {
        key += 1 + (i * 7919) % 8;
        map.insert(key, value(i, 100));
        reference.insert(key, value(i, 100));
        if i % 997 == 0 {
            check_structure(&map);
        }
    }
    check(&map, &reference);
    let blocks = block_count(&map);
    let buckets = map.directory.buckets();
    assert!(blocks > 1000, "{blocks} blocks");
    assert!(
        buckets <= 8 * blocks + 64,
        "{buckets} buckets for {blocks} blocks"
    );
    let cold = map.directory.cold_buckets();
    assert!(cold * 20 < buckets, "{cold} of {buckets} buckets cold");
}

/// Keys in far-apart clusters (a skewed distribution: most buckets span many blocks or
/// none) and keys up to u64::MAX are still all found, and absent keys are not.
#[test]
fn directory_skewed_keys_and_top_of_range() {
    let mut map = NeedleMap::with_geometry(TINY);
    let mut reference = Reference::new();
    let starts = [0u64, 1 << 20, 1 << 40, (1 << 63) + 5, u64::MAX - 300];
    for (cluster, start) in starts.into_iter().enumerate() {
        for i in 0..60u64 {
            let key = start.saturating_add(i * (1 + cluster as u64));
            let v = value(i, cluster as u32);
            assert_eq!(map.insert(key, v), reference.insert(key, v));
        }
        check(&map, &reference);
    }
    for key in [u64::MAX, u64::MAX - 1, u64::MAX - 300] {
        let v = value(7, 7);
        assert_eq!(map.insert(key, v), reference.insert(key, v));
    }
    check(&map, &reference);
    for probe in [u64::MAX - 2, 1 << 62, (1 << 40) - 1, 3 << 20] {
        assert_eq!(
            map.get(probe),
            reference.get(&probe).copied(),
            "probe {probe}"
        );
    }
}

/// A map whose blocks were split (out-of-order inserts), merged (removals) and whose
/// segments were split and removed keeps an exact directory: every key and its neighbours
/// read the same as a BTreeMap after each phase.
#[test]
fn directory_after_splits_and_merges() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let geometry = Geometry {
        block_entries_max: 8,
        block_patches_max: 3,
        segment_blocks_max: 4,
    };
    let mut map = NeedleMap::with_geometry(geometry);
    let mut reference = Reference::new();
    for key in (0..4000u64).map(|i| i * 10) {
        map.insert(key, value(key, 1));
        reference.insert(key, value(key, 1));
    }
    check(&map, &reference);
    // Out-of-order inserts into sealed blocks: rewrites split blocks and segments.
    for _ in 0..6000 {
        let key = rng.random_range(0..40_000u64);
        let v = value(key, 2);
        assert_eq!(map.insert(key, v), reference.insert(key, v));
    }
    check(&map, &reference);
    // Removals: blocks shrink and merge, segments empty out.
    for _ in 0..12_000 {
        let key = rng.random_range(0..40_000u64);
        assert_eq!(map.remove(key), reference.remove(&key));
    }
    check(&map, &reference);
    let keys: Vec<u64> = reference.keys().copied().collect();
    for key in keys.iter().take(keys.len() - 5) {
        assert_eq!(map.remove(*key), reference.remove(key));
    }
    check(&map, &reference);
}
