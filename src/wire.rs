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
