//! SeaweedFS's volume gRPC API (`volume_server_pb.VolumeServer`), the part SeaweedFS's filer
//! and `weed shell` need of a volume server: BatchDelete (how a filer deletes the chunks of
//! removed files), VolumeServerStatus and Ping.
//!
//! One tonic server per volume server, on `--grpc-port` (default `--port + 10000`), on its own
//! thread with a small tokio runtime: the cores keep their io_uring loops to themselves. A
//! delete is handed to the core that owns its volume through that core's bounded inbox
//! ([`inbox`]) and served there, one volume touched by one thread only.

pub mod inbox;
pub mod needle_blob;
pub mod seaweed_master;
pub mod service;
pub mod volume_admin;
pub mod volume_copy;
pub mod volume_mount;
pub mod volume_tail;
pub mod volume_vacuum;

use std::sync::Arc;

use super::config::Config;
use super::limits::{GRPC_CONNECTIONS_MAX, GRPC_STREAMS_PER_CONNECTION_MAX};
use crate::grpc_listener::{self, GrpcLimits};
use crate::pb::volume_server_pb::volume_server_server::VolumeServerServer;

/// Bind the gRPC port before the cores start, so a taken port stops the start at once with
/// its address (None: `--grpc-port 0`, no gRPC).
pub fn bind(config: &Config) -> Result<Option<std::net::TcpListener>, String> {
    if config.grpc_port == 0 {
        return Ok(None);
    }
    let address = std::net::SocketAddr::new(config.ip, config.grpc_port);
    let listener = std::net::TcpListener::bind(address)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|e| format!("listen for gRPC on {address} (--grpc-port): {e}"))?;
    Ok(Some(listener))
}

/// Serve gRPC on `listener` from a thread of its own, handing deletes to the cores through
/// `cores` (one inbox each). If the server fails, the process ends: a volume server whose
/// filers cannot delete is worse than one that is restarted.
pub fn start(
    config: Arc<Config>,
    listener: std::net::TcpListener,
    cores: Vec<inbox::Sender>,
    link: Arc<seaweed_master::MasterLink>,
) -> Result<(), String> {
    assert_eq!(cores.len(), config.cores);
    let thread = std::thread::Builder::new().name("kelp-volume-grpc".into());
    thread
        .spawn(move || {
            let failure = match serve(config, listener, cores, link) {
                Ok(()) => "the gRPC server stopped".to_string(),
                Err(error) => error,
            };
            eprintln!("kelp volume: {failure}");
            std::process::exit(1);
        })
        .map_err(|e| format!("start the gRPC thread: {e}"))?;
    Ok(())
}

fn serve(
    config: Arc<Config>,
    listener: std::net::TcpListener,
    cores: Vec<inbox::Sender>,
    link: Arc<seaweed_master::MasterLink>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the gRPC runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("gRPC listener: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("gRPC listener address: {e}"))?;
        tracing::info!("volume server: gRPC (SeaweedFS's volume_server_pb) on {address}");
        let limits = GrpcLimits {
            connections_max: GRPC_CONNECTIONS_MAX,
            streams_per_connection_max: GRPC_STREAMS_PER_CONNECTION_MAX,
        };
        let heartbeat = seaweed_master::run(config.clone(), cores.clone(), link.clone());
        tokio::spawn(heartbeat);
        let service = VolumeServerServer::new(service::VolumeService {
            config,
            cores,
            link,
        })
        .max_decoding_message_size(volume_copy::PEER_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(volume_copy::PEER_MESSAGE_BYTES_MAX);
        grpc_listener::server_builder(limits)
            .add_service(service)
            .serve_with_incoming(grpc_listener::incoming(listener, limits.connections_max))
            .await
            .map_err(|e| format!("gRPC server on {address}: {e}"))
    })
}
