//! `FileVolume`: a volume on a `Storage` (the real disk, `StdStorage`, unless a test puts a
//! simulated one underneath) with positional I/O. Used by the tools, the tests and the volume
//! server. Every error names the file and the operation.

use super::compact;
use super::core::{AppendError, AppendPlan, ReadError, VolumeConfig, VolumeCore, VolumeStats};
use super::recovery::{self, RecoveryReport};
use super::storage::{OpenMode, StdStorage, Storage, StorageFile, parent_dir};
use crate::format::needle::{self, Needle, Version};
use crate::format::{
    OffsetWidth, ReplicaPlacement, SUPERBLOCK_BYTES, SuperBlock, SuperBlockError, VifError,
    VolumeInfo,
};
use crate::limits;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `<collection>_<id>`, or `<id>` for the default collection.
pub fn base_name(collection: &str, id: u32) -> String {
    if collection.is_empty() {
        id.to_string()
    } else {
        format!("{collection}_{id}")
    }
}

/// The three files of a volume, and the three a compaction makes next to them (see
/// `compact`): the new `.dat` and `.idx` being built, and the commit marker; and the delete
/// horizon and the kept deletes a replica repair uses (FORMAT.md "Delete horizon").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePaths {
    pub dat: PathBuf,
    pub idx: PathBuf,
    pub vif: PathBuf,
    pub cpd: PathBuf,
    pub cpx: PathBuf,
    pub cpc: PathBuf,
    pub horizon: PathBuf,
    pub deletes: PathBuf,
}

impl VolumePaths {
    pub fn new(dir: &Path, collection: &str, id: u32) -> VolumePaths {
        let base = base_name(collection, id);
        let file = |extension: &str| dir.join(format!("{base}.{extension}"));
        VolumePaths {
            dat: file("dat"),
            idx: file("idx"),
            vif: file("vif"),
            cpd: file("cpd"),
            cpx: file("cpx"),
            cpc: file("cpc"),
            horizon: file("horizon"),
            deletes: file("deletes"),
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        parent_dir(&self.dat)
    }
}

/// An I/O failure: which file, which operation.
#[derive(Debug)]
pub struct VolumeIoError {
    pub path: PathBuf,
    pub op: &'static str,
    pub source: io::Error,
}

impl fmt::Display for VolumeIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}
impl std::error::Error for VolumeIoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub(crate) fn io_error<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> VolumeIoError + 'a {
    move |source| VolumeIoError {
        path: path.to_path_buf(),
        op,
        source,
    }
}

#[derive(Debug)]
pub enum OpenProblem {
    Io(VolumeIoError),
    /// `create` found the `.dat` already there.
    AlreadyExists,
    /// The `.dat` is shorter than its superblock.
    NoSuperBlock {
        len: u64,
    },
    BadSuperBlock(SuperBlockError),
    BadVif(VifError),
    /// The `.vif` is larger than any volume info could be.
    VifTooLarge {
        len: u64,
    },
}

/// Opening or creating a volume failed.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub problem: OpenProblem,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            OpenProblem::Io(error) => write!(f, "{error}"),
            OpenProblem::AlreadyExists => write!(f, "{path}: volume already exists"),
            OpenProblem::NoSuperBlock { len } => write!(
                f,
                "{path}: {len} bytes, shorter than the {SUPERBLOCK_BYTES}-byte superblock"
            ),
            OpenProblem::BadSuperBlock(error) => write!(f, "{path}: {error}"),
            OpenProblem::BadVif(error) => write!(f, "{path}: {error}"),
            OpenProblem::VifTooLarge { len } => {
                write!(f, "{path}: {len} bytes is too large for volume info")
            }
        }
    }
}
impl std::error::Error for OpenError {}

impl From<VolumeIoError> for OpenError {
    fn from(error: VolumeIoError) -> OpenError {
        OpenError {
            path: error.path.clone(),
            problem: OpenProblem::Io(error),
        }
    }
}

/// Options for `FileVolume::open`.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub size_limit_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            size_limit_bytes: limits::VOLUME_SIZE_LIMIT_BYTES_DEFAULT,
        }
    }
}

#[derive(Debug)]
pub enum WriteError {
    Append(AppendError),
    /// The key exists with another cookie (SeaweedFS refuses such an overwrite too).
    CookieMismatch {
        volume_id: u32,
        key: u64,
    },
    /// The existing needle could not be checked.
    Read(ReadError),
    Io(VolumeIoError),
}

#[derive(Debug)]
pub enum DeleteError {
    Append(AppendError),
    /// No such key, or a wrong cookie (both answer 404 on the wire).
    Read(ReadError),
    Io(VolumeIoError),
}

#[derive(Debug)]
pub enum FileReadError {
    Read(ReadError),
    Io(VolumeIoError),
}

macro_rules! error_impls {
    ($name:ident { $($variant:ident),* }) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(error) => write!(f, "{error}"),)*
                    #[allow(unreachable_patterns)]
                    _ => write!(f, "{self:?}"),
                }
            }
        }
        impl std::error::Error for $name {}
        impl From<VolumeIoError> for $name {
            fn from(error: VolumeIoError) -> Self { $name::Io(error) }
        }
        impl From<ReadError> for $name {
            fn from(error: ReadError) -> Self { $name::Read(error) }
        }
    };
}
error_impls!(WriteError { Append, Read, Io });
error_impls!(DeleteError { Append, Read, Io });
error_impls!(FileReadError { Read, Io });

/// A written needle: where it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub offset: u64,
    /// The needle's `size` field (what `.idx` records).
    pub size: u32,
    pub append_at_ns: u64,
}

/// A whole needle record read into memory (CRC checked).
#[derive(Clone, Debug)]
pub struct NeedleBuf {
    record: Vec<u8>,
    version: Version,
}

impl NeedleBuf {
    pub fn needle(&self) -> Needle<'_> {
        Needle::decode_skip_crc(&self.record, self.version).expect("decoded when read")
    }

    /// Where the data sits in `into_record()`, so a server can slice it without a copy.
    pub fn data_range(&self) -> std::ops::Range<usize> {
        let len = self.needle().data.len();
        needle::DATA_PREFIX_BYTES..needle::DATA_PREFIX_BYTES + len
    }

    pub fn into_record(self) -> Vec<u8> {
        self.record
    }
}

/// A needle's metadata plus where its data is in the `.dat`, for sending the data straight
/// from the file (sendfile/splice). The CRC is not checked on this path.
#[derive(Debug)]
pub struct NeedleLocation<F = File> {
    pub file: Arc<F>,
    /// Byte offset of the data in the `.dat`.
    pub data_offset: u64,
    pub data_len: u32,
    head: [u8; needle::DATA_PREFIX_BYTES],
    rest: Vec<u8>,
    version: Version,
}

impl<F> NeedleLocation<F> {
    /// Everything but the data (`data` is empty; `data_len` says how long it is).
    pub fn needle(&self) -> Needle<'_> {
        Needle::decode_without_data(&self.head, &self.rest, self.version)
            .expect("decoded when located")
            .0
    }
}

/// One volume on disk. Not thread-safe by itself: one owner (a core, or a tool) drives it;
/// the `.dat` handle can be shared for reads (`dat_file`).
#[derive(Debug)]
pub struct FileVolume<S: Storage = StdStorage> {
    core: VolumeCore,
    paths: VolumePaths,
    storage: S,
    dat: Arc<S::File>,
    idx: S::File,
}

pub(crate) fn open_file<S: Storage>(
    storage: &S,
    path: &Path,
    mode: OpenMode,
) -> Result<S::File, VolumeIoError> {
    let op = match mode {
        OpenMode::CreateNew | OpenMode::Truncate => "create",
        OpenMode::Read | OpenMode::ReadWrite => "open",
    };
    storage.open(path, mode).map_err(io_error(path, op))
}

/// Makes a created, renamed or removed file's directory entry durable.
pub(crate) fn sync_dir<S: Storage>(storage: &S, path: &Path) -> Result<(), VolumeIoError> {
    let dir = parent_dir(path);
    storage
        .sync_dir(dir)
        .map_err(io_error(dir, "fsync directory"))
}

impl FileVolume<StdStorage> {
    /// Creates a new volume's files (`.dat` with its superblock, empty `.idx`, `.vif`),
    /// durably. Fails with `AlreadyExists` when the `.dat` is there.
    pub fn create(dir: &Path, config: VolumeConfig) -> Result<FileVolume, OpenError> {
        FileVolume::create_in(StdStorage, dir, config)
    }

    /// Opens an existing volume and recovers it (see `open_in`).
    pub fn open(
        dir: &Path,
        collection: &str,
        id: u32,
        options: &OpenOptions,
    ) -> Result<(FileVolume, RecoveryReport), OpenError> {
        FileVolume::open_in(StdStorage, dir, collection, id, options)
    }
}

impl<S: Storage> FileVolume<S> {
    /// `create` on `storage`.
    pub fn create_in(
        storage: S,
        dir: &Path,
        config: VolumeConfig,
    ) -> Result<FileVolume<S>, OpenError> {
        let paths = VolumePaths::new(dir, &config.collection, config.id);
        let dat = match open_file(&storage, &paths.dat, OpenMode::CreateNew) {
            Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => {
                return Err(OpenError {
                    path: paths.dat,
                    problem: OpenProblem::AlreadyExists,
                });
            }
            other => other?,
        };
        let info = VolumeInfo::new(config.offset_width, config.superblock.placement.to_string());
        let vif = open_file(&storage, &paths.vif, OpenMode::Truncate)?;
        vif.write_all_at(info.encode().as_bytes(), 0)
            .map_err(io_error(&paths.vif, "write"))?;
        vif.sync_data().map_err(io_error(&paths.vif, "fsync"))?;
        let idx = open_file(&storage, &paths.idx, OpenMode::Truncate)?;
        dat.write_all_at(&config.superblock.encode(), 0)
            .map_err(io_error(&paths.dat, "write superblock"))?;
        dat.sync_data().map_err(io_error(&paths.dat, "fsync"))?;
        idx.sync_data().map_err(io_error(&paths.idx, "fsync"))?;
        sync_dir(&storage, &paths.dat)?;
        Ok(FileVolume {
            core: VolumeCore::new(config),
            paths,
            storage,
            dat: Arc::new(dat),
            idx,
        })
    }

    /// Opens an existing volume on `storage` and recovers it: an interrupted compaction is
    /// finished (its commit marker is there) or its files removed (it is not); a torn last
    /// needle is cut away, needles missing from the `.idx` are indexed again, a missing or
    /// corrupt `.idx` is rebuilt.
    pub fn open_in(
        storage: S,
        dir: &Path,
        collection: &str,
        id: u32,
        options: &OpenOptions,
    ) -> Result<(FileVolume<S>, RecoveryReport), OpenError> {
        let paths = VolumePaths::new(dir, collection, id);
        let compaction = compact::settle(&storage, &paths)?;
        let info = read_vif(&storage, &paths.vif)?;
        let offset_width = match &info {
            Some(info) => info.offset_width().map_err(|e| OpenError {
                path: paths.vif.clone(),
                problem: OpenProblem::BadVif(e),
            })?,
            None => OffsetWidth::Four,
        };
        let dat = open_file(&storage, &paths.dat, OpenMode::ReadWrite)?;
        let superblock = read_superblock(&dat, &paths.dat)?;
        let config = VolumeConfig {
            id,
            collection: collection.to_string(),
            superblock,
            offset_width,
            size_limit_bytes: options.size_limit_bytes,
        };
        let (mut core, mut report) = recovery::recover(&storage, &paths, config, &dat)?;
        report.compaction = compaction;
        if info.as_ref().is_some_and(|info| info.read_only) {
            core.set_read_only(true);
        }
        let idx = open_file(&storage, &paths.idx, OpenMode::ReadWrite)?;
        let volume = FileVolume {
            core,
            paths,
            storage,
            dat: Arc::new(dat),
            idx,
        };
        Ok((volume, report))
    }

    /// A volume from its parts (a committed compaction hands its new files over this way).
    pub(crate) fn from_parts(
        core: VolumeCore,
        paths: VolumePaths,
        storage: S,
        dat: S::File,
        idx: S::File,
    ) -> FileVolume<S> {
        FileVolume {
            core,
            paths,
            storage,
            dat: Arc::new(dat),
            idx,
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn core(&self) -> &VolumeCore {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut VolumeCore {
        &mut self.core
    }

    pub fn paths(&self) -> &VolumePaths {
        &self.paths
    }

    pub fn id(&self) -> u32 {
        self.core.id()
    }

    pub fn stats(&self) -> VolumeStats {
        self.core.stats()
    }

    /// The `.dat`, shared for reads (positional reads only: never seek it).
    /// The newest append time (ns since the Unix epoch) of the live needles, read from the
    /// `.dat`: a TTL volume's clock (see `append_clock`). One read for a volume never
    /// compacted; one per live needle for a compacted one.
    pub fn newest_live_append_ns(&self) -> u64 {
        super::append_clock::newest_live_append_ns(&self.core, &*self.dat)
    }

    pub fn dat_file(&self) -> Arc<S::File> {
        Arc::clone(&self.dat)
    }

    /// Appends `needle` (its checksum and append time are set here). Overwriting a live key
    /// needs the same cookie. With `fsync`, the `.dat` and `.idx` are synced before return.
    pub fn write(&mut self, needle: &Needle, fsync: bool) -> Result<WriteOutcome, WriteError> {
        self.write_at(needle, now_ns(), fsync)
    }

    /// `write` with the append time `now_ns` (ns since the Unix epoch; raised past the
    /// previous append's, as for any append): a tool that imports needles with their times,
    /// or a test of TTLs, which count from the append time.
    pub fn write_at(
        &mut self,
        needle: &Needle,
        now_ns: u64,
        fsync: bool,
    ) -> Result<WriteOutcome, WriteError> {
        if let Ok(plan) = self.core.plan_read(needle.key) {
            let header = self.read_at(plan.offset, needle::HEADER_BYTES as u64)?;
            match self.core.check_cookie(&plan, &header, needle.cookie) {
                Err(ReadError::CookieMismatch { volume_id, key }) => {
                    return Err(WriteError::CookieMismatch { volume_id, key });
                }
                other => other?,
            }
        }
        let plan = self
            .core
            .plan_write(needle, now_ns)
            .map_err(WriteError::Append)?;
        let outcome = WriteOutcome {
            offset: plan.offset,
            size: plan.size,
            append_at_ns: plan.append_at_ns,
        };
        self.append(plan, fsync)?;
        Ok(outcome)
    }

    /// Deletes `key` if `cookie` matches: appends a delete marker and a tombstone `.idx`
    /// entry. Returns the deleted needle's `size` field.
    pub fn delete(&mut self, key: u64, cookie: u32, fsync: bool) -> Result<u32, DeleteError> {
        self.delete_at(key, cookie, now_ns(), fsync)
    }

    /// `delete` with the append time `now_ns` (raised past the previous append's): a tool
    /// that replays another copy's deletes with their times.
    pub fn delete_at(
        &mut self,
        key: u64,
        cookie: u32,
        now_ns: u64,
        fsync: bool,
    ) -> Result<u32, DeleteError> {
        let read = self.core.plan_read(key)?;
        let header = self.read_at(read.offset, needle::HEADER_BYTES as u64)?;
        self.core.check_cookie(&read, &header, cookie)?;
        let plan = self
            .core
            .plan_delete(key, cookie, now_ns)
            .map_err(DeleteError::Append)?;
        self.append(plan, fsync)?;
        Ok(read.size)
    }

    fn append(&mut self, plan: AppendPlan, fsync: bool) -> Result<(), VolumeIoError> {
        if let Err(source) = self.dat.write_all_at(&plan.record, plan.offset) {
            self.core.abort(plan);
            return Err(VolumeIoError {
                path: self.paths.dat.clone(),
                op: "write needle",
                source,
            });
        }
        let idx_append = self.core.complete(&plan);
        if let Err(source) = self.idx.write_all_at(idx_append.bytes(), idx_append.offset) {
            self.core.revert_complete(&idx_append);
            return Err(io_error(&self.paths.idx, "write entry")(source));
        }
        if fsync {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every completed append durable.
    pub fn sync(&self) -> Result<(), VolumeIoError> {
        self.dat
            .sync_data()
            .map_err(io_error(&self.paths.dat, "fsync"))?;
        self.idx
            .sync_data()
            .map_err(io_error(&self.paths.idx, "fsync"))
    }

    /// Reads the whole needle in one pread and checks key, size, CRC, cookie and TTL.
    pub fn read(&self, key: u64, cookie: u32) -> Result<NeedleBuf, FileReadError> {
        let plan = self.core.plan_read(key)?;
        let record = self.read_at(plan.offset, plan.len)?;
        self.core.finish_read(&plan, &record, cookie, now_ns())?;
        Ok(NeedleBuf {
            record,
            version: self.core.version(),
        })
    }

    /// Finds a needle's data in the `.dat` without reading it (two small preads: the head,
    /// then the metadata after the data). Checks key, size, cookie and TTL, not the CRC.
    pub fn locate(&self, key: u64, cookie: u32) -> Result<NeedleLocation<S::File>, FileReadError> {
        let plan = self.core.plan_read(key)?;
        let head_len = (needle::DATA_PREFIX_BYTES as u64).min(plan.len);
        let head_bytes = self.read_at(plan.offset, head_len)?;
        self.core.check_cookie(&plan, &head_bytes, cookie)?;
        let mut head = [0u8; needle::DATA_PREFIX_BYTES];
        head[..head_bytes.len()].copy_from_slice(&head_bytes);
        let corrupt = |error| ReadError::Corrupt {
            volume_id: self.id(),
            key,
            offset: plan.offset,
            error,
        };
        let rest_offset = Needle::rest_offset(&head).map_err(corrupt)?;
        let rest_len = plan
            .len
            .checked_sub(rest_offset)
            .ok_or(corrupt(needle::NeedleError::FieldPastEnd { field: "data" }))?;
        let rest = self.read_at(plan.offset + rest_offset, rest_len)?;
        let version = self.core.version();
        let (needle, data_len) =
            Needle::decode_without_data(&head, &rest, version).map_err(corrupt)?;
        if needle.is_expired(now_ns()) {
            return Err(ReadError::Expired {
                volume_id: self.id(),
                key,
            }
            .into());
        }
        let data_offset = plan.offset + needle::DATA_PREFIX_BYTES as u64;
        Ok(NeedleLocation {
            file: self.dat_file(),
            data_offset,
            data_len,
            head,
            rest,
            version,
        })
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, VolumeIoError> {
        let mut bytes = vec![0u8; len as usize];
        self.dat
            .read_exact_at(&mut bytes, offset)
            .map_err(io_error(&self.paths.dat, "read"))?;
        Ok(bytes)
    }

    /// Writes the `.vif` again (after a read-only change).
    pub fn save_volume_info(&self) -> Result<(), VolumeIoError> {
        let config = self.core.config();
        let mut info =
            VolumeInfo::new(config.offset_width, config.superblock.placement.to_string());
        info.read_only = matches!(self.core.read_only(), Some(super::ReadOnlyReason::Marked));
        recovery::write_atomically(&self.storage, &self.paths.vif, info.encode().as_bytes())
    }

    /// The parts, for a caller that drives the `VolumeCore` with its own I/O (the io_uring
    /// server): the core, the `.dat` (shared), the `.idx`, and the paths. Reads and writes
    /// must follow `VolumeCore`'s protocol.
    pub fn into_parts(self) -> (VolumeCore, Arc<S::File>, S::File, VolumePaths) {
        (self.core, self.dat, self.idx, self.paths)
    }

    /// Deletes the volume's files (a compaction's leftovers included: a stale commit marker
    /// must not outlive its volume).
    pub fn destroy(self) -> Result<(), VolumeIoError> {
        let paths = &self.paths;
        for path in [
            &paths.horizon,
            &paths.deletes,
            &paths.cpc,
            &paths.cpd,
            &paths.cpx,
            &paths.dat,
            &paths.idx,
            &paths.vif,
        ] {
            match self.storage.remove(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(path, "remove")(e));
                }
                _ => {}
            }
        }
        sync_dir(&self.storage, &self.paths.dat)
    }
}

fn read_vif<S: Storage>(storage: &S, path: &Path) -> Result<Option<VolumeInfo>, OpenError> {
    let file = match storage.open(path, OpenMode::Read) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(io_error(path, "open"))?,
    };
    let len = file.len().map_err(io_error(path, "stat"))?;
    if len > limits::VIF_BYTES_MAX {
        return Err(OpenError {
            path: path.to_path_buf(),
            problem: OpenProblem::VifTooLarge { len },
        });
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(io_error(path, "read"))?;
    VolumeInfo::decode(&bytes).map(Some).map_err(|e| OpenError {
        path: path.to_path_buf(),
        problem: OpenProblem::BadVif(e),
    })
}

pub(crate) fn read_superblock<F: StorageFile>(
    dat: &F,
    path: &Path,
) -> Result<SuperBlock, OpenError> {
    let len = dat.len().map_err(io_error(path, "stat"))?;
    let problem = |problem| OpenError {
        path: path.to_path_buf(),
        problem,
    };
    if len < SUPERBLOCK_BYTES as u64 {
        return Err(problem(OpenProblem::NoSuperBlock { len }));
    }
    let mut bytes = [0u8; SUPERBLOCK_BYTES];
    dat.read_exact_at(&mut bytes, 0)
        .map_err(io_error(path, "read superblock"))?;
    let superblock =
        SuperBlock::decode(&bytes).map_err(|e| problem(OpenProblem::BadSuperBlock(e)))?;
    if superblock.block_bytes() > len {
        return Err(problem(OpenProblem::NoSuperBlock { len }));
    }
    Ok(superblock)
}

/// A new volume config with Kelp's defaults (version 3, 5-byte offsets).
pub fn default_config(
    id: u32,
    collection: &str,
    placement: ReplicaPlacement,
    ttl: crate::format::Ttl,
) -> VolumeConfig {
    VolumeConfig {
        id,
        collection: collection.to_string(),
        superblock: SuperBlock::new(placement, ttl),
        offset_width: OffsetWidth::Five,
        size_limit_bytes: limits::VOLUME_SIZE_LIMIT_BYTES_DEFAULT,
    }
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
