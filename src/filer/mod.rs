//! `kelp filer`: paths and directories over the volume store, speaking SeaweedFS's filer
//! HTTP API (tokio + hyper).
//!
//! Layout: [`store`] (the entry stores: redb embedded, Redis and PostgreSQL shared),
//! [`entry`] (an entry and its JSON), [`path`] and [`params`] (request parsing),
//! [`namespace`] (entries read and changed atomically with their chunk bookkeeping),
//! [`volumes`] (master and volume server calls), [`data`] (chunked upload and streamed
//! read), [`tree`] (directories, deletes, renames, copies, tags), [`deleter`] (background
//! chunk deletion and the crash sweep), [`http`], [`read`] and [`write`] (the HTTP API),
//! [`listing`], [`metrics`].

pub mod benchmark;
pub mod data;
pub mod deleter;
pub mod entry;
pub mod error;
pub mod fids;
pub mod http;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod namespace;
pub mod params;
pub mod path;
pub mod read;
pub mod store;
pub mod tree;
pub mod volumes;
pub mod write;

use std::path::PathBuf;
use std::sync::Arc;

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// HTTP port.
    #[arg(long, default_value_t = 8888)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// Masters, `host:port[,host:port...]`.
    #[arg(long, default_value = "127.0.0.1:9333")]
    pub master: String,
    /// Where entries are kept: `redb` (a file in --dir), `redis://HOST:PORT[/DB]` or
    /// `postgres://USER@HOST:PORT/DB` (shared by several filers).
    #[arg(long, default_value = "redb")]
    pub store: String,
    /// Directory of the embedded store's file.
    #[arg(long, default_value = "./filer")]
    pub dir: PathBuf,
    /// Files larger than this are split into chunks of this size.
    #[arg(long, default_value_t = 4)]
    pub max_chunk_mb: u64,
    /// Collection of new chunks when a request names none.
    #[arg(long, default_value = "")]
    pub collection: String,
    /// Replication of new chunks when a request names none ("" = the master's default).
    #[arg(long, default_value = "")]
    pub default_replication: String,
    /// SeaweedFS's `security.toml`: with its keys the filer signs the tokens of its chunk
    /// reads (`[jwt.signing.read]`) and deletes (`[jwt.signing]`) itself; without, it asks
    /// the master for them. Uploads carry the token of their assign either way.
    #[arg(long, value_name = "FILE")]
    pub security: Option<PathBuf>,
}

/// A running filer's parts.
pub struct Filer {
    pub namespace: Arc<namespace::Namespace>,
    pub volumes: Arc<volumes::Volumes>,
    pub writer: data::Writer,
    pub metrics: Arc<metrics::Metrics>,
    pub placement: volumes::Placement,
}

fn check(args: &Args) -> Result<Vec<String>, String> {
    if args.max_chunk_mb == 0 || args.max_chunk_mb > limits::CHUNK_MB_MAX {
        return Err(format!(
            "--max-chunk-mb must be 1 to {}",
            limits::CHUNK_MB_MAX
        ));
    }
    let masters: Vec<String> = args
        .master
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err("--master needs at least one host:port".into());
    }
    for master in &masters {
        if master
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!("--master: {master:?} is not host:port"));
        }
    }
    Ok(masters)
}

pub fn run(args: Args) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kelp-filer")
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = bind(&args).await?;
        let filer = start(&args).await?;
        tokio::select! {
            _ = http::serve(filer, listener) => {}
            _ = crate::master::shutdown_signal() => tracing::info!("filer: shutting down on signal"),
        }
        Ok(())
    })
}

pub async fn bind(args: &Args) -> Result<tokio::net::TcpListener, String> {
    let address = format!("{}:{}", args.ip, args.port);
    tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("filer: listen on {address}: {e}"))
}

/// Open the store, sweep what a crash left, start the background tasks.
pub async fn start(args: &Args) -> Result<Arc<Filer>, String> {
    let masters = check(args).map_err(|e| format!("bad flags: {e}"))?;
    let security = crate::security::load_optional(args.security.as_deref(), "")
        .map_err(|e| format!("--security: {e}"))?;
    let store = store::open(&args.store, &args.dir).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let namespace = Arc::new(namespace::Namespace::new(store.clone(), metrics.clone()));
    let owner = format!("{}:{}", args.ip, args.port);
    let prefix = volumes::lease_prefix(&owner);
    let left_open = deleter::open_leases(&namespace, &prefix).await?;
    let (closer, closed) = tokio::sync::mpsc::channel(1024);
    let volumes = Arc::new(volumes::Volumes::new(
        masters,
        store.clone(),
        &owner,
        closer,
        security,
    ));
    tokio::spawn(deleter::close_leases(namespace.clone(), closed));
    tokio::spawn(deleter::run(namespace.clone(), volumes.clone()));
    if !left_open.is_empty() {
        tracing::info!(
            "filer: {} lease(s) left open by the last run: sweeping",
            left_open.len()
        );
        tokio::spawn(deleter::sweep(namespace.clone(), left_open));
    }
    let writer = data::Writer {
        volumes: volumes.clone(),
        namespace: namespace.clone(),
        chunk_bytes: (args.max_chunk_mb * 1024 * 1024) as usize,
    };
    tracing::info!(
        "filer: listening on {}:{} (store {}, masters {})",
        args.ip,
        args.port,
        store.kind(),
        args.master
    );
    Ok(Arc::new(Filer {
        namespace,
        volumes,
        writer,
        metrics,
        placement: volumes::Placement {
            collection: args.collection.clone(),
            replication: args.default_replication.clone(),
            ttl: String::new(),
        },
    }))
}
