//! The master's Raft group: type configuration, the replicated commands, and the storage and
//! network that openraft runs on.
//!
//! Replicated state ([`state_machine::MasterState`]): the largest volume id, the file-key
//! high-water mark (every key below it may have been handed out by some leader) and the
//! collections. Keys are leased in ranges: a leader commits `LeaseKeys` and then hands out the
//! keys of the range from memory. A range is applied in log order, so a later leader's range
//! always starts above every range an earlier leader could have used: no fid repeats, across
//! restarts and failovers.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Types of the master's Raft group.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
);

pub type NodeId = u64;
pub type MasterRaft = openraft::Raft<TypeConfig>;
pub type Node = openraft::BasicNode;

/// A change to the replicated master state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Reserve `count` file keys, starting at or above `at_least`.
    LeaseKeys {
        count: u64,
        at_least: u64,
    },
    /// Allocate `count` new volume ids.
    NextVolumeIds {
        count: u32,
    },
    /// A heartbeat reported a volume id; later allocations start above it.
    RaiseVolumeId {
        at_least: u32,
    },
    AddCollection {
        name: String,
    },
    DeleteCollection {
        name: String,
    },
}

/// The answer of an applied [`Command`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    #[default]
    Done,
    /// Keys `first..end` are now owned by the proposer.
    Keys { first: u64, end: u64 },
    /// Volume ids `first..end` are now owned by the proposer.
    VolumeIds { first: u32, end: u32 },
}

/// The Raft node id of a master: a stable hash (FNV-1a 64) of its advertised `host:port`, so
/// every master derives the same id for a peer from the `--peers` list alone.
pub fn node_id_of(address: &str) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in address.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves node ids are stable and distinct for the peer addresses of a typical cluster.
    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = node_id_of("localhost:9333");
        let b = node_id_of("localhost:9334");
        assert_eq!(a, node_id_of("localhost:9333"));
        assert_ne!(a, b);
    }
}
