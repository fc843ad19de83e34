//! Every limit of the master in one place (`_max` names; every queue is bounded).

/// File keys leased from Raft in one log entry: assignments are served from memory until the
/// lease runs low, so an assignment never waits for a Raft round trip in the steady state.
pub const KEY_LEASE_COUNT: u64 = 10_000;

/// A new lease is requested in the background once fewer keys than this remain (one lease
/// ahead: at 50,000 assignments/s that leaves 200 ms for the Raft round trip).
pub const KEY_LEASE_LOW_WATER: u64 = KEY_LEASE_COUNT;

/// Largest `count` one `/dir/assign` may ask for (SeaweedFS has no limit; a bound keeps one
/// request from draining many leases).
pub const ASSIGN_COUNT_MAX: u64 = 100_000;

/// Largest `count` of `/vol/grow`.
pub const GROW_COUNT_MAX: u32 = 100;

/// Open client connections one master serves at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 4096;

/// A client must send a request's headers within this time (the connection is closed then).
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;

/// Largest request body the master reads (heartbeats, Raft RPCs, `/submit` uploads).
pub const REQUEST_BODY_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Largest request line plus headers; a larger head is answered 431 (as by the volume server).
pub const REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;

/// A refused request's answer must be taken by the client within this time.
pub const REFUSAL_WRITE_TIMEOUT_MS: u64 = 1_000;

/// After a refusal, what the client still sends is read and dropped for at most this long
/// and this many bytes, so that the kernel does not reset the connection before the client
/// has read the answer.
pub const REFUSAL_LINGER_MS_MAX: u64 = 1_000;
pub const REFUSAL_LINGER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest Raft log record accepted when replaying the log file.
pub const RAFT_RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Raft log writes queued for the writer thread (a full queue makes Raft wait).
pub const RAFT_WRITE_QUEUE_MAX: usize = 1024;

/// Timeout of one call from the master to another process (volume admin, proxying, Raft RPC
/// default when openraft gives none).
pub const OUTBOUND_CALL_TIMEOUT_MS: u64 = 10_000;

/// Heartbeats a volume server may miss before the master drops it.
pub const HEARTBEATS_MISSED_MAX: u32 = 3;

/// Volumes registered by a grow are kept this many pulses even if a heartbeat that was sent
/// before the create does not list them yet.
pub const PENDING_VOLUME_PULSES: u32 = 3;

/// Log entries since the last snapshot that trigger a new snapshot (and a log purge).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 500;

/// Log entries kept after a snapshot (so a slightly lagging follower needs no snapshot), and
/// how many entries one purge drops at least (each purge rewrites the log file).
pub const LOG_KEPT_AFTER_SNAPSHOT: u64 = 100;
pub const PURGE_BATCH_ENTRIES: u64 = 256;

/// Bootstrap: rounds (each `bootstrap_round_ms`) a master must see no leader and be the lowest
/// reachable peer before it starts a new single-master cluster.
pub const BOOTSTRAP_ALONE_ROUNDS: u32 = 3;
pub const BOOTSTRAP_ROUND_MS: u64 = 300;
