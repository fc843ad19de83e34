//! Kelp's per-core runtime: one compio runtime and io_uring ring per pinned core, the HTTP/1.1
//! server and client, bounded cross-core channels and zero-copy sends.
//!
//! Layers, bottom up: [`runtime`] (threads, drivers, fd limits), [`fs`] (positional file I/O
//! through the ring), [`mesh`] (bounded channels between cores), [`http`] (request parser,
//! server, client).
//!
//! A server in brief (one instance of everything per core, nothing shared on the hot path):
//!
//! ```no_run
//! use std::rc::Rc;
//! use kelp_net::http::{Handler, HttpLimits, Request, Response, serve};
//!
//! struct Hello;
//! impl Handler for Hello {
//!     async fn handle(&self, request: Request) -> Response {
//!         Response::new(200).body_bytes(format!("hello {}", request.path))
//!     }
//! }
//!
//! let addr = "127.0.0.1:8080".parse().unwrap();
//! kelp_net::runtime::run_cores(2, move |_core| async move {
//!     serve(addr, HttpLimits::default(), Rc::new(Hello)).await
//! })
//! .unwrap();
//! ```
//!
//! Environment: `KELP_DRIVER=auto|io_uring|poll` picks the driver (auto: io_uring when the
//! kernel allows it, else the poll driver with the reason logged); `KELP_RING_TUNING=off` turns
//! off the single-thread ring flags (for A/B runs).

pub mod fs;
pub mod http;
pub mod limits;
pub mod mesh;
pub mod runtime;
