//! SeaweedFS's master gRPC API (`master_pb.Seaweed`, on `--grpc-port`, by default
//! `--port + 10000`), so SeaweedFS's own tools and clients (`weed benchmark`, `weed filer`,
//! `weed s3`, `weed shell`, the Go and Java clients) work with a Kelp master.
//!
//! Handlers are thin and call what the HTTP API calls ([`super::node::Master`], the
//! topology, [`super::params`]). Layout: [`service`] (the handlers), [`keep_connected`] (the
//! long-lived stream every client keeps open), [`hub`] (what those clients were told, and
//! the filers that announced themselves), [`topology_info`] (the topology in SeaweedFS's
//! shapes), [`admin_lock`] (weed shell's `lock`).
//!
//! Only the leader serves; a follower answers `KeepConnected` with the leader's address (the
//! client moves there) and other calls with `Unavailable`, which SeaweedFS's clients retry.

pub mod admin_lock;
pub mod hub;
pub mod keep_connected;
pub mod ping;
pub mod service;
pub mod topology_info;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::Status;

use super::MasterConfig;
use super::limits::{
    GRPC_CONNECTIONS_MAX, GRPC_STREAMS_PER_CONNECTION_MAX, VOLUME_LOCATIONS_POLL_MS,
};
use super::node::{Master, MasterError};
use crate::grpc_listener::{self, GrpcLimits};
use crate::pb::master_pb::seaweed_server::SeaweedServer;

/// What the gRPC handlers share: the master, the `KeepConnected` clients, the admin locks.
pub struct GrpcState {
    pub master: Arc<Master>,
    pub hub: hub::Hub,
    pub admin_locks: Mutex<admin_lock::AdminLocks>,
}

/// Bind the gRPC port before the master starts, so a taken port stops the start at once
/// (None: port 0, no gRPC); errors name `flag`, the flag that chose the port.
pub async fn bind(config: &MasterConfig, flag: &str) -> Result<Option<TcpListener>, String> {
    if config.grpc_port == 0 {
        return Ok(None);
    }
    let listener = grpc_listener::bind(&config.ip, config.grpc_port, flag).await?;
    Ok(Some(listener))
}

/// Serve the master's gRPC API on `listener` until the task is dropped (never returns
/// without one).
pub async fn serve(master: Arc<Master>, listener: Option<TcpListener>) -> Result<(), String> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let address = listener
        .local_addr()
        .map_err(|e| format!("gRPC listener address: {e}"))?;
    let state = Arc::new(GrpcState {
        master,
        hub: hub::Hub::default(),
        admin_locks: Mutex::new(admin_lock::AdminLocks::default()),
    });
    let poller = AbortOnDrop(tokio::spawn(push_volume_locations(state.clone())));
    tracing::info!("master: gRPC (SeaweedFS's master_pb.Seaweed) on {address}");
    let limits = GrpcLimits {
        connections_max: GRPC_CONNECTIONS_MAX,
        streams_per_connection_max: GRPC_STREAMS_PER_CONNECTION_MAX,
    };
    let service =
        SeaweedServer::new(service::MasterService { state }).max_encoding_message_size(usize::MAX);
    let served = grpc_listener::server_builder(limits)
        .add_service(service)
        .serve_with_incoming(grpc_listener::incoming(listener, limits.connections_max))
        .await;
    drop(poller);
    served.map_err(|e| format!("gRPC server on {address}: {e}"))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Push volume location changes to the `KeepConnected` clients as the topology changes.
async fn push_volume_locations(state: Arc<GrpcState>) {
    let period = Duration::from_millis(VOLUME_LOCATIONS_POLL_MS);
    loop {
        tokio::time::sleep(period).await;
        state.hub.refresh(&state.master);
    }
}

/// How SeaweedFS's clients spell the master whose HTTP address is `http_address`: as is when
/// its gRPC port is port + 10000, else `host:port.grpcPort`. Every master of a cluster is
/// taken to use this master's distance between the two ports.
pub fn client_address(config: &MasterConfig, http_address: &str) -> String {
    let offset = i32::from(config.grpc_port) - i32::from(config.port);
    if offset == i32::from(crate::pb::GRPC_PORT_OFFSET) {
        return http_address.to_string();
    }
    let grpc_port = http_address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<i32>().ok())
        .map(|port| port + offset)
        .filter(|port| (1..=65535).contains(port));
    match grpc_port {
        Some(grpc_port) => format!("{http_address}.{grpc_port}"),
        None => http_address.to_string(),
    }
}

/// `Unavailable` naming the leader unless this master leads (SeaweedFS's clients retry it).
pub fn require_leader(master: &Master) -> Result<(), Status> {
    if master.is_leader.load(Ordering::Acquire) {
        return Ok(());
    }
    let leader = master.leader_address().unwrap_or_default();
    let named = match leader.as_str() {
        "" => "no leader is known yet".to_string(),
        leader => format!("the leader is {}", client_address(&master.config, leader)),
    };
    Err(Status::unavailable(format!(
        "{} is not the leader; {named}",
        master.config.self_address
    )))
}

/// The gRPC status of a master failure: a bad parameter, a topology that cannot satisfy the
/// request (not retried), a passing unavailability (retried by SeaweedFS's clients), an error.
pub fn status_of(failure: &MasterError) -> Status {
    match failure {
        MasterError::BadRequest(message) => Status::invalid_argument(message),
        MasterError::NotAcceptable(message) => Status::failed_precondition(message),
        MasterError::Unavailable(message) => Status::unavailable(message),
        MasterError::Internal(message) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(port: u16, grpc_port: u16) -> MasterConfig {
        let args = super::super::Args {
            port,
            mdir: "/tmp/m".into(),
            ip: "127.0.0.1".into(),
            peers: String::new(),
            default_replication: "000".into(),
            volume_size_limit_mb: 100,
            pulse_seconds: 5,
            raft_heartbeat_ms: 100,
            raft_election_ms: 500,
            garbage_threshold: 0.3,
            vacuum_interval: "15m".into(),
            grpc_port: Some(grpc_port),
            security: None,
            white_list: String::new(),
            replica_absence_max_seconds: 1800,
            replica_trim_delay_seconds: 600,
        };
        MasterConfig::from_args(&args).unwrap()
    }

    // Proves a master is named as SeaweedFS's clients expect: plain `host:port` with the
    // default gRPC port, `host:port.grpcPort` with another one.
    #[test]
    fn client_address_carries_a_non_default_grpc_port() {
        assert_eq!(client_address(&config(9333, 19333), "m1:9333"), "m1:9333");
        assert_eq!(
            client_address(&config(9333, 9500), "m2:9334"),
            "m2:9334.9501"
        );
        assert_eq!(client_address(&config(9333, 9500), "m3"), "m3");
    }
}
