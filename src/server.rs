//! `kelp server`: master and one volume server in one process (skeleton).

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err("`kelp server` is not built yet".into())
}
