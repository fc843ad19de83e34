//! The gRPC contracts Kelp speaks (SeaweedFS's wire names and field numbers), compiled from
//! `proto/` by `build.rs`: the master's `master_pb.Seaweed`, the volume server's
//! `volume_server_pb.VolumeServer`, and the filer's `Ping` (which the master may call).

#[allow(clippy::all, clippy::pedantic)]
pub mod master_pb {
    tonic::include_proto!("master_pb");
}

#[allow(clippy::all, clippy::pedantic)]
pub mod volume_server_pb {
    tonic::include_proto!("volume_server_pb");
}

#[allow(clippy::all, clippy::pedantic)]
pub mod filer_pb {
    tonic::include_proto!("filer_pb");
}

/// SeaweedFS's default gRPC port is the HTTP port plus this.
pub const GRPC_PORT_OFFSET: u16 = 10_000;

/// The gRPC port a server with HTTP port `port` serves: `flag` when given, else SeaweedFS's
/// `port + 10000` (an error naming `flag` when that is past 65535).
pub fn grpc_port_of(port: u16, flag_value: Option<u16>, flag: &str) -> Result<u16, String> {
    match flag_value {
        Some(grpc_port) => Ok(grpc_port),
        None => port
            .checked_add(GRPC_PORT_OFFSET)
            .ok_or_else(|| format!("{flag}: port {port} + 10000 is past 65535; give {flag}")),
    }
}

/// The HTTP `host:port` of a server as SeaweedFS spells it (`host:port`, or
/// `host:port.grpcPort` when its gRPC port is not the default).
pub fn http_address(server: &str) -> &str {
    match server.rsplit_once(':') {
        Some((_, ports)) => match ports.split_once('.') {
            Some((port, _)) => &server[..server.len() - ports.len() + port.len()],
            None => server,
        },
        None => server,
    }
}

/// Where a server SeaweedFS spells `server` serves gRPC: the `.grpcPort` it names, else its
/// port + 10000.
pub fn grpc_address(server: &str) -> Result<String, String> {
    let bad = || format!("{server:?} is not host:port or host:port.grpcPort");
    let (host, ports) = server.rsplit_once(':').ok_or_else(bad)?;
    let grpc_port = match ports.split_once('.') {
        Some((_, grpc_port)) => grpc_port.parse::<u16>().map_err(|_| bad())?,
        None => ports
            .parse::<u16>()
            .ok()
            .and_then(|port| port.checked_add(GRPC_PORT_OFFSET))
            .ok_or_else(bad)?,
    };
    Ok(format!("{host}:{grpc_port}"))
}

/// Now in unix nanoseconds (Ping's clock readings).
pub fn unix_now_ns() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves SeaweedFS's spelling of server addresses is read both ways: the HTTP address
    // without the gRPC suffix, and the gRPC address from the suffix or port + 10000.
    #[test]
    fn server_addresses() {
        assert_eq!(http_address("h:8080.9999"), "h:8080");
        assert_eq!(http_address("h:8080"), "h:8080");
        assert_eq!(grpc_address("h:8080.9999").unwrap(), "h:9999");
        assert_eq!(grpc_address("h:8080").unwrap(), "h:18080");
        assert!(grpc_address("h:60000").is_err());
        assert!(grpc_address("h").is_err());
        assert!(grpc_address("h:8080.x").is_err());
    }
}
