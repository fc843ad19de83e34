//! `kelp benchmark`: the load generator and its report (skeleton).

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("`kelp benchmark` is not built yet".into())
}
