//! A radix directory from a key straight to its block: `entries[(key - base) >> shift]`
//! names the block holding the start of that key bucket, so a lookup reads one small,
//! cache-resident `u32` instead of searching the segment bounds and then a segment's block
//! bounds (two dependent interpolated searches).
//!
//! A bucket is 1/4 to 1/2 of a block's key span for evenly spread keys, so it holds at most
//! one block boundary: the lookup settles it with one branch-free compare against the next
//! block's bound (`Segment::bounds` keeps a sentinel after its last block, so that bound
//! always exists). A bucket whose keys fall in more than two blocks, or in two segments, is
//! marked `COLD` and the lookup takes the searched path; skewed keys only make that path
//! more common.
//!
//! Upkeep (every change keeps `entries` exact; `check` asserts it in tests):
//! - sealing appends blocks at the end: only the buckets from the first new bound on are
//!   written, O(new buckets);
//! - a block rewrite (split, merge) renumbers the blocks of one segment: the buckets over
//!   that segment's key range are rewritten, O(segment_blocks_max * buckets per block);
//! - a segment split or removal renumbers the segments after it: the whole directory is
//!   rebuilt, O(blocks). Segments split once per ~segment_blocks_max / 2 block splits.
//! - the directory is rebuilt with a new `shift` when it holds more than
//!   `BUCKETS_PER_BLOCK_MAX` buckets per block (a jump in the keys), or when the block count
//!   has doubled or halved since the last rebuild (the buckets would be too coarse or too
//!   fine): O(blocks), amortised over the blocks added or removed since.
//!
//! So an insert costs at worst O(blocks) (a rebuild), amortised O(segment_blocks_max)
//! buckets per block rewrite plus O(1) per sealed block.

use super::Segment;

/// Marks a bucket the one-compare step cannot settle.
const COLD: u32 = 1 << 31;

/// Buckets per block a rebuild aims at (at most; a power-of-two bucket width gives 2 to 4).
const BUCKETS_PER_BLOCK: u128 = 4;

/// Buckets per block beyond which the directory is rebuilt coarser (a jump in the keys).
const BUCKETS_PER_BLOCK_MAX: usize = 8;

/// Buckets a directory may hold regardless of the block count (small maps).
const BUCKETS_SLACK: usize = 64;

#[derive(Default)]
pub(super) struct Directory {
    entries: Vec<u32>,
    /// Bucket `b > 0` starts at `base + (b << shift)`; bucket 0 also holds every key below.
    base: u64,
    shift: u32,
    /// Bits of an entry that hold the block index within its segment.
    block_bits: u32,
    /// Blocks when the directory was last rebuilt.
    blocks_at_rebuild: usize,
}

/// Where a key's block is, as the directory says.
pub(super) enum Found {
    Block(usize, usize),
    Cold,
}

impl Directory {
    pub(super) fn new(segment_blocks_max: u16) -> Directory {
        Directory {
            // One spare value: a segment holds up to `segment_blocks_max` blocks.
            block_bits: super::block::bits_needed(u64::from(segment_blocks_max)),
            ..Directory::default()
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<u32>()
    }

    /// The block of `key` (`key < tail_start`, the map has blocks): one directory read, one
    /// read of the next block's bound, one compare. No branch but the `COLD` check, which
    /// evenly spread keys make predictable.
    #[inline(always)]
    pub(super) fn find(&self, segments: &[Segment], key: u64) -> Found {
        let bucket = (key.saturating_sub(self.base) >> self.shift) as usize;
        debug_assert!(bucket < self.entries.len());
        // SAFETY: for every key below `tail_start` the bucket is inside `entries` (`fill`
        // asserts `entries.len()` covers `tail_start - 1`), and callers pass such keys.
        let entry = unsafe { *self.entries.get_unchecked(bucket) };
        if entry & COLD != 0 {
            return Found::Cold;
        }
        let segment_index = (entry >> self.block_bits) as usize;
        let block = (entry & ((1 << self.block_bits) - 1)) as usize;
        // SAFETY: a warm entry names an existing segment and a block with a bound after it
        // (the next block's or the sentinel), as `entry_for` checked when it wrote it.
        let segment = unsafe { segments.get_unchecked(segment_index) };
        // Both candidate headers start loading while the bound is read.
        let header = segment.blocks.as_ptr().wrapping_add(block);
        super::prefetch(header);
        super::prefetch(header.wrapping_add(1));
        let next_bound = unsafe { *segment.bounds.get_unchecked(block + 1) };
        Found::Block(segment_index, block + usize::from(key >= next_bound))
    }

    /// Makes the directory exact for the current blocks from the bucket holding `from_key`
    /// on, rebuilding it whole when its shape no longer fits the map (see the module
    /// comment).
    pub(super) fn refresh_from(&mut self, segments: &[Segment], tail_start: u64, from_key: u64) {
        self.refresh_range(segments, tail_start, from_key, u64::MAX);
    }

    /// Makes the buckets holding keys `from_key..=to_key` exact (or rebuilds the whole).
    pub(super) fn refresh_range(
        &mut self,
        segments: &[Segment],
        tail_start: u64,
        from_key: u64,
        to_key: u64,
    ) {
        let blocks = segments.iter().map(|s| s.blocks.len()).sum::<usize>();
        if blocks == 0 {
            self.entries = Vec::new();
            self.blocks_at_rebuild = 0;
            return;
        }
        let buckets = self.buckets_needed(tail_start);
        let resized = self.entries.is_empty()
            || blocks >= 2 * self.blocks_at_rebuild
            || blocks * 2 < self.blocks_at_rebuild
            || buckets > blocks * BUCKETS_PER_BLOCK_MAX + BUCKETS_SLACK
            || tail_start - 1 < self.base;
        if resized {
            return self.rebuild(segments, tail_start, blocks);
        }
        self.entries.resize(buckets, COLD);
        let first = self.bucket_of(from_key);
        let last = self.bucket_of(to_key.min(tail_start - 1));
        self.fill(segments, tail_start, first..last + 1);
    }

    /// Picks `base` and `shift` for the current keys and writes every bucket: O(blocks).
    pub(super) fn rebuild(&mut self, segments: &[Segment], tail_start: u64, blocks: usize) {
        self.base = segments[0].blocks[0].base_key().min(tail_start - 1);
        let range = u128::from(tail_start - 1 - self.base) + 1;
        let target = (blocks as u128 * BUCKETS_PER_BLOCK).max(BUCKETS_SLACK as u128);
        self.shift = (0..64)
            .find(|shift| range >> shift <= target)
            .expect("a range below 2^64 fits 2 buckets at shift 63");
        self.blocks_at_rebuild = blocks;
        assert!(
            segments.len() < 1 << (31 - self.block_bits),
            "segment index fits a directory entry"
        );
        let buckets = self.buckets_needed(tail_start);
        self.entries.clear();
        self.entries.resize(buckets, COLD);
        self.entries.shrink_to(buckets * 2);
        self.fill(segments, tail_start, 0..buckets);
    }

    fn buckets_needed(&self, tail_start: u64) -> usize {
        self.bucket_of(tail_start - 1) + 1
    }

    fn bucket_of(&self, key: u64) -> usize {
        (key.saturating_sub(self.base) >> self.shift) as usize
    }

    /// First and last key of `bucket` (bucket 0 from key 0), the last clamped to
    /// `tail_start - 1`.
    fn bucket_keys(&self, bucket: usize, tail_start: u64) -> (u64, u64) {
        let start = |bucket: usize| u128::from(self.base) + ((bucket as u128) << self.shift);
        let first = if bucket == 0 { 0 } else { start(bucket) as u64 };
        let last = (start(bucket + 1) - 1).min(u128::from(tail_start - 1)) as u64;
        (first, last)
    }

    /// Writes `buckets`, walking the blocks alongside: O(buckets + blocks passed).
    fn fill(&mut self, segments: &[Segment], tail_start: u64, buckets: std::ops::Range<usize>) {
        assert!(buckets.end <= self.entries.len());
        assert_eq!(self.entries.len(), self.buckets_needed(tail_start));
        let Some(first) = buckets.clone().next() else {
            return;
        };
        let (first_key, _) = self.bucket_keys(first, tail_start);
        let mut segment = segments
            .partition_point(|s| s.bounds[0] <= first_key)
            .saturating_sub(1);
        let mut block = segments[segment].block_at_or_below(first_key);
        for bucket in buckets {
            let (first_key, last_key) = self.bucket_keys(bucket, tail_start);
            while segments[segment].bounds[block + 1] <= first_key {
                if block + 1 < segments[segment].blocks.len() {
                    block += 1;
                } else {
                    segment += 1;
                    block = 0;
                }
            }
            self.entries[bucket] = self.entry_for(&segments[segment], segment, block, last_key);
        }
    }

    /// The entry of a bucket starting in block `block` of `segment` and ending at
    /// `last_key`: warm when its keys fall in that block or the next one of the segment.
    fn entry_for(
        &self,
        segment: &Segment,
        segment_index: usize,
        block: usize,
        last_key: u64,
    ) -> u32 {
        let blocks = segment.blocks.len();
        let settled = last_key < segment.bounds[block + 1]
            || (block + 1 < blocks && last_key < segment.bounds[block + 2]);
        if !settled {
            return COLD;
        }
        assert!(block < 1 << self.block_bits);
        assert!(
            segment_index < 1 << (31 - self.block_bits),
            "segment index fits a directory entry"
        );
        ((segment_index as u32) << self.block_bits) | block as u32
    }

    /// Asserts every bucket against a search (tests).
    #[cfg(test)]
    pub(super) fn check(&self, segments: &[Segment], tail_start: u64) {
        if segments.is_empty() {
            assert!(self.entries.is_empty());
            return;
        }
        assert_eq!(self.entries.len(), self.buckets_needed(tail_start));
        let mut copy = Directory {
            entries: vec![COLD; self.entries.len()],
            base: self.base,
            shift: self.shift,
            block_bits: self.block_bits,
            blocks_at_rebuild: self.blocks_at_rebuild,
        };
        copy.fill(segments, tail_start, 0..self.entries.len());
        assert_eq!(copy.entries, self.entries);
    }

    #[cfg(test)]
    pub(super) fn cold_buckets(&self) -> usize {
        self.entries.iter().filter(|e| *e & COLD != 0).count()
    }

    #[cfg(test)]
    pub(super) fn buckets(&self) -> usize {
        self.entries.len()
    }
}
