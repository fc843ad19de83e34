//! How masters find each other and who serves what.
//!
//! Bootstrap (as in SeaweedFS's three-master walk-through): a master with an empty Raft log
//! asks its peers for `/cluster/status`. If one names a leader, it asks that leader to join
//! (`POST /cluster/join`): the leader adds it as a learner, then as a voter. If no peer has a
//! leader and this master has the lowest address among the peers that answer, it waits a few
//! rounds and then starts a one-master cluster: the first master up leads and the others join.
//! A restarted master already has its log and simply rejoins its group.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::Deserialize;

use super::limits::{BOOTSTRAP_ALONE_ROUNDS, BOOTSTRAP_ROUND_MS};
use super::node::{Master, MasterError};
use super::raft::node_id_of;

pub fn spawn_background(master: Arc<Master>) {
    tokio::spawn(bootstrap(master.clone()));
    tokio::spawn(watch_leadership(master.clone()));
    tokio::spawn(reap_dead_nodes(master));
}

/// What a peer says about itself (`/cluster/status`).
#[derive(Deserialize)]
struct PeerStatus {
    #[serde(rename = "IsLeader", default)]
    _is_leader: bool,
    #[serde(rename = "Leader", default)]
    leader: String,
    #[serde(rename = "Initialized", default)]
    initialized: bool,
}

async fn peer_status(master: &Master, peer: &str) -> Option<PeerStatus> {
    let url = format!("http://{peer}/cluster/status");
    let timeout = Duration::from_millis(500);
    let reply = master
        .client
        .call(hyper::Method::GET, &url, &[], bytes::Bytes::new(), timeout)
        .await
        .ok()?;
    serde_json::from_slice(&reply.body).ok()
}

async fn bootstrap(master: Arc<Master>) {
    let others: Vec<String> = master
        .config
        .peers
        .iter()
        .filter(|p| **p != master.config.self_address)
        .cloned()
        .collect();
    let mut alone_rounds = 0;
    loop {
        match master.raft.is_initialized().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => {
                tracing::error!("master: raft stopped during bootstrap: {error}");
                return;
            }
        }
        let mut lowest_reachable = true;
        let mut leader = None;
        for peer in &others {
            if let Some(status) = peer_status(&master, peer).await {
                if !status.leader.is_empty() {
                    leader = Some(status.leader);
                } else if !status.initialized && peer < &master.config.self_address {
                    lowest_reachable = false;
                }
            }
        }
        if let Some(leader) = leader {
            alone_rounds = 0;
            if let Err(error) = ask_to_join(&master, &leader).await {
                tracing::info!("master: joining through {leader}: {error}");
            }
        } else if lowest_reachable {
            alone_rounds += 1;
            if alone_rounds >= BOOTSTRAP_ALONE_ROUNDS {
                start_new_cluster(&master).await;
            }
        } else {
            alone_rounds = 0;
        }
        tokio::time::sleep(Duration::from_millis(BOOTSTRAP_ROUND_MS)).await;
    }
}

async fn start_new_cluster(master: &Master) {
    let address = master.config.self_address.clone();
    tracing::info!("master: no other master leads; starting a new cluster at {address}");
    let mut members = std::collections::BTreeMap::new();
    members.insert(master.node_id, BasicNode { addr: address });
    if let Err(error) = master.raft.initialize(members).await {
        tracing::warn!("master: initialize: {error}");
    }
}

async fn ask_to_join(master: &Master, leader: &str) -> Result<(), String> {
    let url = format!("http://{leader}/cluster/join");
    let body = serde_json::json!({ "addr": master.config.self_address });
    let timeout = Duration::from_millis(super::limits::OUTBOUND_CALL_TIMEOUT_MS);
    let reply = master
        .client
        .post_json(&url, body.to_string().into_bytes(), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!(
            "status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    tracing::info!("master: joined the cluster led by {leader}");
    Ok(())
}

/// On the leader: add the master at `address` as a learner, then make it a voter.
pub async fn join(master: &Master, address: &str) -> Result<(), MasterError> {
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    if !port_ok {
        return Err(MasterError::BadRequest(format!(
            "join: {address:?} is not host:port"
        )));
    }
    let id = node_id_of(address);
    if master.voter_ids().contains(&id) {
        return Ok(());
    }
    let node = BasicNode {
        addr: address.to_string(),
    };
    let raft_error =
        |e: &dyn std::fmt::Display| MasterError::Unavailable(format!("join {address}: {e}"));
    master
        .raft
        .add_learner(id, node, true)
        .await
        .map_err(|e| raft_error(&e))?;
    let voters = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
    master
        .raft
        .change_membership(voters, false)
        .await
        .map_err(|e| raft_error(&e))?;
    tracing::info!("master: {address} joined as a voter");
    Ok(())
}

/// Track leadership changes: a master that becomes leader starts with a fresh topology and
/// no leases (the volume servers heartbeat to it and it leases new key ranges).
async fn watch_leadership(master: Arc<Master>) {
    let mut metrics = master.raft.metrics();
    loop {
        let leading = {
            let now = metrics.borrow_and_update();
            now.state == ServerState::Leader && now.current_leader == Some(master.node_id)
        };
        if leading != master.is_leader.load(Ordering::Acquire) {
            master.reset_leader_state(leading);
            master.is_leader.store(leading, Ordering::Release);
            tracing::info!(
                "master: {} {}",
                master.config.self_address,
                if leading {
                    "is the leader"
                } else {
                    "is not the leader"
                }
            );
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Drop volume servers that missed too many heartbeats.
async fn reap_dead_nodes(master: Arc<Master>) {
    let period = Duration::from_millis(master.config.pulse_seconds * 1000 / 2);
    loop {
        tokio::time::sleep(period).await;
        if !master.is_leader.load(Ordering::Acquire) {
            continue;
        }
        let dead = master.lock_topology().drop_dead_nodes(Instant::now());
        for url in dead {
            tracing::warn!("master: volume server {url} missed its heartbeats; dropped");
        }
    }
}
