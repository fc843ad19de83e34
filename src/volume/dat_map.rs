//! A read-only shared mapping of a volume's `.dat`, so a GET reads its needle from the page
//! cache and sends the data straight from the mapping: one copy (page cache to socket)
//! instead of two (page cache to a buffer, buffer to socket), and no ring round trip before
//! the send. Only records the page cache holds are read this way (`is_resident`): touching a
//! page that is not would block the core's thread on the disk.
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

/// Pages asked about per mincore(2) call when a whole region is checked.
const RESIDENCY_PAGES_PER_CALL: usize = 64;

/// The stretch of a `.dat` whose residency is checked and remembered as one.
pub const RESIDENCY_REGION_BYTES: usize = 64 * 1024;

/// How long a region found all in the page cache is taken to stay there. Pages are evicted
/// least-recently-used first, and a region that was just read is the most recently used, so
/// an eviction within this window takes memory pressure heavy enough to empty the whole cache
/// that fast; its cost is one fault on the core, as without the check.
pub const RESIDENCY_TRUST_MS: u32 = 250;

/// Which regions of one `.dat` were found resident, and when: one mincore(2) call per region
/// per `RESIDENCY_TRUST_MS` instead of one or two per GET (about 1 µs each on this machine,
/// 7-15% of a 1 KB GET). Core-local, like the volume it belongs to.
#[derive(Default)]
pub struct ResidencyCache {
    /// Per region, the millisecond clock (wrapping) when it was last found resident; 0 =
    /// never.
    verified_ms: Vec<u32>,
}

impl ResidencyCache {
    /// Is `range` of `map` in the page cache, as far as a GET needs to know? Regions found
    /// resident within the last `RESIDENCY_TRUST_MS` count as resident; others are checked
    /// whole and remembered when they are; a region that is not all resident (the volume's
    /// last one, whose tail is past the end of the file, for one) falls back to checking the
    /// record's own first and last page.
    pub fn is_resident(&mut self, map: &DatMap, range: Range<usize>, now_ms: u32) -> bool {
        if range.is_empty() {
            return true;
        }
        let now_ms = now_ms.max(1);
        let regions =
            range.start / RESIDENCY_REGION_BYTES..=(range.end - 1) / RESIDENCY_REGION_BYTES;
        for region in regions {
            if self.is_fresh(region, now_ms) {
                continue;
            }
            let start = region * RESIDENCY_REGION_BYTES;
            let end = (start + RESIDENCY_REGION_BYTES).min(map.len);
            if !map.pages_are_resident(start..end) {
                return map.is_resident(range);
            }
            if self.verified_ms.len() <= region {
                self.verified_ms.resize(region + 1, 0);
            }
            self.verified_ms[region] = now_ms;
        }
        true
    }

    fn is_fresh(&self, region: usize, now_ms: u32) -> bool {
        match self.verified_ms.get(region) {
            Some(&verified_ms) if verified_ms != 0 => {
                now_ms.wrapping_sub(verified_ms) < RESIDENCY_TRUST_MS
            }
            _ => false,
        }
    }
}

/// The page size, read once.
fn page_bytes() -> usize {
    use std::sync::OnceLock;
    static PAGE_BYTES: OnceLock<usize> = OnceLock::new();
    *PAGE_BYTES.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(bytes)
            .ok()
            .filter(|b| b.is_power_of_two())
            .unwrap_or(4096)
    })
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

    /// Are the pages of `range` in the page cache? Touching a page that is not would block
    /// the core thread on a disk read (a major fault); such reads go through the ring instead.
    /// Only the first and the last page are asked about: a record is written in one piece and
    /// read ahead in one piece, so its pages come and go together, and mincore(2) costs about
    /// 150 ns per page it looks up (asking about all 17 pages of a 64 KB record took 11% of
    /// the 64 KB GET rate). A page may be evicted right after this answers, so "yes" is a
    /// strong hint, not a promise. Errors answer "no", which only sends the read the slow,
    /// always-correct way.
    pub fn is_resident(&self, range: Range<usize>) -> bool {
        assert!(range.start <= range.end && range.end <= self.len);
        if range.is_empty() {
            return true;
        }
        let first_page = range.start / page_bytes();
        let last_page = (range.end - 1) / page_bytes();
        let page_range =
            |page: usize| page * page_bytes()..((page + 1) * page_bytes()).min(self.len);
        self.pages_are_resident(page_range(first_page))
            && (last_page == first_page || self.pages_are_resident(page_range(last_page)))
    }

    /// Are all pages of `range` in the page cache? One mincore(2) call per
    /// `RESIDENCY_PAGES_PER_CALL` pages.
    fn pages_are_resident(&self, range: Range<usize>) -> bool {
        assert!(range.start <= range.end && range.end <= self.len);
        let end_page = range.end.div_ceil(page_bytes());
        let mut page = range.start / page_bytes();
        while page < end_page {
            let pages = (end_page - page).min(RESIDENCY_PAGES_PER_CALL);
            let mut resident = [0u8; RESIDENCY_PAGES_PER_CALL];
            // SAFETY: whole pages inside the mapping (asserted above; a mapping's length is
            // rounded up to whole pages), and one byte of `resident` per page asked about.
            let result = unsafe {
                libc::mincore(
                    self.addr.as_ptr().add(page * page_bytes()).cast(),
                    pages * page_bytes(),
                    resident.as_mut_ptr(),
                )
            };
            if result != 0 || resident[..pages].iter().any(|flags| flags & 1 == 0) {
                return false;
            }
            page += pages;
        }
        true
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

/// Drops `file`'s clean, unmapped pages from the page cache (after syncing it), as memory
/// pressure would: for tests of the uncached read path.
#[cfg(test)]
pub fn evict_from_page_cache(file: &File) {
    file.sync_all().unwrap();
    // SAFETY: posix_fadvise on an open descriptor; no memory is touched.
    let result = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(
        result,
        0,
        "posix_fadvise: {}",
        io::Error::from_raw_os_error(result)
    );
}

/// A temporary directory on the disk the build runs on: `/tmp` may be a tmpfs, whose pages
/// cannot be evicted.
#[cfg(test)]
pub fn disk_tempdir() -> tempfile::TempDir {
    let parent = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::tempdir_in(parent).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    /// `len` bytes of `byte` in a new file `1.dat` under `dir`, open read-write.
    fn scratch_dat(dir: &std::path::Path, len: usize, byte: u8) -> File {
        let file = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.join("1.dat"))
            .unwrap();
        file.write_all_at(&vec![byte; len], 0).unwrap();
        file
    }

    // Proves residency answers "no" when the first or the last page of a record was dropped
    // from the page cache and "yes" once both are back, so a GET of a cold record is sent
    // through the ring instead of faulting on the core.
    #[test]
    fn residency_follows_the_page_cache() {
        let dir = disk_tempdir();
        let page = page_bytes();
        let file = scratch_dat(dir.path(), 6 * page + 100, 7);
        let map = DatMap::new(&file, map_len_for(6 * page as u64 + 100)).unwrap();
        evict_from_page_cache(&file);
        // SAFETY: posix_fadvise on an open descriptor: no readahead, so reading page 1 does not
        // bring in page 3.
        let advised =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        assert_eq!(advised, 0);
        let record = page + 10..3 * page + 50; // pages 1, 2 and 3
        assert!(
            !map.is_resident(record.clone()),
            "evicted pages count as resident"
        );
        assert!(
            map.is_resident(record.start..record.start),
            "nothing to read"
        );
        let read_page = |index: usize| {
            let mut buffer = vec![0u8; page];
            file.read_exact_at(&mut buffer, (index * page) as u64)
                .unwrap();
        };
        read_page(1);
        assert!(
            !map.is_resident(record.clone()),
            "the last page is still out"
        );
        read_page(3);
        assert!(map.is_resident(record.clone()));
        assert_eq!(map.slice(record.clone()), &vec![7u8; record.len()][..]);
    }

    // Proves the residency cache remembers a region found resident for RESIDENCY_TRUST_MS
    // (it answers "yes" without asking after the pages were dropped), asks again after that
    // (and then answers "no"), and that a region not all resident falls back to the record's
    // own pages: a cached record there reads as resident, an evicted one does not.
    #[test]
    fn residency_cache_trusts_a_region_for_a_while() {
        let dir = disk_tempdir();
        let region = RESIDENCY_REGION_BYTES;
        let file_len = 2 * region + region / 2; // the last region ends past the file
        let file = scratch_dat(dir.path(), file_len, 3);
        let map = DatMap::new(&file, map_len_for(file_len as u64)).unwrap();
        let mut cache = ResidencyCache::default();
        let record = 100..5000;
        let mut buffer = vec![0u8; region];
        file.read_exact_at(&mut buffer, 0).unwrap();
        assert!(cache.is_resident(&map, record.clone(), 1_000));
        evict_from_page_cache(&file);
        assert!(!map.is_resident(record.clone()), "the pages are gone");
        let within = 1_000 + RESIDENCY_TRUST_MS - 1;
        assert!(cache.is_resident(&map, record.clone(), within), "trusted");
        let after = 1_000 + RESIDENCY_TRUST_MS;
        assert!(
            !cache.is_resident(&map, record.clone(), after),
            "asked again"
        );
        let tail = 2 * region + 10..2 * region + 200;
        assert!(!cache.is_resident(&map, tail.clone(), after));
        let mut tail_page = vec![0u8; 4096];
        file.read_exact_at(&mut tail_page, 2 * region as u64)
            .unwrap();
        assert!(
            cache.is_resident(&map, tail.clone(), after),
            "the record's pages decide in a region that runs past the file"
        );
    }

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
