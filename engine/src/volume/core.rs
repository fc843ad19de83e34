//! `VolumeCore`: the logic of one volume with no I/O. It decides where each needle goes and
//! which bytes to write, and is told when writes completed; the caller (io_uring on the
//! server's hot path, `std::fs` in `FileVolume`) does the reads and writes.
//!
//! Protocol for an append (a write or a delete):
//! 1. `plan_write` / `plan_delete` reserve `[offset, offset + record.len())` in the `.dat`
//!    and return the record bytes. Several plans may be in flight at distinct offsets.
//! 2. The caller writes the record at `offset` in the `.dat`.
//! 3. `complete(&plan)` makes the key readable (or deleted) and returns the `.idx` entry and
//!    the `.idx` offset to write it at. Acknowledge the client only after that `.idx` write
//!    (and fsync, when asked): recovery trusts the `.idx` up to its last entry and re-scans
//!    the `.dat` after the furthest indexed needle.
//! 4. If the `.dat` write failed, `abort(plan)` instead. Aborting the last reservation gives
//!    the space back; aborting an earlier one would leave a hole, so the volume turns
//!    read-only (reads still work; recovery on the next open handles the hole).
//!
//! Before overwriting or deleting a live key, check its cookie: read the 16-byte header at
//! `plan_read(key)?.offset` and call `check_cookie` (the map keeps no cookies, to stay
//! small). Reads: `plan_read` gives the record's place; read `len` bytes and call
//! `finish_read`, which checks key, size, CRC, cookie and TTL.

use super::map::{NeedleMap, NeedleValue};
use crate::format::needle::{self, Needle, NeedleError, NeedleHeader, Version};
use crate::format::{IdxEntry, OffsetWidth, PADDING_BYTES, SuperBlock, TOMBSTONE_SIZE};
use std::fmt;

/// What a volume is, given at creation.
#[derive(Clone, Debug)]
pub struct VolumeConfig {
    pub id: u32,
    /// "" for the default collection.
    pub collection: String,
    pub superblock: SuperBlock,
    /// `.idx` offset width; Kelp creates volumes with `OffsetWidth::Five` (see FORMAT.md).
    pub offset_width: OffsetWidth,
    /// Writes are refused once the `.dat` reaches this size (deletes still work).
    pub size_limit_bytes: u64,
}

/// Counters as SeaweedFS reports them in heartbeats and `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeStats {
    /// Writes ever indexed (overwrites included).
    pub file_count: u64,
    /// Deletes plus overwrites.
    pub delete_count: u64,
    /// `.idx` sizes of the needles deleted or overwritten.
    pub deleted_bytes: u64,
    /// Keys readable now.
    pub live_count: u64,
    /// Largest key ever written (the master raises its sequencer past it).
    pub max_key: u64,
    /// Record bytes (header, body, tail, padding) of the live needles: what a compaction
    /// copies.
    pub live_record_bytes: u64,
}

/// Why a volume refuses writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOnlyReason {
    /// Set by an operator (or the `.vif`).
    Marked,
    /// A `.dat` write failed before a later one completed, leaving a hole.
    FailedWrite { offset: u64 },
    /// Version-2 volumes are read, never appended to.
    OldVersion,
    /// A compaction failed during its commit (the file swap): the files on disk are the new
    /// volume, or become it or the old one when the volume is opened again. Reopen it.
    CompactionCommit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    ReadOnly {
        volume_id: u32,
        reason: ReadOnlyReason,
    },
    /// The `.dat` reached the size limit: the volume is full for writes.
    SizeLimit {
        volume_id: u32,
        dat_bytes: u64,
        limit_bytes: u64,
    },
    /// The record would end past what the `.idx` offsets can address.
    VolumeBytesMax {
        volume_id: u32,
        end_bytes: u64,
        max_bytes: u64,
    },
    BadNeedle {
        volume_id: u32,
        error: NeedleError,
    },
    NotFound {
        volume_id: u32,
        key: u64,
    },
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::ReadOnly { volume_id, reason } => {
                write!(f, "volume {volume_id} is read-only ({reason:?})")
            }
            AppendError::SizeLimit {
                volume_id,
                dat_bytes,
                limit_bytes,
            } => write!(
                f,
                "volume {volume_id} is full: {dat_bytes} bytes, size limit {limit_bytes}"
            ),
            AppendError::VolumeBytesMax {
                volume_id,
                end_bytes,
                max_bytes,
            } => write!(
                f,
                "volume {volume_id} cannot grow to {end_bytes} bytes: its index offsets address at most {max_bytes}"
            ),
            AppendError::BadNeedle { volume_id, error } => write!(f, "volume {volume_id}: {error}"),
            AppendError::NotFound { volume_id, key } => {
                write!(f, "volume {volume_id} has no needle {key:x}")
            }
        }
    }
}
impl std::error::Error for AppendError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound {
        volume_id: u32,
        key: u64,
    },
    CookieMismatch {
        volume_id: u32,
        key: u64,
    },
    Expired {
        volume_id: u32,
        key: u64,
    },
    /// The bytes at the indexed offset are not the needle the index promised.
    Corrupt {
        volume_id: u32,
        key: u64,
        offset: u64,
        error: NeedleError,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound { volume_id, key } => {
                write!(f, "volume {volume_id} has no needle {key:x}")
            }
            ReadError::CookieMismatch { volume_id, key } => {
                write!(f, "volume {volume_id} needle {key:x}: wrong cookie")
            }
            ReadError::Expired { volume_id, key } => {
                write!(f, "volume {volume_id} needle {key:x} expired")
            }
            ReadError::Corrupt {
                volume_id,
                key,
                offset,
                error,
            } => write!(
                f,
                "volume {volume_id} needle {key:x} at offset {offset}: {error}"
            ),
        }
    }
}
impl std::error::Error for ReadError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendKind {
    Write,
    Delete,
}

/// A reserved region of the `.dat` and the record to write there.
#[derive(Debug)]
pub struct AppendPlan {
    pub kind: AppendKind,
    pub key: u64,
    /// Byte offset in the `.dat` (a multiple of 8).
    pub offset: u64,
    /// The whole needle record, padding included.
    pub record: Vec<u8>,
    /// The needle's `size` field (0 for a delete).
    pub size: u32,
    /// The CRC32-C of the data, as written in the record (its ETag).
    pub checksum: u32,
    pub append_at_ns: u64,
}

/// An `.idx` entry to write at `offset` in the `.idx`.
#[derive(Clone, Copy, Debug)]
pub struct IdxAppend {
    pub offset: u64,
    pub entry: IdxEntry,
    bytes: [u8; 17],
    len: usize,
    /// What `complete` changed, so that `revert_complete` can undo it.
    replaced: Option<NeedleValue>,
    stats_before: VolumeStats,
}

impl IdxAppend {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What to read for a key: `len` bytes at `offset` of the `.dat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    pub key: u64,
    pub offset: u64,
    pub len: u64,
    pub size: u32,
}

/// The state of one volume (see the module docs for the append protocol).
#[derive(Debug)]
pub struct VolumeCore {
    config: VolumeConfig,
    map: NeedleMap,
    stats: VolumeStats,
    /// Where the next append goes (reservations included).
    dat_end: u64,
    /// Where the next `.idx` entry goes.
    idx_end: u64,
    read_only: Option<ReadOnlyReason>,
    appends_in_flight: u32,
    last_append_at_ns: u64,
}

impl VolumeCore {
    /// A new, empty volume. The caller writes `config.superblock.encode()` at offset 0.
    pub fn new(config: VolumeConfig) -> VolumeCore {
        let dat_end = config.superblock.block_bytes();
        VolumeCore::from_parts(config, NeedleMap::new(), VolumeStats::default(), dat_end, 0)
    }

    /// A volume rebuilt by recovery from its files.
    pub fn from_parts(
        config: VolumeConfig,
        map: NeedleMap,
        stats: VolumeStats,
        dat_end: u64,
        idx_end: u64,
    ) -> VolumeCore {
        assert!(dat_end >= config.superblock.block_bytes());
        assert_eq!(idx_end % config.offset_width.entry_bytes() as u64, 0);
        let read_only =
            (config.superblock.version == Version::V2).then_some(ReadOnlyReason::OldVersion);
        VolumeCore {
            config,
            map,
            stats,
            dat_end,
            idx_end,
            read_only,
            appends_in_flight: 0,
            last_append_at_ns: 0,
        }
    }

    pub fn id(&self) -> u32 {
        self.config.id
    }

    pub fn config(&self) -> &VolumeConfig {
        &self.config
    }

    pub fn version(&self) -> Version {
        self.config.superblock.version
    }

    pub fn stats(&self) -> VolumeStats {
        VolumeStats {
            live_count: self.map.len() as u64,
            ..self.stats
        }
    }

    /// Bytes of the `.dat`, reservations in flight included.
    pub fn dat_bytes(&self) -> u64 {
        self.dat_end
    }

    /// Bytes of the `.dat` a compaction gives back: deleted and overwritten needles, delete
    /// markers, and space a failed write left. Needles past their TTL are not counted here
    /// (telling them needs their bytes); a compaction drops them too.
    pub fn garbage_bytes(&self) -> u64 {
        let data_bytes = self.dat_end - self.config.superblock.block_bytes();
        data_bytes.saturating_sub(self.stats.live_record_bytes)
    }

    /// `garbage_bytes` over the bytes after the superblock (0 for an empty volume): the
    /// master compacts a volume whose ratio reaches its garbage threshold.
    pub fn garbage_ratio(&self) -> f64 {
        let data_bytes = self.dat_end - self.config.superblock.block_bytes();
        if data_bytes == 0 {
            return 0.0;
        }
        let ratio = self.garbage_bytes() as f64 / data_bytes as f64;
        assert!((0.0..=1.0).contains(&ratio));
        ratio
    }

    /// The append time of the latest append planned (0 before the first since open).
    pub fn last_append_at_ns(&self) -> u64 {
        self.last_append_at_ns
    }

    /// Appends after this one get a later append time (a compacted volume continues the
    /// old one's clock).
    pub(crate) fn continue_append_clock(&mut self, last_append_at_ns: u64) {
        self.last_append_at_ns = self.last_append_at_ns.max(last_append_at_ns);
    }

    pub fn idx_bytes(&self) -> u64 {
        self.idx_end
    }

    pub fn read_only(&self) -> Option<&ReadOnlyReason> {
        self.read_only.as_ref()
    }

    /// Refuses appends for `reason` from now on (reads keep working).
    pub(crate) fn refuse_appends(&mut self, reason: ReadOnlyReason) {
        self.read_only = Some(reason);
    }

    /// Marks (or clears an operator mark) read-only. Other reasons cannot be cleared.
    pub fn set_read_only(&mut self, read_only: bool) {
        match (&self.read_only, read_only) {
            (None, true) => self.read_only = Some(ReadOnlyReason::Marked),
            (Some(ReadOnlyReason::Marked), false) => self.read_only = None,
            _ => {}
        }
    }

    /// True once the `.dat` reached the size limit: the master should stop assigning here.
    pub fn is_full(&self) -> bool {
        self.dat_end >= self.config.size_limit_bytes
    }

    pub fn appends_in_flight(&self) -> u32 {
        self.appends_in_flight
    }

    pub fn map(&self) -> &NeedleMap {
        &self.map
    }

    /// Where `key` is, if it is live.
    pub fn lookup(&self, key: u64) -> Option<NeedleValue> {
        self.map.get(key)
    }

    /// Reserves space for `needle` and encodes it. Its `append_at_ns` is set to `now_ns`, or
    /// just after the previous append's if the clock went back.
    pub fn plan_write(&mut self, needle: &Needle, now_ns: u64) -> Result<AppendPlan, AppendError> {
        let volume_id = self.config.id;
        if let Some(reason) = &self.read_only {
            return Err(AppendError::ReadOnly {
                volume_id,
                reason: reason.clone(),
            });
        }
        if needle.data.is_empty() {
            let error = NeedleError::EmptyData { key: needle.key };
            return Err(AppendError::BadNeedle { volume_id, error });
        }
        if self.is_full() {
            return Err(AppendError::SizeLimit {
                volume_id,
                dat_bytes: self.dat_end,
                limit_bytes: self.config.size_limit_bytes,
            });
        }
        self.plan_append(AppendKind::Write, needle, now_ns)
    }

    /// Reserves space for a delete marker of `key`. The caller has checked the cookie (see
    /// `check_cookie`). Allowed on a full volume (deletes free space for vacuum).
    pub fn plan_delete(
        &mut self,
        key: u64,
        cookie: u32,
        now_ns: u64,
    ) -> Result<AppendPlan, AppendError> {
        let volume_id = self.config.id;
        if let Some(reason) = &self.read_only {
            return Err(AppendError::ReadOnly {
                volume_id,
                reason: reason.clone(),
            });
        }
        if self.map.get(key).is_none() {
            return Err(AppendError::NotFound { volume_id, key });
        }
        let tombstone = Needle::tombstone(key, cookie, 0);
        self.plan_append(AppendKind::Delete, &tombstone, now_ns)
    }

    /// Reserves space for `needle`, a record copied from another replica of this volume (a
    /// repair), keeping its append time: which of two events on a key is the later one is
    /// decided by append times, so a copy must not look newer than it is. A needle with data
    /// is written; one without is a delete marker, for a key that is live here.
    pub fn plan_copy(&mut self, needle: &Needle) -> Result<AppendPlan, AppendError> {
        let volume_id = self.config.id;
        assert!(
            needle.append_at_ns > 0,
            "a copied record has an append time"
        );
        if let Some(reason) = &self.read_only {
            return Err(AppendError::ReadOnly {
                volume_id,
                reason: reason.clone(),
            });
        }
        let kind = match needle.data.is_empty() {
            true if self.map.get(needle.key).is_none() => {
                return Err(AppendError::NotFound {
                    volume_id,
                    key: needle.key,
                });
            }
            true => AppendKind::Delete,
            false if self.is_full() => {
                return Err(AppendError::SizeLimit {
                    volume_id,
                    dat_bytes: self.dat_end,
                    limit_bytes: self.config.size_limit_bytes,
                });
            }
            false => AppendKind::Write,
        };
        self.plan_stamped(kind, needle, needle.append_at_ns)
    }

    fn plan_append(
        &mut self,
        kind: AppendKind,
        needle: &Needle,
        now_ns: u64,
    ) -> Result<AppendPlan, AppendError> {
        let append_at_ns = now_ns.max(self.last_append_at_ns + 1);
        self.plan_stamped(kind, needle, append_at_ns)
    }

    /// Reserves space for `needle` with the append time `append_at_ns` and encodes it.
    fn plan_stamped(
        &mut self,
        kind: AppendKind,
        needle: &Needle,
        append_at_ns: u64,
    ) -> Result<AppendPlan, AppendError> {
        let volume_id = self.config.id;
        let record_len = needle
            .record_bytes(Version::V3)
            .map_err(|error| AppendError::BadNeedle { volume_id, error })?;
        let end_bytes = self.dat_end + record_len;
        let max_bytes = self.config.offset_width.volume_bytes_max();
        if end_bytes > max_bytes {
            return Err(AppendError::VolumeBytesMax {
                volume_id,
                end_bytes,
                max_bytes,
            });
        }
        let stamped = Needle {
            append_at_ns,
            ..needle.clone()
        };
        let mut record = Vec::with_capacity(record_len as usize);
        let size = stamped
            .encode(Version::V3, &mut record)
            .map_err(|error| AppendError::BadNeedle { volume_id, error })?;
        assert_eq!(record.len() as u64, record_len);
        assert_eq!(self.dat_end % PADDING_BYTES, 0);
        let checksum = Needle::encoded_checksum(&record, size);
        let plan = AppendPlan {
            kind,
            key: needle.key,
            offset: self.dat_end,
            record,
            size,
            checksum,
            append_at_ns,
        };
        self.dat_end = end_bytes;
        self.last_append_at_ns = self.last_append_at_ns.max(append_at_ns);
        self.appends_in_flight += 1;
        Ok(plan)
    }

    /// The `.dat` write of `plan` completed: the key becomes readable (or deleted). Returns
    /// the `.idx` entry to append.
    pub fn complete(&mut self, plan: &AppendPlan) -> IdxAppend {
        assert!(self.appends_in_flight > 0);
        assert!(plan.offset + plan.record.len() as u64 <= self.dat_end);
        self.appends_in_flight -= 1;
        let offset_units = plan.offset / PADDING_BYTES;
        let entry = match plan.kind {
            AppendKind::Write => IdxEntry {
                key: plan.key,
                offset_units,
                size: plan.size,
            },
            AppendKind::Delete => IdxEntry {
                key: plan.key,
                offset_units,
                size: TOMBSTONE_SIZE,
            },
        };
        let stats_before = self.stats;
        let version = self.version();
        let replaced = apply_entry(&mut self.map, &mut self.stats, entry, version);
        let width = self.config.offset_width;
        let mut bytes = [0u8; 17];
        entry
            .encode(width, &mut bytes)
            .expect("offset checked against the width when planned");
        let append = IdxAppend {
            offset: self.idx_end,
            entry,
            bytes,
            len: width.entry_bytes(),
            replaced,
            stats_before,
        };
        self.idx_end += width.entry_bytes() as u64;
        append
    }

    /// The `.idx` write of `append` failed (it must be the last `complete` handed out, its
    /// write done right after): the key goes back to what it was and the entry's place is
    /// handed out again. So the map never holds a change the `.idx` lacks, which a
    /// compaction (it replays the `.idx`) and a restart would not see. The needle's record
    /// stays in the `.dat`, unindexed: the write was not acknowledged.
    pub fn revert_complete(&mut self, append: &IdxAppend) {
        assert_eq!(
            append.offset + append.len as u64,
            self.idx_end,
            "the last entry"
        );
        assert!(self.stats.file_count >= append.stats_before.file_count);
        self.idx_end = append.offset;
        self.stats = append.stats_before;
        let key = append.entry.key;
        match append.replaced {
            Some(value) => self.map.insert(key, value),
            None => self.map.remove(key),
        };
    }

    /// The `.dat` write of `plan` failed.
    pub fn abort(&mut self, plan: AppendPlan) {
        assert!(self.appends_in_flight > 0);
        self.appends_in_flight -= 1;
        let plan_end = plan.offset + plan.record.len() as u64;
        if plan_end == self.dat_end {
            self.dat_end = plan.offset;
        } else {
            self.read_only = Some(ReadOnlyReason::FailedWrite {
                offset: plan.offset,
            });
        }
    }

    /// Applies one `.idx` entry (from a completed append or from recovery) to the map and
    /// the counters. Entries must be applied in `.idx` order.
    pub fn apply_entry(&mut self, entry: IdxEntry) {
        let version = self.version();
        apply_entry(&mut self.map, &mut self.stats, entry, version);
    }

    /// Where to read `key`: its whole record.
    pub fn plan_read(&self, key: u64) -> Result<ReadPlan, ReadError> {
        let value = self.map.get(key).ok_or(ReadError::NotFound {
            volume_id: self.config.id,
            key,
        })?;
        Ok(ReadPlan {
            key,
            offset: value.offset_units * PADDING_BYTES,
            len: needle::record_bytes(value.size, self.version()),
            size: value.size,
        })
    }

    /// Decodes the bytes read for `plan` and checks key, size, CRC, cookie and TTL (at
    /// `now_ns`, nanoseconds since the Unix epoch).
    pub fn finish_read<'a>(
        &self,
        plan: &ReadPlan,
        record: &'a [u8],
        cookie: u32,
        now_ns: u64,
    ) -> Result<Needle<'a>, ReadError> {
        let header = NeedleHeader::decode(record).map_err(|error| self.corrupt(plan, error))?;
        self.check_found(plan, &header)?;
        if header.size != plan.size {
            let error = NeedleError::SizeMismatch {
                want: plan.size,
                found: header.size,
            };
            return Err(self.corrupt(plan, error));
        }
        let needle =
            Needle::decode(record, self.version()).map_err(|error| self.corrupt(plan, error))?;
        if needle.cookie != cookie {
            return Err(ReadError::CookieMismatch {
                volume_id: self.config.id,
                key: plan.key,
            });
        }
        if needle.is_expired(now_ns) {
            return Err(ReadError::Expired {
                volume_id: self.config.id,
                key: plan.key,
            });
        }
        Ok(needle)
    }

    /// Checks the 16-byte header read at `plan.offset`: the right key, size and cookie.
    /// Used before a delete or an overwrite, and by reads that skip the data.
    pub fn check_cookie(
        &self,
        plan: &ReadPlan,
        header: &[u8],
        cookie: u32,
    ) -> Result<(), ReadError> {
        let header = NeedleHeader::decode(header).map_err(|error| self.corrupt(plan, error))?;
        self.check_found(plan, &header)?;
        if header.size != plan.size {
            let error = NeedleError::SizeMismatch {
                want: plan.size,
                found: header.size,
            };
            return Err(self.corrupt(plan, error));
        }
        if header.cookie != cookie {
            return Err(ReadError::CookieMismatch {
                volume_id: self.config.id,
                key: plan.key,
            });
        }
        Ok(())
    }

    fn check_found(&self, plan: &ReadPlan, header: &NeedleHeader) -> Result<(), ReadError> {
        if header.key != plan.key {
            let error = NeedleError::WrongKey {
                want: plan.key,
                found: header.key,
            };
            return Err(self.corrupt(plan, error));
        }
        Ok(())
    }

    fn corrupt(&self, plan: &ReadPlan, error: NeedleError) -> ReadError {
        ReadError::Corrupt {
            volume_id: self.config.id,
            key: plan.key,
            offset: plan.offset,
            error,
        }
    }
}

/// Applies one `.idx` entry to a map and its counters (SeaweedFS's counting rules); returns
/// the key's value before.
pub(crate) fn apply_entry(
    map: &mut NeedleMap,
    stats: &mut VolumeStats,
    entry: IdxEntry,
    version: Version,
) -> Option<NeedleValue> {
    stats.max_key = stats.max_key.max(entry.key);
    let forget = |stats: &mut VolumeStats, old: NeedleValue| {
        stats.delete_count += 1;
        stats.deleted_bytes += u64::from(old.size);
        let old_record_bytes = needle::record_bytes(old.size, version);
        assert!(stats.live_record_bytes >= old_record_bytes);
        stats.live_record_bytes -= old_record_bytes;
    };
    if entry.is_tombstone() {
        let old = map.remove(entry.key);
        if let Some(old) = old {
            forget(stats, old);
        }
        return old;
    }
    let value = NeedleValue {
        offset_units: entry.offset_units,
        size: entry.size,
    };
    stats.file_count += 1;
    stats.live_record_bytes += needle::record_bytes(entry.size, version);
    let old = map.insert(entry.key, value);
    if let Some(old) = old {
        forget(stats, old);
    }
    old
}
