//! Who belongs to the master cluster: forming it, listing it, changing it.
//!
//! Forming (static bootstrap): masters started with the same `--peers` form one cluster in
//! which every listed master votes. A master with an empty Raft log asks its peers for
//! `/cluster/status`; if none of them has a cluster yet, it initializes one with every listed
//! master as a voter. Any number of masters may do so at the same time: they all propose the
//! same membership, which openraft accepts as one cluster. A peer that already has a cluster
//! and lists this master means it only waits for the leader's log; a cluster that does not
//! list it (a master beyond the original list) is asked to add it (`POST /cluster/join`).
//! A restarted master has its log and never initializes again.
//!
//! Changing: on the leader, one change at a time (a lock), each retried while another change
//! is still under way, until it is applied or `MEMBERSHIP_CHANGE_TIMEOUT_MS` has passed. A
//! master is added as a learner first; once it has caught up with the log it becomes a voter.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::limits::{
    BOOTSTRAP_ROUND_MS, MEMBERSHIP_CHANGE_TIMEOUT_MS, MEMBERSHIP_RETRY_MS, PEER_PROBE_TIMEOUT_MS,
};
use super::node::{Master, MasterError};
use super::raft::{NodeId, node_id_of};

/// One master of the cluster as `/cluster/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    #[serde(rename = "Address")]
    pub address: String,
    /// "voter" or "learner".
    #[serde(rename = "Role")]
    pub role: String,
    #[serde(rename = "Reachable")]
    pub reachable: bool,
    #[serde(rename = "IsLeader")]
    pub is_leader: bool,
}

pub const VOTER: &str = "voter";
pub const LEARNER: &str = "learner";

/// Every member of the Raft membership this master knows, sorted by address.
pub fn members(master: &Master) -> Vec<MemberStatus> {
    let metrics = master.raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let mut listed: Vec<MemberStatus> = membership
        .nodes()
        .map(|(id, node)| {
            let own = node.addr == master.config.self_address;
            MemberStatus {
                address: node.addr.clone(),
                role: if voters.contains(id) { VOTER } else { LEARNER }.to_string(),
                reachable: own || master.quorum.is_reachable(&node.addr),
                is_leader: metrics.current_leader == Some(*id),
            }
        })
        .collect();
    listed.sort_by(|a, b| a.address.cmp(&b.address));
    listed
}

/// What a peer says about itself (the part of `/cluster/status` bootstrap needs).
#[derive(Deserialize)]
struct PeerStatus {
    #[serde(rename = "Initialized", default)]
    initialized: bool,
    #[serde(rename = "Members", default)]
    members: Vec<MemberStatus>,
}

async fn peer_status(master: &Master, peer: &str) -> Option<PeerStatus> {
    let url = format!("http://{peer}/cluster/status");
    let timeout = Duration::from_millis(PEER_PROBE_TIMEOUT_MS);
    let reply = master
        .client
        .call(hyper::Method::GET, &url, &[], bytes::Bytes::new(), timeout)
        .await
        .ok()?;
    serde_json::from_slice(&reply.body).ok()
}

/// The statuses of the `--peers` that answer, asked all at once.
async fn peer_statuses(master: &Arc<Master>) -> Vec<(String, PeerStatus)> {
    let mut asks = tokio::task::JoinSet::new();
    for peer in &master.config.peers {
        if *peer == master.config.self_address {
            continue;
        }
        let (master, peer) = (master.clone(), peer.clone());
        asks.spawn(async move { peer_status(&master, &peer).await.map(|s| (peer, s)) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok(Some(answer)) = joined {
            answers.push(answer);
        }
    }
    answers
}

/// Form the cluster or enter it (see the module comment); returns once this master has a
/// Raft log, and, when it asked to join, once it is a voter.
pub async fn bootstrap(master: Arc<Master>) {
    let own = master.config.self_address.clone();
    let mut asked_to_join = false;
    loop {
        let initialized = match master.raft.is_initialized().await {
            Ok(initialized) => initialized,
            Err(error) => {
                tracing::error!("master: raft stopped during bootstrap: {error}");
                return;
            }
        };
        let own_role = member_role(&members(&master), &own);
        if initialized && (!asked_to_join || own_role.as_deref() == Some(VOTER)) {
            return;
        }
        let peers = peer_statuses(&master).await;
        let formed: Vec<&(String, PeerStatus)> =
            peers.iter().filter(|(_, s)| s.initialized).collect();
        match formed.first() {
            None if !initialized => initialize(&master).await,
            None => {}
            Some((peer, status)) => {
                let listed = member_role(&status.members, &own);
                let wait_for_log = listed.as_deref() == Some(VOTER)
                    || (listed.as_deref() == Some(LEARNER) && !asked_to_join);
                if !wait_for_log {
                    asked_to_join = true;
                    if let Err(error) = ask_to_join(&master, peer).await {
                        tracing::info!("master: joining through {peer}: {error}");
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(BOOTSTRAP_ROUND_MS)).await;
    }
}

fn member_role(members: &[MemberStatus], address: &str) -> Option<String> {
    members
        .iter()
        .find(|m| m.address == address)
        .map(|m| m.role.clone())
}

/// Initialize Raft with every `--peers` master as a voter. Another master may have done it
/// with the same list first (its log then reaches us), so "not allowed" is no error.
async fn initialize(master: &Master) {
    let voters: BTreeMap<NodeId, BasicNode> = master
        .config
        .peers
        .iter()
        .map(|peer| (node_id_of(peer), BasicNode { addr: peer.clone() }))
        .collect();
    assert!(voters.contains_key(&master.node_id));
    let addresses: Vec<&String> = master.config.peers.iter().collect();
    match master.raft.initialize(voters).await {
        Ok(()) => tracing::info!("master: formed the cluster with voters {addresses:?}"),
        Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {
            tracing::info!("master: already initialized");
        }
        Err(error) => tracing::warn!("master: initialize with {addresses:?}: {error}"),
    }
}

async fn ask_to_join(master: &Master, through: &str) -> Result<(), String> {
    let url = format!("http://{through}/cluster/join");
    let body = serde_json::json!({ "addr": master.config.self_address });
    let timeout = Duration::from_millis(MEMBERSHIP_CHANGE_TIMEOUT_MS + 5_000);
    let reply = master
        .client
        .post_json(&url, body.to_string().into_bytes(), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        let text = String::from_utf8_lossy(&reply.body);
        return Err(format!("status {}: {text}", reply.status));
    }
    tracing::info!("master: joined the cluster (asked through {through})");
    Ok(())
}

/// A membership change an operator (or a joining master) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add { address: String, voter: bool },
    Remove { address: String },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { address, voter } => {
                let role = if *voter { VOTER } else { LEARNER };
                write!(f, "add {address} as a {role}")
            }
            Change::Remove { address } => write!(f, "remove {address}"),
        }
    }
}

/// Check that `address` is `host:port`.
pub fn check_address(address: &str) -> Result<(), MasterError> {
    let ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        return Err(MasterError::BadRequest(format!(
            "{address:?} is not a master address host:port"
        )));
    }
    Ok(())
}

/// Why one try of a change did not apply it.
enum Refusal {
    /// Another change is under way: try again.
    Busy(String),
    /// A final answer.
    Final(MasterError),
}

/// On the leader: apply `change`, one change at a time, retrying while another is under way;
/// the members afterwards.
pub async fn change(master: &Master, change: Change) -> Result<Vec<MemberStatus>, MasterError> {
    let address = match &change {
        Change::Add { address, .. } | Change::Remove { address } => address.clone(),
    };
    check_address(&address)?;
    let deadline = Instant::now() + Duration::from_millis(MEMBERSHIP_CHANGE_TIMEOUT_MS);
    let timed_out = |reason: &str| {
        MasterError::Unavailable(format!(
            "{change}: not applied within {MEMBERSHIP_CHANGE_TIMEOUT_MS} ms: {reason}"
        ))
    };
    let _one_at_a_time = tokio::time::timeout_at(deadline.into(), master.membership_lock.lock())
        .await
        .map_err(|_| timed_out("other membership changes held the cluster"))?;
    loop {
        let attempt = match &change {
            Change::Add { address, voter } => add(master, address, *voter, deadline).await,
            Change::Remove { address } => remove(master, address).await,
        };
        match attempt {
            Ok(()) => {
                tracing::info!("master: membership: {change}: done");
                return Ok(members(master));
            }
            Err(Refusal::Final(error)) => return Err(error),
            Err(Refusal::Busy(reason)) => {
                let retry = Duration::from_millis(MEMBERSHIP_RETRY_MS);
                if Instant::now() + retry >= deadline {
                    return Err(timed_out(&reason));
                }
                tracing::info!("master: membership: {change}: {reason}; trying again");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

/// Sort an openraft write error into "try again" and final answers.
fn refusal(change: &str, error: WriteError) -> Refusal {
    match &error {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => Refusal::Busy(format!("another membership change is under way ({error})")),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(_)) => Refusal::Final(
            MasterError::BadRequest(format!("{change}: refused: {error}")),
        ),
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Refusal::Final(
            MasterError::Unavailable(format!("{change}: this master stopped leading; retry")),
        ),
        RaftError::Fatal(_) => {
            Refusal::Final(MasterError::Internal(format!("{change}: raft: {error}")))
        }
    }
}

async fn add(
    master: &Master,
    address: &str,
    voter: bool,
    deadline: Instant,
) -> Result<(), Refusal> {
    let what = format!("add {address}");
    let id = node_id_of(address);
    let role = member_role(&members(master), address);
    match (role.as_deref(), voter) {
        (Some(VOTER), true) => return Ok(()),
        (Some(VOTER), false) => {
            return Err(Refusal::Final(MasterError::BadRequest(format!(
                "{address} is a voter; remove it first to add it back as a learner"
            ))));
        }
        // A learner already: done, or promoted below.
        (Some(_), false) => return Ok(()),
        (Some(_), true) => {}
        (None, _) => {
            let node = BasicNode {
                addr: address.to_string(),
            };
            let added = master.raft.add_learner(id, node, false).await;
            let log_index = added.map_err(|e| refusal(&what, e))?.log_id.index;
            if voter {
                wait_caught_up(master, id, address, log_index, deadline).await?;
            }
        }
    }
    if voter {
        let voters = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        let changed = master.raft.change_membership(voters, false).await;
        changed.map_err(|e| refusal(&what, e))?;
    }
    Ok(())
}

/// Wait until the leader has replicated its log up to `log_index` to the learner `id`.
async fn wait_caught_up(
    master: &Master,
    id: NodeId,
    address: &str,
    log_index: u64,
    deadline: Instant,
) -> Result<(), Refusal> {
    let left = deadline.saturating_duration_since(Instant::now());
    let caught_up = master
        .raft
        .wait(Some(left))
        .metrics(
            |metrics| {
                let matched = metrics.replication.as_ref().and_then(|r| r.get(&id));
                matched.is_some_and(|m| m.as_ref().is_some_and(|log| log.index >= log_index))
            },
            "the new learner to catch up",
        )
        .await;
    caught_up.map(|_| ()).map_err(|_| {
        Refusal::Final(MasterError::Unavailable(format!(
            "{address} was added as a learner but did not catch up with the log within \
             {MEMBERSHIP_CHANGE_TIMEOUT_MS} ms (is it running, and does it reach the leader?); \
             it stays a learner: add it again to make it a voter"
        )))
    })
}

async fn remove(master: &Master, address: &str) -> Result<(), Refusal> {
    let what = format!("remove {address}");
    let id = node_id_of(address);
    let listed = members(master);
    let changes = match member_role(&listed, address).as_deref() {
        None => return Ok(()),
        Some(VOTER) => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
        Some(_) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
    };
    let voters = listed.iter().filter(|m| m.role == VOTER).count();
    if voters == 1 && member_role(&listed, address).as_deref() == Some(VOTER) {
        return Err(Refusal::Final(MasterError::BadRequest(format!(
            "{address} is the only voter; a cluster needs at least one"
        ))));
    }
    let changed = master.raft.change_membership(changes, false).await;
    changed.map(|_| ()).map_err(|e| refusal(&what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves addresses are checked before any change and changes name themselves clearly.
    #[test]
    fn addresses_are_checked_and_changes_named() {
        assert!(check_address("10.0.0.1:9333").is_ok());
        assert!(check_address("localhost:9333").is_ok());
        for bad in ["", "nohost", ":9333", "h:", "h:99999", "h:x"] {
            let error = check_address(bad).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            assert!(error.message().contains("host:port"), "{bad}");
        }
        let add = Change::Add {
            address: "h:1".into(),
            voter: false,
        };
        assert_eq!(add.to_string(), "add h:1 as a learner");
        let remove = Change::Remove {
            address: "h:1".into(),
        };
        assert_eq!(remove.to_string(), "remove h:1");
    }

    // Proves the members' JSON has the field names /cluster/status documents.
    #[test]
    fn member_json_shape() {
        let member = MemberStatus {
            address: "127.0.0.1:9333".into(),
            role: VOTER.into(),
            reachable: true,
            is_leader: false,
        };
        assert_eq!(
            serde_json::to_string(&member).unwrap(),
            r#"{"Address":"127.0.0.1:9333","Role":"voter","Reachable":true,"IsLeader":false}"#
        );
    }
}
