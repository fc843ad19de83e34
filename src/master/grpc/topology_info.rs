//! The topology in SeaweedFS's gRPC shapes: `TopologyInfo` (data centers > racks > data
//! nodes > disks > volumes) for `VolumeList`, and the sums `Statistics`,
//! `CollectionStatistics` and `CollectionList` answer. Pure functions of the topology.

use std::collections::{BTreeMap, BTreeSet};

use kelp_engine::format::Ttl;
use kelp_engine::format::needle::Version;

use super::super::topology::{DataNode, Topology};
use crate::pb::master_pb::{
    CollectionStatistics, DataCenterInfo, DataNodeInfo, DiskInfo, RackInfo, TopologyInfo,
    VolumeInformationMessage, VolumeListRequest,
};
use crate::wire::VolumeReport;

/// Kelp's volume servers have one kind of disk: SeaweedFS's hard drive, whose name is "".
pub const DISK_TYPE: &str = "";

/// Which volumes a `VolumeList` lists (the counters always cover every volume).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    pub collection: String,
    pub volume_id: u32,
    pub default_collection_only: bool,
}

impl VolumeFilter {
    pub fn of(request: &VolumeListRequest) -> VolumeFilter {
        VolumeFilter {
            collection: request.collection.clone(),
            volume_id: request.volume_id,
            default_collection_only: request.default_collection_only,
        }
    }

    /// No volume at all (the header of `VolumeListStream`).
    pub fn none() -> VolumeFilter {
        VolumeFilter {
            volume_id: u32::MAX,
            collection: "\0none".into(),
            ..VolumeFilter::default()
        }
    }

    fn selects(&self, volume: &VolumeReport) -> bool {
        let collection_matches = match self.collection.as_str() {
            "" => !self.default_collection_only || volume.collection.is_empty(),
            name => volume.collection == name,
        };
        collection_matches && (self.volume_id == 0 || self.volume_id == volume.id)
    }
}

/// A volume as `VolumeInformationMessage` (placement as its byte, TTL as its two bytes).
pub fn volume_message(volume: &VolumeReport) -> VolumeInformationMessage {
    VolumeInformationMessage {
        id: volume.id,
        size: volume.size,
        collection: volume.collection.clone(),
        file_count: volume.file_count,
        delete_count: volume.delete_count,
        deleted_byte_count: volume.deleted_byte_count,
        read_only: volume.read_only,
        replica_placement: u32::from(volume.replica_placement.to_byte()),
        version: Version::V3 as u32,
        ttl: ttl_number(volume.ttl),
        compact_revision: u32::from(volume.compact_revision),
        modified_at_second: i64::try_from(volume.modified_at_second).unwrap_or(i64::MAX),
        disk_type: DISK_TYPE.into(),
    }
}

/// SeaweedFS's TTL number: count << 8 | unit byte (0 for no TTL).
pub fn ttl_number(ttl: Ttl) -> u32 {
    let [count, unit] = ttl.to_bytes();
    u32::from(count) << 8 | u32::from(unit)
}

fn node_volumes(node: &DataNode) -> impl Iterator<Item = &VolumeReport> {
    let pending = node.pending.values().map(|(volume, _)| volume);
    node.volumes.values().chain(pending)
}

fn node_disk(node: &DataNode, filter: &VolumeFilter) -> DiskInfo {
    let volumes: Vec<&VolumeReport> = node_volumes(node).collect();
    let count = volumes.len() as i64;
    DiskInfo {
        r#type: DISK_TYPE.into(),
        volume_count: count,
        max_volume_count: i64::from(node.max_volume_count),
        free_volume_count: i64::from(node.max_volume_count)
            .saturating_sub(count)
            .max(0),
        active_volume_count: volumes.iter().filter(|v| !v.read_only).count() as i64,
        volume_infos: volumes
            .into_iter()
            .filter(|v| filter.selects(v))
            .map(volume_message)
            .collect(),
        remote_volume_count: 0,
    }
}

/// The counters of `disks` added up (no volumes listed).
fn sum_disks<'a>(disks: impl Iterator<Item = &'a DiskInfo>) -> DiskInfo {
    let mut sum = DiskInfo {
        r#type: DISK_TYPE.into(),
        ..DiskInfo::default()
    };
    for disk in disks {
        sum.volume_count += disk.volume_count;
        sum.max_volume_count += disk.max_volume_count;
        sum.free_volume_count += disk.free_volume_count;
        sum.active_volume_count += disk.active_volume_count;
        sum.remote_volume_count += disk.remote_volume_count;
    }
    sum
}

fn disk_map(disk: DiskInfo) -> std::collections::HashMap<String, DiskInfo> {
    std::iter::once((DISK_TYPE.to_string(), disk)).collect()
}

fn data_node_info(node: &DataNode, filter: &VolumeFilter) -> DataNodeInfo {
    DataNodeInfo {
        id: node.url.clone(),
        disk_infos: disk_map(node_disk(node, filter)),
        grpc_port: u32::from(node.grpc_port),
        address: node.url.clone(),
    }
}

/// The whole topology with the volumes `filter` selects.
pub fn topology_info(topology: &Topology, filter: &VolumeFilter) -> TopologyInfo {
    let mut tree: BTreeMap<&str, BTreeMap<&str, Vec<&DataNode>>> = BTreeMap::new();
    for node in topology.nodes.values() {
        let racks = tree.entry(node.data_center.as_str()).or_default();
        racks.entry(node.rack.as_str()).or_default().push(node);
    }
    let data_center_infos: Vec<DataCenterInfo> = tree
        .into_iter()
        .map(|(dc, racks)| {
            let rack_infos: Vec<RackInfo> = racks
                .into_iter()
                .map(|(rack, nodes)| {
                    let data_node_infos: Vec<DataNodeInfo> =
                        nodes.iter().map(|n| data_node_info(n, filter)).collect();
                    let disks = data_node_infos.iter().flat_map(|n| n.disk_infos.values());
                    RackInfo {
                        id: rack.to_string(),
                        disk_infos: disk_map(sum_disks(disks)),
                        data_node_infos,
                    }
                })
                .collect();
            let disks = rack_infos.iter().flat_map(|r| r.disk_infos.values());
            DataCenterInfo {
                id: dc.to_string(),
                disk_infos: disk_map(sum_disks(disks)),
                rack_infos,
            }
        })
        .collect();
    let disks = data_center_infos.iter().flat_map(|d| d.disk_infos.values());
    TopologyInfo {
        id: "topo".into(),
        disk_infos: disk_map(sum_disks(disks)),
        data_center_infos,
    }
}

/// One copy of every volume (the replica with the most bytes), by id.
fn one_copy_each(topology: &Topology) -> BTreeMap<u32, (&VolumeReport, u64)> {
    let mut volumes: BTreeMap<u32, (&VolumeReport, u64)> = BTreeMap::new();
    for node in topology.nodes.values() {
        for volume in node_volumes(node) {
            let entry = volumes.entry(volume.id).or_insert((volume, 0));
            if volume.size > entry.0.size {
                entry.0 = volume;
            }
            // Bytes on disk over every replica.
            entry.1 += volume.size;
        }
    }
    volumes
}

/// What `Statistics` answers for `collection` ("" for every collection) when a new file is
/// written with `copies` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub file_count: u64,
    pub logical_total_bytes: u64,
    pub logical_used_bytes: u64,
}

pub fn usage(topology: &Topology, collection: &str, copies: usize) -> Usage {
    let slots: u64 = topology
        .nodes
        .values()
        .map(|n| u64::from(n.max_volume_count))
        .sum();
    let total_bytes = slots.saturating_mul(topology.volume_size_limit_bytes);
    let volumes = one_copy_each(topology);
    let cluster_used: u64 = volumes.values().map(|(_, physical)| physical).sum();
    let mut usage = Usage {
        total_bytes,
        used_bytes: 0,
        file_count: 0,
        logical_total_bytes: 0,
        logical_used_bytes: 0,
    };
    for (volume, physical) in volumes.values() {
        if collection.is_empty() || volume.collection == collection {
            usage.used_bytes += physical;
            usage.logical_used_bytes += volume.size;
            usage.file_count += volume.file_count;
        }
    }
    let free = total_bytes.saturating_sub(cluster_used) / copies.max(1) as u64;
    usage.logical_total_bytes = usage.logical_used_bytes + free;
    usage
}

/// Per collection: files, deletions and bytes of one copy, bytes of every replica, volumes.
pub fn collection_statistics(topology: &Topology) -> Vec<CollectionStatistics> {
    let mut by_name: BTreeMap<&str, CollectionStatistics> = BTreeMap::new();
    for (volume, physical) in one_copy_each(topology).values() {
        let sums = by_name
            .entry(volume.collection.as_str())
            .or_insert_with(|| CollectionStatistics {
                collection: volume.collection.clone(),
                ..CollectionStatistics::default()
            });
        sums.file_count += volume.file_count;
        sums.delete_count += volume.delete_count;
        sums.deleted_byte_count += volume.deleted_byte_count;
        sums.size += volume.size;
        sums.physical_size += physical;
        sums.volume_count += 1;
    }
    by_name.into_values().collect()
}

/// The collections that hold volumes, with `known` (the ones Raft keeps), sorted.
pub fn collection_names(topology: &Topology, known: &BTreeSet<String>) -> Vec<String> {
    let mut names: BTreeSet<String> = known.clone();
    for node in topology.nodes.values() {
        names.extend(node_volumes(node).map(|v| v.collection.clone()));
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Heartbeat;
    use kelp_engine::format::ReplicaPlacement;
    use std::time::{Duration, Instant};

    fn volume(id: u32, collection: &str, size: u64, files: u64) -> VolumeReport {
        VolumeReport {
            id,
            port: 0,
            size,
            collection: collection.into(),
            file_count: files,
            delete_count: 1,
            deleted_byte_count: 10,
            read_only: id == 3,
            replica_placement: ReplicaPlacement::parse("001").unwrap(),
            ttl: Ttl::parse("3d").unwrap(),
            compact_revision: 2,
            modified_at_second: 0,
        }
    }

    fn topology() -> Topology {
        let mut topology = Topology::new(1000, Duration::from_secs(5));
        for (port, rack) in [(8080, "r1"), (8090, "r2")] {
            let beat = Heartbeat {
                ip: "127.0.0.1".into(),
                port,
                public_url: String::new(),
                data_center: "dc1".into(),
                rack: rack.into(),
                max_volume_count: 4,
                max_file_key: 0,
                grpc_port: port + 10000,
                volumes: vec![volume(1, "", 100, 5), volume(3, "pics", 50, 2)],
            };
            topology.heartbeat(beat, Instant::now());
        }
        topology
    }

    // Proves the topology tree has SeaweedFS's shape and counters: one data center, two racks,
    // each node with its gRPC port and one disk whose counts cover every volume while only the
    // filtered volumes are listed, with placement and TTL in SeaweedFS's numbers.
    #[test]
    fn topology_info_has_seaweedfs_shape() {
        let topology = topology();
        let all = topology_info(&topology, &VolumeFilter::default());
        assert_eq!(all.data_center_infos.len(), 1);
        let dc = &all.data_center_infos[0];
        assert_eq!(dc.rack_infos.len(), 2);
        let node = &dc.rack_infos[0].data_node_infos[0];
        assert_eq!(
            (node.id.as_str(), node.grpc_port),
            ("127.0.0.1:8080", 18080)
        );
        let disk = &node.disk_infos[DISK_TYPE];
        assert_eq!((disk.volume_count, disk.free_volume_count), (2, 2));
        assert_eq!(disk.active_volume_count, 1, "volume 3 is read-only");
        let first = &disk.volume_infos[0];
        assert_eq!(
            (first.replica_placement, first.ttl, first.version),
            (1, 3 << 8 | 3, 3)
        );
        assert_eq!(all.disk_infos[DISK_TYPE].max_volume_count, 8);
        let filter = VolumeFilter {
            collection: "pics".into(),
            ..VolumeFilter::default()
        };
        let pics = topology_info(&topology, &filter);
        let disk = &pics.data_center_infos[0].rack_infos[1].data_node_infos[0].disk_infos[""];
        assert_eq!(disk.volume_count, 2, "counters cover every volume");
        assert_eq!(disk.volume_infos.len(), 1);
        let none = topology_info(&topology, &VolumeFilter::none());
        assert!(
            none.data_center_infos[0].rack_infos[0].data_node_infos[0].disk_infos[""]
                .volume_infos
                .is_empty()
        );
        let default_only = VolumeFilter {
            default_collection_only: true,
            ..VolumeFilter::default()
        };
        let listed = &topology_info(&topology, &default_only).data_center_infos[0].rack_infos[0]
            .data_node_infos[0]
            .disk_infos[""]
            .volume_infos;
        assert_eq!(listed.iter().map(|v| v.id).collect::<Vec<_>>(), vec![1]);
    }

    // Proves the sums count one copy of the data for files and logical bytes, every replica
    // for the bytes on disk, and the free room divided by the copies a new file takes.
    #[test]
    fn statistics_count_copies_once() {
        let topology = topology();
        let stats = collection_statistics(&topology);
        assert_eq!(stats.len(), 2);
        let pics = &stats[1];
        assert_eq!(pics.collection, "pics");
        assert_eq!(
            (pics.file_count, pics.size, pics.physical_size),
            (2, 50, 100)
        );
        assert_eq!(pics.volume_count, 1);
        let all = usage(&topology, "", 2);
        assert_eq!((all.total_bytes, all.used_bytes), (8000, 300));
        assert_eq!((all.file_count, all.logical_used_bytes), (7, 150));
        assert_eq!(all.logical_total_bytes, 150 + (8000 - 300) / 2);
        let pics_usage = usage(&topology, "pics", 1);
        assert_eq!(pics_usage.used_bytes, 100);
        let known = BTreeSet::from(["empty".to_string()]);
        assert_eq!(
            collection_names(&topology, &known),
            vec!["", "empty", "pics"]
        );
    }
}
