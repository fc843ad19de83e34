//! The settings of every volume on this server, shared by all cores. Touched only by the admin
//! calls (create/delete) and at start, never by reads or writes: it makes `--max` exact across
//! cores.

use kelp_engine::format::{ReplicaPlacement, Ttl};
use std::collections::BTreeMap;

/// The server's volumes by id (each is served by its owner core's store).
#[derive(Debug, Default)]
pub struct Registry {
    pub volumes: BTreeMap<u32, VolumeSettings>,
}

/// What a volume was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSettings {
    pub collection: String,
    pub replication: ReplicaPlacement,
    pub ttl: Ttl,
}
