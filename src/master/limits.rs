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

/// Bootstrap: wait between two looks at the peers while this master has no Raft log.
pub const BOOTSTRAP_ROUND_MS: u64 = 300;

/// openraft draws each master's election timeout from [E, E + E * this / 100], E being
/// `--raft-election-ms`; a follower also waits out the leader's lease (the top of that range)
/// before it votes. A narrow spread keeps failover short (about 2.2 to 2.4 E after the last
/// heartbeat); 20% still separates candidates by tens of milliseconds or more.
pub const ELECTION_TIMEOUT_SPREAD_PERCENT: u64 = 20;

/// A membership change that finds another one under way (or no leader yet) is tried again
/// after this wait, until `MEMBERSHIP_CHANGE_TIMEOUT_MS` has passed; then it fails with the
/// reason. The same bound covers a new learner catching up with the log.
pub const MEMBERSHIP_RETRY_MS: u64 = 100;
pub const MEMBERSHIP_CHANGE_TIMEOUT_MS: u64 = 30_000;

/// Every master asks each other member for `/cluster/status` this often; a member that
/// answers within the timeout counts as reachable until the next probe.
pub const PEER_PROBE_INTERVAL_MS: u64 = 500;
pub const PEER_PROBE_TIMEOUT_MS: u64 = 400;

/// Longest wait of one `/cluster/watch` (a volume server asks for at most a pulse).
pub const LEADER_WATCH_WAIT_MS_MAX: u64 = 60_000;
/// How often a waiting `/cluster/watch` looks again at the leader (besides every Raft change).
pub const LEADER_WATCH_POLL_MS: u64 = 50;

/// `kelp cluster` looks for a leader (asking each master in turn) for at most this long.
pub const CLI_LEADER_WAIT_MS: u64 = 15_000;

/// A Raft proposal (key lease, volume ids, collections) that is not committed within this
/// time fails with 503: the leader has lost its quorum or its leadership.
pub const PROPOSE_TIMEOUT_MS: u64 = 10_000;

/// The vacuum asks a volume server how its compaction goes this often.
pub const VACUUM_POLL_MS: u64 = 200;

/// A compaction whose copy makes no progress for this long is cancelled (the volume server
/// is stuck or its disk stalls); the volume is left as it was.
pub const VACUUM_STALL_MS_MAX: u64 = 120_000;

/// A replica behind the others' compaction revision is compacted after its heartbeat, but
/// retried no sooner than this after a try (a compaction that keeps failing there, e.g. on
/// a full disk, is not started at every heartbeat).
pub const VACUUM_CATCH_UP_RETRY_MS: u64 = 300_000;

/// Replicas one `/vol/vacuum` answer lists (the counts cover every one).
pub const VACUUM_RESULTS_MAX: usize = 1_000;

const _: () = assert!(VACUUM_POLL_MS < VACUUM_STALL_MS_MAX);
/// gRPC (SeaweedFS's master API): connections one master serves at once (more wait to be
/// accepted), and requests in flight on one connection.
pub const GRPC_CONNECTIONS_MAX: usize = 4096;
pub const GRPC_STREAMS_PER_CONNECTION_MAX: u32 = 1024;

/// `KeepConnected` clients one master serves at once; more are refused (ResourceExhausted).
pub const KEEP_CONNECTED_CLIENTS_MAX: usize = 4096;

/// Volume location changes queued for one `KeepConnected` client. A client that falls this
/// far behind is dropped (its stream ends; it reconnects and gets the whole list again)
/// rather than buffered for without end.
pub const KEEP_CONNECTED_QUEUE_MAX: usize = 4096;

/// A `KeepConnected` client must take each message within this time, else it is dropped.
pub const KEEP_CONNECTED_SEND_TIMEOUT_MS: u64 = 30_000;

/// The leader looks for changed volume locations this often (and pushes them to the
/// `KeepConnected` clients); each stream checks this often that its master still leads.
pub const VOLUME_LOCATIONS_POLL_MS: u64 = 50;
pub const KEEP_CONNECTED_LEADER_CHECK_MS: u64 = 500;

/// An admin lock (`LeaseAdminToken`, weed shell's `lock`) lapses unless renewed within this
/// time (SeaweedFS's 10 s); at most this many lock names are kept.
pub const ADMIN_LOCK_LEASE_MS: u64 = 10_000;
pub const ADMIN_LOCKS_MAX: usize = 1024;

/// Volumes per message of `VolumeListStream`.
pub const VOLUME_LIST_STREAM_BATCH_MAX: usize = 1024;

/// Largest `count` of a `ListClusterNodes` answer when the client names no limit.
pub const CLUSTER_NODES_LISTED_MAX: usize = 10_000;

/// Re-replication jobs (copies and trims of one volume each) running at once.
pub const REPLICA_JOBS_MAX: usize = 2;

/// Combinations of servers tried when planning one volume's copies or trims.
pub const REPLICA_PLAN_COMBINATIONS_MAX: usize = 100_000;

/// A VolumeCopy that sends nothing (not even a progress report) for this long is given up.
pub const REPLICA_COPY_STALL_MS_MAX: u64 = 600_000;

/// A failed re-replication job is retried after this, doubled at each failure up to the max.
pub const REPLICA_RETRY_MS_MIN: u64 = 1_000;
pub const REPLICA_RETRY_MS_MAX: u64 = 300_000;

/// After a copy or trim, the server's heartbeat must show it within this many pulses (and the
/// volume is not planned again meanwhile).
pub const REPLICA_SETTLE_PULSES: u64 = 3;

/// `/vol/fix_replication` answers 503 for this many pulses after an election, until every
/// live volume server has heartbeated to the new leader.
pub const REPLICA_WARM_UP_PULSES: u64 = 2;
