//! A sealed block: up to `block_entries_max` entries with strictly increasing keys, bit-packed
//! with frame-of-reference so one entry is read without decoding the others.
//!
//! `data` is a little-endian bit stream of fixed-width records, one per entry:
//! `key - base_key` (`key_width` bits; none when the block is dense: keys are exactly
//! `base_key + i`), `offset_units - base_offset` (`offset_width` bits), then the size
//! (`size_width` bits): `size - base_size` in plain mode, or in derived mode the residual
//! against the size implied by the gap to the next record's offset (an append-only volume
//! stores needles back to back, so the residual is the 0..=7 padding). Derived mode adds one
//! last record whose offset is the end of the last needle.
//!
//! A record holds key, offset and size together, so a lookup that lands on a key finds its
//! value in the same cache line. Keys are found by interpolation: the guess
//! `delta * (count - 1) / key_span` is within a few records for the near-uniform keys of a
//! volume, then a short scan (or, past a few steps, a binary search) settles it.
//! `data` has 8 spare bytes at the end so every field is one unaligned 64-bit load.

use super::limits::{OFFSET_UNITS_BITS_MAX, PACKED_FIELD_BITS_MAX, TOMBSTONE_SIZE};
use super::{NeedleValue, search};

/// Keys are `base_key + i`: no key bits are stored and a lookup is a subtraction.
const FLAG_DENSE: u8 = 1;
/// Sizes are residuals against the gap to the next offset (see the module comment).
const FLAG_DERIVED: u8 = 2;

/// Bytes a needle of version 3 takes on disk besides its body: header 16, checksum 4,
/// timestamp 8 (padding comes on top, 1..=8 bytes).
const NEEDLE_OVERHEAD_BYTES: i64 = 28;

pub(super) type Entry = (u64, NeedleValue);

/// Aligned to a cache line: the header of a lookup's block is one memory access.
#[repr(align(64))]
pub(super) struct Block {
    data: Box<[u8]>,
    /// Out-of-order changes, sorted by key; `TOMBSTONE_SIZE` hides a key of the packed part.
    /// Boxed so a block without patches (nearly all) pays 8 header bytes, not 24.
    #[allow(clippy::box_collection)]
    patches: Option<Box<Vec<Entry>>>,
    /// Start of the key range this block covers (its segment's blocks are searched by it);
    /// at most `base_key`.
    pub(super) bound: u64,
    base_key: u64,
    base_offset: u64,
    /// Plain mode: the smallest size. Derived mode: the smallest residual, as an `i32`.
    base_size: u32,
    /// Turns a key delta into a guess of its record index (see `search::guess_parameters`;
    /// the shift is `key_width - 16`).
    key_multiplier: u32,
    count: u16,
    key_width: u8,
    offset_width: u8,
    size_width: u8,
    record_width: u8,
    flags: u8,
}

// A segment's blocks are an array of these headers: a lookup's interpolated guess lands on
// one cache line holding the bound and everything needed to read the block.
const _: () = assert!(size_of::<Block>() == 64);

/// How offsets and sizes of one block are packed.
struct FieldPlan {
    offset_base: u64,
    offset_width: u32,
    size_base: i64,
    size_width: u32,
    derived: bool,
}

impl FieldPlan {
    fn plain(entries: &[Entry]) -> FieldPlan {
        let (offset_min, offset_max) = min_max(entries.iter().map(|e| e.1.offset_units as i64));
        let (size_min, size_max) = min_max(entries.iter().map(|e| i64::from(e.1.size)));
        FieldPlan {
            offset_base: offset_min as u64,
            offset_width: bits_needed((offset_max - offset_min) as u64),
            size_base: size_min,
            size_width: bits_needed((size_max - size_min) as u64),
            derived: false,
        }
    }

    /// `None` when the residuals are too spread out to pack.
    fn derived(entries: &[Entry]) -> Option<FieldPlan> {
        let ends = end_offsets(entries);
        let (offset_min, offset_max) = min_max(
            entries
                .iter()
                .map(|e| e.1.offset_units as i64)
                .chain(std::iter::once(ends.1)),
        );
        let residuals = entries.iter().enumerate().map(|(i, e)| {
            let next = entries
                .get(i + 1)
                .map_or(ends.1, |n| n.1.offset_units as i64);
            size_residual(e.1.size, e.1.offset_units as i64, next)
        });
        let (size_min, size_max) = min_max(residuals);
        let size_width = bits_needed(size_max.abs_diff(size_min));
        let base_fits = i32::try_from(size_min).is_ok();
        (size_width <= 32 && base_fits).then_some(FieldPlan {
            offset_base: offset_min as u64,
            offset_width: bits_needed((offset_max - offset_min) as u64),
            size_base: size_min,
            size_width,
            derived: true,
        })
    }

    fn offset_count(&self, count: usize) -> usize {
        count + usize::from(self.derived)
    }

    fn bits(&self, count: usize) -> usize {
        self.offset_count(count) * self.offset_width as usize + count * self.size_width as usize
    }
}

impl Block {
    /// Packs `entries` (1..=u16::MAX of them, strictly increasing keys, spanning less than
    /// 2^PACKED_FIELD_BITS_MAX) into one block.
    pub(super) fn encode(entries: &[Entry]) -> Block {
        let count = entries.len();
        assert!(count >= 1 && count <= u16::MAX as usize);
        let base_key = entries[0].0;
        let key_span = entries[count - 1].0 - base_key;
        assert!(bits_needed(key_span) <= PACKED_FIELD_BITS_MAX);
        let dense = key_span == (count - 1) as u64;
        let key_width = if dense { 0 } else { bits_needed(key_span) };
        let plain = FieldPlan::plain(entries);
        let plan = match FieldPlan::derived(entries) {
            Some(derived) if derived.bits(count) < plain.bits(count) => derived,
            _ => plain,
        };
        assert!(plan.offset_width <= OFFSET_UNITS_BITS_MAX + 1);
        let record_width = key_width + plan.offset_width + plan.size_width;
        let records = plan.offset_count(count);
        let mut data = vec![0u8; (records * record_width as usize).div_ceil(8) + 8];
        write_records(&mut data, entries, key_width, &plan);
        let block = Block {
            data: data.into_boxed_slice(),
            patches: None,
            base_key,
            base_offset: plan.offset_base,
            bound: base_key,
            base_size: if plan.derived {
                plan.size_base as i32 as u32
            } else {
                plan.size_base as u32
            },
            key_multiplier: key_multiplier(key_span, count, key_width),
            count: count as u16,
            key_width: key_width as u8,
            offset_width: plan.offset_width as u8,
            size_width: plan.size_width as u8,
            record_width: record_width as u8,
            flags: if dense { FLAG_DENSE } else { 0 } | if plan.derived { FLAG_DERIVED } else { 0 },
        };
        debug_assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| block.entry_at(i) == *e)
        );
        block
    }

    /// Entries packed in the block, patches not counted.
    pub(super) fn packed_count(&self) -> usize {
        self.count as usize
    }

    pub(super) fn patch_count(&self) -> usize {
        self.patches.as_ref().map_or(0, |p| p.len())
    }

    pub(super) fn get(&self, key: u64) -> Option<NeedleValue> {
        if let Some(patches) = &self.patches
            && let Ok(i) = patches.binary_search_by_key(&key, |e| e.0)
        {
            let value = patches[i].1;
            return (value.size != TOMBSTONE_SIZE).then_some(value);
        }
        let index = self.find(key)?;
        Some(self.value_at(index))
    }

    /// What a lookup needs to start loading this block's records without reading the header.
    pub(super) fn record_hint(&self) -> RecordHint {
        RecordHint {
            base_key: self.base_key,
            data_address: self.data.as_ptr() as usize,
            key_multiplier: self.key_multiplier,
            count: self.count,
            key_width: self.key_width,
            record_width: self.record_width,
        }
    }

    /// Index of `key` among the packed entries.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let delta = key.checked_sub(self.base_key)?;
        let count = self.count as usize;
        if self.flags & FLAG_DENSE != 0 {
            return (delta < count as u64).then_some(delta as usize);
        }
        let key_width = u32::from(self.key_width);
        debug_assert!(key_width >= 1);
        if delta >> key_width != 0 {
            return None;
        }
        // No prefetch here: `NeedleMap::get` and `get_many` have already started loading the
        // window from the segment's probe, before this header arrived.
        let guess = self.record_hint().guess(delta);
        let index =
            search::last_at_or_below::<{ search::RECORD_WINDOW_HALF }>(count, guess, delta, |i| {
                self.key_delta_at(i)
            });
        (self.key_delta_at(index) == delta).then_some(index)
    }

    #[inline(always)]
    fn key_delta_at(&self, index: usize) -> u64 {
        let bit = index * self.record_width as usize;
        read_bits(&self.data, bit, u32::from(self.key_width))
    }

    fn key_at(&self, index: usize) -> u64 {
        if self.flags & FLAG_DENSE != 0 {
            return self.base_key + index as u64;
        }
        self.base_key + self.key_delta_at(index)
    }

    #[inline]
    fn value_at(&self, index: usize) -> NeedleValue {
        let offset_width = u32::from(self.offset_width);
        let record_width = self.record_width as usize;
        let offset_bit = index * record_width + self.key_width as usize;
        let offset = self.base_offset + read_bits(&self.data, offset_bit, offset_width);
        let size_bit = offset_bit + offset_width as usize;
        let mut size = read_bits(&self.data, size_bit, u32::from(self.size_width)) as i64;
        if self.flags & FLAG_DERIVED != 0 {
            size += i64::from(self.base_size as i32);
            let next_bit = offset_bit + record_width;
            let next = self.base_offset + read_bits(&self.data, next_bit, offset_width);
            size += implied_size(offset as i64, next as i64);
        } else {
            size += i64::from(self.base_size);
        }
        debug_assert!((0..i64::from(TOMBSTONE_SIZE)).contains(&size));
        NeedleValue {
            offset_units: offset,
            size: size as u32,
        }
    }

    fn entry_at(&self, index: usize) -> Entry {
        (self.key_at(index), self.value_at(index))
    }

    /// Smallest key of the packed part (patches may hold smaller ones).
    pub(super) fn base_key(&self) -> u64 {
        self.base_key
    }

    /// The live entries, patches applied, ascending, appended to `out`.
    pub(super) fn materialize_into(&self, out: &mut Vec<Entry>) {
        let patches: &[Entry] = self.patches.as_deref().map_or(&[], |p| p.as_slice());
        let mut next_patch = 0;
        for index in 0..self.count as usize {
            let entry = self.entry_at(index);
            while next_patch < patches.len() && patches[next_patch].0 < entry.0 {
                push_live(out, patches[next_patch]);
                next_patch += 1;
            }
            if next_patch < patches.len() && patches[next_patch].0 == entry.0 {
                push_live(out, patches[next_patch]);
                next_patch += 1;
            } else {
                out.push(entry);
            }
        }
        for &patch in &patches[next_patch..] {
            push_live(out, patch);
        }
    }

    /// Records `key -> value` as a patch; returns the value it replaces.
    pub(super) fn patch_put(&mut self, key: u64, value: NeedleValue) -> Option<NeedleValue> {
        assert!(value.size != TOMBSTONE_SIZE);
        let old = self.get(key);
        let patches = self.patches.get_or_insert_with(Box::default);
        match patches.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => patches[i].1 = value,
            Err(i) => patches.insert(i, (key, value)),
        }
        old
    }

    /// Hides `key`; returns the value it had.
    pub(super) fn patch_remove(&mut self, key: u64) -> Option<NeedleValue> {
        let old = self.get(key)?;
        let packed = self.find(key).is_some();
        let patches = self.patches.get_or_insert_with(Box::default);
        let tombstone = NeedleValue {
            offset_units: 0,
            size: TOMBSTONE_SIZE,
        };
        match (patches.binary_search_by_key(&key, |e| e.0), packed) {
            (Ok(i), true) => patches[i].1 = tombstone,
            (Ok(i), false) => {
                patches.remove(i);
            }
            (Err(i), true) => patches.insert(i, (key, tombstone)),
            (Err(_), false) => unreachable!("a live key is packed or patched"),
        }
        if patches.is_empty() {
            self.patches = None;
        }
        Some(old)
    }

    /// Heap bytes this block owns (its header lives in the segment's vector).
    pub(super) fn heap_bytes(&self) -> usize {
        self.data.len()
            + self.patches.as_ref().map_or(0, |p| {
                size_of::<Vec<Entry>>() + p.capacity() * size_of::<Entry>()
            })
    }
}

/// A copy of the header fields that place a key's records in a block's `data`, kept by the
/// segment next to the block's bound. A lookup that has found its block in that (cache
/// resident) array starts loading the records at once, so their cache misses overlap the
/// header's instead of following it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RecordHint {
    base_key: u64,
    /// Where the block's records are. Only ever a prefetch address (a prefetch never faults),
    /// never dereferenced, so a stale hint could cost speed but not correctness.
    data_address: usize,
    key_multiplier: u32,
    count: u16,
    /// 0 for a dense block (keys are `base_key + i`).
    key_width: u8,
    record_width: u8,
}

impl RecordHint {
    /// The record index interpolated from `delta = key - base_key`, clamped to the block.
    #[inline(always)]
    fn guess(&self, delta: u64) -> usize {
        let index = if self.key_width == 0 {
            delta
        } else {
            // delta is clamped below 2^key_width, so delta >> shift < 2^16: the product fits.
            let key_width = u32::from(self.key_width);
            let shift = key_width.saturating_sub(16);
            let delta = delta.min((1 << key_width) - 1);
            ((delta >> shift) * u64::from(self.key_multiplier)) >> 16
        };
        (index.min(u64::from(self.count) - 1)) as usize
    }

    /// Starts loading every cache line `Block::find(key)` may read, all at once.
    #[inline(always)]
    pub(super) fn prefetch_records(&self, key: u64) {
        let delta = key.wrapping_sub(self.base_key);
        if self.key_width == 0 {
            let index = (delta.min(u64::from(self.count) - 1)) as usize;
            let byte = index * self.record_width as usize / 8;
            super::prefetch((self.data_address + byte) as *const u8);
            return;
        }
        self.prefetch_window(self.guess(delta));
    }

    /// Starts loading the cache lines of the search window around record `guess`.
    #[inline(always)]
    fn prefetch_window(&self, guess: usize) {
        let count = self.count as usize;
        let half = search::RECORD_WINDOW_HALF;
        let len = count.min(2 * half);
        let low = guess.saturating_sub(half).min(count - len);
        let record_width = self.record_width as usize;
        // Cache lines, not bytes, so the loop runs at most a few times.
        let first_line = (self.data_address + low * record_width / 8) / 64;
        let last_line = (self.data_address + ((low + len) * record_width).div_ceil(8) + 7) / 64;
        for line in first_line..=last_line {
            super::prefetch((line * 64) as *const u8);
        }
    }
}

fn key_multiplier(key_span: u64, count: usize, key_width: u32) -> u32 {
    let (shift, multiplier) = search::guess_parameters(key_span, count);
    assert_eq!(shift, key_width.saturating_sub(16));
    u32::try_from(multiplier).expect("count < 2^16")
}

fn push_live(out: &mut Vec<Entry>, entry: Entry) {
    if entry.1.size != TOMBSTONE_SIZE {
        out.push(entry);
    }
}

fn write_records(data: &mut [u8], entries: &[Entry], key_width: u32, plan: &FieldPlan) {
    let record_width = (key_width + plan.offset_width + plan.size_width) as usize;
    let base_key = entries[0].0;
    let end = end_offsets(entries).1;
    for (i, entry) in entries.iter().enumerate() {
        let bit = i * record_width;
        if key_width > 0 {
            write_bits(data, bit, key_width, entry.0 - base_key);
        }
        let offset_bit = bit + key_width as usize;
        let offset_delta = entry.1.offset_units - plan.offset_base;
        write_bits(data, offset_bit, plan.offset_width, offset_delta);
        let size_value = if plan.derived {
            let next = entries.get(i + 1).map_or(end, |n| n.1.offset_units as i64);
            size_residual(entry.1.size, entry.1.offset_units as i64, next)
        } else {
            i64::from(entry.1.size)
        };
        let size_bit = offset_bit + plan.offset_width as usize;
        write_bits(
            data,
            size_bit,
            plan.size_width,
            (size_value - plan.size_base) as u64,
        );
    }
    if plan.derived {
        let end_bit = entries.len() * record_width + key_width as usize;
        write_bits(
            data,
            end_bit,
            plan.offset_width,
            end as u64 - plan.offset_base,
        );
    }
}

/// The offset right after the last entry if it is a version-3 needle: the "next" offset the
/// last entry's size is derived from.
fn end_offsets(entries: &[Entry]) -> (i64, i64) {
    let last = entries[entries.len() - 1].1;
    let units = (i64::from(last.size) + NEEDLE_OVERHEAD_BYTES) / 8 + 1;
    (last.offset_units as i64, last.offset_units as i64 + units)
}

/// The smallest body size a needle at `offset` followed by one at `next` can have (both in
/// 8-byte units); the true size is this plus 0..=7 when the needles are back to back.
fn implied_size(offset: i64, next: i64) -> i64 {
    8 * (next - offset) - NEEDLE_OVERHEAD_BYTES - 8
}

fn size_residual(size: u32, offset: i64, next: i64) -> i64 {
    i64::from(size) - implied_size(offset, next)
}

fn min_max(values: impl Iterator<Item = i64>) -> (i64, i64) {
    values.fold((i64::MAX, i64::MIN), |(low, high), v| {
        (low.min(v), high.max(v))
    })
}

pub(super) fn bits_needed(range: u64) -> u32 {
    64 - range.leading_zeros()
}

#[inline(always)]
fn read_bits(data: &[u8], bit: usize, width: u32) -> u64 {
    debug_assert!(width <= PACKED_FIELD_BITS_MAX);
    let byte = bit >> 3;
    let word = u64::from_le_bytes(data[byte..byte + 8].try_into().expect("8-byte window"));
    (word >> (bit & 7)) & ((1u64 << width) - 1)
}

fn write_bits(data: &mut [u8], bit: usize, width: u32, value: u64) {
    assert!(width <= PACKED_FIELD_BITS_MAX);
    assert!(value >> width == 0, "value {value} wider than {width} bits");
    let byte = bit >> 3;
    let window: &mut [u8; 8] = (&mut data[byte..byte + 8])
        .try_into()
        .expect("8-byte window");
    let word = u64::from_le_bytes(*window) | (value << (bit & 7));
    *window = word.to_le_bytes();
}
