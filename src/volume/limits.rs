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
