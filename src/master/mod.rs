//! `kelp master`: topology, file id assignment and lookups, kept by a Raft group of 1, 3 or 5
//! masters (openraft on tokio; hyper for HTTP).
//!
//! Layout: [`raft`] (replicated state, log, snapshots, RPCs), [`topology`] (heartbeats,
//! layouts, placement), [`params`] (request parsing), [`node`] (the running master: leases,
//! growth), [`cluster`] (background tasks, leadership, cluster endpoints), [`membership`]
//! (forming the cluster, adding and removing masters), [`quorum`] (the leader lease, which
//! masters answer), [`http`] (routes and handlers), [`status`] (status pages and metrics),
//! [`grpc`] (SeaweedFS's master gRPC API).

pub mod admin_cli;
pub mod checked_stream;
pub mod cluster;
pub mod grpc;
pub mod guard;
pub mod http;
pub mod http_client;
pub mod limits;
pub mod membership;
pub mod node;
pub mod params;
pub mod quorum;
pub mod raft;
pub mod repair;
pub mod replication;
pub mod status;
pub mod status_page;
pub mod topology;
pub mod vacuum;

use std::path::PathBuf;

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// HTTP port (the API and the Raft RPCs).
    #[arg(long, default_value_t = 9333)]
    pub port: u16,
    /// Directory of the Raft log, vote and snapshot.
    #[arg(long)]
    pub mdir: PathBuf,
    /// Address to listen on and to advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// All masters of the cluster, `host:port,host:port,...` (this one included).
    #[arg(long, default_value = "")]
    pub peers: String,
    /// Replication used when a request names none.
    #[arg(long, default_value = "000")]
    pub default_replication: String,
    /// Volumes larger than this stop taking new files.
    #[arg(long, default_value_t = 30 * 1024)]
    pub volume_size_limit_mb: u64,
    /// Seconds between volume server heartbeats (told to the volume servers).
    #[arg(long, default_value_t = 5)]
    pub pulse_seconds: u64,
    /// Raft heartbeat interval.
    #[arg(long, default_value_t = 300)]
    pub raft_heartbeat_ms: u64,
    /// Raft election timeout E: randomized between E and 1.2 E, after the leader's lease
    /// (1.2 E); a leader hands out fids only while a majority acknowledged it within E.
    #[arg(long, default_value_t = 1500)]
    pub raft_election_ms: u64,
    /// Volumes whose garbage (deleted and overwritten needles) reaches this share of their
    /// data are compacted by the automatic vacuum, and by `/vol/vacuum` when it names none.
    #[arg(long, default_value_t = 0.3)]
    pub garbage_threshold: f64,
    /// Time between automatic vacuums: `30s`, `15m`, `2h`; `0` turns them off.
    #[arg(long, default_value = "15m")]
    pub vacuum_interval: String,
    /// gRPC port (SeaweedFS's master gRPC, for `weed filer`, `weed s3`, `weed shell`,
    /// `weed benchmark`); default --port + 10000; 0 serves no gRPC.
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// SeaweedFS's `security.toml`: with `[jwt.signing] key`, `/dir/assign` answers a token
    /// for the fid in `Authorization: Bearer` (and `/dir/lookup?fileId=` too).
    #[arg(long, value_name = "FILE")]
    pub security: Option<PathBuf>,
    /// Addresses and CIDR networks allowed to make the destructive calls (`/col/delete`,
    /// `/vol/grow`, `/vol/vacuum`, `/vol/fix_replication`, `/submit`, membership changes), as
    /// SeaweedFS's `-whiteList`; joined with the security file's `[guard] white_list`. Empty: anyone.
    #[arg(long, default_value = "")]
    pub white_list: String,
    /// A volume short of copies this long (its server gone, or its `.dat` lost) is copied to
    /// servers that keep its placement; 0: no automatic re-replication or trimming.
    #[arg(long, default_value_t = 1800)]
    pub replica_absence_max_seconds: u64,
    /// An extra copy of a volume (beyond its placement) is trimmed only once it is this old.
    #[arg(long, default_value_t = 600)]
    pub replica_trim_delay_seconds: u64,
}

/// A checked master configuration.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub ip: String,
    pub port: u16,
    /// This master's address as spelled in the peer list (the Raft node identity).
    pub self_address: String,
    /// Every master, this one included.
    pub peers: Vec<String>,
    pub mdir: PathBuf,
    pub default_placement: kelp_engine::format::ReplicaPlacement,
    pub volume_size_limit_bytes: u64,
    pub pulse_seconds: u64,
    pub raft_heartbeat_ms: u64,
    pub raft_election_ms: u64,
    pub garbage_threshold: f64,
    /// `None`: no automatic vacuum.
    pub vacuum_interval: Option<std::time::Duration>,
    /// 0: no gRPC.
    pub grpc_port: u16,
    /// Keys and allow-list; `None`: no tokens, no allow-list.
    pub security: Option<std::sync::Arc<crate::security::Security>>,
    /// `None`: no automatic re-replication or trimming.
    pub replica_absence_max: Option<std::time::Duration>,
    pub replica_trim_delay: std::time::Duration,
}

impl MasterConfig {
    pub fn from_args(args: &Args) -> Result<MasterConfig, String> {
        let default_placement =
            kelp_engine::format::ReplicaPlacement::parse(&args.default_replication)
                .map_err(|e| format!("--default-replication: {e}"))?;
        if args.pulse_seconds == 0 {
            return Err("--pulse-seconds must be at least 1".into());
        }
        if args.volume_size_limit_mb == 0 {
            return Err("--volume-size-limit-mb must be at least 1".into());
        }
        if args.raft_election_ms < 3 * args.raft_heartbeat_ms || args.raft_heartbeat_ms == 0 {
            return Err("--raft-election-ms must be at least 3 x --raft-heartbeat-ms (> 0)".into());
        }
        let garbage_threshold = vacuum::check_threshold(args.garbage_threshold)
            .map_err(|e| format!("--garbage-threshold: {e}"))?;
        let vacuum_interval = vacuum::parse_interval(&args.vacuum_interval)
            .map_err(|e| format!("--vacuum-interval: {e}"))?;
        let mut peers: Vec<String> = args
            .peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        for peer in &peers {
            let port = peer
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none() {
                return Err(format!("--peers: {peer:?} is not host:port"));
            }
        }
        let grpc_port = crate::pb::grpc_port_of(args.port, args.grpc_port, "--grpc-port")?;
        let security = crate::security::load_optional(args.security.as_deref(), &args.white_list)
            .map_err(|e| format!("--security: {e}"))?;
        let self_address = find_self(&peers, &args.ip, args.port);
        if !peers.contains(&self_address) {
            peers.push(self_address.clone());
        }
        Ok(MasterConfig {
            ip: args.ip.clone(),
            port: args.port,
            self_address,
            peers,
            mdir: args.mdir.clone(),
            default_placement,
            volume_size_limit_bytes: args.volume_size_limit_mb * 1024 * 1024,
            pulse_seconds: args.pulse_seconds,
            raft_heartbeat_ms: args.raft_heartbeat_ms,
            raft_election_ms: args.raft_election_ms,
            garbage_threshold,
            vacuum_interval,
            grpc_port,
            security,
            replica_absence_max: (args.replica_absence_max_seconds > 0)
                .then(|| std::time::Duration::from_secs(args.replica_absence_max_seconds)),
            replica_trim_delay: std::time::Duration::from_secs(args.replica_trim_delay_seconds),
        })
    }
}

/// This master's entry in the peer list: the same port, and the host it listens on or a
/// loopback name. Peers must all spell an address the same way, since it is the node identity.
fn find_self(peers: &[String], ip: &str, port: u16) -> String {
    let own = format!("{ip}:{port}");
    if peers.contains(&own) {
        return own;
    }
    let loopback = ["localhost", "127.0.0.1", "0.0.0.0", ip];
    for peer in peers {
        if let Some((host, peer_port)) = peer.rsplit_once(':')
            && peer_port == port.to_string()
            && loopback.contains(&host)
        {
            return peer.clone();
        }
    }
    own
}

pub fn run(args: Args) -> CliResult {
    let config = MasterConfig::from_args(&args).map_err(|e| format!("bad flags: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kelp-master")
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let grpc_listener = grpc::bind(&config, "--grpc-port").await?;
        let master = node::Master::start(config).await?;
        tokio::select! {
            result = http::serve(master.clone()) => result?,
            result = grpc::serve(master.clone(), grpc_listener) => result?,
            _ = shutdown_signal() => tracing::info!("master: shutting down on signal"),
        }
        master.stop().await;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a master finds its own entry in the peer list however loopback is spelled, and
    // that bad flags are refused with a message naming the flag.
    #[test]
    fn self_address_and_flag_checks() {
        let peers: Vec<String> = ["localhost:9333", "localhost:9334"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(find_self(&peers, "127.0.0.1", 9334), "localhost:9334");
        assert_eq!(find_self(&peers, "127.0.0.1", 9999), "127.0.0.1:9999");
        let mut args = Args {
            port: 9333,
            mdir: PathBuf::from("/tmp/m"),
            ip: "127.0.0.1".into(),
            peers: "localhost:9333,localhost:9334".into(),
            default_replication: "000".into(),
            volume_size_limit_mb: 100,
            pulse_seconds: 5,
            raft_heartbeat_ms: 100,
            raft_election_ms: 500,
            garbage_threshold: 0.3,
            vacuum_interval: "15m".into(),
            grpc_port: None,
            security: None,
            white_list: String::new(),
            replica_absence_max_seconds: 1800,
            replica_trim_delay_seconds: 600,
        };
        let config = MasterConfig::from_args(&args).unwrap();
        assert_eq!(config.self_address, "localhost:9333");
        assert_eq!(config.peers.len(), 2);
        assert_eq!(
            config.grpc_port, 19333,
            "SeaweedFS's default: --port + 10000"
        );
        args.default_replication = "1".into();
        let padded = MasterConfig::from_args(&args).unwrap().default_placement;
        assert_eq!(padded.to_string(), "001");
        args.default_replication = "0001".into();
        let error = MasterConfig::from_args(&args).unwrap_err();
        assert!(error.contains("--default-replication"), "{error}");
        args.default_replication = "000".into();
        args.peers = "nohost".into();
        assert!(
            MasterConfig::from_args(&args)
                .unwrap_err()
                .contains("--peers")
        );
    }
}
