//! Offline volume tools: `kelp export` and `kelp fix` (skeleton).

use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {}

#[derive(clap::Args, Debug, Clone)]
pub struct FixArgs {}

pub fn export(_args: ExportArgs) -> CliResult {
    Err("`kelp export` is not built yet".into())
}

pub fn fix(_args: FixArgs) -> CliResult {
    Err("`kelp fix` is not built yet".into())
}
