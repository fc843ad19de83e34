//! One core's volumes: the glue between the HTTP handlers and the engine's `FileVolume`.
//! Only the owning core touches a volume, so there are no locks here. This file holds the
//! volumes and the write path; the read path is in `store/read.rs`.

use super::config::Config;
use super::dat_map::{self, DatMap, ResidencyCache};
use super::expiry::{VolumeAge, volume_age};
use super::fid::FileId;
use super::limits::{HELD_APPENDS_MAX, READ_WHOLE_RECORD_BYTES_MAX, WRITE_INLINE_RECORD_BYTES_MAX};
use super::master_link::VolumeReport;
use super::registry::VolumeSettings;
use super::space::FreeSpace;
use compio::BufResult;
use kelp_engine::format::needle::{self, Needle};
use kelp_engine::format::{OffsetWidth, SuperBlock, check_collection, parse_volume_base_name};
use kelp_engine::needle_map::NeedleValue;
use kelp_engine::volume::{
    AppendError, AppendKind, AppendPlan, FileVolume, IdxAppend, OpenOptions, ReadError, ReadPlan,
    VolumeConfig,
};
use kelp_net::mesh::{OneshotReceiver, OneshotSender, oneshot};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Written {
    pub crc: u32,
    /// Copies the volume's placement asks for (1 = no replication).
    pub copies: usize,
}

pub struct Deleted {
    pub size: u64,
}

#[derive(Debug)]
pub enum StoreError {
    VolumeNotHere {
        volume_id: u32,
    },
    NotFound {
        fid: FileId,
    },
    Expired {
        fid: FileId,
    },
    CookieMismatch {
        fid: FileId,
    },
    ReadOnly {
        volume_id: u32,
        reason: String,
    },
    Full {
        volume_id: u32,
        dat_bytes: u64,
        limit_bytes: u64,
    },
    BadUpload {
        fid: FileId,
        reason: String,
    },
    AlreadyExists {
        volume_id: u32,
    },
    Failed {
        context: String,
    },
    /// The disk is full (below `--min-free-space-mb`): the write is refused before it starts.
    NoSpace {
        volume_id: u32,
        reason: String,
    },
    /// Too much waits already: retry.
    Overloaded {
        context: String,
    },
}

impl StoreError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::VolumeNotHere { .. } | StoreError::NotFound { .. } => 404,
            StoreError::Expired { .. } => 404,
            StoreError::CookieMismatch { .. } | StoreError::BadUpload { .. } => 400,
            StoreError::ReadOnly { .. } | StoreError::AlreadyExists { .. } => 409,
            StoreError::Full { .. } | StoreError::NoSpace { .. } => 507,
            StoreError::Failed { .. } => 500,
            StoreError::Overloaded { .. } => 503,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::VolumeNotHere { volume_id } => {
                write!(f, "volume {volume_id} is not on this server")
            }
            StoreError::NotFound { fid } => write!(f, "{fid} not found"),
            StoreError::Expired { fid } => write!(f, "{fid} not found (expired)"),
            StoreError::CookieMismatch { fid } => {
                write!(f, "{fid}: the key exists with another cookie")
            }
            StoreError::ReadOnly { volume_id, reason } => {
                write!(f, "volume {volume_id} is read-only: {reason}")
            }
            StoreError::Full {
                volume_id,
                dat_bytes,
                limit_bytes,
            } => write!(
                f,
                "volume {volume_id} is full ({dat_bytes} bytes, limit {limit_bytes}): read-only"
            ),
            StoreError::BadUpload { fid, reason } => write!(f, "{fid}: {reason}"),
            StoreError::AlreadyExists { volume_id } => write!(f, "volume {volume_id} exists"),
            StoreError::NoSpace { volume_id, reason } => {
                write!(f, "volume {volume_id}: {reason}")
            }
            StoreError::Failed { context } | StoreError::Overloaded { context } => {
                f.write_str(context)
            }
        }
    }
}

struct LocalVolume {
    volume: FileVolume,
    /// A second handle on the `.idx` (read-write) for appends and fdatasync through the
    /// ring; positional writes at offsets the `VolumeCore` hands out, so the two handles
    /// never disagree.
    idx_for_ring: Arc<File>,
    collection: String,
    /// Which incarnation of this volume id: a ring write that planned on one must not
    /// complete on a volume deleted and created again while its I/O was in flight.
    generation: u64,
    /// The `.dat` mapped for reads, made at the first read and grown as the volume grows.
    dat_map: Option<Arc<DatMap>>,
    /// Which regions of the `.dat` were lately found in the page cache.
    residency: ResidencyCache,
    /// A TTL volume's clock: the newest append time of its writes (0: none), read from the
    /// needles at open and raised by each write since (see `expiry`).
    newest_write_ns: u64,
    /// When its files last changed as SeaweedFS reports it (`modified_at_second`): the
    /// `.dat`'s modification time when opened, raised by each write since (see
    /// `modified_at_second`).
    opened_modified_s: u64,
}

impl LocalVolume {
    /// The mapping of the `.dat`, (re)made to cover its first `end` bytes. A replaced
    /// mapping lives on while responses still hold slices of it.
    fn dat_map(&mut self, end: u64) -> Result<Arc<DatMap>, StoreError> {
        match &self.dat_map {
            Some(map) if map.len() >= end => Ok(map.clone()),
            _ => {
                let len = dat_map::map_len_for(end);
                let map = DatMap::new(&self.volume.dat_file(), len).map_err(|error| {
                    StoreError::Failed {
                        context: format!(
                            "map {} bytes of {}: {error}",
                            len,
                            self.volume.paths().dat.display()
                        ),
                    }
                })?;
                assert!(map.len() >= end, "a mapping covers what it was made for");
                Ok(self.dat_map.insert(Arc::new(map)).clone())
            }
        }
    }
}

/// A volume taken out of service by a compaction's swap: its old files and mapping, to be
/// dropped off the core (closing a large replaced `.dat` frees its blocks, which takes long).
pub struct Retired(LocalVolume);

impl Retired {
    /// Makes the swap that retired this volume durable (same file names as the new one).
    pub fn make_swap_durable(&self) -> Result<(), kelp_engine::volume::compact::CompactError> {
        let volume = &self.0.volume;
        kelp_engine::volume::compact::make_swap_durable(volume.storage(), volume.paths())
    }
}

/// Opens the second handle on a volume's `.idx` that ring appends use.
pub fn open_idx_for_ring(idx_path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(idx_path)
        .map_err(|e| format!("open {} for ring appends: {e}", idx_path.display()))
}

/// The volumes one core owns.
pub struct CoreStore {
    dir: PathBuf,
    volumes: HashMap<u32, LocalVolume>,
    size_limit_bytes: u64,
    read_whole_bytes_max: u64,
    generations: u64,
    /// GETs whose record was not all in the page cache, so were read through the ring.
    uncached_reads: u64,
    /// Volumes whose appends are held (a compaction commits), with the writes and deletes
    /// waiting for the release.
    held: HashMap<u32, Vec<OneshotSender<()>>>,
    /// This core's estimate of the disk's free space: a write that would eat into the
    /// reserve is refused before it starts.
    space: FreeSpace,
    /// A TTL volume's files are deleted at most this long after it expired.
    ttl_removal_delay_max: Duration,
}

impl CoreStore {
    fn new(config: &Config) -> CoreStore {
        CoreStore {
            dir: config.dir.clone(),
            volumes: HashMap::new(),
            size_limit_bytes: kelp_engine::limits::VOLUME_SIZE_LIMIT_BYTES_DEFAULT,
            read_whole_bytes_max: config
                .zero_copy_min_bytes
                .unwrap_or(READ_WHOLE_RECORD_BYTES_MAX)
                .max(1),
            generations: 0,
            uncached_reads: 0,
            held: HashMap::new(),
            space: FreeSpace::new(&config.dir, config.min_free_space_bytes),
            ttl_removal_delay_max: config.ttl_removal_delay_max,
        }
    }

    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    /// GETs so far whose record was read through the ring because the page cache lacked it.
    pub fn uncached_reads(&self) -> u64 {
        self.uncached_reads
    }

    pub fn set_size_limit(&mut self, bytes: u64) {
        assert!(bytes > 0);
        self.size_limit_bytes = bytes;
    }

    /// The master's volume size limit (the engine's default until a heartbeat tells it).
    pub fn size_limit_bytes(&self) -> u64 {
        self.size_limit_bytes
    }

    pub fn settings(&self) -> Vec<(u32, VolumeSettings)> {
        self.volumes
            .iter()
            .map(|(id, local)| (*id, settings_of(local)))
            .collect()
    }

    fn get(&self, volume_id: u32) -> Result<&LocalVolume, StoreError> {
        self.volumes
            .get(&volume_id)
            .ok_or(StoreError::VolumeNotHere { volume_id })
    }

    fn get_mut(&mut self, volume_id: u32) -> Result<&mut LocalVolume, StoreError> {
        self.volumes
            .get_mut(&volume_id)
            .ok_or(StoreError::VolumeNotHere { volume_id })
    }

    /// The live record of `fid.key`, when there is one, with its header read from the
    /// `.dat`'s mapping: an overwrite or a delete checks its cookie first (the map keeps none).
    fn existing(
        &mut self,
        fid: FileId,
    ) -> Result<Option<(ReadPlan, [u8; needle::HEADER_BYTES])>, StoreError> {
        let local = self.get_mut(fid.volume_id)?;
        let Ok(plan) = local.volume.core().plan_read(fid.key) else {
            return Ok(None);
        };
        let map = local.dat_map(plan.offset + needle::HEADER_BYTES as u64)?;
        let start = plan.offset as usize;
        let header = map.slice(start..start + needle::HEADER_BYTES);
        Ok(Some((plan, header.try_into().expect("a header's bytes"))))
    }

    /// The cookie of the live record of `key` in `volume_id` (None: no live record), for a
    /// delete that names no cookie (SeaweedFS's BatchDelete with `skip_cookie_check`).
    pub fn live_cookie(&mut self, volume_id: u32, key: u64) -> Result<Option<u32>, StoreError> {
        let fid = FileId {
            volume_id,
            key,
            cookie: 0,
        };
        let Some((_, header)) = self.existing(fid)? else {
            return Ok(None);
        };
        let header = needle::NeedleHeader::decode(&header).map_err(|error| StoreError::Failed {
            context: format!("{volume_id},{key:x}: needle header: {error}"),
        })?;
        assert_eq!(header.key, key, "the map points at the record of its key");
        Ok(Some(header.cookie))
    }

    fn check_cookie(&self, fid: FileId, plan: &ReadPlan, header: &[u8]) -> Result<(), StoreError> {
        let local = self.get(fid.volume_id)?;
        match local.volume.core().check_cookie(plan, header, fid.cookie) {
            Ok(()) => Ok(()),
            Err(ReadError::CookieMismatch { .. }) => Err(StoreError::CookieMismatch { fid }),
            Err(error) => Err(failed(error)),
        }
    }

    /// Reserves the `.dat` region for `needle` (step 1 of the engine's append protocol).
    fn plan_write(
        &mut self,
        fid: FileId,
        needle: &Needle<'_>,
        now_ns: u64,
    ) -> Result<Planned, StoreError> {
        let local = self.get_mut(fid.volume_id)?;
        let superblock = local.volume.core().config().superblock;
        let needle = Needle {
            ttl: needle
                .ttl
                .or((!superblock.ttl.is_empty()).then_some(superblock.ttl)),
            ..needle.clone()
        };
        self.plan_needle(fid, &needle, Stamp::Now(now_ns))
    }

    /// Reserves the `.dat` region for `needle` in `fid`'s volume: refused when the volume is
    /// full or the disk's reserve would be eaten into.
    fn plan_needle(
        &mut self,
        fid: FileId,
        needle: &Needle<'_>,
        stamp: Stamp,
    ) -> Result<Planned, StoreError> {
        let size_limit_bytes = self.size_limit_bytes;
        let local = self.get_mut(fid.volume_id)?;
        let dat_bytes = local.volume.core().dat_bytes();
        // A repair's copy goes in even past the size limit: the volume must hold what its
        // replicas hold.
        if dat_bytes >= size_limit_bytes && stamp != Stamp::Kept {
            let volume_id = fid.volume_id;
            return Err(StoreError::Full {
                volume_id,
                dat_bytes,
                limit_bytes: size_limit_bytes,
            });
        }
        let record_bytes = needle
            .record_bytes(local.volume.core().version())
            .map_err(|error| bad_upload(fid, error.to_string()))?;
        self.space
            .take(record_bytes, Instant::now())
            .map_err(|no_space| StoreError::NoSpace {
                volume_id: fid.volume_id,
                reason: no_space.to_string(),
            })?;
        let local = self.get_mut(fid.volume_id)?;
        let core = local.volume.core_mut();
        let plan = match stamp {
            Stamp::Now(now_ns) => core.plan_write(needle, now_ns),
            Stamp::Kept => core.plan_copy(needle),
        }
        .map_err(|error| append_error(fid, error))?;
        // The free space taken above is what the append writes.
        assert_eq!(plan.record.len() as u64, record_bytes);
        assert_eq!(plan.key, fid.key);
        Ok(planned_on(local, plan))
    }

    /// The needle version of `volume_id`'s records.
    pub fn version_of(&self, volume_id: u32) -> Result<needle::Version, StoreError> {
        Ok(self.get(volume_id)?.volume.core().version())
    }

    /// The `.dat` write of `append` finished with `result`: make the key readable and
    /// return the `.idx` entry to write (step 3), or give the reservation back (step 4).
    fn finish_append(
        &mut self,
        fid: FileId,
        planned: Planned,
        result: std::io::Result<()>,
    ) -> Result<(IdxAppend, Arc<File>, PathBuf), StoreError> {
        assert_eq!(planned.plan.key, fid.key);
        let local = match self.volumes.get_mut(&fid.volume_id) {
            Some(local) if local.generation == planned.generation => local,
            _ => {
                let context = format!("{fid}: volume deleted while the write was in flight");
                return Err(StoreError::Failed { context });
            }
        };
        let core = local.volume.core_mut();
        if let Err(error) = result {
            let context = format!(
                "{fid}: write needle at offset {} of {}: {error}",
                planned.plan.offset,
                planned.dat_path.display()
            );
            core.abort(planned.plan);
            return Err(StoreError::Failed { context });
        }
        let idx_append = core.complete(&planned.plan);
        if planned.plan.kind == AppendKind::Write {
            local.newest_write_ns = local.newest_write_ns.max(planned.plan.append_at_ns);
        }
        let idx_path = local.volume.paths().idx.clone();
        Ok((idx_append, local.idx_for_ring.clone(), idx_path))
    }

    /// Reserves the delete marker of `fid` after checking the cookie in `header`, the
    /// 16 bytes read at `existing.offset`. A wrong cookie reads as "not found", as for GETs.
    fn plan_delete(
        &mut self,
        fid: FileId,
        existing: &ReadPlan,
        header: &[u8],
        now_ns: u64,
    ) -> Result<Planned, StoreError> {
        self.check_cookie(fid, existing, header)
            .map_err(|error| match error {
                StoreError::CookieMismatch { fid } => StoreError::NotFound { fid },
                other => other,
            })?;
        let local = self.get_mut(fid.volume_id)?;
        let plan = local
            .volume
            .core_mut()
            .plan_delete(fid.key, fid.cookie, now_ns)
            .map_err(|error| append_error(fid, error))?;
        Ok(planned_on(local, plan))
    }

    /// Copies the placement of `volume_id` asks for (1 = no replication).
    pub fn placement_copies(&self, volume_id: u32) -> Result<usize, StoreError> {
        let local = self.get(volume_id)?;
        Ok(local
            .volume
            .core()
            .config()
            .superblock
            .placement
            .copy_count())
    }

    /// Checks that `fid` could be deleted here now (a live record with its cookie) without
    /// deleting it, and returns the copies the volume's placement asks for: a replicated delete
    /// is copied to the other replicas before it is applied here.
    pub fn check_deletable(&mut self, fid: FileId) -> Result<usize, StoreError> {
        let (plan, header) = self.existing(fid)?.ok_or(StoreError::NotFound { fid })?;
        self.check_cookie(fid, &plan, &header)
            .map_err(|error| match error {
                StoreError::CookieMismatch { fid } => StoreError::NotFound { fid },
                other => other,
            })?;
        self.placement_copies(fid.volume_id)
    }

    /// Handles to fdatasync for a durable write of `volume_id`.
    pub fn sync_files(&self, volume_id: u32) -> Option<Vec<Arc<File>>> {
        let local = self.volumes.get(&volume_id)?;
        Some(vec![local.volume.dat_file(), local.idx_for_ring.clone()])
    }

    /// fdatasyncs the `.dat` and `.idx` of every volume (at shutdown: what was acknowledged
    /// without `fsync=true` then survives a power loss too). Returns the failures, each naming
    /// its file.
    pub fn sync_all(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for local in self.volumes.values() {
            let paths = local.volume.paths();
            let files = [
                (local.volume.dat_file(), &paths.dat),
                (local.idx_for_ring.clone(), &paths.idx),
            ];
            for (file, path) in files {
                if let Err(error) = file.sync_data() {
                    failures.push(format!("fdatasync {}: {error}", path.display()));
                }
            }
        }
        failures
    }

    pub fn create(&mut self, volume_id: u32, settings: &VolumeSettings) -> Result<(), StoreError> {
        if self.volumes.contains_key(&volume_id) {
            return Err(StoreError::AlreadyExists { volume_id });
        }
        let config = VolumeConfig {
            id: volume_id,
            collection: settings.collection.clone(),
            superblock: SuperBlock::new(settings.replication, settings.ttl),
            offset_width: OffsetWidth::Five,
            size_limit_bytes: kelp_engine::limits::VOLUME_BYTES_MAX_OFFSET5,
        };
        let volume = FileVolume::create(&self.dir, config).map_err(failed)?;
        let now_s = super::handlers::now_unix_ns() / 1_000_000_000;
        self.insert(volume, settings.collection.clone(), 0, now_s)
    }

    /// Serves `volume` (opened from files copied here) from now on; `newest_write_ns` is a
    /// TTL volume's clock (see `expiry`), `dat_modified_s` its `.dat`'s modification time.
    pub fn mount(
        &mut self,
        volume: FileVolume,
        collection: String,
        newest_write_ns: u64,
        dat_modified_s: u64,
    ) -> Result<(), StoreError> {
        let volume_id = volume.id();
        if self.volumes.contains_key(&volume_id) {
            return Err(StoreError::AlreadyExists { volume_id });
        }
        self.insert(volume, collection, newest_write_ns, dat_modified_s)
    }

    /// The files and state of `volume_id`, for a copy of it: (paths, collection).
    pub fn files_of(&self, volume_id: u32) -> Result<(&FileVolume, &str), StoreError> {
        let local = self.get(volume_id)?;
        Ok((&local.volume, &local.collection))
    }

    fn insert(
        &mut self,
        volume: FileVolume,
        collection: String,
        newest_write_ns: u64,
        opened_modified_s: u64,
    ) -> Result<(), StoreError> {
        let idx_for_ring = open_idx_for_ring(&volume.paths().idx)
            .map_err(|context| StoreError::Failed { context })?;
        self.generations += 1;
        let local = LocalVolume {
            volume,
            idx_for_ring: Arc::new(idx_for_ring),
            collection,
            generation: self.generations,
            dat_map: None,
            residency: ResidencyCache::default(),
            newest_write_ns,
            opened_modified_s,
        };
        let volume_id = local.volume.id();
        let replaced = self.volumes.insert(volume_id, local);
        assert!(replaced.is_none(), "volume {volume_id} inserted twice");
        Ok(())
    }

    /// Drops volume `volume_id` and deletes its files.
    pub fn remove(&mut self, volume_id: u32) -> Result<(), StoreError> {
        let local = self
            .volumes
            .remove(&volume_id)
            .ok_or(StoreError::VolumeNotHere { volume_id })?;
        local.volume.destroy().map_err(failed)
    }

    /// Stops serving volume `volume_id` and closes its files, which stay where they are
    /// (`VolumeUnmount`). A write in flight on it fails as for a deleted volume.
    pub fn unmount(&mut self, volume_id: u32) -> Result<(), StoreError> {
        let local = self
            .volumes
            .remove(&volume_id)
            .ok_or(StoreError::VolumeNotHere { volume_id })?;
        drop(local); // closes the files: they stay linked, so no blocks are freed here
        Ok(())
    }

    /// The volume `volume_id`, to read its state (a compaction plans from it).
    pub fn volume(&self, volume_id: u32) -> Result<&FileVolume, StoreError> {
        Ok(&self.get(volume_id)?.volume)
    }

    /// Which incarnation of `volume_id` this is (a compaction's swap keeps it).
    pub fn generation(&self, volume_id: u32) -> Result<u64, StoreError> {
        Ok(self.get(volume_id)?.generation)
    }

    /// The volume, if it is still the incarnation `generation`.
    pub fn volume_of_generation(&self, volume_id: u32, generation: u64) -> Option<&FileVolume> {
        let local = self.volumes.get(&volume_id)?;
        (local.generation == generation).then_some(&local.volume)
    }

    /// Holds the writes and deletes of `volume_id` (they wait in `wait_for_appends`) until
    /// `release_appends`; reads go on.
    pub fn hold_appends(&mut self, volume_id: u32) {
        assert!(self.volumes.contains_key(&volume_id));
        let before = self.held.insert(volume_id, Vec::new());
        assert!(before.is_none(), "volume {volume_id}: appends held twice");
    }

    pub fn release_appends(&mut self, volume_id: u32) {
        let waiters = self.held.remove(&volume_id).expect("released after held");
        for waiter in waiters {
            let _ = waiter.send(()); // a writer that went away needs no wake-up
        }
    }

    /// None when appends to `volume_id` may go on now, else what to wait for.
    fn appends_gate(&mut self, volume_id: u32) -> Result<Option<OneshotReceiver<()>>, StoreError> {
        let Some(waiters) = self.held.get_mut(&volume_id) else {
            return Ok(None);
        };
        if waiters.len() >= HELD_APPENDS_MAX {
            return Err(StoreError::Overloaded {
                context: format!(
                    "volume {volume_id}: {HELD_APPENDS_MAX} writes already wait for its \
                     compaction's commit; retry"
                ),
            });
        }
        let (wake, woken) = oneshot();
        waiters.push(wake);
        Ok(Some(woken))
    }

    /// Puts `volume` (a compaction's result, or the volume opened again) in place of the
    /// volume with its id, keeping its incarnation: reads planned on the old one finish on
    /// the old files, which stay open until the returned `Retired` is dropped. Its appends
    /// must be held (none in flight).
    pub fn replace_volume(&mut self, volume_id: u32, volume: FileVolume, ring: File) -> Retired {
        assert!(
            self.held.contains_key(&volume_id),
            "appends held for a swap"
        );
        assert_eq!(volume.id(), volume_id);
        let local = self
            .volumes
            .get_mut(&volume_id)
            .expect("the volume replaced is there");
        assert_eq!(local.volume.core().appends_in_flight(), 0);
        let new = LocalVolume {
            volume,
            idx_for_ring: Arc::new(ring),
            collection: local.collection.clone(),
            generation: local.generation,
            dat_map: None,
            residency: ResidencyCache::default(),
            newest_write_ns: local.newest_write_ns,
            opened_modified_s: local.opened_modified_s,
        };
        Retired(std::mem::replace(local, new))
    }

    /// Marks `volume_id` read-only by an operator, or clears that mark (other reasons to
    /// refuse writes stay); the volume's read-only state after the call.
    pub fn mark_read_only(&mut self, volume_id: u32, read_only: bool) -> Result<bool, StoreError> {
        let local = self.get_mut(volume_id)?;
        local.volume.core_mut().set_read_only(read_only);
        Ok(local.volume.core().read_only().is_some())
    }

    /// The report of `volume_id` (as the heartbeat sends it).
    pub fn report_of(&self, volume_id: u32, port: u16) -> Result<VolumeReport, StoreError> {
        Ok(self.report(self.get(volume_id)?, port))
    }

    /// Refuses appends to `volume_id` from now on (until it is replaced), and says where its
    /// files are: (directory, collection).
    pub fn refuse_appends(&mut self, volume_id: u32) -> Option<(PathBuf, String)> {
        let local = self.volumes.get_mut(&volume_id)?;
        local.volume.core_mut().set_read_only(true);
        Some((self.dir.clone(), local.collection.clone()))
    }

    /// Takes back the last `.idx` entry `complete` handed out for `volume_id`, whose write
    /// failed (see `VolumeCore::revert_complete`).
    fn revert_index_entry(&mut self, volume_id: u32, append: &IdxAppend) {
        if let Some(local) = self.volumes.get_mut(&volume_id) {
            local.volume.core_mut().revert_complete(append);
        }
    }

    /// The volumes to report (heartbeat, `/status`): expired TTL volumes are left out, so
    /// the master assigns nothing more to them.
    pub fn reports(&self, port: u16, now_ns: u64) -> Vec<VolumeReport> {
        let mut reports: Vec<VolumeReport> = self
            .volumes
            .values()
            .filter(|local| self.age(local, now_ns) == VolumeAge::Live)
            .map(|local| self.report(local, port))
            .collect();
        reports.sort_by_key(|r| r.id);
        debug_assert!(reports.windows(2).all(|pair| pair[0].id < pair[1].id));
        reports
    }

    fn report(&self, local: &LocalVolume, port: u16) -> VolumeReport {
        let core = local.volume.core();
        let stats = core.stats();
        let superblock = core.config().superblock;
        let full = core.dat_bytes() >= self.size_limit_bytes;
        VolumeReport {
            id: core.id(),
            port,
            size: core.dat_bytes(),
            collection: local.collection.clone(),
            file_count: stats.file_count,
            delete_count: stats.delete_count,
            deleted_byte_count: stats.deleted_bytes,
            read_only: core.read_only().is_some() || full || self.space.is_full(),
            replica_placement: superblock.placement,
            ttl: superblock.ttl,
            compact_revision: superblock.compaction_revision,
            modified_at_second: modified_at_second(local),
        }
    }

    fn age(&self, local: &LocalVolume, now_ns: u64) -> VolumeAge {
        let ttl = local.volume.core().config().superblock.ttl;
        volume_age(
            ttl,
            local.newest_write_ns,
            now_ns,
            self.ttl_removal_delay_max,
        )
    }

    /// TTL volumes whose removal delay passed: their files are to be deleted.
    pub fn removable(&self, now_ns: u64) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .volumes
            .iter()
            .filter(|(_, local)| self.age(local, now_ns) == VolumeAge::Removable)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Measures the free space again if the last measurement is stale (before a report).
    pub fn refresh_free_space(&mut self) {
        self.space.refresh(Instant::now());
    }

    /// This core's free-space estimate, measured now (the heartbeat does, every pulse).
    pub fn measure_free_space(&mut self) -> u64 {
        self.space.measure(Instant::now())
    }

    pub fn min_free_space_bytes(&self) -> u64 {
        self.space.reserve_bytes()
    }

    pub fn max_file_key(&self) -> u64 {
        self.volumes
            .values()
            .map(|local| local.volume.stats().max_key)
            .max()
            .unwrap_or(0)
    }
}

/// A reserved append whose `.dat` write is (about to be) in flight on the ring.
struct Planned {
    plan: AppendPlan,
    generation: u64,
    dat: Arc<File>,
    dat_path: PathBuf,
    /// Copies the volume's placement asks for.
    copies: usize,
}

/// The append time a planned record gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamp {
    /// Now: an upload, or a record taken from another server as new.
    Now(u64),
    /// The record's own: a repair's copy of another replica's record.
    Kept,
}

fn planned_on(local: &LocalVolume, plan: AppendPlan) -> Planned {
    // Records start at multiples of 8 bytes (the `.idx` stores offsets in 8-byte units).
    assert_eq!(plan.offset % 8, 0);
    let superblock = local.volume.core().config().superblock;
    Planned {
        plan,
        generation: local.generation,
        dat: local.volume.dat_file(),
        dat_path: local.volume.paths().dat.clone(),
        copies: superblock.placement.copy_count(),
    }
}

/// Writes `needle` as `fid` (its TTL None: the volume's) with positional writes (inline or through this core's ring), following
/// the engine's append protocol: plan (reserve), `.dat` write, complete (the key becomes
/// readable) or abort, then the `.idx` entry at the offset `complete` gave, so entries go in
/// completion order. Several writes may be in flight at distinct offsets; the store is
/// never borrowed across an await.
pub async fn write(
    store: &RefCell<CoreStore>,
    fid: FileId,
    needle: &Needle<'_>,
    now_ns: u64,
) -> Result<Written, StoreError> {
    assert_eq!((needle.key, needle.cookie), (fid.key, fid.cookie));
    wait_for_appends(store, fid.volume_id).await?;
    let existing = store.borrow_mut().existing(fid)?;
    if let Some((plan, header)) = existing {
        store.borrow().check_cookie(fid, &plan, &header)?;
    }
    let planned = store.borrow_mut().plan_write(fid, needle, now_ns)?;
    let copies = planned.copies;
    let crc = planned.plan.checksum;
    append(store, fid, planned).await?;
    Ok(Written { crc, copies })
}

/// Appends `needle` (a record copied from another server: a replica's repair, a volume's
/// tail) to `volume_id` as it is, whatever cookie the key had: the copy is the authority.
pub async fn write_needle(
    store: &RefCell<CoreStore>,
    volume_id: u32,
    needle: &Needle<'_>,
    now_ns: u64,
) -> Result<(), StoreError> {
    wait_for_appends(store, volume_id).await?;
    let fid = FileId {
        volume_id,
        key: needle.key,
        cookie: needle.cookie,
    };
    let planned = store
        .borrow_mut()
        .plan_needle(fid, needle, Stamp::Now(now_ns))?;
    append(store, fid, planned).await
}

/// Appends `needle`, a record copied from another replica (a repair: a needle, or the delete
/// marker of a key live here), keeping its append time, if the key's entry here is still
/// `expected` (what the repair decided on; a write or delete since then wins). Ok(false)
/// when it is not.
pub async fn copy_record(
    store: &RefCell<CoreStore>,
    volume_id: u32,
    needle: &Needle<'_>,
    expected: Option<NeedleValue>,
) -> Result<bool, StoreError> {
    wait_for_appends(store, volume_id).await?;
    let fid = FileId {
        volume_id,
        key: needle.key,
        cookie: needle.cookie,
    };
    let planned = {
        let mut store = store.borrow_mut();
        if store.get(volume_id)?.volume.core().lookup(needle.key) != expected {
            return Ok(false);
        }
        store.plan_needle(fid, needle, Stamp::Kept)?
    };
    append(store, fid, planned).await?;
    Ok(true)
}

/// Deletes `fid`: the cookie checked against the record's header, then the delete marker and
/// its tombstone `.idx` entry appended as `write` appends a needle.
pub async fn delete(
    store: &RefCell<CoreStore>,
    fid: FileId,
    now_ns: u64,
) -> Result<Deleted, StoreError> {
    wait_for_appends(store, fid.volume_id).await?;
    let existing = store.borrow_mut().existing(fid)?;
    let (existing, header) = existing.ok_or(StoreError::NotFound { fid })?;
    let planned = store
        .borrow_mut()
        .plan_delete(fid, &existing, &header, now_ns)?;
    append(store, fid, planned).await?;
    Ok(Deleted {
        size: u64::from(existing.size),
    })
}

/// Waits while a compaction commit holds the appends of `volume_id`. The caller plans its
/// append right after, with no await between, so a hold cannot start in between.
async fn wait_for_appends(store: &RefCell<CoreStore>, volume_id: u32) -> Result<(), StoreError> {
    loop {
        let gate = store.borrow_mut().appends_gate(volume_id)?;
        match gate {
            None => return Ok(()),
            Some(released) => {
                let _ = released.await; // released or dropped: look again
            }
        }
    }
}

/// Steps 2-3 of the engine's append protocol: the record at its reserved offset (inline or
/// through the ring, by size), then `complete` (or `abort`), then the `.idx` entry at the
/// offset `complete` gave.
async fn append(
    store: &RefCell<CoreStore>,
    fid: FileId,
    mut planned: Planned,
) -> Result<(), StoreError> {
    let record = std::mem::take(&mut planned.plan.record);
    let (result, record) = if record.len() as u64 <= WRITE_INLINE_RECORD_BYTES_MAX {
        let result = planned.dat.write_all_at(&record, planned.plan.offset);
        (result, record)
    } else {
        let BufResult(result, record) =
            kelp_net::fs::write_all_at(planned.dat.clone(), planned.plan.offset, record).await;
        (result, record)
    };
    planned.plan.record = record;
    let (idx_append, idx, idx_path) = store.borrow_mut().finish_append(fid, planned, result)?;
    // A plain pwrite: 16 or 17 bytes into a page the previous entries already brought into
    // the page cache. Through the ring it would be punted to an io-wq worker (ext4 has no
    // non-blocking buffered writes): two thread wake-ups for a few hundred ns of copying.
    if let Err(error) = idx.write_all_at(idx_append.bytes(), idx_append.offset) {
        // Not acknowledged: the key goes back to what it was, so the map never holds a
        // change the `.idx` lacks (a compaction replays the `.idx`, and so does a restart).
        store
            .borrow_mut()
            .revert_index_entry(fid.volume_id, &idx_append);
        let context = format!(
            "{fid}: write index entry at offset {} of {}: {error}",
            idx_append.offset,
            idx_path.display()
        );
        return Err(StoreError::Failed { context });
    }
    Ok(())
}

fn settings_of(local: &LocalVolume) -> VolumeSettings {
    let superblock = local.volume.core().config().superblock;
    VolumeSettings {
        collection: local.collection.clone(),
        replication: superblock.placement,
        ttl: superblock.ttl,
    }
}

fn bad_upload(fid: FileId, reason: String) -> StoreError {
    StoreError::BadUpload { fid, reason }
}

fn failed(error: impl fmt::Display) -> StoreError {
    StoreError::Failed {
        context: error.to_string(),
    }
}

fn append_error(fid: FileId, error: AppendError) -> StoreError {
    match error {
        AppendError::ReadOnly { volume_id, reason } => StoreError::ReadOnly {
            volume_id,
            reason: format!("{reason:?}"),
        },
        AppendError::SizeLimit {
            volume_id,
            dat_bytes,
            limit_bytes,
        } => StoreError::Full {
            volume_id,
            dat_bytes,
            limit_bytes,
        },
        AppendError::NotFound { .. } => StoreError::NotFound { fid },
        error @ AppendError::BadNeedle { .. } => bad_upload(fid, error.to_string()),
        error @ AppendError::VolumeBytesMax { .. } => failed(error),
    }
}

/// Opens every volume in `config.dir`, each in the store of the core that owns it. Each
/// core's volumes are opened (their `.idx` read and their needle map built) on a thread of
/// their own, so start-up takes about the time of the largest core share rather than the
/// sum.
pub fn open_dir(config: &Config) -> Result<Vec<CoreStore>, String> {
    let mut shares: Vec<Vec<(String, u32)>> = vec![Vec::new(); config.cores];
    let mut seen = std::collections::BTreeSet::new();
    for (collection, volume_id) in volume_files(&config.dir)? {
        if !seen.insert(volume_id) {
            return Err(format!(
                "volume {volume_id}: two collections' files in {} have this id; move one away",
                config.dir.display()
            ));
        }
        shares[super::shard::owner_core(volume_id, config.cores)].push((collection, volume_id));
    }
    let opened: Vec<Result<CoreStore, String>> = std::thread::scope(|scope| {
        let loaders: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(core_index, share)| {
                std::thread::Builder::new()
                    .name(format!("load-core-{core_index}"))
                    .spawn_scoped(scope, move || open_share(config, share))
                    .map_err(|e| format!("starting the loader of core {core_index}: {e}"))
            })
            .collect();
        loaders
            .into_iter()
            .map(|loader| {
                loader?
                    .join()
                    .unwrap_or_else(|_| Err("a volume loader panicked".to_string()))
            })
            .collect()
    });
    let stores = opened.into_iter().collect::<Result<Vec<_>, _>>()?;
    release_freed_memory();
    Ok(stores)
}

/// Opens one core's volumes into a new store for that core.
fn open_share(config: &Config, share: Vec<(String, u32)>) -> Result<CoreStore, String> {
    let mut store = CoreStore::new(config);
    for (collection, volume_id) in share {
        let options = OpenOptions::default();
        let (volume, report) = FileVolume::open(&config.dir, &collection, volume_id, &options)
            .map_err(|e| format!("opening volume {volume_id}: {e}"))?;
        if report.is_clean() {
            tracing::debug!("volume {volume_id} opened");
        } else {
            tracing::info!("volume {volume_id} opened: {report:?}");
        }
        // A TTL volume's clock comes from its needles (one read, or one per live needle
        // of a compacted volume); other volumes never expire.
        let has_ttl = !volume.core().config().superblock.ttl.is_empty();
        let newest_write_ns = if has_ttl {
            volume.newest_live_append_ns()
        } else {
            0
        };
        let dat_modified_s = dat_modified_s(volume.paths())?;
        store
            .insert(volume, collection, newest_write_ns, dat_modified_s)
            .map_err(|e| e.to_string())?;
    }
    Ok(store)
}

/// What a heartbeat reports as the volume's `modified_at_second`, as SeaweedFS does: the
/// `.dat`'s modification time when it was opened, or the append time of its newest write
/// since, whichever is later (deletes leave it; SeaweedFS's `volume.check.disk` takes a
/// volume modified within two pulses for one still being written).
fn modified_at_second(local: &LocalVolume) -> u64 {
    let newest_write_s = local.newest_write_ns / 1_000_000_000;
    local.opened_modified_s.max(newest_write_s)
}

/// The modification time of a volume's `.dat`, in seconds since the Unix epoch (a blocking
/// `stat`: at open, never on a core's loop).
pub fn dat_modified_s(paths: &kelp_engine::volume::VolumePaths) -> Result<u64, String> {
    let dat = &paths.dat;
    let modified = std::fs::metadata(dat)
        .and_then(|metadata| metadata.modified())
        .map_err(|e| format!("modification time of {}: {e}", dat.display()))?;
    let since_epoch = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("modification time of {}: {e}", dat.display()))?;
    Ok(since_epoch.as_secs())
}

/// Hands the pages freed while loading (each volume's `.idx` is read whole, then dropped)
/// back to the kernel: freed in the middle of the heap, between needle maps, the allocator
/// would otherwise keep them resident.
fn release_freed_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `(collection, id)` of every `<collection>_<id>.dat` / `<id>.dat` in `dir` (split at the
/// last `_`, as SeaweedFS does). Other `.dat` names are not volumes and are left alone; a
/// volume whose collection name breaks the rule is an error naming the file, so that it is
/// renamed rather than served under a name the master refuses.
pub fn volume_files(dir: &Path) -> Result<Vec<(String, u32)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| n.strip_suffix(".dat")) else {
            continue;
        };
        let Some((collection, volume_id)) = parse_volume_base_name(base) else {
            tracing::info!(
                "{}: not a volume file name, left alone",
                entry.path().display()
            );
            continue;
        };
        check_collection(collection).map_err(|e| {
            let path = entry.path();
            format!(
                "volume file {}: {e}; rename its .dat, .idx and .vif",
                path.display()
            )
        })?;
        found.push((collection.to_string(), volume_id));
    }
    found.sort_by_key(|(_, id)| *id);
    Ok(found)
}

mod read;
pub use read::{NeedleData, NeedleMeta, read};

#[cfg(test)]
mod tests;
