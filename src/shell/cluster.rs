//! What the shell knows of the cluster: the master's topology (its gRPC `VolumeList`), as
//! servers with their data center, rack, volume slots and volumes; and whether a set of
//! servers meets a volume's placement, decided by the master's own placement code.

use std::time::Duration;

use kelp_engine::format::{ReplicaPlacement, Ttl};
use tonic::transport::Endpoint;

use super::Shell;
use super::limits::{CONNECT_TIMEOUT_MS, MASTER_CALL_TIMEOUT_MS, TOPOLOGY_BYTES_MAX};
use crate::master::topology::{NodeSlot, plan_placement};
use crate::pb::master_pb::seaweed_client::SeaweedClient;
use crate::pb::master_pb::{TopologyInfo, VolumeInformationMessage, VolumeListRequest};

/// One volume server as the master knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// `host:port`, as the master and `-source`/`-target`/`-node` name it.
    pub url: String,
    pub grpc_port: u16,
    pub data_center: String,
    pub rack: String,
    pub max_volumes: i64,
    pub volumes: Vec<VolumeInformationMessage>,
}

impl Node {
    /// How volume servers' gRPC clients spell it: `host:port`, or `host:port.grpcPort` when
    /// its gRPC port is not port + 10000.
    pub fn server_address(&self) -> String {
        let default_grpc = self
            .url
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .and_then(|port| port.checked_add(crate::pb::GRPC_PORT_OFFSET));
        if self.grpc_port == 0 || default_grpc == Some(self.grpc_port) {
            self.url.clone()
        } else {
            format!("{}.{}", self.url, self.grpc_port)
        }
    }

    pub fn volume(&self, volume_id: u32) -> Option<&VolumeInformationMessage> {
        self.volumes.iter().find(|v| v.id == volume_id)
    }

    pub fn holds(&self, volume_id: u32) -> bool {
        self.volume(volume_id).is_some()
    }

    pub fn free_slots(&self) -> i64 {
        self.max_volumes - self.volumes.len() as i64
    }
}

/// The servers of the cluster, sorted by data center, rack and address.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub volume_size_limit_mb: u64,
}

impl Cluster {
    /// The master's topology now.
    pub async fn fetch(shell: &Shell) -> Result<Cluster, String> {
        let address = &shell.master_grpc;
        let failed = |e: &dyn std::fmt::Display| format!("master {address} (gRPC): {e}");
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| failed(&e))?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(MASTER_CALL_TIMEOUT_MS))
            .connect()
            .await
            .map_err(|e| failed(&e))?;
        let mut client = SeaweedClient::new(channel).max_decoding_message_size(TOPOLOGY_BYTES_MAX);
        let answer = client
            .volume_list(VolumeListRequest::default())
            .await
            .map_err(|status| failed(&format!("VolumeList: {}", status.message())))?
            .into_inner();
        let topology = answer.topology_info.unwrap_or_default();
        Ok(Cluster::of(&topology, answer.volume_size_limit_mb))
    }

    pub fn of(topology: &TopologyInfo, volume_size_limit_mb: u64) -> Cluster {
        let mut nodes = Vec::new();
        for dc in &topology.data_center_infos {
            for rack in &dc.rack_infos {
                for node in &rack.data_node_infos {
                    let disks = node.disk_infos.values();
                    nodes.push(Node {
                        url: node.id.clone(),
                        grpc_port: u16::try_from(node.grpc_port).unwrap_or(0),
                        data_center: dc.id.clone(),
                        rack: rack.id.clone(),
                        max_volumes: disks.clone().map(|d| d.max_volume_count).sum(),
                        volumes: disks.flat_map(|d| d.volume_infos.clone()).collect(),
                    });
                }
            }
        }
        for node in &mut nodes {
            node.volumes.sort_by_key(|v| v.id);
        }
        nodes.sort_by(|a, b| {
            (&a.data_center, &a.rack, &a.url).cmp(&(&b.data_center, &b.rack, &b.url))
        });
        Cluster {
            nodes,
            volume_size_limit_mb,
        }
    }

    /// The server `url` names, or an error listing the cluster's servers.
    pub fn node(&self, url: &str) -> Result<&Node, String> {
        self.nodes.iter().find(|n| n.url == url).ok_or_else(|| {
            let known: Vec<&str> = self.nodes.iter().map(|n| n.url.as_str()).collect();
            format!("{url} is not a volume server of this cluster (the master knows {known:?})")
        })
    }

    /// The servers holding `volume_id`.
    pub fn holders(&self, volume_id: u32) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.holds(volume_id)).collect()
    }
}

/// The placement a volume's message carries.
pub fn placement_of(volume: &VolumeInformationMessage) -> ReplicaPlacement {
    ReplicaPlacement::from_byte(u8::try_from(volume.replica_placement).unwrap_or(0))
}

/// The TTL a volume's message carries (its two bytes, count << 8 | unit), "" when none or
/// not one.
pub fn ttl_text(volume: &VolumeInformationMessage) -> String {
    let bytes = [(volume.ttl >> 8) as u8, volume.ttl as u8];
    Ttl::from_bytes(bytes).map_or_else(|_| String::new(), |ttl| ttl.to_string())
}

/// Do `nodes` hold the copies of a volume with `placement` as the placement asks: as many
/// servers as copies, which the master's placement planner would pick for it?
pub fn placement_met(nodes: &[&Node], placement: ReplicaPlacement) -> bool {
    if nodes.len() != placement.copy_count() {
        return false;
    }
    let slots: Vec<NodeSlot> = nodes
        .iter()
        .map(|n| NodeSlot {
            url: n.url.clone(),
            data_center: n.data_center.clone(),
            rack: n.rack.clone(),
            free: 1,
        })
        .collect();
    plan_placement(&slots, placement, "", "", 0).is_ok()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn node(url: &str, dc: &str, rack: &str, volumes: &[(u32, &str)]) -> Node {
        let volumes = volumes
            .iter()
            .map(|(id, placement)| VolumeInformationMessage {
                id: *id,
                replica_placement: u32::from(ReplicaPlacement::parse(placement).unwrap().to_byte()),
                ..VolumeInformationMessage::default()
            })
            .collect();
        Node {
            url: url.into(),
            grpc_port: 0,
            data_center: dc.into(),
            rack: rack.into(),
            max_volumes: 8,
            volumes,
        }
    }

    // Proves the placement check follows xyz: racks, data centers, same-rack copies.
    #[test]
    fn placement_met_follows_xyz() {
        let a = node("a:1", "dc1", "r1", &[]);
        let b = node("b:1", "dc1", "r2", &[]);
        let c = node("c:1", "dc2", "r1", &[]);
        let d = node("d:1", "dc1", "r1", &[]);
        let placement = |text| ReplicaPlacement::parse(text).unwrap();
        assert!(placement_met(&[&a], placement("000")));
        assert!(!placement_met(&[&a, &b], placement("000")));
        assert!(placement_met(&[&a, &b], placement("010")));
        assert!(!placement_met(&[&a, &d], placement("010")));
        assert!(placement_met(&[&a, &d], placement("001")));
        assert!(placement_met(&[&a, &c], placement("100")));
        assert!(!placement_met(&[&a, &b], placement("100")));
        assert!(placement_met(&[&a, &b, &c], placement("110")));
    }

    // Proves a gRPC port other than port + 10000 is named in the server's address.
    #[test]
    fn server_address_names_other_grpc_ports() {
        let mut n = node("h:8080", "", "", &[]);
        assert_eq!(n.server_address(), "h:8080");
        n.grpc_port = 18080;
        assert_eq!(n.server_address(), "h:8080");
        n.grpc_port = 9999;
        assert_eq!(n.server_address(), "h:8080.9999");
    }
}
