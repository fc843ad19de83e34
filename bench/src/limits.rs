//! Every bound of `kelp benchmark` in one place.

/// Most concurrent workers (`-c`); each holds one connection per server it talks to.
pub const CONCURRENCY_MAX: usize = 4096;
/// Most runtime threads (`--threads`).
pub const THREADS_MAX: usize = 256;
/// Largest file (`--size` + `--size-jitter`), so one upload stays one in-memory request.
pub const FILE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most operations in one phase (`-n`).
pub const OPERATIONS_MAX: u64 = 1 << 40;
/// Failed requests whose message is printed; the rest are only counted.
pub const ERRORS_PRINTED_MAX: u64 = 10;
/// Connection-level failures in a row (one worker) after which the server is taken as gone
/// and the run ends with the partial report.
pub const CONNECTION_FAILURES_IN_A_ROW_MAX: u32 = 3;
/// Deletes a worker has scheduled but not yet sent (`--delete-percent`).
pub const PENDING_DELETES_MAX: usize = 4096;
/// How long a file lives before its scheduled delete (as `weed benchmark`: one second).
pub const DELETE_DELAY_MS: u64 = 1000;
/// Tries of one assign (masters answering "not the leader" or "busy, growing volumes"), and
/// how long they may take in all: long enough to ride out a master failover (an election
/// takes 2-3 election timeouts; Kelp's default is 1.5 s).
pub const ASSIGN_ATTEMPTS_MAX: u32 = 200;
pub const ASSIGN_RETRY_MS_MAX: u64 = 15_000;
/// First wait before asking a busy master again; doubles per try up to the max.
pub const ASSIGN_BACKOFF_MS: u64 = 25;
pub const ASSIGN_BACKOFF_MS_MAX: u64 = 400;
/// Timeout of each request to a master or volume server.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Timeout of each connect.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Longest latency the histograms hold (one hour, in microseconds); longer ones are clamped.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Largest volume-id lookup cache per worker (entries); cleared when full.
pub const LOOKUP_CACHE_ENTRIES_MAX: usize = 65_536;
/// Fid lines read from a `--list` file.
pub const LIST_LINES_MAX: usize = 100_000_000;

const _: () = assert!(ERRORS_PRINTED_MAX > 0);
const _: () = assert!(CONNECTION_FAILURES_IN_A_ROW_MAX > 0);
const _: () = assert!(THREADS_MAX <= CONCURRENCY_MAX);

/// How often a phase looks for its `--stop-file`.
pub const STOP_FILE_POLL_MS: u64 = 20;

/// Points of a phase's percentile curve (the `--json` report's `curve_ms`): this many per
/// halving of the remaining tail, at most `CURVE_POINTS_MAX` in all.
pub const CURVE_TICKS_PER_HALF: u32 = 5;
pub const CURVE_POINTS_MAX: usize = 1024;

/// Lines on one latency chart, and bars on one ratio chart (`kelp plot`).
pub const CHART_CURVES_MAX: usize = 32;
pub const CHART_BARS_MAX: usize = 64;
/// Largest report or table file `kelp plot` reads.
pub const PLOT_INPUT_BYTES_MAX: u64 = 64 * 1024 * 1024;
