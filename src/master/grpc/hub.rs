//! The leader's `KeepConnected` clients: what they were told of the volume locations, the
//! changes pushed to them since, and the filers (and S3 gateways, brokers) that announced
//! themselves, which `ListClusterNodes` lists.
//!
//! The volume locations are a view derived from the topology: for each place a volume is
//! served (a volume server's core, SeaweedFS's "url"), the set of volume ids. A poller
//! compares the view with the topology when the topology changed and pushes the difference
//! (`new_vids`, `deleted_vids`) to every client; a client that connects gets the whole view
//! first. Both happen under one lock, so a client misses no change and gets none twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::mpsc;

use super::super::limits::{KEEP_CONNECTED_CLIENTS_MAX, KEEP_CONNECTED_QUEUE_MAX};
use super::super::node::Master;
use super::super::topology::{Location, Topology, location_of};
use crate::pb::master_pb::{
    ClusterNodeUpdate, KeepConnectedRequest, KeepConnectedResponse, LockRingUpdate, VolumeLocation,
};
use crate::pb::unix_now_ns;

/// Volume ids by the place that serves them.
pub type LocationView = BTreeMap<Location, BTreeSet<u32>>;

/// SeaweedFS's names of the client kinds the master keeps a list of.
pub const FILER: &str = "filer";
const LISTED_KINDS: [&str; 3] = [FILER, "s3", "broker"];

/// The volume locations of `topology` (volumes a grow just created included).
pub fn location_view(topology: &Topology) -> LocationView {
    let mut view = LocationView::new();
    for node in topology.nodes.values() {
        let pending = node.pending.values().map(|(volume, _)| volume);
        for volume in node.volumes.values().chain(pending) {
            let location = location_of(node, volume);
            view.entry(location).or_default().insert(volume.id);
        }
    }
    view
}

/// What changed from `old` to `new`: per place, the ids it gained and lost.
pub fn location_changes(old: &LocationView, new: &LocationView) -> Vec<VolumeLocation> {
    let empty = BTreeSet::new();
    let places: BTreeSet<&Location> = old.keys().chain(new.keys()).collect();
    let mut changes = Vec::new();
    for place in places {
        let before = old.get(place).unwrap_or(&empty);
        let after = new.get(place).unwrap_or(&empty);
        let new_vids: Vec<u32> = after.difference(before).copied().collect();
        let deleted_vids: Vec<u32> = before.difference(after).copied().collect();
        if !new_vids.is_empty() || !deleted_vids.is_empty() {
            changes.push(volume_location(place, new_vids, deleted_vids));
        }
    }
    changes
}

fn volume_location(place: &Location, new_vids: Vec<u32>, deleted_vids: Vec<u32>) -> VolumeLocation {
    VolumeLocation {
        url: place.url.clone(),
        public_url: place.public_url.clone(),
        new_vids,
        deleted_vids,
        leader: String::new(),
        data_center: place.data_center.clone(),
        grpc_port: u32::from(place.grpc_port),
    }
}

/// What a client that connects is told first: every place with all its volumes, the first
/// message naming the leader (a message naming only the leader when there are no volumes).
pub fn whole_view(view: &LocationView, leader: &str) -> Vec<KeepConnectedResponse> {
    let mut messages: Vec<VolumeLocation> = view
        .iter()
        .map(|(place, ids)| volume_location(place, ids.iter().copied().collect(), Vec::new()))
        .collect();
    if messages.is_empty() {
        messages.push(VolumeLocation::default());
    }
    messages[0].leader = leader.to_string();
    messages
        .into_iter()
        .map(|location| KeepConnectedResponse {
            volume_location: Some(location),
            ..Default::default()
        })
        .collect()
}

/// A filer, S3 gateway or broker that announced itself with `KeepConnected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub address: String,
    pub version: String,
    pub created_at_ns: i64,
    pub data_center: String,
    pub rack: String,
    /// Its open `KeepConnected` streams: it is listed while one is open.
    connections: u32,
}

/// (kind, filer group, address)
type NodeKey = (String, String, String);

struct Client {
    sender: mpsc::Sender<KeepConnectedResponse>,
    kind: String,
    filer_group: String,
}

#[derive(Default)]
struct HubState {
    view: LocationView,
    /// The leadership (its start) and topology change count the view was taken at.
    view_taken_at: Option<(Option<Instant>, u64)>,
    clients: BTreeMap<u64, Client>,
    next_client_id: u64,
    nodes: BTreeMap<NodeKey, ClusterNode>,
    lock_ring_version: i64,
}

/// A client's registration: its id, the messages it gets first, and its queue of changes.
pub struct Registration {
    pub id: u64,
    pub first_messages: Vec<KeepConnectedResponse>,
    pub changes: mpsc::Receiver<KeepConnectedResponse>,
}

#[derive(Default)]
pub struct Hub {
    state: Mutex<HubState>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("keep-connected hub lock poisoned")
    }

    /// Push what changed in the topology since the last look to every client. On a master
    /// that does not lead, every client is dropped (their streams tell them the leader).
    pub fn refresh(&self, master: &Master) {
        refresh_locked(&mut self.lock(), master);
    }

    /// Register a client that sent `request`; `leader` is named in its first message.
    pub fn connect(
        &self,
        master: &Master,
        request: &KeepConnectedRequest,
        leader: &str,
    ) -> Result<Registration, String> {
        let mut state = self.lock();
        refresh_locked(&mut state, master);
        if state.clients.len() >= KEEP_CONNECTED_CLIENTS_MAX {
            return Err(format!(
                "this master already serves {KEEP_CONNECTED_CLIENTS_MAX} KeepConnected clients"
            ));
        }
        let mut first_messages = whole_view(&state.view, leader);
        first_messages.extend(node_updates(&state.nodes, FILER, &request.filer_group));
        let (sender, changes) = mpsc::channel(KEEP_CONNECTED_QUEUE_MAX);
        let id = state.next_client_id;
        state.next_client_id += 1;
        let client = Client {
            sender,
            kind: request.client_type.clone(),
            filer_group: request.filer_group.clone(),
        };
        state.clients.insert(id, client);
        add_node(&mut state, request);
        if request.client_type == FILER {
            first_messages.push(lock_ring(&state, &request.filer_group));
        }
        Ok(Registration {
            id,
            first_messages,
            changes,
        })
    }

    /// The client `id` (which sent `request`) is gone.
    pub fn disconnect(&self, id: u64, request: &KeepConnectedRequest) {
        let mut state = self.lock();
        state.clients.remove(&id);
        remove_node(&mut state, request);
    }

    /// The `kind` nodes of `filer_group` that are connected now, oldest first, at most `limit`
    /// (none: all).
    pub fn cluster_nodes(&self, kind: &str, filer_group: &str, limit: usize) -> Vec<ClusterNode> {
        let state = self.lock();
        let mut nodes: Vec<ClusterNode> = state
            .nodes
            .iter()
            .filter(|((k, group, _), _)| k == kind && group == filer_group)
            .map(|(_, node)| node.clone())
            .collect();
        nodes.sort_by_key(|node| node.created_at_ns);
        nodes.truncate(limit);
        nodes
    }

    /// Whether a `kind` node at `address` is connected (in any filer group; with or without
    /// the `.grpcPort` suffix).
    pub fn is_connected_node(&self, kind: &str, address: &str) -> bool {
        let wanted = crate::pb::http_address(address);
        let state = self.lock();
        state
            .nodes
            .keys()
            .any(|(k, _, a)| k == kind && crate::pb::http_address(a) == wanted)
    }
}

fn refresh_locked(state: &mut HubState, master: &Master) {
    if !master.is_leader.load(std::sync::atomic::Ordering::Acquire) {
        // Dropping the senders ends every client's stream (see keep_connected.rs).
        state.clients.clear();
        state.view.clear();
        state.view_taken_at = None;
        return;
    }
    let leader_since = *master.leader_since.lock().expect("leader_since lock");
    let view = {
        let topology = master.lock_topology();
        let taken_at = Some((leader_since, topology.changes()));
        if state.view_taken_at == taken_at {
            return;
        }
        state.view_taken_at = taken_at;
        location_view(&topology)
    };
    let messages = location_changes(&state.view, &view);
    state.view = view;
    for location in messages {
        let message = KeepConnectedResponse {
            volume_location: Some(location),
            ..Default::default()
        };
        broadcast(state, &message, |_| true);
    }
}

/// Queue `message` for every client `wanted` picks; a client whose queue is full is dropped.
fn broadcast(
    state: &mut HubState,
    message: &KeepConnectedResponse,
    wanted: impl Fn(&Client) -> bool,
) {
    state.clients.retain(|id, client| {
        if !wanted(client) {
            return true;
        }
        match client.sender.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    "master: KeepConnected client {id} ({}) fell {KEEP_CONNECTED_QUEUE_MAX} \
                     messages behind; dropped (it reconnects and gets the whole list)",
                    client.kind
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}

fn node_key(request: &KeepConnectedRequest) -> Option<NodeKey> {
    let listed = LISTED_KINDS.contains(&request.client_type.as_str());
    (listed && !request.client_address.is_empty()).then(|| {
        (
            request.client_type.clone(),
            request.filer_group.clone(),
            request.client_address.clone(),
        )
    })
}

fn add_node(state: &mut HubState, request: &KeepConnectedRequest) {
    let Some(key) = node_key(request) else {
        return;
    };
    if let Some(node) = state.nodes.get_mut(&key) {
        node.connections += 1;
        return;
    }
    let node = ClusterNode {
        address: request.client_address.clone(),
        version: request.version.clone(),
        created_at_ns: unix_now_ns(),
        data_center: request.data_center.clone(),
        rack: request.rack.clone(),
        connections: 1,
    };
    state.nodes.insert(key.clone(), node);
    node_changed(state, &key, true);
}

fn remove_node(state: &mut HubState, request: &KeepConnectedRequest) {
    let Some(key) = node_key(request) else {
        return;
    };
    let Some(node) = state.nodes.get_mut(&key) else {
        return;
    };
    node.connections -= 1;
    if node.connections == 0 {
        state.nodes.remove(&key);
        node_changed(state, &key, false);
    }
}

/// Tell every client a node came or went; a filer's group gets its new lock ring too.
fn node_changed(state: &mut HubState, key: &NodeKey, is_add: bool) {
    let (kind, group, address) = key;
    let update = KeepConnectedResponse {
        cluster_node_update: Some(ClusterNodeUpdate {
            node_type: kind.clone(),
            address: address.clone(),
            is_add,
            filer_group: group.clone(),
            created_at_ns: unix_now_ns(),
        }),
        ..Default::default()
    };
    broadcast(state, &update, |_| true);
    if kind == FILER {
        state.lock_ring_version += 1;
        let ring = lock_ring(state, group);
        broadcast(state, &ring, |c| c.kind == FILER && c.filer_group == *group);
    }
}

/// Every `kind` node of `filer_group`, as "it came" updates (for a client that just connected).
fn node_updates(
    nodes: &BTreeMap<NodeKey, ClusterNode>,
    kind: &str,
    filer_group: &str,
) -> Vec<KeepConnectedResponse> {
    nodes
        .iter()
        .filter(|((k, group, _), _)| k == kind && group == filer_group)
        .map(|((k, group, address), node)| KeepConnectedResponse {
            cluster_node_update: Some(ClusterNodeUpdate {
                node_type: k.clone(),
                address: address.clone(),
                is_add: true,
                filer_group: group.clone(),
                created_at_ns: node.created_at_ns,
            }),
            ..Default::default()
        })
        .collect()
}

/// The filers of `filer_group`, which share a lock ring.
fn lock_ring(state: &HubState, filer_group: &str) -> KeepConnectedResponse {
    let servers = state
        .nodes
        .keys()
        .filter(|(kind, group, _)| kind == FILER && group == filer_group)
        .map(|(_, _, address)| address.clone())
        .collect();
    KeepConnectedResponse {
        lock_ring_update: Some(LockRingUpdate {
            filer_group: filer_group.to_string(),
            servers,
            version: state.lock_ring_version,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(port: u16) -> Location {
        Location {
            url: format!("127.0.0.1:{port}"),
            public_url: format!("localhost:{port}"),
            grpc_port: 18080,
            data_center: "dc1".into(),
            rack: "r1".into(),
        }
    }

    fn view(entries: &[(u16, &[u32])]) -> LocationView {
        entries
            .iter()
            .map(|(port, ids)| (place(*port), ids.iter().copied().collect()))
            .collect()
    }

    // Proves the changes between two views name, per place, exactly the ids it gained and
    // lost, with the place's public url, data center and gRPC port (what SeaweedFS's
    // clients put in their volume maps), and nothing for places that did not change.
    #[test]
    fn changes_name_gained_and_lost_ids_per_place() {
        let old = view(&[(8081, &[1, 2]), (8082, &[3])]);
        let new = view(&[(8081, &[2, 4]), (8083, &[5])]);
        let changes = location_changes(&old, &new);
        let by_url: BTreeMap<&str, (&[u32], &[u32])> = changes
            .iter()
            .map(|c| (c.url.as_str(), (&c.new_vids[..], &c.deleted_vids[..])))
            .collect();
        assert_eq!(by_url["127.0.0.1:8081"], (&[4][..], &[1][..]));
        assert_eq!(by_url["127.0.0.1:8082"], (&[][..], &[3][..]));
        assert_eq!(by_url["127.0.0.1:8083"], (&[5][..], &[][..]));
        assert_eq!(changes.len(), 3);
        let first = &changes[0];
        assert_eq!(
            (
                first.public_url.as_str(),
                first.data_center.as_str(),
                first.grpc_port
            ),
            ("localhost:8081", "dc1", 18080)
        );
        assert!(location_changes(&new, &new).is_empty());
    }

    // Proves a new client is told the leader even when no volume exists (SeaweedFS's clients
    // wait for that first message), and otherwise every place with all its ids, the leader
    // in the first message only.
    #[test]
    fn whole_view_names_the_leader_first() {
        let empty = whole_view(&LocationView::new(), "m:9333");
        assert_eq!(empty.len(), 1);
        let only = empty[0].volume_location.as_ref().unwrap();
        assert_eq!((only.leader.as_str(), only.url.as_str()), ("m:9333", ""));
        let full = whole_view(&view(&[(8081, &[1, 2]), (8082, &[3])]), "m:9333");
        let locations: Vec<&VolumeLocation> = full
            .iter()
            .map(|m| m.volume_location.as_ref().unwrap())
            .collect();
        assert_eq!(locations[0].leader, "m:9333");
        assert_eq!(locations[0].new_vids, vec![1, 2]);
        assert_eq!(
            (locations[1].leader.as_str(), &locations[1].new_vids[..]),
            ("", &[3][..])
        );
    }

    fn request(kind: &str, address: &str) -> KeepConnectedRequest {
        KeepConnectedRequest {
            client_type: kind.into(),
            client_address: address.into(),
            ..Default::default()
        }
    }

    // Proves a filer is listed while one of its streams is open, other clients hear it come
    // and go, the filers of the group get the new lock ring, and a client too slow to take
    // its messages is dropped instead of buffered for.
    #[test]
    fn filers_are_listed_while_connected() {
        let mut state = HubState::default();
        let (sender, mut shell) = mpsc::channel(KEEP_CONNECTED_QUEUE_MAX);
        let shell_client = Client {
            sender,
            kind: "shell".into(),
            filer_group: String::new(),
        };
        state.clients.insert(0, shell_client);
        let filer = request(FILER, "127.0.0.1:8888");
        add_node(&mut state, &filer);
        add_node(&mut state, &filer);
        let added = shell.try_recv().unwrap().cluster_node_update.unwrap();
        assert!(added.is_add && added.address == "127.0.0.1:8888");
        assert!(
            shell.try_recv().is_err(),
            "a second stream of one filer is no news"
        );
        remove_node(&mut state, &filer);
        assert_eq!(state.nodes.len(), 1, "still one stream open");
        remove_node(&mut state, &filer);
        assert!(state.nodes.is_empty());
        let removed = shell.try_recv().unwrap().cluster_node_update.unwrap();
        assert!(!removed.is_add);
        add_node(&mut state, &request("client", "127.0.0.1:1"));
        assert!(
            state.nodes.is_empty(),
            "only filers, s3 and brokers are listed"
        );

        for _ in 0..KEEP_CONNECTED_QUEUE_MAX {
            add_node(&mut state, &request("s3", "a:1"));
            remove_node(&mut state, &request("s3", "a:1"));
        }
        assert!(
            state.clients.is_empty(),
            "the client that read nothing was dropped"
        );
    }
}
