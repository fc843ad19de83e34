//! `kelp volume` flags and the validated configuration every core shares (read-only).

use kelp_net::limits::{HEADER_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use super::limits::{FILE_SIZE_LIMIT_MB_MAX, TIMEOUT_SECONDS_MAX, VOLUMES_MAX};
use crate::security::Security;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Directory of the volume files (`<collection>_<vid>.dat/.idx`).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// HTTP port served by every core; core i also serves `port + 1 + i` alone.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Most volumes this server holds; creating one more is answered 507. 0: as many as the
    /// disk's free space holds at the master's volume size limit.
    #[arg(long, default_value_t = 8)]
    pub max: u32,
    /// Free space (MiB) kept on the volume directory's disk: a write that would leave less
    /// is refused (507) before it starts, and the volumes report read-only.
    #[arg(long, default_value_t = 256)]
    pub min_free_space_mb: u64,
    /// An expired TTL volume's files are deleted after min(TTL / 10, this many seconds).
    #[arg(long, default_value_t = 600)]
    pub ttl_removal_delay_max_seconds: u64,
    /// Each replicated volume is compared with its other replicas and repaired this often
    /// (README "Replicas and failures"); 0: only on demand.
    #[arg(long, default_value_t = 600)]
    pub repair_interval_seconds: u64,
    /// A compaction keeps the deletes younger than this many seconds (`<base>.deletes`), so a
    /// replica that missed one still learns of it; older needles absent here are never copied
    /// (README "Replicas and failures").
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub delete_retention_seconds: u64,
    /// Master addresses `host:port[,host:port...]`; the leader is followed.
    #[arg(long, default_value = "127.0.0.1:9333")]
    pub master: String,
    /// Address to listen on and to tell the master.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    #[arg(long, default_value = "DefaultDataCenter")]
    pub data_center: String,
    #[arg(long, default_value = "DefaultRack")]
    pub rack: String,
    /// Address clients should use (`host:port`); defaults to `ip:port`.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Cores (threads with their own io_uring); default: every CPU this process may use.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Largest upload, MiB; a bigger body is answered 413.
    #[arg(long, default_value_t = 256)]
    pub file_size_limit_mb: u64,
    /// Open connections per core; one more is answered 503.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Bodies sent from the volume file of at least this many bytes use splice (zero-copy).
    #[arg(long)]
    pub zero_copy_min_bytes: Option<u64>,
    /// Seconds a connection may stay open with no request in progress (before its first
    /// byte, or between keep-alive requests), and wait on one read or write of a body.
    #[arg(long, default_value_t = IDLE_TIMEOUT_MS_DEFAULT / 1000)]
    pub idle_timeout_seconds: u64,
    /// Seconds a client has to send a whole request head once it started one (then 408).
    #[arg(long, default_value_t = HEADER_TIMEOUT_MS_DEFAULT / 1000)]
    pub header_timeout_seconds: u64,
    /// Most bytes per second a compaction (vacuum) writes (40: a vacuum leaves readers' p99
    /// within 1.5x, see BENCHMARKS.md); 0: as fast as the disk goes.
    #[arg(long, default_value_t = 40)]
    pub compaction_mb_per_second: u64,
    /// Test hook: a compaction's commit waits this long with the volume's writes held
    /// (to kill the process in the middle of a commit).
    #[arg(long, default_value_t = 0, hide = true)]
    pub compaction_commit_delay_ms: u64,
    /// What `--master` runs: `kelp` (heartbeats over HTTP), `seaweedfs` (SeaweedFS's
    /// `SendHeartbeat` gRPC stream, which needs the gRPC port), or `auto`: asked of the
    /// masters at start (a Kelp master answers `/cluster/watch`).
    #[arg(long, value_enum, default_value_t = MasterKind::Auto)]
    pub master_kind: MasterKind,
    /// gRPC port (SeaweedFS's volume gRPC, which its filer deletes chunks with); default
    /// --port + 10000; 0 serves no gRPC.
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// SeaweedFS's `security.toml`: with `[jwt.signing] key`, writes and deletes need a token
    /// from the master; with `[jwt.signing.read] key`, reads too.
    #[arg(long, value_name = "FILE")]
    pub security: Option<PathBuf>,
    /// Addresses and CIDR networks allowed to write and delete (`a,b/24`), as SeaweedFS's
    /// `-whiteList`; joined with the security file's `[guard] white_list`. Empty: anyone.
    #[arg(long, default_value = "")]
    pub white_list: String,
}

/// Which master the volume server joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MasterKind {
    Auto,
    Kelp,
    Seaweedfs,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub ip: IpAddr,
    pub port: u16,
    pub public_url: String,
    pub data_center: String,
    pub rack: String,
    pub volumes_max: u32,
    pub masters: Vec<String>,
    pub master_kind: MasterKind,
    pub cores: usize,
    pub file_bytes_max: u64,
    pub connections_max: Option<usize>,
    pub zero_copy_min_bytes: Option<u64>,
    pub idle_timeout_ms: u64,
    pub header_timeout_ms: u64,
    /// 0: no throttle.
    pub compaction_bytes_per_second: u64,
    pub min_free_space_bytes: u64,
    pub ttl_removal_delay_max: std::time::Duration,
    /// 0: no scheduled repair passes.
    pub repair_interval_ms: u64,
    pub delete_retention_ns: u64,
    pub compaction_commit_delay_ms: u64,
    /// 0: no gRPC.
    pub grpc_port: u16,
    /// Keys and allow-list; `None`: nothing is checked.
    pub security: Option<Arc<Security>>,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config, String> {
        if !args.dir.is_dir() {
            return Err(format!("--dir {}: not a directory", args.dir.display()));
        }
        if args.max > VOLUMES_MAX {
            return Err(format!("--max {} is over {VOLUMES_MAX}", args.max));
        }
        if args.file_size_limit_mb == 0 || args.file_size_limit_mb > FILE_SIZE_LIMIT_MB_MAX {
            let limit = args.file_size_limit_mb;
            return Err(format!(
                "--file-size-limit-mb {limit} not in 1..={FILE_SIZE_LIMIT_MB_MAX}"
            ));
        }
        let masters = parse_masters(&args.master)?;
        let security = crate::security::load_optional(args.security.as_deref(), &args.white_list)
            .map_err(|e| format!("--security: {e}"))?;
        let idle_timeout_ms = timeout_ms("--idle-timeout-seconds", args.idle_timeout_seconds)?;
        let header_timeout_ms =
            timeout_ms("--header-timeout-seconds", args.header_timeout_seconds)?;
        let cores = args
            .cores
            .unwrap_or_else(kelp_net::runtime::available_cores);
        let last_core_port = args.port as usize + cores;
        if cores == 0 || last_core_port > u16::MAX as usize {
            return Err(format!(
                "--cores {cores} with --port {}: core ports past 65535 or no core",
                args.port
            ));
        }
        let grpc_port = crate::pb::grpc_port_of(args.port, args.grpc_port, "--grpc-port")?;
        if args.master_kind == MasterKind::Seaweedfs && grpc_port == 0 {
            return Err(
                "--master-kind seaweedfs needs gRPC (a SeaweedFS master allocates \
                        volumes over it): leave out --grpc-port 0"
                    .into(),
            );
        }
        let public_url = args
            .public_url
            .unwrap_or_else(|| SocketAddr::new(args.ip, args.port).to_string());
        Ok(Config {
            dir: args.dir,
            ip: args.ip,
            port: args.port,
            public_url,
            data_center: args.data_center,
            rack: args.rack,
            volumes_max: args.max,
            masters,
            master_kind: args.master_kind,
            cores,
            file_bytes_max: args.file_size_limit_mb << 20,
            connections_max: args.max_connections,
            zero_copy_min_bytes: args.zero_copy_min_bytes,
            idle_timeout_ms,
            header_timeout_ms,
            compaction_bytes_per_second: args.compaction_mb_per_second.saturating_mul(1 << 20),
            min_free_space_bytes: args.min_free_space_mb.saturating_mul(1 << 20),
            ttl_removal_delay_max: std::time::Duration::from_secs(
                args.ttl_removal_delay_max_seconds,
            ),
            repair_interval_ms: args.repair_interval_seconds.saturating_mul(1000),
            delete_retention_ns: args.delete_retention_seconds.saturating_mul(1_000_000_000),
            compaction_commit_delay_ms: args.compaction_commit_delay_ms,
            grpc_port,
            security,
        })
    }

    /// `ip:port` of the main port, as the master and replicas see this server.
    pub fn url(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }

    /// `ip:port` of core `core_index`'s own port.
    pub fn core_url(&self, core_index: usize) -> String {
        let port = super::shard::core_port(self.port, core_index);
        SocketAddr::new(self.ip, port).to_string()
    }

    /// Is `url` (host:port) one of this server's addresses?
    pub fn is_self(&self, url: &str) -> bool {
        url == self.url()
            || url == self.public_url
            || (0..self.cores).any(|core| url == self.core_url(core))
    }
}

#[cfg(test)]
impl Config {
    /// One core serving `dir`, with no masters, for the unit tests.
    pub fn for_tests(dir: &std::path::Path) -> Config {
        Config {
            dir: dir.to_path_buf(),
            ip: "127.0.0.1".parse().unwrap(),
            port: 0,
            public_url: String::new(),
            data_center: String::new(),
            rack: String::new(),
            volumes_max: 8,
            masters: Vec::new(),
            cores: 1,
            file_bytes_max: 1 << 20,
            connections_max: None,
            zero_copy_min_bytes: None,
            idle_timeout_ms: 30_000,
            header_timeout_ms: 10_000,
            compaction_bytes_per_second: 0,
            compaction_commit_delay_ms: 0,
            min_free_space_bytes: 0,
            ttl_removal_delay_max: std::time::Duration::from_secs(600),
            repair_interval_ms: 0,
            delete_retention_ns: 7 * 24 * 3600 * 1_000_000_000,
            grpc_port: 0,
            master_kind: MasterKind::Kelp,
            security: None,
        }
    }
}

/// A timeout flag in seconds, checked to be in `1..=TIMEOUT_SECONDS_MAX`, in milliseconds.
fn timeout_ms(flag: &str, seconds: u64) -> Result<u64, String> {
    if seconds == 0 || seconds > TIMEOUT_SECONDS_MAX {
        return Err(format!("{flag} {seconds} not in 1..={TIMEOUT_SECONDS_MAX}"));
    }
    Ok(seconds * 1000)
}

fn parse_masters(text: &str) -> Result<Vec<String>, String> {
    let masters: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err(format!("--master {text:?}: no address"));
    }
    for master in &masters {
        let valid = master
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(format!("--master {master:?}: expected host:port"));
        }
    }
    Ok(masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves timeout flags are taken in 1 s ..= a day and turned into milliseconds.
    #[test]
    fn timeouts() {
        assert_eq!(timeout_ms("--idle-timeout-seconds", 30), Ok(30_000));
        assert!(timeout_ms("--idle-timeout-seconds", 0).is_err());
        assert!(timeout_ms("--header-timeout-seconds", TIMEOUT_SECONDS_MAX + 1).is_err());
    }

    // Proves the master list is split and each entry checked as host:port.
    #[test]
    fn master_list() {
        assert_eq!(parse_masters("a:1, b:2").unwrap(), vec!["a:1", "b:2"]);
        assert!(parse_masters("").is_err());
        assert!(parse_masters("a").is_err());
        assert!(parse_masters("a:x").is_err());
    }
}
