//! Status answers (`/cluster/status`, `/dir/status`, `/vol/status`, `/metrics`, `/healthz`,
//! the `/` page) and the Raft RPC endpoints.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::http::{HttpResponse, error, json};
use super::node::Master;
use super::params::Query;
use crate::wire::VolumeReport;

const VERSION: &str = concat!("kelp ", env!("CARGO_PKG_VERSION"));

/// `POST /raft/{append,vote,snapshot}`: decode, hand to openraft, encode its `Result`.
pub async fn raft_rpc(master: &Master, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
    let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(
        request.into_body(),
        super::limits::REQUEST_BODY_BYTES_MAX,
    ))
    .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(failure) => return error(413, &format!("raft rpc body: {failure}")),
    };
    match path.as_str() {
        "/raft/append" => match decode(&body) {
            Ok(rpc) => encode(&master.raft.append_entries(rpc).await),
            Err(response) => response,
        },
        "/raft/vote" => match decode(&body) {
            Ok(rpc) => encode(&master.raft.vote(rpc).await),
            Err(response) => response,
        },
        "/raft/snapshot" => match decode(&body) {
            Ok(rpc) => encode(&master.raft.install_snapshot(rpc).await),
            Err(response) => response,
        },
        _ => error(404, &format!("no such raft endpoint: {path}")),
    }
}

// The error is the finished HTTP answer; it is returned once per request, never stored.
#[allow(clippy::result_large_err)]
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| error(400, &format!("raft rpc: bad JSON: {e}")))
}

fn encode<T: Serialize>(value: &T) -> HttpResponse {
    json(200, value, false)
}

pub fn cluster_status(master: &Master, query: Option<&str>) -> HttpResponse {
    let pretty = Query::parse(query.unwrap_or("")).is_pretty();
    let leader = master.leader_address().unwrap_or_default();
    let peers: Vec<String> = master
        .member_addresses()
        .into_iter()
        .filter(|a| *a != master.config.self_address)
        .collect();
    let initialized = !master.voter_ids().is_empty();
    let answer = serde_json::json!({
        "IsLeader": master.is_leader.load(Ordering::Acquire),
        "Leader": leader,
        "Peers": peers,
        "MaxVolumeId": master.state().max_volume_id,
        "Self": master.config.self_address,
        "Initialized": initialized,
        "Members": super::membership::members(master),
        "Quorum": super::quorum::quorum_facts(master).to_string(),
    });
    json(200, &answer, pretty)
}

pub fn healthz(master: &Master) -> HttpResponse {
    match master.leader_address() {
        Some(leader) => json(200, &serde_json::json!({ "leader": leader }), false),
        None => error(503, "no leader elected yet"),
    }
}

/// One Prometheus metric: name, type, help, value.
type MetricRow = (&'static str, &'static str, &'static str, u64);

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub fn metrics(master: &Master) -> HttpResponse {
    let mut rows = request_rows(master);
    rows.extend(topology_rows(master));
    rows.extend(vacuum_rows(master));
    rows.extend(replication_rows(master));
    let mut text = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(text)))
        .expect("valid response")
}

/// Leadership and the requests served.
fn request_rows(master: &Master) -> Vec<MetricRow> {
    let counters = &master.counters;
    let leading = u64::from(master.is_leader.load(Ordering::Acquire));
    vec![
        (
            "kelp_master_is_leader",
            "gauge",
            "1 when this master leads",
            leading,
        ),
        (
            "kelp_master_assign_requests_total",
            "counter",
            "Assignments served",
            load(&counters.assign_requests),
        ),
        (
            "kelp_master_assigned_keys_total",
            "counter",
            "File keys handed out",
            load(&counters.assigned_keys),
        ),
        (
            "kelp_master_heartbeats_total",
            "counter",
            "Heartbeats received",
            load(&counters.heartbeats),
        ),
        (
            "kelp_master_volumes_grown_total",
            "counter",
            "Volumes created",
            load(&counters.volumes_grown),
        ),
        (
            "kelp_master_proxied_requests_total",
            "counter",
            "Forwarded to the leader",
            load(&counters.proxied_requests),
        ),
    ]
}

/// The cluster as this master sees it.
fn topology_rows(master: &Master) -> Vec<MetricRow> {
    let state = master.state();
    let (nodes, volumes) = {
        let mut topology = master.lock_topology();
        (topology.nodes.len(), topology.volume_count())
    };
    vec![
        (
            "kelp_master_data_nodes",
            "gauge",
            "Live volume servers",
            nodes as u64,
        ),
        (
            "kelp_master_volumes",
            "gauge",
            "Volumes in the topology",
            volumes as u64,
        ),
        (
            "kelp_master_max_volume_id",
            "gauge",
            "Largest volume id",
            u64::from(state.max_volume_id),
        ),
        (
            "kelp_master_file_key_high_water",
            "gauge",
            "Keys below are leased",
            state.file_key_high_water,
        ),
    ]
}

fn vacuum_rows(master: &Master) -> Vec<MetricRow> {
    let vacuum = &master.vacuum;
    vec![
        (
            "kelp_master_vacuum_compactions_total",
            "counter",
            "Volume replicas the vacuum compacted",
            load(&vacuum.compactions),
        ),
        (
            "kelp_master_vacuum_failures_total",
            "counter",
            "Volume replicas whose compaction failed or was cancelled",
            load(&vacuum.failures),
        ),
        (
            "kelp_master_vacuum_reclaimed_bytes_total",
            "counter",
            "Bytes the vacuum gave back",
            load(&vacuum.bytes_reclaimed),
        ),
    ]
}

fn replication_rows(master: &Master) -> Vec<MetricRow> {
    let state = &master.replication;
    vec![
        (
            "kelp_master_replica_copies_total",
            "counter",
            "Volume copies re-replication made",
            load(&state.copies),
        ),
        (
            "kelp_master_replica_copy_failures_total",
            "counter",
            "Volume copies re-replication tried and failed",
            load(&state.copy_failures),
        ),
        (
            "kelp_master_replica_trims_total",
            "counter",
            "Extra volume copies trimmed",
            load(&state.trims),
        ),
        (
            "kelp_master_replica_trim_failures_total",
            "counter",
            "Extra volume copies whose trim failed",
            load(&state.trim_failures),
        ),
        (
            "kelp_master_replica_blocked_volumes",
            "gauge",
            "Volumes with a copy count off their placement that no action can fix now",
            load(&state.blocked_volumes),
        ),
    ]
}

/// `/vol/replication`: the re-replication jobs running or waiting for a retry, and the
/// counters.
pub fn replication_status(master: &Master, pretty: bool) -> HttpResponse {
    let state = &master.replication;
    let answer = serde_json::json!({
        "jobs": state.jobs(),
        "copies": load(&state.copies),
        "copyFailures": load(&state.copy_failures),
        "trims": load(&state.trims),
        "trimFailures": load(&state.trim_failures),
        "blockedVolumes": load(&state.blocked_volumes),
    });
    json(200, &answer, pretty)
}

fn free_and_max(nodes: &[&super::topology::DataNode]) -> (u64, u64) {
    let free = nodes.iter().map(|n| u64::from(n.free_slots())).sum();
    let max = nodes.iter().map(|n| u64::from(n.max_volume_count)).sum();
    (free, max)
}

/// `/dir/status`: DataCenters > Racks > DataNodes with Free/Max, and the writable layouts.
pub fn dir_status(master: &Master, pretty: bool) -> HttpResponse {
    json(200, &topology_answer(master), pretty)
}

/// `/dir/status`'s answer (also the body of `/vol/vacuum`'s, as in SeaweedFS).
pub fn topology_answer(master: &Master) -> serde_json::Value {
    let mut topology = master.lock_topology();
    let layouts: Vec<serde_json::Value> = topology
        .writable_layouts()
        .into_iter()
        .map(|(key, writables)| {
            serde_json::json!({
                "collection": key.collection, "replication": key.placement.to_string(),
                "ttl": key.ttl, "writables": writables,
            })
        })
        .collect();
    let mut tree: BTreeMap<&str, BTreeMap<&str, Vec<&super::topology::DataNode>>> = BTreeMap::new();
    for node in topology.nodes.values() {
        tree.entry(&node.data_center)
            .or_default()
            .entry(&node.rack)
            .or_default()
            .push(node);
    }
    let mut data_centers = Vec::new();
    let mut all: Vec<&super::topology::DataNode> = Vec::new();
    for (dc, racks) in &tree {
        let mut rack_values = Vec::new();
        let mut in_dc = Vec::new();
        for (rack, nodes) in racks {
            let data_nodes: Vec<serde_json::Value> = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "Url": n.url, "PublicUrl": n.public_url, "Volumes": n.volume_count(),
                        "Free": n.free_slots(), "Max": n.max_volume_count,
                    })
                })
                .collect();
            let (free, max) = free_and_max(nodes);
            rack_values.push(serde_json::json!({
                "Id": rack, "Free": free, "Max": max, "DataNodes": data_nodes,
            }));
            in_dc.extend(nodes.iter().copied());
        }
        let (free, max) = free_and_max(&in_dc);
        data_centers.push(serde_json::json!({
            "Id": dc, "Free": free, "Max": max, "Racks": rack_values,
        }));
        all.extend(in_dc);
    }
    let (free, max) = free_and_max(&all);
    serde_json::json!({
        "Version": VERSION,
        "Topology": {
            "DataCenters": data_centers, "Free": free, "Max": max, "layouts": layouts,
        },
    })
}

/// `/vol/status`: every volume, by data center, rack and node.
pub fn volume_status(master: &Master, pretty: bool) -> HttpResponse {
    let topology = master.lock_topology();
    let mut tree: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, Vec<serde_json::Value>>>> =
        BTreeMap::new();
    let mut nodes = Vec::new();
    for node in topology.nodes.values() {
        let volumes = node
            .volumes
            .values()
            .chain(node.pending.values().map(|(v, _)| v))
            .map(VolumeReport::status_json)
            .collect();
        tree.entry(&node.data_center)
            .or_default()
            .entry(&node.rack)
            .or_default()
            .insert(&node.url, volumes);
        nodes.push(node);
    }
    let (free, max) = free_and_max(&nodes);
    let answer = serde_json::json!({
        "Version": VERSION,
        "Volumes": { "DataCenters": tree, "Free": free, "Max": max },
    });
    json(200, &answer, pretty)
}
