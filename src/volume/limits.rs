//! Limits of the volume server that are not flags (`_max`, `_ms` names; the HTTP limits are
//! in `kelp_net::limits`, set from flags in `mod.rs`).

/// The masters' host names are resolved again this often, for the admin calls' gate.
pub const MASTER_RESOLVE_INTERVAL_MS: u64 = 60_000;
/// ... and this often while one of them does not resolve.
pub const MASTER_RESOLVE_RETRY_MS: u64 = 5_000;

const _: () = assert!(MASTER_RESOLVE_RETRY_MS <= MASTER_RESOLVE_INTERVAL_MS);

/// A core measures the free space of the volume directory again at least this often...
pub const FREE_SPACE_MEASURE_MS_MAX: u64 = 1_000;
/// ... and after letting this many bytes be written since its last measurement.
pub const FREE_SPACE_MEASURE_BYTES_MAX: u64 = 64 << 20;
/// ... and before every write once the free space is within this of the reserve: far from
/// full, the other cores' and programs' writes of a second cannot use up this much.
pub const FREE_SPACE_NEAR_BYTES: u64 = 1 << 30;

/// A ready compaction looks this often whether its commit was asked for (and replays what
/// was appended meanwhile).
pub const COMPACTION_READY_POLL_MS: u64 = 5;
/// A commit waits at most this long for the appends in flight to end (their records are
/// being written), looking every `COMPACTION_DRAIN_POLL_US`; then it is given up.
pub const COMPACTION_DRAIN_MS_MAX: u64 = 5_000;
pub const COMPACTION_DRAIN_POLL_US: u64 = 100;

const _: () = assert!(COMPACTION_DRAIN_POLL_US < COMPACTION_DRAIN_MS_MAX * 1000);

/// Each core looks this often for TTL volumes whose files are due for deletion.
pub const EXPIRY_CHECK_MS: u64 = 1_000;

/// With `--max 0`, a server holds at most this many volumes, whatever its free space: the
/// descriptors set aside for volume files are for this many.
pub const AUTO_VOLUMES_MAX: u32 = 1_000;

/// Jobs queued for the background thread (a compaction's steps and the dropping of replaced
/// volumes: one compaction runs at a time, so a few suffice); past it a job is refused.
pub const BACKGROUND_JOBS_MAX: usize = 16;
/// gRPC (SeaweedFS's volume API): connections served at once (more wait to be accepted), and
/// requests in flight on one connection.
pub const GRPC_CONNECTIONS_MAX: usize = 1024;
pub const GRPC_STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// File ids in one BatchDelete (SeaweedFS's filer sends a few hundred at a time).
pub const GRPC_BATCH_DELETE_FILES_MAX: usize = 100_000;

/// Calls from the gRPC thread waiting in one core's inbox; a full inbox makes the gRPC
/// thread wait, never the core.
pub const GRPC_CALLS_PER_CORE_MAX: usize = 1024;
