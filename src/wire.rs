//! The messages volume servers send the master, defined once for both ends: the heartbeat
//! (`POST /heartbeat` on the master, every pulse) and the volumes it carries. Fields a sender
//! may leave out default, so an older or partial heartbeat still parses.

use serde::{Deserialize, Serialize};

/// A volume server's heartbeat: where it is, how many volumes it may hold, and its volumes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub ip: String,
    pub port: u16,
    #[serde(default)]
    pub public_url: String,
    #[serde(default)]
    pub data_center: String,
    #[serde(default)]
    pub rack: String,
    #[serde(default)]
    pub max_volume_count: u32,
    #[serde(default)]
    pub max_file_key: u64,
    #[serde(default)]
    pub volumes: Vec<VolumeReport>,
}

/// One volume as a heartbeat and the status pages report it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeReport {
    pub id: u32,
    /// Port of the volume server's core that owns the volume (0: its main port).
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub collection: String,
    #[serde(default)]
    pub file_count: u64,
    #[serde(default)]
    pub delete_count: u64,
    #[serde(default)]
    pub deleted_byte_count: u64,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub replica_placement: String,
    #[serde(default)]
    pub ttl: String,
    #[serde(default)]
    pub compact_revision: u16,
}

impl VolumeReport {
    /// The volume in SeaweedFS's status JSON (`/status` of a volume server, the volume lists
    /// of the master's `/dir/status`).
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "Id": self.id, "Size": self.size, "Collection": self.collection,
            "FileCount": self.file_count, "DeleteCount": self.delete_count,
            "DeletedByteCount": self.deleted_byte_count, "ReadOnly": self.read_only,
            "ReplicaPlacement": self.replica_placement, "Ttl": self.ttl,
            "CompactRevision": self.compact_revision,
        })
    }
}
