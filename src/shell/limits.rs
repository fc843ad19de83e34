//! Limits and timeouts of `kelp shell`.

/// Connecting to the master's or a volume server's gRPC.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// One call to the master (its topology, its HTTP answers).
pub const MASTER_CALL_TIMEOUT_MS: u64 = 30_000;
/// Repair and re-replication run on the master while the call waits: they may take long.
pub const MASTER_REPAIR_TIMEOUT_MS: u64 = 600_000;
/// The master's topology may be this large (a cluster of many volumes).
pub const TOPOLOGY_BYTES_MAX: usize = 256 << 20;
/// A moved or copied volume must show at its new server in the master's topology within this
/// time (the server heartbeats at once after a copy; one pulse at most otherwise).
pub const LISTED_WAIT_MS_MAX: u64 = 30_000;
/// How often the topology is asked again meanwhile.
pub const LISTED_POLL_MS: u64 = 100;
/// The final tail of a move ends once the source sent nothing for this long (the source is
/// read-only then: what it holds is all there is).
pub const FINAL_TAIL_IDLE_SECONDS: u32 = 1;
/// Moves one `volume.balance` or `volume.server.evacuate` plans at most.
pub const PLANNED_MOVES_MAX: usize = 10_000;
