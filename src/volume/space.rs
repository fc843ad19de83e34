//! Disk space for volumes: how many volumes fit on the disk (`--max 0`), and whether a
//! write fits before it is made, so that a disk that fills turns volumes read-only instead
//! of failing a write in the middle of a needle.
//!
//! Each core keeps its own estimate of the free bytes (`FreeSpace`), lowered by every write
//! it lets through: measured (statvfs, which reads counters, no I/O) at least every
//! `FREE_SPACE_MEASURE_MS_MAX`, and before every write once less than the reserve plus
//! `FREE_SPACE_NEAR_BYTES` is free, so that what other cores and other programs wrote
//! meanwhile is seen where it matters.

use super::limits::{
    FREE_SPACE_MEASURE_BYTES_MAX, FREE_SPACE_MEASURE_MS_MAX, FREE_SPACE_NEAR_BYTES,
};
use kelp_engine::volume::{StdStorage, Storage};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Volumes a server may hold with `--max 0`: those it has, plus one per `size_limit_bytes`
/// of free space above the reserve, at most `AUTO_VOLUMES_MAX`.
pub fn volume_slots(
    volumes_now: usize,
    free_bytes: u64,
    reserve_bytes: u64,
    size_limit_bytes: u64,
) -> u32 {
    assert!(size_limit_bytes > 0);
    let more = free_bytes.saturating_sub(reserve_bytes) / size_limit_bytes;
    let slots = (volumes_now as u64).saturating_add(more);
    let max = u64::from(super::limits::AUTO_VOLUMES_MAX).max(volumes_now as u64);
    u32::try_from(slots.min(max)).expect("bounded")
}

/// How many volumes this server may hold now, and the reason a create past it is refused:
/// `--max`, or with `--max 0` what the disk's free space holds at the volume size limit.
pub fn volumes_max(
    max_flag: u32,
    volumes_now: usize,
    store: &mut super::store::CoreStore,
    dir: &Path,
) -> (u32, String) {
    if max_flag > 0 {
        return (
            max_flag,
            format!("this server holds its --max of {max_flag} volumes"),
        );
    }
    let free = store.measure_free_space();
    let reserve = store.min_free_space_bytes();
    let limit = store.size_limit_bytes();
    let max = volume_slots(volumes_now, free, reserve, limit);
    let why = format!(
        "the disk of {} has room for no more volumes (--max 0): {free} bytes free, {reserve} \
         kept free (--min-free-space-mb), a volume may grow to {limit} bytes; {volumes_now} \
         volumes here",
        dir.display()
    );
    (max, why)
}

/// A write refused for lack of space: what was free, what is kept free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSpace {
    pub dir: PathBuf,
    pub free_bytes: u64,
    pub reserve_bytes: u64,
    pub needed_bytes: u64,
}

impl std::fmt::Display for NoSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the disk of {} is full: {} bytes free, {} kept free (--min-free-space-mb), \
             the write needs {}; volumes there are read-only until space is freed",
            self.dir.display(),
            self.free_bytes,
            self.reserve_bytes,
            self.needed_bytes
        )
    }
}

/// One core's estimate of the free bytes of the volume directory's file system.
pub struct FreeSpace {
    dir: PathBuf,
    reserve_bytes: u64,
    free_bytes: u64,
    written_since: u64,
    measured_at: Option<Instant>,
    /// The last measurement failed (its error), so writes are refused until one works.
    failure: Option<String>,
}

impl FreeSpace {
    pub fn new(dir: &Path, reserve_bytes: u64) -> FreeSpace {
        FreeSpace {
            dir: dir.to_path_buf(),
            reserve_bytes,
            free_bytes: 0,
            written_since: 0,
            measured_at: None,
            failure: None,
        }
    }

    /// May `bytes` more be written now? Takes them off the estimate when they may.
    pub fn take(&mut self, bytes: u64, now: Instant) -> Result<(), NoSpace> {
        let near_bytes = self.reserve_bytes.saturating_add(FREE_SPACE_NEAR_BYTES);
        let near = self.free_bytes.saturating_sub(bytes) < near_bytes;
        let stale = self.measured_at.is_none_or(|at| {
            now.duration_since(at) >= Duration::from_millis(FREE_SPACE_MEASURE_MS_MAX)
        }) || self.written_since >= FREE_SPACE_MEASURE_BYTES_MAX;
        if near || stale {
            self.measure(now);
        }
        if self.failure.is_some() || self.free_bytes < bytes.saturating_add(self.reserve_bytes) {
            return Err(self.no_space(bytes));
        }
        self.free_bytes -= bytes;
        self.written_since += bytes;
        Ok(())
    }

    /// Measures again when the last measurement is older than `FREE_SPACE_MEASURE_MS_MAX`
    /// (or there is none): reports (heartbeat, `/status`) then say whether the disk is full
    /// as it is now, not as it was at the last write.
    pub fn refresh(&mut self, now: Instant) {
        let stale = self.measured_at.is_none_or(|at| {
            now.duration_since(at) >= Duration::from_millis(FREE_SPACE_MEASURE_MS_MAX)
        });
        if stale {
            self.measure(now);
        }
    }

    /// Is less than twice the reserve free (as last measured)? Volumes report read-only
    /// then, so the master stops assigning to them before writes are refused.
    pub fn is_full(&self) -> bool {
        self.failure.is_some() || self.free_bytes < self.reserve_bytes.saturating_mul(2)
    }

    /// Measures again (the heartbeat does, every pulse) and returns the free bytes.
    pub fn measure(&mut self, now: Instant) -> u64 {
        match StdStorage.free_bytes(&self.dir) {
            Ok(free) => {
                self.free_bytes = free;
                self.failure = None;
            }
            Err(error) => {
                let dir = self.dir.display();
                tracing::error!("free space of {dir}: statvfs failed: {error}");
                self.failure = Some(error.to_string());
            }
        }
        self.measured_at = Some(now);
        self.written_since = 0;
        self.free_bytes
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    fn no_space(&self, needed_bytes: u64) -> NoSpace {
        NoSpace {
            dir: self.dir.clone(),
            free_bytes: self.free_bytes,
            reserve_bytes: self.reserve_bytes,
            needed_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves --max 0 counts one volume per size limit of free space above the reserve, on
    // top of the volumes there, bounded by AUTO_VOLUMES_MAX.
    #[test]
    fn slots_follow_free_space() {
        const G: u64 = 1 << 30;
        assert_eq!(volume_slots(0, 10 * G, G, 3 * G), 3);
        assert_eq!(volume_slots(4, 10 * G, G, 3 * G), 7);
        assert_eq!(
            volume_slots(4, G / 2, G, 3 * G),
            4,
            "a full disk: no new volume"
        );
        let bound = super::super::limits::AUTO_VOLUMES_MAX;
        assert_eq!(volume_slots(0, u64::MAX, 0, 1), bound);
    }

    // Proves a volume with plenty of free space is not reported full before its first write
    // (a fresh estimate is 0 bytes until measured: refresh measures it).
    #[test]
    fn reports_are_not_full_before_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut space = FreeSpace::new(dir.path(), 1);
        space.refresh(Instant::now());
        assert!(!space.is_full(), "{} bytes free", space.free_bytes);
    }

    // Proves a write that would eat into the reserve is refused with the numbers, and that
    // one that fits is taken off the estimate.
    #[test]
    fn writes_stop_at_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let mut space = FreeSpace::new(dir.path(), 0);
        let free = space.measure(now);
        assert!(free > 0);
        space.take(1000, now).unwrap();
        assert!(!space.is_full());
        let mut tight = FreeSpace::new(dir.path(), free);
        let refused = tight.take(1 << 20, now).unwrap_err();
        assert_eq!(refused.needed_bytes, 1 << 20);
        assert!(
            refused.to_string().contains("--min-free-space-mb"),
            "{refused}"
        );
        assert!(
            tight.is_full() || tight.free_bytes > free,
            "another writer freed space"
        );
    }
}
