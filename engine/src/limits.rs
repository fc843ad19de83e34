//! Every engine limit, in one place, with `_max` names. Related limits are tied together by
//! compile-time assertions so that changing one cannot silently break another.

/// Longest collection name, in bytes (it prefixes volume file names and URL queries).
pub const COLLECTION_NAME_BYTES_MAX: usize = 128;
/// Longest needle name, in bytes (the name length is stored in one byte).
pub const NAME_BYTES_MAX: usize = 255;
/// Longest mime type, in bytes (one length byte).
pub const MIME_BYTES_MAX: usize = 255;
/// Largest pairs JSON, in bytes (two length bytes).
pub const PAIRS_BYTES_MAX: usize = 65_535;
/// Largest needle data Kelp writes. SeaweedFS stores the needle size as a signed 32-bit
/// number (negative means deleted), so a body must stay below 2^31; 1 GiB leaves headroom for
/// the name, mime and pairs that share the body.
pub const DATA_BYTES_MAX: usize = 1 << 30;
/// Largest needle `size` field accepted when decoding (below the tombstone and the sign bit).
pub const NEEDLE_SIZE_MAX: u32 = (1 << 31) - 1;
/// Largest volume with 4-byte `.idx` offsets: 2^32 units of 8 bytes = 32 GiB.
pub const VOLUME_BYTES_MAX_OFFSET4: u64 = (1 << 32) * 8;
/// Largest volume with 5-byte `.idx` offsets: 2^40 units of 8 bytes = 8 TiB.
pub const VOLUME_BYTES_MAX_OFFSET5: u64 = (1 << 40) * 8;
/// Default size past which a volume turns read-only (SeaweedFS's default: 30 GiB).
pub const VOLUME_SIZE_LIMIT_BYTES_DEFAULT: u64 = 30 << 30;
/// Largest superblock extra (two length bytes, SeaweedFS reserves the top two values).
pub const SUPERBLOCK_EXTRA_BYTES_MAX: usize = 65_534;
/// Largest `.vif` file read, in bytes (it is a small JSON object).
pub const VIF_BYTES_MAX: u64 = 1 << 20;
/// Needles read in one pread by `FileVolume::read`; a larger needle is read in two steps
/// so that its data can be sent from the file without a copy.
pub const NEEDLE_READ_WHOLE_BYTES_MAX: u64 = 1 << 20;
/// Bytes read per step when scanning a `.dat` during recovery, export and fix.
pub const SCAN_CHUNK_BYTES_MAX: usize = 4 << 20;

/// Largest needle data `kelp generate-volumes` writes: its volumes are for scale tests,
/// where the needle count matters and the data only has to be checkable.
pub const GENERATED_DATA_BYTES_MAX: usize = 1 << 20;
/// Write buffer of each of a generated volume's `.dat` and `.idx`.
pub const GENERATED_WRITE_BUFFER_BYTES: usize = 4 << 20;

/// Needles one compaction step copies at most (a copy or a replay step), so a step is short
/// enough to run between the requests of an event loop's volume.
pub const COMPACT_STEP_NEEDLES_MAX: usize = 4096;
/// Record bytes one compaction step copies at most (a larger needle is copied alone).
pub const COMPACT_STEP_BYTES_MAX: u64 = 4 << 20;
/// Needle map entries one copy plan looks at: entries of needles written after the
/// compaction started are skipped there (the replay copies them), and the skipping is bounded.
pub const COMPACT_PLAN_ENTRIES_MAX: usize = 4 * COMPACT_STEP_NEEDLES_MAX;
/// The commit may start once at most this many `.idx` entries were appended since the last
/// replay step: the final step, with the volume's appends held, replays them.
pub const COMPACT_COMMIT_TAIL_ENTRIES_MAX: usize = 1024;
/// Replay steps after which the commit starts whatever the tail (appends outpace the replay).
pub const COMPACT_REPLAY_STEPS_MAX: u32 = 64;
/// Unreadable needles a compaction report names (more are only counted).
pub const COMPACT_CORRUPT_REPORTED_MAX: usize = 16;

const _: () = assert!(
    DATA_BYTES_MAX + NAME_BYTES_MAX + MIME_BYTES_MAX + PAIRS_BYTES_MAX + 16
        < NEEDLE_SIZE_MAX as usize
);
const _: () = assert!(VOLUME_SIZE_LIMIT_BYTES_DEFAULT < VOLUME_BYTES_MAX_OFFSET4);
const _: () = assert!(VOLUME_BYTES_MAX_OFFSET4 < VOLUME_BYTES_MAX_OFFSET5);
const _: () = assert!(NEEDLE_READ_WHOLE_BYTES_MAX as usize <= SCAN_CHUNK_BYTES_MAX);
const _: () = assert!(COMPACT_COMMIT_TAIL_ENTRIES_MAX <= COMPACT_STEP_NEEDLES_MAX);
const _: () = assert!(COMPACT_PLAN_ENTRIES_MAX >= COMPACT_STEP_NEEDLES_MAX);
const _: () = assert!(COMPACT_STEP_BYTES_MAX >= NEEDLE_READ_WHOLE_BYTES_MAX);
