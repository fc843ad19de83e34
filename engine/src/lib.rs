//! Kelp's storage engine: the SeaweedFS v3 volume format (pure encode/decode, no I/O), the
//! needle map, volumes and crash recovery. See `FORMAT.md` for the byte layout.

pub mod format;
pub mod limits;
pub mod needle_map;
pub mod volume;
