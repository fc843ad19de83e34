//! The read path of a core's store: a record from the `.dat`'s mapping when the page cache
//! holds it, through the ring when it does not, and located in the file (its data sent from
//! there) when it is larger than the whole-read size.

use super::{CoreStore, StoreError, failed};
use crate::volume::fid::FileId;
use bytes::Bytes;
use compio::BufResult;
use kelp_engine::format::needle::{self, Needle};
use kelp_engine::volume::{FileReadError, FileVolume, ReadError, ReadPlan};
use kelp_net::http::{Body, FileRegion};
use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// What the read path needs to know about a stored needle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeedleMeta {
    pub crc: u32,
    pub name: Option<String>,
    pub mime: Option<String>,
    pub last_modified_unix_s: u64,
    pub gzipped: bool,
    pub pairs: Vec<(String, String)>,
}

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

/// Reads `fid`. Records up to the whole-read size are read from the `.dat`'s mapping (CRC
/// checked) and their data sent from it, when the page cache holds them; one that it does not
/// is read through the ring, so a cold read waits for the disk without blocking the core's
/// other connections. Larger records are located and sent from the file.
pub async fn read(
    store: &RefCell<CoreStore>,
    fid: FileId,
    now_ns: u64,
) -> Result<Found, StoreError> {
    let uncached = match start_read(store, fid, now_ns)? {
        ReadStart::Found(found) => return Ok(found),
        ReadStart::Uncached(uncached) => uncached,
    };
    let (offset, len) = (uncached.plan.offset, uncached.plan.len as usize);
    let BufResult(result, record) =
        kelp_net::fs::append_exact_at(uncached.dat.clone(), offset, len, Vec::new()).await;
    if let Err(error) = result {
        let context = format!(
            "{fid}: read {len} bytes at offset {offset} of {}: {error}",
            uncached.dat_path.display()
        );
        return Err(StoreError::Failed { context });
    }
    finish_uncached_read(&store.borrow(), fid, &uncached, Bytes::from(record), now_ns)
}

/// Bytes after an uncached record that the kernel is asked to read ahead, as a fault on the
/// mapping reads around the faulting page: records written one after another are often read
/// so too.
const UNCACHED_READ_AHEAD_BYTES: u64 = 128 * 1024;

/// Starts reading the bytes after `end` into the page cache without waiting for them
/// (POSIX_FADV_WILLNEED queues the reads and returns). Advice only: an error changes nothing.
fn read_ahead(dat: &File, end: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise on an open descriptor; no memory is touched.
    let _ = unsafe {
        libc::posix_fadvise(
            dat.as_raw_fd(),
            end as libc::off_t,
            UNCACHED_READ_AHEAD_BYTES as libc::off_t,
            libc::POSIX_FADV_WILLNEED,
        )
    };
}

/// How a read goes on after its first, synchronous step.
enum ReadStart {
    Found(Found),
    /// The record is not (all) in the page cache: read it through the ring.
    Uncached(UncachedRead),
}

struct UncachedRead {
    plan: ReadPlan,
    generation: u64,
    dat: Arc<File>,
    dat_path: PathBuf,
}

fn start_read(
    store: &RefCell<CoreStore>,
    fid: FileId,
    now_ns: u64,
) -> Result<ReadStart, StoreError> {
    let mut store = store.borrow_mut();
    let whole_bytes_max = store.read_whole_bytes_max;
    let local = store.get_mut(fid.volume_id)?;
    let plan = local
        .volume
        .core()
        .plan_read(fid.key)
        .map_err(|error| read_error(fid, error))?;
    if plan.len > whole_bytes_max {
        return read_located(&local.volume, fid).map(ReadStart::Found);
    }
    let map = local.dat_map(plan.offset + plan.len)?;
    let start = plan.offset as usize;
    let range = start..start + plan.len as usize;
    let now_ms = (now_ns / 1_000_000) as u32;
    if !local.residency.is_resident(&map, range.clone(), now_ms) {
        let uncached = UncachedRead {
            plan,
            generation: local.generation,
            dat: local.volume.dat_file(),
            dat_path: local.volume.paths().dat.clone(),
        };
        read_ahead(&uncached.dat, uncached.plan.offset + uncached.plan.len);
        store.uncached_reads += 1;
        return Ok(ReadStart::Uncached(uncached));
    }
    let record = map.slice(range);
    let needle = local
        .volume
        .core()
        .finish_read(&plan, record, fid.cookie, now_ns)
        .map_err(|error| read_error(fid, error))?;
    assert!(std::ptr::eq(
        needle.data.as_ptr(),
        record[needle::DATA_PREFIX_BYTES..].as_ptr()
    ));
    let data_start = start + needle::DATA_PREFIX_BYTES;
    let data = map.bytes(data_start..data_start + needle.data.len());
    Ok(ReadStart::Found(found_in_memory(&needle, data)))
}

/// `needle`'s metadata with its data, `data`, held in memory (a mapping or a buffer).
fn found_in_memory(needle: &Needle<'_>, data: Bytes) -> Found {
    assert_eq!(data.len(), needle.data.len());
    Found {
        meta: meta_of(needle),
        data_len: data.len() as u64,
        data: NeedleData::Bytes(data),
    }
}

/// Checks and decodes a record read through the ring (cookie, CRC, expiry), if its volume
/// is still the one it was read from.
fn finish_uncached_read(
    store: &CoreStore,
    fid: FileId,
    uncached: &UncachedRead,
    record: Bytes,
    now_ns: u64,
) -> Result<Found, StoreError> {
    let local = match store.volumes.get(&fid.volume_id) {
        Some(local) if local.generation == uncached.generation => local,
        _ => return Err(StoreError::NotFound { fid }),
    };
    let needle = local
        .volume
        .core()
        .finish_read(&uncached.plan, &record, fid.cookie, now_ns)
        .map_err(|error| read_error(fid, error))?;
    let data_start = needle::DATA_PREFIX_BYTES;
    let data = record.slice(data_start..data_start + needle.data.len());
    Ok(found_in_memory(&needle, data))
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
        pairs: needle.pairs.map(pairs_from_json).unwrap_or_default(),
    }
}

/// The stored pairs (a JSON object) back as (name, value), for `name: value` response
/// headers; anything but an object of strings gives none.
fn pairs_from_json(json: &[u8]) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(json) else {
        return Vec::new();
    };
    object
        .into_iter()
        .filter_map(|(name, value)| value.as_str().map(|v| (name, v.to_string())))
        .collect()
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
