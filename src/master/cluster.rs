//! The master cluster at run time: background tasks (forming the cluster, following
//! leadership and the lease, probing the other masters, dropping dead volume servers) and the
//! cluster endpoints (`/cluster/join`, `/cluster/raft/add|remove`, `/cluster/watch`).
//! Forming and membership changes are in [`super::membership`], the lease in [`super::quorum`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::http::{HttpResponse, json, master_error};
use super::limits::{LEADER_WATCH_POLL_MS, LEADER_WATCH_WAIT_MS_MAX};
use super::membership::{self, Change};
use super::node::{Master, MasterError};
use super::params::Query;

pub fn spawn_background(master: Arc<Master>) {
    tokio::spawn(membership::bootstrap(master.clone()));
    tokio::spawn(watch_leadership(master.clone()));
    tokio::spawn(super::quorum::probe_peers(master.clone()));
    tokio::spawn(super::vacuum::auto_vacuum(master.clone()));
    tokio::spawn(super::replication::auto_fix(master.clone()));
    tokio::spawn(reap_dead_nodes(master));
}

/// On the leader: add the master at `address` as a voter (`POST /cluster/join`).
pub async fn join(master: &Master, address: &str) -> Result<(), MasterError> {
    let change = Change::Add {
        address: address.to_string(),
        voter: true,
    };
    membership::change(master, change).await.map(|_| ())
}

/// `POST /cluster/raft/add?address=H:P[&voter=false]` and `/cluster/raft/remove?address=H:P`
/// (on the leader): apply the change; the members afterwards.
pub async fn raft_change(master: &Master, path: &str, query: &Query) -> HttpResponse {
    let address = query.text("address").to_string();
    let change = if path.ends_with("/add") {
        let voter = match query.text("voter") {
            "" | "true" | "1" => true,
            "false" | "0" => false,
            other => {
                let message = format!("voter must be true or false, not {other:?}");
                return master_error(&MasterError::BadRequest(message));
            }
        };
        Change::Add { address, voter }
    } else {
        Change::Remove { address }
    };
    match membership::change(master, change.clone()).await {
        Ok(members) => {
            let answer = serde_json::json!({ "Done": change.to_string(), "Members": members });
            json(200, &answer, query.is_pretty())
        }
        Err(failure) => master_error(&failure),
    }
}

/// The leader this master would send a client to now: itself while its lease holds, else the
/// leader it knows if that one answers probes, else "" (none).
pub fn usable_leader(master: &Master) -> String {
    if master.is_leader.load(Ordering::Acquire) {
        if master.quorum.lease_holds() {
            return master.config.self_address.clone();
        }
        return String::new();
    }
    match master.leader_address() {
        Some(leader)
            if leader != master.config.self_address && master.quorum.is_reachable(&leader) =>
        {
            leader
        }
        _ => String::new(),
    }
}

/// Run `call` (a request forwarded to `leader`) until it ends, or until `leader` is no longer
/// the leader this master knows, or a probe found it unreachable (None): a forwarded request
/// never waits out its whole timeout on a leader that died or was cut off.
pub async fn while_leader<T>(
    master: &Master,
    leader: &str,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    if master.quorum.is_known_unreachable(leader) {
        return None;
    }
    let mut metrics = master.raft.metrics();
    tokio::pin!(call);
    loop {
        tokio::select! {
            result = &mut call => return Some(result),
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(LEADER_WATCH_POLL_MS)) => {}
        }
        let known = master.leader_address();
        if known.as_deref() != Some(leader) || master.quorum.is_known_unreachable(leader) {
            return None;
        }
    }
}

/// `GET /cluster/watch?leader=ADDR&wait_ms=N`, answered by every master itself: returns as
/// soon as the leader it would name ([`usable_leader`]) is not ADDR, or after N ms. A volume
/// server waits here between heartbeats, so it hears of a lost leader (or of a new one)
/// within a few milliseconds instead of a pulse later.
pub async fn watch(master: &Master, query: &Query) -> HttpResponse {
    let believed = query.text("leader").to_string();
    let wait_ms = match query.count("wait_ms", 0, LEADER_WATCH_WAIT_MS_MAX) {
        Ok(wait_ms) => wait_ms,
        Err(message) => return master_error(&MasterError::BadRequest(message)),
    };
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut metrics = master.raft.metrics();
    let leader = loop {
        let leader = usable_leader(master);
        if leader != believed || Instant::now() >= deadline {
            break leader;
        }
        let poll = Duration::from_millis(LEADER_WATCH_POLL_MS);
        let next = deadline.min(Instant::now() + poll);
        tokio::select! {
            _ = metrics.changed() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    };
    let answer = serde_json::json!({ "Leader": leader, "Changed": leader != believed });
    json(200, &answer, false)
}

/// Track leadership changes and the lease: a master that becomes leader starts with a fresh
/// topology and no key leases (the volume servers heartbeat to it and it leases new ranges).
async fn watch_leadership(master: Arc<Master>) {
    let mut metrics = master.raft.metrics();
    loop {
        let (leading, quorum_ack) = {
            let now = metrics.borrow_and_update();
            let leading =
                now.state == ServerState::Leader && now.current_leader == Some(master.node_id);
            (leading, now.millis_since_quorum_ack.filter(|_| leading))
        };
        master.quorum.note_quorum_ack(quorum_ack);
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
