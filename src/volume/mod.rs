//! `kelp volume`: the volume server. One compio runtime per core; each core owns a shard of
//! the volumes and serves them through its own ring.

pub mod codec;
pub mod conditional;
pub mod fid;
pub mod master_link;
pub mod metrics;
pub mod multipart;
pub mod query;
pub mod range;
pub mod read;
pub mod shard;
pub mod upload;

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err("`kelp volume` is not built yet".into())
}
