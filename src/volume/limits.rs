//! Limits of the volume server and the bounds of its flags (`_max`, `_ms` names; the HTTP
//! limits are in `kelp_net::limits`, set from flags in `mod.rs`). Relations between them are
//! checked at compile time.

/// The masters' host names are resolved again this often, for the admin calls' gate.
pub const MASTER_RESOLVE_INTERVAL_MS: u64 = 60_000;
/// ... and this often while one of them does not resolve.
pub const MASTER_RESOLVE_RETRY_MS: u64 = 5_000;

const _: () = assert!(MASTER_RESOLVE_RETRY_MS <= MASTER_RESOLVE_INTERVAL_MS);

/// The heartbeat's pulse until the master says otherwise (SeaweedFS's default); the pulse
/// to a SeaweedFS master.
pub const HEARTBEAT_PULSE_SECONDS_DEFAULT: u64 = 5;
/// A master asking for a longer pulse than this is capped (it would think us dead).
pub const HEARTBEAT_PULSE_SECONDS_MAX: u64 = 60;
/// Backoff between tries while no master takes the heartbeat: doubles from this, and is never
/// longer than one pulse (see `master_link::next_backoff_ms`), so a new leader hears from
/// every volume server within a pulse of its election (sooner through `/cluster/watch`).
pub const MASTER_BACKOFF_MS_MIN: u64 = 100;
/// Calls to the master: connecting, and a whole request (it is on the same network; a slow
/// one is a dead one).
pub const MASTER_CONNECT_MS_MAX: u64 = 2_000;
pub const MASTER_REQUEST_MS_MAX: u64 = 5_000;
/// Heartbeats waiting to go out on the `SendHeartbeat` stream (one is built per pulse or
/// change).
pub const HEARTBEATS_QUEUED_MAX: usize = 2;
/// A change that must reach the master before the next step (a volume's new placement)
/// waits at most this long for a heartbeat to go out (two pulses).
pub const HEARTBEAT_SENT_MS_MAX: u64 = 2 * HEARTBEAT_PULSE_SECONDS_DEFAULT * 1000;
/// How long a `/dir/lookup` answer is trusted.
pub const LOOKUP_CACHE_MS_MAX: u64 = 10_000;
/// Most volume ids in one core's lookup cache; the cache is cleared when full (lookups are
/// rare).
pub const LOOKUP_CACHE_ENTRIES_MAX: usize = 4096;

const _: () = assert!(HEARTBEAT_PULSE_SECONDS_DEFAULT <= HEARTBEAT_PULSE_SECONDS_MAX);
const _: () = assert!(MASTER_BACKOFF_MS_MIN < HEARTBEAT_PULSE_SECONDS_DEFAULT * 1000);

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

/// Most volumes one server may hold (`--max`): bounds the per-core volume tables.
pub const VOLUMES_MAX: u32 = 10_000;
/// Largest `--file-size-limit-mb` (the engine stores at most 1 GiB of data per needle).
pub const FILE_SIZE_LIMIT_MB_MAX: u64 = 1024;
/// Largest `--idle-timeout-seconds` and `--header-timeout-seconds` (a day).
pub const TIMEOUT_SECONDS_MAX: u64 = 86_400;

const _: () = assert!(AUTO_VOLUMES_MAX <= VOLUMES_MAX);

/// Messages queued from one core to another, not yet received (requests handed to the owner
/// of their volume, snapshot asks, size limits); a request that finds its queue full is
/// answered 503 by the core it arrived on.
pub const MESH_MESSAGES_PER_PAIR_MAX: usize = 1024;
/// Requests other cores handed to one core that it serves at once; one more is answered 503
/// (it is not queued: the asking core's queue already bounds what waits).
pub const HANDOFF_REQUESTS_MAX: usize = 4096;

const _: () = assert!(MESH_MESSAGES_PER_PAIR_MAX <= kelp_net::limits::MESH_CAPACITY_PER_PAIR_MAX);
// A peer core's whole queue of hand-offs fits in flight at once.
const _: () = assert!(MESH_MESSAGES_PER_PAIR_MAX <= HANDOFF_REQUESTS_MAX);

/// Writes (`fsync=true`) waiting for one volume's next fdatasync; a write past it is not
/// synced and is answered 500 (it was written, but is not known durable).
pub const SYNC_WAITERS_MAX: usize = 4096;
/// Writes and deletes that may wait for one volume's compaction commit; one more is 503.
pub const HELD_APPENDS_MAX: usize = 4096;

/// Records up to this size are read from the `.dat`'s mapping (CRC checked) and sent from
/// it; larger ones are located (two small preads) and their data sent from the file (by
/// splice at and above `--zero-copy-min-bytes`). The same 128 KiB as that threshold: a 64 KB
/// upload makes a record just over 64 KiB.
pub const READ_WHOLE_RECORD_BYTES_MAX: u64 = 128 * 1024;
/// Records up to this size are written with a plain pwrite on the core's thread; larger ones
/// through the ring. ext4 has no non-blocking buffered writes, so a ring write is handed to an
/// io-wq worker thread (two wake-ups per write). Up to 128 KiB (a 64 KB upload's record) the
/// hand-off costs more than the copy it moves off the core: inline, 64 KB writes took 12-20%
/// less server CPU with no worse p99, also while the VM charged for fresh page-cache pages
/// (BENCHMARKS.md, "Volume server"). A bigger record's copy would hold the core, and every
/// connection on it, for longer, so those stay on the ring.
pub const WRITE_INLINE_RECORD_BYTES_MAX: u64 = 128 * 1024;

const _: () = assert!(READ_WHOLE_RECORD_BYTES_MAX == kelp_net::limits::ZERO_COPY_MIN_BYTES_DEFAULT);

/// Idle connections kept per peer server, per core.
pub const PEER_IDLE_CONNECTIONS_MAX: usize = 16;
/// Distinct peer servers with idle connections kept, per core.
pub const PEERS_MAX: usize = 256;
/// A replica that does not answer within this is a failed replica.
pub const REPLICA_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Name and mime are stored with a one-byte length.
pub const NAME_BYTES_MAX: usize = 255;
pub const MIME_BYTES_MAX: usize = 255;
/// Pairs are stored with a two-byte length.
pub const PAIRS_BYTES_MAX: usize = 65_535;

const _: () = assert!(NAME_BYTES_MAX <= u8::MAX as usize && MIME_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(PAIRS_BYTES_MAX <= u16::MAX as usize);

/// RFC 2046: a multipart boundary is 1..=70 characters.
pub const BOUNDARY_BYTES_MAX: usize = 70;
/// Multipart parts looked at before giving up on finding one with a filename.
pub const PARTS_MAX: usize = 64;

/// Most bytes a stored gzip body may inflate to: an upload past it is refused, and inflating
/// one for a client that does not accept gzip stops here.
pub const INFLATED_BYTES_MAX: u64 = 1 << 30;

// An upload's data (at most `--file-size-limit-mb`) may be a gzip that inflates to all of it.
const _: () = assert!(FILE_SIZE_LIMIT_MB_MAX << 20 <= INFLATED_BYTES_MAX);

/// A repair's listing (`/replica/records`) gives at most this many keys per page: the
/// memory a page takes on each side.
pub const REPAIR_RECORDS_PAGE_MAX: usize = 4_096;
/// A needle absent here is copied from a peer only if appended at least this long after
/// the local delete horizon: the most the servers' clocks may differ (a replica stamps its
/// copy of a write with its own clock).
pub const REPAIR_CLOCK_SKEW_MAX_NS: u64 = 60 * 1_000_000_000;
/// The first scheduled repair pass of each core starts this long after the server (or
/// after `--repair-interval-seconds`, if shorter): time for the heartbeat to reach the
/// master, whose lookups name the peers.
pub const REPAIR_FIRST_PASS_DELAY_MS: u64 = 3_000;
