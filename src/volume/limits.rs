//! Limits of the volume server that are not flags (`_max`, `_ms` names; the HTTP limits are
//! in `kelp_net::limits`, set from flags in `mod.rs`).

/// The masters' host names are resolved again this often, for the admin calls' gate.
pub const MASTER_RESOLVE_INTERVAL_MS: u64 = 60_000;
/// ... and this often while one of them does not resolve.
pub const MASTER_RESOLVE_RETRY_MS: u64 = 5_000;

const _: () = assert!(MASTER_RESOLVE_RETRY_MS <= MASTER_RESOLVE_INTERVAL_MS);
