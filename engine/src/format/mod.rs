//! The on-disk format: pure encode/decode, no I/O (spec: `engine/FORMAT.md`).
