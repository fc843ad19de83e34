//! `kelp shell --master H:P [COMMAND ARGS...]`: the cluster's admin commands, with `weed
//! shell`'s names and flags. One command given as arguments is run and its failure is the
//! process's exit status; without one, commands are read from stdin a line at a time (as
//! `echo volume.list | weed shell`), every failure printed, and the exit status is 1 when any
//! failed.
//!
//! The shell reads the topology from the master's gRPC (`VolumeList`), talks to the volume
//! servers' gRPC for copies, moves, deletes and marks ([`volume_ops`]), plans balancing and
//! evacuation with the master's placement code ([`plan`]), and asks the master's HTTP for
//! repair and re-replication ([`master_calls`]).

pub mod cluster;
pub mod flags;
pub mod limits;
pub mod list;
pub mod master_calls;
pub mod plan;
pub mod volume_ops;

use std::io::BufRead;

use crate::CliResult;
use crate::master::http_client::HttpClient;
use flags::{Flag, Flags};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The master to ask, host:port (its gRPC is on port + 10000, or name it host:port.grpcPort).
    #[arg(long, default_value = "localhost:9333")]
    pub master: String,
    /// One command and its flags (as `volume.list`, `volume.move -volumeId 3 -source H:P
    /// -target H:P`); without one, commands are read from stdin, one a line.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// What every command gets: the master, and a client of its HTTP.
pub struct Shell {
    /// The master's HTTP address, host:port.
    pub master: String,
    /// Where the master serves gRPC (host:port).
    pub master_grpc: String,
    pub http: HttpClient,
}

/// One shell command: its name, what it does, its flags.
pub struct CommandSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub flags: &'static [Flag],
}

pub const COMMANDS: &[CommandSpec] = &[
    list::SPEC,
    volume_ops::COPY_SPEC,
    volume_ops::MOVE_SPEC,
    volume_ops::DELETE_SPEC,
    volume_ops::MARK_SPEC,
    plan::BALANCE_SPEC,
    plan::EVACUATE_SPEC,
    master_calls::FIX_REPLICATION_SPEC,
    master_calls::CHECK_DISK_SPEC,
    HELP_SPEC,
];

const HELP_SPEC: CommandSpec = CommandSpec {
    name: "help",
    help: "list the commands, or describe one: help volume.move",
    flags: &[],
};

pub fn run(args: Args) -> CliResult {
    let master = args.master.trim().trim_start_matches("http://").to_string();
    let master_grpc = crate::pb::grpc_address(&master).map_err(|e| format!("--master: {e}"))?;
    let master = crate::pb::http_address(&master).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    let shell = Shell {
        master,
        master_grpc,
        http: HttpClient::new(),
    };
    runtime.block_on(async move {
        if !args.command.is_empty() {
            return execute(&shell, &args.command).await.map_err(Into::into);
        }
        run_lines(&shell).await
    })
}

/// Commands from stdin, one a line (blank lines and `#` comments skipped); every failure is
/// printed and the run goes on; Err at the end when any failed.
async fn run_lines(shell: &Shell) -> CliResult {
    let mut failed = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("read stdin: {e}"))?;
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        if let Err(error) = execute(shell, &words).await {
            if error.starts_with(words[0].as_str()) {
                eprintln!("{error}");
            } else {
                eprintln!("{}: {error}", words[0]);
            }
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(format!("{failed} commands failed").into());
    }
    Ok(())
}

/// Run one command (`words[0]`) with its flags.
pub async fn execute(shell: &Shell, words: &[String]) -> Result<(), String> {
    let (name, rest) = words.split_first().ok_or("no command given")?;
    let spec = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("unknown command {name:?}; `help` lists the commands"))?;
    if spec.name == "help" {
        print!("{}", help_text(rest.first().map(String::as_str))?);
        return Ok(());
    }
    let flags = Flags::parse(spec.name, rest, spec.flags)?;
    match spec.name {
        "volume.list" => list::run(shell, &flags).await,
        "volume.copy" => volume_ops::copy_command(shell, &flags).await,
        "volume.move" => volume_ops::move_command(shell, &flags).await,
        "volume.delete" => volume_ops::delete_command(shell, &flags).await,
        "volume.mark" => volume_ops::mark_command(shell, &flags).await,
        "volume.balance" => plan::balance_command(shell, &flags).await,
        "volume.server.evacuate" => plan::evacuate_command(shell, &flags).await,
        "volume.fix.replication" => master_calls::fix_replication_command(shell, &flags).await,
        "volume.check.disk" => master_calls::check_disk_command(shell, &flags).await,
        other => unreachable!("command {other} is listed but not dispatched"),
    }
}

/// `help` (every command, one line each) or `help NAME` (its flags).
pub fn help_text(name: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        let mut text = String::new();
        for spec in COMMANDS {
            text.push_str(&format!("  {:<24} {}\n", spec.name, spec.help));
        }
        return Ok(text);
    };
    let spec = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("unknown command {name:?}; `help` lists the commands"))?;
    let mut text = format!("{}: {}\n", spec.name, spec.help);
    for flag in spec.flags {
        let value = if flag.takes_value { " VALUE" } else { "" };
        text.push_str(&format!("  -{}{value}\t{}\n", flag.name, flag.help));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves every command is described by help and has distinct flag names.
    #[test]
    fn help_lists_every_command() {
        let text = help_text(None).unwrap();
        for spec in COMMANDS {
            assert!(text.contains(spec.name), "{}", spec.name);
            let described = help_text(Some(spec.name)).unwrap();
            for flag in spec.flags {
                assert!(described.contains(&format!("-{}", flag.name)));
            }
        }
        assert!(
            help_text(Some("volume.nope"))
                .unwrap_err()
                .contains("unknown command")
        );
    }
}
