//! Running one phase: `threads` compio runtimes, the workers spread over them, a shared counter
//! handing out operation indexes (so `-n` is exact and `--duration`/abort stop everyone), and
//! the per-worker statistics merged at the end.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limits::{CONNECTION_FAILURES_IN_A_ROW_MAX, ERRORS_PRINTED_MAX, STOP_FILE_POLL_MS};
use crate::report::PhaseStats;
use crate::workload::{FileRecord, OpError, Worker, Workload};

/// What a phase does per operation.
#[derive(Clone)]
pub enum PhaseKind {
    /// Assign + upload (and delete a share later).
    Write,
    /// Read `targets` in random order (with replacement), or each once in order.
    Read {
        targets: Arc<Vec<FileRecord>>,
        sequential: bool,
    },
    /// Each operation a read of a file this worker wrote (with `read_percent` probability once
    /// there is one) or else a write.
    Mixed { read_percent: u8 },
}

/// Settings of one phase.
#[derive(Clone)]
pub struct PhasePlan {
    pub name: String,
    pub kind: PhaseKind,
    pub operations: u64,
    pub concurrency: usize,
    pub threads: usize,
    pub duration: Option<Duration>,
    /// The phase ends once this file exists.
    pub stop_file: Option<std::path::PathBuf>,
    pub rate_per_second: Option<f64>,
    pub show_progress: bool,
}

/// State shared by all workers of a phase (atomics; the only lock is taken on abort).
pub struct Shared {
    master_index: AtomicUsize,
    next_operation: AtomicU64,
    operations: u64,
    start: Instant,
    deadline: Option<Instant>,
    rate_per_second: Option<f64>,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    errors_seen: AtomicU64,
    aborted: AtomicBool,
    abort_reason: Mutex<Option<String>>,
    /// The stop file appeared: no more operations, and no failure.
    stopped: AtomicBool,
}

/// An operation handed to a worker: its index and, with a target rate, when it should start.
pub struct Claim {
    pub index: u64,
    pub scheduled: Option<Instant>,
}

impl Shared {
    fn new(plan: &PhasePlan, master_index: usize) -> Shared {
        let start = Instant::now();
        Shared {
            master_index: AtomicUsize::new(master_index),
            next_operation: AtomicU64::new(0),
            operations: plan.operations,
            start,
            deadline: plan.duration.map(|duration| start + duration),
            rate_per_second: plan.rate_per_second,
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors_seen: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            abort_reason: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    /// The next operation, or None when the phase is over (count reached, time up, aborted).
    pub fn claim(&self) -> Option<Claim> {
        if self.aborted.load(Ordering::Relaxed) || self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return None;
        }
        let index = self.next_operation.fetch_add(1, Ordering::Relaxed);
        if index >= self.operations {
            return None;
        }
        let scheduled = self
            .rate_per_second
            .map(|rate| self.start + Duration::from_secs_f64(index as f64 / rate));
        Some(Claim { index, scheduled })
    }

    pub fn current_master<'a>(&self, masters: &'a [String]) -> &'a str {
        assert!(!masters.is_empty());
        &masters[self.master_index.load(Ordering::Relaxed) % masters.len()]
    }

    /// Move to the master after `failed`, unless another worker already moved on.
    pub fn next_master(&self, failed: &str, masters: &[String]) {
        let index = self.master_index.load(Ordering::Relaxed);
        if masters[index % masters.len()] == failed {
            let _ = self.master_index.compare_exchange(
                index,
                index.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Count a failure; print the first few.
    fn report_error(&self, error: &OpError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let seen = self.errors_seen.fetch_add(1, Ordering::Relaxed);
        if seen < ERRORS_PRINTED_MAX {
            eprintln!("kelp benchmark: request failed: {}", error.message);
        } else if seen == ERRORS_PRINTED_MAX {
            eprintln!("kelp benchmark: more failures; only counted from now on");
        }
    }

    /// End the phase for every worker; the first reason wins.
    pub fn abort(&self, reason: String) {
        let mut slot = self.abort_reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.aborted.store(true, Ordering::Relaxed);
    }

    fn abort_reason(&self) -> Option<String> {
        self.abort_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What one phase produced.
pub struct PhaseOutcome {
    /// Writes (or the only stats of a read phase).
    pub stats: PhaseStats,
    /// Reads of a mixed phase.
    pub mixed_read_stats: PhaseStats,
    pub written: Vec<FileRecord>,
    pub seconds: f64,
    pub client_cpu_seconds: f64,
    pub aborted: Option<String>,
    pub master_index: usize,
}

struct WorkerOutcome {
    stats: PhaseStats,
    mixed_read_stats: PhaseStats,
    written: Vec<FileRecord>,
}

/// Run one phase to its end and merge what every worker measured.
/// Marks the phase stopped once `path` exists (or ends with the phase).
fn spawn_stop_watch(
    path: std::path::PathBuf,
    shared: Arc<Shared>,
    done: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let watch = move || {
        while !done.load(Ordering::Relaxed) {
            if path.exists() {
                shared.stopped.store(true, Ordering::Relaxed);
                return;
            }
            std::thread::sleep(Duration::from_millis(STOP_FILE_POLL_MS));
        }
    };
    std::thread::Builder::new()
        .name("bench-stop-watch".into())
        .spawn(watch)
        .map(drop)
}

pub fn run_phase(
    plan: &PhasePlan,
    workload: &Arc<Workload>,
    master_index: usize,
    seed: u64,
) -> std::io::Result<PhaseOutcome> {
    assert!(plan.concurrency > 0 && plan.threads > 0);
    let threads = plan.threads.min(plan.concurrency);
    let cpu_before = process_cpu_seconds();
    let shared = Arc::new(Shared::new(plan, master_index));
    let done = Arc::new(AtomicBool::new(false));
    let progress = plan
        .show_progress
        .then(|| spawn_progress(plan, shared.clone(), done.clone()));
    if let Some(path) = plan.stop_file.clone() {
        spawn_stop_watch(path, shared.clone(), done.clone())?;
    }
    let mut handles = Vec::with_capacity(threads);
    for thread_index in 0..threads {
        let (plan, workload, shared) = (plan.clone(), workload.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bench-{thread_index}"))
            .spawn(move || run_thread(thread_index, threads, &plan, workload, shared, seed));
        handles.push(spawned?);
    }
    let mut outcome = PhaseOutcome {
        stats: PhaseStats::new(),
        mixed_read_stats: PhaseStats::new(),
        written: Vec::new(),
        seconds: 0.0,
        client_cpu_seconds: 0.0,
        aborted: None,
        master_index: 0,
    };
    let mut thread_error = None;
    for handle in handles {
        match handle.join().expect("benchmark thread panicked") {
            Ok(workers) => {
                for worker in workers {
                    outcome.stats.merge(&worker.stats);
                    outcome.mixed_read_stats.merge(&worker.mixed_read_stats);
                    outcome.written.extend(worker.written);
                }
            }
            Err(error) => thread_error = Some(error),
        }
    }
    outcome.seconds = shared.start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.join();
    }
    if let Some(error) = thread_error {
        return Err(error);
    }
    outcome.client_cpu_seconds = process_cpu_seconds() - cpu_before;
    outcome.aborted = shared.abort_reason();
    outcome.master_index = shared.master_index.load(Ordering::Relaxed);
    Ok(outcome)
}

fn run_thread(
    thread_index: usize,
    threads: usize,
    plan: &PhasePlan,
    workload: Arc<Workload>,
    shared: Arc<Shared>,
    seed: u64,
) -> std::io::Result<Vec<WorkerOutcome>> {
    let runtime = compio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for worker_index in (thread_index..plan.concurrency).step_by(threads) {
            let worker_seed = seed ^ (worker_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let worker = Worker::new(shared.clone(), workload.clone(), worker_seed);
            let task = run_worker(worker, shared.clone(), plan.kind.clone());
            tasks.push(compio::runtime::spawn(task));
        }
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.expect("benchmark worker panicked"));
        }
        Ok(outcomes)
    })
}

/// Per-worker bookkeeping of failures in a row (a server that went away).
struct FailureRun<'a> {
    shared: &'a Shared,
    in_a_row: u32,
}

impl FailureRun<'_> {
    fn success(&mut self) {
        self.in_a_row = 0;
    }

    fn failure(&mut self, stats: &mut PhaseStats, error: OpError) {
        stats.failed += 1;
        self.shared.report_error(&error);
        if !error.connection_level {
            self.in_a_row = 0;
            return;
        }
        self.in_a_row += 1;
        if self.in_a_row >= CONNECTION_FAILURES_IN_A_ROW_MAX {
            self.shared.abort(format!(
                "a server went away or is unreachable ({} connection failures in a row); last: {}",
                self.in_a_row, error.message
            ));
        }
    }
}

async fn run_worker(mut worker: Worker, shared: Arc<Shared>, kind: PhaseKind) -> WorkerOutcome {
    let mut outcome = WorkerOutcome {
        stats: PhaseStats::new(),
        mixed_read_stats: PhaseStats::new(),
        written: Vec::new(),
    };
    let mut failures = FailureRun {
        shared: &shared,
        in_a_row: 0,
    };
    while let Some(claim) = shared.claim() {
        let now = Instant::now();
        let started = match claim.scheduled {
            Some(scheduled) if scheduled > now => {
                compio::time::sleep(scheduled - now).await;
                scheduled
            }
            Some(scheduled) => scheduled,
            None => now,
        };
        let read = choose_read(&kind, &mut worker, claim.index, &outcome.written);
        match read {
            Some(record) => {
                let result = worker.read_file(&record).await;
                let stats = match kind {
                    PhaseKind::Mixed { .. } => &mut outcome.mixed_read_stats,
                    _ => &mut outcome.stats,
                };
                finish_operation(result, started, stats, &mut failures, &shared);
            }
            None => {
                let result = worker.write_file(claim.index).await;
                let written = match result {
                    Ok((record, bytes, url)) => {
                        let deleted = worker.choose_delete()
                            && worker.schedule_delete(url, record.fid.clone());
                        if !deleted {
                            outcome.written.push(record);
                        }
                        Ok(bytes)
                    }
                    Err(error) => Err(error),
                };
                finish_operation(written, started, &mut outcome.stats, &mut failures, &shared);
                run_deletes(&mut worker, false, &mut outcome.stats, &mut failures).await;
            }
        }
    }
    run_deletes(&mut worker, true, &mut outcome.stats, &mut failures).await;
    outcome
}

/// The file this operation reads, or None when it writes.
fn choose_read(
    kind: &PhaseKind,
    worker: &mut Worker,
    index: u64,
    written: &[FileRecord],
) -> Option<FileRecord> {
    match kind {
        PhaseKind::Write => None,
        PhaseKind::Read {
            targets,
            sequential,
        } => {
            assert!(!targets.is_empty());
            let pick = if *sequential {
                index as usize % targets.len()
            } else {
                worker.random_below(targets.len() as u64) as usize
            };
            Some(targets[pick].clone())
        }
        PhaseKind::Mixed { read_percent } => {
            let read = !written.is_empty() && worker.random_below(100) < u64::from(*read_percent);
            read.then(|| written[worker.random_below(written.len() as u64) as usize].clone())
        }
    }
}

fn finish_operation(
    result: Result<u64, OpError>,
    started: Instant,
    stats: &mut PhaseStats,
    failures: &mut FailureRun<'_>,
    shared: &Shared,
) {
    match result {
        Ok(bytes) => {
            let latency_us = started.elapsed().as_micros() as u64;
            stats.record_success(bytes, latency_us);
            shared.completed.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(bytes, Ordering::Relaxed);
            failures.success();
        }
        Err(error) => failures.failure(stats, error),
    }
}

/// Send the deletes that are due (all of them, waiting, when `drain`). Like `weed benchmark`,
/// a delete counts as a completed request without a latency sample.
async fn run_deletes(
    worker: &mut Worker,
    drain: bool,
    stats: &mut PhaseStats,
    failures: &mut FailureRun<'_>,
) {
    while let Some((url, fid)) = worker.next_delete(drain).await {
        if drain && failures.shared.aborted.load(Ordering::Relaxed) {
            return;
        }
        match worker.delete_file(&url, &fid).await {
            Ok(()) => {
                stats.completed += 1;
                failures.shared.completed.fetch_add(1, Ordering::Relaxed);
                failures.success();
            }
            Err(error) => failures.failure(stats, error),
        }
    }
}

/// user + system CPU seconds of this process so far.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage(2) writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A once-a-second progress line on stderr (only used when stderr is a terminal).
fn spawn_progress(
    plan: &PhasePlan,
    shared: Arc<Shared>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (name, total) = (plan.name.clone(), plan.operations);
    std::thread::spawn(move || {
        let mut last = (Instant::now(), 0u64, 0u64);
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.0.elapsed() < Duration::from_secs(1) && !done.load(Ordering::Relaxed) {
                continue;
            }
            let completed = shared.completed.load(Ordering::Relaxed);
            let bytes = shared.bytes.load(Ordering::Relaxed);
            let seconds = last.0.elapsed().as_secs_f64().max(1e-9);
            let line = progress_line(&name, completed, total, &last, bytes, seconds);
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
            last = (Instant::now(), completed, bytes);
        }
        let _ = writeln!(std::io::stderr());
    })
}

fn progress_line(
    name: &str,
    completed: u64,
    total: u64,
    last: &(Instant, u64, u64),
    bytes: u64,
    seconds: f64,
) -> String {
    let width = 30;
    let filled = ((completed.min(total) * width) / total.max(1)) as usize;
    let bar: String = "#".repeat(filled) + &".".repeat(width as usize - filled);
    format!(
        "{name}: [{bar}] {completed}/{total} {:.1}% {:.0}/s {:.1}MB/s",
        completed as f64 * 100.0 / total.max(1) as f64,
        (completed - last.1) as f64 / seconds,
        (bytes - last.2) as f64 / seconds / (1024.0 * 1024.0),
    )
}

/// Whether progress lines should be drawn: only on a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
