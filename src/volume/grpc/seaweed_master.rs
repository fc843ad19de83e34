//! Joining a SeaweedFS master: the `SendHeartbeat` stream a Go volume server keeps open to
//! the leader. It runs on the gRPC thread (tokio); the volumes it reports are asked of the
//! cores through their inboxes, so no core waits on the master.
//!
//! A heartbeat carries who this server is (ip, port, public url, gRPC port, data center,
//! rack, volume slots, largest file key) and the full list of its volumes, every pulse and
//! at once after a volume was created, deleted or marked. The master's answers give the
//! volume size limit (passed to every core) and, from a follower, the leader to move to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::super::config::Config;
use super::super::limits::{
    HEARTBEAT_PULSE_SECONDS_DEFAULT, HEARTBEAT_SENT_MS_MAX, HEARTBEATS_QUEUED_MAX,
    MASTER_BACKOFF_MS_MIN, MASTER_CONNECT_MS_MAX,
};
use super::super::master_link::next_backoff_ms;
use super::inbox::{CoreCall, CoreReport, Sender};
use crate::master::grpc::topology_info::{DISK_TYPE, volume_message};
use crate::pb::master_pb::seaweed_client::SeaweedClient;
use crate::pb::master_pb::{Heartbeat, HeartbeatResponse, VolumeInformationMessage};
use crate::pb::{grpc_address, http_address};

/// The link between the cores and the gRPC thread's heartbeat: core 0 says when the master
/// turned out to be SeaweedFS; the gRPC calls say when the volumes changed, and which copied
/// volumes the heartbeats leave out for now (staged).
pub struct MasterLink {
    start: Notify,
    beat_now: Notify,
    /// The `SendHeartbeat` stream runs (the masters are SeaweedFS).
    joined: AtomicBool,
    /// Heartbeats begun, and the number of the latest one handed to the stream: who must
    /// know the master heard of a change waits for one begun after it (`beat_and_wait`).
    begun: AtomicU64,
    sent: watch::Sender<u64>,
    /// Volumes copied here as a move's target that are not caught up yet: served to the
    /// move's tail, but not told to the master (no reader is sent to a copy that lacks the
    /// source's newest writes). Marking one read-only or writable, or deleting it, ends that.
    staged: std::sync::Mutex<std::collections::BTreeSet<u32>>,
}

impl Default for MasterLink {
    fn default() -> MasterLink {
        MasterLink {
            start: Notify::new(),
            beat_now: Notify::new(),
            joined: AtomicBool::new(false),
            begun: AtomicU64::new(0),
            sent: watch::Sender::new(0),
            staged: std::sync::Mutex::default(),
        }
    }
}

impl MasterLink {
    /// The masters are SeaweedFS: start the `SendHeartbeat` stream.
    pub fn use_seaweedfs(&self) {
        self.start.notify_one();
    }

    /// A volume was created, deleted or marked: heartbeat now rather than at the pulse.
    pub fn volumes_changed(&self) {
        self.beat_now.notify_one();
    }

    /// Heartbeat now and wait until a heartbeat begun after this call went out on the
    /// stream (at most `HEARTBEAT_SENT_MS_MAX`; at once when not joined to a SeaweedFS
    /// master). A volume taken out and put back with another placement must be missed by
    /// one heartbeat: a SeaweedFS master files a volume under its placement when it first
    /// hears of it, and moves it only when it is gone and comes back.
    pub async fn beat_and_wait(&self) {
        if !self.joined.load(Ordering::Acquire) {
            return;
        }
        let target = self.begun.load(Ordering::Acquire) + 1;
        let mut sent = self.sent.subscribe();
        self.beat_now.notify_one();
        let bound = Duration::from_millis(HEARTBEAT_SENT_MS_MAX);
        let heard = tokio::time::timeout(bound, sent.wait_for(|number| *number >= target));
        if heard.await.is_err() {
            tracing::warn!("heartbeat: none went out within {HEARTBEAT_SENT_MS_MAX} ms");
        }
    }

    /// Leave `volume_id` out of the heartbeats until it is released.
    pub fn stage(&self, volume_id: u32) {
        self.staged
            .lock()
            .expect("staged volumes")
            .insert(volume_id);
    }

    /// Put `volume_id` back in the heartbeats; true when it was staged.
    pub fn release(&self, volume_id: u32) -> bool {
        self.staged
            .lock()
            .expect("staged volumes")
            .remove(&volume_id)
    }

    /// Removes the staged volumes from a heartbeat's list (`id_of` gives an item's volume id).
    pub fn drop_staged<T>(&self, volumes: &mut Vec<T>, id_of: impl Fn(&T) -> u32) {
        let staged = self.staged.lock().expect("staged volumes");
        if !staged.is_empty() {
            volumes.retain(|volume| !staged.contains(&id_of(volume)));
        }
    }

    /// Resolves once `volumes_changed` was called (at once when it was called since the last
    /// wait): the heartbeat to a Kelp master waits on it beside its pulse, so a copied,
    /// moved or deleted volume reaches the master's lookups within milliseconds.
    pub async fn wait_for_change(&self) {
        self.beat_now.notified().await;
    }
}

/// Heartbeat to the SeaweedFS masters for as long as the process runs, once core 0 found
/// they are SeaweedFS. A master that fails is followed by the next after a backoff; a
/// follower's leader is followed at once.
pub async fn run(config: Arc<Config>, cores: Vec<Sender>, link: Arc<MasterLink>) {
    link.start.notified().await;
    link.joined.store(true, Ordering::Release);
    let pulse_ms = HEARTBEAT_PULSE_SECONDS_DEFAULT * 1000;
    let mut next_master = 0;
    let mut leader: Option<String> = None;
    let mut backoff_ms = 0;
    loop {
        let master = leader.take().unwrap_or_else(|| {
            let master = config.masters[next_master % config.masters.len()].clone();
            next_master += 1;
            master
        });
        match beat_to(&config, &cores, &link, &master).await {
            Ok(new_leader) => {
                tracing::info!("heartbeat: master {master} names {new_leader} the leader");
                leader = Some(new_leader);
                backoff_ms = 0;
                // Never a tight loop between masters that name each other.
                tokio::time::sleep(Duration::from_millis(MASTER_BACKOFF_MS_MIN)).await;
            }
            Err(error) => {
                backoff_ms = next_backoff_ms(backoff_ms, pulse_ms);
                tracing::warn!(
                    "heartbeat to SeaweedFS master {master}: {error}; next try in {backoff_ms} ms"
                );
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
}

/// One `SendHeartbeat` stream to `master`, kept until it fails (Err) or the master names
/// another leader (Ok, its address).
async fn beat_to(
    config: &Config,
    cores: &[Sender],
    link: &MasterLink,
    master: &str,
) -> Result<String, String> {
    let address = grpc_address(master)?;
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("gRPC address {address}: {e}"))?
        .connect_timeout(Duration::from_millis(MASTER_CONNECT_MS_MAX))
        .http2_keep_alive_interval(Duration::from_millis(
            crate::grpc_listener::KEEPALIVE_INTERVAL_MS,
        ))
        .keep_alive_timeout(Duration::from_millis(
            crate::grpc_listener::KEEPALIVE_TIMEOUT_MS,
        ))
        .connect()
        .await
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let (outbound, queued) = mpsc::channel(HEARTBEATS_QUEUED_MAX);
    beat(link, &outbound, config, cores).await?;
    let mut answers = SeaweedClient::new(channel)
        .send_heartbeat(ReceiverStream::new(queued))
        .await
        .map_err(|status| format!("SendHeartbeat: {}", status.message()))?
        .into_inner();
    tracing::info!("heartbeat: joined SeaweedFS master {master}");
    let mut pulse = tokio::time::interval(Duration::from_secs(HEARTBEAT_PULSE_SECONDS_DEFAULT));
    pulse.tick().await; // the first tick is now: the first heartbeat went out above
    loop {
        tokio::select! {
            answer = answers.message() => match answer {
                Ok(Some(answer)) => {
                    if let Some(leader) = follow(cores, master, answer).await? {
                        return Ok(leader);
                    }
                }
                Ok(None) => return Err("the master closed the heartbeat stream".into()),
                Err(status) => return Err(format!("heartbeat stream: {}", status.message())),
            },
            _ = pulse.tick() => beat(link, &outbound, config, cores).await?,
            _ = link.beat_now.notified() => beat(link, &outbound, config, cores).await?,
        }
    }
}

/// Build a heartbeat and hand it to the stream, counted in `link`.
async fn beat(
    link: &MasterLink,
    outbound: &mpsc::Sender<Heartbeat>,
    config: &Config,
    cores: &[Sender],
) -> Result<(), String> {
    let number = link.begun.fetch_add(1, Ordering::AcqRel) + 1;
    let heartbeat = build(config, cores, link).await?;
    outbound
        .send(heartbeat)
        .await
        .map_err(|_| "the heartbeat stream closed".to_string())?;
    link.sent.send_if_modified(|sent| {
        let newer = number > *sent;
        *sent = (*sent).max(number);
        newer
    });
    Ok(())
}

/// Apply a master's answer: the size limit goes to every core; a leader other than `master`
/// is returned, to be followed.
async fn follow(
    cores: &[Sender],
    master: &str,
    answer: HeartbeatResponse,
) -> Result<Option<String>, String> {
    if !answer.duplicated_uuids.is_empty() {
        return Err(format!(
            "the master already has this server's directories {:?} from another server",
            answer.duplicated_uuids
        ));
    }
    if answer.volume_size_limit > 0 {
        for core in cores {
            let call = CoreCall::SizeLimit {
                bytes: answer.volume_size_limit,
            };
            core.send(call)
                .await
                .map_err(|_| "a core is stopping".to_string())?;
        }
    }
    let leader = answer.leader;
    if !leader.is_empty() && http_address(&leader) != http_address(master) {
        return Ok(Some(http_address(&leader).to_string()));
    }
    Ok(None)
}

/// The heartbeat now: every core's volumes (asked side by side), in full.
async fn build(config: &Config, cores: &[Sender], link: &MasterLink) -> Result<Heartbeat, String> {
    let mut pending = Vec::with_capacity(cores.len());
    for core in cores {
        let (reply, answer) = oneshot::channel();
        core.send(CoreCall::Report { reply })
            .await
            .map_err(|_| "a core is stopping".to_string())?;
        pending.push(answer);
    }
    let mut reports: Vec<CoreReport> = Vec::with_capacity(cores.len());
    for answer in pending {
        reports.push(answer.await.map_err(|_| "a core dropped its report")?);
    }
    let volumes_max = reports.first().map_or(0, |r| r.volumes_max);
    let max_file_key = reports
        .iter()
        .map(|r| r.snapshot.max_file_key)
        .max()
        .unwrap_or(0);
    let mut volumes: Vec<VolumeInformationMessage> = reports
        .iter()
        .flat_map(|r| r.snapshot.volumes.iter().map(volume_message))
        .collect();
    link.drop_staged(&mut volumes, |v| v.id);
    volumes.sort_by_key(|v| v.id);
    Ok(Heartbeat {
        ip: config.ip.to_string(),
        port: u32::from(config.port),
        public_url: config.public_url.clone(),
        max_volume_counts: HashMap::from([(DISK_TYPE.to_string(), volumes_max)]),
        max_file_key,
        data_center: config.data_center.clone(),
        rack: config.rack.clone(),
        has_no_volumes: volumes.is_empty(),
        volumes,
        grpc_port: u32::from(config.grpc_port),
        ..Heartbeat::default()
    })
}
