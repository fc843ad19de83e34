//! The I/O side of a compaction: blocking, `Send`, run off the volume's event loop. It owns
//! the new files and the new needle map, reads only immutable regions of the old files, and
//! does the commit's fsyncs and renames.

use super::{CompactError, CopyBatch, ReplayBatch, StartPlan, StepDone};
use crate::format::needle::{self, Needle, NeedleError, NeedleHeader};
use crate::format::{IdxEntry, PADDING_BYTES, TOMBSTONE_SIZE, idx};
use crate::limits;
use crate::volume::core::{VolumeStats, apply_entry};
use crate::volume::file::{VolumeIoError, VolumePaths, io_error, open_file, sync_dir};
use crate::volume::map::NeedleMap;
use crate::volume::storage::{OpenMode, Storage, StorageFile};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// The new files of a compaction and what it knows about them (see the module docs of
/// `compact` for when each method runs).
#[derive(Debug)]
pub struct CompactIo<S: Storage> {
    storage: S,
    paths: VolumePaths,
    start: StartPlan,
    old_dat: Arc<S::File>,
    old_idx: S::File,
    cpd: S::File,
    cpx: S::File,
    cpd_end: u64,
    cpx_end: u64,
    map: NeedleMap,
    stats: VolumeStats,
    /// Needles the copy dropped (expired or unreadable): the only live needles of the volume
    /// the new files may lack.
    dropped: u64,
    /// Records read from the old `.dat`, and the bytes of the new records and entries
    /// (kept between steps so a step allocates nothing once they have grown).
    read_buffer: Vec<u8>,
    dat_out: Vec<u8>,
    idx_out: Vec<u8>,
}

/// The committed files and the new needle map, for `Compaction::finish`.
#[derive(Debug)]
pub struct CommitDone<S: Storage> {
    step: StepDone,
    parts: CommitParts<S>,
}

#[derive(Debug)]
pub(super) struct CommitParts<S: Storage> {
    pub storage: S,
    pub paths: VolumePaths,
    pub dat: S::File,
    pub idx: S::File,
    pub map: NeedleMap,
    pub stats: VolumeStats,
    pub io_micros: u64,
}

impl<S: Storage> CommitDone<S> {
    pub(super) fn into_parts(self) -> (StepDone, CommitParts<S>) {
        (self.step, self.parts)
    }
}

/// One record to append to the new files: where it is read from (or a made-up delete
/// marker) and its new `.idx` size field.
#[derive(Clone, Copy, Debug)]
struct Record {
    key: u64,
    /// Offset in the old `.dat`; `None` for a delete marker to encode.
    offset: Option<u64>,
    len: u64,
    size: u32,
}

impl<S: Storage> CompactIo<S> {
    /// Checks the free space, clears what an abandoned compaction left, and creates the new
    /// files: the `.cpd` starting with the old superblock (extra included) with the new
    /// compaction revision, and an empty `.cpx`; then fsyncs the directory, so that their
    /// names are durable before a marker's can be (a directory may keep some changes and
    /// not others when its fsync fails or is cut short).
    pub fn create(
        storage: S,
        paths: VolumePaths,
        old_dat: Arc<S::File>,
        start: &StartPlan,
    ) -> Result<CompactIo<S>, CompactError> {
        check_space(&storage, &paths, start.bytes_needed)?;
        clear_leftovers(&storage, &paths)?;
        let mut superblock = vec![0u8; start.superblock_bytes as usize];
        old_dat
            .read_exact_at(&mut superblock, 0)
            .map_err(io_error(&paths.dat, "read superblock"))?;
        superblock[4..6].copy_from_slice(&start.new_revision.to_be_bytes());
        let cpd = open_file(&storage, &paths.cpd, OpenMode::CreateNew)?;
        cpd.write_all_at(&superblock, 0)
            .map_err(io_error(&paths.cpd, "write superblock"))?;
        let cpx = open_file(&storage, &paths.cpx, OpenMode::CreateNew)?;
        sync_dir(&storage, &paths.cpd)?;
        let old_idx = open_file(&storage, &paths.idx, OpenMode::Read)?;
        Ok(CompactIo {
            storage,
            paths,
            start: start.clone(),
            old_dat,
            old_idx,
            cpd,
            cpx,
            cpd_end: start.superblock_bytes,
            cpx_end: 0,
            map: NeedleMap::new(),
            stats: VolumeStats::default(),
            dropped: 0,
            read_buffer: Vec::new(),
            dat_out: Vec::new(),
            idx_out: Vec::new(),
        })
    }

    /// Copies the batch's needles that decode and are not expired; drops (and names) the
    /// ones whose record is not what the index says.
    pub fn copy(&mut self, batch: &CopyBatch) -> Result<StepDone, CompactError> {
        let version = self.start.version;
        let records: Vec<Record> = batch
            .needles
            .iter()
            .map(|n| Record {
                key: n.key,
                offset: Some(n.offset),
                len: needle::record_bytes(n.size, version),
                size: n.size,
            })
            .collect();
        assert!(
            records
                .iter()
                .all(|r| r.offset.expect("read") + r.len <= self.start.snapshot_dat_bytes)
        );
        let starts = self.read_records(&records)?;
        let mut done = self.step_done(0);
        for (record, start) in records.iter().zip(starts) {
            let bytes = &self.read_buffer[start..start + record.len as usize];
            let expired = match check_record(bytes, record, version) {
                Ok(found) => found.is_expired(batch.now_ns),
                Err(_) => {
                    done.corrupt_count += 1;
                    if done.corrupt.len() < limits::COMPACT_CORRUPT_REPORTED_MAX {
                        done.corrupt
                            .push((record.key, record.offset.expect("read")));
                    }
                    continue;
                }
            };
            if expired {
                done.expired += 1;
                continue;
            }
            assert!(
                self.map.get(record.key).is_none(),
                "each key is copied once"
            );
            self.push_record(record, start, &mut done);
        }
        self.dropped += done.expired + done.corrupt_count;
        self.write_out(&mut done)?;
        Ok(done)
    }

    /// Appends the old `.idx` entries of the batch (written since the start) to the new
    /// files in order: each needle and each delete marker copied as it is (expired or not:
    /// they are recent), so the new `.dat` tells what the new `.idx` tells. A step stops at
    /// its byte bound; `StepDone` says how far it got. Then both new files are fsynced, so
    /// the commit's own fsync only has the last tail to write.
    pub fn replay(&mut self, batch: &ReplayBatch) -> Result<StepDone, CompactError> {
        assert!(!batch.is_final, "the final batch goes to commit");
        let done = self.replay_entries(batch)?;
        self.sync_new_files()?;
        Ok(done)
    }

    fn replay_entries(&mut self, batch: &ReplayBatch) -> Result<StepDone, CompactError> {
        assert!(batch.idx_from <= batch.idx_to);
        let (records, idx_end) = self.tail_records(batch)?;
        let starts = self.read_records(&records)?;
        let mut done = self.step_done(idx_end);
        for (record, start) in records.iter().zip(starts) {
            if record.offset.is_none() {
                self.push_tombstone(record.key, batch.now_ns, &mut done);
                continue;
            }
            let bytes = &self.read_buffer[start..start + record.len as usize];
            if let Err(error) = check_record(bytes, record, self.start.version) {
                return Err(CompactError::CorruptTail {
                    path: self.paths.dat.clone(),
                    key: record.key,
                    offset: record.offset.expect("read"),
                    error,
                });
            }
            self.push_record(record, start, &mut done);
        }
        self.write_out(&mut done)?;
        Ok(done)
    }

    /// The records the batch's `.idx` entries point at, up to its `bytes_max` (at least one),
    /// and the `.idx` offset after the last entry taken. Entries past the end of the file
    /// and all-zero ones are holes of `.idx` writes that failed: skipped.
    fn tail_records(&self, batch: &ReplayBatch) -> Result<(Vec<Record>, u64), CompactError> {
        let idx_path = &self.paths.idx;
        let width = self.start.width;
        let entry_bytes = width.entry_bytes() as u64;
        let file_len = self.old_idx.len().map_err(io_error(idx_path, "stat"))?;
        let readable_to = batch.idx_to.min(file_len.max(batch.idx_from));
        let mut bytes = vec![0u8; (readable_to - batch.idx_from) as usize];
        self.old_idx
            .read_exact_at(&mut bytes, batch.idx_from)
            .map_err(io_error(idx_path, "read"))?;
        let (entries, _) = idx::parse_entries(&bytes, width);
        let (mut records, mut total, mut idx_end) = (Vec::new(), 0u64, batch.idx_from);
        for entry in entries {
            let record = tail_record(&entry, self.start.version);
            if !records.is_empty() && total + record.map_or(0, |r| r.len) > batch.bytes_max {
                return Ok((records, idx_end));
            }
            idx_end += entry_bytes;
            if let Some(record) = record {
                total += record.len;
                records.push(record);
            }
        }
        Ok((records, batch.idx_to))
    }

    /// Reads the records with an offset into `read_buffer`, one read per run of adjacent
    /// records; returns where each record starts in the buffer (0 for a made-up marker).
    fn read_records(&mut self, records: &[Record]) -> Result<Vec<usize>, CompactError> {
        let mut starts = Vec::with_capacity(records.len());
        self.read_buffer.clear();
        let mut run: Option<(u64, usize)> = None; // (old offset, buffer start) of the run
        for record in records {
            let Some(offset) = record.offset else {
                starts.push(0);
                continue;
            };
            let buffer_start = self.read_buffer.len();
            let adjacent = run.is_some_and(|(run_offset, run_start)| {
                run_offset + (buffer_start - run_start) as u64 == offset
            });
            if !adjacent {
                self.read_run(run)?;
                run = Some((offset, buffer_start));
            }
            starts.push(buffer_start);
            self.read_buffer
                .resize(buffer_start + record.len as usize, 0);
        }
        self.read_run(run)?;
        Ok(starts)
    }

    /// Fills the buffer from `run`'s start to its end from the old `.dat`.
    fn read_run(&mut self, run: Option<(u64, usize)>) -> Result<(), CompactError> {
        let Some((offset, start)) = run else {
            return Ok(());
        };
        let span = &mut self.read_buffer[start..];
        self.old_dat
            .read_exact_at(span, offset)
            .map_err(io_error(&self.paths.dat, "read"))?;
        Ok(())
    }

    fn step_done(&self, idx_end: u64) -> StepDone {
        StepDone {
            idx_end,
            records: 0,
            bytes: 0,
            expired: 0,
            corrupt: Vec::new(),
            corrupt_count: 0,
            cpd_bytes: self.cpd_end,
            cpx_bytes: self.cpx_end,
        }
    }

    /// Queues the record read at `start` of the buffer for the new files.
    fn push_record(&mut self, record: &Record, start: usize, done: &mut StepDone) {
        let bytes = &self.read_buffer[start..start + record.len as usize];
        let new_offset = self.cpd_end + self.dat_out.len() as u64;
        self.dat_out.extend_from_slice(bytes);
        self.push_entry(record.key, new_offset, record.size, record.len, done);
    }

    /// Queues a delete marker made up for an old-style tombstone entry with no marker.
    fn push_tombstone(&mut self, key: u64, now_ns: u64, done: &mut StepDone) {
        let new_offset = self.cpd_end + self.dat_out.len() as u64;
        let before = self.dat_out.len();
        Needle::tombstone(key, 0, now_ns)
            .encode(self.start.version, &mut self.dat_out)
            .expect("a delete marker encodes");
        let len = (self.dat_out.len() - before) as u64;
        self.push_entry(key, new_offset, TOMBSTONE_SIZE, len, done);
    }

    fn push_entry(&mut self, key: u64, offset: u64, size: u32, len: u64, done: &mut StepDone) {
        assert_eq!(offset % PADDING_BYTES, 0);
        let entry = IdxEntry {
            key,
            offset_units: offset / PADDING_BYTES,
            size,
        };
        let width = self.start.width;
        let at = self.idx_out.len();
        self.idx_out.resize(at + width.entry_bytes(), 0);
        entry
            .encode(width, &mut self.idx_out[at..])
            .expect("the new .dat is no larger than the old");
        apply_entry(&mut self.map, &mut self.stats, entry, self.start.version);
        done.records += 1;
        done.bytes += len;
    }

    /// Writes the queued records and entries at the ends of the new files.
    fn write_out(&mut self, done: &mut StepDone) -> Result<(), VolumeIoError> {
        let paths = &self.paths;
        self.cpd
            .write_all_at(&self.dat_out, self.cpd_end)
            .map_err(io_error(&paths.cpd, "write"))?;
        self.cpx
            .write_all_at(&self.idx_out, self.cpx_end)
            .map_err(io_error(&paths.cpx, "write"))?;
        self.cpd_end += self.dat_out.len() as u64;
        self.cpx_end += self.idx_out.len() as u64;
        assert_eq!(done.bytes, self.dat_out.len() as u64);
        self.dat_out.clear();
        self.idx_out.clear();
        done.cpd_bytes = self.cpd_end;
        done.cpx_bytes = self.cpx_end;
        Ok(())
    }

    /// The new map holds every live needle of the volume but those the copy dropped.
    fn check_live(&self, batch: &ReplayBatch) -> Result<(), CompactError> {
        let (live_now, live_new) = (batch.live_now, self.map.len() as u64);
        if live_new <= live_now && live_now - live_new <= self.dropped {
            return Ok(());
        }
        Err(CompactError::Diverged {
            path: self.paths.dat.clone(),
            live_now,
            live_new,
            dropped: self.dropped,
        })
    }

    fn sync_new_files(&self) -> Result<(), VolumeIoError> {
        let paths = &self.paths;
        self.cpd
            .sync_data()
            .map_err(io_error(&paths.cpd, "fsync"))?;
        self.cpx.sync_data().map_err(io_error(&paths.cpx, "fsync"))
    }

    /// Replays the last tail (`Compaction::plan_commit`'s batch), fsyncs the new files, and
    /// swaps them in: the marker, made durable with the directory (the commit point), then
    /// the two renames. The volume's appends must be held from `plan_commit` until the new
    /// volume replaces the old; then `make_swap_durable` (appends need not wait for it).
    pub fn commit(mut self, batch: &ReplayBatch) -> Result<CommitDone<S>, CompactError> {
        assert!(batch.is_final);
        let started = Instant::now();
        let replayed = self
            .replay_entries(batch)
            .and_then(|step| self.check_live(batch).map(|()| step))
            .and_then(|step| Ok(self.sync_new_files().map(|()| step)?));
        let step = match replayed {
            Ok(step) => step,
            Err(error) => {
                let _ = self.remove_new_files(); // Best effort: opening the volume does it too.
                return Err(error);
            }
        };
        self.swap().map_err(CompactError::Commit)?;
        let io_micros = started.elapsed().as_micros() as u64;
        let parts = CommitParts {
            storage: self.storage,
            paths: self.paths,
            dat: self.cpd,
            idx: self.cpx,
            map: self.map,
            stats: self.stats,
            io_micros,
        };
        Ok(CommitDone { step, parts })
    }

    /// The marker, made durable with the directory (the commit point: from here on opening
    /// the volume finishes the swap), then the two renames.
    fn swap(&self) -> Result<(), VolumeIoError> {
        let (storage, paths) = (&self.storage, &self.paths);
        let marker = open_file(storage, &paths.cpc, OpenMode::Truncate)?;
        marker.sync_data().map_err(io_error(&paths.cpc, "fsync"))?;
        drop(marker);
        sync_dir(storage, &paths.cpc)?;
        storage
            .rename(&paths.cpd, &paths.dat)
            .map_err(io_error(&paths.cpd, "rename to .dat"))?;
        storage
            .rename(&paths.cpx, &paths.idx)
            .map_err(io_error(&paths.cpx, "rename to .idx"))
    }

    /// Gives up: removes the new files (the old volume never stopped being the volume).
    pub fn abort(self) -> Result<(), CompactError> {
        Ok(self.remove_new_files()?)
    }

    fn remove_new_files(&self) -> Result<(), VolumeIoError> {
        remove_if_there(&self.storage, &self.paths.cpd)?;
        remove_if_there(&self.storage, &self.paths.cpx)?;
        sync_dir(&self.storage, &self.paths.cpd)
    }
}

/// The record a tail entry points at, or `None` for a hole.
fn tail_record(entry: &IdxEntry, version: needle::Version) -> Option<Record> {
    if entry.is_tombstone() {
        let offset = (entry.offset_units != 0).then(|| entry.offset_bytes());
        return Some(Record {
            key: entry.key,
            offset,
            len: needle::record_bytes(0, version),
            size: TOMBSTONE_SIZE,
        });
    }
    (entry.offset_units != 0).then(|| Record {
        key: entry.key,
        offset: Some(entry.offset_bytes()),
        len: needle::record_bytes(entry.size, version),
        size: entry.size,
    })
}

/// Decodes a record read for `record` (CRC included) and checks its key and size.
fn check_record<'a>(
    bytes: &'a [u8],
    record: &Record,
    version: needle::Version,
) -> Result<Needle<'a>, NeedleError> {
    let header = NeedleHeader::decode(bytes)?;
    let size = if record.size == TOMBSTONE_SIZE {
        0
    } else {
        record.size
    };
    if header.key != record.key {
        return Err(NeedleError::WrongKey {
            want: record.key,
            found: header.key,
        });
    }
    if header.size != size {
        return Err(NeedleError::SizeMismatch {
            want: size,
            found: header.size,
        });
    }
    Needle::decode(bytes, version)
}

/// Refuses (`CompactError::NoSpace`) when the file system of the volume's directory has less
/// free space than `needed_bytes` (`compact::space_needed`).
pub fn check_space<S: Storage>(
    storage: &S,
    paths: &VolumePaths,
    needed_bytes: u64,
) -> Result<(), CompactError> {
    let dir = paths.dir();
    let free_bytes = storage.free_bytes(dir).map_err(io_error(dir, "statvfs"))?;
    if free_bytes < needed_bytes {
        return Err(CompactError::NoSpace {
            dir: dir.to_path_buf(),
            needed_bytes,
            free_bytes,
        });
    }
    Ok(())
}

/// A marker with compaction files is an unfinished commit (refused); a marker alone is one
/// whose swap is done; compaction files alone were abandoned. The last two are removed.
fn clear_leftovers<S: Storage>(storage: &S, paths: &VolumePaths) -> Result<(), CompactError> {
    let exists = |path| storage.exists(path).map_err(io_error(path, "stat"));
    let (marker, cpd, cpx) = (
        exists(&paths.cpc)?,
        exists(&paths.cpd)?,
        exists(&paths.cpx)?,
    );
    if marker && (cpd || cpx) {
        return Err(CompactError::UnfinishedCommit {
            path: paths.cpc.clone(),
        });
    }
    if marker || cpd || cpx {
        for path in [&paths.cpc, &paths.cpd, &paths.cpx] {
            remove_if_there(storage, path)?;
        }
        sync_dir(storage, &paths.cpc)?;
    }
    Ok(())
}

pub(super) fn remove_if_there<S: Storage>(
    storage: &S,
    path: &std::path::Path,
) -> Result<bool, VolumeIoError> {
    match storage.remove(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, "remove")(e)),
    }
}

/// The end of a commit, after the new volume replaced the old and appends resumed: the
/// renames are made durable, then the marker is removed. Until it returns, a crash still
/// finishes the swap on open (the marker is there); appends to the new files are safe
/// meanwhile (they go to the new files' inodes, whatever their names on disk). An error
/// leaves at most the marker, which the next open or compaction removes.
pub fn make_swap_durable<S: Storage>(storage: &S, paths: &VolumePaths) -> Result<(), CompactError> {
    sync_dir(storage, &paths.dat)?;
    storage
        .remove(&paths.cpc)
        .map_err(io_error(&paths.cpc, "remove"))?;
    Ok(sync_dir(storage, &paths.cpc)?)
}
