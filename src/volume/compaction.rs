//! Online compaction (vacuum) of a volume, driven on its owner core, as the master asks
//! through `/admin/vacuum/{check,compact,status,commit,cleanup}`.
//!
//! The engine splits a compaction into planning on the core and I/O off it
//! (`kelp_engine::volume::compact`). Here a task on the owner core plans each bounded step,
//! runs its I/O on the server's background thread (`background`: lowest CPU priority, one
//! step in flight, at most one compaction per server), applies it, and waits out the
//! throttle (`--compaction-mb-per-second`). Reads and writes go on meanwhile. Once the copy is done
//! the compaction is ready: it keeps replaying what is appended until the master asks for
//! the commit. The commit holds the volume's writes and deletes (they wait; reads do not),
//! waits for the appends in flight, replays the last few entries, fsyncs, swaps the files,
//! puts the new volume in place and releases the appends: that hold is the commit pause,
//! measured. The old files are dropped on a blocking thread (freeing a large `.dat` takes
//! long), where the swap is also made durable.

use super::background::Background;
use super::limits::{COMPACTION_DRAIN_MS_MAX, COMPACTION_DRAIN_POLL_US, COMPACTION_READY_POLL_MS};
use super::state::CoreState;
use super::store::{Retired, StoreError};
use crate::wire::{
    CompactionDone, CompactionOutcome, CompactionPhase, CompactionStatus, VacuumCheck,
};
use kelp_engine::volume::compact::{
    CompactError, CompactIo, CompactReport, Compaction, Step, StepDone, Throttle,
};
use kelp_engine::volume::{FileVolume, OpenOptions, StdStorage};
use kelp_net::mesh::{OneshotSender, oneshot};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The one compaction a volume server runs at a time (shared by its cores), and the
/// background thread its steps run on.
#[derive(Debug)]
pub struct CompactionSlot {
    holder: Mutex<Option<u32>>,
    background: Background,
}

impl CompactionSlot {
    pub fn start() -> Result<CompactionSlot, String> {
        Ok(CompactionSlot {
            holder: Mutex::new(None),
            background: Background::start()?,
        })
    }

    /// Takes the slot for `volume_id`, or names the volume that holds it.
    fn claim(&self, volume_id: u32) -> Result<(), u32> {
        let mut holder = self.holder.lock().expect("compaction slot");
        match *holder {
            Some(other) => Err(other),
            None => {
                *holder = Some(volume_id);
                Ok(())
            }
        }
    }

    fn release(&self, volume_id: u32) {
        let mut holder = self.holder.lock().expect("compaction slot");
        assert_eq!(*holder, Some(volume_id), "released by its holder");
        *holder = None;
    }
}

/// Why an admin call about a compaction was refused; each has its HTTP status.
#[derive(Debug)]
pub enum AdminRefusal {
    Store(StoreError),
    /// Another volume is compacting on this server.
    Busy {
        volume_id: u32,
        holder: u32,
    },
    /// Commit asked before the copy is done, or of a volume not compacting.
    NotReady {
        volume_id: u32,
        phase: CompactionPhase,
    },
    NoSpace(String),
    Failed(String),
}

impl AdminRefusal {
    pub fn status(&self) -> u16 {
        match self {
            AdminRefusal::Store(error) => error.status(),
            AdminRefusal::Busy { .. } | AdminRefusal::NotReady { .. } => 409,
            AdminRefusal::NoSpace(_) => 507,
            AdminRefusal::Failed(_) => 500,
        }
    }
}

impl std::fmt::Display for AdminRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminRefusal::Store(error) => error.fmt(f),
            AdminRefusal::Busy { volume_id, holder } => write!(
                f,
                "volume {volume_id}: volume {holder} is compacting on this server (one \
                 compaction per server at a time); retry when it is done"
            ),
            AdminRefusal::NotReady { volume_id, phase } => write!(
                f,
                "volume {volume_id}: no compaction ready to commit (phase {phase:?})"
            ),
            AdminRefusal::NoSpace(text) | AdminRefusal::Failed(text) => f.write_str(text),
        }
    }
}

impl From<StoreError> for AdminRefusal {
    fn from(error: StoreError) -> Self {
        AdminRefusal::Store(error)
    }
}

/// Compaction counters of one core (merged across cores for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionMetrics {
    pub running: u64,
    pub committed: u64,
    pub failed: u64,
    /// Record bytes written to new files (copied and replayed).
    pub bytes_copied: u64,
    /// `.dat` bytes given back by committed compactions.
    pub bytes_reclaimed: u64,
    /// How long commits held writes and deletes.
    pub commit_pause: super::metrics::Histogram,
    pub commit_pause_us_max: u64,
}

impl CompactionMetrics {
    pub fn merge(&mut self, other: &CompactionMetrics) {
        self.running += other.running;
        self.committed += other.committed;
        self.failed += other.failed;
        self.bytes_copied += other.bytes_copied;
        self.bytes_reclaimed += other.bytes_reclaimed;
        self.commit_pause.merge(&other.commit_pause);
        self.commit_pause_us_max = self.commit_pause_us_max.max(other.commit_pause_us_max);
    }
}

/// The compactions of one core: the one running (if it is here), how the latest one of
/// each volume ended, the counters.
#[derive(Default)]
pub struct Compactions {
    running: Option<Rc<Running>>,
    /// By volume id, for this core's volumes only (dropped with the volume).
    last: HashMap<u32, CompactionOutcome>,
    metrics: CompactionMetrics,
}

impl Compactions {
    pub fn metrics(&self) -> CompactionMetrics {
        let mut metrics = self.metrics.clone();
        metrics.running = u64::from(self.running.is_some());
        metrics
    }

    /// Is `volume_id` committing (its files being swapped)? It may not be deleted then.
    pub fn is_committing(&self, volume_id: u32) -> bool {
        self.running_for(volume_id)
            .is_some_and(|r| r.phase.get() == CompactionPhase::Committing)
    }

    /// Asks a compaction of `volume_id` to stop (the volume is going away); returns
    /// whether one runs.
    pub fn cancel(&self, volume_id: u32) -> bool {
        let running = self.running_for(volume_id);
        if let Some(running) = running {
            running.cancel.set(true);
        }
        running.is_some()
    }

    /// Forgets `volume_id` (deleted).
    pub fn forget(&mut self, volume_id: u32) {
        self.last.remove(&volume_id);
    }

    fn running_for(&self, volume_id: u32) -> Option<&Rc<Running>> {
        self.running.as_ref().filter(|r| r.volume_id == volume_id)
    }
}

/// A compaction in progress, shared by its task and the admin calls.
struct Running {
    volume_id: u32,
    generation: u64,
    phase: Cell<CompactionPhase>,
    bytes_copied: Cell<u64>,
    steps: Cell<u64>,
    cancel: Cell<bool>,
    /// The commit call waiting for the commit's outcome.
    commit: RefCell<Option<OneshotSender<CompactionOutcome>>>,
    started: Instant,
}

/// `/admin/vacuum/check`: the volume's garbage.
pub fn check(state: &CoreState, volume_id: u32) -> Result<VacuumCheck, StoreError> {
    let store = state.store.borrow();
    let volume = store.volume(volume_id)?;
    let core = volume.core();
    Ok(VacuumCheck {
        volume: volume_id,
        garbage_ratio: core.garbage_ratio(),
        garbage_bytes: core.garbage_bytes(),
        dat_bytes: core.dat_bytes(),
        compact_revision: core.config().superblock.compaction_revision,
    })
}

/// `/admin/vacuum/status`.
pub fn status(state: &CoreState, volume_id: u32) -> Result<CompactionStatus, StoreError> {
    state.store.borrow().volume(volume_id)?;
    let compactions = state.compactions.borrow();
    let last = compactions.last.get(&volume_id).cloned();
    Ok(match compactions.running_for(volume_id) {
        Some(running) => CompactionStatus {
            volume: volume_id,
            phase: running.phase.get(),
            bytes_copied: running.bytes_copied.get(),
            steps: running.steps.get(),
            last,
        },
        None => CompactionStatus {
            volume: volume_id,
            phase: CompactionPhase::Idle,
            bytes_copied: 0,
            steps: 0,
            last,
        },
    })
}

/// `/admin/vacuum/compact`: starts a compaction of `volume_id` (the free space is checked
/// first: 507 when it lacks), or reports the one running.
pub async fn start(
    state: &Rc<CoreState>,
    volume_id: u32,
) -> Result<CompactionStatus, AdminRefusal> {
    if state.compactions.borrow().running_for(volume_id).is_some() {
        return Ok(status(state, volume_id)?);
    }
    let (compaction, start_plan, paths, dat, generation) = {
        let store = state.store.borrow();
        let volume = store.volume(volume_id)?;
        let (compaction, plan) = Compaction::start(volume.core());
        let generation = store.generation(volume_id)?;
        (
            compaction,
            plan,
            volume.paths().clone(),
            volume.dat_file(),
            generation,
        )
    };
    state
        .compaction_slot
        .claim(volume_id)
        .map_err(|holder| AdminRefusal::Busy { volume_id, holder })?;
    let kept = super::repair::kept::Preparation::of(state, volume_id);
    let retention_ns = state.config.delete_retention_ns;
    let now_ns = super::handlers::now_unix_ns();
    let created = compio::runtime::spawn_blocking(move || {
        if let Some(kept) = kept {
            kept.prepare(retention_ns, now_ns);
        }
        CompactIo::create(StdStorage, paths, dat, &start_plan)
    })
    .await;
    let io = match created {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            state.compaction_slot.release(volume_id);
            return Err(match error {
                CompactError::NoSpace { .. } => AdminRefusal::NoSpace(error.to_string()),
                other => AdminRefusal::Failed(other.to_string()),
            });
        }
        Err(_) => {
            state.compaction_slot.release(volume_id);
            return Err(AdminRefusal::Failed(format!(
                "volume {volume_id}: creating the compaction files panicked"
            )));
        }
    };
    let running = Rc::new(Running {
        volume_id,
        generation,
        phase: Cell::new(CompactionPhase::Copying),
        bytes_copied: Cell::new(0),
        steps: Cell::new(0),
        cancel: Cell::new(false),
        commit: RefCell::new(None),
        started: Instant::now(),
    });
    state.compactions.borrow_mut().running = Some(running.clone());
    tracing::info!("volume {volume_id}: compaction started");
    compio::runtime::spawn(drive(state.clone(), running, compaction, io)).detach();
    Ok(status(state, volume_id)?)
}

/// `/admin/vacuum/commit`: commits the ready compaction of `volume_id` and answers once the
/// new files serve (or the commit failed).
pub async fn commit(state: &CoreState, volume_id: u32) -> Result<CompactionStatus, AdminRefusal> {
    let answer = {
        let compactions = state.compactions.borrow();
        let phase = compactions
            .running_for(volume_id)
            .map_or(CompactionPhase::Idle, |r| r.phase.get());
        let running = compactions.running_for(volume_id);
        let waiting = running.is_some_and(|r| r.commit.borrow().is_some());
        let Some(running) = running.filter(|_| phase == CompactionPhase::Ready && !waiting) else {
            return Err(AdminRefusal::NotReady { volume_id, phase });
        };
        let (reply, answer) = oneshot();
        *running.commit.borrow_mut() = Some(reply);
        answer
    };
    let outcome = answer.await.map_err(|_| {
        AdminRefusal::Failed(format!(
            "volume {volume_id}: the compaction ended unanswered"
        ))
    })?;
    match outcome {
        CompactionOutcome::Committed(_) => Ok(status(state, volume_id)?),
        CompactionOutcome::Failed(reason) => Err(AdminRefusal::Failed(reason)),
        CompactionOutcome::Cancelled => Err(AdminRefusal::Failed(format!(
            "volume {volume_id}: the compaction was cancelled"
        ))),
    }
}

/// `/admin/vacuum/cleanup`: stops a compaction of `volume_id` that has not committed (its
/// new files are removed); the volume goes on as it was.
pub fn cleanup(state: &CoreState, volume_id: u32) -> Result<CompactionStatus, AdminRefusal> {
    if state.compactions.borrow().is_committing(volume_id) {
        let phase = CompactionPhase::Committing;
        return Err(AdminRefusal::NotReady { volume_id, phase });
    }
    state.compactions.borrow().cancel(volume_id);
    Ok(status(state, volume_id)?)
}

/// The compaction's task: copy and replay step by step until the commit is asked for (or
/// the compaction is cancelled or fails), then commit.
async fn drive(
    state: Rc<CoreState>,
    running: Rc<Running>,
    mut compaction: Compaction,
    io: CompactIo<StdStorage>,
) {
    let volume_id = running.volume_id;
    let outcome = match copy_until_commit(&state, &running, &mut compaction, io).await {
        Ok((io, reply)) => {
            let outcome = commit_now(&state, &running, compaction, io).await;
            let _ = reply.send(outcome.clone()); // the master may have given up waiting
            outcome
        }
        Err((io, outcome)) => {
            if let Some(io) = io {
                let removed = compio::runtime::spawn_blocking(move || io.abort()).await;
                if !matches!(removed, Ok(Ok(()))) {
                    tracing::warn!(
                        "volume {volume_id}: compaction files not removed (the next open or compaction removes them)"
                    );
                }
            }
            if let Some(reply) = running.commit.borrow_mut().take() {
                let _ = reply.send(outcome.clone());
            }
            outcome
        }
    };
    match &outcome {
        CompactionOutcome::Committed(done) => tracing::info!(
            "volume {volume_id}: compacted, {} -> {} bytes, writes held {} us",
            done.dat_bytes_before,
            done.dat_bytes_after,
            done.commit_pause_micros
        ),
        other => tracing::warn!("volume {volume_id}: compaction ended: {other:?}"),
    }
    let mut compactions = state.compactions.borrow_mut();
    let metrics = &mut compactions.metrics;
    match &outcome {
        CompactionOutcome::Committed(done) => {
            metrics.committed += 1;
            metrics.bytes_reclaimed += done.dat_bytes_before.saturating_sub(done.dat_bytes_after);
            metrics.commit_pause.record(done.commit_pause_micros);
            metrics.commit_pause_us_max = metrics.commit_pause_us_max.max(done.commit_pause_micros);
        }
        _ => metrics.failed += 1,
    }
    metrics.bytes_copied += running.bytes_copied.get();
    compactions.running = None;
    if state.store.borrow().generation(volume_id).ok() == Some(running.generation) {
        compactions.last.insert(volume_id, outcome);
    }
    state.compaction_slot.release(volume_id);
}

/// What a compaction step's I/O hands back from the background thread: the files and the
/// step's result (an `Err` outside: the step panicked or could not be queued, and the files
/// are lost to this compaction; the next one, or the next open, removes them).
type IoStep = Result<(CompactIo<StdStorage>, Result<StepDone, CompactError>), String>;

/// Copies, then replays, step by step; once ready, waits for the commit call, replaying
/// what is appended meanwhile. Returns the files and the commit call's reply channel, or
/// (the files when they can still be removed, and) why it stopped.
async fn copy_until_commit(
    state: &CoreState,
    running: &Running,
    compaction: &mut Compaction,
    mut io: CompactIo<StdStorage>,
) -> Result<
    (CompactIo<StdStorage>, OneshotSender<CompactionOutcome>),
    (Option<CompactIo<StdStorage>>, CompactionOutcome),
> {
    let volume_id = running.volume_id;
    let mut throttle = Throttle::new(state.config.compaction_bytes_per_second);
    loop {
        if running.cancel.get() {
            return Err((Some(io), CompactionOutcome::Cancelled));
        }
        let step = {
            let store = state.store.borrow();
            match store.volume_of_generation(volume_id, running.generation) {
                Some(volume) => compaction.next_step(volume.core(), super::handlers::now_unix_ns()),
                None => {
                    let reason = format!("volume {volume_id} was deleted during its compaction");
                    return Err((Some(io), CompactionOutcome::Failed(reason)));
                }
            }
        };
        let stepped = match step {
            Step::Commit => {
                running.phase.set(CompactionPhase::Ready);
                if let Some(reply) = running.commit.borrow_mut().take() {
                    return Ok((io, reply));
                }
                compio::time::sleep(Duration::from_millis(COMPACTION_READY_POLL_MS)).await;
                continue;
            }
            step => io_step(&state.compaction_slot.background, io, step).await,
        };
        let (back, done) = match stepped {
            Ok(stepped) => stepped,
            Err(error) => {
                let reason = format!("volume {volume_id}: a compaction step: {error}");
                return Err((None, CompactionOutcome::Failed(reason)));
            }
        };
        io = back;
        let done = match done {
            Ok(done) => done,
            Err(error) => return Err((Some(io), CompactionOutcome::Failed(error.to_string()))),
        };
        running
            .bytes_copied
            .set(running.bytes_copied.get() + done.bytes());
        running.steps.set(running.steps.get() + 1);
        let pause = throttle.pause_after(done.bytes(), Instant::now());
        compaction.apply(done);
        if !pause.is_zero() {
            compio::time::sleep(pause).await;
        }
    }
}

/// A copy or replay step's I/O, on the background thread.
async fn io_step(background: &Background, mut io: CompactIo<StdStorage>, step: Step) -> IoStep {
    background
        .run(move || {
            let done = match &step {
                Step::Copy(batch) => io.copy(batch),
                Step::Replay(batch) => io.replay(batch),
                Step::Commit => unreachable!("the commit is not a step"),
            };
            (io, done)
        })
        .await
}

/// The commit: appends held, drained, the last tail replayed and the files swapped off the
/// core, the new volume put in place, appends released; the old files dropped off the core.
async fn commit_now(
    state: &CoreState,
    running: &Running,
    mut compaction: Compaction,
    io: CompactIo<StdStorage>,
) -> CompactionOutcome {
    let volume_id = running.volume_id;
    running.phase.set(CompactionPhase::Committing);
    let held_at = Instant::now();
    state.store.borrow_mut().hold_appends(volume_id);
    if let Err(reason) = drain_appends(state, volume_id).await {
        state.store.borrow_mut().release_appends(volume_id);
        let _ = compio::runtime::spawn_blocking(move || io.abort()).await;
        return CompactionOutcome::Failed(reason);
    }
    let delay_ms = state.config.compaction_commit_delay_ms;
    if delay_ms > 0 {
        compio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let (batch, paths, revision) = {
        let store = state.store.borrow();
        let volume = store
            .volume(volume_id)
            .expect("a committing volume is not deleted");
        let revision = volume.core().config().superblock.compaction_revision;
        (
            compaction.plan_commit(volume.core()),
            volume.paths().clone(),
            revision.wrapping_add(1),
        )
    };
    let committed = compio::runtime::spawn_blocking(move || {
        let done = io.commit(&batch)?;
        if let Err(error) = super::repair::kept::commit(&paths.deletes, &paths.horizon, revision) {
            tracing::warn!("volume {volume_id}: compacted, but its kept deletes: {error}");
        }
        let idx_path = &paths.idx;
        Ok::<_, CompactError>((done, super::store::open_idx_for_ring(idx_path)))
    })
    .await;
    let outcome = match committed {
        Ok(Ok((done, Ok(ring)))) => {
            let (volume, report) = {
                let store = state.store.borrow();
                let old = store
                    .volume(volume_id)
                    .expect("a committing volume is not deleted");
                compaction.finish(old.core(), done)
            };
            let retired = state
                .store
                .borrow_mut()
                .replace_volume(volume_id, volume, ring);
            let pause_us = held_at.elapsed().as_micros() as u64;
            state.store.borrow_mut().release_appends(volume_id);
            retire(state, retired);
            return CompactionOutcome::Committed(done_of(&report, pause_us, running.started));
        }
        Ok(Ok((_, Err(error)))) => format!("volume {volume_id}: swapped, but {error}"),
        Ok(Err(error)) if !error.reopen_required() => error.to_string(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("volume {volume_id}: the commit panicked"),
    };
    reopen(state, volume_id).await;
    state.store.borrow_mut().release_appends(volume_id);
    CompactionOutcome::Failed(outcome)
}

/// Waits until no append of `volume_id` is in flight (its appends are held, so none
/// starts), at most `COMPACTION_DRAIN_MS_MAX`.
async fn drain_appends(state: &CoreState, volume_id: u32) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(COMPACTION_DRAIN_MS_MAX);
    loop {
        let in_flight = {
            let store = state.store.borrow();
            let volume = store.volume(volume_id).map_err(|e| e.to_string())?;
            volume.core().appends_in_flight()
        };
        if in_flight == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "volume {volume_id}: {in_flight} writes still in flight after \
                 {COMPACTION_DRAIN_MS_MAX} ms; commit given up, retry"
            ));
        }
        compio::time::sleep(Duration::from_micros(COMPACTION_DRAIN_POLL_US)).await;
    }
}

/// After a commit failed: the volume is opened again from its files (which finishes or
/// undoes a swap cut short) and serves on; if that fails too it stays read-only.
async fn reopen(state: &CoreState, volume_id: u32) {
    // Until the reopen, the volume must not take appends: its old files may be renamed away.
    let Some((dir, collection)) = state.store.borrow_mut().refuse_appends(volume_id) else {
        return;
    };
    let opened = compio::runtime::spawn_blocking(move || {
        let (volume, _) = FileVolume::open(&dir, &collection, volume_id, &OpenOptions::default())
            .map_err(|e| e.to_string())?;
        let ring =
            super::store::open_idx_for_ring(&volume.paths().idx).map_err(|e| e.to_string())?;
        Ok::<_, String>((volume, ring))
    })
    .await;
    match opened {
        Ok(Ok((volume, ring))) => {
            let retired = state
                .store
                .borrow_mut()
                .replace_volume(volume_id, volume, ring);
            retire(state, retired);
            tracing::warn!("volume {volume_id}: reopened after a failed commit");
        }
        Ok(Err(error)) => tracing::error!(
            "volume {volume_id}: reopening after a failed commit: {error}; it stays read-only"
        ),
        Err(_) => tracing::error!("volume {volume_id}: reopening after a failed commit panicked"),
    }
}

/// Makes the swap durable and drops the old volume's files and mapping, on the background
/// thread (on a blocking thread of the runtime if its queue is full).
fn retire(state: &CoreState, retired: Retired) {
    let job = move || {
        let durable = retired.make_swap_durable();
        drop(retired);
        durable.map_err(|e| e.to_string())
    };
    let slot = state.compaction_slot.clone();
    compio::runtime::spawn(async move {
        let job = std::sync::Arc::new(Mutex::new(Some(job)));
        let queued = job.clone();
        let run = move || queued.lock().expect("retire job").take().map(|job| job());
        let dropped = match slot.background.run(run.clone()).await {
            Ok(done) => done,
            Err(_) => compio::runtime::spawn_blocking(run).await.ok().flatten(),
        };
        match dropped {
            Some(Ok(())) => {}
            Some(Err(error)) => tracing::warn!("{error}; the next open finishes it"),
            None => tracing::error!("dropping a compacted volume's old files failed"),
        }
    })
    .detach();
}

fn done_of(report: &CompactReport, pause_us: u64, started: Instant) -> CompactionDone {
    CompactionDone {
        old_revision: report.old_revision,
        new_revision: report.new_revision,
        dat_bytes_before: report.dat_bytes_before,
        dat_bytes_after: report.dat_bytes_after,
        idx_bytes_before: report.idx_bytes_before,
        idx_bytes_after: report.idx_bytes_after,
        needles_after: report.needles_after,
        needles_expired: report.needles_expired,
        bytes_copied: report.bytes_copied + report.bytes_replayed,
        commit_pause_micros: pause_us,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}
