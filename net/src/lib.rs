//! Kelp's per-core runtime: one compio runtime and io_uring ring per pinned core, the HTTP/1.1
//! server and client, bounded cross-core channels and zero-copy sends.
//!
//! Layers, bottom up: [`runtime`] (threads, drivers, fd limits), [`fs`] (positional file I/O
//! through the ring), [`mesh`] (bounded channels between cores), [`http`] (request parser,
//! server, client).

pub mod fs;
pub mod http;
pub mod limits;
pub mod mesh;
pub mod runtime;
