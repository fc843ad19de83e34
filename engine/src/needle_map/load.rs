//! Bulk loading from the entries of an `.idx` file, in file order.

use super::block::Entry;
use super::limits::TOMBSTONE_SIZE;
use super::{Geometry, NeedleMap, NeedleValue};

/// Below this ratio of out-of-order entries to loaded ones, they are applied one by one
/// (patches); above it the whole map is rebuilt in one sorted merge.
const OUT_OF_ORDER_REBUILD_RATIO: usize = 16;

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
        for (key, value) in entries {
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
        changes.sort_by_key(|e| e.0);
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
