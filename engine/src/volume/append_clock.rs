//! The newest append time of a volume's live needles, read from its files: a TTL volume
//! expires once every live needle's TTL passed, so this is its clock, and it must survive
//! restarts and compactions, which a process timer or the `.dat`'s mtime (which deletes and
//! compactions move) do not.
//!
//! Needles are appended with rising append times, so in a volume never compacted the live
//! needle at the largest offset is the newest one: one read. A compaction copies the live
//! needles in key order, which is not append order, so a compacted volume's live needles
//! are all read (their 8-byte append times, in offset order): a cost proportional to the
//! live needles, paid only by a caller that asks (the volume server asks for TTL volumes).

use super::core::VolumeCore;
use super::storage::StorageFile;
use crate::format::PADDING_BYTES;
use crate::format::needle::{HEADER_BYTES, Version};

/// Bytes of a needle's checksum, between its body and its append time.
const CHECKSUM_BYTES: u64 = 4;

/// The newest append time (ns since the Unix epoch) of the volume's live needles; 0 when
/// it has none, or for a version-2 volume (no append times). A record that cannot be read
/// counts as no time.
pub(crate) fn newest_live_append_ns<F: StorageFile>(core: &VolumeCore, dat: &F) -> u64 {
    if core.version() == Version::V2 {
        return 0;
    }
    let stamp_at = |offset_units: u64, size: u32| {
        offset_units * PADDING_BYTES + HEADER_BYTES as u64 + u64::from(size) + CHECKSUM_BYTES
    };
    let compacted = core.config().superblock.compaction_revision != 0;
    let mut places: Vec<u64> = Vec::new();
    let mut newest_place = None;
    for (_, value) in core.map().iter() {
        let place = stamp_at(value.offset_units, value.size);
        if compacted {
            places.push(place);
        } else if newest_place.is_none_or(|newest| place > newest) {
            newest_place = Some(place);
        }
    }
    places.extend(newest_place);
    places.sort_unstable();
    places
        .into_iter()
        .filter_map(|place| read_stamp(dat, place, core.dat_bytes()))
        .max()
        .unwrap_or(0)
}

fn read_stamp<F: StorageFile>(dat: &F, at: u64, dat_bytes: u64) -> Option<u64> {
    if at + 8 > dat_bytes {
        return None;
    }
    let mut stamp = [0u8; 8];
    dat.read_exact_at(&mut stamp, at).ok()?;
    Some(u64::from_be_bytes(stamp))
}
