//! One core of the volume server: its share of the volumes, its metrics, its end of the mesh.
//! Only the core's own thread touches its state (share-nothing: a volume is touched by one
//! thread only); the other cores reach it through `CoreMessage`s on the mesh.

use super::admin_guard::AdminGuard;
use super::compaction::{CompactionSlot, Compactions};
use super::config::Config;
use super::limits::HANDOFF_REQUESTS_MAX;
use super::master_link::{LookupCache, Masters, VolumeReport};
use super::metrics::{CoreMetrics, RequestSample};
use super::peers::PeerPool;
use super::registry::Registry;
use super::shard;
use super::store::CoreStore;
use super::sync::GroupCommit;
use kelp_net::http::{Request, Response};
use kelp_net::mesh::{MeshEndpoint, OneshotSender, oneshot};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

/// Messages between cores. Every queue is bounded (`limits::MESH_MESSAGES_PER_PAIR_MAX`).
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

/// What one core owns, and what it shares with the others (the configuration, the registry,
/// the admin guard, the compaction slot). The fields the other rooms of the volume server use
/// are visible to them; the mesh, the metrics and the hand-off count are reached through
/// methods.
pub struct CoreState {
    pub(super) core_index: usize,
    pub(super) config: Arc<Config>,
    pub(super) registry: Arc<Mutex<Registry>>,
    /// Decides who may make admin calls (the masters).
    pub(super) admin_guard: Arc<AdminGuard>,
    mesh: MeshEndpoint<CoreMessage>,
    pub(super) store: RefCell<CoreStore>,
    metrics: RefCell<CoreMetrics>,
    pub(super) group_commit: GroupCommit,
    /// Requests other cores handed here, not answered yet (at most `handoffs_max`).
    handoffs_in_flight: Cell<usize>,
    handoffs_max: usize,
    pub(super) lookups: RefCell<LookupCache>,
    /// Master connection for lookups; taken out while a lookup runs.
    pub(super) masters: RefCell<Option<Masters>>,
    /// Connections to the other volume servers, for the replication fan-out.
    pub(super) peers: PeerPool,
    /// This core's compactions, and the server's one-at-a-time slot.
    pub(super) compactions: RefCell<Compactions>,
    pub(super) compaction_slot: Arc<CompactionSlot>,
    /// Starts the gRPC thread's heartbeat when the master is SeaweedFS.
    pub(super) seaweed_link: Arc<super::grpc::seaweed_master::MasterLink>,
    /// This core's replica repairs (anti-entropy passes).
    pub(super) repairs: RefCell<super::repair::Repairs>,
}

/// What a core is made of when it starts; the rest of its state starts empty.
pub struct CoreParts {
    pub core_index: usize,
    pub config: Arc<Config>,
    pub registry: Arc<Mutex<Registry>>,
    pub admin_guard: Arc<AdminGuard>,
    pub mesh: MeshEndpoint<CoreMessage>,
    pub store: CoreStore,
    pub compaction_slot: Arc<CompactionSlot>,
    pub seaweed_link: Arc<super::grpc::seaweed_master::MasterLink>,
}

impl CoreState {
    pub fn new(parts: CoreParts) -> CoreState {
        assert!(parts.core_index < parts.config.cores);
        assert_eq!(parts.mesh.core_index(), parts.core_index);
        assert_eq!(parts.mesh.core_count(), parts.config.cores);
        CoreState {
            core_index: parts.core_index,
            config: parts.config,
            registry: parts.registry,
            admin_guard: parts.admin_guard,
            mesh: parts.mesh,
            store: RefCell::new(parts.store),
            metrics: Default::default(),
            group_commit: Default::default(),
            handoffs_in_flight: Cell::new(0),
            handoffs_max: HANDOFF_REQUESTS_MAX,
            lookups: Default::default(),
            masters: Default::default(),
            peers: Default::default(),
            compactions: Default::default(),
            compaction_slot: parts.compaction_slot,
            seaweed_link: parts.seaweed_link,
            repairs: Default::default(),
        }
    }

    /// Queues `message` for core `to_core`; false (the message dropped) when that core's
    /// queue from this one is full.
    pub(super) fn try_send(&self, to_core: usize, message: CoreMessage) -> bool {
        self.mesh.send(to_core, message).is_ok()
    }

    /// The next message from another core (one task per core receives: the mesh loop).
    pub(super) async fn recv(&self) -> CoreMessage {
        self.mesh.recv().await
    }

    /// Counts one answered request in this core's metrics.
    pub(super) fn record_request(&self, method: &'static str, status: u16, sample: RequestSample) {
        self.metrics.borrow_mut().record(method, status, sample);
    }

    /// Takes a slot for a request another core handed here: false when `handoffs_max` are
    /// being served already (the request is then refused, not queued).
    pub(super) fn handoff_begin(&self) -> bool {
        let in_flight = self.handoffs_in_flight.get();
        assert!(in_flight <= self.handoffs_max);
        if in_flight == self.handoffs_max {
            return false;
        }
        self.handoffs_in_flight.set(in_flight + 1);
        true
    }

    /// Gives back the slot of a handed-off request that was answered.
    pub(super) fn handoff_end(&self) {
        let in_flight = self.handoffs_in_flight.get();
        assert!(in_flight > 0, "a hand-off ended that never began");
        self.handoffs_in_flight.set(in_flight - 1);
    }

    /// The most requests from other cores this core serves at once.
    pub(super) fn handoffs_max(&self) -> usize {
        self.handoffs_max
    }

    #[cfg(test)]
    pub(super) fn set_handoffs_max(&mut self, handoffs_max: usize) {
        self.handoffs_max = handoffs_max;
    }
}

pub fn snapshot(state: &CoreState) -> CoreSnapshot {
    let mut metrics = state.metrics.borrow().clone();
    metrics
        .handoff_queue_depth
        .insert(state.core_index, state.handoffs_in_flight.get() as u64);
    state.store.borrow_mut().refresh_free_space();
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
    metrics.repair = state.repairs.borrow().metrics.clone();
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
        if !state.try_send(core, CoreMessage::Snapshot { reply }) {
            return Err(format!("core {core} is overloaded (hand-off queue full)"));
        }
        pending.push((core, answer));
    }
    let mut snapshots = vec![snapshot(state)];
    for (core, answer) in pending {
        let snapshot = answer.await.map_err(|e| format!("core {core}: {e}"))?;
        snapshots.push(snapshot);
    }
    assert_eq!(snapshots.len(), state.config.cores);
    Ok(snapshots)
}

/// Tell every core (this one included) the master's volume size limit.
pub fn broadcast_size_limit(state: &CoreState, bytes: u64) {
    state.store.borrow_mut().set_size_limit(bytes);
    for core in (0..state.config.cores).filter(|&c| c != state.core_index) {
        if !state.try_send(core, CoreMessage::SizeLimit { bytes }) {
            tracing::warn!("core {core}: queue full, size limit not delivered this beat");
        }
    }
}
