//! Recovery on open: the volume checks itself and repairs what a crash can leave behind,
//! with no manual step and without losing any needle that was completely written.
//!
//! 1. Load the `.idx`. A torn last entry (file length not a multiple of the entry size) is
//!    cut off. Every entry must point inside the `.dat`; the needles of the last
//!    `IDX_TAIL_CHECKED` entries are decoded in full (CRC included), because those are the
//!    ones a crash can leave unwritten in the `.dat`. Such a tail entry that fails is
//!    dropped (its append was never acknowledged); an entry anywhere else that points
//!    outside the `.dat` means the `.idx` is corrupt, and it is rebuilt from the `.dat`.
//! 2. Scan the `.dat` from the end of the furthest indexed needle: every valid needle found
//!    there is indexed again; the first torn or corrupt one ends the `.dat`, which is cut.
//! 3. A rewritten `.idx` replaces the old one atomically (temp file, fsync, rename).

use super::core::{VolumeConfig, VolumeCore, VolumeStats};
use super::file::{OpenError, VolumeIoError, VolumePaths, io_error, sync_dir};
use super::map::{NeedleMap, NeedleValue};
use super::scan::{DatScanner, ScanEnd};
use crate::format::needle::{self, Needle, NeedleError, Version};
use crate::format::{IdxEntry, OffsetWidth, idx};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How many of the last `.idx` entries get their needle fully checked on open.
pub const IDX_TAIL_CHECKED: usize = 64;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The `.idx` was missing or corrupt and was rebuilt from the `.dat`.
    pub idx_rebuilt: bool,
    /// Bytes of a torn last `.idx` entry that were cut off.
    pub idx_torn_bytes: u64,
    /// Tail `.idx` entries dropped because their needle was not (fully) in the `.dat`.
    pub idx_entries_dropped: u64,
    /// Needles found in the `.dat` after the last indexed one, and indexed.
    pub needles_reindexed: u64,
    /// Bytes cut from the end of the `.dat` (a torn or corrupt last needle).
    pub dat_bytes_truncated: u64,
    /// Why the `.dat` was cut, when it was.
    pub dat_torn_reason: Option<NeedleError>,
}

impl RecoveryReport {
    /// True when the files were already consistent.
    pub fn is_clean(&self) -> bool {
        *self == RecoveryReport::default()
    }
}

struct LoadedIndex {
    entries: Vec<IdxEntry>,
    /// Entries were dropped or the file had a torn tail: rewrite it.
    rewrite: bool,
}

pub(crate) fn recover(
    paths: &VolumePaths,
    config: VolumeConfig,
    dat: &File,
) -> Result<(VolumeCore, RecoveryReport), OpenError> {
    let dat_len = dat.metadata().map_err(io_error(&paths.dat, "stat"))?.len();
    let version = config.superblock.version;
    let data_start = config.superblock.block_bytes();
    let width = config.offset_width;
    let mut report = RecoveryReport::default();
    let idx_bytes = match fs::read(&paths.idx) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&paths.idx, "read")(e).into()),
    };
    let loaded = match &idx_bytes {
        Some(bytes) => load_index(bytes, width, dat, dat_len, data_start, version, &mut report)
            .map_err(io_error(&paths.dat, "read"))?,
        None => None,
    };
    let (mut entries, mut rewrite) = match loaded {
        Some(loaded) => (loaded.entries, loaded.rewrite),
        None => {
            report.idx_rebuilt = true;
            (Vec::new(), true)
        }
    };
    let kept = entries.len();
    let indexed_end = entries
        .iter()
        .filter(|e| e.offset_units != 0)
        .map(|e| e.offset_bytes() + needle::record_bytes(size_on_dat(e), version))
        .max()
        .unwrap_or(data_start)
        .max(data_start);
    let dat_end = scan_tail(
        dat,
        dat_len,
        version,
        indexed_end,
        &mut entries,
        &mut report,
    )
    .map_err(io_error(&paths.dat, "read"))?;
    if dat_end < dat_len {
        dat.set_len(dat_end)
            .map_err(io_error(&paths.dat, "truncate"))?;
        dat.sync_all().map_err(io_error(&paths.dat, "fsync"))?;
    }
    if !rewrite && idx_bytes.is_none() {
        rewrite = true;
    }
    let entry_bytes = width.entry_bytes();
    if rewrite {
        write_atomically(&paths.idx, &encode_entries(&entries, width))?;
    } else if entries.len() > kept {
        append_entries(
            &paths.idx,
            (kept * entry_bytes) as u64,
            &entries[kept..],
            width,
        )?;
    }
    let (map, stats) = load_map(&entries);
    let idx_end = (entries.len() * entry_bytes) as u64;
    Ok((
        VolumeCore::from_parts(config, map, stats, dat_end, idx_end),
        report,
    ))
}

/// The `size` field of the needle an entry points at (0 for a delete marker).
fn size_on_dat(entry: &IdxEntry) -> u32 {
    if entry.is_tombstone() { 0 } else { entry.size }
}

/// `None` when the `.idx` is corrupt and must be rebuilt.
fn load_index(
    bytes: &[u8],
    width: OffsetWidth,
    dat: &File,
    dat_len: u64,
    data_start: u64,
    version: Version,
    report: &mut RecoveryReport,
) -> io::Result<Option<LoadedIndex>> {
    let (parsed, torn) = idx::parse_entries(bytes, width);
    // All-zero entries are holes left by an `.idx` write that never happened.
    let mut entries: Vec<IdxEntry> = parsed
        .filter(|e| e.offset_units != 0 || e.is_tombstone())
        .collect();
    let mut rewrite = entries.len() * width.entry_bytes() != bytes.len();
    if torn.is_some() {
        report.idx_torn_bytes = (bytes.len() % width.entry_bytes()) as u64;
    }
    let tail_start = entries.len().saturating_sub(IDX_TAIL_CHECKED);
    let inside = |e: &IdxEntry| {
        e.offset_units == 0
            || (e.offset_bytes() >= data_start
                && e.offset_bytes() + needle::record_bytes(size_on_dat(e), version) <= dat_len)
    };
    if !entries[..tail_start].iter().all(inside) {
        return Ok(None);
    }
    let mut kept = entries[..tail_start].to_vec();
    for entry in &entries[tail_start..] {
        if inside(entry) && needle_matches(dat, entry, version)? {
            kept.push(*entry);
        } else {
            report.idx_entries_dropped += 1;
            rewrite = true;
        }
    }
    entries = kept;
    Ok(Some(LoadedIndex { entries, rewrite }))
}

/// Does the needle at `entry`'s offset decode (CRC included) with its key and size?
fn needle_matches(dat: &File, entry: &IdxEntry, version: Version) -> io::Result<bool> {
    if entry.offset_units == 0 {
        return Ok(true); // An old-style delete entry with no marker offset.
    }
    let size = size_on_dat(entry);
    let mut record = vec![0u8; needle::record_bytes(size, version) as usize];
    dat.read_exact_at(&mut record, entry.offset_bytes())?;
    Ok(match Needle::decode(&record, version) {
        Ok(found) => found.key == entry.key && found.body_size().ok() == Some(size),
        Err(_) => false,
    })
}

/// Indexes the valid needles after `start`; returns where the valid needles end.
fn scan_tail(
    dat: &File,
    dat_len: u64,
    version: Version,
    start: u64,
    entries: &mut Vec<IdxEntry>,
    report: &mut RecoveryReport,
) -> io::Result<u64> {
    let mut scanner = DatScanner::new(dat, dat_len, version, start);
    loop {
        match scanner.next_needle()? {
            Ok((offset, found)) => {
                entries.push(entry_for(offset, &found));
                report.needles_reindexed += 1;
            }
            Err(ScanEnd::Clean) => return Ok(dat_len),
            Err(ScanEnd::Torn { offset, error }) => {
                report.dat_bytes_truncated = dat_len - offset;
                report.dat_torn_reason = Some(error);
                return Ok(offset);
            }
        }
    }
}

/// The `.idx` entry a scanned needle gets: its size, or the tombstone for a delete marker.
pub(crate) fn entry_for(offset: u64, found: &Needle) -> IdxEntry {
    let size = found
        .body_size()
        .expect("a decoded needle has valid lengths");
    let size = if size == 0 {
        crate::format::TOMBSTONE_SIZE
    } else {
        size
    };
    IdxEntry {
        key: found.key,
        offset_units: offset / crate::format::PADDING_BYTES,
        size,
    }
}

pub(crate) fn encode_entries(entries: &[IdxEntry], width: OffsetWidth) -> Vec<u8> {
    let mut bytes = vec![0u8; entries.len() * width.entry_bytes()];
    for (entry, chunk) in entries
        .iter()
        .zip(bytes.chunks_exact_mut(width.entry_bytes()))
    {
        entry
            .encode(width, chunk)
            .expect("offsets inside the .dat fit the width");
    }
    bytes
}

fn append_entries(
    path: &Path,
    at: u64,
    entries: &[IdxEntry],
    width: OffsetWidth,
) -> Result<(), VolumeIoError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path, "open"))?;
    file.set_len(at).map_err(io_error(path, "truncate"))?;
    file.write_all_at(&encode_entries(entries, width), at)
        .map_err(io_error(path, "write"))?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

/// Replaces `path` with `bytes`: write a temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VolumeIoError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    let file = File::create(&temp).map_err(io_error(&temp, "create"))?;
    file.write_all_at(bytes, 0)
        .map_err(io_error(&temp, "write"))?;
    file.sync_all().map_err(io_error(&temp, "fsync"))?;
    fs::rename(&temp, path).map_err(io_error(path, "rename temp file over"))?;
    sync_dir(path)
}

/// Bulk-loads the map (last entry per key wins, tombstones remove) and derives the counters
/// applying the entries one by one would give: every write is counted once and is either
/// still live or was overwritten or deleted exactly once.
fn load_map(entries: &[IdxEntry]) -> (NeedleMap, VolumeStats) {
    let values = entries.iter().map(|e| {
        (
            e.key,
            NeedleValue {
                offset_units: e.offset_units,
                size: e.size,
            },
        )
    });
    let map = NeedleMap::from_sorted_or_not(values);
    let writes = entries.iter().filter(|e| !e.is_tombstone());
    let file_count = writes.clone().count() as u64;
    let written_bytes: u64 = writes.map(|e| u64::from(e.size)).sum();
    let live_bytes: u64 = map.iter().map(|(_, value)| u64::from(value.size)).sum();
    let live_count = map.len() as u64;
    assert!(live_count <= file_count && live_bytes <= written_bytes);
    let stats = VolumeStats {
        file_count,
        delete_count: file_count - live_count,
        deleted_bytes: written_bytes - live_bytes,
        live_count,
        max_key: entries.iter().map(|e| e.key).max().unwrap_or(0),
    };
    (map, stats)
}
