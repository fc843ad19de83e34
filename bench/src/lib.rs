//! `kelp benchmark`: the load generator and its report. The workload is `weed benchmark`'s
//! (assign + upload n files, then read them back in random order) so the numbers of the two
//! compare; the client is Kelp's compio HTTP client on `--threads` runtimes.

pub mod limits;
pub mod plot;
pub mod plot_command;
pub mod report;
pub mod run;
pub mod workload;

use std::fmt;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kelp_engine::format::{FileId, ReplicaPlacement, check_collection};
use limits::{CONCURRENCY_MAX, FILE_BYTES_MAX, LIST_LINES_MAX, OPERATIONS_MAX, THREADS_MAX};
use report::{PhaseReport, RunReport};
use run::{PhaseKind, PhaseOutcome, PhasePlan};
use workload::{FileRecord, Workload};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Master address(es), comma-separated; the benchmark follows the leader.
    #[arg(long, default_value = "localhost:9333")]
    pub master: String,
    /// Number of files to write, and of reads after that.
    #[arg(short = 'n', default_value_t = 1024 * 1024)]
    pub n: u64,
    /// Concurrent requests (workers, each with its own keep-alive connections).
    #[arg(short = 'c', default_value_t = 16)]
    pub c: usize,
    /// File size in bytes, plus a random 0..=size-jitter bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Random extra bytes per file (weed benchmark: 0..63).
    #[arg(long, default_value_t = 63)]
    pub size_jitter: usize,
    /// Collection to write to.
    #[arg(long, default_value = "benchmark")]
    pub collection: String,
    /// Replica placement of the written volumes.
    #[arg(long, default_value = "000")]
    pub replication: String,
    /// Ask the volume server to fsync each write before answering.
    #[arg(long)]
    pub fsync: bool,
    /// Only write (the fid list still goes to --list).
    #[arg(long, conflicts_with_all = ["read_only", "mixed_read_percent"])]
    pub write_only: bool,
    /// Only read, the fids listed in --list.
    #[arg(long, conflicts_with = "mixed_read_percent")]
    pub read_only: bool,
    /// Read each listed file once, in order, instead of n random picks.
    #[arg(long)]
    pub read_sequentially: bool,
    /// Percent of written files deleted one second after their write.
    #[arg(long, default_value_t = 0)]
    pub delete_percent: u8,
    /// Where the fid list and the JSON report go (boxed: keeps `kelp`'s subcommand enum small).
    #[command(flatten)]
    pub files: Box<FileArgs>,
    /// Stop each phase after this many seconds, even before n requests.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Target request rate (requests/s, all workers together); latencies are then measured
    /// from each request's scheduled start (corrected for coordinated omission).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Runtime threads the workers are spread over (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One mixed phase instead of write-then-read: each request reads a file written earlier
    /// with this probability (percent), else writes a new one.
    #[arg(long)]
    pub mixed_read_percent: Option<u8>,
}

/// The files `kelp benchmark` reads and writes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FileArgs {
    /// Fid list written by the write phase and read by --read-only (default: the temp dir's
    /// benchmark_list.txt, as weed's).
    #[arg(long)]
    pub list: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the latency distribution of each phase (percentile curves) to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// End each phase once this file exists (looked for every 20 ms), even before n
    /// requests: a script ends a read phase when what it measures (a vacuum) is over.
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
}

/// A bad argument or an unusable input file, with what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError(pub String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

impl Args {
    /// The master addresses, checked: each "host:port" with a numeric port.
    pub fn masters(&self) -> Result<Vec<String>, ArgsError> {
        let masters: Vec<String> = self
            .master
            .split(',')
            .map(|m| m.trim().trim_start_matches("http://").to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if masters.is_empty() {
            return Err(ArgsError("--master: give at least one HOST:PORT".into()));
        }
        for master in &masters {
            let port = master.rsplit_once(':').map(|(_, port)| port);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(ArgsError(format!(
                    "--master: {master:?} is not HOST:PORT with a port number"
                )));
            }
        }
        Ok(masters)
    }

    /// Check every bound; the message names the flag.
    pub fn validate(&self) -> Result<(), ArgsError> {
        let fail = |message: String| Err(ArgsError(message));
        self.masters()?;
        if self.n == 0 || self.n > OPERATIONS_MAX {
            return fail(format!("-n: must be 1..={OPERATIONS_MAX}, got {}", self.n));
        }
        if self.c == 0 || self.c > CONCURRENCY_MAX {
            return fail(format!("-c: must be 1..={CONCURRENCY_MAX}, got {}", self.c));
        }
        let file_bytes_max = self.size.saturating_add(self.size_jitter);
        if self.size == 0 || file_bytes_max > FILE_BYTES_MAX {
            return fail(format!(
                "--size + --size-jitter: must be 1..={FILE_BYTES_MAX} bytes, got {} + {}",
                self.size, self.size_jitter
            ));
        }
        if self.delete_percent > 100 {
            return fail(format!(
                "--delete-percent: must be 0..=100, got {}",
                self.delete_percent
            ));
        }
        if let Some(percent) = self.mixed_read_percent
            && percent > 100
        {
            return fail(format!(
                "--mixed-read-percent: must be 0..=100, got {percent}"
            ));
        }
        if let Some(seconds) = self.duration
            && !(seconds > 0.0 && seconds <= 86_400.0)
        {
            return fail(format!(
                "--duration: must be in (0, 86400] seconds, got {seconds}"
            ));
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate.is_finite())
        {
            return fail(format!(
                "--rate: must be a positive number of requests/s, got {rate}"
            ));
        }
        if let Some(threads) = self.threads
            && (threads == 0 || threads > THREADS_MAX)
        {
            return fail(format!(
                "--threads: must be 1..={THREADS_MAX}, got {threads}"
            ));
        }
        if let Err(error) = check_collection(&self.collection) {
            return fail(format!("--collection: {error}"));
        }
        if let Err(error) = ReplicaPlacement::parse(&self.replication) {
            return fail(format!("--replication: {error}"));
        }
        if self.read_only && self.files.list.is_none() {
            return fail("--read-only needs --list FILE (the fids of an earlier write run)".into());
        }
        Ok(())
    }

    fn list_path(&self) -> PathBuf {
        self.files
            .list
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("benchmark_list.txt"))
    }

    fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()))
    }
}

/// `kelp benchmark`: print the report of each phase; an aborted run is an error (after its
/// partial report is printed).
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let report = run_benchmark(&args, true)?;
    if let Some(reason) = report.aborted {
        return Err(format!("benchmark aborted: {reason}").into());
    }
    Ok(())
}

/// Run every phase `args` asks for; prints each report to stdout when `print` is set.
pub fn run_benchmark(
    args: &Args,
    print: bool,
) -> Result<RunReport, Box<dyn std::error::Error + Send + Sync>> {
    args.validate()?;
    let workload = Arc::new(Workload {
        masters: args.masters()?,
        size: args.size,
        size_jitter: args.size_jitter,
        collection: args.collection.clone(),
        replication: ReplicaPlacement::parse(&args.replication)?,
        fsync: args.fsync,
        delete_percent: args.delete_percent,
    });
    let mut run = RunReport {
        tool: concat!("kelp benchmark ", env!("CARGO_PKG_VERSION")),
        phases: Vec::new(),
        aborted: None,
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut phases = Phases {
        args,
        workload,
        run: &mut run,
        print,
        master_index: 0,
        seed,
    };
    if let Some(read_percent) = args.mixed_read_percent {
        phases.mixed(read_percent)?;
    } else {
        let targets = if args.read_only {
            read_list(&args.list_path())?
        } else {
            phases.write()?
        };
        if !args.write_only && run_allows_more(phases.run) {
            phases.read(targets)?;
        }
    }
    if let Some(path) = &args.files.json {
        let text = serde_json::to_string_pretty(&run)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("write --json file {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.files.plot {
        plot_run(args, &run, path)?;
    }
    Ok(run)
}

/// `--plot`: every phase with completed requests as one curve.
fn plot_run(args: &Args, run: &RunReport, path: &Path) -> Result<(), plot::PlotError> {
    let curves: Vec<plot::Curve> = run
        .phases
        .iter()
        .filter(|phase| !phase.latency.curve_ms.is_empty())
        .map(|phase| plot::Curve {
            label: phase.name.clone(),
            points_ms: phase.latency.curve_ms.clone(),
        })
        .collect();
    let title = format!(
        "kelp benchmark: {} B files, {} connections",
        args.size, args.c
    );
    plot::draw_latency(path, &title, &curves)
}

fn run_allows_more(run: &RunReport) -> bool {
    run.aborted.is_none()
}

struct Phases<'a> {
    args: &'a Args,
    workload: Arc<Workload>,
    run: &'a mut RunReport,
    print: bool,
    master_index: usize,
    seed: u64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Phases<'_> {
    fn plan(&self, name: &str, kind: PhaseKind, operations: u64) -> PhasePlan {
        PhasePlan {
            name: name.to_string(),
            kind,
            operations,
            concurrency: self.args.c,
            threads: self.args.threads(),
            duration: self.args.duration.map(Duration::from_secs_f64),
            stop_file: self.args.files.stop_file.clone(),
            rate_per_second: self.args.rate,
            show_progress: self.print && run::stderr_is_terminal(),
        }
    }

    fn execute(&mut self, plan: &PhasePlan) -> Result<PhaseOutcome, BoxError> {
        self.seed = self.seed.wrapping_add(1);
        let outcome = run::run_phase(plan, &self.workload, self.master_index, self.seed)
            .map_err(|e| format!("start benchmark threads: {e}"))?;
        self.master_index = outcome.master_index;
        Ok(outcome)
    }

    fn record(&mut self, name: &str, outcome: &PhaseOutcome, stats: &report::PhaseStats) {
        let mut report = PhaseReport::new(name, self.args.c, outcome.seconds, stats);
        report.target_rate_per_second = self.args.rate;
        report.client_cpu_seconds = outcome.client_cpu_seconds;
        report.aborted = outcome.aborted.clone();
        if self.print {
            print!("{}", report.format());
        }
        if self.run.aborted.is_none() {
            self.run.aborted = outcome.aborted.clone();
        }
        self.run.phases.push(report);
    }

    fn write(&mut self) -> Result<Vec<FileRecord>, BoxError> {
        let plan = self.plan("Writing Benchmark", PhaseKind::Write, self.args.n);
        let outcome = self.execute(&plan)?;
        let list_path = self.args.list_path();
        write_list(&list_path, &outcome.written)?;
        self.record(&plan.name, &outcome, &outcome.stats);
        Ok(outcome.written)
    }

    fn read(&mut self, targets: Vec<FileRecord>) -> Result<(), BoxError> {
        if targets.is_empty() {
            return Err("nothing to read: the fid list is empty".into());
        }
        let sequential = self.args.read_sequentially;
        let operations = if sequential {
            targets.len() as u64
        } else {
            self.args.n
        };
        let kind = PhaseKind::Read {
            targets: Arc::new(targets),
            sequential,
        };
        let name = if sequential {
            "Sequentially Reading Benchmark"
        } else {
            "Randomly Reading Benchmark"
        };
        let plan = self.plan(name, kind, operations);
        let outcome = self.execute(&plan)?;
        self.record(&plan.name, &outcome, &outcome.stats);
        Ok(())
    }

    fn mixed(&mut self, read_percent: u8) -> Result<(), BoxError> {
        let plan = self.plan(
            "Mixed Benchmark",
            PhaseKind::Mixed { read_percent },
            self.args.n,
        );
        let outcome = self.execute(&plan)?;
        write_list(&self.args.list_path(), &outcome.written)?;
        self.record("Mixed Benchmark: writes", &outcome, &outcome.stats);
        self.record(
            "Mixed Benchmark: reads",
            &outcome,
            &outcome.mixed_read_stats,
        );
        Ok(())
    }
}

/// One fid per line, like `weed benchmark -list` (so either tool can read the other's list).
fn write_list(path: &Path, records: &[FileRecord]) -> Result<(), BoxError> {
    let context = |e: std::io::Error| format!("write fid list {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(context)?;
    let mut out = BufWriter::new(file);
    for record in records {
        writeln!(out, "{}", record.fid).map_err(context)?;
    }
    out.flush().map_err(context)?;
    Ok(())
}

/// The fids of a list file; blank lines and `#` comments are skipped, as weed does.
pub fn read_list(path: &Path) -> Result<Vec<FileRecord>, BoxError> {
    let context = |e: std::io::Error| format!("read fid list {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(context)?;
    let mut records = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(context)?;
        let fid = line.trim();
        if fid.is_empty() || fid.starts_with('#') {
            continue;
        }
        let at = || format!("fid list {} line {}", path.display(), number + 1);
        if let Err(error) = FileId::parse(fid) {
            return Err(format!("{}: {error} (a fid looks like 3,01637037d6)", at()).into());
        }
        if records.len() >= LIST_LINES_MAX {
            return Err(format!("{}: the list has over {LIST_LINES_MAX} lines", at()).into());
        }
        records.push(FileRecord {
            fid: fid.to_string(),
            expected: None,
        });
    }
    Ok(records)
}
