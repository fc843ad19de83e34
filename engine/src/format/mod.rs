//! The on-disk format: pure encode/decode, no I/O (spec: `engine/FORMAT.md`).
//!
//! Every decoder takes bytes and returns a typed error naming what is wrong; none panics on
//! any input (fuzzed in `fuzz/`, property-tested in `engine/tests/format_props.rs`).

pub mod collection;
pub mod fid;
pub mod idx;
pub mod needle;
pub mod placement;
pub mod superblock;
pub mod ttl;
pub mod vif;

pub use collection::{CollectionError, check_collection, parse_volume_base_name};
pub use fid::{FidError, FileId, parse_volume_id, parse_volume_id_prefix};
pub use idx::{IdxEntry, IdxError, OffsetWidth, TOMBSTONE_SIZE};
pub use needle::{Needle, NeedleError, NeedleHeader, Version};
pub use placement::{PlacementError, ReplicaPlacement};
pub use superblock::{SUPERBLOCK_BYTES, SuperBlock, SuperBlockError};
pub use ttl::{Ttl, TtlError, TtlUnit};
pub use vif::{VifError, VolumeInfo};

/// Every needle starts at a multiple of this many bytes; `.idx` offsets count these units.
pub const PADDING_BYTES: u64 = 8;

/// CRC32-Castagnoli of `data`, as SeaweedFS 3.09+ stores it (the raw value).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The legacy transform SeaweedFS before 3.09 stored instead of the raw CRC (`CRC.Value()`):
/// still accepted when reading old volumes.
pub fn crc32c_legacy(raw: u32) -> u32 {
    raw.rotate_right(15).wrapping_add(0xa282_ead8)
}
