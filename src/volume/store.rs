//! One core's volumes: the glue between the HTTP handlers and the engine's `FileVolume`.
//! Only the owning core touches a volume, so there are no locks here.

use super::config::Config;
use super::core::VolumeSettings;
use super::fid::FileId;
use super::master_link::VolumeReport;
use super::read::NeedleMeta;
use super::upload::{self, Upload};
use bytes::Bytes;
use kelp_engine::format::needle::{FLAG_GZIP, Needle};
use kelp_engine::format::{OffsetWidth, ReplicaPlacement, SuperBlock, Ttl};
use kelp_engine::volume::{
    AppendError, DeleteError, FileReadError, FileVolume, OpenOptions, ReadError, VolumeConfig,
    WriteError,
};
use kelp_net::http::{Body, FileRegion};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records up to this size are read whole (one pread, CRC checked) and sent from memory;
/// larger ones are located (two small preads) and their data sent from the file.
pub const READ_WHOLE_RECORD_BYTES_MAX: u64 = 64 * 1024;

/// Where a needle's data is, for the response body.
pub enum NeedleData {
    Bytes(Bytes),
    File(FileRegion),
}

impl NeedleData {
    /// `len` bytes from `start` as a response body.
    pub fn slice(&self, start: u64, len: u64) -> Body {
        match self {
            NeedleData::Bytes(bytes) => {
                let start = start as usize;
                Body::Bytes(bytes.slice(start..start + len as usize))
            }
            NeedleData::File(region) => {
                assert!(start + len <= region.len);
                Body::File(FileRegion {
                    file: region.file.clone(),
                    offset: region.offset + start,
                    len,
                })
            }
        }
    }

    /// All of the data in memory (for inflating).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            NeedleData::Bytes(bytes) => Ok(bytes.clone()),
            NeedleData::File(region) => {
                let mut data = vec![0u8; region.len as usize];
                region.file.read_exact_at(&mut data, region.offset)?;
                Ok(Bytes::from(data))
            }
        }
    }
}

pub struct Found {
    pub meta: NeedleMeta,
    pub data: NeedleData,
    pub data_len: u64,
}

pub struct Written {
    pub crc: u32,
    /// Copies the volume's placement asks for (1 = no replication).
    pub copies: usize,
}

pub struct Deleted {
    pub size: u64,
    pub copies: usize,
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
}

impl StoreError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::VolumeNotHere { .. } | StoreError::NotFound { .. } => 404,
            StoreError::Expired { .. } => 404,
            StoreError::CookieMismatch { .. } | StoreError::BadUpload { .. } => 400,
            StoreError::ReadOnly { .. } | StoreError::AlreadyExists { .. } => 409,
            StoreError::Full { .. } => 507,
            StoreError::Failed { .. } => 500,
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
            StoreError::Failed { context } => f.write_str(context),
        }
    }
}

struct LocalVolume {
    volume: FileVolume,
    /// A second handle on the `.idx` for fdatasync through the ring (group commit).
    idx_for_sync: Arc<File>,
    collection: String,
}

/// The volumes one core owns.
pub struct CoreStore {
    dir: PathBuf,
    volumes: HashMap<u32, LocalVolume>,
    size_limit_bytes: u64,
    read_whole_bytes_max: u64,
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
        }
    }

    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    pub fn set_size_limit(&mut self, bytes: u64) {
        assert!(bytes > 0);
        self.size_limit_bytes = bytes;
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

    pub fn read(&self, fid: FileId, _now_s: u64) -> Result<Found, StoreError> {
        let local = self.get(fid.volume_id)?;
        let record_len = match local.volume.core().plan_read(fid.key) {
            Ok(plan) => plan.len,
            Err(error) => return Err(read_error(fid, error)),
        };
        if record_len <= self.read_whole_bytes_max {
            read_whole(&local.volume, fid)
        } else {
            read_located(&local.volume, fid)
        }
    }

    pub fn write(
        &mut self,
        fid: FileId,
        upload: &Upload,
        _now_ns: u64,
    ) -> Result<Written, StoreError> {
        let size_limit_bytes = self.size_limit_bytes;
        let local = self
            .volumes
            .get_mut(&fid.volume_id)
            .ok_or(StoreError::VolumeNotHere {
                volume_id: fid.volume_id,
            })?;
        let dat_bytes = local.volume.core().dat_bytes();
        if dat_bytes >= size_limit_bytes {
            let volume_id = fid.volume_id;
            return Err(StoreError::Full {
                volume_id,
                dat_bytes,
                limit_bytes: size_limit_bytes,
            });
        }
        let superblock = local.volume.core().config().superblock;
        let ttl = match &upload.ttl {
            Some(text) => Some(Ttl::parse(text).map_err(|e| bad_upload(fid, e.to_string()))?),
            None => (!superblock.ttl.is_empty()).then_some(superblock.ttl),
        };
        let needle = Needle {
            cookie: fid.cookie,
            key: fid.key,
            data: &upload.data,
            flags: if upload.gzipped { FLAG_GZIP } else { 0 },
            name: upload.name.as_deref().map(str::as_bytes),
            mime: upload.mime.as_deref().map(str::as_bytes),
            last_modified_s: Some(upload.last_modified_unix_s),
            ttl,
            pairs: upload.pairs_json.as_deref().map(str::as_bytes),
            ..Needle::default()
        };
        local
            .volume
            .write(&needle, false)
            .map_err(|error| write_error(fid, error))?;
        Ok(Written {
            crc: kelp_engine::format::crc32c(&upload.data),
            copies: superblock.placement.copy_count(),
        })
    }

    pub fn delete(&mut self, fid: FileId, _now_ns: u64) -> Result<Deleted, StoreError> {
        let local = self
            .volumes
            .get_mut(&fid.volume_id)
            .ok_or(StoreError::VolumeNotHere {
                volume_id: fid.volume_id,
            })?;
        let copies = local
            .volume
            .core()
            .config()
            .superblock
            .placement
            .copy_count();
        let size = match local.volume.delete(fid.key, fid.cookie, false) {
            Ok(size) => size,
            Err(DeleteError::Read(error)) => return Err(read_error(fid, error)),
            Err(DeleteError::Append(error)) => return Err(append_error(fid, error)),
            Err(DeleteError::Io(error)) => return Err(failed(error)),
        };
        Ok(Deleted {
            size: u64::from(size),
            copies,
        })
    }

    /// Handles to fdatasync for a durable write of `volume_id`.
    pub fn sync_files(&self, volume_id: u32) -> Option<Vec<Arc<File>>> {
        let local = self.volumes.get(&volume_id)?;
        Some(vec![local.volume.dat_file(), local.idx_for_sync.clone()])
    }

    pub fn create(&mut self, volume_id: u32, settings: &VolumeSettings) -> Result<(), StoreError> {
        if self.volumes.contains_key(&volume_id) {
            return Err(StoreError::AlreadyExists { volume_id });
        }
        let invalid = |reason: String| StoreError::Failed { context: reason };
        let placement =
            ReplicaPlacement::parse(&settings.replication).map_err(|e| invalid(e.to_string()))?;
        let ttl = Ttl::parse(&settings.ttl).map_err(|e| invalid(e.to_string()))?;
        let config = VolumeConfig {
            id: volume_id,
            collection: settings.collection.clone(),
            superblock: SuperBlock::new(placement, ttl),
            offset_width: OffsetWidth::Five,
            size_limit_bytes: kelp_engine::limits::VOLUME_BYTES_MAX_OFFSET5,
        };
        let volume = FileVolume::create(&self.dir, config).map_err(failed)?;
        self.insert(volume, settings.collection.clone())
    }

    fn insert(&mut self, volume: FileVolume, collection: String) -> Result<(), StoreError> {
        let idx_path = &volume.paths().idx;
        let idx_for_sync = File::open(idx_path).map_err(|e| StoreError::Failed {
            context: format!("open {} for sync: {e}", idx_path.display()),
        })?;
        let local = LocalVolume {
            volume,
            idx_for_sync: Arc::new(idx_for_sync),
            collection,
        };
        self.volumes.insert(local.volume.id(), local);
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

    pub fn reports(&self, port: u16) -> Vec<VolumeReport> {
        let mut reports: Vec<VolumeReport> = self
            .volumes
            .values()
            .map(|local| self.report(local, port))
            .collect();
        reports.sort_by_key(|r| r.id);
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
            read_only: core.read_only().is_some() || full,
            replica_placement: superblock.placement.to_string(),
            ttl: superblock.ttl.to_string(),
            compact_revision: superblock.compaction_revision,
        }
    }

    pub fn max_file_key(&self) -> u64 {
        self.volumes
            .values()
            .map(|local| local.volume.stats().max_key)
            .max()
            .unwrap_or(0)
    }
}

fn settings_of(local: &LocalVolume) -> VolumeSettings {
    let superblock = local.volume.core().config().superblock;
    VolumeSettings {
        collection: local.collection.clone(),
        replication: superblock.placement.to_string(),
        ttl: superblock.ttl.to_string(),
    }
}

fn read_whole(volume: &FileVolume, fid: FileId) -> Result<Found, StoreError> {
    let buffer = volume
        .read(fid.key, fid.cookie)
        .map_err(|error| file_read_error(fid, error))?;
    let meta = meta_of(&buffer.needle());
    let range = buffer.data_range();
    let data_len = range.len() as u64;
    let record = Bytes::from(buffer.into_record());
    Ok(Found {
        meta,
        data: NeedleData::Bytes(record.slice(range)),
        data_len,
    })
}

fn read_located(volume: &FileVolume, fid: FileId) -> Result<Found, StoreError> {
    let location = volume
        .locate(fid.key, fid.cookie)
        .map_err(|error| file_read_error(fid, error))?;
    let meta = meta_of(&location.needle());
    let data_len = u64::from(location.data_len);
    let region = FileRegion {
        file: location.file.clone(),
        offset: location.data_offset,
        len: data_len,
    };
    Ok(Found {
        meta,
        data: NeedleData::File(region),
        data_len,
    })
}

fn meta_of(needle: &Needle<'_>) -> NeedleMeta {
    let text =
        |field: Option<&[u8]>| field.map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    NeedleMeta {
        crc: needle.checksum,
        name: text(needle.name).filter(|n| !n.is_empty()),
        mime: text(needle.mime).filter(|m| !m.is_empty()),
        last_modified_unix_s: needle.last_modified_s.unwrap_or(0),
        gzipped: needle.is_gzipped(),
        pairs: needle
            .pairs
            .map(upload::pairs_from_json)
            .unwrap_or_default(),
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

fn read_error(fid: FileId, error: ReadError) -> StoreError {
    match error {
        ReadError::NotFound { .. } => StoreError::NotFound { fid },
        // A wrong cookie reads as "not found": a guessed fid learns nothing.
        ReadError::CookieMismatch { .. } => StoreError::NotFound { fid },
        ReadError::Expired { .. } => StoreError::Expired { fid },
        error @ ReadError::Corrupt { .. } => failed(error),
    }
}

fn file_read_error(fid: FileId, error: FileReadError) -> StoreError {
    match error {
        FileReadError::Read(error) => read_error(fid, error),
        FileReadError::Io(error) => failed(error),
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

fn write_error(fid: FileId, error: WriteError) -> StoreError {
    match error {
        WriteError::Append(error) => append_error(fid, error),
        WriteError::CookieMismatch { .. } => StoreError::CookieMismatch { fid },
        WriteError::Read(error) => failed(error),
        WriteError::Io(error) => failed(error),
    }
}

/// Open every volume in `config.dir` (recovery runs in the engine), each into the store of
/// the core that owns it.
pub fn open_dir(config: &Config) -> Result<Vec<CoreStore>, String> {
    let mut stores: Vec<CoreStore> = (0..config.cores).map(|_| CoreStore::new(config)).collect();
    for (collection, volume_id) in volume_files(&config.dir)? {
        let options = OpenOptions::default();
        let (volume, report) = FileVolume::open(&config.dir, &collection, volume_id, &options)
            .map_err(|e| format!("opening volume {volume_id}: {e}"))?;
        tracing::info!("volume {volume_id} opened: {report:?}");
        let owner = super::shard::owner_core(volume_id, config.cores);
        stores[owner]
            .insert(volume, collection)
            .map_err(|e| e.to_string())?;
    }
    Ok(stores)
}

/// `(collection, id)` of every `<collection>_<id>.dat` / `<id>.dat` in `dir`.
fn volume_files(dir: &Path) -> Result<Vec<(String, u32)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(|n| n.strip_suffix(".dat")) else {
            continue;
        };
        let (collection, id_text) = match base.rsplit_once('_') {
            Some((collection, id_text)) => (collection.to_string(), id_text),
            None => (String::new(), base),
        };
        if let Ok(volume_id) = super::fid::parse_volume_id(id_text) {
            found.push((collection, volume_id));
        }
    }
    found.sort_by_key(|(_, id)| *id);
    Ok(found)
}
