//! The handlers of `master_pb.Seaweed`: each checks leadership, converts the request, calls
//! what the HTTP API calls, and converts the answer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use kelp_engine::format::{FileId, ReplicaPlacement, check_collection};
use tonic::{Request, Response, Status, Streaming};

use super::super::guard;
use super::super::limits::{
    ASSIGN_COUNT_MAX, CLUSTER_NODES_LISTED_MAX, OUTBOUND_CALL_TIMEOUT_MS,
    VOLUME_LIST_STREAM_BATCH_MAX,
};
use super::super::node::Master;
use super::super::params::{AssignFields, lookup_volume_id};
use super::super::topology::Location as TopologyLocation;
use super::topology_info::{self, VolumeFilter};
use super::{GrpcState, client_address, keep_connected, require_leader, status_of};
use crate::pb::master_pb::lookup_volume_response::VolumeIdLocation;
use crate::pb::master_pb::seaweed_server::Seaweed;
use crate::pb::master_pb::*;
use crate::pb::unix_now_ns;

pub struct MasterService {
    pub state: Arc<GrpcState>,
}

type GrpcResult<T> = Result<Response<T>, Status>;

fn location(place: &TopologyLocation) -> Location {
    Location {
        url: place.url.clone(),
        public_url: place.public_url.clone(),
        grpc_port: u32::from(place.grpc_port),
        data_center: place.data_center.clone(),
    }
}

#[tonic::async_trait]
impl Seaweed for MasterService {
    type SendHeartbeatStream =
        Pin<Box<dyn Stream<Item = Result<HeartbeatResponse, Status>> + Send>>;

    /// Kelp's volume servers heartbeat to a Kelp master over HTTP (`POST /heartbeat`, with
    /// `/cluster/watch` to follow the leader); a SeaweedFS volume server is told so.
    async fn send_heartbeat(
        &self,
        _request: Request<Streaming<Heartbeat>>,
    ) -> GrpcResult<Self::SendHeartbeatStream> {
        Err(Status::unimplemented(
            "a Kelp master takes volume server heartbeats over HTTP (POST /heartbeat); \
             run Kelp volume servers against it",
        ))
    }

    type KeepConnectedStream = keep_connected::Outbound;

    async fn keep_connected(
        &self,
        request: Request<Streaming<KeepConnectedRequest>>,
    ) -> GrpcResult<Self::KeepConnectedStream> {
        let stream = keep_connected::open(self.state.clone(), request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn lookup_volume(
        &self,
        request: Request<LookupVolumeRequest>,
    ) -> GrpcResult<LookupVolumeResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        let mut topology = master.lock_topology();
        let volume_id_locations = request
            .into_inner()
            .volume_or_file_ids
            .into_iter()
            .map(|asked| {
                let mut answer = VolumeIdLocation {
                    volume_or_file_id: asked.clone(),
                    ..VolumeIdLocation::default()
                };
                // For a file id, a token to change the file (as /dir/lookup?fileId= gives).
                if asked.contains(',') {
                    answer.auth = guard::file_token(master, &asked, false).unwrap_or_default();
                }
                match lookup_volume_id(&asked) {
                    Err(message) => answer.error = message,
                    Ok(volume_id) => match topology.lookup(volume_id) {
                        Some(volume) => {
                            answer.locations = volume.locations.iter().map(location).collect()
                        }
                        None => answer.error = format!("volume id {volume_id} not found"),
                    },
                }
                answer
            })
            .collect();
        Ok(Response::new(LookupVolumeResponse {
            volume_id_locations,
        }))
    }

    async fn assign(&self, request: Request<AssignRequest>) -> GrpcResult<AssignResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        super::super::quorum::check_lease(master).map_err(|e| status_of(&e))?;
        let request = request.into_inner();
        let fields = AssignFields {
            collection: &request.collection,
            replication: &request.replication,
            ttl: &request.ttl,
            data_center: &request.data_center,
            rack: &request.rack,
        };
        let options = fields
            .check(master.config.default_placement)
            .map_err(Status::invalid_argument)?;
        check_disk_type(&request.disk_type)?;
        let count = match request.count {
            0 => 1,
            count if count <= ASSIGN_COUNT_MAX => count,
            count => {
                let text =
                    format!("count {count} must be a whole number from 1 to {ASSIGN_COUNT_MAX}");
                return Err(Status::invalid_argument(text));
            }
        };
        let assignment = master
            .assign(&options, count)
            .await
            .map_err(|e| status_of(&e))?;
        let volume_id = FileId::parse(&assignment.fid)
            .expect("the master hands out well-formed fids")
            .volume_id;
        let replicas = match master.lock_topology().lookup(volume_id) {
            Some(volume) => volume
                .locations
                .iter()
                .filter(|place| **place != assignment.location)
                .map(location)
                .collect(),
            None => Vec::new(),
        };
        let auth = guard::file_token(master, &assignment.fid, false).unwrap_or_default();
        Ok(Response::new(AssignResponse {
            fid: assignment.fid,
            count: assignment.count,
            error: String::new(),
            auth,
            replicas,
            location: Some(location(&assignment.location)),
        }))
    }

    async fn statistics(
        &self,
        request: Request<StatisticsRequest>,
    ) -> GrpcResult<StatisticsResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        let request = request.into_inner();
        check_disk_type(&request.disk_type)?;
        let placement = match request.replication.as_str() {
            "" => master.config.default_placement,
            text => ReplicaPlacement::parse(text)
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        };
        let topology = master.lock_topology();
        let usage = topology_info::usage(&topology, &request.collection, placement.copy_count());
        Ok(Response::new(StatisticsResponse {
            total_size: usage.total_bytes,
            used_size: usage.used_bytes,
            file_count: usage.file_count,
            logical_total_size: usage.logical_total_bytes,
            logical_used_size: usage.logical_used_bytes,
        }))
    }

    async fn collection_list(
        &self,
        request: Request<CollectionListRequest>,
    ) -> GrpcResult<CollectionListResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        // Kelp has no erasure-coded volumes: only the normal ones can be asked for.
        if !request.into_inner().include_normal_volumes {
            return Ok(Response::new(CollectionListResponse::default()));
        }
        let known = master.state().collections;
        let names = topology_info::collection_names(&master.lock_topology(), &known);
        let collections = names.into_iter().map(|name| Collection { name }).collect();
        Ok(Response::new(CollectionListResponse { collections }))
    }

    async fn collection_delete(
        &self,
        request: Request<CollectionDeleteRequest>,
    ) -> GrpcResult<CollectionDeleteResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        check_caller(master, &request, "calls to CollectionDelete")?;
        let name = request.into_inner().name;
        check_collection(&name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // As in SeaweedFS, deleting a collection that does not exist succeeds over gRPC.
        let exists = !master.lock_topology().collection_volumes(&name).is_empty()
            || master.state().collections.contains(&name);
        if exists {
            master
                .delete_collection(&name)
                .await
                .map_err(|e| status_of(&e))?;
        }
        Ok(Response::new(CollectionDeleteResponse {}))
    }

    async fn volume_list(
        &self,
        request: Request<VolumeListRequest>,
    ) -> GrpcResult<VolumeListResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        let filter = VolumeFilter::of(&request.into_inner());
        Ok(Response::new(self.volume_list_answer(&filter)))
    }

    type VolumeListStreamStream =
        Pin<Box<dyn Stream<Item = Result<VolumeListStreamResponse, Status>> + Send>>;

    async fn volume_list_stream(
        &self,
        request: Request<VolumeListRequest>,
    ) -> GrpcResult<Self::VolumeListStreamStream> {
        let master = &self.state.master;
        require_leader(master)?;
        let filter = VolumeFilter::of(&request.into_inner());
        let header = VolumeListStreamResponse {
            header: Some(self.volume_list_answer(&VolumeFilter::none())),
            ..VolumeListStreamResponse::default()
        };
        let listed = topology_info::topology_info(&master.lock_topology(), &filter);
        let mut messages = vec![header];
        messages.extend(volume_batches(listed));
        let stream = futures_util::stream::iter(messages.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn vacuum_volume(
        &self,
        request: Request<VacuumVolumeRequest>,
    ) -> GrpcResult<VacuumVolumeResponse> {
        require_leader(&self.state.master)?;
        check_caller(&self.state.master, &request, "calls to VacuumVolume")?;
        // The same answer as HTTP's /vol/vacuum.
        Err(Status::unimplemented("vacuum is not yet supported"))
    }

    async fn get_master_configuration(
        &self,
        _request: Request<GetMasterConfigurationRequest>,
    ) -> GrpcResult<GetMasterConfigurationResponse> {
        let config = &self.state.master.config;
        let leader = self.state.master.leader_address().unwrap_or_default();
        let limit_mb = config.volume_size_limit_bytes / (1024 * 1024);
        Ok(Response::new(GetMasterConfigurationResponse {
            metrics_address: String::new(),
            metrics_interval_seconds: 0,
            default_replication: config.default_placement.to_string(),
            leader: match leader.as_str() {
                "" => String::new(),
                leader => client_address(config, leader),
            },
            volume_size_limit_m_b: u32::try_from(limit_mb).unwrap_or(u32::MAX),
            volume_preallocate: false,
        }))
    }

    async fn list_cluster_nodes(
        &self,
        request: Request<ListClusterNodesRequest>,
    ) -> GrpcResult<ListClusterNodesResponse> {
        require_leader(&self.state.master)?;
        let request = request.into_inner();
        let limit = match usize::try_from(request.limit) {
            Ok(limit) if limit > 0 => limit.min(CLUSTER_NODES_LISTED_MAX),
            _ => CLUSTER_NODES_LISTED_MAX,
        };
        let nodes = self
            .state
            .hub
            .cluster_nodes(&request.client_type, &request.filer_group, limit);
        let cluster_nodes = nodes
            .into_iter()
            .map(|node| list_cluster_nodes_response::ClusterNode {
                address: node.address,
                version: node.version,
                created_at_ns: node.created_at_ns,
                data_center: node.data_center,
                rack: node.rack,
            })
            .collect();
        Ok(Response::new(ListClusterNodesResponse { cluster_nodes }))
    }

    async fn lease_admin_token(
        &self,
        request: Request<LeaseAdminTokenRequest>,
    ) -> GrpcResult<LeaseAdminTokenResponse> {
        require_leader(&self.state.master)?;
        let request = request.into_inner();
        let previous = super::admin_lock::Lease {
            token: request.previous_token,
            lock_ts_ns: request.previous_lock_time,
        };
        let leased = self
            .state
            .admin_locks
            .lock()
            .expect("admin lock table poisoned")
            .lease(
                &request.lock_name,
                &request.client_name,
                &request.message,
                previous,
                unix_now_ns(),
                rand::random(),
            )
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(LeaseAdminTokenResponse {
            token: leased.token,
            lock_ts_ns: leased.lock_ts_ns,
        }))
    }

    async fn release_admin_token(
        &self,
        request: Request<ReleaseAdminTokenRequest>,
    ) -> GrpcResult<ReleaseAdminTokenResponse> {
        require_leader(&self.state.master)?;
        let request = request.into_inner();
        let lease = super::admin_lock::Lease {
            token: request.previous_token,
            lock_ts_ns: request.previous_lock_time,
        };
        self.state
            .admin_locks
            .lock()
            .expect("admin lock table poisoned")
            .release(&request.lock_name, lease);
        Ok(Response::new(ReleaseAdminTokenResponse {}))
    }

    async fn ping(&self, request: Request<PingRequest>) -> GrpcResult<PingResponse> {
        let start_time_ns = unix_now_ns();
        let request = request.into_inner();
        let remote_time_ns = match request.target.as_str() {
            "" => 0,
            target => super::ping::ping(&self.state, target, &request.target_type).await?,
        };
        Ok(Response::new(PingResponse {
            start_time_ns,
            remote_time_ns,
            stop_time_ns: unix_now_ns(),
        }))
    }

    async fn collection_statistics(
        &self,
        _request: Request<CollectionStatisticsRequest>,
    ) -> GrpcResult<CollectionStatisticsResponse> {
        let master = &self.state.master;
        require_leader(master)?;
        let collections = topology_info::collection_statistics(&master.lock_topology());
        Ok(Response::new(CollectionStatisticsResponse { collections }))
    }
}

impl MasterService {
    fn volume_list_answer(&self, filter: &VolumeFilter) -> VolumeListResponse {
        let master = &self.state.master;
        let limit_mb = master.config.volume_size_limit_bytes / (1024 * 1024);
        VolumeListResponse {
            topology_info: Some(topology_info::topology_info(
                &master.lock_topology(),
                filter,
            )),
            volume_size_limit_mb: limit_mb,
        }
    }
}

/// The volumes of `listed`, one disk per message and at most `VOLUME_LIST_STREAM_BATCH_MAX`
/// volumes each.
fn volume_batches(listed: TopologyInfo) -> Vec<VolumeListStreamResponse> {
    let mut batches = Vec::new();
    for dc in listed.data_center_infos {
        for rack in dc.rack_infos {
            for node in rack.data_node_infos {
                for (disk_type, disk) in node.disk_infos {
                    for volumes in disk.volume_infos.chunks(VOLUME_LIST_STREAM_BATCH_MAX) {
                        batches.push(VolumeListStreamResponse {
                            header: None,
                            data_center: dc.id.clone(),
                            rack: rack.id.clone(),
                            data_node: node.id.clone(),
                            disk_type: disk_type.clone(),
                            volume_infos: volumes.to_vec(),
                        });
                    }
                }
            }
        }
    }
    batches
}

/// `PermissionDenied` unless the caller may make destructive calls (the allow-list of
/// `--white-list` and `security.toml`, as for HTTP's).
fn check_caller<T>(master: &Master, request: &Request<T>, what: &str) -> Result<(), Status> {
    let peer = request.remote_addr().map(|address| address.ip());
    guard::check_caller(master, peer, what).map_err(Status::permission_denied)
}

/// Kelp's volume servers have one kind of disk; a request for another is refused rather than
/// served from it.
fn check_disk_type(disk_type: &str) -> Result<(), Status> {
    match disk_type {
        "" | "hdd" => Ok(()),
        other => Err(Status::invalid_argument(format!(
            "disk type {other:?}: Kelp's volume servers have only \"hdd\" disks"
        ))),
    }
}

/// How long the master waits for a pinged server.
pub fn ping_timeout() -> Duration {
    Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::grpc::topology_info::DISK_TYPE;

    // Proves the stream form of VolumeList sends each disk's volumes in batches that name
    // the disk, and nothing for a disk without listed volumes.
    #[test]
    fn volume_batches_name_their_disk() {
        let volume = |id| VolumeInformationMessage {
            id,
            ..VolumeInformationMessage::default()
        };
        let disk = DiskInfo {
            volume_infos: (1..=VOLUME_LIST_STREAM_BATCH_MAX as u32 + 1)
                .map(volume)
                .collect(),
            ..DiskInfo::default()
        };
        let node = DataNodeInfo {
            id: "v:8080".into(),
            disk_infos: [(DISK_TYPE.to_string(), disk)].into_iter().collect(),
            ..DataNodeInfo::default()
        };
        let empty = DataNodeInfo {
            id: "w:8080".into(),
            disk_infos: [(DISK_TYPE.to_string(), DiskInfo::default())]
                .into_iter()
                .collect(),
            ..DataNodeInfo::default()
        };
        let listed = TopologyInfo {
            data_center_infos: vec![DataCenterInfo {
                id: "dc1".into(),
                rack_infos: vec![RackInfo {
                    id: "r1".into(),
                    data_node_infos: vec![node, empty],
                    ..RackInfo::default()
                }],
                ..DataCenterInfo::default()
            }],
            ..TopologyInfo::default()
        };
        let batches = volume_batches(listed);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].volume_infos.len(), VOLUME_LIST_STREAM_BATCH_MAX);
        assert_eq!(batches[1].volume_infos.len(), 1);
        assert_eq!(
            (
                batches[1].data_center.as_str(),
                batches[1].rack.as_str(),
                batches[1].data_node.as_str()
            ),
            ("dc1", "r1", "v:8080")
        );
    }
}
