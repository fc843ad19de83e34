//! `KeepConnected`: the stream every SeaweedFS client keeps open to the leader. The client
//! sends who it is; the leader answers with every volume location (the first message naming
//! the leader, even with no volumes), then pushes changes as volumes are grown, deleted or
//! lost with their servers, and filers come and go. A follower answers with the leader's
//! address and ends the stream (the client moves there); a leader that loses its leadership
//! does the same, so its clients find the new one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::super::cluster::usable_leader;
use super::super::limits::{KEEP_CONNECTED_LEADER_CHECK_MS, KEEP_CONNECTED_SEND_TIMEOUT_MS};
use super::super::node::Master;
use super::{GrpcState, client_address};
use crate::pb::master_pb::{KeepConnectedRequest, KeepConnectedResponse, VolumeLocation};

pub type Outbound = ReceiverStream<Result<KeepConnectedResponse, Status>>;

/// Messages waiting for the transport; the client's backlog is kept in its hub queue.
const OUTBOUND_QUEUE_MAX: usize = 16;

/// Answer a `KeepConnected` stream whose first request is read here.
pub async fn open(
    state: Arc<GrpcState>,
    mut inbound: Streaming<KeepConnectedRequest>,
) -> Result<Outbound, Status> {
    let request = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("KeepConnected: the stream sent no request"))?;
    let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE_MAX);
    let master = &state.master;
    if !master.is_leader.load(Ordering::Acquire) {
        let leader = leader_message(master)?;
        outbound
            .send(Ok(leader))
            .await
            .expect("the receiver is still here");
        return Ok(ReceiverStream::new(receiver));
    }
    let own_address = client_address(&master.config, &master.config.self_address);
    let registration = state
        .hub
        .connect(master, &request, &own_address)
        .map_err(Status::resource_exhausted)?;
    tracing::debug!(
        "master: KeepConnected client {} {:?} at {:?}",
        registration.id,
        request.client_type,
        request.client_address
    );
    tokio::spawn(forward(
        state.clone(),
        request,
        registration,
        inbound,
        outbound,
    ));
    Ok(ReceiverStream::new(receiver))
}

/// The answer of a master that does not lead: the leader's address, or `Unavailable` while
/// no leader is known (the client tries the next master).
fn leader_message(master: &Master) -> Result<KeepConnectedResponse, Status> {
    let leader = usable_leader(master);
    if leader.is_empty() || leader == master.config.self_address {
        return Err(Status::unavailable(format!(
            "{} is not the leader and knows no leader yet",
            master.config.self_address
        )));
    }
    Ok(KeepConnectedResponse {
        volume_location: Some(VolumeLocation {
            leader: client_address(&master.config, &leader),
            ..VolumeLocation::default()
        }),
        ..KeepConnectedResponse::default()
    })
}

/// Removes the client from the hub when its stream ends, however it ends.
struct Connected {
    state: Arc<GrpcState>,
    id: u64,
    request: KeepConnectedRequest,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.state.hub.disconnect(self.id, &self.request);
    }
}

/// Send the client its first messages, then its changes, until it goes, falls behind, or
/// this master stops leading.
async fn forward(
    state: Arc<GrpcState>,
    request: KeepConnectedRequest,
    registration: super::hub::Registration,
    mut inbound: Streaming<KeepConnectedRequest>,
    outbound: mpsc::Sender<Result<KeepConnectedResponse, Status>>,
) {
    let mut changes = registration.changes;
    let _connected = Connected {
        state: state.clone(),
        id: registration.id,
        request,
    };
    for message in registration.first_messages {
        if !send(&outbound, Ok(message)).await {
            return;
        }
    }
    let mut leadership =
        tokio::time::interval(Duration::from_millis(KEEP_CONNECTED_LEADER_CHECK_MS));
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else {
                    // The hub let go of this client: it fell behind, or leadership moved.
                    let _ = send(&outbound, farewell(&state.master)).await;
                    return;
                };
                if !send(&outbound, Ok(change)).await {
                    return;
                }
            }
            received = inbound.message() => {
                // The client sends nothing after its first request: anything else ends it.
                if !matches!(received, Ok(Some(_))) {
                    return;
                }
            }
            _ = leadership.tick() => {
                if !state.master.is_leader.load(Ordering::Acquire) {
                    let _ = send(&outbound, farewell(&state.master)).await;
                    return;
                }
            }
        }
    }
}

/// The last message of a stream the hub dropped: the new leader when this master no longer
/// leads, else why (the client reconnects and gets the whole list again).
fn farewell(master: &Master) -> Result<KeepConnectedResponse, Status> {
    if master.is_leader.load(Ordering::Acquire) {
        return Err(Status::resource_exhausted(
            "this client fell too far behind the volume location changes; reconnect",
        ));
    }
    leader_message(master)
}

/// Hand `message` to the transport; false when the client is gone or does not take it in
/// time.
async fn send(
    outbound: &mpsc::Sender<Result<KeepConnectedResponse, Status>>,
    message: Result<KeepConnectedResponse, Status>,
) -> bool {
    let timeout = Duration::from_millis(KEEP_CONNECTED_SEND_TIMEOUT_MS);
    matches!(
        tokio::time::timeout(timeout, outbound.send(message)).await,
        Ok(Ok(()))
    )
}
