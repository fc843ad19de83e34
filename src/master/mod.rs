//! `kelp master` (skeleton: the issue that builds it replaces this file).

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err("`kelp master` is not built yet".into())
}
