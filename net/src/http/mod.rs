//! HTTP/1.1 on compio.

pub mod client;
