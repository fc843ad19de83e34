//! A stand-in for `crate::needle_map::NeedleMap` (built by another part of the project) with
//! the same API, used until that map lands. A `BTreeMap`: correct, ascending, not compact.

use std::collections::BTreeMap;

/// Where a needle is: its offset in 8-byte units and its `.idx` size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedleValue {
    pub offset_units: u64,
    pub size: u32,
}

#[derive(Default, Debug)]
pub struct NeedleMap {
    entries: BTreeMap<u64, NeedleValue>,
}

impl NeedleMap {
    pub fn new() -> Self {
        NeedleMap::default()
    }

    pub fn insert(&mut self, key: u64, value: NeedleValue) -> Option<NeedleValue> {
        self.entries.insert(key, value)
    }

    pub fn get(&self, key: u64) -> Option<NeedleValue> {
        self.entries.get(&key).copied()
    }

    pub fn remove(&mut self, key: u64) -> Option<NeedleValue> {
        self.entries.remove(&key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn memory_bytes(&self) -> usize {
        // A B-tree node holds up to 11 entries of 24 bytes plus overhead; 40 bytes per entry
        // is a fair estimate for a stand-in.
        self.entries.len() * 40
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, NeedleValue)> + '_ {
        self.entries.iter().map(|(key, value)| (*key, *value))
    }
}
