//! `kelp cluster ps | add | remove`: list and change the masters of a cluster, as SeaweedFS's
//! `cluster.raft.ps`, `cluster.raft.add` and `cluster.raft.remove` do. The command takes the
//! list of masters, asks them in turn which one leads, and sends the change to the leader;
//! while no leader is known (an election) it asks again, for at most `CLI_LEADER_WAIT_MS`.

use std::time::{Duration, Instant};

use super::http_client::HttpClient;
use super::limits::{CLI_LEADER_WAIT_MS, MEMBERSHIP_CHANGE_TIMEOUT_MS, PEER_PROBE_TIMEOUT_MS};
use super::membership::{MemberStatus, check_address};
use crate::CliResult;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// List the masters: address, role (voter or learner), reachable, leader.
    Ps(Masters),
    /// Add a master: first as a learner, then (unless --learner) as a voter once it has
    /// caught up with the log. Start it with --peers naming the cluster and itself.
    Add {
        #[command(flatten)]
        masters: Masters,
        /// The master to add, host:port, spelled as in its own --peers.
        #[arg(long)]
        address: String,
        /// Keep it a learner (it gets the log but does not vote).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a master from the cluster (stop its process afterwards).
    Remove {
        #[command(flatten)]
        masters: Masters,
        /// The master to remove, host:port.
        #[arg(long)]
        address: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct Masters {
    /// Masters to ask, comma-separated; any one that answers will do.
    #[arg(long, default_value = "localhost:9333")]
    pub master: String,
}

impl Masters {
    fn list(&self) -> Result<Vec<String>, String> {
        let masters: Vec<String> = self
            .master
            .split(',')
            .map(|m| m.trim().trim_start_matches("http://").to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if masters.is_empty() {
            return Err("--master: give at least one host:port".into());
        }
        for master in &masters {
            check_address(master).map_err(|e| format!("--master: {}", e.message()))?;
        }
        Ok(masters)
    }
}

pub fn run(args: Args) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let client = HttpClient::new();
        match args.command {
            Command::Ps(masters) => ps(&client, &masters.list()?).await,
            Command::Add {
                masters,
                address,
                learner,
            } => {
                check_address(&address).map_err(|e| format!("--address: {}", e.message()))?;
                let query = format!("address={address}&voter={}", !learner);
                change(&client, &masters.list()?, "/cluster/raft/add", &query).await
            }
            Command::Remove { masters, address } => {
                check_address(&address).map_err(|e| format!("--address: {}", e.message()))?;
                let query = format!("address={address}");
                change(&client, &masters.list()?, "/cluster/raft/remove", &query).await
            }
        }
    })
}

/// `/cluster/status` of `master`, or why not.
async fn status(client: &HttpClient, master: &str) -> Result<serde_json::Value, String> {
    let url = format!("http://{master}/cluster/status");
    let timeout = Duration::from_millis(PEER_PROBE_TIMEOUT_MS * 5);
    let reply = client
        .call(hyper::Method::GET, &url, &[], bytes::Bytes::new(), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("{url}: status {}", reply.status));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// The leader's address and its status: each master is asked in turn, again and again
/// (100 ms, doubling to 1 s between rounds) until one names a leader that answers, for at
/// most `CLI_LEADER_WAIT_MS`.
async fn find_leader(
    client: &HttpClient,
    masters: &[String],
) -> Result<(String, serde_json::Value), String> {
    let deadline = Instant::now() + Duration::from_millis(CLI_LEADER_WAIT_MS);
    let mut pause_ms = 100;
    let mut last_problem = String::new();
    loop {
        for master in masters {
            let named = match status(client, master).await {
                Ok(answer) => answer["Leader"].as_str().unwrap_or("").to_string(),
                Err(problem) => {
                    last_problem = problem;
                    continue;
                }
            };
            if named.is_empty() {
                last_problem = format!("{master} knows no leader");
                continue;
            }
            match status(client, &named).await {
                Ok(answer) if answer["IsLeader"] == true => return Ok((named, answer)),
                Ok(answer) => {
                    let quorum = answer["Quorum"].as_str().unwrap_or("").to_string();
                    last_problem = format!("{named} is named leader but is not ({quorum})");
                }
                Err(problem) => last_problem = problem,
            }
        }
        if Instant::now() + Duration::from_millis(pause_ms) >= deadline {
            return Err(format!(
                "no leader found among {masters:?} within {CLI_LEADER_WAIT_MS} ms; last: {last_problem}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        pause_ms = (pause_ms * 2).min(1000);
    }
}

async fn ps(client: &HttpClient, masters: &[String]) -> CliResult {
    let (leader, answer) = find_leader(client, masters).await?;
    let members: Vec<MemberStatus> = serde_json::from_value(answer["Members"].clone())
        .map_err(|e| format!("{leader}: /cluster/status has no member list: {e}"))?;
    print!("{}", format_members(&members));
    println!("{}", answer["Quorum"].as_str().unwrap_or(""));
    Ok(())
}

/// One line per member: address, role, reachable or not, leader mark.
pub fn format_members(members: &[MemberStatus]) -> String {
    let width = members.iter().map(|m| m.address.len()).max().unwrap_or(0);
    let mut text = String::new();
    for member in members {
        let reachable = if member.reachable {
            "reachable"
        } else {
            "unreachable"
        };
        let leader = if member.is_leader { " leader" } else { "" };
        let line = format!(
            "{:<width$}  {:<7}  {reachable}{leader}",
            member.address, member.role
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// POST `path?query` to the leader; a 503 (leadership moved meanwhile) is asked again of the
/// new leader while the time allows.
async fn change(client: &HttpClient, masters: &[String], path: &str, query: &str) -> CliResult {
    let deadline = Instant::now() + Duration::from_millis(CLI_LEADER_WAIT_MS);
    loop {
        let (leader, _) = find_leader(client, masters).await?;
        let url = format!("http://{leader}{path}?{query}");
        let timeout = Duration::from_millis(MEMBERSHIP_CHANGE_TIMEOUT_MS + 5_000);
        let reply = client
            .call(hyper::Method::POST, &url, &[], bytes::Bytes::new(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        if reply.status == 200 {
            println!("{}", answer["Done"].as_str().unwrap_or("done"));
            let members: Vec<MemberStatus> =
                serde_json::from_value(answer["Members"].clone()).unwrap_or_default();
            print!("{}", format_members(&members));
            return Ok(());
        }
        let error = answer["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
        if reply.status != 503 || Instant::now() >= deadline {
            return Err(format!("{url}: status {}: {error}", reply.status).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the member table lines up and marks the leader and unreachable members.
    #[test]
    fn member_table() {
        let member = |address: &str, role: &str, reachable, is_leader| MemberStatus {
            address: address.into(),
            role: role.into(),
            reachable,
            is_leader,
        };
        let table = format_members(&[
            member("10.0.0.1:9333", "voter", true, true),
            member("10.0.0.22:9333", "learner", false, false),
        ]);
        assert_eq!(
            table,
            "10.0.0.1:9333   voter    reachable leader\n10.0.0.22:9333  learner  unreachable\n"
        );
    }

    // Proves bad master lists are refused naming the flag.
    #[test]
    fn master_list_is_checked() {
        let masters = Masters {
            master: "a:1, http://b:2".into(),
        };
        assert_eq!(masters.list().unwrap(), vec!["a:1", "b:2"]);
        for bad in ["", "a", "a:1,b"] {
            let masters = Masters { master: bad.into() };
            assert!(masters.list().unwrap_err().contains("--master"), "{bad}");
        }
    }
}
