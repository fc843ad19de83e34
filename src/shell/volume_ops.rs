//! `volume.copy`, `volume.move`, `volume.delete` and `volume.mark`: calls on the volume
//! servers' gRPC, checked against the master's topology first (an unknown volume or server,
//! or the same source and target, changes nothing).
//!
//! A copy or move of a live volume:
//! 1. the target copies the volume (`VolumeCopy`, staged: the target leaves it out of its
//!    heartbeats) while the source serves reads and writes;
//! 2. the source is marked read-only (a write is refused from then, never acknowledged and
//!    lost), and the target tails it (`VolumeTailReceiver` from the copy's newest append)
//!    until the source sent nothing for a second: the target holds every record;
//! 3. the target is marked writable (read-only when the source was): its heartbeat tells the
//!    master at once, and the shell waits until the master lists it;
//! 4. a move deletes the source copy (its heartbeat drops it from the master; a reader sent
//!    there meanwhile is redirected to the target); a copy makes the source writable again.
//!
//! A failure in 1 to 3 deletes the target's copy and makes the source writable again (when it
//! was), and says so.

use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::cluster::{Cluster, Node};
use super::flags::{Flag, Flags};
use super::limits::{FINAL_TAIL_IDLE_SECONDS, LISTED_POLL_MS, LISTED_WAIT_MS_MAX};
use super::{CommandSpec, Shell};
use crate::pb::volume_server_pb::volume_server_client::VolumeServerClient;
use crate::pb::volume_server_pb::*;
use crate::volume::grpc::volume_copy::{STAGED_COPY_METADATA, peer_client};

type Client = VolumeServerClient<Channel>;

const VOLUME_ID: Flag = Flag {
    name: "volumeId",
    takes_value: true,
    help: "the volume id",
};
const SOURCE: Flag = Flag {
    name: "source",
    takes_value: true,
    help: "the source volume server host:port",
};
const TARGET: Flag = Flag {
    name: "target",
    takes_value: true,
    help: "the target volume server host:port",
};
const IO_BYTES_PER_SECOND: Flag = Flag {
    name: "ioBytePerSecond",
    takes_value: true,
    help: "copy at most this many bytes a second (0: as fast as it goes)",
};
const NODE: Flag = Flag {
    name: "node",
    takes_value: true,
    help: "the volume server host:port",
};

pub const COPY_SPEC: CommandSpec = CommandSpec {
    name: "volume.copy",
    help: "copy a live volume to another server (one copy more; the source keeps its copy)",
    flags: &[VOLUME_ID, SOURCE, TARGET, IO_BYTES_PER_SECOND],
};
pub const MOVE_SPEC: CommandSpec = CommandSpec {
    name: "volume.move",
    help: "move a live volume to another server: no read fails, no acknowledged write is lost",
    flags: &[VOLUME_ID, SOURCE, TARGET, IO_BYTES_PER_SECOND],
};
pub const DELETE_SPEC: CommandSpec = CommandSpec {
    name: "volume.delete",
    help: "delete a volume's copy on one server",
    flags: &[VOLUME_ID, NODE],
};
pub const MARK_SPEC: CommandSpec = CommandSpec {
    name: "volume.mark",
    help: "mark a volume's copy on one server read-only or writable",
    flags: &[
        VOLUME_ID,
        NODE,
        Flag {
            name: "readonly",
            takes_value: false,
            help: "refuse writes",
        },
        Flag {
            name: "writable",
            takes_value: false,
            help: "take writes again",
        },
    ],
};

/// Copy (the source keeps its copy) or move (the source's copy is deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Copy,
    Move,
}

pub async fn copy_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    transfer_command(shell, flags, Transfer::Copy).await
}

pub async fn move_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    transfer_command(shell, flags, Transfer::Move).await
}

async fn transfer_command(shell: &Shell, flags: &Flags, kind: Transfer) -> Result<(), String> {
    let volume_id = flags.required_volume_id()?;
    let source = flags.server("source")?;
    let target = flags.server("target")?;
    let cluster = Cluster::fetch(shell).await?;
    let (source, target) = check_transfer(&cluster, volume_id, &source, &target)?;
    let pace = match flags.text("ioBytePerSecond") {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                format!("-ioBytePerSecond {text:?} is not a number of bytes (0 or more)")
            })?,
    };
    transfer(shell, volume_id, (source, target), kind, pace).await
}

/// The source and target servers of a copy or move of `volume_id`, or why it cannot be done.
pub fn check_transfer<'a>(
    cluster: &'a Cluster,
    volume_id: u32,
    source: &str,
    target: &str,
) -> Result<(&'a Node, &'a Node), String> {
    if source == target {
        return Err(format!(
            "source and target are the same server {source}: nothing to do"
        ));
    }
    let holders: Vec<&str> = cluster
        .holders(volume_id)
        .iter()
        .map(|n| n.url.as_str())
        .collect();
    if holders.is_empty() {
        return Err(format!("volume {volume_id} is not in the cluster"));
    }
    let source_node = cluster.node(source).map_err(|e| format!("-source: {e}"))?;
    let target_node = cluster.node(target).map_err(|e| format!("-target: {e}"))?;
    if !source_node.holds(volume_id) {
        return Err(format!(
            "volume {volume_id} is not on {source} (it is on {holders:?})"
        ));
    }
    if target_node.holds(volume_id) {
        return Err(format!("{target} already holds volume {volume_id}"));
    }
    if target_node.free_slots() <= 0 {
        return Err(format!(
            "{target} has no free volume slot ({} of {} used)",
            target_node.volumes.len(),
            target_node.max_volumes
        ));
    }
    Ok((source_node, target_node))
}

/// Copy or move `volume_id` from `source` to `target` (see the module comment), the copy at
/// most at `pace` bytes a second (0: unpaced).
pub async fn transfer(
    shell: &Shell,
    volume_id: u32,
    (source, target): (&Node, &Node),
    kind: Transfer,
    pace: i64,
) -> Result<(), String> {
    let (source_address, target_address) = (source.server_address(), target.server_address());
    let mut source_client = connect(&source_address).await?;
    let mut target_client = connect(&target_address).await?;
    let held = target_client
        .volume_status(VolumeStatusRequest { volume_id })
        .await;
    if held.is_ok() {
        return Err(format!("{} already holds volume {volume_id}", target.url));
    }
    let was_read_only = source_client
        .volume_status(VolumeStatusRequest { volume_id })
        .await
        .map_err(|e| failed(&source.url, "VolumeStatus", &e))?
        .into_inner()
        .is_read_only;
    println!(
        "copying volume {volume_id} from {} to {} (the source serves reads and writes)",
        source.url, target.url
    );
    let steps = Steps {
        shell,
        volume_id,
        source,
        target,
        was_read_only,
    };
    let copied = copy_staged(&mut target_client, &source_address, volume_id, pace).await;
    let since_ns = match copied {
        Ok(since_ns) => since_ns,
        Err(error) => {
            let undone = steps.undo(&mut source_client, &mut target_client).await;
            return Err(format!("{error}; {undone}"));
        }
    };
    let caught_up = steps
        .catch_up(&mut source_client, &mut target_client, since_ns)
        .await;
    if let Err(error) = caught_up {
        let undone = steps.undo(&mut source_client, &mut target_client).await;
        return Err(format!("{error}; {undone}"));
    }
    steps.finish(&mut source_client, kind).await
}

/// A copy or move under way.
struct Steps<'a> {
    shell: &'a Shell,
    volume_id: u32,
    source: &'a Node,
    target: &'a Node,
    /// The source's copy refused writes before: it is left so, and so is the target's.
    was_read_only: bool,
}

impl Steps<'_> {
    /// Steps 2 and 3: the source read-only, the final tail, the target released and listed.
    async fn catch_up(
        &self,
        source_client: &mut Client,
        target_client: &mut Client,
        since_ns: u64,
    ) -> Result<(), String> {
        let (volume_id, source, target) = (self.volume_id, &self.source.url, &self.target.url);
        if !self.was_read_only {
            source_client
                .volume_mark_readonly(VolumeMarkReadonlyRequest {
                    volume_id,
                    persist: false,
                    can_delete: false,
                })
                .await
                .map_err(|e| failed(source, "VolumeMarkReadonly", &e))?;
        }
        println!("volume {volume_id} is read-only on {source}; {target} tails what was written");
        let tail = VolumeTailReceiverRequest {
            volume_id,
            since_ns,
            idle_timeout_seconds: FINAL_TAIL_IDLE_SECONDS,
            source_volume_server: self.source.server_address(),
        };
        target_client
            .volume_tail_receiver(tail)
            .await
            .map_err(|e| failed(target, "VolumeTailReceiver", &e))?;
        mark(target_client, target, volume_id, self.was_read_only).await?;
        wait_listed(self.shell, volume_id, target, true).await?;
        println!("{target} serves volume {volume_id} and the master lists it");
        Ok(())
    }

    /// Step 4: a move deletes the source's copy, a copy makes it writable again.
    async fn finish(&self, source_client: &mut Client, kind: Transfer) -> Result<(), String> {
        let (volume_id, source, target) = (self.volume_id, &self.source.url, &self.target.url);
        if kind == Transfer::Copy {
            if !self.was_read_only {
                mark(source_client, source, volume_id, false).await?;
            }
            println!("copied volume {volume_id} from {source} to {target}");
            return Ok(());
        }
        source_client
            .volume_delete(VolumeDeleteRequest {
                volume_id,
                only_empty: false,
                keep_remote_data: false,
            })
            .await
            .map_err(|e| {
                let e = failed(source, "VolumeDelete", &e);
                format!(
                    "{e}; {target} serves volume {volume_id}, {source} still holds a \
                     read-only copy: delete it with volume.delete"
                )
            })?;
        if let Err(error) = wait_listed(self.shell, volume_id, source, false).await {
            println!("note: {error}");
        }
        println!("moved volume {volume_id} from {source} to {target}");
        Ok(())
    }

    /// After a failure in the copy or `catch_up`: the target's copy deleted, the source
    /// writable again (when it was); what was done, as a sentence.
    async fn undo(&self, source_client: &mut Client, target_client: &mut Client) -> String {
        let (volume_id, source, target) = (self.volume_id, &self.source.url, &self.target.url);
        let deleted = target_client
            .volume_delete(VolumeDeleteRequest {
                volume_id,
                only_empty: false,
                keep_remote_data: false,
            })
            .await;
        let mut said = match deleted {
            Ok(_) => format!("the partial copy on {target} was removed"),
            Err(e) if e.code() == tonic::Code::NotFound => format!("nothing is left on {target}"),
            Err(e) => format!(
                "the partial copy on {target} could not be removed ({}): remove it with \
                 volume.delete -volumeId {volume_id} -node {target} (a restart of {target} \
                 removes it too)",
                e.message()
            ),
        };
        if self.was_read_only {
            said.push_str(&format!(
                "; {source} keeps serving volume {volume_id} (read-only, as before)"
            ));
            return said;
        }
        match mark(source_client, source, volume_id, false).await {
            Ok(()) => said.push_str(&format!(
                "; {source} keeps serving volume {volume_id}, writable"
            )),
            Err(e) => said.push_str(&format!(
                "; {e}: mark it with volume.mark -volumeId {volume_id} -node {source} -writable"
            )),
        }
        said
    }
}

/// Step 1: the target copies the volume from `source` (staged); the append time of the
/// newest record it copied.
async fn copy_staged(
    target: &mut Client,
    source: &str,
    volume_id: u32,
    pace: i64,
) -> Result<u64, String> {
    let mut request = tonic::Request::new(VolumeCopyRequest {
        volume_id,
        source_data_node: source.to_string(),
        io_byte_per_second: pace,
        ..VolumeCopyRequest::default()
    });
    let staged = tonic::metadata::MetadataValue::from_static("true");
    request.metadata_mut().insert(STAGED_COPY_METADATA, staged);
    let mut stream = target
        .volume_copy(request)
        .await
        .map_err(|e| format!("VolumeCopy: {}", e.message()))?
        .into_inner();
    let mut last_append_at_ns = None;
    while let Some(report) = stream
        .message()
        .await
        .map_err(|e| format!("VolumeCopy: {}", e.message()))?
    {
        if report.last_append_at_ns != 0 || report.processed_bytes == 0 {
            last_append_at_ns = Some(report.last_append_at_ns);
        } else {
            println!("  copied {} bytes", report.processed_bytes);
        }
    }
    last_append_at_ns.ok_or_else(|| "VolumeCopy ended without its final answer".to_string())
}

/// Mark `volume_id` on `server` read-only or writable.
async fn mark(
    client: &mut Client,
    server: &str,
    volume_id: u32,
    read_only: bool,
) -> Result<(), String> {
    if read_only {
        let request = VolumeMarkReadonlyRequest {
            volume_id,
            persist: false,
            can_delete: false,
        };
        client
            .volume_mark_readonly(request)
            .await
            .map_err(|e| failed(server, "VolumeMarkReadonly", &e))?;
    } else {
        let request = VolumeMarkWritableRequest { volume_id };
        client
            .volume_mark_writable(request)
            .await
            .map_err(|e| failed(server, "VolumeMarkWritable", &e))?;
    }
    Ok(())
}

/// Wait until the master lists `volume_id` on `server` (or no longer does, `listed` false).
pub async fn wait_listed(
    shell: &Shell,
    volume_id: u32,
    server: &str,
    listed: bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(LISTED_WAIT_MS_MAX);
    loop {
        let cluster = Cluster::fetch(shell).await?;
        let now = cluster
            .nodes
            .iter()
            .any(|n| n.url == server && n.holds(volume_id));
        if now == listed {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let what = if listed { "list" } else { "drop" };
            return Err(format!(
                "the master did not {what} volume {volume_id} on {server} within \
                 {LISTED_WAIT_MS_MAX} ms"
            ));
        }
        tokio::time::sleep(Duration::from_millis(LISTED_POLL_MS)).await;
    }
}

pub async fn connect(server: &str) -> Result<Client, String> {
    peer_client(server)
        .await
        .map_err(|e| e.message().to_string())
}

fn failed(server: &str, call: &str, status: &tonic::Status) -> String {
    format!("{call} on {server}: {}", status.message())
}

pub async fn delete_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let volume_id = flags.required_volume_id()?;
    let node = flags.server("node")?;
    let cluster = Cluster::fetch(shell).await?;
    let server = cluster.node(&node).map_err(|e| format!("-node: {e}"))?;
    if !server.holds(volume_id) {
        return Err(format!("volume {volume_id} is not on {node}"));
    }
    let others = cluster.holders(volume_id).len() - 1;
    let mut client = connect(&server.server_address()).await?;
    client
        .volume_delete(VolumeDeleteRequest {
            volume_id,
            only_empty: false,
            keep_remote_data: false,
        })
        .await
        .map_err(|e| failed(&node, "VolumeDelete", &e))?;
    wait_listed(shell, volume_id, &node, false).await?;
    println!("deleted volume {volume_id} on {node} ({others} other copies remain)");
    Ok(())
}

pub async fn mark_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let volume_id = flags.required_volume_id()?;
    let node = flags.server("node")?;
    let read_only = match (flags.switch("readonly")?, flags.switch("writable")?) {
        (true, false) => true,
        (false, true) => false,
        _ => return Err("volume.mark: give one of -readonly and -writable".into()),
    };
    let cluster = Cluster::fetch(shell).await?;
    let server = cluster.node(&node).map_err(|e| format!("-node: {e}"))?;
    if !server.holds(volume_id) {
        return Err(format!("volume {volume_id} is not on {node}"));
    }
    let mut client = connect(&server.server_address()).await?;
    mark(&mut client, &node, volume_id, read_only).await?;
    let state = if read_only { "read-only" } else { "writable" };
    println!("volume {volume_id} on {node} is {state}");
    Ok(())
}
