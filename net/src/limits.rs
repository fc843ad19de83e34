//! Every limit of the network layer lives here, named `*_max` (or `*_default` for the defaults of
//! run-time limits). Queues and buffers are bounded by these.

/// Default bound on the request line plus headers (`HttpLimits::header_bytes_max`).
pub const HEADER_BYTES_MAX_DEFAULT: usize = 16 * 1024;
/// Number of header lines a request may carry; more gets 431.
pub const HEADER_COUNT_MAX: usize = 100;
/// Default request body bound: SeaweedFS's `-fileSizeLimitMB` default is 256.
pub const BODY_BYTES_MAX_DEFAULT: u64 = 256 * 1024 * 1024;
/// Default number of open connections per serving core.
pub const CONNECTIONS_MAX_DEFAULT: usize = 16 * 1024;
/// Default time a client has to send a complete request head once it started one.
pub const HEADER_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time a connection may sit idle: before its first byte, between requests, or on
/// one read or write of a body (SeaweedFS's `-idleTimeout` is 30 s too).
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default body size from which `Body::File` is sent by splice (zero-copy) instead of read+send.
/// Measured on the development machine (server CPU per request, interleaved runs): splice costs
/// more below 64 KiB, breaks even near 128 KiB, saves 7% at 256 KiB and 39% at 1 MiB. See
/// BENCHMARKS.md `## Network runtime`.
pub const ZERO_COPY_MIN_BYTES_DEFAULT: u64 = 128 * 1024;
/// Default body size from which an in-memory body (`Body::Bytes`) is sent with io_uring's
/// SEND_ZC instead of a copying send: never (`u64::MAX`). Measured on a veth pair between two
/// network namespaces (BENCHMARKS.md `### SEND_ZC on a veth pair`): see there why it is off.
pub const SEND_ZC_MIN_BYTES_DEFAULT: u64 = u64::MAX;

/// Bytes requested from the kernel per socket read of a request head (bodies of known length
/// are read in larger pieces).
pub const READ_CHUNK_BYTES: usize = 4 * 1024;
/// A connection waiting for its next request keeps at most this much receive buffer; a larger
/// one (left by a big upload) is freed. Measured: receiving idle connections from io_uring's
/// provided-buffer ring instead (no buffer held at all) cost 4-6% more CPU per request, so
/// connections keep a small buffer of their own.
pub const IDLE_BUFFER_BYTES_MAX: usize = 8 * 1024;
/// A chunk-size line (hex size plus extensions) longer than this is malformed.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// Trailer section of a chunked body, in bytes.
pub const CHUNK_TRAILER_BYTES_MAX: usize = 8 * 1024;
/// Responses of pipelined requests are gathered into one write up to this many bytes.
pub const PIPELINE_BATCH_BYTES_MAX: usize = 64 * 1024;
/// Largest buffer used to copy a `Body::File` region through user space per read.
pub const FILE_COPY_CHUNK_BYTES_MAX: usize = 256 * 1024;
/// Bytes moved per splice call (the pipe's capacity is raised to this).
pub const SPLICE_CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// After an error response, unread request bytes are drained for at most this long / this
/// many bytes before the close, so the client reads the response instead of a reset.
pub const LINGER_MS_MAX: u64 = 1_000;
pub const LINGER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// After shutdown, requests in progress get this long to finish before the core stops.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 5_000;
/// Listen backlog of each per-core SO_REUSEPORT listener.
pub const LISTEN_BACKLOG_MAX: i32 = 4096;
/// Threads (cores) one process runs.
pub const CORES_MAX: usize = 1024;
/// Messages queued from one core to another (a bound on `mesh` capacity per pair).
pub const MESH_CAPACITY_PER_PAIR_MAX: usize = 64 * 1024;
/// Entries of the io_uring submission queue per core.
pub const RING_ENTRIES_MAX: u32 = 4096;

const _: () = assert!(READ_CHUNK_BYTES <= HEADER_BYTES_MAX_DEFAULT);
const _: () = assert!(CHUNK_LINE_BYTES_MAX < READ_CHUNK_BYTES);
const _: () = assert!(READ_CHUNK_BYTES <= IDLE_BUFFER_BYTES_MAX);
const _: () = assert!(ZERO_COPY_MIN_BYTES_DEFAULT as usize <= FILE_COPY_CHUNK_BYTES_MAX);

/// Descriptors `runtime::check_fd_limit` keeps free besides the ones it is asked for
/// (listeners, rings, pipes, log files).
pub const FD_RESERVE_COUNT: u64 = 256;
