//! `kelp server`: a master, one volume server and a filer in one process (the quick start).
//!
//! The master and the filer run on their own tokio runtimes in their own threads; the volume
//! server runs on its per-core compio threads in the calling thread. Volume files live in
//! `--dir`, the master's Raft log in `--dir/master`, the filer's store in `--dir/filer`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::CliResult;
use crate::master::node::Master;
use crate::master::params::{AssignOptions, Query};
use crate::master::{self, MasterConfig};
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory of the volume files (the master keeps its Raft log in DIR/master).
    #[arg(long)]
    pub dir: PathBuf,
    /// Master HTTP port.
    #[arg(long, default_value_t = 9333)]
    pub master_port: u16,
    /// Volume server HTTP port (core i also serves port + 1 + i).
    #[arg(long, default_value_t = 8080)]
    pub volume_port: u16,
    /// Address to listen on and to advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// Volume server cores (threads with their own io_uring); default: every CPU.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Most volumes the volume server holds; 0: as many as the disk's free space holds at
    /// the volume size limit.
    #[arg(long, default_value_t = 0)]
    pub max: u32,
    /// Free space (MiB) kept on the disk: writes that would leave less are refused.
    #[arg(long, default_value_t = 256)]
    pub min_free_space_mb: u64,
    /// Most bytes per second a compaction (vacuum) writes (40: a vacuum leaves readers' p99
    /// within 1.5x, see BENCHMARKS.md); 0: as fast as the disk goes.
    #[arg(long, default_value_t = 40)]
    pub compaction_mb_per_second: u64,
    /// Each replicated volume is compared with its other replicas and repaired this often;
    /// 0: only on demand.
    #[arg(long, default_value_t = 600)]
    pub repair_interval_seconds: u64,
    /// A compaction keeps the deletes younger than this many seconds for the repair.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub delete_retention_seconds: u64,
    /// Replication used when a request names none.
    #[arg(long, default_value = "000")]
    pub default_replication: String,
    /// Volumes larger than this stop taking new files. 1 GiB here (a cluster's master
    /// defaults to 30 GiB): with `--max 0` a disk with 50 GB free holds about 50 volumes,
    /// room for several collections, where 30 GiB volumes would fit one.
    #[arg(long, default_value_t = 1024)]
    pub volume_size_limit_mb: u64,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    pub pulse_seconds: u64,
    /// The master's automatic vacuum compacts volumes with at least this share of garbage.
    #[arg(long, default_value_t = 0.3)]
    pub garbage_threshold: f64,
    /// Time between automatic vacuums (`30s`, `15m`, `2h`; `0`: none).
    #[arg(long, default_value = "15m")]
    pub vacuum_interval: String,
    /// Filer HTTP port (0: no filer).
    #[arg(long, default_value_t = 8888)]
    pub filer_port: u16,
    /// Master gRPC port (SeaweedFS's master API); default --master-port + 10000; 0: none.
    #[arg(long)]
    pub master_grpc_port: Option<u16>,
    /// Volume server gRPC port (SeaweedFS's volume API); default --volume-port + 10000; 0: none.
    #[arg(long)]
    pub volume_grpc_port: Option<u16>,
    /// SeaweedFS's `security.toml`, for the master, the volume server and the filer.
    #[arg(long, value_name = "FILE")]
    pub security: Option<PathBuf>,
    /// Addresses and CIDR networks allowed to write and to make the master's destructive
    /// calls, as SeaweedFS's `-whiteList`. Empty: anyone.
    #[arg(long, default_value = "")]
    pub white_list: String,
    /// The master copies a volume short of copies this long to servers that keep its
    /// placement; 0: no automatic re-replication or trimming.
    #[arg(long, default_value_t = 1800)]
    pub replica_absence_max_seconds: u64,
    /// The master trims an extra copy of a volume only once it is this old.
    #[arg(long, default_value_t = 600)]
    pub replica_trim_delay_seconds: u64,
}

/// How long `kelp server` waits for its volume server to join the master before it says it
/// is not ready.
const READY_WAIT_MS_MAX: u64 = 60_000;
/// Between two looks at the master's topology while waiting.
const READY_POLL_MS: u64 = 100;

/// The volume server's own flags, parsed by its own clap definition (so its defaults apply).
#[derive(Parser)]
struct VolumeCommandLine {
    #[command(flatten)]
    args: crate::volume::Args,
}

pub fn run(args: Args) -> CliResult {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("create --dir {}: {e}", args.dir.display()))?;
    let master_args = master::Args {
        port: args.master_port,
        mdir: args.dir.join("master"),
        ip: args.ip.clone(),
        peers: String::new(),
        default_replication: args.default_replication.clone(),
        volume_size_limit_mb: args.volume_size_limit_mb,
        pulse_seconds: args.pulse_seconds,
        raft_heartbeat_ms: 300,
        raft_election_ms: 1500,
        garbage_threshold: args.garbage_threshold,
        vacuum_interval: args.vacuum_interval.clone(),
        grpc_port: args.master_grpc_port,
        security: args.security.clone(),
        white_list: args.white_list.clone(),
        replica_absence_max_seconds: args.replica_absence_max_seconds,
        replica_trim_delay_seconds: args.replica_trim_delay_seconds,
    };
    let config = MasterConfig::from_args(&master_args).map_err(|e| format!("bad flags: {e}"))?;
    let master = start_master_thread(config)?;
    let master_address = format!("{}:{}", args.ip, args.master_port);
    if args.filer_port != 0 {
        start_filer_thread(&args, &master_address)?;
    }
    std::thread::Builder::new()
        .name("kelp-ready".into())
        .spawn(move || announce_ready(&master, &master_address))
        .map_err(|e| format!("start the readiness thread: {e}"))?;
    let volume_args = volume_args(&args)?;
    // The volume server's errors name its own flags; here --port is --volume-port.
    crate::volume::run(volume_args)
        .map_err(|e| format!("volume server (its --port is --volume-port here, its --grpc-port --volume-grpc-port): {e}").into())
}

/// Logs `server: ready` once an assignment (`/dir/assign` or `/submit` with no options)
/// would succeed: this master leads, the volume server has joined it, and it has a writable
/// volume or may grow one now. Until then one is answered with an error (no leader yet, no
/// volume server to grow a volume on).
fn announce_ready(master: &Master, master_address: &str) {
    let options = match AssignOptions::parse(&Query::parse(""), master.config.default_placement) {
        Ok(options) => options,
        Err(error) => {
            tracing::warn!("server: cannot watch for readiness: {error}");
            return;
        }
    };
    let deadline = Instant::now() + Duration::from_millis(READY_WAIT_MS_MAX);
    while Instant::now() < deadline {
        if master.can_assign(&options) {
            tracing::info!("server: ready: curl -F file=@FILE http://{master_address}/submit");
            return;
        }
        std::thread::sleep(Duration::from_millis(READY_POLL_MS));
    }
    tracing::warn!(
        "server: the master at {master_address} cannot assign after {} s (no volume server \
         joined, or none has a free volume slot); see the errors above",
        READY_WAIT_MS_MAX / 1000
    );
}

fn volume_args(args: &Args) -> Result<crate::volume::Args, String> {
    let mut line = vec![
        "volume".to_string(),
        "--dir".into(),
        args.dir.to_string_lossy().into_owned(),
        "--port".into(),
        args.volume_port.to_string(),
        "--ip".into(),
        args.ip.clone(),
        "--master".into(),
        format!("{}:{}", args.ip, args.master_port),
        "--master-kind".into(),
        "kelp".into(),
        "--max".into(),
        args.max.to_string(),
        "--min-free-space-mb".into(),
        args.min_free_space_mb.to_string(),
        "--compaction-mb-per-second".into(),
        args.compaction_mb_per_second.to_string(),
        "--repair-interval-seconds".into(),
        args.repair_interval_seconds.to_string(),
        "--delete-retention-seconds".into(),
        args.delete_retention_seconds.to_string(),
    ];
    if let Some(cores) = args.cores {
        line.extend(["--cores".into(), cores.to_string()]);
    }
    if let Some(grpc_port) = args.volume_grpc_port {
        line.extend(["--grpc-port".into(), grpc_port.to_string()]);
    }
    if let Some(security) = &args.security {
        line.extend(["--security".into(), security.to_string_lossy().into_owned()]);
    }
    if !args.white_list.is_empty() {
        line.extend(["--white-list".into(), args.white_list.clone()]);
    }
    VolumeCommandLine::try_parse_from(line)
        .map(|parsed| parsed.args)
        .map_err(|e| format!("volume server flags: {e}"))
}

/// Start the master on its own runtime; returns it once it listens (or why it failed to
/// start). If the master stops later, the whole process exits: half a server is worse than
/// none.
fn start_master_thread(config: MasterConfig) -> Result<Arc<Master>, String> {
    let (started, wait) = mpsc::channel::<Result<Arc<Master>, String>>();
    let address = format!("{}:{}", config.ip, config.port);
    std::thread::Builder::new()
        .name("kelp-master".into())
        .spawn(move || {
            let failure = run_master(config, &started);
            let _ = started.send(Err(failure.clone()));
            eprintln!("kelp server: the master stopped: {failure}");
            std::process::exit(1);
        })
        .map_err(|e| format!("start the master thread: {e}"))?;
    match wait.recv() {
        Ok(Ok(master)) => {
            tracing::info!("server: master listening on {address}");
            Ok(master)
        }
        Ok(Err(error)) => Err(format!("master: {error}")),
        Err(_) => Err("master: the master thread ended before it started".into()),
    }
}

/// Runs the master until it fails; returns why.
fn run_master(config: MasterConfig, started: &mpsc::Sender<Result<Arc<Master>, String>>) -> String {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kelp-master")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return format!("start the tokio runtime: {error}"),
    };
    runtime.block_on(async move {
        let address = format!("{}:{}", config.ip, config.port);
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(listener) => listener,
            Err(error) => return format!("listen on {address} (--master-port): {error}"),
        };
        let grpc_listener = match master::grpc::bind(&config, "--master-grpc-port").await {
            Ok(listener) => listener,
            Err(error) => return error,
        };
        let master = match master::node::Master::start(config).await {
            Ok(master) => master,
            Err(error) => return error,
        };
        let _ = started.send(Ok(master.clone()));
        let served = tokio::select! {
            served = master::http::serve_listener(master.clone(), listener) => served,
            served = master::grpc::serve(master, grpc_listener) => served,
        };
        match served {
            Ok(()) => "the listener closed".to_string(),
            Err(error) => error,
        }
    })
}

/// Start the filer (store in `--dir/filer`) on its own runtime; returns once it listens. If
/// it stops later, the whole process exits.
fn start_filer_thread(args: &Args, master_address: &str) -> Result<(), String> {
    let filer_args = crate::filer::Args {
        port: args.filer_port,
        ip: args.ip.clone(),
        master: master_address.to_string(),
        store: "redb".into(),
        dir: args.dir.join("filer"),
        max_chunk_mb: 4,
        collection: String::new(),
        default_replication: String::new(),
        security: args.security.clone(),
    };
    let (started, wait) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("kelp-filer".into())
        .spawn(move || {
            let failure = run_filer(&filer_args, &started);
            let _ = started.send(Err(failure.clone()));
            eprintln!("kelp server: the filer stopped: {failure}");
            std::process::exit(1);
        })
        .map_err(|e| format!("start the filer thread: {e}"))?;
    match wait.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("filer: {error}")),
        Err(_) => Err("filer: the filer thread ended before it started".into()),
    }
}

/// Runs the filer until it fails; returns why.
fn run_filer(args: &crate::filer::Args, started: &mpsc::Sender<Result<(), String>>) -> String {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kelp-filer")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return format!("start the tokio runtime: {error}"),
    };
    runtime.block_on(async move {
        let listener = match crate::filer::bind(args).await {
            Ok(listener) => listener,
            Err(error) => return error,
        };
        let filer = match crate::filer::start(args).await {
            Ok(filer) => filer,
            Err(error) => return error,
        };
        let _ = started.send(Ok(()));
        crate::filer::http::serve(filer, listener).await;
        "the listener closed".to_string()
    })
}
