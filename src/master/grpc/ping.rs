//! `Ping` naming a target: the master calls the target's own `Ping` (a volume server, another
//! master, a filer) and reports the target's clock. Only servers this master knows are
//! pinged, so a client cannot make it dial anywhere.

use std::sync::atomic::Ordering;

use tonic::Status;
use tonic::transport::Endpoint;

use super::GrpcState;
use super::hub::FILER;
use super::service::ping_timeout;
use crate::pb::{filer_pb, grpc_address, http_address, master_pb, volume_server_pb};

/// SeaweedFS's names of the kinds of target.
const MASTER: &str = "master";
const VOLUME_SERVER: &str = "volumeServer";

/// The target's clock (unix ns) when it answered.
pub async fn ping(state: &GrpcState, target: &str, kind: &str) -> Result<i64, Status> {
    if !is_known(state, target, kind) {
        return Err(Status::invalid_argument(format!(
            "unknown ping target {target} of type {kind}"
        )));
    }
    let address = grpc_address(target).map_err(Status::invalid_argument)?;
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::invalid_argument(format!("ping target {target}: {e}")))?
        .connect_timeout(ping_timeout())
        .timeout(ping_timeout())
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("ping {kind} {target}: connect: {e}")))?;
    let answered = match kind {
        MASTER => master_pb::seaweed_client::SeaweedClient::new(channel)
            .ping(master_pb::PingRequest::default())
            .await
            .map(|r| r.into_inner().start_time_ns),
        VOLUME_SERVER => volume_server_pb::volume_server_client::VolumeServerClient::new(channel)
            .ping(volume_server_pb::PingRequest::default())
            .await
            .map(|r| r.into_inner().start_time_ns),
        _ => filer_pb::seaweed_filer_client::SeaweedFilerClient::new(channel)
            .ping(filer_pb::PingRequest::default())
            .await
            .map(|r| r.into_inner().start_time_ns),
    };
    answered.map_err(|e| Status::unavailable(format!("ping {kind} {target}: {}", e.message())))
}

fn is_known(state: &GrpcState, target: &str, kind: &str) -> bool {
    let master = &state.master;
    let http = http_address(target);
    match kind {
        MASTER => {
            master.member_addresses().iter().any(|m| m == http)
                || master.config.self_address == http
        }
        VOLUME_SERVER => {
            if !master.is_leader.load(Ordering::Acquire) {
                return false;
            }
            let topology = master.lock_topology();
            let node = topology.nodes.contains_key(http);
            node || super::hub::location_view(&topology)
                .keys()
                .any(|place| place.url == http)
        }
        FILER => state.hub.is_connected_node(FILER, target),
        _ => false,
    }
}
