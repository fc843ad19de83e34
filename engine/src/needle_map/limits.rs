//! Limits of the needle map, in one place. `Geometry` carries the tunable ones so tests can use
//! tiny blocks; the defaults below are what a volume uses.

/// Entries in one sealed block. A lookup binary-searches at most this many packed keys; the
/// per-block header (~64 bytes) is shared by this many needles.
pub const BLOCK_ENTRIES_MAX: usize = 128;

/// Out-of-order changes a block collects before it is re-encoded. Bounds the extra work of a
/// lookup (one binary search over at most this many patches) and the cost of a rewrite.
pub const BLOCK_PATCHES_MAX: usize = 16;

/// Blocks in one segment. A block split or removal moves at most this many block headers.
pub const SEGMENT_BLOCKS_MAX: usize = 256;

/// Keys `NeedleMap::get_many` works on at once: enough cache misses in flight to hide memory
/// latency, few enough that the group's state stays in registers and L1.
pub const LOOKUP_GROUP_MAX: usize = 16;

/// Widest key delta in a block, in bits: a block never spans keys further apart than 2^56, so
/// a key delta takes at most 7 bytes and one unaligned 64-bit load reads it.
pub const PACKED_FIELD_BITS_MAX: u32 = 56;

/// Needle offsets are 40 bits of 8-byte units (SeaweedFS's 5-byte offsets: 8 TiB volumes).
pub const OFFSET_UNITS_BITS_MAX: u32 = 40;

/// Index-entry size that marks a deletion (SeaweedFS `TombstoneFileSize`). A live needle is at
/// most one less.
pub const TOMBSTONE_SIZE: u32 = u32::MAX;

const _: () = assert!(BLOCK_ENTRIES_MAX >= 2 && BLOCK_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(BLOCK_PATCHES_MAX >= 1);
const _: () = assert!(SEGMENT_BLOCKS_MAX >= 2);
const _: () = assert!(OFFSET_UNITS_BITS_MAX < PACKED_FIELD_BITS_MAX);
const _: () = assert!(PACKED_FIELD_BITS_MAX + 7 <= 64);

/// The shape of a map: how many entries a block holds, how many patches it collects, how many
/// blocks a segment holds. Kept at runtime (6 bytes) so property tests can use tiny shapes that
/// exercise sealing, rewrites and segment splits with few operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub block_entries_max: u16,
    pub block_patches_max: u16,
    pub segment_blocks_max: u16,
}

impl Geometry {
    pub const DEFAULT: Geometry = Geometry {
        block_entries_max: BLOCK_ENTRIES_MAX as u16,
        block_patches_max: BLOCK_PATCHES_MAX as u16,
        segment_blocks_max: SEGMENT_BLOCKS_MAX as u16,
    };

    pub(super) fn assert_valid(&self) {
        assert!(self.block_entries_max >= 2);
        assert!(self.block_patches_max >= 1);
        assert!(self.segment_blocks_max >= 2);
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Self::DEFAULT
    }
}
