//! The cluster as the leader sees it: data centers > racks > data nodes, built from
//! heartbeats, and the volume layouts assignments are served from. No I/O here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

pub use crate::wire::{Heartbeat, VolumeReport};
use serde::Serialize;

use kelp_engine::format::ReplicaPlacement;

use super::params::LayoutKey;

pub const DEFAULT_DATA_CENTER: &str = "DefaultDataCenter";
pub const DEFAULT_RACK: &str = "DefaultRack";

#[derive(Debug, Clone)]
pub struct DataNode {
    /// `ip:port` of the main port: the node's identity and admin address.
    pub url: String,
    pub ip: String,
    /// Host part of the public URL (the port comes from each volume).
    pub public_host: String,
    pub public_url: String,
    pub data_center: String,
    pub rack: String,
    pub max_volume_count: u32,
    /// The server's gRPC port (0: it serves no gRPC).
    pub grpc_port: u16,
    pub volumes: BTreeMap<u32, VolumeReport>,
    /// Volumes created by a grow and not yet seen in a heartbeat, with their creation time.
    pub pending: BTreeMap<u32, (VolumeReport, Instant)>,
    pub last_seen: Instant,
}

impl DataNode {
    pub fn volume_count(&self) -> usize {
        self.volumes.len() + self.pending.len()
    }

    pub fn free_slots(&self) -> u32 {
        self.max_volume_count
            .saturating_sub(self.volume_count().try_into().unwrap_or(u32::MAX))
    }

    fn all_volumes(&self) -> impl Iterator<Item = &VolumeReport> {
        self.volumes
            .values()
            .chain(self.pending.values().map(|(v, _)| v))
    }
}

/// Where one replica of a volume is served.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    pub url: String,
    #[serde(rename = "publicUrl")]
    pub public_url: String,
    /// The volume server's gRPC port (SeaweedFS's `grpcPort`; left out when it has none).
    #[serde(rename = "grpcPort", skip_serializing_if = "is_zero")]
    pub grpc_port: u16,
    #[serde(rename = "dataCenter")]
    pub data_center: String,
    #[serde(skip)]
    pub rack: String,
}

fn is_zero(port: &u16) -> bool {
    *port == 0
}

#[derive(Debug, Clone)]
pub struct VolumeLocations {
    pub key: LayoutKey,
    pub locations: Vec<Location>,
    pub size_max: u64,
    pub read_only: bool,
}

/// Derived from the nodes: who holds each volume and which volumes take writes.
#[derive(Default)]
struct VolumeIndex {
    by_id: HashMap<u32, VolumeLocations>,
    writable: HashMap<LayoutKey, Vec<u32>>,
}

pub struct Topology {
    pub nodes: BTreeMap<String, DataNode>,
    pub volume_size_limit_bytes: u64,
    pub pulse: Duration,
    index: VolumeIndex,
    index_stale: bool,
    /// Round-robin cursors for assignment and for redirects.
    assign_cursor: usize,
    redirect_cursor: usize,
    /// The largest id of the volumes `remove_collection` dropped: they are accounted for,
    /// though no node reports them any more.
    removed_volume_id_max: u32,
    /// Volumes whose compaction is committing: out of the writable lists meanwhile.
    committing: BTreeSet<u32>,
    /// Counts the changes to the nodes and their volumes (those who follow the volume
    /// locations compare it to see whether anything moved).
    changes: u64,
}

/// One replica of a volume, for the vacuum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The node's main address (where admin calls go).
    pub node_url: String,
    pub compact_revision: u16,
}

/// A volume the vacuum looks at: its reported replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumTarget {
    pub volume_id: u32,
    pub replicas: Vec<Replica>,
}

impl VacuumTarget {
    /// The most advanced compaction revision among the replicas (revisions wrap at 2^16:
    /// `a` is ahead of `b` when `a - b`, wrapping, is below 2^15).
    pub fn newest_revision(&self) -> u16 {
        let ahead = |a: u16, b: u16| a != b && a.wrapping_sub(b) < 0x8000;
        self.replicas
            .iter()
            .map(|r| r.compact_revision)
            .fold(None, |newest: Option<u16>, r| match newest {
                Some(n) if !ahead(r, n) => Some(n),
                _ => Some(r),
            })
            .unwrap_or(0)
    }

    /// Replicas behind the newest revision: a compaction ran without them (they were down,
    /// or their commit failed), so they still hold the garbage the others gave back.
    pub fn lagging(&self) -> Vec<&Replica> {
        let newest = self.newest_revision();
        let lagging: Vec<&Replica> = self
            .replicas
            .iter()
            .filter(|r| r.compact_revision != newest)
            .collect();
        // The newest revision is some replica's: not every replica lags.
        assert!(lagging.len() < self.replicas.len() || self.replicas.is_empty());
        lagging
    }
}

/// A node picked for a replica of a new volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlot {
    pub url: String,
    pub data_center: String,
    pub rack: String,
    pub free: u32,
}

pub const NOT_ENOUGH_NODES: &str = "Cannot grow volume group! Not enough data node found!";

/// Where `node` serves `volume` (the port of the core that owns it).
pub fn location_of(node: &DataNode, volume: &VolumeReport) -> Location {
    let port = if volume.port == 0 {
        node.url.rsplit(':').next().unwrap_or("").to_string()
    } else {
        volume.port.to_string()
    };
    Location {
        url: format!("{}:{port}", node.ip),
        public_url: format!("{}:{port}", node.public_host),
        grpc_port: node.grpc_port,
        data_center: node.data_center.clone(),
        rack: node.rack.clone(),
    }
}

impl Topology {
    pub fn new(volume_size_limit_bytes: u64, pulse: Duration) -> Topology {
        Topology {
            nodes: BTreeMap::new(),
            volume_size_limit_bytes,
            pulse,
            index: VolumeIndex::default(),
            index_stale: false,
            assign_cursor: 0,
            redirect_cursor: 0,
            removed_volume_id_max: 0,
            committing: BTreeSet::new(),
            changes: 0,
        }
    }

    /// How many times the nodes or their volumes changed (a heartbeat counts as a change).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn mark_changed(&mut self) {
        self.index_stale = true;
        self.changes += 1;
    }

    /// Record a heartbeat: the node's volume list is replaced by the reported one (volumes
    /// created moments ago by a grow stay until they show up or expire).
    pub fn heartbeat(&mut self, beat: Heartbeat, now: Instant) {
        let url = format!("{}:{}", beat.ip, beat.port);
        let public_url = if beat.public_url.is_empty() {
            url.clone()
        } else {
            beat.public_url.clone()
        };
        let public_host = match public_url.rsplit_once(':') {
            Some((host, _)) => host.to_string(),
            None => public_url.clone(),
        };
        let or_default = |text: &str, default: &str| {
            if text.is_empty() {
                default.to_string()
            } else {
                text.to_string()
            }
        };
        let keep_pending = self.pulse * super::limits::PENDING_VOLUME_PULSES;
        let previous = self.nodes.remove(&url);
        let mut pending = previous.map(|node| node.pending).unwrap_or_default();
        let volumes: BTreeMap<u32, VolumeReport> =
            beat.volumes.into_iter().map(|v| (v.id, v)).collect();
        pending.retain(|id, (_, created)| {
            !volumes.contains_key(id) && now.duration_since(*created) < keep_pending
        });
        let node = DataNode {
            url: url.clone(),
            ip: beat.ip,
            public_host,
            public_url,
            data_center: or_default(&beat.data_center, DEFAULT_DATA_CENTER),
            rack: or_default(&beat.rack, DEFAULT_RACK),
            max_volume_count: beat.max_volume_count,
            grpc_port: beat.grpc_port,
            volumes,
            pending,
            last_seen: now,
        };
        // A volume is either reported or pending on a node, never both.
        debug_assert!(node.pending.keys().all(|id| !node.volumes.contains_key(id)));
        self.nodes.insert(url, node);
        self.mark_changed();
    }

    /// Drop nodes that missed too many heartbeats; returns their urls.
    pub fn drop_dead_nodes(&mut self, now: Instant) -> Vec<String> {
        let deadline = self.pulse * super::limits::HEARTBEATS_MISSED_MAX;
        let dead: Vec<String> = self
            .nodes
            .values()
            .filter(|node| now.duration_since(node.last_seen) > deadline)
            .map(|node| node.url.clone())
            .collect();
        for url in &dead {
            self.nodes.remove(url);
        }
        debug_assert!(
            self.nodes
                .values()
                .all(|node| now.duration_since(node.last_seen) <= deadline)
        );
        if !dead.is_empty() {
            self.mark_changed();
        }
        dead
    }

    /// Register a volume a grow just created on `node_url`.
    pub fn add_pending_volume(&mut self, node_url: &str, volume: VolumeReport, now: Instant) {
        if let Some(node) = self.nodes.get_mut(node_url) {
            node.pending.insert(volume.id, (volume, now));
            self.mark_changed();
        }
    }

    /// Forget every volume of `collection` (after `/col/delete`).
    pub fn remove_collection(&mut self, collection: &str) {
        let removed = self
            .collection_volumes(collection)
            .into_iter()
            .map(|(id, _)| id);
        self.removed_volume_id_max = removed.fold(self.removed_volume_id_max, u32::max);
        for node in self.nodes.values_mut() {
            node.volumes.retain(|_, v| v.collection != collection);
            node.pending.retain(|_, (v, _)| v.collection != collection);
        }
        debug_assert!(self.collection_volumes(collection).is_empty());
        self.mark_changed();
    }

    fn refresh_index(&mut self) {
        if !self.index_stale {
            return;
        }
        let mut by_id: HashMap<u32, VolumeLocations> = HashMap::new();
        for node in self.nodes.values() {
            for volume in node.all_volumes() {
                let entry = by_id.entry(volume.id).or_insert_with(|| VolumeLocations {
                    key: LayoutKey::of_volume(volume),
                    locations: Vec::new(),
                    size_max: 0,
                    read_only: false,
                });
                entry.locations.push(location_of(node, volume));
                entry.size_max = entry.size_max.max(volume.size);
                entry.read_only |= volume.read_only;
            }
        }
        let mut writable: HashMap<LayoutKey, Vec<u32>> = HashMap::new();
        for (id, volume) in &by_id {
            let copies = volume.key.placement.copy_count();
            let complete = volume.locations.len() >= copies;
            let committing = self.committing.contains(id);
            let small = volume.size_max < self.volume_size_limit_bytes;
            if complete && !volume.read_only && small && !committing {
                writable.entry(volume.key.clone()).or_default().push(*id);
            }
        }
        for ids in writable.values_mut() {
            ids.sort_unstable();
        }
        // Every indexed volume has a replica, and every writable one is indexed.
        assert!(by_id.values().all(|volume| !volume.locations.is_empty()));
        debug_assert!(writable.values().flatten().all(|id| by_id.contains_key(id)));
        self.index = VolumeIndex { by_id, writable };
        self.index_stale = false;
    }

    /// Locations of `volume_id`, or None when no live node holds it.
    pub fn lookup(&mut self, volume_id: u32) -> Option<&VolumeLocations> {
        self.refresh_index();
        self.index.by_id.get(&volume_id)
    }

    /// The next replica of `volume_id` for a redirect, rotating among the replicas.
    pub fn redirect_target(&mut self, volume_id: u32) -> Option<Location> {
        self.refresh_index();
        self.redirect_cursor = self.redirect_cursor.wrapping_add(1);
        let cursor = self.redirect_cursor;
        let volume = self.index.by_id.get(&volume_id)?;
        Some(volume.locations[cursor % volume.locations.len()].clone())
    }

    /// A writable volume of the layout (preferring `data_center`/`rack` when given), round-robin.
    pub fn pick_writable(
        &mut self,
        key: &LayoutKey,
        data_center: &str,
        rack: &str,
    ) -> Option<(u32, Location)> {
        self.refresh_index();
        let ids = self.index.writable.get(key)?;
        if data_center.is_empty() && rack.is_empty() && !ids.is_empty() {
            // The hot path of /dir/assign: no filter, no allocation but the answer.
            self.assign_cursor = self.assign_cursor.wrapping_add(1);
            let id = ids[self.assign_cursor % ids.len()];
            return Some((id, self.index.by_id[&id].locations[0].clone()));
        }
        let matches = |id: &u32| {
            let volume = &self.index.by_id[id];
            volume.locations.iter().any(|l| {
                (data_center.is_empty() || l.data_center == data_center)
                    && (rack.is_empty() || l.rack == rack)
            })
        };
        let candidates: Vec<u32> = ids.iter().copied().filter(matches).collect();
        if candidates.is_empty() {
            return None;
        }
        self.assign_cursor = self.assign_cursor.wrapping_add(1);
        let id = candidates[self.assign_cursor % candidates.len()];
        let volume = &self.index.by_id[&id];
        let location = volume
            .locations
            .iter()
            .find(|l| data_center.is_empty() || l.data_center == data_center)
            .unwrap_or(&volume.locations[0]);
        // The candidate matched the data center, so one of its replicas is there.
        assert!(data_center.is_empty() || location.data_center == data_center);
        Some((id, location.clone()))
    }

    /// Writable volume ids per layout (for `/dir/status`).
    pub fn writable_layouts(&mut self) -> Vec<(LayoutKey, Vec<u32>)> {
        self.refresh_index();
        let mut layouts: Vec<(LayoutKey, Vec<u32>)> = self
            .index
            .writable
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        layouts.sort_by(|a, b| a.0.cmp(&b.0));
        layouts
    }

    pub fn volume_count(&mut self) -> usize {
        self.refresh_index();
        self.index.by_id.len()
    }

    /// The largest volume id any live node reports (or was just given by a grow), or that
    /// a collection delete dropped.
    pub fn max_known_volume_id(&self) -> u32 {
        self.nodes
            .values()
            .flat_map(|n| n.all_volumes().map(|v| v.id))
            .fold(self.removed_volume_id_max, u32::max)
    }

    /// Takes `volume_id` out of the writable lists while its compaction commits (`false`
    /// puts it back).
    pub fn set_committing(&mut self, volume_id: u32, committing: bool) {
        // No assertion on the change: a new leadership may have replaced the topology
        // between the two calls.
        match committing {
            true => self.committing.insert(volume_id),
            false => self.committing.remove(&volume_id),
        };
        self.index_stale = true;
    }

    /// The volumes (of `collection`, or the one `volume_id`, when given) with their replicas,
    /// by volume id; a volume created moments ago and not reported yet is in too.
    pub fn vacuum_targets(
        &self,
        collection: Option<&str>,
        volume_id: Option<u32>,
    ) -> Vec<VacuumTarget> {
        let mut targets: BTreeMap<u32, Vec<Replica>> = BTreeMap::new();
        for node in self.nodes.values() {
            let chosen = node.all_volumes().filter(|volume| {
                collection.is_none_or(|c| volume.collection == c)
                    && volume_id.is_none_or(|id| volume.id == id)
            });
            for volume in chosen {
                targets.entry(volume.id).or_default().push(Replica {
                    node_url: node.url.clone(),
                    compact_revision: volume.compact_revision,
                });
            }
        }
        targets
            .into_iter()
            .map(|(volume_id, replicas)| VacuumTarget {
                volume_id,
                replicas,
            })
            .collect()
    }

    /// Volumes of node `node_url` whose replica there is behind another replica's
    /// compaction revision.
    pub fn lagging_on(&self, node_url: &str) -> Vec<u32> {
        let Some(node) = self.nodes.get(node_url) else {
            return Vec::new();
        };
        let replicas_of = |volume: &VolumeReport| VacuumTarget {
            volume_id: volume.id,
            replicas: self
                .nodes
                .values()
                .filter_map(|n| {
                    let replica = n.volumes.get(&volume.id)?;
                    Some(Replica {
                        node_url: n.url.clone(),
                        compact_revision: replica.compact_revision,
                    })
                })
                .collect(),
        };
        node.volumes
            .values()
            .filter(|volume| {
                let target = replicas_of(volume);
                target.lagging().iter().any(|r| r.node_url == node_url)
            })
            .map(|volume| volume.id)
            .collect()
    }

    /// Every volume (or the one `volume_id`) with its copies, by volume id.
    pub fn volume_copies(&self, volume_id: Option<u32>) -> Vec<VolumeCopies> {
        let mut volumes: BTreeMap<u32, VolumeCopies> = BTreeMap::new();
        for node in self.nodes.values() {
            let chosen = node
                .all_volumes()
                .filter(|volume| volume_id.is_none_or(|id| volume.id == id));
            for volume in chosen {
                let entry = volumes.entry(volume.id).or_insert_with(|| VolumeCopies {
                    volume_id: volume.id,
                    placement: volume.replica_placement,
                    copies: Vec::new(),
                });
                entry.copies.push(VolumeCopy {
                    node_url: node.url.clone(),
                    data_center: node.data_center.clone(),
                    rack: node.rack.clone(),
                    size: volume.size,
                    file_count: volume.file_count,
                    compact_revision: volume.compact_revision,
                });
            }
        }
        volumes.into_values().collect()
    }

    /// Nodes with room for another volume.
    pub fn node_slots(&self) -> Vec<NodeSlot> {
        self.nodes
            .values()
            .filter(|node| node.free_slots() > 0)
            .map(|node| NodeSlot {
                url: node.url.clone(),
                data_center: node.data_center.clone(),
                rack: node.rack.clone(),
                free: node.free_slots(),
            })
            .collect()
    }

    /// Volumes of `collection`, with the urls of the nodes that hold them.
    pub fn collection_volumes(&self, collection: &str) -> Vec<(u32, Vec<String>)> {
        let mut volumes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for node in self.nodes.values() {
            for volume in node.all_volumes() {
                if volume.collection == collection {
                    volumes.entry(volume.id).or_default().push(node.url.clone());
                }
            }
        }
        volumes.into_iter().collect()
    }
}

/// Whether copies at these (data center, rack) places, one per distinct node, make placement
/// `xyz`: `x + 1` data centers, the main one with `y + 1` racks, its main rack with `z + 1`
/// copies, every other rack and data center with one copy (what [`plan_placement`] picks).
pub fn placement_met(placement: ReplicaPlacement, places: &[(&str, &str)]) -> bool {
    if places.len() != placement.copy_count() {
        return false;
    }
    let mut by_dc: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (dc, rack) in places {
        by_dc.entry(dc).or_default().push(rack);
    }
    let other_racks = usize::from(placement.other_racks);
    let same_rack = usize::from(placement.same_rack);
    // With the copy count right, a main data center holding y + z + 1 copies leaves exactly
    // one copy for each of the x others.
    by_dc.len() == usize::from(placement.other_data_centers) + 1
        && by_dc.values().any(|racks| {
            let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
            for rack in racks {
                *per_rack.entry(rack).or_default() += 1;
            }
            racks.len() == other_racks + same_rack + 1
                && per_rack.len() == other_racks + 1
                && per_rack.values().any(|count| *count == same_rack + 1)
        })
}

/// One copy of a volume as the leader sees it (for re-replication and trimming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCopy {
    pub node_url: String,
    pub data_center: String,
    pub rack: String,
    pub size: u64,
    pub file_count: u64,
    pub compact_revision: u16,
}

/// A volume with every copy the live nodes report (or a grow just made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeCopies {
    pub volume_id: u32,
    pub placement: ReplicaPlacement,
    pub copies: Vec<VolumeCopy>,
}

/// Pick nodes for the replicas of one new volume following placement `xyz`: `z + 1` nodes in
/// one rack, `y` other racks of that data center, `x` other data centers. Nodes with more free
/// slots are preferred (ties broken by `shuffle_seed`), so volumes spread out. The first node
/// of the answer is in the main rack.
pub fn plan_placement(
    slots: &[NodeSlot],
    placement: ReplicaPlacement,
    data_center: &str,
    rack: &str,
    shuffle_seed: u64,
) -> Result<Vec<String>, &'static str> {
    let mut ordered: Vec<&NodeSlot> = slots.iter().filter(|s| s.free > 0).collect();
    ordered.sort_by_key(|s| {
        let tie = super::raft::node_id_of(&s.url) ^ shuffle_seed;
        (std::cmp::Reverse(s.free), tie)
    });
    let mut dcs: Vec<&str> = ordered.iter().map(|s| s.data_center.as_str()).collect();
    dedup_keep_order(&mut dcs);
    let other_dcs = usize::from(placement.other_data_centers);
    for main_dc in dcs.iter().copied() {
        if !data_center.is_empty() && main_dc != data_center {
            continue;
        }
        let far: Vec<&str> = dcs
            .iter()
            .copied()
            .filter(|d| *d != main_dc)
            .take(other_dcs)
            .collect();
        if far.len() < other_dcs {
            continue;
        }
        let in_dc: Vec<&NodeSlot> = ordered
            .iter()
            .copied()
            .filter(|s| s.data_center == main_dc)
            .collect();
        let Some(mut chosen) = plan_in_data_center(&in_dc, placement, rack) else {
            continue;
        };
        for dc in far {
            let node = ordered
                .iter()
                .find(|s| s.data_center == dc)
                .expect("dc has a node");
            chosen.push(node.url.clone());
        }
        assert_eq!(chosen.len(), placement.copy_count());
        debug_assert!(distinct(&chosen), "replicas on distinct nodes: {chosen:?}");
        debug_assert!(placement_met(placement, &places_of(slots, &chosen)));
        return Ok(chosen);
    }
    Err(NOT_ENOUGH_NODES)
}

/// The replicas inside the main data center: `z + 1` in one rack, one in each of `y` others.
fn plan_in_data_center(
    in_dc: &[&NodeSlot],
    placement: ReplicaPlacement,
    rack: &str,
) -> Option<Vec<String>> {
    let same_rack = usize::from(placement.same_rack);
    let other_racks = usize::from(placement.other_racks);
    let mut racks: Vec<&str> = in_dc.iter().map(|s| s.rack.as_str()).collect();
    dedup_keep_order(&mut racks);
    for main_rack in racks.iter().copied() {
        if !rack.is_empty() && main_rack != rack {
            continue;
        }
        let rack_nodes: Vec<&&NodeSlot> = in_dc.iter().filter(|s| s.rack == main_rack).collect();
        let others: Vec<&str> = racks
            .iter()
            .copied()
            .filter(|r| *r != main_rack)
            .take(other_racks)
            .collect();
        if rack_nodes.len() < same_rack + 1 || others.len() < other_racks {
            continue;
        }
        let mut chosen: Vec<String> = rack_nodes[..=same_rack]
            .iter()
            .map(|s| s.url.clone())
            .collect();
        for other in others {
            let node = in_dc
                .iter()
                .find(|s| s.rack == other)
                .expect("rack has a node");
            chosen.push(node.url.clone());
        }
        assert_eq!(chosen.len(), same_rack + 1 + other_racks);
        return Some(chosen);
    }
    None
}

/// The (data center, rack) of each of `urls` among `slots`.
fn places_of<'a>(slots: &'a [NodeSlot], urls: &[String]) -> Vec<(&'a str, &'a str)> {
    urls.iter()
        .filter_map(|url| slots.iter().find(|s| s.url == *url))
        .map(|s| (s.data_center.as_str(), s.rack.as_str()))
        .collect()
}

fn distinct(urls: &[String]) -> bool {
    let set: BTreeSet<&String> = urls.iter().collect();
    set.len() == urls.len()
}

fn dedup_keep_order(items: &mut Vec<&str>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(*item));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(url: &str, dc: &str, rack: &str, free: u32) -> NodeSlot {
        NodeSlot {
            url: url.into(),
            data_center: dc.into(),
            rack: rack.into(),
            free,
        }
    }

    fn placement(text: &str) -> ReplicaPlacement {
        ReplicaPlacement::parse(text).unwrap()
    }

    // Proves each placement picks nodes in the right data centers and racks, or refuses.
    #[test]
    fn placement_follows_xyz() {
        let slots = vec![
            slot("a:1", "dc1", "r1", 5),
            slot("b:1", "dc1", "r1", 4),
            slot("c:1", "dc1", "r2", 3),
            slot("d:1", "dc2", "r1", 2),
        ];
        let one = plan_placement(&slots, placement("000"), "", "", 0).unwrap();
        assert_eq!(one, vec!["a:1"]);
        let same_rack = plan_placement(&slots, placement("001"), "", "", 0).unwrap();
        assert_eq!(same_rack, vec!["a:1", "b:1"]);
        let other_rack = plan_placement(&slots, placement("010"), "", "", 0).unwrap();
        assert_eq!(other_rack, vec!["a:1", "c:1"]);
        let other_dc = plan_placement(&slots, placement("100"), "", "", 0).unwrap();
        assert_eq!(other_dc, vec!["a:1", "d:1"]);
        let both = plan_placement(&slots, placement("110"), "", "", 0).unwrap();
        assert_eq!(both, vec!["a:1", "c:1", "d:1"]);
        assert_eq!(
            plan_placement(&slots, placement("200"), "", "", 0),
            Err(NOT_ENOUGH_NODES)
        );
        assert_eq!(
            plan_placement(&slots, placement("002"), "", "", 0),
            Err(NOT_ENOUGH_NODES)
        );
        let in_dc2 = plan_placement(&slots, placement("000"), "dc2", "", 0).unwrap();
        assert_eq!(in_dc2, vec!["d:1"]);
    }

    // Proves the placement check takes exactly the layouts xyz describes: right data
    // centers, racks and copies per rack, and nothing weaker or merely larger.
    #[test]
    fn placement_met_checks_layouts() {
        let met = |text: &str, places: &[(&str, &str)]| placement_met(placement(text), places);
        assert!(met("000", &[("dc1", "r1")]));
        assert!(met("001", &[("dc1", "r1"), ("dc1", "r1")]));
        assert!(!met("001", &[("dc1", "r1"), ("dc1", "r2")]));
        assert!(met("010", &[("dc1", "r1"), ("dc1", "r2")]));
        assert!(!met("010", &[("dc1", "r1"), ("dc1", "r1")]));
        assert!(!met("010", &[("dc1", "r1"), ("dc2", "r2")]));
        assert!(met("100", &[("dc1", "r1"), ("dc2", "r1")]));
        assert!(!met("100", &[("dc1", "r1")]), "one copy is not two");
        assert!(met("110", &[("dc2", "r9"), ("dc1", "r1"), ("dc1", "r2")]));
        assert!(!met("110", &[("dc1", "r1"), ("dc1", "r2"), ("dc1", "r3")]));
        assert!(met("200", &[("a", "r"), ("b", "r"), ("c", "r")]));
        assert!(met("011", &[("a", "r1"), ("a", "r1"), ("a", "r2")]));
        assert!(!met("011", &[("a", "r1"), ("a", "r2"), ("a", "r3")]));
    }

    proptest::proptest! {
        // Proves the heartbeat decoder refuses or accepts any text without panicking.
        #[test]
        fn heartbeat_decoding_never_panics(text in ".{0,200}") {
            let _ = serde_json::from_str::<Heartbeat>(&text);
        }
    }

    fn beat(port: u16, dc: &str, volumes: Vec<VolumeReport>) -> Heartbeat {
        Heartbeat {
            ip: "127.0.0.1".into(),
            port,
            public_url: String::new(),
            data_center: dc.into(),
            rack: String::new(),
            max_volume_count: 4,
            max_file_key: 0,
            grpc_port: 0,
            volumes,
        }
    }

    fn volume(id: u32, size: u64, replication: &str) -> VolumeReport {
        VolumeReport {
            id,
            port: 0,
            size,
            collection: String::new(),
            file_count: 0,
            delete_count: 0,
            deleted_byte_count: 0,
            read_only: false,
            replica_placement: placement(replication),
            ttl: kelp_engine::format::Ttl::EMPTY,
            compact_revision: 0,
            modified_at_second: 0,
        }
    }

    // Proves volumes a collection delete dropped still count as known, so a new leader's
    // warm-up check (Raft's largest volume id against the largest known one) does not take
    // them for volumes no heartbeat has reported yet and refuse to grow the collection again.
    #[test]
    fn deleted_collections_stay_known_volume_ids() {
        let mut topology = Topology::new(1000, Duration::from_secs(1));
        let mut kept = volume(3, 0, "000");
        kept.collection = "kept".into();
        let mut dropped = volume(9, 0, "000");
        dropped.collection = "dropped".into();
        topology.heartbeat(beat(8080, "dc1", vec![kept, dropped]), Instant::now());
        assert_eq!(topology.max_known_volume_id(), 9);
        topology.remove_collection("dropped");
        assert!(topology.lookup(9).is_none());
        assert_eq!(topology.max_known_volume_id(), 9);
        topology.remove_collection("kept");
        assert_eq!(topology.volume_count(), 0);
        assert_eq!(topology.max_known_volume_id(), 9);
    }

    // Proves a volume is writable only with all its replicas alive and below the size limit,
    // and that a node missing three beats takes its volumes out of lookups.
    #[test]
    fn writable_volumes_and_dead_nodes() {
        let start = Instant::now();
        let mut topology = Topology::new(1000, Duration::from_secs(1));
        let key = LayoutKey::new("", placement("001"), kelp_engine::format::Ttl::EMPTY);
        topology.heartbeat(
            beat(1, "dc1", vec![volume(1, 10, "001"), volume(2, 2000, "001")]),
            start,
        );
        assert!(
            topology.pick_writable(&key, "", "").is_none(),
            "one replica of two"
        );
        topology.heartbeat(
            beat(2, "dc1", vec![volume(1, 10, "001"), volume(2, 10, "001")]),
            start,
        );
        let (id, _) = topology.pick_writable(&key, "", "").unwrap();
        assert_eq!(id, 1, "volume 2 is past the size limit");
        assert_eq!(topology.lookup(1).unwrap().locations.len(), 2);

        topology.heartbeat(beat(2, "dc1", vec![volume(1, 10, "001")]), start);
        let later = start + Duration::from_millis(3500);
        topology.heartbeat(beat(2, "dc1", vec![volume(1, 10, "001")]), later);
        assert_eq!(topology.drop_dead_nodes(later), vec!["127.0.0.1:1"]);
        assert_eq!(topology.lookup(1).unwrap().locations.len(), 1);
        assert!(topology.lookup(2).is_none());
    }

    // Proves a committing volume leaves the writable list and comes back after, and that a
    // replica behind the other's compaction revision is found on its node only.
    #[test]
    fn committing_and_lagging_replicas() {
        let now = Instant::now();
        let mut topology = Topology::new(1000, Duration::from_secs(1));
        let key = LayoutKey::new("", placement("001"), kelp_engine::format::Ttl::EMPTY);
        let mut compacted = volume(1, 10, "001");
        compacted.compact_revision = 1;
        topology.heartbeat(beat(1, "dc1", vec![compacted]), now);
        topology.heartbeat(beat(2, "dc1", vec![volume(1, 10, "001")]), now);
        assert_eq!(topology.pick_writable(&key, "", "").map(|p| p.0), Some(1));
        topology.set_committing(1, true);
        assert!(topology.pick_writable(&key, "", "").is_none());
        assert!(topology.lookup(1).is_some(), "reads go on");
        topology.set_committing(1, false);
        assert_eq!(topology.pick_writable(&key, "", "").map(|p| p.0), Some(1));
        assert_eq!(topology.lagging_on("127.0.0.1:2"), vec![1]);
        assert!(topology.lagging_on("127.0.0.1:1").is_empty());
        let targets = topology.vacuum_targets(None, Some(1));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].replicas.len(), 2);
        assert!(topology.vacuum_targets(Some("other"), None).is_empty());
    }
}
