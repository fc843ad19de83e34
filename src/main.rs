//! The `kelp` binary: one CLI for the master, the volume server, the filer, all in one
//! process (`kelp server`), the benchmark and the offline volume tools.

mod backup;
mod config_file;
mod filer;
mod generate_volumes;
mod grpc_listener;
mod master;
mod pb;
mod security;
mod server;
mod shell;
mod tools;
mod ui;
mod volume;
mod wire;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Every subcommand returns this; `main` prints the error and exits 1.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `kelp --version`: the version and the build (git commit, or `KELP_BUILD`; see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KELP_BUILD"),
    ", ",
    env!("KELP_PROFILE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "kelp",
    version = VERSION,
    about = "A small-file store that speaks SeaweedFS's API and volume format"
)]
struct Cli {
    /// Log lines as text, or as JSON objects (one a line: timestamp, level, target, fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// List, add and remove the masters of a cluster (like weed shell's cluster.raft.*).
    Cluster(master::admin_cli::Args),
    /// Admin commands on the cluster's volumes, as `weed shell`: volume.list, volume.move,
    /// volume.copy, volume.balance, volume.server.evacuate... (`kelp shell help`).
    Shell(shell::Args),
    /// Load generator: assign + upload n files, then read them back (like `weed benchmark`).
    Benchmark(kelp_bench::Args),
    /// Charts (SVG) from saved results: latency curves of benchmark reports, ratio bars.
    Plot(kelp_bench::plot_command::PlotArgs),
    /// Keep a local copy of a volume up to date, pulling only what changed (like `weed
    /// backup`).
    Backup(backup::Args),
    /// List (or tar) the live needles of a volume, like `weed export`.
    Export(tools::ExportArgs),
    /// Rebuild a volume's `.idx` from its `.dat`, like `weed fix`.
    Fix(tools::FixArgs),
    /// Compact a volume no server has open: copy its live needles into new files, dropping
    /// deleted, overwritten and expired ones (like `weed compact`, but the swap is done too).
    Compact(tools::CompactArgs),
    /// Write synthetic volumes (small needles, checkable bytes) for scale benchmarks.
    GenerateVolumes(generate_volumes::Args),
    /// Print a commented configuration file: `kelp scaffold --config master > master.toml`.
    Scaffold(ScaffoldArgs),
}

#[derive(clap::Args)]
struct ScaffoldArgs {
    /// Which file: a command's flags, or SeaweedFS's security.toml.
    #[arg(long, value_parser = ["master", "volume", "server", "filer", "security"])]
    config: String,
}

fn scaffold(args: ScaffoldArgs) -> CliResult {
    let text = match args.config.as_str() {
        "security" => security::SCAFFOLD.to_string(),
        name => {
            let mut command = Cli::command();
            command.build(); // global flags (--log-format) are the subcommands' too
            let sub = command
                .find_subcommand(name)
                .ok_or_else(|| format!("no command {name:?}"))?;
            config_file::scaffold(sub)
        }
    };
    print!("{text}");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The command line, with the flags of a `--config FILE` put before the typed ones.
fn parse_command_line() -> Cli {
    let mut command = config_file::with_config_flag(Cli::command());
    command.build(); // global flags (--log-format) are the subcommands' too
    let argv = std::env::args_os().collect();
    let argv = match config_file::expand(&command, argv, &["--log-format"]) {
        Ok(argv) => argv,
        Err(error) => {
            eprintln!("kelp: {error}");
            std::process::exit(2);
        }
    };
    let matches = command.get_matches_from(argv);
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

fn main() {
    let cli = parse_command_line();
    init_logging(cli.log_format);
    let (name, result) = match cli.command {
        Command::Server(args) => ("server", server::run(args)),
        Command::Master(args) => ("master", master::run(args)),
        Command::Volume(args) => ("volume", volume::run(args)),
        Command::Filer(args) => ("filer", filer::run(args)),
        Command::FilerBenchmark(args) => ("filer-benchmark", filer::benchmark::run(args)),
        Command::Cluster(args) => ("cluster", master::admin_cli::run(args)),
        Command::Shell(args) => ("shell", shell::run(args)),
        Command::Benchmark(args) => ("benchmark", kelp_bench::run(args)),
        Command::Plot(args) => ("plot", kelp_bench::plot_command::run(args)),
        Command::Backup(args) => ("backup", backup::run(args)),
        Command::Export(args) => ("export", tools::export(args)),
        Command::Fix(args) => ("fix", tools::fix(args)),
        Command::Compact(args) => ("compact", tools::compact(args)),
        Command::GenerateVolumes(args) => ("generate-volumes", generate_volumes::run(args)),
        Command::Scaffold(args) => ("scaffold", scaffold(args)),
    };
    if let Err(error) = result {
        eprintln!("kelp {name}: {error}");
        std::process::exit(1);
    }
}
