//! `kelp volume` (skeleton: the issue that builds it replaces this file).

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: Args) -> CliResult {
    Err("`kelp volume` is not built yet".into())
}
