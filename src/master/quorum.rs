//! Whether this master may act as the leader (its lease), which masters answer (probes), and
//! the 503 answers that say why no leader serves.
//!
//! The lease: an openraft follower refuses to vote for anyone until the leader's lease
//! (`election_timeout_max`, 1.2 E with E = `--raft-election-ms`) has passed since the last
//! heartbeat reached it, and the leader learns when a quorum last acknowledged a heartbeat it
//! *sent* (`millis_since_quorum_ack`). So while less than E has passed since then, no other
//! master can have been elected, and this leader hands out fids and takes heartbeats. Past
//! that it answers 503 "no quorum" until a quorum answers again or it learns of a new leader:
//! a leader cut off from the others stops within E, before a new one can start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::limits::{PEER_PROBE_INTERVAL_MS, PEER_PROBE_TIMEOUT_MS};
use super::node::{Master, MasterError};

/// `quorum_acked_ms` when this master is not leading, or no quorum acknowledged it yet.
const NEVER: i64 = i64::MIN;

pub struct QuorumView {
    epoch: Instant,
    lease_ms: u64,
    /// When a quorum last acknowledged this leader, in ms since `epoch` (negative: before
    /// it), or `NEVER`.
    quorum_acked_ms: AtomicI64,
    /// For each other master: did it answer the last probe?
    reachable: Mutex<BTreeMap<String, bool>>,
}

/// How many voters there are, how many answer, how many make a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumFacts {
    pub voters: usize,
    pub reachable_voters: usize,
    pub needed: usize,
}

impl QuorumFacts {
    pub fn has_quorum(&self) -> bool {
        self.voters > 0 && self.reachable_voters >= self.needed
    }
}

impl std::fmt::Display for QuorumFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let QuorumFacts {
            voters,
            reachable_voters,
            needed,
        } = self;
        if voters == &0 {
            return f.write_str("the cluster is not formed yet (no voting masters)");
        }
        let quorum = if self.has_quorum() {
            "a quorum"
        } else {
            "no quorum"
        };
        write!(
            f,
            "{quorum}: {reachable_voters} of {voters} voting masters reachable, {needed} needed"
        )
    }
}

impl QuorumView {
    pub fn new(lease_ms: u64) -> QuorumView {
        assert!(lease_ms > 0);
        QuorumView {
            epoch: Instant::now(),
            lease_ms,
            quorum_acked_ms: AtomicI64::new(NEVER),
            reachable: Mutex::new(BTreeMap::new()),
        }
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// What openraft reported: leading, with a quorum ack `millis_since` ago (None: not
    /// leading, or not acknowledged yet).
    pub fn note_quorum_ack(&self, millis_since: Option<u64>) {
        let acked = match millis_since {
            Some(millis) => self.now_ms() - millis.min(i64::MAX as u64 / 2) as i64,
            None => NEVER,
        };
        self.quorum_acked_ms.store(acked, Ordering::Release);
    }

    /// Milliseconds since a quorum last acknowledged this leader (None: never, or not leading).
    pub fn since_quorum_ack_ms(&self) -> Option<u64> {
        let acked = self.quorum_acked_ms.load(Ordering::Acquire);
        (acked != NEVER).then(|| (self.now_ms() - acked).max(0) as u64)
    }

    /// Is the leader lease still running?
    pub fn lease_holds(&self) -> bool {
        self.since_quorum_ack_ms()
            .is_some_and(|since| since < self.lease_ms)
    }

    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    pub fn note_probe(&self, address: &str, answered: bool) {
        let mut reachable = self.reachable.lock().expect("reachable lock poisoned");
        reachable.insert(address.to_string(), answered);
    }

    /// Did the last probe of `address` go unanswered? (False when it was never probed.)
    pub fn is_known_unreachable(&self, address: &str) -> bool {
        let reachable = self.reachable.lock().expect("reachable lock poisoned");
        reachable.get(address) == Some(&false)
    }

    /// Did `address` answer its last probe? (Unprobed masters count as unreachable.)
    pub fn is_reachable(&self, address: &str) -> bool {
        let reachable = self.reachable.lock().expect("reachable lock poisoned");
        reachable.get(address).copied().unwrap_or(false)
    }
}

/// Voters, reachable voters (this master counts if it votes) and the quorum size.
pub fn quorum_facts(master: &Master) -> QuorumFacts {
    let voters = master.voter_addresses();
    let reachable_voters = voters
        .iter()
        .filter(|a| **a == master.config.self_address || master.quorum.is_reachable(a))
        .count();
    QuorumFacts {
        voters: voters.len(),
        reachable_voters,
        needed: voters.len() / 2 + 1,
    }
}

/// On the leader: Ok while the lease holds, else 503 saying there is no quorum.
pub fn check_lease(master: &Master) -> Result<(), MasterError> {
    if master.quorum.lease_holds() {
        return Ok(());
    }
    let since = match master.quorum.since_quorum_ack_ms() {
        Some(ms) => format!("for {ms} ms"),
        None => "since it was elected".to_string(),
    };
    Err(MasterError::Unavailable(format!(
        "no quorum: the leader {} has had no answer from a majority of the masters {since} \
         (its lease is {} ms), so it hands out no file ids; {}",
        master.config.self_address,
        master.quorum.lease_ms(),
        quorum_facts(master)
    )))
}

/// 503 for a request no leader can serve now: `what` happened, and the quorum as this
/// master sees it.
pub fn leader_unavailable(master: &Master, what: &str) -> MasterError {
    let facts = quorum_facts(master);
    let outlook = if facts.has_quorum() {
        "; a leader is being elected, retry shortly"
    } else {
        ""
    };
    MasterError::Unavailable(format!("{what}; {facts}{outlook}"))
}

/// Ask every other master for `/cluster/status` each `PEER_PROBE_INTERVAL_MS`; remember who
/// answered.
pub async fn probe_peers(master: Arc<Master>) {
    let timeout = Duration::from_millis(PEER_PROBE_TIMEOUT_MS);
    loop {
        let mut probes = tokio::task::JoinSet::new();
        for address in master.other_masters() {
            let master = master.clone();
            probes.spawn(async move {
                let url = format!("http://{address}/cluster/status");
                let answer = master
                    .client
                    .call(hyper::Method::GET, &url, &[], bytes::Bytes::new(), timeout)
                    .await;
                let answered = answer.is_ok_and(|reply| reply.status == 200);
                master.quorum.note_probe(&address, answered);
            });
        }
        while probes.join_next().await.is_some() {}
        tokio::time::sleep(Duration::from_millis(PEER_PROBE_INTERVAL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the lease holds only while the last quorum ack is younger than the lease, and
    // that "not leading" (None) ends it at once.
    #[test]
    fn lease_follows_the_quorum_ack() {
        let view = QuorumView::new(1000);
        assert!(!view.lease_holds(), "no ack yet");
        view.note_quorum_ack(Some(0));
        assert!(view.lease_holds());
        view.note_quorum_ack(Some(5000));
        assert!(!view.lease_holds(), "acked 5 s ago");
        view.note_quorum_ack(Some(10));
        assert!(view.lease_holds());
        view.note_quorum_ack(None);
        assert!(!view.lease_holds(), "stepped down");
        assert_eq!(view.since_quorum_ack_ms(), None);
    }

    // Proves the quorum arithmetic and the words of the answer.
    #[test]
    fn quorum_facts_say_what_is_missing() {
        let five = |reachable| QuorumFacts {
            voters: 5,
            reachable_voters: reachable,
            needed: 3,
        };
        assert!(five(3).has_quorum());
        assert!(!five(2).has_quorum());
        assert_eq!(
            five(2).to_string(),
            "no quorum: 2 of 5 voting masters reachable, 3 needed"
        );
        assert!(five(4).to_string().starts_with("a quorum: 4 of 5"));
        let none = QuorumFacts {
            voters: 0,
            reachable_voters: 0,
            needed: 1,
        };
        assert!(!none.has_quorum());
        assert!(none.to_string().contains("not formed"));
    }
}
