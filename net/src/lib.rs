//! Kelp's per-core runtime: one compio runtime and io_uring ring per pinned core, the HTTP/1.1
//! server and client, bounded cross-core channels and zero-copy sends.

pub mod http;
