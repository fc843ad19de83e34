//! What a replica knows about each key of a volume, for a repair: the key's last `.idx`
//! entry (a needle or a delete marker) and that record's append time, read from the files on
//! a blocking thread; and the digest of the live needles, from the needle map.

use kelp_engine::format::OffsetWidth;
use kelp_engine::format::PADDING_BYTES;
use kelp_engine::format::idx::IdxEntry;
use kelp_engine::format::needle::{self, NeedleHeader, Version};
use kelp_engine::needle_map::{NeedleMap, NeedleValue, TOMBSTONE_SIZE};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The last event of one key on one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyState {
    pub key: u64,
    /// Where its record is, in 8-byte units (0 for an old-style delete with no marker).
    pub offset_units: u64,
    /// The needle's size field, or `TOMBSTONE_SIZE` for a delete.
    pub size: u32,
    /// When its record was appended (ns since the Unix epoch); 0 when unknown (an old-style
    /// delete with no marker).
    pub append_at_ns: u64,
    /// The record's checksum field (CRC of the data; 0 for a delete): with the size, it tells
    /// one write's copies (each replica stamps its own append time) from another write.
    pub checksum: u32,
}

impl KeyState {
    pub fn is_deleted(&self) -> bool {
        self.size == TOMBSTONE_SIZE
    }

    /// The needle map's value for a live key (None for a delete).
    pub fn live_value(&self) -> Option<NeedleValue> {
        (!self.is_deleted()).then_some(NeedleValue {
            offset_units: self.offset_units,
            size: self.size,
        })
    }

    /// The record's `size` field (0 for a delete marker).
    pub fn record_size(&self) -> u32 {
        if self.is_deleted() { 0 } else { self.size }
    }
}

/// The files a listing reads, taken on the owner core (no I/O there).
pub struct Source {
    pub volume_id: u32,
    pub idx_path: PathBuf,
    /// The `.idx` bytes whose entries are written (later ones are left for the next pass).
    pub idx_bytes: u64,
    pub dat: Arc<File>,
    pub dat_bytes: u64,
    pub width: OffsetWidth,
    pub version: Version,
    /// The volume's compaction revision, and its kept deletes' file (`kept`).
    pub revision: u16,
    pub deletes_path: PathBuf,
}

/// One page of a listing: the keys above the asked one, ascending; `more` when keys above
/// the last one were left out.
#[derive(Debug, Default)]
pub struct Page {
    pub states: Vec<KeyState>,
    pub more: bool,
}

/// `.idx` bytes read at a time.
const IDX_CHUNK_BYTES: usize = 1 << 20;

/// The states of at most `limit` keys above `after` (all keys when None), read from the
/// kept deletes, the `.idx` and the `.dat` (blocking: run it on a blocking thread). Memory:
/// `limit` states (and the kept deletes above `after`).
pub fn list(source: &Source, after: Option<u64>, limit: usize) -> Result<Page, String> {
    assert!(limit > 0);
    let mut kept = super::kept::read(&source.deletes_path, source.revision)?;
    if let Some(after) = after {
        kept = kept.split_off(&after);
        kept.remove(&after);
    }
    let idx = File::open(&source.idx_path)
        .map_err(|e| format!("open {}: {e}", source.idx_path.display()))?;
    let entry_bytes = source.width.entry_bytes();
    let chunk_bytes = IDX_CHUNK_BYTES / entry_bytes * entry_bytes;
    let mut last: BTreeMap<u64, IdxEntry> = BTreeMap::new();
    let mut more = false;
    for key in kept.keys() {
        let size = TOMBSTONE_SIZE;
        last.insert(
            *key,
            IdxEntry {
                key: *key,
                offset_units: 0,
                size,
            },
        );
        if last.len() > limit {
            last.pop_last();
            more = true;
        }
    }
    let mut buffer = vec![0u8; chunk_bytes];
    let mut at = 0u64;
    while at < source.idx_bytes {
        let len = chunk_bytes.min((source.idx_bytes - at) as usize);
        idx.read_exact_at(&mut buffer[..len], at)
            .map_err(|e| format!("read {} at {at}: {e}", source.idx_path.display()))?;
        for bytes in buffer[..len].chunks_exact(entry_bytes) {
            let Some(entry) = IdxEntry::decode(bytes, source.width) else {
                continue;
            };
            let hole = entry.offset_units == 0 && entry.size != TOMBSTONE_SIZE;
            if hole || after.is_some_and(|after| entry.key <= after) {
                continue;
            }
            last.insert(entry.key, entry);
            if last.len() > limit {
                last.pop_last();
                more = true;
            }
        }
        at += len as u64;
    }
    let states = last
        .into_values()
        .map(|entry| state_of(source, &kept, entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { states, more })
}

/// The state of `entry`'s key: its record's append time, read after checking the record's
/// header names the key (a compaction that swapped the files meanwhile fails the check).
fn state_of(
    source: &Source,
    kept: &BTreeMap<u64, u64>,
    entry: IdxEntry,
) -> Result<KeyState, String> {
    let mut state = KeyState {
        key: entry.key,
        offset_units: entry.offset_units,
        size: entry.size,
        append_at_ns: 0,
        checksum: 0,
    };
    if entry.offset_units == 0 {
        // A kept delete (its marker compacted away), or an old-style delete of unknown time.
        state.append_at_ns = kept.get(&entry.key).copied().unwrap_or(0);
        return Ok(state);
    }
    let offset = entry.offset_units * PADDING_BYTES;
    let record_bytes = needle::record_bytes(state.record_size(), source.version);
    let volume_id = source.volume_id;
    if offset + record_bytes > source.dat_bytes {
        return Err(format!(
            "volume {volume_id}: key {:x} at {offset} is past the .dat's {} bytes (compacted \
             meanwhile?)",
            entry.key, source.dat_bytes
        ));
    }
    let mut header = [0u8; needle::HEADER_BYTES];
    let read = |buffer: &mut [u8], at: u64| {
        source
            .dat
            .read_exact_at(buffer, at)
            .map_err(|e| format!("volume {volume_id}: read the .dat at {at}: {e}"))
    };
    read(&mut header, offset)?;
    let decoded = NeedleHeader::decode(&header)
        .map_err(|e| format!("volume {volume_id}: record at {offset}: {e}"))?;
    if decoded.key != entry.key || decoded.size != state.record_size() {
        return Err(format!(
            "volume {volume_id}: the record at {offset} is not key {:x}'s (compacted meanwhile?)",
            entry.key
        ));
    }
    let tail_at = offset + needle::HEADER_BYTES as u64 + u64::from(decoded.size);
    let mut tail = [0u8; 12];
    read(&mut tail, tail_at)?;
    let (checksum, stamp) = tail.split_at(4);
    state.append_at_ns = u64::from_be_bytes(stamp.try_into().expect("8 bytes"));
    if !state.is_deleted() {
        state.checksum = u32::from_be_bytes(checksum.try_into().expect("4 bytes"));
    }
    Ok(state)
}

/// Live needles hashed per turn before the digest yields to the core's other tasks.
pub const DIGEST_KEYS_PER_TURN: usize = 65_536;

/// Count and FNV-1a hash of (key, size) of live needles, folded in key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub count: u64,
    pub hash: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            count: 0,
            hash: FNV_OFFSET,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Digest {
    fn fold(&mut self, key: u64, size: u32) {
        self.count += 1;
        for byte in key.to_be_bytes().into_iter().chain(size.to_be_bytes()) {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    /// Folds at most `DIGEST_KEYS_PER_TURN` live needles of `map` from key `from`; the key
    /// to go on from, None when the map is done.
    pub fn fold_turn(&mut self, map: &NeedleMap, from: u64) -> Option<u64> {
        for (index, (key, value)) in map.iter_from(from).enumerate() {
            if index == DIGEST_KEYS_PER_TURN {
                return Some(key);
            }
            self.fold(key, value.size);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the digest is the same for the same live needles however they are folded in
    // turns, and differs when one size or one key differs.
    #[test]
    fn digest_tells_live_sets_apart() {
        let mut map = NeedleMap::new();
        for key in 1..=200_000u64 {
            let value = NeedleValue {
                offset_units: key,
                size: 10,
            };
            map.insert(key, value);
        }
        let whole = |map: &NeedleMap| {
            let mut digest = Digest::default();
            let mut from = 0;
            while let Some(next) = digest.fold_turn(map, from) {
                from = next;
            }
            digest
        };
        let first = whole(&map);
        assert_eq!(first.count, 200_000);
        assert_eq!(first, whole(&map));
        let mut other = NeedleMap::new();
        for (key, value) in map.iter() {
            other.insert(
                key,
                NeedleValue {
                    offset_units: 7,
                    ..value
                },
            );
        }
        assert_eq!(
            first,
            whole(&other),
            "offsets differ between replicas: not hashed"
        );
        other.insert(
            5,
            NeedleValue {
                offset_units: 7,
                size: 11,
            },
        );
        assert_ne!(first, whole(&other));
        other.insert(
            5,
            NeedleValue {
                offset_units: 7,
                size: 10,
            },
        );
        other.remove(6);
        other.insert(
            300_000,
            NeedleValue {
                offset_units: 7,
                size: 10,
            },
        );
        assert_ne!(first, whole(&other));
    }
}
