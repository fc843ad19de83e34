//! A read-only shared mapping of a volume's `.dat`, so a GET reads its needle from the page
//! cache without a syscall and sends the data straight from the mapping: one copy (page cache
//! to socket) instead of two (page cache to a buffer, buffer to socket), and no ring round
//! trip before the send.
//!
//! Why it is sound: a `.dat` is append-only while the server runs, and a GET only maps the
//! range of a record whose write has completed, which nothing writes again. The mapping may
//! run past the end of the file (it is sized ahead so it is not remapped on every append);
//! only completed records, which lie inside the file, are ever read. Nothing truncates a
//! `.dat` while it is open: recovery truncates a torn tail before the volume is served, and
//! deleting a volume unlinks its files, which keeps the pages of a mapping that a response
//! still holds. (A `.dat` truncated behind the server's back would make a read of the lost
//! range fault with SIGBUS, as with any mapped file; see README, "Volume server".)

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;

/// The smallest mapping made: a volume maps this much (or the next power of two above its
/// data) at its first read, so small volumes are mapped once.
pub const DAT_MAP_BYTES_MIN: u64 = 64 << 20;

/// Bytes to map so that the first `end` bytes of the `.dat` are covered: a power of two, so a
/// growing volume is remapped a logarithmic number of times.
pub fn map_len_for(end: u64) -> u64 {
    end.max(DAT_MAP_BYTES_MIN).next_power_of_two()
}

pub struct DatMap {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; `&DatMap` only hands out shared
// slices of it, which any thread may read.
unsafe impl Send for DatMap {}
unsafe impl Sync for DatMap {}

impl DatMap {
    /// Maps the first `len` bytes of `file` (which may be shorter) read-only and shared.
    pub fn new(file: &File, len: u64) -> io::Result<DatMap> {
        assert!(len > 0);
        let len = usize::try_from(len).map_err(|_| io::Error::other("mapping too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel; the result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let addr = NonNull::new(addr.cast::<u8>()).expect("mmap returned null");
        Ok(DatMap { addr, len })
    }

    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// The bytes at `range` of the file. The caller reads only completed records (see the
    /// module comment): inside the file and never written again.
    pub fn slice(&self, range: Range<usize>) -> &[u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: inside the mapping (asserted), which lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().add(range.start), range.len()) }
    }

    /// `slice(range)` as a `Bytes` that keeps the mapping alive until it is dropped (after
    /// the response that carries it is sent), without copying.
    pub fn bytes(self: &Arc<Self>, range: Range<usize>) -> Bytes {
        assert!(range.start <= range.end && range.end <= self.len);
        Bytes::from_owner(MappedRange {
            map: self.clone(),
            range,
        })
    }
}

impl Drop for DatMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no slice of it outlives `self`.
        let result = unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
        assert_eq!(result, 0, "munmap: {}", io::Error::last_os_error());
    }
}

struct MappedRange {
    map: Arc<DatMap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        self.map.slice(self.range.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    // Proves mappings are sized ahead in powers of two, never below the minimum.
    #[test]
    fn map_len_grows_in_powers_of_two() {
        assert_eq!(map_len_for(0), DAT_MAP_BYTES_MIN);
        assert_eq!(map_len_for(DAT_MAP_BYTES_MIN), DAT_MAP_BYTES_MIN);
        assert_eq!(map_len_for(DAT_MAP_BYTES_MIN + 1), 2 * DAT_MAP_BYTES_MIN);
        assert_eq!(map_len_for(5 << 30), 8 << 30);
    }

    // Proves a mapping longer than the file reads what was written, including bytes written
    // after the mapping was made, and that a `Bytes` of it outlives the map's owner.
    #[test]
    fn reads_appends_and_outlives_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.dat");
        let mut file = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(b"superblock").unwrap();
        let map = Arc::new(DatMap::new(&file, map_len_for(10)).unwrap());
        assert_eq!(map.slice(0..10), b"superblock");
        file.write_all_at(b"needle", 4096).unwrap();
        let bytes = map.bytes(4096..4102);
        drop(map);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&bytes[..], b"needle");
    }
}
