//! Key -> (offset, size) index of a volume, built for billions of needles.
//!
//! Keys assigned by the master mostly increase, so the map is a sorted sequence of compressed
//! blocks (see `block.rs`) plus an uncompressed `tail` that takes the appends:
//!
//! - `tail`: sorted entries with keys `>= tail_start`. When it holds more than
//!   `block_entries_max`, the first `block_entries_max` are sealed into a block.
//! - blocks: each covers the key range `[bound, next bound)`; the first covers from 0, the
//!   last up to `tail_start`. A change to a key in a block's range (an update, a removal, an
//!   out-of-order insert) is kept as a sorted patch in that block; a block with
//!   `block_patches_max` patches is re-encoded (split when it grows, merged with a neighbour
//!   when it shrinks).
//! - segments: blocks are grouped in segments of at most `segment_blocks_max`, so a split or
//!   removal moves a bounded number of block headers, never the whole map.
//!
//! A lookup is a short straight-line path, so the CPU overlaps many independent lookups:
//! the radix directory (`directory.rs`, a cache-resident `u32` per key bucket) names the
//! block, settled by one branch-free compare with the next block's bound while both
//! candidate headers start loading; the block's 64-byte header says where its keys are; a
//! fixed-step search of the key window around the interpolated guess, then the value (see
//! `block.rs`; blocks of a volume's needles take a path with constant field widths). Buckets
//! the directory cannot settle fall back to interpolated searches of the segment bounds and
//! of one segment's block bounds (`search.rs`). `get_many` also prefetches each stage's
//! memory for a group of keys before using it.
//!
//! Memory: a 64-byte header and an 8-byte bound per `block_entries_max` needles, 2-4
//! directory buckets of 4 bytes per block, plus the packed fields; needles appended back to
//! back by a volume take about 5.8 bytes each (BENCHMARKS.md).

mod block;
mod directory;
mod limits;
mod load;
mod search;
#[cfg(test)]
mod tests;

use std::ops::Range;

use block::{Block, Entry};
use directory::{Directory, Found};
pub use limits::{
    BLOCK_ENTRIES_MAX, BLOCK_PATCHES_MAX, Geometry, LOOKUP_GROUP_MAX, OFFSET_UNITS_BITS_MAX,
    SEGMENT_BLOCKS_MAX, TOMBSTONE_SIZE,
};

/// Where a needle is: its offset in 8-byte units (40 bits used) and its size field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeedleValue {
    pub offset_units: u64,
    pub size: u32,
}

pub struct NeedleMap {
    geometry: Geometry,
    /// `segment_bounds[i]` is where segment `i` starts; `segment_bounds[0] == 0`.
    segment_bounds: Vec<u64>,
    /// Interpolates a key to an index in `segment_bounds`.
    segment_guess: search::Guess,
    segments: Vec<Segment>,
    tail: Vec<Entry>,
    /// Keys `>= tail_start` live in `tail`; 0 when there are no blocks.
    tail_start: u64,
    /// Live entries.
    live: usize,
    /// Key -> block for the lookups (see `directory.rs`).
    directory: Directory,
}

struct Segment {
    blocks: Vec<Block>,
    /// `bounds[i]` is where the key range of `blocks[i]` starts (at most its smallest key);
    /// ascending, the first equals the segment's bound. One more, the sentinel, is where the
    /// segment ends: the next segment's bound, or `tail_start` for the last segment (so a
    /// lookup compares a key with the bound after its block without a branch).
    bounds: Vec<u64>,
    /// Interpolates `key - segment bound` to an index in `blocks`.
    guess: search::Guess,
}

impl Segment {
    fn with_capacity(blocks_max: usize) -> Segment {
        Segment {
            blocks: Vec::with_capacity(blocks_max),
            bounds: Vec::with_capacity(blocks_max + 1),
            guess: search::Guess::default(),
        }
    }

    /// Called after every change of the blocks or their bounds: O(blocks), cheap next to the
    /// block encoding that comes with any such change.
    fn refresh_index(&mut self) {
        let blocks = self.blocks.len();
        assert_eq!(
            self.bounds.len(),
            blocks + 1,
            "one bound per block plus the sentinel"
        );
        let first = self.bounds[0];
        let last = self.bounds[blocks - 1];
        self.guess = search::Guess::new(last - first, blocks);
    }

    /// The last block whose bound is at or below `key` (0 when none is).
    fn block_at_or_below(&self, key: u64) -> usize {
        self.bounds[..self.blocks.len()]
            .partition_point(|bound| *bound <= key)
            .saturating_sub(1)
    }
}

impl Default for NeedleMap {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NeedleMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeedleMap")
            .field("len", &self.live)
            .field("segments", &self.segments.len())
            .field("tail", &self.tail.len())
            .finish()
    }
}

impl NeedleMap {
    pub fn new() -> Self {
        Self::with_geometry(Geometry::DEFAULT)
    }

    /// A map with another block/segment shape (tests use tiny ones; benchmarks compare).
    pub fn with_geometry(geometry: Geometry) -> Self {
        geometry.assert_valid();
        NeedleMap {
            geometry,
            segment_bounds: Vec::new(),
            segment_guess: search::Guess::default(),
            segments: Vec::new(),
            tail: Vec::new(),
            tail_start: 0,
            live: 0,
            directory: Directory::new(geometry.segment_blocks_max),
        }
    }

    /// Sets `key -> value`; returns the value it replaces. `value.size` must not be
    /// `TOMBSTONE_SIZE` (use `remove`) and `value.offset_units` must fit 40 bits.
    ///
    /// Cost: a lookup plus a patch, or an append to the tail. Sealing (one insert in
    /// `block_entries_max`) encodes a block and writes its few directory buckets; a rewrite
    /// (one change in `block_patches_max`) re-encodes a block and rewrites the directory
    /// over its segment, O(segment_blocks_max). Worst case O(blocks): a segment split or
    /// removal, or a directory rebuild, each amortised over the many inserts between them
    /// (see `directory.rs`).
    pub fn insert(&mut self, key: u64, value: NeedleValue) -> Option<NeedleValue> {
        assert!(
            value.size != TOMBSTONE_SIZE,
            "insert of a tombstone for key {key}"
        );
        assert!(
            value.offset_units >> OFFSET_UNITS_BITS_MAX == 0,
            "offset beyond 40 bits"
        );
        let old = if key >= self.tail_start {
            self.tail_insert(key, value)
        } else {
            let (segment, block) = self.locate(key);
            let target = &mut self.segments[segment].blocks[block];
            let old = target.patch_put(key, value);
            self.rewrite_if_full(segment, block);
            old
        };
        if old.is_none() {
            self.live += 1;
        }
        old
    }

    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<NeedleValue> {
        let value = self.get_or_absent(key);
        (value.size != TOMBSTONE_SIZE).then_some(value)
    }

    /// `get` with `block::ABSENT` for a missing key: every path returns its value in
    /// registers, so the caller's loop keeps no `Option` in memory.
    #[inline(always)]
    fn get_or_absent(&self, key: u64) -> NeedleValue {
        if key >= self.tail_start {
            return self.tail_get(key);
        }
        match self.directory.find(&self.segments, key) {
            // SAFETY: `Directory::find` returns the indices of an existing block.
            Found::Block(segment, block) => unsafe {
                debug_assert_eq!((segment, block), self.locate_searched(key));
                let segment = self.segments.get_unchecked(segment);
                segment.blocks.get_unchecked(block).get_or_absent(key)
            },
            Found::Cold => self.get_cold(key),
        }
    }

    /// `get_or_absent` of a key whose directory bucket spans more than two blocks.
    #[inline(never)]
    fn get_cold(&self, key: u64) -> NeedleValue {
        let (segment, block) = self.locate_searched(key);
        self.segments[segment].blocks[block].get_or_absent(key)
    }

    /// `get_or_absent` of a key in the tail (the last, not yet sealed entries).
    #[inline(never)]
    fn tail_get(&self, key: u64) -> NeedleValue {
        match self.tail.binary_search_by_key(&key, |e| e.0) {
            Ok(index) => self.tail[index].1,
            Err(_) => block::ABSENT,
        }
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&mut self, key: u64) -> Option<NeedleValue> {
        let old = if key >= self.tail_start {
            let index = self.tail.binary_search_by_key(&key, |e| e.0).ok()?;
            Some(self.tail.remove(index).1)
        } else {
            let (segment, block) = self.locate(key);
            let old = self.segments[segment].blocks[block].patch_remove(key);
            self.rewrite_if_full(segment, block);
            old
        };
        if old.is_some() {
            assert!(self.live > 0);
            self.live -= 1;
        }
        old
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Heap bytes the map owns, including unused vector capacity. Walks every block: O(blocks).
    pub fn memory_bytes(&self) -> usize {
        let segments: usize = self
            .segments
            .iter()
            .map(|segment| {
                segment.blocks.capacity() * size_of::<Block>()
                    + segment.bounds.capacity() * size_of::<u64>()
                    + segment.blocks.iter().map(Block::heap_bytes).sum::<usize>()
            })
            .sum();
        segments
            + self.segments.capacity() * size_of::<Segment>()
            + self.segment_bounds.capacity() * size_of::<u64>()
            + self.tail.capacity() * size_of::<Entry>()
            + self.directory.heap_bytes()
    }

    /// All live entries in ascending key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            map: self,
            segment: 0,
            block: 0,
            buffer: Vec::new(),
            position: 0,
            tail_done: false,
            from: 0,
        }
    }

    /// The live entries with keys `>= from`, in ascending key order: a cursor for work done
    /// in bounded steps (a compaction's copy), costing one block's decoding to start.
    pub fn iter_from(&self, from: u64) -> Iter<'_> {
        let mut iter = self.iter();
        iter.from = from;
        if from >= self.tail_start {
            let start = self.tail.partition_point(|(key, _)| *key < from);
            iter.segment = self.segments.len();
            iter.buffer.extend_from_slice(&self.tail[start..]);
            iter.tail_done = true;
        } else {
            assert!(
                !self.segments.is_empty(),
                "keys below tail_start are in blocks"
            );
            (iter.segment, iter.block) = self.locate(from);
        }
        iter
    }

    /// Indices of the segment and block whose range holds `key` (`key < tail_start`).
    #[inline(always)]
    fn locate(&self, key: u64) -> (usize, usize) {
        match self.directory.find(&self.segments, key) {
            Found::Block(segment, block) => {
                debug_assert_eq!((segment, block), self.locate_searched(key));
                (segment, block)
            }
            Found::Cold => self.locate_searched(key),
        }
    }

    /// `locate` by interpolated searches of the segment bounds and the segment's block bounds.
    #[inline]
    fn locate_searched(&self, key: u64) -> (usize, usize) {
        let segment = self.locate_segment(key);
        let guess = self.guess_block(segment, key);
        (segment, self.locate_block(segment, guess, key))
    }

    #[inline(always)]
    fn locate_segment(&self, key: u64) -> usize {
        debug_assert!(key < self.tail_start);
        let count = self.segment_bounds.len();
        let guess = self.segment_guess.index(key, count);
        search::last_bound_at_or_below(count, guess, key, |i| self.segment_bounds[i])
    }

    #[inline(always)]
    fn guess_block(&self, segment: usize, key: u64) -> usize {
        let delta = key - self.segment_bounds[segment];
        let blocks = &self.segments[segment].blocks;
        self.segments[segment].guess.index(delta, blocks.len())
    }

    #[inline(always)]
    fn locate_block(&self, segment: usize, guess: usize, key: u64) -> usize {
        let segment = &self.segments[segment];
        let bounds = &segment.bounds;
        search::last_bound_at_or_below(segment.blocks.len(), guess, key, |i| bounds[i])
    }

    /// `values[i] = self.get(keys[i])` for every `i`. Works through the keys in groups of
    /// `LOOKUP_GROUP_MAX`, prefetching each stage's memory for the whole group before using
    /// it, so the cache misses of a group overlap instead of following one another.
    pub fn get_many(&self, keys: &[u64], values: &mut [Option<NeedleValue>]) {
        assert_eq!(keys.len(), values.len(), "one value slot per key");
        let groups = keys.chunks(LOOKUP_GROUP_MAX);
        for (keys, values) in groups.zip(values.chunks_mut(LOOKUP_GROUP_MAX)) {
            self.get_group(keys, values);
        }
    }

    fn get_group(&self, keys: &[u64], values: &mut [Option<NeedleValue>]) {
        assert!(keys.len() <= LOOKUP_GROUP_MAX);
        const IN_TAIL: usize = usize::MAX;
        let mut located = [(IN_TAIL, 0usize); LOOKUP_GROUP_MAX];
        // Stage 1: the bounds are mostly in cache; start loading each key's block header.
        for (slot, &key) in located.iter_mut().zip(keys) {
            if key < self.tail_start {
                *slot = self.locate(key);
                prefetch(&self.segments[slot.0].blocks[slot.1]);
            }
        }
        // Stage 2: with the headers arriving, start loading each key's records.
        for (slot, &key) in located.iter().zip(keys) {
            if slot.0 != IN_TAIL {
                self.segments[slot.0].blocks[slot.1].prefetch_records(key);
            }
        }
        for ((slot, &key), value) in located.iter().zip(keys).zip(values) {
            *value = if slot.0 == IN_TAIL {
                self.get(key)
            } else {
                self.segments[slot.0].blocks[slot.1].get(key)
            };
        }
    }

    fn tail_insert(&mut self, key: u64, value: NeedleValue) -> Option<NeedleValue> {
        if self.tail.last().is_none_or(|last| last.0 < key) {
            self.tail.push((key, value));
            self.seal_if_full();
            return None;
        }
        match self.tail.binary_search_by_key(&key, |e| e.0) {
            Ok(index) => Some(std::mem::replace(&mut self.tail[index].1, value)),
            Err(index) => {
                self.tail.insert(index, (key, value));
                self.seal_if_full();
                None
            }
        }
    }

    /// Seals the first `block_entries_max` tail entries into blocks once the tail holds more.
    /// Keeping one entry back means the new `tail_start` (last sealed key + 1) cannot overflow.
    fn seal_if_full(&mut self) {
        let per_block = usize::from(self.geometry.block_entries_max);
        if self.tail.len() <= per_block {
            return;
        }
        let (sealed, blocks) = self.encode_seal(per_block);
        let new_tail_start = self.tail[sealed - 1].0 + 1;
        assert!(new_tail_start <= self.tail[sealed].0);
        self.tail.drain(..sealed);
        let first_bound = self.tail_start;
        for (i, block) in blocks.into_iter().enumerate() {
            let bound = if i == 0 {
                first_bound
            } else {
                block.base_key()
            };
            self.push_block(bound, block);
        }
        self.tail_start = new_tail_start;
        self.set_sentinel(self.segments.len() - 1);
        self.directory
            .refresh_from(&self.segments, self.tail_start, first_bound);
    }

    /// Encodes the first `per_block` tail entries, or a few fewer when that gives a block of
    /// the compact layout and the full one just misses it (its keys stray a little too far
    /// from a straight line): `(entries sealed, blocks)`. At most `SEAL_CUTS_MAX` extra
    /// encodings, and only for such blocks (1 in 20 of a volume's).
    fn encode_seal(&self, per_block: usize) -> (usize, Vec<Block>) {
        let mut blocks = Vec::with_capacity(1);
        encode_runs(&self.tail[..per_block], per_block, &mut blocks);
        if blocks.len() == 1 && blocks[0].is_nearly_compact() {
            let step = (per_block / 32).max(1);
            let cuts = (1..=SEAL_CUTS_MAX).map(|i| per_block.saturating_sub(i * step));
            for cut in cuts.take_while(|cut| *cut >= per_block / 2 && *cut > 0) {
                let block = Block::encode(&self.tail[..cut]);
                if block.has_compact_layout() {
                    return (cut, vec![block]);
                }
            }
        }
        (per_block, blocks)
    }

    /// Sets the bound after the last block of segment `index`: where the next segment starts,
    /// or `tail_start`.
    fn set_sentinel(&mut self, index: usize) {
        let end = self
            .segment_bounds
            .get(index + 1)
            .copied()
            .unwrap_or(self.tail_start);
        let segment = &mut self.segments[index];
        let blocks = segment.blocks.len();
        segment.bounds[blocks] = end;
        assert!(segment.bounds[blocks - 1] < end);
    }

    fn push_block(&mut self, bound: u64, block: Block) {
        let segment_max = usize::from(self.geometry.segment_blocks_max);
        assert!(bound <= block.base_key());
        match self.segments.last_mut() {
            Some(last) if last.blocks.len() < segment_max => {
                assert!(last.bounds[last.blocks.len() - 1] < bound);
                last.blocks.push(block);
                // The new bound takes the sentinel's place; `seal_if_full` sets the sentinel.
                *last.bounds.last_mut().expect("the sentinel") = bound;
                last.bounds.push(bound);
                last.refresh_index();
            }
            _ => {
                assert!(self.segments.is_empty() == (bound == 0));
                let mut segment = Segment::with_capacity(segment_max);
                segment.blocks.push(block);
                segment.bounds.extend([bound, bound]);
                segment.refresh_index();
                self.segment_bounds.push(bound);
                self.segments.push(segment);
                if self.segments.len() >= 2 {
                    self.set_sentinel(self.segments.len() - 2);
                }
                self.refresh_segment_guess();
            }
        }
    }

    /// Called after every change of `segment_bounds`.
    fn refresh_segment_guess(&mut self) {
        self.segment_guess = match self.segment_bounds.last() {
            Some(last) => search::Guess::new(*last, self.segment_bounds.len()),
            None => search::Guess::default(),
        };
    }

    fn rewrite_if_full(&mut self, segment: usize, block: usize) {
        let patches = self.segments[segment].blocks[block].patch_count();
        if patches >= usize::from(self.geometry.block_patches_max) {
            self.rewrite(segment, block);
        }
    }

    /// Re-encodes a block with its patches applied. An under-filled result absorbs a neighbour
    /// of the same segment, so removals do not leave a trail of tiny blocks.
    fn rewrite(&mut self, segment_index: usize, block_index: usize) {
        let per_block = usize::from(self.geometry.block_entries_max);
        let segment = &self.segments[segment_index];
        let mut entries = Vec::with_capacity(per_block * 2);
        segment.blocks[block_index].materialize_into(&mut entries);
        let mut range = block_index..block_index + 1;
        if entries.len() < per_block / 2 {
            let neighbour = if block_index + 1 < segment.blocks.len() {
                Some(block_index + 1)
            } else {
                block_index.checked_sub(1)
            };
            if let Some(other) = neighbour {
                let other_block = &segment.blocks[other];
                let other_count = other_block.packed_count() + other_block.patch_count();
                if entries.len() + other_count <= per_block {
                    range = block_index.min(other)..block_index.max(other) + 1;
                    entries.clear();
                    for block in &segment.blocks[range.clone()] {
                        block.materialize_into(&mut entries);
                    }
                }
            }
        }
        let mut blocks = Vec::with_capacity(2);
        encode_runs(&entries, per_block, &mut blocks);
        self.replace_blocks(segment_index, range, blocks);
    }

    fn replace_blocks(&mut self, segment_index: usize, range: Range<usize>, blocks: Vec<Block>) {
        let segment_bound = self.segment_bounds[segment_index];
        let segment = &mut self.segments[segment_index];
        // The first new block takes over the range of the first replaced one; the others
        // start at their smallest key.
        let first_bound = segment.bounds[range.start];
        let bounds: Vec<u64> = blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                if i == 0 {
                    first_bound
                } else {
                    block.base_key()
                }
            })
            .collect();
        segment.blocks.splice(range.clone(), blocks);
        segment.bounds.splice(range, bounds);
        if segment.blocks.is_empty() {
            self.remove_segment(segment_index);
            return;
        }
        // The first block of a segment always covers from the segment's bound.
        segment.bounds[0] = segment_bound;
        segment.refresh_index();
        if segment.blocks.len() > usize::from(self.geometry.segment_blocks_max) {
            self.split_segment(segment_index);
            return;
        }
        // The blocks of this segment were renumbered: rewrite the buckets over its keys.
        let end = segment.bounds[segment.blocks.len()];
        self.directory
            .refresh_range(&self.segments, self.tail_start, segment_bound, end - 1);
    }

    /// Rebuilds the directory after the segments were renumbered: O(blocks).
    fn rebuild_directory(&mut self) {
        let blocks = self.segments.iter().map(|s| s.blocks.len()).sum();
        if blocks == 0 {
            self.directory = Directory::new(self.geometry.segment_blocks_max);
        } else {
            self.directory
                .rebuild(&self.segments, self.tail_start, blocks);
        }
    }

    fn remove_segment(&mut self, segment_index: usize) {
        self.segments.remove(segment_index);
        self.segment_bounds.remove(segment_index);
        if self.segments.is_empty() {
            self.tail_start = 0;
        } else if segment_index == 0 {
            self.segment_bounds[0] = 0;
            self.segments[0].bounds[0] = 0;
            self.segments[0].refresh_index();
        } else {
            self.set_sentinel(segment_index - 1);
        }
        self.refresh_segment_guess();
        self.rebuild_directory();
    }

    /// Cuts an overfull segment into equal parts (two, unless a rewrite produced many blocks
    /// at once, which only tiny geometries do).
    fn split_segment(&mut self, segment_index: usize) {
        let segment_max = usize::from(self.geometry.segment_blocks_max);
        let segment = &mut self.segments[segment_index];
        let len = segment.blocks.len();
        let parts = len.div_ceil(segment_max);
        assert!(parts >= 2);
        let mut pieces: Vec<Segment> = Vec::with_capacity(parts - 1);
        for part in (1..parts).rev() {
            let start = len * part / parts;
            let mut piece = Segment::with_capacity(segment_max);
            piece.blocks.extend(segment.blocks.drain(start..));
            // The last piece takes the segment's sentinel; the others end where the piece
            // after them starts.
            piece.bounds.extend(segment.bounds.drain(start..));
            if let Some(next) = pieces.last() {
                piece.bounds.push(next.bounds[0]);
            }
            piece.refresh_index();
            pieces.push(piece);
        }
        let end = pieces.last().expect("at least two parts").bounds[0];
        assert_eq!(segment.bounds.len(), segment.blocks.len());
        segment.bounds.push(end);
        segment.blocks.shrink_to(segment_max);
        segment.bounds.shrink_to(segment_max + 1);
        segment.refresh_index();
        let at = segment_index + 1;
        self.segment_bounds
            .splice(at..at, pieces.iter().rev().map(|piece| piece.bounds[0]));
        self.segments.splice(at..at, pieces.into_iter().rev());
        self.refresh_segment_guess();
        self.rebuild_directory();
    }
}

/// Shorter cuts `NeedleMap::encode_seal` tries (each `block_entries_max / 32` entries
/// shorter) for a block that just misses the compact layout.
const SEAL_CUTS_MAX: usize = 7;

/// Packs sorted entries into blocks of at most `per_block` entries, each spanning less than
/// 2^PACKED_FIELD_BITS_MAX keys; a run is cut into equal parts so no block is left tiny.
fn encode_runs(entries: &[Entry], per_block: usize, out: &mut Vec<Block>) {
    let span_max = 1u64 << limits::PACKED_FIELD_BITS_MAX;
    let mut start = 0;
    while start < entries.len() {
        let base_key = entries[start].0;
        let run_len = entries[start..].partition_point(|e| e.0 - base_key < span_max);
        let run = &entries[start..start + run_len];
        let parts = run.len().div_ceil(per_block);
        for part in 0..parts {
            out.push(Block::encode(
                &run[run.len() * part / parts..run.len() * (part + 1) / parts],
            ));
        }
        start += run_len;
    }
}

/// Asks the CPU to start loading the cache line at `pointer`; a hint that never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(pointer: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no architectural effect and does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(pointer.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pointer;
}

/// Ascending iterator over a map's live entries; decodes one block at a time.
pub struct Iter<'a> {
    map: &'a NeedleMap,
    segment: usize,
    block: usize,
    buffer: Vec<Entry>,
    position: usize,
    tail_done: bool,
    /// Entries below this key are skipped (the start of `iter_from`'s first block).
    from: u64,
}

impl Iterator for Iter<'_> {
    type Item = (u64, NeedleValue);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&entry) = self.buffer.get(self.position) {
                self.position += 1;
                if entry.0 < self.from {
                    continue;
                }
                return Some(entry);
            }
            self.buffer.clear();
            self.position = 0;
            if let Some(segment) = self.map.segments.get(self.segment) {
                match segment.blocks.get(self.block) {
                    Some(block) => {
                        block.materialize_into(&mut self.buffer);
                        self.block += 1;
                    }
                    None => {
                        self.segment += 1;
                        self.block = 0;
                    }
                }
            } else if !self.tail_done {
                self.buffer.extend_from_slice(&self.map.tail);
                self.tail_done = true;
            } else {
                return None;
            }
        }
    }
}
