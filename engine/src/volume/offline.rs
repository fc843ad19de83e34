//! Offline work on a volume's files, for `kelp export` and `kelp fix`: a volume server must
//! not have the volume open. Nothing here changes the `.dat`.

use super::file::{VolumeIoError, VolumePaths, io_error};
use super::recovery::{encode_entries, entry_for, write_atomically};
use super::scan::{DatScanner, ScanEnd};
use super::storage::StdStorage;
use crate::format::needle::Needle;
use crate::format::{
    IdxEntry, OffsetWidth, SUPERBLOCK_BYTES, SuperBlock, SuperBlockError, VifError, VolumeInfo,
};
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum OfflineError {
    Io(VolumeIoError),
    NoSuperBlock {
        path: PathBuf,
        len: u64,
    },
    BadSuperBlock {
        path: PathBuf,
        error: SuperBlockError,
    },
    BadVif {
        path: PathBuf,
        error: VifError,
    },
}

impl fmt::Display for OfflineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineError::Io(error) => write!(f, "{error}"),
            OfflineError::NoSuperBlock { path, len } => write!(
                f,
                "{}: {len} bytes, shorter than the {SUPERBLOCK_BYTES}-byte superblock",
                path.display()
            ),
            OfflineError::BadSuperBlock { path, error } => write!(f, "{}: {error}", path.display()),
            OfflineError::BadVif { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}
impl std::error::Error for OfflineError {}

impl From<VolumeIoError> for OfflineError {
    fn from(error: VolumeIoError) -> Self {
        OfflineError::Io(error)
    }
}

/// Key -> (offset of its last needle, whether that needle holds data).
pub type LastNeedles = HashMap<u64, (u64, bool)>;

/// A volume's `.dat` opened read-only, with what its superblock and `.vif` say.
pub struct DatFile {
    pub paths: VolumePaths,
    pub file: File,
    pub len: u64,
    pub superblock: SuperBlock,
    pub offset_width: OffsetWidth,
}

impl DatFile {
    pub fn open(dir: &Path, collection: &str, id: u32) -> Result<DatFile, OfflineError> {
        let paths = VolumePaths::new(dir, collection, id);
        let offset_width = read_offset_width(&paths.vif)?;
        let file = File::open(&paths.dat).map_err(io_error(&paths.dat, "open"))?;
        let len = file.metadata().map_err(io_error(&paths.dat, "stat"))?.len();
        let mut bytes = [0u8; SUPERBLOCK_BYTES];
        if len < SUPERBLOCK_BYTES as u64 {
            return Err(OfflineError::NoSuperBlock {
                path: paths.dat,
                len,
            });
        }
        file.read_exact_at(&mut bytes, 0)
            .map_err(io_error(&paths.dat, "read superblock"))?;
        let superblock =
            SuperBlock::decode(&bytes).map_err(|error| OfflineError::BadSuperBlock {
                path: paths.dat.clone(),
                error,
            })?;
        if superblock.block_bytes() > len {
            return Err(OfflineError::NoSuperBlock {
                path: paths.dat,
                len,
            });
        }
        Ok(DatFile {
            paths,
            file,
            len,
            superblock,
            offset_width,
        })
    }

    /// Calls `visit(offset, needle)` for every valid needle in file order; returns how the
    /// scan ended (`Torn` when the `.dat` ends with a torn or corrupt needle).
    pub fn scan(&self, mut visit: impl FnMut(u64, &Needle<'_>)) -> Result<ScanEnd, OfflineError> {
        let start = self.superblock.block_bytes();
        let mut scanner = DatScanner::new(&self.file, self.len, self.superblock.version, start);
        loop {
            match scanner
                .next_needle()
                .map_err(io_error(&self.paths.dat, "read"))?
            {
                Ok((offset, needle)) => visit(offset, &needle),
                Err(end) => return Ok(end),
            }
        }
    }

    /// For every key, the offset of its last needle in the `.dat` and whether that needle
    /// is data (true) or a delete marker (false). A needle is live when it is its key's last.
    pub fn last_needles(&self) -> Result<(LastNeedles, ScanEnd), OfflineError> {
        let mut last = HashMap::new();
        let end = self.scan(|offset, needle| {
            last.insert(needle.key, (offset, !needle.data.is_empty()));
        })?;
        Ok((last, end))
    }
}

fn read_offset_width(path: &Path) -> Result<OffsetWidth, OfflineError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OffsetWidth::Four),
        Err(e) => return Err(io_error(path, "read")(e).into()),
    };
    let bad = |error| OfflineError::BadVif {
        path: path.to_path_buf(),
        error,
    };
    VolumeInfo::decode(&bytes)
        .and_then(|info| info.offset_width())
        .map_err(bad)
}

/// What `fix_index` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixReport {
    pub idx_path: PathBuf,
    pub entries: usize,
    pub live: usize,
    pub deleted: usize,
    pub end: ScanEnd,
}

/// Rebuilds the `.idx` from the `.dat`, like `weed fix`: for each key, the entry of its last
/// data needle and the entry of its last delete marker, in `.dat` order. (So the result is
/// byte-identical to what `weed fix` writes.) The old `.idx` is replaced atomically.
pub fn fix_index(dir: &Path, collection: &str, id: u32) -> Result<FixReport, OfflineError> {
    let dat = DatFile::open(dir, collection, id)?;
    let mut last_live: HashMap<u64, IdxEntry> = HashMap::new();
    let mut last_deleted: HashMap<u64, IdxEntry> = HashMap::new();
    let end = dat.scan(|offset, needle| {
        let entry = entry_for(offset, needle);
        let by_kind = if entry.is_tombstone() {
            &mut last_deleted
        } else {
            &mut last_live
        };
        by_kind.insert(entry.key, entry);
    })?;
    let mut entries: Vec<IdxEntry> = last_live
        .values()
        .chain(last_deleted.values())
        .copied()
        .collect();
    entries.sort_by_key(|entry| entry.offset_units);
    let live = last_live.keys().filter(|key| match last_deleted.get(key) {
        Some(deleted) => deleted.offset_units < last_live[key].offset_units,
        None => true,
    });
    let report = FixReport {
        idx_path: dat.paths.idx.clone(),
        entries: entries.len(),
        live: live.count(),
        deleted: last_deleted.len(),
        end,
    };
    write_atomically(
        &StdStorage,
        &dat.paths.idx,
        &encode_entries(entries.into_iter(), dat.offset_width),
    )?;
    Ok(report)
}
