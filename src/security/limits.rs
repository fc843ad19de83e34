//! Limits of the security checks (`_max` names).

/// Longest token taken (a file token is about 150 bytes; a longer one is refused before any
/// decoding).
pub const TOKEN_BYTES_MAX: usize = 4096;

/// Largest `security.toml` read.
pub const SECURITY_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Most entries in an allow-list (addresses and networks).
pub const ALLOW_LIST_ENTRIES_MAX: usize = 4096;
