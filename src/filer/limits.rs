//! Every limit of the filer in one place (`_max` names; every queue is bounded).

/// Open client connections one filer serves at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 4096;

/// A client must send a request's headers within this time.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;

/// Largest path (bytes, after percent-decoding) the filer accepts.
pub const PATH_BYTES_MAX: usize = 4096;

/// Largest single name in a path (one component), as most file systems.
pub const NAME_BYTES_MAX: usize = 255;

/// Deepest directory nesting accepted.
pub const PATH_DEPTH_MAX: usize = 256;

/// Largest query string parsed.
pub const QUERY_BYTES_MAX: usize = 8192;

/// Largest `--max-chunk-mb`.
pub const CHUNK_MB_MAX: u64 = 256;

/// Chunks of one upload sent to volume servers at once.
pub const CHUNK_UPLOADS_IN_FLIGHT_MAX: usize = 4;

/// Chunks of one download fetched ahead of the one being sent.
pub const CHUNK_READ_AHEAD_MAX: usize = 2;

/// Largest multipart upload body held in memory (a multipart body is parsed whole; a raw
/// `PUT` body of any size is streamed in chunks).
pub const MULTIPART_BODY_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Largest file: chunks of one entry (at 4 MiB a chunk, 64 GiB).
pub const CHUNKS_PER_FILE_MAX: usize = 16_384;

/// Largest page of a directory listing (`limit`), and the default, as SeaweedFS 4.48.
pub const LIST_LIMIT_MAX: usize = 100_000;

/// Entries a recursive delete or a sweep reads and deletes in one store transaction.
pub const DELETE_BATCH_ENTRIES_MAX: usize = 1000;

/// File ids leased from the master in one `/dir/assign?count=N`.
pub const FID_LEASE_COUNT_MAX: u64 = 1000;

/// Chunk deletions sent to one volume server in one batch.
pub const DELETE_BATCH_FIDS_MAX: usize = 256;

/// Attempts of a chunk deletion before it is left in the store's pending records for the next
/// sweep.
pub const DELETE_ATTEMPTS_MAX: u32 = 5;

/// Pending-delete records read from the store per round of the deleter.
pub const PENDING_READ_MAX: usize = 512;

/// Creates and updates merged into one write transaction of the embedded store.
pub const GROUP_COMMIT_OPS_MAX: usize = 1024;

/// Store operations waiting for the embedded store's writer thread.
pub const STORE_WRITE_QUEUE_MAX: usize = 8192;

/// Connections to a PostgreSQL store.
pub const POSTGRES_CONNECTIONS_MAX: usize = 8;

/// Times an update retries after another writer changed the entry between read and write.
pub const CONFLICT_RETRIES_MAX: u32 = 16;

/// Timeout of one call to the master or a volume server.
pub const OUTBOUND_CALL_TIMEOUT_MS: u64 = 30_000;

/// How long a volume's looked-up location is trusted.
pub const VOLUME_LOCATION_TTL_MS: u64 = 600_000;

/// How long this filer trusts that a directory it saw or made still exists (directories are
/// made implicitly; another filer on a shared store may remove one meanwhile).
pub const DIRECTORY_CACHE_TTL_MS: u64 = 2_000;

/// Directories remembered as existing.
pub const DIRECTORY_CACHE_ENTRIES_MAX: usize = 65_536;

/// FastDFS's per-file metadata: key and value sizes, and pairs per file.
pub const META_KEY_BYTES_MAX: usize = 64;
pub const META_VALUE_BYTES_MAX: usize = 256;
pub const META_PAIRS_MAX: usize = 256;

/// `Seaweed-*` extended attributes per entry and their total size.
pub const EXTENDED_BYTES_MAX: usize = 65_536;
