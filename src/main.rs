//! The `kelp` binary: one CLI for the master, the volume server, the filer, all in one
//! process (`kelp server`), the benchmark and the offline volume tools.

mod filer;
mod master;
mod security;
mod server;
mod tools;
mod volume;
mod wire;

use clap::{Parser, Subcommand};

/// Every subcommand returns this; `main` prints the error and exits 1.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(
    name = "kelp",
    version,
    about = "A small-file store that speaks SeaweedFS's API and volume format"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Master and one volume server in one process (the quick start).
    Server(server::Args),
    /// A master: topology, file id assignment, lookups (Raft cluster of 1, 3 or 5).
    Master(master::Args),
    /// A volume server: stores needles, one io_uring loop per core.
    Volume(volume::Args),
    /// A filer: paths and directories over the volume servers (SeaweedFS's filer API).
    Filer(filer::Args),
    /// Load on a filer (Kelp's or SeaweedFS's): small-file creates, stats, reads, deletes,
    /// and pages of a large directory.
    FilerBenchmark(filer::benchmark::Args),
    /// Load generator: assign + upload n files, then read them back (like `weed benchmark`).
    Benchmark(kelp_bench::Args),
    /// List (or tar) the live needles of a volume, like `weed export`.
    Export(tools::ExportArgs),
    /// Rebuild a volume's `.idx` from its `.dat`, like `weed fix`.
    Fix(tools::FixArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (name, result) = match cli.command {
        Command::Server(args) => ("server", server::run(args)),
        Command::Master(args) => ("master", master::run(args)),
        Command::Volume(args) => ("volume", volume::run(args)),
        Command::Filer(args) => ("filer", filer::run(args)),
        Command::FilerBenchmark(args) => ("filer-benchmark", filer::benchmark::run(args)),
        Command::Benchmark(args) => ("benchmark", kelp_bench::run(args)),
        Command::Export(args) => ("export", tools::export(args)),
        Command::Fix(args) => ("fix", tools::fix(args)),
    };
    if let Err(error) = result {
        eprintln!("kelp {name}: {error}");
        std::process::exit(1);
    }
}
