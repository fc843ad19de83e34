//! `kelp filer-benchmark`: load on any SeaweedFS-compatible filer (Kelp's or SeaweedFS's)
//! for the many-small-files workload: creates, stats (HEAD), reads and deletes of small
//! files, and pages of a large directory's listing. Each phase is bounded in count and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The filer, host:port.
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub filer: String,
    /// create, stat, read, delete (files DIR/f<i>), populate (empty entries DIR/e<i>) or
    /// list (pages of DIR from random names).
    #[arg(long)]
    pub phase: String,
    /// Directory the files live in.
    #[arg(long, default_value = "/bench")]
    pub dir: String,
    /// Files (or entries, or pages for `list`).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Entries in DIR (for `list`: where its random start names come from).
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: usize,
    /// Bytes per file.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Requests in flight.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// Entries per listed page.
    #[arg(long, default_value_t = 100)]
    pub page: usize,
    /// Stop after this many seconds even if not done.
    #[arg(long, default_value_t = 300)]
    pub seconds_max: u64,
}

struct Shared {
    args: Args,
    client: Client<HttpConnector, Full<Bytes>>,
    next: AtomicUsize,
    errors: AtomicU64,
    body: Bytes,
    deadline: Instant,
}

pub fn run(args: Args) -> CliResult {
    let phases = ["create", "stat", "read", "delete", "populate", "list"];
    if !phases.contains(&args.phase.as_str()) {
        return Err(format!("--phase {:?} is not one of {phases:?}", args.phase).into());
    }
    if args.concurrency == 0 || args.count == 0 {
        return Err("--concurrency and --count must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    runtime.block_on(drive(args))
}

async fn drive(args: Args) -> CliResult {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build(connector);
    let shared = Arc::new(Shared {
        body: Bytes::from(vec![b'k'; args.size]),
        deadline: Instant::now() + Duration::from_secs(args.seconds_max),
        args,
        client,
        next: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..shared.args.concurrency {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move { worker(&shared).await }));
    }
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for worker in workers {
        latencies
            .add(worker.await.map_err(|e| format!("worker: {e}"))?)
            .expect("same bounds");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = latencies.len();
    println!(
        "phase={} done={done} errors={} seconds={elapsed:.2} ops_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
        shared.args.phase,
        shared.errors.load(Ordering::Relaxed),
        done as f64 / elapsed,
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
    );
    Ok(())
}

/// Take request numbers until `count` or the deadline; the latencies in microseconds.
async fn worker(shared: &Shared) -> hdrhistogram::Histogram<u64> {
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        if index >= shared.args.count || Instant::now() > shared.deadline {
            return latencies;
        }
        let started = Instant::now();
        match one(shared, index).await {
            Ok(()) => {
                let _ = latencies.record(started.elapsed().as_micros() as u64);
            }
            Err(error) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("filer-benchmark: {error}");
                }
            }
        }
    }
}

/// A name that spreads over the key space (not in creation order).
fn name(prefix: char, index: usize) -> String {
    let mixed = (index as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    format!("{prefix}{:016x}", mixed)
}

/// What one request of the benchmark's phase is: method, path, body, whether it asks for
/// JSON, and the statuses that count as success.
type PlannedRequest = (Method, String, Bytes, bool, &'static [u16]);

fn planned_request(shared: &Shared, index: usize) -> PlannedRequest {
    let args = &shared.args;
    let dir = args.dir.trim_end_matches('/');
    match args.phase.as_str() {
        "create" => (
            Method::PUT,
            format!("{dir}/{}", name('f', index)),
            shared.body.clone(),
            false,
            &[201],
        ),
        "stat" => (
            Method::HEAD,
            format!("{dir}/{}", name('f', index)),
            Bytes::new(),
            false,
            &[200],
        ),
        "read" => (
            Method::GET,
            format!("{dir}/{}", name('f', index)),
            Bytes::new(),
            false,
            &[200],
        ),
        "delete" => (
            Method::DELETE,
            format!("{dir}/{}", name('f', index)),
            Bytes::new(),
            false,
            &[200, 202, 204],
        ),
        "populate" => (
            Method::PUT,
            format!("{dir}/{}", name('e', index)),
            Bytes::new(),
            false,
            &[201],
        ),
        _ => {
            let start = name('e', rand::random_range(0..args.entries));
            (
                Method::GET,
                format!("{dir}/?limit={}&lastFileName={start}", args.page),
                Bytes::new(),
                true,
                &[200],
            )
        }
    }
}

async fn one(shared: &Shared, index: usize) -> Result<(), String> {
    let args = &shared.args;
    let (method, uri, body, accept, ok) = planned_request(shared, index);
    let url = format!("http://{}{uri}", args.filer);
    let mut request = hyper::Request::builder().method(method).uri(&url);
    if accept {
        request = request.header("accept", "application/json");
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/octet-stream");
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("{url}: {e}"))?;
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    if !ok.contains(&status) {
        return Err(format!(
            "{url}: {status} {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    if args.phase == "read" && bytes.len() != args.size {
        return Err(format!(
            "{url}: {} bytes, expected {}",
            bytes.len(),
            args.size
        ));
    }
    if args.phase == "list" && !bytes.starts_with(b"{") {
        return Err(format!("{url}: not a JSON listing"));
    }
    Ok(())
}
