//! One core of the volume server: its share of the volumes, its metrics, its end of the mesh.
//! A request that lands on a core that does not own its volume is handed to the owner over
//! the mesh and answered from there (share-nothing: a volume is touched by one thread only).

use super::admin_guard::AdminGuard;
use super::config::Config;
use super::master_link::{LookupCache, Masters, VolumeReport};
use super::metrics::{CoreMetrics, RequestSample};
use super::store::CoreStore;
use super::sync::GroupCommit;
use super::{fid, handlers, query, shard};
use kelp_net::http::{Handler, Method, Request, Response};
use kelp_net::mesh::{MeshEndpoint, OneshotSender, oneshot};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Messages between cores. Every queue is bounded (`MESH_CAPACITY_PER_PAIR`).
pub enum CoreMessage {
    /// Serve this request here (the sender's core does not own its volume).
    Request {
        request: Request,
        reply: OneshotSender<Response>,
    },
    /// Report metrics and volumes (for `/metrics`, `/status` and the heartbeat).
    Snapshot { reply: OneshotSender<CoreSnapshot> },
    /// The master's volume size limit changed.
    SizeLimit { bytes: u64 },
}

/// What one core reports about itself.
#[derive(Debug, Clone, Default)]
pub struct CoreSnapshot {
    pub metrics: CoreMetrics,
    pub volumes: Vec<VolumeReport>,
    pub max_file_key: u64,
}

/// Requests in flight from one core to another; more are answered 503.
pub const MESH_CAPACITY_PER_PAIR: usize = 1024;

/// Settings of every volume on this server, shared by all cores. Touched only by the admin
/// calls (create/delete), never by reads or writes: it makes `--max` exact across cores.
#[derive(Debug, Default)]
pub struct Registry {
    pub volumes: std::collections::BTreeMap<u32, VolumeSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSettings {
    pub collection: String,
    pub replication: kelp_engine::format::ReplicaPlacement,
    pub ttl: kelp_engine::format::Ttl,
}

pub struct CoreState {
    pub core_index: usize,
    pub config: Arc<Config>,
    pub registry: Arc<Mutex<Registry>>,
    /// Decides who may make admin calls (the masters).
    pub admin_guard: Arc<AdminGuard>,
    pub mesh: MeshEndpoint<CoreMessage>,
    pub store: RefCell<CoreStore>,
    pub metrics: RefCell<CoreMetrics>,
    pub group_commit: GroupCommit,
    /// Requests other cores handed here, not answered yet.
    pub handoff_depth: Cell<u64>,
    pub lookups: RefCell<LookupCache>,
    /// Master connection for lookups; taken out while a lookup runs.
    pub masters: RefCell<Option<Masters>>,
    pub peers: super::replicate::PeerPool,
    /// This core's compactions, and the server's one-at-a-time slot.
    pub compactions: RefCell<super::compaction::Compactions>,
    pub compaction_slot: Arc<super::compaction::CompactionSlot>,
    /// Starts the gRPC thread's heartbeat when the master is SeaweedFS.
    pub seaweed_link: Arc<super::grpc::seaweed_master::MasterLink>,
}

/// The per-core HTTP handler.
pub struct VolumeHandler {
    pub state: Rc<CoreState>,
}

impl Handler for VolumeHandler {
    async fn handle(&self, request: Request) -> Response {
        let started = Instant::now();
        let method = request.method.as_str();
        let bytes_in = request.body.len() as u64;
        let response = route(&self.state, request).await;
        let sample = RequestSample {
            bytes_in,
            bytes_out: response.body.len(),
            latency_us: started.elapsed().as_micros() as u64,
        };
        self.state
            .metrics
            .borrow_mut()
            .record(method, response.status, sample);
        response
    }
}

/// Admin calls about one volume (`?volume=N`), served by its owner core.
fn is_volume_admin(path: &str) -> bool {
    matches!(path, "/admin/volume/create" | "/admin/volume/delete")
        || path.starts_with("/admin/vacuum/")
}

/// Which core serves a request: the owner of its volume, or this one.
fn target_core(state: &CoreState, request: &Request) -> Option<usize> {
    let volume_id = match request.path.as_str() {
        path if is_volume_admin(path) => {
            query::param(&request.query, "volume").and_then(|v| fid::parse_volume_id(&v).ok())
        }
        path => fid::parse_path(path).ok().map(|p| p.fid.volume_id),
    }?;
    let owner = shard::owner_core(volume_id, state.config.cores);
    (owner != state.core_index).then_some(owner)
}

async fn route(state: &Rc<CoreState>, request: Request) -> Response {
    if request.path.starts_with("/admin/")
        && let Err(refusal) = state.admin_guard.authorize(&request)
    {
        return refusal;
    }
    match request.path.as_str() {
        "/healthz" => return Response::json(200, "{\"status\":\"ok\"}".to_string()),
        "/status" => return handlers::status(state).await,
        "/metrics" => return handlers::metrics(state).await,
        "/" | "/ui/index.html" => return super::status_page::index(state, &request).await,
        _ => {}
    }
    match target_core(state, &request) {
        Some(owner) => hand_off(state, owner, request).await,
        None => serve_local(state, request).await,
    }
}

/// Serve a request whose volume this core owns.
pub async fn serve_local(state: &Rc<CoreState>, request: Request) -> Response {
    match (request.method, request.path.as_str()) {
        (Method::Post, "/admin/volume/create") => handlers::create_volume(state, &request).await,
        (Method::Post, "/admin/volume/delete") => handlers::delete_volume(state, &request),
        (Method::Post, path) if path.starts_with("/admin/vacuum/") => {
            handlers::vacuum_admin(state, &request).await
        }
        (_, path) if is_volume_admin(path) => Response::error(405, "admin volume calls take POST"),
        (Method::Get | Method::Head, _) => handlers::read(state, &request).await,
        (Method::Post | Method::Put, _) => handlers::write(state, &request).await,
        (Method::Delete, _) => handlers::delete(state, &request).await,
        (Method::Options, _) => {
            Response::new(200).header("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        }
        (Method::Other, _) => Response::error(405, "method not allowed"),
    }
}

async fn hand_off(state: &Rc<CoreState>, owner: usize, request: Request) -> Response {
    let (reply, answer) = oneshot();
    let message = CoreMessage::Request { request, reply };
    if state.mesh.send(owner, message).is_err() {
        let text = format!("core {owner} is overloaded (hand-off queue full); retry");
        return Response::error(503, &text).header("Retry-After", "1");
    }
    match answer.await {
        Ok(response) => response,
        Err(canceled) => Response::error(500, &format!("core {owner}: {canceled}")),
    }
}

/// Receive messages from other cores until the runtime ends.
pub async fn mesh_loop(state: Rc<CoreState>) {
    loop {
        match state.mesh.recv().await {
            CoreMessage::Request { request, reply } => {
                state.handoff_depth.set(state.handoff_depth.get() + 1);
                let task_state = state.clone();
                compio::runtime::spawn(async move {
                    let response = serve_local(&task_state, request).await;
                    task_state
                        .handoff_depth
                        .set(task_state.handoff_depth.get() - 1);
                    let _ = reply.send(response); // the asker may have gone: nothing to do
                })
                .detach();
            }
            CoreMessage::Snapshot { reply } => {
                let _ = reply.send(snapshot(&state));
            }
            CoreMessage::SizeLimit { bytes } => state.store.borrow_mut().set_size_limit(bytes),
        }
    }
}

pub fn snapshot(state: &CoreState) -> CoreSnapshot {
    let mut metrics = state.metrics.borrow().clone();
    metrics
        .handoff_queue_depth
        .insert(state.core_index, state.handoff_depth.get());
    let store = state.store.borrow();
    let port = shard::core_port(state.config.port, state.core_index);
    let volumes = store.reports(port, super::handlers::now_unix_ns());
    metrics
        .volumes
        .insert(state.core_index, volumes.len() as u64);
    metrics
        .uncached_reads
        .insert(state.core_index, store.uncached_reads());
    metrics.compaction = state.compactions.borrow().metrics();
    CoreSnapshot {
        metrics,
        volumes,
        max_file_key: store.max_file_key(),
    }
}

/// Snapshots of every core, this one included (asked over the mesh, answered in parallel).
pub async fn all_snapshots(state: &CoreState) -> Result<Vec<CoreSnapshot>, String> {
    let mut pending = Vec::with_capacity(state.config.cores);
    for core in 0..state.config.cores {
        if core == state.core_index {
            continue;
        }
        let (reply, answer) = oneshot();
        if state
            .mesh
            .send(core, CoreMessage::Snapshot { reply })
            .is_err()
        {
            return Err(format!("core {core} is overloaded (hand-off queue full)"));
        }
        pending.push((core, answer));
    }
    let mut snapshots = vec![snapshot(state)];
    for (core, answer) in pending {
        let snapshot = answer.await.map_err(|e| format!("core {core}: {e}"))?;
        snapshots.push(snapshot);
    }
    Ok(snapshots)
}

/// Tell every core (this one included) the master's volume size limit.
pub fn broadcast_size_limit(state: &CoreState, bytes: u64) {
    state.store.borrow_mut().set_size_limit(bytes);
    for core in (0..state.config.cores).filter(|&c| c != state.core_index) {
        if state
            .mesh
            .send(core, CoreMessage::SizeLimit { bytes })
            .is_err()
        {
            tracing::warn!("core {core}: queue full, size limit not delivered this beat");
        }
    }
}
