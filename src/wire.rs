//! The messages volume servers send the master, defined once for both ends: the heartbeat
//! (`POST /heartbeat` on the master, every pulse) and the volumes it carries. Fields a sender
//! may leave out default, so an older or partial heartbeat still parses; a field that is
//! present but malformed (a TTL, a placement, a collection name) fails the decoding with an
//! error naming it. TTL and placement travel as canonical text and arrive parsed.

use kelp_engine::format::{ReplicaPlacement, Ttl, check_collection};
use serde::{Deserialize, Deserializer, Serialize};

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
    /// The server's gRPC port (SeaweedFS's volume gRPC); 0 when it serves none.
    #[serde(default)]
    pub grpc_port: u16,
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
    #[serde(default, deserialize_with = "collection_name")]
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
    pub replica_placement: ReplicaPlacement,
    #[serde(default)]
    pub ttl: Ttl,
    #[serde(default)]
    pub compact_revision: u16,
    /// When its files last changed, in seconds since the Unix epoch (SeaweedFS's
    /// `modified_at_second`: the `.dat`'s modification time when opened, or its newest write).
    #[serde(default)]
    pub modified_at_second: u64,
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
            "ModifiedAtSecond": self.modified_at_second,
        })
    }
}

/// `POST /admin/vacuum/check?volume=N` on a volume server: what a compaction of the volume
/// would give back.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VacuumCheck {
    pub volume: u32,
    /// Garbage bytes over the bytes after the superblock (0 for an empty volume).
    pub garbage_ratio: f64,
    pub garbage_bytes: u64,
    pub dat_bytes: u64,
    pub compact_revision: u16,
}

/// Where a volume's compaction is on its volume server.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CompactionPhase {
    /// No compaction of the volume runs (`last` tells how the latest one ended).
    Idle,
    /// Live needles are being copied, or appends made meanwhile replayed.
    Copying,
    /// Copied; appends made meanwhile are replayed until the commit is asked for.
    Ready,
    /// The new files are replacing the old ones.
    Committing,
}

/// The answer of `/admin/vacuum/{compact,status,commit,cleanup}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CompactionStatus {
    pub volume: u32,
    pub phase: CompactionPhase,
    /// Record bytes written to the new `.dat` so far (copied and replayed).
    #[serde(default)]
    pub bytes_copied: u64,
    #[serde(default)]
    pub steps: u64,
    /// How the latest compaction of the volume ended, when one did since the start.
    #[serde(default)]
    pub last: Option<CompactionOutcome>,
}

/// How a compaction ended: committed (with its numbers) or failed (with the reason).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum CompactionOutcome {
    Committed(CompactionDone),
    Failed(String),
    /// Stopped by `/admin/vacuum/cleanup` before its commit.
    Cancelled,
}

/// What a committed compaction did.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CompactionDone {
    pub old_revision: u16,
    pub new_revision: u16,
    pub dat_bytes_before: u64,
    pub dat_bytes_after: u64,
    pub idx_bytes_before: u64,
    pub idx_bytes_after: u64,
    pub needles_after: u64,
    pub needles_expired: u64,
    /// Record bytes copied and replayed into the new files.
    pub bytes_copied: u64,
    /// How long the volume's writes and deletes were held for the commit.
    pub commit_pause_micros: u64,
    /// From the start of the copy to the end of the commit.
    pub elapsed_ms: u64,
}

/// A collection name, checked by the one rule as it is decoded.
fn collection_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    check_collection(&name).map_err(serde::de::Error::custom)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a volume report arrives with its TTL and placement parsed to canonical values
    // (`60m` is `1h`, `1` is `001`), and goes back out as canonical text.
    #[test]
    fn volume_report_carries_canonical_values() {
        let text = r#"{"id":3,"collection":"a_b","replicaPlacement":"1","ttl":"60m"}"#;
        let report: VolumeReport = serde_json::from_str(text).unwrap();
        assert_eq!(report.ttl, Ttl::parse("1h").unwrap());
        assert_eq!(
            report.replica_placement,
            ReplicaPlacement::parse("001").unwrap()
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            (json["ttl"].as_str(), json["replicaPlacement"].as_str()),
            (Some("1h"), Some("001"))
        );
        let absent: VolumeReport = serde_json::from_str(r#"{"id":4}"#).unwrap();
        assert_eq!(
            (absent.ttl, absent.replica_placement),
            (Ttl::EMPTY, ReplicaPlacement::default())
        );
    }

    // Proves a malformed TTL, placement or collection fails the decoding with an error that
    // names the bad value, instead of counting as "none".
    #[test]
    fn malformed_fields_are_errors() {
        for (field, value) in [
            ("ttl", "3x"),
            ("replicaPlacement", "9x9"),
            ("collection", "a b"),
        ] {
            let text = format!(r#"{{"id":3,"{field}":"{value}"}}"#);
            let error = serde_json::from_str::<VolumeReport>(&text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(value), "{field}: {error}");
        }
    }
}
