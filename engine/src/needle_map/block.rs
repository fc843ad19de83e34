//! A sealed block: up to `block_entries_max` entries with strictly increasing keys, packed
//! with frame-of-reference into byte-aligned fixed-width fields, so one entry is read with two
//! unaligned 64-bit loads and a lookup is a short straight-line path.
//!
//! `data` holds, one after the other:
//! - `count` key deltas `key - base_key`, `key_bytes` bytes each (little endian);
//! - `count + 1` value records of `value_bytes` bytes: the offset delta `offset_units -
//!   base_offset` (`offset_bits` bits at bit `offset_shift` of the record's first 8 bytes)
//!   and a size field (`size_bits` bits at byte `size_byte`): `size - base_size` in plain
//!   mode, or in derived mode the residual against the size implied by the gap to the next
//!   record's offset (an append-only volume stores needles back to back, so the residual is
//!   the 0..=7 padding). The last record holds, in derived mode, the end of the last needle;
//! - 8 spare bytes, so every field is one unaligned 64-bit load inside `data`.
//!
//! Needles appended by a volume take 2 key bytes and 3 value bytes each (a 10-bit key gap
//! span and an 18-bit offset span per block, plus the 3-bit residual).
//!
//! Blocks of exactly that layout whose keys all lie within 8 places of their guess (nearly
//! every block of a volume's needles) are flagged compact and read by `get_compact`, with
//! constant field widths and a 16-key window; the general path below reads any block.
//!
//! A lookup interpolates `key - base_key` to a record index (the keys of a volume are near
//! uniform within a block), runs a fixed-step branch-free binary search over the
//! `window_len` keys around the guess, and reads the value of the record it lands on. The
//! window is `RECORD_WINDOW` (32) keys, searched by unrolled code, when that holds every key
//! of the block at its guess (the blocks of a volume's keys); else the encoder picks the
//! smallest power of two that does, searched on a cold path. Either way every key is in the
//! window of its own guess, so a key the window does not hold is absent.

use super::limits::{OFFSET_UNITS_BITS_MAX, PACKED_FIELD_BITS_MAX, TOMBSTONE_SIZE};
use super::{NeedleValue, search};

/// Sizes are residuals against the gap to the next offset (see the module comment).
const FLAG_DERIVED: u8 = 1;

/// The layout of appended needles: `COMPACT_KEY_BYTES`-byte keys, derived sizes in
/// `COMPACT_VALUE_BYTES`-byte records with a `COMPACT_SIZE_BITS` residual, every key within
/// the `COMPACT_WINDOW` keys around its guess. Such a block is read by `get_compact`, whose
/// field widths are constants.
const FLAG_COMPACT: u8 = 2;

/// The block has patches (`patches` is `Some`), so `get` does not take the compact path.
const FLAG_PATCHED: u8 = 4;

/// `flags` of a block `get_compact` reads: one compare of the header picks the path.
const FLAGS_COMPACT_PATH: u8 = FLAG_DERIVED | FLAG_COMPACT;

const COMPACT_KEY_BYTES: usize = 2;
const COMPACT_VALUE_BYTES: usize = 3;
/// Bits of the size residual in a compact record (the 0..=7 padding of a needle), below the
/// offset field.
const COMPACT_SIZE_BITS: u32 = 3;
const COMPACT_RECORD_BITS: u32 = 8 * COMPACT_VALUE_BYTES as u32;
/// Records on each side of the guess whose cache lines a compact lookup prefetches: a key of
/// a volume lies within a few places of its guess.
const COMPACT_PREFETCH_RECORDS: usize = 8;
/// Keys a compact lookup searches around its guess (4 steps): holds every key of 95% of the
/// 128-key blocks of a volume's keys, and sealing cuts the others a little shorter.
const COMPACT_WINDOW: usize = 16;

/// Bytes a needle of version 3 takes on disk besides its body: header 16, checksum 4,
/// timestamp 8 (padding comes on top, 1..=8 bytes).
const NEEDLE_OVERHEAD_BYTES: i64 = 28;

/// The implied size of a needle is 8 times the gap to the next offset plus this (the
/// overhead and the least padding, 8 bytes, taken off).
const IMPLIED_SIZE_BIAS: i64 = -NEEDLE_OVERHEAD_BYTES - 8;

/// Bytes the offset field takes at the start of a record in wide mode (offset and size do
/// not fit 64 bits together); offsets need at most `OFFSET_UNITS_BITS_MAX + 1` bits.
const WIDE_OFFSET_BYTES: u32 = 6;

/// Keys searched around the interpolated guess in nearly every block: the keys of a block of
/// 128 stray from a straight line by a few places (monotonic keys) to about sqrt(128) / 2
/// (random keys).
const RECORD_WINDOW: usize = 32;

/// Spare bytes after the records: a 64-bit load at any field start stays inside `data`.
const DATA_PADDING_BYTES: usize = 8;

const _: () = assert!(OFFSET_UNITS_BITS_MAX < WIDE_OFFSET_BYTES * 8);

pub(super) type Entry = (u64, NeedleValue);

/// What `get_or_absent` returns for a key that is not there (no live needle has this size).
pub(super) const ABSENT: NeedleValue = NeedleValue {
    offset_units: 0,
    size: TOMBSTONE_SIZE,
};

/// Aligned to a cache line: everything a lookup needs to read its block is one memory access.
#[repr(align(64))]
pub(super) struct Block {
    data: Box<[u8]>,
    /// Out-of-order changes, sorted by key; `TOMBSTONE_SIZE` hides a key of the packed part.
    /// Boxed so a block without patches (nearly all) pays 8 header bytes, not 24.
    #[allow(clippy::box_collection)]
    patches: Option<Box<Vec<Entry>>>,
    base_key: u64,
    base_offset: u64,
    /// Plain mode: the smallest size. Derived mode: the smallest residual plus
    /// `IMPLIED_SIZE_BIAS`, so a lookup adds only 8 times the gap to the next offset.
    base_size: i64,
    /// Turns a key delta into a guess of its record index (see `search::guess_parameters`).
    key_multiplier: u32,
    count: u16,
    /// Keys searched around the guess (see the module comment); at most `count`.
    window_len: u16,
    guess_shift: u8,
    key_bytes: u8,
    value_bytes: u8,
    offset_shift: u8,
    offset_bits: u8,
    size_byte: u8,
    size_bits: u8,
    flags: u8,
}

// A segment's blocks are an array of these headers: one cache line per block.
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
    /// The smaller of the plain and the derived plan for `entries`.
    fn for_entries(entries: &[Entry]) -> FieldPlan {
        let plain = FieldPlan::plain(entries);
        let mut plan = match FieldPlan::derived(entries) {
            Some(derived) if derived.record_layout().0 < plain.record_layout().0 => derived,
            _ => plain,
        };
        // A narrower residual is widened to the compact layout's when that costs no byte.
        if plan.derived
            && plan.size_width <= COMPACT_SIZE_BITS
            && plan.offset_width + COMPACT_SIZE_BITS <= COMPACT_RECORD_BITS
        {
            plan.size_width = COMPACT_SIZE_BITS;
        }
        assert!(plan.offset_width <= OFFSET_UNITS_BITS_MAX + 1);
        assert!(plan.size_width <= 32);
        plan
    }

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

    /// Where the fields sit in a record: `(value_bytes, offset_shift, size_byte)`. Offset and
    /// size share one 64-bit word when they fit; else the offset takes the first
    /// `WIDE_OFFSET_BYTES` and the size follows.
    fn record_layout(&self) -> (u32, u32, u32) {
        let bits = self.offset_width + self.size_width;
        if bits <= 64 {
            (bits.div_ceil(8).max(1), self.size_width, 0)
        } else {
            let size_bytes = self.size_width.div_ceil(8);
            (WIDE_OFFSET_BYTES + size_bytes, 0, WIDE_OFFSET_BYTES)
        }
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
        let key_bytes = bits_needed(key_span).div_ceil(8).max(1);
        let plan = FieldPlan::for_entries(entries);
        let (value_bytes, offset_shift, size_byte) = plan.record_layout();
        let keys_bytes = count * key_bytes as usize;
        let values_bytes = (count + 1) * value_bytes as usize;
        let mut data = vec![0u8; keys_bytes + values_bytes + DATA_PADDING_BYTES];
        write_keys(&mut data[..keys_bytes], entries, key_bytes as usize);
        write_values(&mut data[keys_bytes..], entries, &plan);
        let (guess_shift, key_multiplier) = search::guess_parameters(key_span, count);
        let mut block = Block {
            data: data.into_boxed_slice(),
            patches: None,
            base_key,
            base_offset: plan.offset_base,
            base_size: if plan.derived {
                plan.size_base + IMPLIED_SIZE_BIAS
            } else {
                plan.size_base
            },
            key_multiplier: u32::try_from(key_multiplier).expect("count < 2^16"),
            count: count as u16,
            window_len: count as u16,
            guess_shift: guess_shift as u8,
            key_bytes: key_bytes as u8,
            value_bytes: value_bytes as u8,
            offset_shift: offset_shift as u8,
            offset_bits: plan.offset_width as u8,
            size_byte: size_byte as u8,
            size_bits: plan.size_width as u8,
            flags: if plan.derived { FLAG_DERIVED } else { 0 },
        };
        block.window_len = block.window_holding_every_key(entries) as u16;
        let compact = plan.derived
            && key_bytes as usize == COMPACT_KEY_BYTES
            && value_bytes as usize == COMPACT_VALUE_BYTES
            && plan.size_width == COMPACT_SIZE_BITS
            && block.window_len as usize == RECORD_WINDOW
            && block.window_holds_every_key(entries, COMPACT_WINDOW);
        if compact {
            assert_eq!((size_byte, offset_shift), (0, COMPACT_SIZE_BITS));
            assert_eq!(guess_shift, 0, "a 2-byte key span needs no shift");
            block.flags |= FLAG_COMPACT;
        }
        debug_assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| block.entry_at(i) == *e)
        );
        block
    }

    /// `RECORD_WINDOW` when that window holds every key of `entries` (this block's keys) at
    /// its guess (the common case, searched by unrolled code), else the smallest power of two
    /// (or the whole block) that does.
    fn window_holding_every_key(&self, entries: &[Entry]) -> usize {
        let count = entries.len();
        let holds_every_key = |len: usize| self.window_holds_every_key(entries, len);
        if count >= RECORD_WINDOW && holds_every_key(RECORD_WINDOW) {
            return RECORD_WINDOW;
        }
        let mut len = 1;
        while len < count && !holds_every_key(len) {
            len *= 2;
        }
        len.min(count)
    }

    /// Whether the `len` keys around each key's guess hold that key, for every key of
    /// `entries` (this block's keys).
    fn window_holds_every_key(&self, entries: &[Entry], len: usize) -> bool {
        let count = entries.len();
        len <= count
            && entries.iter().enumerate().all(|(index, entry)| {
                let low = window_low(self.guess(entry.0 - self.base_key), len, count);
                (low..low + len).contains(&index)
            })
    }

    /// Whether the block has the compact layout (patches aside): what `get` reads fastest.
    pub(super) fn has_compact_layout(&self) -> bool {
        self.flags & FLAG_COMPACT != 0
    }

    /// Whether the block has the compact layout but for its keys' spread: a block of a
    /// few entries fewer may have it.
    pub(super) fn is_nearly_compact(&self) -> bool {
        self.flags & FLAG_DERIVED != 0
            && self.flags & FLAG_COMPACT == 0
            && self.key_bytes as usize == COMPACT_KEY_BYTES
            && self.value_bytes as usize == COMPACT_VALUE_BYTES
            && u32::from(self.size_bits) == COMPACT_SIZE_BITS
    }

    /// Entries packed in the block, patches not counted.
    pub(super) fn packed_count(&self) -> usize {
        self.count as usize
    }

    /// Whether `get` takes the compact path (tests).
    #[cfg(test)]
    pub(super) fn takes_compact_path(&self) -> bool {
        self.flags == FLAGS_COMPACT_PATH
    }

    pub(super) fn patch_count(&self) -> usize {
        self.patches.as_ref().map_or(0, |p| p.len())
    }

    #[inline(always)]
    pub(super) fn get(&self, key: u64) -> Option<NeedleValue> {
        let value = self.get_or_absent(key);
        (value.size != TOMBSTONE_SIZE).then_some(value)
    }

    /// `get`, with `ABSENT` for a key the block does not hold: a `NeedleValue` travels in
    /// two registers where an `Option` of one goes through memory.
    #[inline(always)]
    pub(super) fn get_or_absent(&self, key: u64) -> NeedleValue {
        // The blocks of a volume's needles nearly all take the compact path, and nearly all
        // blocks have no patches: well-predicted branches on the header.
        if self.flags == FLAGS_COMPACT_PATH {
            return self.get_compact(key);
        }
        if self.patches.is_some() {
            return self.get_patched(key).unwrap_or(ABSENT);
        }
        match self.find(key) {
            Some(index) => self.value_at(index),
            None => ABSENT,
        }
    }

    /// `get` in a block of the compact layout without patches: `find` and `value_at` with
    /// constant field widths, so the search and the decoding are a few dozen instructions.
    #[inline(always)]
    fn get_compact(&self, key: u64) -> NeedleValue {
        debug_assert!(self.patches.is_none() && self.window_len as usize == RECORD_WINDOW);
        let delta = key.wrapping_sub(self.base_key);
        // `guess` without its clamps: the key span is below 2^16 (no shift), so a key of the
        // block gives an index below `count`, and the window start is clamped below; any
        // other key gives some index, whose window cannot hold it (a prefetch of a wild
        // address does not fault).
        let guess = (delta.wrapping_mul(u64::from(self.key_multiplier)) >> 16) as usize;
        let count = self.count as usize;
        let keys = self.data.as_ptr();
        let values = keys.wrapping_add(count * COMPACT_KEY_BYTES);
        // The key window (32 bytes) and the records near the guess take up to two cache
        // lines each: starting the loads of every line now keeps them from following one
        // another (the search would discover the window's second line, and the decode the
        // record's line, only after the first one arrived).
        let guess_record = values.wrapping_add(guess * COMPACT_VALUE_BYTES);
        super::prefetch(guess_record.wrapping_sub(COMPACT_PREFETCH_RECORDS * COMPACT_VALUE_BYTES));
        super::prefetch(
            guess_record.wrapping_add(COMPACT_PREFETCH_RECORDS * COMPACT_VALUE_BYTES + 7),
        );
        // SAFETY: `i < count` (the window lies inside the block), so the two bytes are
        // inside the key fields of `data`.
        let key_at = |i: usize| unsafe {
            debug_assert!(i < count);
            u64::from(u16::from_le(
                keys.add(i * COMPACT_KEY_BYTES)
                    .cast::<u16>()
                    .read_unaligned(),
            ))
        };
        let low = guess
            .saturating_sub(COMPACT_WINDOW / 2)
            .min(count - COMPACT_WINDOW);
        let window = keys.wrapping_add(low * COMPACT_KEY_BYTES);
        super::prefetch(window);
        super::prefetch(window.wrapping_add(COMPACT_WINDOW * COMPACT_KEY_BYTES - 1));
        let index = search::branch_free_search(low, COMPACT_WINDOW, delta, &key_at);
        // A key below `base_key` needs no check of its own: its wrapped delta exceeds
        // `u64::MAX - base_key`, which no key of the block's has.
        if key_at(index) != delta {
            return ABSENT;
        }
        // Record `index` and the next one (whose offset ends this needle) in one load.
        let word = read_u64(
            &self.data,
            count * COMPACT_KEY_BYTES + index * COMPACT_VALUE_BYTES,
        );
        let offset_field = (word & low_mask(COMPACT_RECORD_BITS)) >> COMPACT_SIZE_BITS;
        let next_field = (word >> (COMPACT_RECORD_BITS + COMPACT_SIZE_BITS))
            & low_mask(COMPACT_RECORD_BITS - COMPACT_SIZE_BITS);
        let size_field = word & low_mask(COMPACT_SIZE_BITS);
        let gap_bytes = 8 * (next_field as i64 - offset_field as i64);
        let size = self.base_size + size_field as i64 + gap_bytes;
        debug_assert!((0..i64::from(TOMBSTONE_SIZE)).contains(&size));
        NeedleValue {
            offset_units: self.base_offset + offset_field,
            size: size as u32,
        }
    }

    #[cold]
    #[inline(never)]
    fn get_patched(&self, key: u64) -> Option<NeedleValue> {
        if let Some(patches) = &self.patches
            && let Ok(i) = patches.binary_search_by_key(&key, |e| e.0)
        {
            let value = patches[i].1;
            return (value.size != TOMBSTONE_SIZE).then_some(value);
        }
        let index = self.find(key)?;
        Some(self.value_at(index))
    }

    /// Starts loading the cache lines `get(key)` will read: the key window around the guess
    /// and the guessed record's value.
    #[inline(always)]
    pub(super) fn prefetch_records(&self, key: u64) {
        let guess = self.guess(key.wrapping_sub(self.base_key));
        let len = self.window_len as usize;
        let low = window_low(guess, len, self.count as usize);
        let keys = self.data.as_ptr();
        let key_bytes = self.key_bytes as usize;
        super::prefetch(keys.wrapping_add(low * key_bytes));
        super::prefetch(keys.wrapping_add((low + len - 1) * key_bytes));
        self.prefetch_value(guess);
    }

    /// Starts loading the value record at `guess`: the record `get` reads is near it, so
    /// its cache miss overlaps the key search's instead of following it.
    #[inline(always)]
    fn prefetch_value(&self, guess: usize) {
        let value = self.values_start() + guess * self.value_bytes as usize;
        super::prefetch(self.data.as_ptr().wrapping_add(value));
    }

    /// The record index interpolated from `delta = key - base_key`, clamped to the block.
    #[inline(always)]
    fn guess(&self, delta: u64) -> usize {
        // `delta >> guess_shift` is below 2^16 for a key inside the block's span; clamping
        // it there keeps the product within 64 bits for any other key.
        let top = (delta >> self.guess_shift).min(0xFFFF);
        let index = (top * u64::from(self.key_multiplier)) >> 16;
        index.min(u64::from(self.count) - 1) as usize
    }

    /// Index of `key` among the packed entries.
    #[inline(always)]
    fn find(&self, key: u64) -> Option<usize> {
        if self.window_len as usize != RECORD_WINDOW {
            return self.find_in_any_window(key);
        }
        let delta = key.wrapping_sub(self.base_key);
        let guess = self.guess(delta);
        self.prefetch_value(guess);
        // A constant length: the search is unrolled, with no loop branch to mispredict.
        let low = window_low(guess, RECORD_WINDOW, self.count as usize);
        let index =
            search::branch_free_search(low, RECORD_WINDOW, delta, &|i| self.key_delta_at(i));
        // Every key of the block is in the window of its own guess (see `encode`), so a key
        // the window does not hold is absent.
        ((self.key_delta_at(index) == delta) & (key >= self.base_key)).then_some(index)
    }

    /// `find` in a block whose window is not `RECORD_WINDOW` long: a small block, or one
    /// whose keys stray far from a straight line.
    #[cold]
    #[inline(never)]
    fn find_in_any_window(&self, key: u64) -> Option<usize> {
        let delta = key.wrapping_sub(self.base_key);
        let len = self.window_len as usize;
        let low = window_low(self.guess(delta), len, self.count as usize);
        let index = search::branch_free_search(low, len, delta, &|i| self.key_delta_at(i));
        ((self.key_delta_at(index) == delta) & (key >= self.base_key)).then_some(index)
    }

    #[inline(always)]
    fn key_delta_at(&self, index: usize) -> u64 {
        debug_assert!(index < self.count as usize);
        let key_bits = u32::from(self.key_bytes) * 8;
        read_u64(&self.data, index * self.key_bytes as usize) & low_mask(key_bits)
    }

    fn key_at(&self, index: usize) -> u64 {
        self.base_key + self.key_delta_at(index)
    }

    #[inline(always)]
    fn values_start(&self) -> usize {
        self.count as usize * self.key_bytes as usize
    }

    /// The offset of record `index` (`index <= count`: the last record is the end).
    #[inline(always)]
    fn offset_at(&self, record: usize) -> u64 {
        let word = read_u64(&self.data, record);
        self.base_offset + ((word >> self.offset_shift) & low_mask(u32::from(self.offset_bits)))
    }

    /// Branch free: both modes read the next record's offset, and the plain mode masks its
    /// contribution away.
    #[inline(always)]
    fn value_at(&self, index: usize) -> NeedleValue {
        debug_assert!(index < self.count as usize);
        let value_bytes = self.value_bytes as usize;
        let record = self.values_start() + index * value_bytes;
        let offset = self.offset_at(record);
        let next = self.offset_at(record + value_bytes);
        let size_field = read_u64(&self.data, record + self.size_byte as usize)
            & low_mask(u32::from(self.size_bits));
        let derived_mask = -i64::from(self.flags & FLAG_DERIVED);
        let gap_bytes = (8 * (next as i64 - offset as i64)) & derived_mask;
        let size = self.base_size + size_field as i64 + gap_bytes;
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
        self.flags |= FLAG_PATCHED;
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
        self.flags |= FLAG_PATCHED;
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
            self.flags &= !FLAG_PATCHED;
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

/// Start of the `len` keys searched around `guess` in a block of `count`: centred on the
/// guess, slid inside the block near its ends.
#[inline(always)]
fn window_low(guess: usize, len: usize, count: usize) -> usize {
    guess.saturating_sub(len / 2).min(count - len)
}

fn push_live(out: &mut Vec<Entry>, entry: Entry) {
    if entry.1.size != TOMBSTONE_SIZE {
        out.push(entry);
    }
}

/// Writes the `entries.len() + 1` value records of `plan` into `values`.
/// Each key of `entries` as its delta from the first, in `key_bytes` little-endian bytes.
fn write_keys(keys: &mut [u8], entries: &[Entry], key_bytes: usize) {
    assert_eq!(keys.len(), entries.len() * key_bytes);
    let base_key = entries[0].0;
    for (entry, slot) in entries.iter().zip(keys.chunks_exact_mut(key_bytes)) {
        let delta = (entry.0 - base_key).to_le_bytes();
        slot.copy_from_slice(&delta[..key_bytes]);
    }
}

fn write_values(values: &mut [u8], entries: &[Entry], plan: &FieldPlan) {
    let (value_bytes, offset_shift, size_byte) = plan.record_layout();
    let value_bytes = value_bytes as usize;
    let end = end_offsets(entries).1;
    let records = entries.iter().enumerate().map(|(i, entry)| {
        let size = if plan.derived {
            let next = entries.get(i + 1).map_or(end, |n| n.1.offset_units as i64);
            size_residual(entry.1.size, entry.1.offset_units as i64, next)
        } else {
            i64::from(entry.1.size)
        };
        (entry.1.offset_units, size)
    });
    // The record after the last: in derived mode the end of the last needle, whose offset the
    // last entry's size is derived from; in plain mode nothing reads its fields.
    let last = if plan.derived {
        (end as u64, plan.size_base)
    } else {
        (plan.offset_base, plan.size_base)
    };
    for (i, (offset_units, size)) in records.chain(std::iter::once(last)).enumerate() {
        let offset_field = offset_units - plan.offset_base;
        let size_field = (size - plan.size_base) as u64;
        assert!(offset_field >> plan.offset_width == 0);
        assert!(size_field >> plan.size_width == 0);
        let record = &mut values[i * value_bytes..(i + 1) * value_bytes];
        if size_byte == 0 {
            let word = (offset_field << offset_shift) | size_field;
            record.copy_from_slice(&word.to_le_bytes()[..value_bytes]);
        } else {
            let (offset_part, size_part) = record.split_at_mut(size_byte as usize);
            offset_part.copy_from_slice(&offset_field.to_le_bytes()[..size_byte as usize]);
            size_part
                .copy_from_slice(&size_field.to_le_bytes()[..value_bytes - size_byte as usize]);
        }
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
#[inline(always)]
fn implied_size(offset: i64, next: i64) -> i64 {
    8 * (next - offset) + IMPLIED_SIZE_BIAS
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

/// `bits` low bits set (`bits < 64`).
#[inline(always)]
fn low_mask(bits: u32) -> u64 {
    debug_assert!(bits < 64);
    (1u64 << bits) - 1
}

/// The 8 bytes of `data` from `at`, little endian.
#[inline(always)]
fn read_u64(data: &[u8], at: usize) -> u64 {
    debug_assert!(at + 8 <= data.len());
    // SAFETY: every field a block reads starts at least 8 bytes before the end of `data`:
    // keys (index < count) are followed by the value records, and the value records (index
    // <= count; a wide record's size field at byte 6 of a record of at least 6 bytes) by
    // DATA_PADDING_BYTES spare bytes (see `Block::encode`), and lookups only read indices
    // inside those bounds (`branch_free_search` returns an index of its range).
    let word = unsafe { data.as_ptr().add(at).cast::<u64>().read_unaligned() };
    u64::from_le(word)
}
