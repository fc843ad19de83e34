//! The running master: Raft handle, topology, key leases, volume growth.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kelp_engine::format::FileId;
use openraft::{BasicNode, Config, SnapshotPolicy};

use super::MasterConfig;
use super::http_client::HttpClient;
use super::limits::{
    ASSIGN_COUNT_MAX, ELECTION_TIMEOUT_SPREAD_PERCENT, KEY_LEASE_COUNT, KEY_LEASE_LOW_WATER,
    OUTBOUND_CALL_TIMEOUT_MS, PROPOSE_TIMEOUT_MS,
};
use super::params::{AssignOptions, grow_batch};
use super::quorum::QuorumView;
use super::raft::log_store::LogStore;
use super::raft::network::NetworkFactory;
use super::raft::state_machine::{MasterState, StateMachineStore};
use super::raft::{Command, CommandResult, MasterRaft, NodeId, node_id_of};
use super::topology::{Location, NOT_ENOUGH_NODES, Topology, VolumeReport, plan_placement};

/// Why a master operation failed; each maps to an HTTP status.
#[derive(Debug)]
pub enum MasterError {
    /// 400: a bad parameter.
    BadRequest(String),
    /// 406: the topology cannot satisfy the request.
    NotAcceptable(String),
    /// 503: not the leader, no leader, or still warming up; retry.
    Unavailable(String),
    /// 500/502: Raft or a volume server failed.
    Internal(String),
}

impl MasterError {
    pub fn status(&self) -> u16 {
        match self {
            MasterError::BadRequest(_) => 400,
            MasterError::NotAcceptable(_) => 406,
            MasterError::Unavailable(_) => 503,
            MasterError::Internal(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            MasterError::BadRequest(m)
            | MasterError::NotAcceptable(m)
            | MasterError::Unavailable(m)
            | MasterError::Internal(m) => m,
        }
    }
}

/// Leased key ranges, oldest first; keys of one assignment are contiguous.
#[derive(Default)]
struct KeyLeases {
    ranges: VecDeque<(u64, u64)>,
    refilling: bool,
    /// Keys at or below this exist on some volume server (from heartbeats).
    floor: u64,
}

impl KeyLeases {
    fn remaining(&self) -> u64 {
        self.ranges.iter().map(|(first, end)| end - first).sum()
    }

    /// Take `count` contiguous keys; a range too short for them is dropped (never reused).
    fn take(&mut self, count: u64) -> Option<u64> {
        assert!(count > 0, "an empty take would hand its key out twice");
        while let Some((first, end)) = self.ranges.front_mut() {
            if *end - *first >= count {
                let taken = *first;
                *first += count;
                return Some(taken);
            }
            self.ranges.pop_front();
        }
        None
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub assign_requests: AtomicU64,
    pub assigned_keys: AtomicU64,
    pub heartbeats: AtomicU64,
    pub volumes_grown: AtomicU64,
    pub proxied_requests: AtomicU64,
}

/// One assignment: the fid and where to upload it.
pub struct Assignment {
    pub fid: String,
    pub location: Location,
    pub count: u64,
}

pub struct Master {
    pub config: MasterConfig,
    pub node_id: NodeId,
    pub raft: MasterRaft,
    pub state_machine: StateMachineStore,
    pub client: HttpClient,
    pub topology: Mutex<Topology>,
    leases: Mutex<KeyLeases>,
    lease_refill: tokio::sync::Mutex<()>,
    grow_lock: tokio::sync::Mutex<()>,
    pub is_leader: AtomicBool,
    pub leader_since: Mutex<Option<Instant>>,
    /// Raft's largest volume id when this leader started growing volumes itself (None: it
    /// has not): the ids above it are its own, which no heartbeat needs to confirm.
    own_volume_ids_above: Mutex<Option<u32>>,
    pub counters: Counters,
    /// The vacuum's lock and counters.
    pub vacuum: super::vacuum::VacuumState,
    /// Re-replication and trimming: what the leader watched, jobs, counters.
    pub replication: super::replication::ReplicationState,
    /// The leader lease and which masters answer.
    pub quorum: QuorumView,
    /// Membership changes are applied one at a time.
    pub membership_lock: tokio::sync::Mutex<()>,
}

impl Master {
    /// Open the Raft storage in `--mdir`, start Raft, and start the background tasks
    /// (forming or entering the cluster, leadership and lease watch, peer probes, dead-node
    /// reaper).
    pub async fn start(config: MasterConfig) -> Result<Arc<Master>, String> {
        std::fs::create_dir_all(&config.mdir)
            .map_err(|e| format!("create --mdir {}: {e}", config.mdir.display()))?;
        let log_store = LogStore::open(&config.mdir)
            .map_err(|e| format!("open the Raft log in {}: {e}", config.mdir.display()))?;
        let state_machine = StateMachineStore::open(&config.mdir)
            .map_err(|e| format!("open the snapshot in {}: {e}", config.mdir.display()))?;
        let raft_config = Config {
            cluster_name: "kelp-master".into(),
            heartbeat_interval: config.raft_heartbeat_ms,
            election_timeout_min: config.raft_election_ms,
            election_timeout_max: config.raft_election_ms
                + config.raft_election_ms * ELECTION_TIMEOUT_SPREAD_PERCENT / 100,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(super::limits::SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: super::limits::LOG_KEPT_AFTER_SNAPSHOT,
            purge_batch_size: super::limits::PURGE_BATCH_ENTRIES,
            ..Config::default()
        }
        .validate()
        .map_err(|e| format!("raft config: {e}"))?;
        let client = HttpClient::new();
        let node_id = node_id_of(&config.self_address);
        let network = NetworkFactory {
            client: client.clone(),
        };
        let raft = MasterRaft::new(
            node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| format!("start raft: {e}"))?;
        let pulse = Duration::from_secs(config.pulse_seconds);
        let topology = Topology::new(config.volume_size_limit_bytes, pulse);
        // Below the followers' view of the lease (election_timeout_max): see quorum.rs.
        let lease_ms = config.raft_election_ms;
        let master = Arc::new(Master {
            config,
            node_id,
            raft,
            state_machine,
            client,
            topology: Mutex::new(topology),
            leases: Mutex::new(KeyLeases::default()),
            lease_refill: tokio::sync::Mutex::new(()),
            grow_lock: tokio::sync::Mutex::new(()),
            is_leader: AtomicBool::new(false),
            leader_since: Mutex::new(None),
            own_volume_ids_above: Mutex::new(None),
            counters: Counters::default(),
            vacuum: Default::default(),
            replication: Default::default(),
            quorum: QuorumView::new(lease_ms),
            membership_lock: tokio::sync::Mutex::new(()),
        });
        super::cluster::spawn_background(master.clone());
        Ok(master)
    }

    pub async fn stop(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!("master: raft shutdown: {error}");
        }
    }

    pub fn state(&self) -> MasterState {
        self.state_machine.state()
    }

    pub fn lock_topology(&self) -> std::sync::MutexGuard<'_, Topology> {
        self.topology.lock().expect("topology lock poisoned")
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, KeyLeases> {
        self.leases.lock().expect("lease lock poisoned")
    }

    /// Called when this master gains or loses leadership: leases and topology start over.
    pub fn reset_leader_state(&self, leading: bool) {
        self.lock_leases().ranges.clear();
        let mut topology = self.lock_topology();
        *topology = Topology::new(topology.volume_size_limit_bytes, topology.pulse);
        *self.leader_since.lock().expect("leader_since lock") = leading.then(Instant::now);
        self.replication.reset();
        *self
            .own_volume_ids_above
            .lock()
            .expect("own volume ids lock") = None;
    }

    /// Propose a command; only the leader can, and only with a quorum (else 503 after
    /// `PROPOSE_TIMEOUT_MS`).
    pub async fn propose(&self, command: Command) -> Result<CommandResult, MasterError> {
        let timeout = Duration::from_millis(PROPOSE_TIMEOUT_MS);
        let written = tokio::time::timeout(timeout, self.raft.client_write(command)).await;
        let Ok(written) = written else {
            return Err(super::quorum::leader_unavailable(
                self,
                &format!("raft did not commit within {PROPOSE_TIMEOUT_MS} ms"),
            ));
        };
        match written {
            Ok(response) => Ok(response.data),
            Err(error) => match error.forward_to_leader() {
                Some(_) => Err(MasterError::Unavailable(
                    "this master is not the leader".into(),
                )),
                None => Err(MasterError::Internal(format!("raft: {error}"))),
            },
        }
    }

    /// `count` contiguous keys from the leases, leasing more from Raft when they run out.
    async fn take_keys(self: &Arc<Self>, count: u64) -> Result<u64, MasterError> {
        for _ in 0..4 {
            {
                let mut leases = self.lock_leases();
                if let Some(first) = leases.take(count) {
                    if leases.remaining() < KEY_LEASE_LOW_WATER && !leases.refilling {
                        leases.refilling = true;
                        let master = self.clone();
                        tokio::spawn(async move {
                            if let Err(error) = master.refill_leases(KEY_LEASE_COUNT).await {
                                tracing::warn!("master: background key lease: {}", error.message());
                            }
                            master.lock_leases().refilling = false;
                        });
                    }
                    return Ok(first);
                }
            }
            self.refill_leases(count).await?;
        }
        Err(MasterError::Unavailable("could not lease file keys".into()))
    }

    /// Lease at least `count` more keys through Raft (one proposal at a time).
    async fn refill_leases(&self, count: u64) -> Result<(), MasterError> {
        let _one_at_a_time = self.lease_refill.lock().await;
        let at_least = {
            let leases = self.lock_leases();
            let enough = leases.ranges.iter().any(|(f, e)| e - f >= count);
            if enough && leases.remaining() >= KEY_LEASE_LOW_WATER {
                return Ok(());
            }
            leases.floor + 1
        };
        let lease_count = count.max(KEY_LEASE_COUNT);
        let command = Command::LeaseKeys {
            count: lease_count,
            at_least,
        };
        match self.propose(command).await? {
            CommandResult::Keys { first, end } => {
                assert!(end - first == lease_count && first >= at_least);
                // Kept even if leadership was lost meanwhile: the range is committed as ours,
                // so no other leader will ever hand out these keys.
                self.lock_leases().ranges.push_back((first, end));
                Ok(())
            }
            other => Err(MasterError::Internal(format!(
                "raft answered a key lease with {other:?}"
            ))),
        }
    }

    /// A heartbeat reported `max_file_key`: never hand out a key at or below it.
    pub fn raise_key_floor(&self, max_file_key: u64) {
        let mut leases = self.lock_leases();
        if max_file_key <= leases.floor {
            return;
        }
        leases.floor = max_file_key;
        leases.ranges.retain(|(first, _)| *first > max_file_key);
    }

    /// Assign `count` keys in a writable volume of the layout, growing volumes when none fits.
    pub async fn assign(
        self: &Arc<Self>,
        options: &AssignOptions,
        count: u64,
    ) -> Result<Assignment, MasterError> {
        assert!(
            (1..=ASSIGN_COUNT_MAX).contains(&count),
            "assign count {count}"
        );
        self.counters
            .assign_requests
            .fetch_add(1, Ordering::Relaxed);
        let picked = self.pick(options);
        let (volume_id, location) = match picked {
            Some(picked) => picked,
            None => {
                self.check_warmed_up()?;
                self.grow(options, grow_batch(options.key.placement), true)
                    .await?;
                self.pick(options).ok_or_else(|| {
                    MasterError::NotAcceptable("no writable volume after growing".into())
                })?
            }
        };
        let key = self.take_keys(count).await?;
        // Key 0 is never handed out, and volume ids start at 1.
        assert!(key > 0 && volume_id > 0);
        self.counters
            .assigned_keys
            .fetch_add(count, Ordering::Relaxed);
        let cookie: u32 = rand::random();
        let fid = FileId {
            volume_id,
            key,
            cookie,
        };
        Ok(Assignment {
            fid: fid.to_string(),
            location,
            count,
        })
    }

    /// Whether `assign(options, 1)` would succeed now, without assigning or growing anything:
    /// this master leads, and a writable volume fits the options, or one may be grown (no
    /// warm-up wait, and servers with free slots fit the placement).
    pub fn can_assign(&self, options: &AssignOptions) -> bool {
        if !self.is_leader.load(Ordering::Acquire) {
            return false;
        }
        self.pick(options).is_some()
            || (self.check_warmed_up().is_ok() && self.plan_volumes(options, 1).is_ok())
    }

    fn pick(&self, options: &AssignOptions) -> Option<(u32, Location)> {
        self.lock_topology()
            .pick_writable(&options.key, &options.data_center, &options.rack)
    }

    /// Right after an election the topology is empty until the volume servers heartbeat to
    /// the new leader; growing then would create volumes the cluster does not need. So for
    /// 1.5 pulses, while Raft knows of volume ids no heartbeat has reported yet, answer 503.
    /// Ids this leader allocated itself are not waited for (a fresh cluster never waits).
    fn check_warmed_up(&self) -> Result<(), MasterError> {
        let since = *self.leader_since.lock().expect("leader_since lock");
        let warm_up = Duration::from_millis(self.config.pulse_seconds * 1500);
        let own_above = *self
            .own_volume_ids_above
            .lock()
            .expect("own volume ids lock");
        let earlier_ids_max = own_above.unwrap_or_else(|| self.state().max_volume_id);
        let unreported = earlier_ids_max > self.lock_topology().max_known_volume_id();
        match since {
            Some(since) if unreported && since.elapsed() < warm_up => Err(
                MasterError::Unavailable("the leader is new and waits for heartbeats".into()),
            ),
            _ => Ok(()),
        }
    }

    /// Create up to `count` volumes of the layout on nodes chosen by its placement.
    /// `only_if_none` makes it a no-op when a writable volume appeared meanwhile.
    pub async fn grow(
        self: &Arc<Self>,
        options: &AssignOptions,
        count: u32,
        only_if_none: bool,
    ) -> Result<u32, MasterError> {
        let _one_grow_at_a_time = self.grow_lock.lock().await;
        if only_if_none && self.pick(options).is_some() {
            return Ok(0);
        }
        let plans = self.plan_volumes(options, count)?;
        let collection = &options.key.collection;
        if !collection.is_empty() && !self.state().collections.contains(collection) {
            let name = collection.clone();
            self.propose(Command::AddCollection { name }).await?;
        }
        self.own_volume_ids_above
            .lock()
            .expect("own volume ids lock")
            .get_or_insert_with(|| self.state().max_volume_id);
        let ids = match self
            .propose(Command::NextVolumeIds {
                count: plans.len() as u32,
            })
            .await?
        {
            CommandResult::VolumeIds { first, end } => first..end,
            other => return Err(MasterError::Internal(format!("raft answered {other:?}"))),
        };
        assert_eq!(ids.len(), plans.len());
        let mut grown = 0;
        let mut last_error = String::new();
        for (volume_id, nodes) in ids.zip(plans) {
            match self.create_volume(volume_id, &nodes, options).await {
                Ok(()) => grown += 1,
                Err(error) => last_error = error,
            }
        }
        self.counters
            .volumes_grown
            .fetch_add(u64::from(grown), Ordering::Relaxed);
        if grown == 0 {
            return Err(MasterError::Internal(format!("grow volumes: {last_error}")));
        }
        Ok(grown)
    }

    /// Choose nodes for `count` new volumes; at least one or a 406.
    fn plan_volumes(
        &self,
        options: &AssignOptions,
        count: u32,
    ) -> Result<Vec<Vec<String>>, MasterError> {
        assert!(count > 0);
        let topology = self.lock_topology();
        let mut slots = topology.node_slots();
        let mut plans = Vec::new();
        let seed: u64 = rand::random();
        for index in 0..count {
            let placement = options.key.placement;
            let planned = plan_placement(
                &slots,
                placement,
                &options.data_center,
                &options.rack,
                seed.wrapping_add(u64::from(index)),
            );
            let Ok(nodes) = planned else { break };
            assert_eq!(nodes.len(), placement.copy_count());
            for slot in slots.iter_mut().filter(|s| nodes.contains(&s.url)) {
                slot.free -= 1;
            }
            plans.push(nodes);
        }
        if plans.is_empty() {
            let nodes = topology.nodes.len();
            let message = match topology.node_slots().is_empty() && nodes > 0 {
                true => format!(
                    "{NOT_ENOUGH_NODES} No volume server has a free volume slot: each of the \
                     {nodes} holds its --max, or with --max 0 its disk has no room for another \
                     volume (or is full), and no writable volume is left"
                ),
                false => NOT_ENOUGH_NODES.to_string(),
            };
            return Err(MasterError::NotAcceptable(message));
        }
        Ok(plans)
    }

    /// Create one volume on every node of `nodes`; on a failure the created copies are dropped.
    async fn create_volume(
        &self,
        volume_id: u32,
        nodes: &[String],
        options: &AssignOptions,
    ) -> Result<(), String> {
        let key = &options.key;
        let query = format!(
            "volume={volume_id}&collection={}&replication={}&ttl={}",
            key.collection, key.placement, key.ttl
        );
        let mut created: Vec<(String, u16)> = Vec::new();
        for node in nodes {
            let url = format!("http://{node}/admin/volume/create?{query}");
            let port = match self.admin_call(&url).await {
                Ok(body) => {
                    let port = created_volume_port(&url, &body);
                    // A 2xx answer made the volume there: on a failure it is dropped too.
                    created.push((node.clone(), port.as_ref().map_or(0, |p| *p)));
                    port
                }
                Err(error) => Err(error),
            };
            if let Err(error) = port {
                for (done, _) in &created {
                    let url = format!("http://{done}/admin/volume/delete?volume={volume_id}");
                    if let Err(failure) = self.admin_call(&url).await {
                        tracing::warn!("master: drop half-created volume {volume_id}: {failure}");
                    }
                }
                tracing::warn!("master: create volume {volume_id}: {error}");
                return Err(error);
            }
        }
        let now = Instant::now();
        let mut topology = self.lock_topology();
        for (node, port) in created {
            assert_ne!(port, 0, "every created replica has its port");
            let report = VolumeReport {
                id: volume_id,
                port,
                size: 0,
                collection: key.collection.clone(),
                file_count: 0,
                delete_count: 0,
                deleted_byte_count: 0,
                read_only: false,
                replica_placement: key.placement,
                ttl: key.ttl,
                compact_revision: 0,
                modified_at_second: 0,
            };
            topology.add_pending_volume(&node, report, now);
        }
        tracing::info!("master: created volume {volume_id} on {nodes:?}");
        Ok(())
    }

    /// POST an admin call to a volume server; the body of a 2xx answer, else an error text.
    pub async fn admin_call(&self, url: &str) -> Result<bytes::Bytes, String> {
        let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
        let token = super::guard::admin_authorization(self, url);
        let headers: Vec<(&str, &str)> = token
            .iter()
            .map(|t| ("authorization", t.as_str()))
            .collect();
        let reply = self
            .client
            .call(
                hyper::Method::POST,
                url,
                &headers,
                bytes::Bytes::new(),
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&reply.status) {
            let text = String::from_utf8_lossy(&reply.body);
            return Err(format!("{url}: status {}: {text}", reply.status));
        }
        Ok(reply.body)
    }

    /// Drop every volume of `collection` on every node that holds it.
    pub async fn delete_collection(&self, collection: &str) -> Result<(), MasterError> {
        let volumes = self.lock_topology().collection_volumes(collection);
        let known = self.state().collections.contains(collection);
        if volumes.is_empty() && !known {
            // SeaweedFS's answer, word for word.
            return Err(MasterError::BadRequest(format!(
                "collection {collection} does not exist"
            )));
        }
        let mut failures = BTreeMap::new();
        for (volume_id, nodes) in &volumes {
            for node in nodes {
                let url = format!("http://{node}/admin/volume/delete?volume={volume_id}");
                if let Err(error) = self.admin_call(&url).await {
                    failures.insert(format!("{volume_id}@{node}"), error);
                }
            }
        }
        self.lock_topology().remove_collection(collection);
        if known {
            let name = collection.to_string();
            self.propose(Command::DeleteCollection { name }).await?;
        }
        if !failures.is_empty() {
            return Err(MasterError::Internal(format!(
                "deleting collection {collection:?} failed on: {failures:?}"
            )));
        }
        Ok(())
    }

    /// The leader's address, if one is known.
    pub fn leader_address(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let membership = metrics.membership_config.membership();
        membership
            .get_node(&leader)
            .map(|n: &BasicNode| n.addr.clone())
    }

    /// Ids of the voting members of the Raft membership (empty before the cluster formed).
    pub fn voter_ids(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().voter_ids().collect()
    }

    /// Addresses of the voting members (empty before the cluster formed).
    pub fn voter_addresses(&self) -> Vec<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone()))
            .collect()
    }

    /// Every other master this one knows: the members and the `--peers`, without itself.
    pub fn other_masters(&self) -> Vec<String> {
        let mut others = self.member_addresses();
        others.extend(self.config.peers.iter().cloned());
        others.sort();
        others.dedup();
        others.retain(|a| *a != self.config.self_address);
        others
    }

    /// Addresses of every master in the Raft membership (or the configured peers before
    /// this master joined).
    pub fn member_addresses(&self) -> Vec<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let mut addresses: Vec<String> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(_, n)| n.addr.clone())
            .collect();
        if addresses.is_empty() {
            addresses = self.config.peers.clone();
        }
        addresses.sort();
        addresses
    }
}

/// The port a volume server's `/admin/volume/create` answer names for the new volume (the
/// owner core's port, given out from the first assignment on). An answer without one is an
/// error: taking it for port 0 would send clients to the wrong port.
fn created_volume_port(url: &str, body: &[u8]) -> Result<u16, String> {
    let bad = |what: &str| {
        let text = String::from_utf8_lossy(body);
        format!("{url}: answer {text:?} {what}")
    };
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(&format!("is not JSON: {e}")))?;
    let port = answer.get("port").ok_or_else(|| bad("has no port"))?;
    port.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("has a port that is not 1..=65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the port of a created volume is read from the answer, and an answer without a
    // usable port is an error naming the volume server and the answer (it used to be 0).
    #[test]
    fn created_volume_port_is_required() {
        let url = "http://v:8080/admin/volume/create?volume=3";
        assert_eq!(
            created_volume_port(url, br#"{"volume":3,"port":8081}"#),
            Ok(8081)
        );
        let cases: [(&[u8], &str); 5] = [
            (br#"{"volume":3}"#, "has no port"),
            (br#"{"port":0}"#, "not 1..=65535"),
            (br#"{"port":"x"}"#, "not 1..=65535"),
            (br#"{"port":70000}"#, "not 1..=65535"),
            (b"<html>", "is not JSON"),
        ];
        for (body, reason) in cases {
            let error = created_volume_port(url, body).unwrap_err();
            assert!(error.starts_with(url) && error.contains(reason), "{error}");
        }
    }

    // Proves contiguous key takes, dropping of too-short ranges, and the heartbeat floor.
    #[test]
    fn key_leases_hand_out_each_key_once() {
        let mut leases = KeyLeases::default();
        leases.ranges.push_back((1, 11));
        leases.ranges.push_back((20, 30));
        assert_eq!(leases.take(4), Some(1));
        assert_eq!(leases.take(4), Some(5));
        assert_eq!(
            leases.take(4),
            Some(20),
            "2 keys left in the first range are skipped"
        );
        assert_eq!(leases.remaining(), 6);
        assert_eq!(leases.take(7), None);
        assert!(leases.ranges.is_empty());
    }
}
