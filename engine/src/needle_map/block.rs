//! A sealed block: up to `block_entries_max` entries with strictly increasing keys, bit-packed
//! with frame-of-reference so one entry is read without decoding the others.
//!
//! Layout of `data` (little-endian bit stream, each section starts right after the previous):
//! - keys: `count` values of `key_width` bits, `key - base_key` (absent when the block is
//!   dense: keys are exactly `base_key + i`);
//! - offsets: `count` values (plus one "end" value in derived mode) of `offset_width` bits,
//!   `offset_units - base_offset`;
//! - sizes: `count` values of `size_width` bits, `size - base_size` in plain mode, or in
//!   derived mode the residual against the size implied by the gap to the next offset (an
//!   append-only volume stores needles back to back, so the residual is the 0..=7 padding).
//!
//! `data` has 8 spare bytes at the end so every field is one unaligned 64-bit load.

use super::NeedleValue;
use super::limits::{OFFSET_UNITS_BITS_MAX, PACKED_FIELD_BITS_MAX, TOMBSTONE_SIZE};

/// Keys are `base_key + i`: no key bits are stored and a lookup is a subtraction.
const FLAG_DENSE: u8 = 1;
/// Sizes are residuals against the gap to the next offset (see the module comment).
const FLAG_DERIVED: u8 = 2;

/// Bytes a needle of version 3 takes on disk besides its body: header 16, checksum 4,
/// timestamp 8 (padding comes on top, 1..=8 bytes).
const NEEDLE_OVERHEAD_BYTES: i64 = 28;

pub(super) type Entry = (u64, NeedleValue);

pub(super) struct Block {
    data: Box<[u8]>,
    /// Out-of-order changes, sorted by key; `TOMBSTONE_SIZE` hides a key of the packed part.
    /// Boxed so a block without patches (nearly all) pays 8 header bytes, not 24.
    #[allow(clippy::box_collection)]
    patches: Option<Box<Vec<Entry>>>,
    base_key: u64,
    base_offset: u64,
    base_size: i64,
    count: u16,
    key_width: u8,
    offset_width: u8,
    size_width: u8,
    flags: u8,
}

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
        (size_width <= 32).then_some(FieldPlan {
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
        let key_bits = count * key_width as usize;
        let total_bits = key_bits + plan.bits(count);
        let mut data = vec![0u8; total_bits.div_ceil(8) + 8].into_boxed_slice();
        write_keys(&mut data, entries, key_width);
        write_values(&mut data, key_bits, entries, &plan);
        let block = Block {
            data,
            patches: None,
            base_key,
            base_offset: plan.offset_base,
            base_size: plan.size_base,
            count: count as u16,
            key_width: key_width as u8,
            offset_width: plan.offset_width as u8,
            size_width: plan.size_width as u8,
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
        // Branch-free binary search: the loop runs log2(count) times whatever the data, so
        // the CPU overlaps the memory loads of consecutive lookups.
        let mut low = 0usize;
        let mut len = count;
        while len > 1 {
            let half = len / 2;
            let probe = read_bits(&self.data, (low + half) * key_width as usize, key_width);
            low = if probe <= delta { low + half } else { low };
            len -= half;
        }
        (read_bits(&self.data, low * key_width as usize, key_width) == delta).then_some(low)
    }

    fn key_at(&self, index: usize) -> u64 {
        if self.flags & FLAG_DENSE != 0 {
            return self.base_key + index as u64;
        }
        let key_width = u32::from(self.key_width);
        self.base_key + read_bits(&self.data, index * key_width as usize, key_width)
    }

    #[inline]
    fn value_at(&self, index: usize) -> NeedleValue {
        let offset_width = u32::from(self.offset_width);
        let size_width = u32::from(self.size_width);
        let offsets_bit = self.count as usize * self.key_width as usize;
        let offset_bit = offsets_bit + index * offset_width as usize;
        let offset = self.base_offset + read_bits(&self.data, offset_bit, offset_width);
        let derived = self.flags & FLAG_DERIVED != 0;
        let offset_count = self.count as usize + usize::from(derived);
        let size_bit = offsets_bit + offset_count * offset_width as usize;
        let mut size = read_bits(
            &self.data,
            size_bit + index * size_width as usize,
            size_width,
        ) as i64
            + self.base_size;
        if derived {
            let next_bit = offset_bit + offset_width as usize;
            let next = self.base_offset + read_bits(&self.data, next_bit, offset_width);
            size += implied_size(offset as i64, next as i64);
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

fn push_live(out: &mut Vec<Entry>, entry: Entry) {
    if entry.1.size != TOMBSTONE_SIZE {
        out.push(entry);
    }
}

fn write_keys(data: &mut [u8], entries: &[Entry], key_width: u32) {
    if key_width == 0 {
        return;
    }
    let base_key = entries[0].0;
    for (i, entry) in entries.iter().enumerate() {
        write_bits(data, i * key_width as usize, key_width, entry.0 - base_key);
    }
}

fn write_values(data: &mut [u8], offsets_bit: usize, entries: &[Entry], plan: &FieldPlan) {
    let offset_width = plan.offset_width as usize;
    let sizes_bit = offsets_bit + plan.offset_count(entries.len()) * offset_width;
    let end = end_offsets(entries).1;
    for (i, entry) in entries.iter().enumerate() {
        let offset = entry.1.offset_units as i64;
        let offset_delta = entry.1.offset_units - plan.offset_base;
        write_bits(
            data,
            offsets_bit + i * offset_width,
            plan.offset_width,
            offset_delta,
        );
        let size_value = if plan.derived {
            let next = entries.get(i + 1).map_or(end, |n| n.1.offset_units as i64);
            size_residual(entry.1.size, offset, next)
        } else {
            i64::from(entry.1.size)
        };
        let size_bit = sizes_bit + i * plan.size_width as usize;
        write_bits(
            data,
            size_bit,
            plan.size_width,
            (size_value - plan.size_base) as u64,
        );
    }
    if plan.derived {
        let end_bit = offsets_bit + entries.len() * offset_width;
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
