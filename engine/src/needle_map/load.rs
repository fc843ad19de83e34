//! Bulk loading from the entries of an `.idx` file, in file order.

use super::block::Entry;
use super::limits::TOMBSTONE_SIZE;
use super::{Geometry, NeedleMap, NeedleValue};

/// Below this ratio of out-of-order entries to loaded ones, they are applied one by one
/// (patches); above it the whole map is rebuilt in one sorted merge.
const OUT_OF_ORDER_REBUILD_RATIO: usize = 16;

/// Out-of-order entries after which a load that is mostly out of order reserves room for the
/// rest of the input at once.
const OUT_OF_ORDER_RESERVE_AFTER: usize = 1024;

impl NeedleMap {
    /// Builds a map from index entries in file order: the last entry for a key wins and an
    /// entry of size `TOMBSTONE_SIZE` removes the key.
    pub fn from_sorted_or_not(entries: impl Iterator<Item = (u64, NeedleValue)>) -> Self {
        Self::from_sorted_or_not_with_geometry(entries, Geometry::DEFAULT)
    }

    /// `from_sorted_or_not` with another block/segment shape.
    pub fn from_sorted_or_not_with_geometry(
        entries: impl Iterator<Item = (u64, NeedleValue)>,
        geometry: Geometry,
    ) -> Self {
        let mut map = NeedleMap::with_geometry(geometry);
        // Entries with a key above every key loaded so far are appended as they come (the
        // common case: keys from the master's sequencer). Any other entry comes after every
        // appended entry of its key, so it is set aside and applied afterwards, in order.
        let mut out_of_order: Vec<Entry> = Vec::new();
        let mut appended_last: Option<u64> = None;
        let entries_hint = entries.size_hint().0;
        for (seen, (key, value)) in entries.enumerate() {
            if out_of_order.len() == OUT_OF_ORDER_RESERVE_AFTER && out_of_order.len() * 2 > seen {
                // Mostly out of order (random keys): size the buffer once instead of doubling.
                out_of_order.reserve(entries_hint.saturating_sub(seen));
            }
            if appended_last.is_none_or(|last| key > last) {
                if value.size == TOMBSTONE_SIZE {
                    continue; // Removes nothing: no earlier entry has this key.
                }
                let old = map.insert(key, value);
                assert!(old.is_none());
                appended_last = Some(key);
            } else {
                out_of_order.push((key, value));
            }
        }
        if out_of_order.len() * OUT_OF_ORDER_REBUILD_RATIO <= map.len() {
            for (key, value) in out_of_order {
                map.apply(key, value);
            }
            map
        } else {
            map.rebuild_with(out_of_order)
        }
    }

    fn apply(&mut self, key: u64, value: NeedleValue) {
        if value.size == TOMBSTONE_SIZE {
            self.remove(key);
        } else {
            self.insert(key, value);
        }
    }

    /// A new map holding this map's entries overridden by `changes` (in file order).
    fn rebuild_with(self, mut changes: Vec<Entry>) -> NeedleMap {
        // Stable: entries of one key stay in file order, so the last of each run wins.
        changes = sort_stable_by_key(changes);
        let mut rebuilt = NeedleMap::with_geometry(self.geometry);
        let mut old = self.iter().peekable();
        let mut index = 0;
        while index < changes.len() {
            let key = changes[index].0;
            while index + 1 < changes.len() && changes[index + 1].0 == key {
                index += 1;
            }
            let change = changes[index].1;
            index += 1;
            while let Some(&(old_key, old_value)) = old.peek()
                && old_key <= key
            {
                if old_key < key {
                    rebuilt.insert(old_key, old_value);
                }
                old.next();
            }
            if change.size != TOMBSTONE_SIZE {
                rebuilt.insert(key, change);
            }
        }
        for (key, value) in old {
            rebuilt.insert(key, value);
        }
        rebuilt
    }
}

/// Below this many entries a plain stable sort is as fast as the bucket pass.
const BUCKET_SORT_ENTRIES_MIN: usize = 1 << 16;

/// Buckets of the first pass: 2^16 counters (512 KiB) stay in L2 while entries stream by.
const BUCKET_BITS: u32 = 16;

/// Stable sort by key. Large inputs take one pass that scatters entries into 2^16 buckets by
/// the top bits of `key - smallest key` (keys of a volume spread evenly over their range, so
/// buckets are small), then a stable sort of each bucket while it is in cache: a few times
/// faster than a comparison sort of the whole array.
pub(super) fn sort_stable_by_key(mut entries: Vec<Entry>) -> Vec<Entry> {
    if entries.len() < BUCKET_SORT_ENTRIES_MIN {
        entries.sort_by_key(|e| e.0);
        return entries;
    }
    let key_min = entries.iter().map(|e| e.0).min().expect("not empty");
    let key_max = entries.iter().map(|e| e.0).max().expect("not empty");
    let shift = super::block::bits_needed(key_max - key_min).saturating_sub(BUCKET_BITS);
    let bucket_of = |key: u64| ((key - key_min) >> shift) as usize;
    let mut starts = vec![0usize; (1 << BUCKET_BITS) + 1];
    for entry in &entries {
        starts[bucket_of(entry.0) + 1] += 1;
    }
    for bucket in 1..starts.len() {
        starts[bucket] += starts[bucket - 1];
    }
    let mut next = starts.clone();
    let placeholder = (
        0,
        NeedleValue {
            offset_units: 0,
            size: 0,
        },
    );
    let mut sorted = vec![placeholder; entries.len()];
    for entry in entries {
        let bucket = bucket_of(entry.0);
        sorted[next[bucket]] = entry;
        next[bucket] += 1;
    }
    for bucket in starts.windows(2) {
        sorted[bucket[0]..bucket[1]].sort_by_key(|e| e.0);
    }
    sorted
}
