//! Online compaction (vacuum): the live, unexpired needles of a volume are copied into a new
//! pair of files (`<base>.cpd`, `<base>.cpx`) while the volume keeps serving reads and
//! taking writes and deletes; then the new files replace the old ones. See `engine/FORMAT.md`
//! ("Compaction") for the files, the commit marker, the order of fsyncs and renames, and the
//! recovery rules.
//!
//! The work is split so that an event loop that owns the volume never blocks for long:
//!
//! | part | where it runs | what it does |
//! |---|---|---|
//! | `Compaction` | the volume's owner (needs `&VolumeCore`) | plans steps, tracks progress; no I/O, O(step) |
//! | `CompactIo` | any thread (`Send`, blocking I/O) | creates, fills and swaps the new files, builds the new needle map |
//!
//! A step is bounded (`limits::COMPACT_STEP_NEEDLES_MAX` needles, `COMPACT_STEP_BYTES_MAX`
//! bytes). The I/O part reads only regions of the old `.dat` and `.idx` that never change
//! again (needles written before the compaction started, `.idx` entries already written) and
//! writes only the new files, so it needs no lock against the volume's own appends.
//!
//! # Protocol (the volume server's per-core loop)
//!
//! ```text
//! on the core:   let (mut compaction, start) = Compaction::start(volume.core())?;
//! off the core:  let mut io = CompactIo::create(storage, paths, dat, &start)?;   // space check too
//! loop {
//!   on the core:   match compaction.next_step(volume.core(), now_ns) {
//!                    Step::Copy(batch)   => off the core: done = io.copy(&batch)?,
//!                    Step::Replay(batch) => off the core: done = io.replay(&batch)?,
//!                    Step::Commit        => break,
//!                  }
//!   on the core:   compaction.apply(done);  then wait throttle.pause_after(bytes, now)
//! }
//! on the core:   hold the volume's appends (writes and deletes wait; reads go on);
//!                wait until volume.core().appends_in_flight() == 0;
//!                let batch = compaction.plan_commit(volume.core());
//! off the core:  let done = io.commit(&batch);       // replays the last tail, swaps the files
//! on the core:   let (new_volume, report) = compaction.finish(volume.core(), done?);
//!                replace the volume (new handles, new map), release the appends.
//! off the core:  make_swap_durable(storage, paths)?;   // appends need not wait for it
//! off the core:  drop the old volume (and any mapping of its .dat) once no read uses it
//! ```
//!
//! Dropping the old volume closes the last handle of the replaced `.dat`, and the kernel then
//! frees its blocks: about 120 ms for a 220 MB `.dat` here (`benches/compact.rs`), far longer
//! than the commit itself, so it must not happen on the event loop.
//!
//! Any error before the commit: `io.abort()` removes the new files and the old volume goes on
//! as if nothing happened. An error whose `reopen_required()` is true (the commit failed
//! midway): keep the appends held, open the volume again (`FileVolume::open`, which finishes
//! or undoes the swap) and serve that one. Appends between `plan_commit` and the swap would be
//! lost: they must stay held. The hold lasts one replay of the entries appended since the
//! previous step (at most about `COMPACT_COMMIT_TAIL_ENTRIES_MAX` plus what arrives while the
//! server drains), the fsyncs of that tail in the two new files, the marker (created,
//! fsynced, the directory fsynced) and two renames; `CompactReport::commit_io_micros`
//! measures it. Reads are never held: the old files stay open and valid until dropped.
//!
//! The replay reads the appended `.idx` entries from the file, so an entry `complete` handed
//! out must be written before the next step is planned (the server writes it right after
//! `complete`, on the same thread); an entry whose write failed reads as a hole and is
//! skipped, as recovery would. Only one compaction per volume at a time (the caller keeps
//! that): `CompactIo::create` removes the new files an abandoned compaction of the same
//! volume left.

mod io;
mod recover;

pub use self::io::{CommitDone, CompactIo, check_space, make_swap_durable};
pub use self::recover::CompactionRecovery;
pub(crate) use self::recover::settle;

use super::core::{VolumeConfig, VolumeCore};
use super::file::{FileVolume, VolumeIoError, now_ns};
use super::storage::Storage;
use crate::format::needle::{self, NeedleError, Version};
use crate::format::{OffsetWidth, PADDING_BYTES};
use crate::limits;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How large steps are, and when the commit starts. `Default` is `limits::COMPACT_*`;
/// tests use tiny ones to get many steps out of a small volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepLimits {
    /// Needles one copy or replay step copies at most.
    pub needles_max: usize,
    /// Record bytes one step copies at most (a larger needle goes alone).
    pub bytes_max: u64,
    /// The commit starts once at most this many `.idx` entries wait for replay.
    pub commit_tail_entries_max: usize,
    /// ... or after this many replay steps, whatever the tail.
    pub replay_steps_max: u32,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            needles_max: limits::COMPACT_STEP_NEEDLES_MAX,
            bytes_max: limits::COMPACT_STEP_BYTES_MAX,
            commit_tail_entries_max: limits::COMPACT_COMMIT_TAIL_ENTRIES_MAX,
            replay_steps_max: limits::COMPACT_REPLAY_STEPS_MAX,
        }
    }
}

impl StepLimits {
    fn assert_valid(&self) {
        assert!(self.needles_max >= 1 && self.bytes_max >= 1);
        assert!(self.commit_tail_entries_max <= self.needles_max);
    }

    /// Map entries one copy plan looks at (skipped ones included).
    fn plan_entries_max(&self) -> usize {
        self.needles_max * (limits::COMPACT_PLAN_ENTRIES_MAX / limits::COMPACT_STEP_NEEDLES_MAX)
    }
}

/// What `CompactIo::create` needs from the volume (taken on the core at the start).
#[derive(Clone, Debug)]
pub struct StartPlan {
    volume_id: u32,
    version: Version,
    width: OffsetWidth,
    /// Bytes of the superblock (and its extra) that the new `.dat` starts with.
    superblock_bytes: u64,
    new_revision: u16,
    /// The `.dat` length when the compaction started: needles below it never change again.
    snapshot_dat_bytes: u64,
    /// Live data plus its index: the free space the compaction needs.
    bytes_needed: u64,
}

impl StartPlan {
    pub fn bytes_needed(&self) -> u64 {
        self.bytes_needed
    }
}

/// One live needle to copy: its key and where its record is in the old `.dat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyNeedle {
    pub key: u64,
    pub offset: u64,
    pub size: u32,
}

/// A copy step: needles written before the start, in ascending key order.
#[derive(Clone, Debug)]
pub struct CopyBatch {
    needles: Vec<CopyNeedle>,
    /// Needles whose TTL ran out by this time are dropped.
    now_ns: u64,
}

impl CopyBatch {
    pub fn needles(&self) -> &[CopyNeedle] {
        &self.needles
    }
}

/// A replay step: the old `.idx` entries in `[idx_from, idx_to)`, appended since the start.
#[derive(Clone, Debug)]
pub struct ReplayBatch {
    idx_from: u64,
    idx_to: u64,
    /// Record bytes the step copies at most (at least one record).
    bytes_max: u64,
    /// The commit's batch: no step bound, the volume's appends are held.
    is_final: bool,
    now_ns: u64,
    /// The commit's batch: live needles of the volume, to check the new files against.
    live_now: u64,
}

/// What the owner of the volume does next.
#[derive(Debug)]
pub enum Step {
    Copy(CopyBatch),
    Replay(ReplayBatch),
    /// Copy and replay are done: hold the appends and call `plan_commit`.
    Commit,
}

/// What an I/O step did, handed back to `Compaction::apply`.
#[derive(Debug)]
pub struct StepDone {
    /// Replay steps: how far in the old `.idx` this step got (the batch's end, or earlier
    /// when the step's byte bound stopped it).
    idx_end: u64,
    /// Records written to the new `.dat` (needles and delete markers).
    records: u64,
    /// Bytes written to the new `.dat`.
    bytes: u64,
    expired: u64,
    corrupt: Vec<(u64, u64)>,
    corrupt_count: u64,
    cpd_bytes: u64,
    cpx_bytes: u64,
}

impl StepDone {
    /// Bytes this step wrote to the new `.dat` (what a throttle counts).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What a compaction did (numbers for a report, a log line and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub volume_id: u32,
    pub old_revision: u16,
    pub new_revision: u16,
    pub dat_bytes_before: u64,
    pub dat_bytes_after: u64,
    pub idx_bytes_before: u64,
    pub idx_bytes_after: u64,
    /// Live needles of the old volume at the commit, and of the new one.
    pub needles_before: u64,
    pub needles_after: u64,
    /// Needles copied while the volume was live, and their bytes.
    pub needles_copied: u64,
    pub bytes_copied: u64,
    /// Records appended during the compaction and replayed into the new files.
    pub records_replayed: u64,
    pub bytes_replayed: u64,
    /// Needles past their TTL, dropped.
    pub needles_expired: u64,
    /// Needles whose record did not decode (CRC, key or size), dropped: they could not be
    /// read before either. `corrupt` names the first few as (key, offset in the old `.dat`).
    pub needles_corrupt: u64,
    pub corrupt: Vec<(u64, u64)>,
    /// Steps run (copy and replay, the commit's final replay not included).
    pub steps: u64,
    /// The commit's final replay: records, and the time its I/O took (replay, fsyncs,
    /// marker, renames), which is how long appends were held beyond the server's own work.
    pub commit_records: u64,
    pub commit_io_micros: u64,
}

impl CompactReport {
    /// Bytes given back (the old `.dat` minus the new one; 0 if it grew).
    pub fn bytes_reclaimed(&self) -> u64 {
        self.dat_bytes_before.saturating_sub(self.dat_bytes_after)
    }
}

/// Why a compaction stopped. Unless `reopen_required()`, the old volume is untouched and
/// serves on; `CompactIo::abort` removes the new files.
#[derive(Debug)]
pub enum CompactError {
    /// The directory's file system has less free space than the live data needs.
    NoSpace {
        dir: PathBuf,
        needed_bytes: u64,
        free_bytes: u64,
    },
    /// A commit marker is there with compaction files: an earlier commit did not finish.
    /// Opening the volume finishes it.
    UnfinishedCommit { path: PathBuf },
    /// A needle appended during the compaction is not what its `.idx` entry says.
    CorruptTail {
        path: PathBuf,
        key: u64,
        offset: u64,
        error: NeedleError,
    },
    /// The new files do not hold the volume's live needles (some change of the volume's map
    /// never reached its `.idx`, which the compaction replays): not committed.
    Diverged {
        path: PathBuf,
        live_now: u64,
        live_new: u64,
        dropped: u64,
    },
    /// Reading or writing failed before the commit.
    Io(VolumeIoError),
    /// Failed during the commit (from the marker on): open the volume again, which finishes
    /// the swap (the marker made it to the disk) or removes the new files (it did not).
    Commit(VolumeIoError),
}

impl CompactError {
    /// The commit failed midway: reopen the volume before appending to it again.
    pub fn reopen_required(&self) -> bool {
        matches!(self, CompactError::Commit(_))
    }
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::NoSpace {
                dir,
                needed_bytes,
                free_bytes,
            } => write!(
                f,
                "compact: {} has {free_bytes} bytes free, the live data needs {needed_bytes}",
                dir.display()
            ),
            CompactError::UnfinishedCommit { path } => write!(
                f,
                "compact: {} says an earlier compaction is committing: open the volume to finish it",
                path.display()
            ),
            CompactError::CorruptTail {
                path,
                key,
                offset,
                error,
            } => write!(
                f,
                "compact: {} needle {key:x} at offset {offset}, appended during the compaction: {error}",
                path.display()
            ),
            CompactError::Diverged {
                path,
                live_now,
                live_new,
                dropped,
            } => write!(
                f,
                "compact: {}: the new files hold {live_new} live needles, the volume {live_now} \
                 ({dropped} dropped as expired or unreadable): not committed",
                path.display()
            ),
            CompactError::Io(error) => write!(f, "compact: {error}"),
            CompactError::Commit(error) => write!(
                f,
                "compact: commit failed ({error}); reopen the volume to finish or undo it"
            ),
        }
    }
}
impl std::error::Error for CompactError {}

impl From<VolumeIoError> for CompactError {
    fn from(error: VolumeIoError) -> Self {
        CompactError::Io(error)
    }
}

/// Bytes a compaction of `core` writes (superblock, live records, their `.idx` entries):
/// the free space it needs (`CompactIo::create` checks it with `check_space`).
pub fn space_needed(core: &VolumeCore) -> u64 {
    let stats = core.stats();
    let entry_bytes = core.config().offset_width.entry_bytes() as u64;
    core.config().superblock.block_bytes()
        + stats.live_record_bytes
        + stats.live_count * entry_bytes
}

/// The owner's side of one compaction (see the module docs): progress and plans, no I/O.
#[derive(Debug)]
pub struct Compaction {
    start: StartPlan,
    limits: StepLimits,
    new_config: VolumeConfig,
    /// The copy's cursor: the next key to look at, `None` once every key was.
    next_key: Option<u64>,
    /// How far the old `.idx` was replayed (starts at its length when the compaction began).
    replayed_idx_bytes: u64,
    replay_steps: u32,
    /// A replay step (which ends with an fsync of the new files) ran since the last copy
    /// step: the commit's own fsync only has the last tail to write.
    synced: bool,
    in_flight: Option<InFlight>,
    report: CompactReport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    Copy,
    Replay { idx_to: u64 },
}

impl Compaction {
    /// Takes the snapshot point (the `.dat` and `.idx` lengths now) and what the new files
    /// start with (the superblock, compaction revision + 1, wrapping like SeaweedFS's u16).
    pub fn start(core: &VolumeCore) -> (Compaction, StartPlan) {
        Compaction::start_with(core, StepLimits::default())
    }

    /// `start` with other step limits.
    pub fn start_with(core: &VolumeCore, limits: StepLimits) -> (Compaction, StartPlan) {
        limits.assert_valid();
        let config = core.config();
        let width = config.offset_width;
        let superblock_bytes = config.superblock.block_bytes();
        let old_revision = config.superblock.compaction_revision;
        let new_revision = old_revision.wrapping_add(1);
        let start = StartPlan {
            volume_id: core.id(),
            version: core.version(),
            width,
            superblock_bytes,
            new_revision,
            snapshot_dat_bytes: core.dat_bytes(),
            bytes_needed: space_needed(core),
        };
        let mut new_config = config.clone();
        new_config.superblock.compaction_revision = new_revision;
        let report = CompactReport {
            volume_id: core.id(),
            old_revision,
            new_revision,
            ..CompactReport::default()
        };
        assert!(start.snapshot_dat_bytes >= superblock_bytes);
        assert_ne!(new_revision, old_revision);
        let compaction = Compaction {
            start: start.clone(),
            limits,
            new_config,
            next_key: Some(0),
            replayed_idx_bytes: core.idx_bytes(),
            replay_steps: 0,
            synced: false,
            in_flight: None,
            report,
        };
        (compaction, start)
    }

    /// The next step: copy needles (by ascending key) until every key was looked at, then
    /// replay what was appended meanwhile until the rest is small (at least one replay
    /// step, whose fsync writes the copy out before the appends are held), then
    /// `Step::Commit`.
    pub fn next_step(&mut self, core: &VolumeCore, now_ns: u64) -> Step {
        assert!(self.in_flight.is_none(), "one step at a time");
        assert_eq!(core.id(), self.start.volume_id);
        if let Some(from) = self.next_key {
            self.in_flight = Some(InFlight::Copy);
            return Step::Copy(self.plan_copy(core, from, now_ns));
        }
        let entry_bytes = self.start.width.entry_bytes() as u64;
        assert!(core.idx_bytes() >= self.replayed_idx_bytes);
        let pending_bytes = core.idx_bytes() - self.replayed_idx_bytes;
        let tail_max = self.limits.commit_tail_entries_max as u64 * entry_bytes;
        let small = pending_bytes <= tail_max;
        if self.synced && (small || self.replay_steps >= self.limits.replay_steps_max) {
            return Step::Commit;
        }
        let step_max = self.limits.needles_max as u64 * entry_bytes;
        let idx_to = self.replayed_idx_bytes + pending_bytes.min(step_max);
        self.replay_steps += 1;
        self.in_flight = Some(InFlight::Replay { idx_to });
        Step::Replay(ReplayBatch {
            idx_from: self.replayed_idx_bytes,
            idx_to,
            bytes_max: self.limits.bytes_max,
            is_final: false,
            now_ns,
            live_now: 0,
        })
    }

    /// Up to a step's worth of the needles live now that were written before the start.
    fn plan_copy(&mut self, core: &VolumeCore, from: u64, now_ns: u64) -> CopyBatch {
        let (version, snapshot) = (self.start.version, self.start.snapshot_dat_bytes);
        let (mut needles, mut bytes, mut looked_at) = (Vec::new(), 0u64, 0usize);
        let limits = self.limits;
        self.next_key = None;
        for (key, value) in core.map().iter_from(from) {
            let len = needle::record_bytes(value.size, version);
            let full = needles.len() == limits.needles_max
                || looked_at == limits.plan_entries_max()
                || (!needles.is_empty() && bytes + len > limits.bytes_max);
            if full {
                self.next_key = Some(key);
                break;
            }
            looked_at += 1;
            let offset = value.offset_units * PADDING_BYTES;
            if offset >= snapshot {
                continue; // Written after the start: its `.idx` entry is in the replayed tail.
            }
            assert!(
                offset + len <= snapshot,
                "a record below the snapshot ends below it"
            );
            needles.push(CopyNeedle {
                key,
                offset,
                size: value.size,
            });
            bytes += len;
        }
        assert!(needles.windows(2).all(|pair| pair[0].key < pair[1].key));
        CopyBatch { needles, now_ns }
    }

    /// Records what an I/O step did.
    pub fn apply(&mut self, done: StepDone) {
        let report = &mut self.report;
        match self.in_flight.take().expect("apply follows a step") {
            InFlight::Copy => {
                assert_eq!(done.idx_end, 0);
                report.needles_copied += done.records;
                report.bytes_copied += done.bytes;
            }
            InFlight::Replay { idx_to } => {
                let empty = idx_to == self.replayed_idx_bytes;
                assert!(done.idx_end > self.replayed_idx_bytes || empty);
                assert!(done.idx_end <= idx_to);
                self.replayed_idx_bytes = done.idx_end;
                self.synced = true;
                report.records_replayed += done.records;
                report.bytes_replayed += done.bytes;
            }
        }
        report.steps += 1;
        self.count_drops(&done);
    }

    fn count_drops(&mut self, done: &StepDone) {
        let report = &mut self.report;
        report.needles_expired += done.expired;
        report.needles_corrupt += done.corrupt_count;
        let room = limits::COMPACT_CORRUPT_REPORTED_MAX.saturating_sub(report.corrupt.len());
        report
            .corrupt
            .extend(done.corrupt.iter().take(room).copied());
        report.dat_bytes_after = done.cpd_bytes;
        report.idx_bytes_after = done.cpx_bytes;
    }

    /// The commit's batch: every entry appended since the last replay step. Call it with the
    /// volume's appends held and none in flight, and hold them until the swap is done.
    pub fn plan_commit(&mut self, core: &VolumeCore) -> ReplayBatch {
        assert!(
            self.in_flight.is_none() && self.next_key.is_none(),
            "copy done"
        );
        assert_eq!(
            core.appends_in_flight(),
            0,
            "appends are held for the commit"
        );
        assert!(core.idx_bytes() >= self.replayed_idx_bytes);
        ReplayBatch {
            idx_from: self.replayed_idx_bytes,
            idx_to: core.idx_bytes(),
            bytes_max: u64::MAX,
            is_final: true,
            now_ns: 0,
            live_now: core.stats().live_count,
        }
    }

    /// The compacted volume, from the committed files, in place of `old` (whose appends were
    /// held since `plan_commit`), and the report.
    pub fn finish<S: Storage>(
        mut self,
        old: &VolumeCore,
        done: CommitDone<S>,
    ) -> (FileVolume<S>, CompactReport) {
        let (step, parts) = done.into_parts();
        assert_eq!(
            step.idx_end,
            old.idx_bytes(),
            "the commit replayed the whole tail"
        );
        let report = &mut self.report;
        report.records_replayed += step.records;
        report.bytes_replayed += step.bytes;
        report.commit_records = step.records;
        report.commit_io_micros = parts.io_micros;
        report.dat_bytes_before = old.dat_bytes();
        report.idx_bytes_before = old.idx_bytes();
        report.needles_before = old.stats().live_count;
        report.needles_after = parts.map.len() as u64;
        self.count_drops(&step);
        let mut core = VolumeCore::from_parts(
            self.new_config,
            parts.map,
            parts.stats,
            step.cpd_bytes,
            step.cpx_bytes,
        );
        core.continue_append_clock(old.last_append_at_ns());
        if old.read_only() == Some(&super::ReadOnlyReason::Marked) {
            core.set_read_only(true);
        }
        let volume = FileVolume::from_parts(core, parts.paths, parts.storage, parts.dat, parts.idx);
        (volume, self.report)
    }
}

/// Paces a compaction to `bytes_per_second` (0: no pacing). It only computes: the caller
/// waits (a timer on an event loop, `thread::sleep` in a tool).
#[derive(Clone, Debug)]
pub struct Throttle {
    bytes_per_second: u64,
    started: Option<Instant>,
    bytes: u64,
}

impl Throttle {
    pub fn new(bytes_per_second: u64) -> Throttle {
        Throttle {
            bytes_per_second,
            started: None,
            bytes: 0,
        }
    }

    /// After `bytes` more were written at `now`: how long to wait before the next step so
    /// that the average stays at the rate.
    pub fn pause_after(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.bytes_per_second == 0 {
            return Duration::ZERO;
        }
        let started = *self.started.get_or_insert(now);
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        due.saturating_sub(now.saturating_duration_since(started))
    }
}

impl<S: Storage> FileVolume<S> {
    /// Compacts the volume now, every step in a row (nothing else can append meanwhile: the
    /// volume is borrowed), pacing the copy with `throttle`; on success the volume is the
    /// compacted one. After an error that `reopen_required()`, the volume refuses appends
    /// until it is opened again.
    pub fn compact(&mut self, throttle: &mut Throttle) -> Result<CompactReport, CompactError> {
        let (mut compaction, start) = Compaction::start(self.core());
        let dat = self.dat_file();
        let mut io = CompactIo::create(self.storage().clone(), self.paths().clone(), dat, &start)?;
        loop {
            let done = match compaction.next_step(self.core(), now_ns()) {
                Step::Copy(batch) => io.copy(&batch),
                Step::Replay(batch) => io.replay(&batch),
                Step::Commit => break,
            };
            match done {
                Ok(done) => {
                    let pause = throttle.pause_after(done.bytes(), Instant::now());
                    compaction.apply(done);
                    std::thread::sleep(pause);
                }
                Err(error) => {
                    let _ = io.abort(); // Best effort: opening the volume removes them too.
                    return Err(error);
                }
            }
        }
        let batch = compaction.plan_commit(self.core());
        match io.commit(&batch) {
            Ok(done) => {
                let (compacted, report) = compaction.finish(self.core(), done);
                *self = compacted;
                make_swap_durable(self.storage(), self.paths())?;
                Ok(report)
            }
            Err(error) => {
                if error.reopen_required() {
                    self.core_mut()
                        .refuse_appends(super::ReadOnlyReason::CompactionCommit);
                }
                Err(error)
            }
        }
    }
}
