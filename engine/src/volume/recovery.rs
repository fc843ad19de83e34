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

use super::compact::CompactionRecovery;
use super::core::{VolumeConfig, VolumeCore, VolumeStats};
use super::file::{OpenError, VolumeIoError, VolumePaths, io_error, open_file, sync_dir};
use super::map::{NeedleMap, NeedleValue};
use super::scan::{DatScanner, ScanEnd};
use super::storage::{OpenMode, Storage, StorageFile};
use crate::format::needle::{self, Needle, NeedleError, Version};
use crate::format::{IdxEntry, OffsetWidth, idx};
use std::io;
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
    /// What an interrupted compaction left, and what was done with it.
    pub compaction: CompactionRecovery,
}

impl RecoveryReport {
    /// True when the files were already consistent.
    pub fn is_clean(&self) -> bool {
        *self == RecoveryReport::default()
    }
}

/// The `.idx` as loaded: a prefix of whole entries, bounds-checked and parsed on demand
/// (so a large index is never held twice in memory), then the tail entries that passed the
/// full check.
struct IndexImage<'a> {
    prefix: &'a [u8],
    tail: Vec<IdxEntry>,
    width: OffsetWidth,
    /// Entries were dropped, holes skipped, or the file had a torn tail: rewrite it.
    rewrite: bool,
}

impl IndexImage<'_> {
    fn entries(&self) -> impl Iterator<Item = IdxEntry> + '_ {
        let (prefix, torn) = idx::parse_entries(self.prefix, self.width);
        assert!(torn.is_none(), "the prefix holds whole entries");
        prefix.filter(not_a_hole).chain(self.tail.iter().copied())
    }
}

/// All-zero entries are holes left by an `.idx` write that never happened.
fn not_a_hole(entry: &IdxEntry) -> bool {
    entry.offset_units != 0 || entry.is_tombstone()
}

pub(crate) fn recover<S: Storage>(
    storage: &S,
    paths: &VolumePaths,
    config: VolumeConfig,
    dat: &S::File,
) -> Result<(VolumeCore, RecoveryReport), OpenError> {
    let dat_len = dat.len().map_err(io_error(&paths.dat, "stat"))?;
    let version = config.superblock.version;
    let data_start = config.superblock.block_bytes();
    let width = config.offset_width;
    let mut report = RecoveryReport::default();
    let idx_bytes = match storage.read_all(&paths.idx) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&paths.idx, "read")(e).into()),
    };
    let check = DatCheck {
        dat,
        dat_len,
        data_start,
        version,
    };
    let loaded = match &idx_bytes {
        Some(bytes) => {
            load_index(bytes, width, &check, &mut report).map_err(io_error(&paths.dat, "read"))?
        }
        None => None,
    };
    let image = loaded.unwrap_or_else(|| {
        report.idx_rebuilt = true;
        IndexImage {
            prefix: &[],
            tail: Vec::new(),
            width,
            rewrite: true,
        }
    });
    let indexed_end = image
        .entries()
        .filter(|e| e.offset_units != 0)
        .map(|e| e.offset_bytes() + needle::record_bytes(size_on_dat(&e), version))
        .max()
        .unwrap_or(data_start)
        .max(data_start);
    let mut found = Vec::new();
    let dat_end = scan_tail(&check, indexed_end, &mut found, &mut report)
        .map_err(io_error(&paths.dat, "read"))?;
    if dat_end < dat_len {
        dat.set_len(dat_end)
            .map_err(io_error(&paths.dat, "truncate"))?;
        dat.sync_data().map_err(io_error(&paths.dat, "fsync"))?;
    }
    let kept_bytes = idx_bytes.as_ref().map_or(0, Vec::len) as u64;
    let idx_end = persist_index(storage, &paths.idx, &image, kept_bytes, &found)?;
    let all_entries = || image.entries().chain(found.iter().copied());
    let (map, stats) = load_map(all_entries, version);
    let core = VolumeCore::from_parts(config, map, stats, dat_end, idx_end);
    Ok((core, report))
}

/// Writes the recovered `.idx`: the whole file again (atomically) when entries were dropped
/// or it is new, else only the re-indexed entries appended. Returns the `.idx` length.
fn persist_index<S: Storage>(
    storage: &S,
    path: &Path,
    image: &IndexImage,
    kept_bytes: u64,
    found: &[IdxEntry],
) -> Result<u64, VolumeIoError> {
    if image.rewrite {
        let bytes = encode_entries(image.entries().chain(found.iter().copied()), image.width);
        write_atomically(storage, path, &bytes)?;
        return Ok(bytes.len() as u64);
    }
    if !found.is_empty() {
        let entries = found.iter().copied();
        append_entries(storage, path, kept_bytes, entries, image.width)?;
    }
    Ok(kept_bytes + (found.len() * image.width.entry_bytes()) as u64)
}

/// The `.dat` that `.idx` entries are checked against.
struct DatCheck<'f, F: StorageFile> {
    dat: &'f F,
    dat_len: u64,
    data_start: u64,
    version: Version,
}

impl<F: StorageFile> DatCheck<'_, F> {
    /// Does the entry's needle lie inside the `.dat`, after the superblock?
    fn inside(&self, entry: &IdxEntry) -> bool {
        let end = entry.offset_bytes() + needle::record_bytes(size_on_dat(entry), self.version);
        entry.offset_units == 0 || (entry.offset_bytes() >= self.data_start && end <= self.dat_len)
    }
}

/// The `size` field of the needle an entry points at (0 for a delete marker).
fn size_on_dat(entry: &IdxEntry) -> u32 {
    if entry.is_tombstone() { 0 } else { entry.size }
}

/// `None` when the `.idx` is corrupt and must be rebuilt.
fn load_index<'a, F: StorageFile>(
    bytes: &'a [u8],
    width: OffsetWidth,
    check: &DatCheck<F>,
    report: &mut RecoveryReport,
) -> io::Result<Option<IndexImage<'a>>> {
    let entry_bytes = width.entry_bytes();
    let torn_bytes = bytes.len() % entry_bytes;
    report.idx_torn_bytes = torn_bytes as u64;
    let whole = &bytes[..bytes.len() - torn_bytes];
    let tail_len = (whole.len() / entry_bytes).min(IDX_TAIL_CHECKED) * entry_bytes;
    let (prefix, tail_bytes) = whole.split_at(whole.len() - tail_len);
    let mut rewrite = torn_bytes != 0;
    for entry in idx::parse_entries(prefix, width).0 {
        if !not_a_hole(&entry) {
            rewrite = true;
        } else if !check.inside(&entry) {
            return Ok(None);
        }
    }
    let mut tail = Vec::with_capacity(IDX_TAIL_CHECKED);
    for entry in idx::parse_entries(tail_bytes, width).0 {
        if !not_a_hole(&entry) {
            rewrite = true;
        } else if check.inside(&entry) && needle_matches(check, &entry)? {
            tail.push(entry);
        } else {
            report.idx_entries_dropped += 1;
            rewrite = true;
        }
    }
    Ok(Some(IndexImage {
        prefix,
        tail,
        width,
        rewrite,
    }))
}

/// Does the needle at `entry`'s offset decode (CRC included) with its key and size?
fn needle_matches<F: StorageFile>(check: &DatCheck<F>, entry: &IdxEntry) -> io::Result<bool> {
    let version = check.version;
    if entry.offset_units == 0 {
        return Ok(true); // An old-style delete entry with no marker offset.
    }
    let size = size_on_dat(entry);
    let mut record = vec![0u8; needle::record_bytes(size, version) as usize];
    check.dat.read_exact_at(&mut record, entry.offset_bytes())?;
    Ok(match Needle::decode(&record, version) {
        Ok(found) => found.key == entry.key && found.body_size().ok() == Some(size),
        Err(_) => false,
    })
}

/// Indexes the valid needles after `start`; returns where the valid needles end.
fn scan_tail<F: StorageFile>(
    check: &DatCheck<F>,
    start: u64,
    entries: &mut Vec<IdxEntry>,
    report: &mut RecoveryReport,
) -> io::Result<u64> {
    let mut scanner = DatScanner::new(check.dat, check.dat_len, check.version, start);
    loop {
        match scanner.next_needle()? {
            Ok((offset, found)) => {
                entries.push(entry_for(offset, &found));
                report.needles_reindexed += 1;
            }
            Err(ScanEnd::Clean) => return Ok(check.dat_len),
            Err(ScanEnd::Torn { offset, error }) => {
                report.dat_bytes_truncated = check.dat_len - offset;
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

pub(crate) fn encode_entries(
    entries: impl Iterator<Item = IdxEntry>,
    width: OffsetWidth,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut entry_bytes = [0u8; 17];
    for entry in entries {
        let encoded = &mut entry_bytes[..width.entry_bytes()];
        entry
            .encode(width, encoded)
            .expect("offsets inside the .dat fit the width");
        bytes.extend_from_slice(encoded);
    }
    bytes
}

fn append_entries<S: Storage>(
    storage: &S,
    path: &Path,
    at: u64,
    entries: impl Iterator<Item = IdxEntry>,
    width: OffsetWidth,
) -> Result<(), VolumeIoError> {
    let file = open_file(storage, path, OpenMode::ReadWrite)?;
    file.set_len(at).map_err(io_error(path, "truncate"))?;
    file.write_all_at(&encode_entries(entries, width), at)
        .map_err(io_error(path, "write"))?;
    file.sync_data().map_err(io_error(path, "fsync"))
}

/// Replaces `path` with `bytes`: write a temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically<S: Storage>(
    storage: &S,
    path: &Path,
    bytes: &[u8],
) -> Result<(), VolumeIoError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    let file = open_file(storage, &temp, OpenMode::Truncate)?;
    file.write_all_at(bytes, 0)
        .map_err(io_error(&temp, "write"))?;
    file.sync_data().map_err(io_error(&temp, "fsync"))?;
    storage
        .rename(&temp, path)
        .map_err(io_error(path, "rename temp file over"))?;
    sync_dir(storage, path)
}

/// Bulk-loads the map (last entry per key wins, tombstones remove) and derives the counters
/// applying the entries one by one would give: every write is counted once and is either
/// still live or was overwritten or deleted exactly once.
fn load_map<I: Iterator<Item = IdxEntry>>(
    entries: impl Fn() -> I,
    version: Version,
) -> (NeedleMap, VolumeStats) {
    let values = entries().map(|e| {
        (
            e.key,
            NeedleValue {
                offset_units: e.offset_units,
                size: e.size,
            },
        )
    });
    let map = NeedleMap::from_sorted_or_not(values);
    let (mut file_count, mut written_bytes, mut max_key) = (0u64, 0u64, 0u64);
    for entry in entries() {
        max_key = max_key.max(entry.key);
        if !entry.is_tombstone() {
            file_count += 1;
            written_bytes += u64::from(entry.size);
        }
    }
    let (mut live_bytes, mut live_record_bytes) = (0u64, 0u64);
    for (_, value) in map.iter() {
        live_bytes += u64::from(value.size);
        live_record_bytes += needle::record_bytes(value.size, version);
    }
    let live_count = map.len() as u64;
    assert!(live_count <= file_count && live_bytes <= written_bytes);
    let stats = VolumeStats {
        file_count,
        delete_count: file_count - live_count,
        deleted_bytes: written_bytes - live_bytes,
        live_count,
        max_key,
        live_record_bytes,
    };
    (map, stats)
}
