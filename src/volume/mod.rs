//! `kelp volume`: the volume server. One compio runtime per core; each core owns a shard of
//! the volumes (`shard::owner_core`) and serves them through its own ring, on the shared
//! `--port` (SO_REUSEPORT) and on its own port (`--port` + 1 + core).

pub mod admin_guard;
pub mod auth;
pub mod background;
pub mod codec;
pub mod compaction;
pub mod conditional;
pub mod config;
pub mod dat_map;
pub mod expiry;
pub mod fid;
pub mod grpc;
pub mod handlers;
pub mod heartbeat;
pub mod limits;
pub mod master_link;
pub mod metrics;
pub mod multipart;
pub mod peers;
pub mod query;
pub mod range;
pub mod read_response;
pub mod registry;
pub mod repair;
pub mod replicate;
pub mod router;
pub mod shard;
pub mod space;
pub mod staged;
pub mod state;
pub mod status_page;
pub mod store;
pub mod sync;
pub mod upload;

use self::config::Config;
use self::registry::Registry;
use self::router::VolumeHandler;
use self::state::{CoreMessage, CoreParts, CoreState};
use crate::CliResult;
use kelp_net::http::server::{HttpLimits, bind_reuseport, serve_listeners};
use kelp_net::mesh::MeshEndpoint;
use kelp_net::runtime::{Either, Shutdown, check_fd_limit, select2};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

pub use self::config::Args;

/// What core i takes when it starts: its volumes, its end of the mesh, and its listeners
/// (the shared `--port` and its own port, bound before any core starts).
struct CoreStart {
    store: store::CoreStore,
    mesh: MeshEndpoint<CoreMessage>,
    listeners: Vec<std::net::TcpListener>,
    /// The calls the gRPC thread hands this core.
    grpc_inbox: grpc::inbox::Receiver,
}

type CoreSlot = Mutex<Option<CoreStart>>;

pub fn run(args: Args) -> CliResult {
    let mut config = Config::from_args(args)?;
    config.connections_max = Some(connections_per_core(&config)?);
    let config = Arc::new(config);
    staged::remove_unfinished(&config.dir)?;
    let stores = store::open_dir(&config)?;
    let registry = Arc::new(Mutex::new(registry_of(&stores, &config)));
    let masters = admin_guard::MasterAddresses::resolve(config.masters.clone());
    let admin_guard = admin_guard::AdminGuard::new(masters).signed(config.security.clone());
    let admin_guard = Arc::new(admin_guard);
    let compaction_slot = Arc::new(compaction::CompactionSlot::start()?);
    let listeners = bind_listeners(&config)?;
    let grpc_listener = grpc::bind(&config)?;
    let (grpc_senders, grpc_inboxes) = grpc::inbox::inboxes(config.cores);
    let seaweed_link = Arc::new(grpc::seaweed_master::MasterLink::default());
    if let Some(listener) = grpc_listener {
        grpc::start(config.clone(), listener, grpc_senders, seaweed_link.clone())?;
    }
    let per_core = core_starts(&config, stores, listeners, grpc_inboxes);
    let limits = http_limits(&config);
    let shutdown = Shutdown::new();
    let result = kelp_net::runtime::run_cores(config.cores, move |context| {
        let taken = per_core[context.core_index]
            .lock()
            .expect("core slot")
            .take();
        let CoreStart {
            store,
            mesh,
            listeners,
            grpc_inbox,
        } = taken.expect("each core starts once");
        let state = Rc::new(CoreState::new(CoreParts {
            core_index: context.core_index,
            config: config.clone(),
            registry: registry.clone(),
            admin_guard: admin_guard.clone(),
            mesh,
            store,
            compaction_slot: compaction_slot.clone(),
            seaweed_link: seaweed_link.clone(),
        }));
        let driver = context.driver.name();
        serve_core(
            state,
            listeners,
            grpc_inbox,
            limits,
            driver,
            shutdown.clone(),
        )
    });
    result.map_err(|e| format!("serving: {e}"))?;
    tracing::info!("volume server: stopped");
    Ok(())
}

/// The settings of every volume the cores' stores opened.
fn registry_of(stores: &[store::CoreStore], config: &Config) -> Registry {
    let mut registry = Registry::default();
    for store in stores {
        for (volume_id, settings) in store.settings() {
            registry.volumes.insert(volume_id, settings);
        }
    }
    let cores = config.cores;
    let count = registry.volumes.len();
    tracing::info!(
        "volume server: {count} volumes in {} on {cores} cores",
        config.dir.display()
    );
    registry
}

/// What each core takes when it starts (its store, its end of the mesh, its listeners, its
/// gRPC inbox), one slot per core.
fn core_starts(
    config: &Config,
    stores: Vec<store::CoreStore>,
    listeners: Vec<Vec<std::net::TcpListener>>,
    grpc_inboxes: Vec<grpc::inbox::Receiver>,
) -> Arc<Vec<CoreSlot>> {
    let endpoints =
        kelp_net::mesh::mesh::<CoreMessage>(config.cores, limits::MESH_MESSAGES_PER_PAIR_MAX);
    assert_eq!(stores.len(), config.cores);
    assert_eq!(listeners.len(), config.cores);
    let per_core = stores
        .into_iter()
        .zip(endpoints)
        .zip(listeners)
        .zip(grpc_inboxes)
        .map(|(((store, mesh), listeners), grpc_inbox)| {
            let start = CoreStart {
                store,
                mesh,
                listeners,
                grpc_inbox,
            };
            Mutex::new(Some(start))
        })
        .collect();
    Arc::new(per_core)
}

/// Descriptors a volume holds open: its `.dat`, its `.idx`, and the `.idx` handle for ring
/// appends.
const VOLUME_FDS: usize = 3;

/// Connections per core that fit RLIMIT_NOFILE beside the volumes' files. An explicit
/// `--max-connections` that does not fit is an error saying how to raise the limit; the
/// default is lowered to what fits (the soft limit is raised to the hard one first).
fn connections_per_core(config: &Config) -> Result<usize, String> {
    let volumes_max = match config.volumes_max {
        0 => limits::AUTO_VOLUMES_MAX,
        max => max,
    };
    let files = VOLUME_FDS * volumes_max as usize;
    let cores = config.cores;
    if let Some(per_core) = config.connections_max {
        return check_fd_limit(per_core * cores + files)
            .map(|()| per_core)
            .map_err(|error| format!("--max-connections {per_core} on {cores} cores: {error}"));
    }
    let per_core = kelp_net::limits::CONNECTIONS_MAX_DEFAULT;
    let Err(error) = check_fd_limit(per_core * cores + files) else {
        return Ok(per_core);
    };
    let reserve = kelp_net::limits::FD_RESERVE_COUNT as usize;
    let fits = (error.hard_limit as usize).saturating_sub(reserve + files) / cores;
    if fits < CONNECTIONS_PER_CORE_MIN {
        return Err(format!(
            "too few descriptors for the volume server: {error}"
        ));
    }
    check_fd_limit(fits * cores + files)
        .map_err(|error| format!("too few descriptors for the volume server: {error}"))?;
    tracing::info!(
        "open-file limit {}: {fits} connections per core (the default {per_core} needs `ulimit -n {}`)",
        error.hard_limit,
        error.needed
    );
    Ok(fits)
}

/// Below this many connections per core the server would hardly serve: refuse to start.
const CONNECTIONS_PER_CORE_MIN: usize = 64;

fn http_limits(config: &Config) -> HttpLimits {
    let mut limits = HttpLimits {
        body_bytes_max: config.file_bytes_max,
        idle_timeout_ms: config.idle_timeout_ms,
        header_timeout_ms: config.header_timeout_ms,
        ..HttpLimits::default()
    };
    if let Some(connections_max) = config.connections_max {
        limits.connections_max = connections_max;
    }
    if let Some(zero_copy_min_bytes) = config.zero_copy_min_bytes {
        limits.zero_copy_min_bytes = zero_copy_min_bytes;
    }
    limits
}

/// Binds every core's two listeners (the shared `--port`, SO_REUSEPORT, and the core's own
/// port) before any core starts, so a port that is taken stops the start at once with its
/// address and the flag that chose it, instead of leaving a core out.
fn bind_listeners(config: &Config) -> Result<Vec<Vec<std::net::TcpListener>>, String> {
    let port = config.port;
    let cores = config.cores;
    let main_addr = SocketAddr::new(config.ip, port);
    (0..cores)
        .map(|core_index| {
            let main = bind_reuseport(main_addr)
                .map_err(|e| format!("{e}; it is the server's --port {port}"))?;
            let core_addr = SocketAddr::new(config.ip, shard::core_port(port, core_index));
            let own = bind_reuseport(core_addr).map_err(|e| {
                format!(
                    "{e}; it is core {core_index}'s own port (--port {port} + 1 + {core_index}): \
                     the server needs ports {port} to {} free",
                    shard::core_port(port, cores - 1)
                )
            })?;
            Ok(vec![main, own])
        })
        .collect()
}

async fn serve_core(
    state: Rc<CoreState>,
    listeners: Vec<std::net::TcpListener>,
    grpc_inbox: grpc::inbox::Receiver,
    limits: HttpLimits,
    driver: &'static str,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let config = state.config.clone();
    let core_index = state.core_index;
    let main_addr = SocketAddr::new(config.ip, config.port);
    let core_addr = SocketAddr::new(config.ip, shard::core_port(config.port, core_index));
    let handler = Rc::new(VolumeHandler {
        state: state.clone(),
    });
    compio::runtime::spawn(router::mesh_loop(state.clone())).detach();
    compio::runtime::spawn(expiry::expiry_loop(state.clone())).detach();
    compio::runtime::spawn(grpc::inbox::serve_calls(state.clone(), grpc_inbox)).detach();
    compio::runtime::spawn(repair::repair_loop(state.clone())).detach();
    if core_index == 0 {
        compio::runtime::spawn(heartbeat::heartbeat_loop(state.clone())).detach();
        compio::runtime::spawn(stop_on_signal(shutdown.clone())).detach();
    }
    let volumes = state.store.borrow().len();
    tracing::info!(
        "core {core_index}: {driver}, {volumes} volumes, serving {main_addr} and {core_addr}"
    );
    let served = serve_listeners(listeners, limits, handler, shutdown).await;
    for failure in state.store.borrow().sync_all() {
        tracing::error!("core {core_index}: at shutdown: {failure}");
    }
    served
}

/// Triggers `shutdown` on SIGTERM or SIGINT: every core stops accepting, finishes the
/// requests in progress and syncs its volumes. A second signal ends the process at once.
async fn stop_on_signal(shutdown: Shutdown) {
    let signal = select2(
        compio::signal::unix::signal(libc::SIGTERM),
        compio::signal::ctrl_c(),
    )
    .await;
    if let Either::Left(Err(error)) | Either::Right(Err(error)) = signal {
        tracing::warn!("cannot watch for SIGTERM/SIGINT ({error}); they will end the process");
        return;
    }
    tracing::info!("volume server: stopping: finishing requests in progress, syncing volumes");
    shutdown.trigger();
}
