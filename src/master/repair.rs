//! `POST /vol/repair[?volumeId=N]`: asks every replica of volume N (or of every replicated
//! volume) for one repair pass now (`POST /admin/volume/repair?volume=N` on each, one after
//! the other), and answers what each did:
//! `{"volumes":[{"volumeId":N,"replicas":[{"url","copied","deleted","skipped","error"}]}]}`.

use super::node::Master;
use super::params::Query;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct ReplicaRepair {
    pub url: String,
    pub copied: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRepair {
    pub volume_id: u32,
    pub replicas: Vec<ReplicaRepair>,
}

#[derive(Debug, Serialize)]
pub struct RepairAnswer {
    pub volumes: Vec<VolumeRepair>,
}

/// The `volumeId` of the query, if any: Err names a value that is not a volume id.
pub fn volume_param(query: &Query) -> Result<Option<u32>, String> {
    match query.get("volumeId") {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("volumeId {text:?} is not a volume id")),
    }
}

/// The replicas (node urls) of each volume whose placement asks for more than one copy, or
/// of `volume_id` alone (whatever its placement).
fn targets(master: &Master, volume_id: Option<u32>) -> BTreeMap<u32, Vec<String>> {
    let topology = master.lock_topology();
    let mut targets: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for node in topology.nodes.values() {
        let reported = node.volumes.values();
        let all = reported.chain(node.pending.values().map(|(volume, _)| volume));
        let chosen = all.filter(|volume| match volume_id {
            Some(id) => volume.id == id,
            None => volume.replica_placement.copy_count() > 1,
        });
        for volume in chosen {
            targets.entry(volume.id).or_default().push(node.url.clone());
        }
    }
    targets
}

/// Runs the repairs; Err (404) when `volume_id` names a volume no server reports.
pub async fn repair(master: &Master, volume_id: Option<u32>) -> Result<RepairAnswer, String> {
    let targets = targets(master, volume_id);
    if let (Some(id), true) = (volume_id, targets.is_empty()) {
        return Err(format!("volume {id} not found"));
    }
    let mut volumes = Vec::new();
    for (volume_id, urls) in targets {
        let mut replicas = Vec::new();
        for url in urls {
            replicas.push(repair_replica(master, volume_id, url).await);
        }
        volumes.push(VolumeRepair {
            volume_id,
            replicas,
        });
    }
    Ok(RepairAnswer { volumes })
}

async fn repair_replica(master: &Master, volume_id: u32, url: String) -> ReplicaRepair {
    let address = format!("http://{url}/admin/volume/repair?volume={volume_id}");
    let mut replica = ReplicaRepair {
        url,
        copied: 0,
        deleted: 0,
        skipped: 0,
        error: None,
    };
    let answer = master.admin_call(&address).await.and_then(|body| {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| format!("{address}: answer is not JSON: {e}"))
    });
    match answer {
        Ok(value) => {
            let count = |name: &str| value[name].as_u64().unwrap_or(0);
            replica.copied = count("copied");
            replica.deleted = count("deleted");
            replica.skipped = count("skipped");
        }
        Err(error) => {
            tracing::warn!("repair: volume {volume_id}: {error}");
            replica.error = Some(error);
        }
    }
    replica
}
