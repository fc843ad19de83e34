//! Re-replication and trimming: the leader keeps each volume at the copy count and layout its
//! placement asks for.
//!
//! A volume with fewer copies than its placement (a volume server gone longer than
//! `--replica-absence-max-seconds`, or a server that no longer reports the volume because its
//! `.dat` is gone) is copied from its most up-to-date surviving copy to servers that keep the
//! placement together with the survivors (the target pulls it: VolumeCopy gRPC). A volume with
//! more copies (the absent server came back) loses the stalest extra copy (behind the others'
//! compaction revision, then the smallest, then the one this leader saw appear last), never
//! one that holds more than a copy kept, and only once that copy is
//! `--replica-trim-delay-seconds` old, so a copy made by a move is never trimmed mid-move.
//!
//! Nothing happens while the leader lacks what it needs to decide: the automatic pass runs
//! only on a leader that has led for a full absence window (it saw the server go), on volumes
//! short of copies for that whole window; `/vol/fix_replication` waits for the servers'
//! heartbeats after an election. A volume with no server keeping the placement is reported
//! (in the plan and the log), never copied to a weaker layout. One job per volume at a time,
//! at most `REPLICA_JOBS_MAX` at once, failed ones retried with a doubling delay.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::limits::{
    REPLICA_COPY_STALL_MS_MAX, REPLICA_JOBS_MAX, REPLICA_PLAN_COMBINATIONS_MAX,
    REPLICA_RETRY_MS_MAX, REPLICA_RETRY_MS_MIN, REPLICA_SETTLE_PULSES, REPLICA_WARM_UP_PULSES,
};
use super::node::{Master, MasterError};
use super::topology::{NodeSlot, VolumeCopies, VolumeCopy, placement_met};
use crate::pb::volume_server_pb::VolumeCopyRequest;

/// One step of a plan: copy a volume between two servers, or trim the copy on one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Action {
    /// `copy` or `trim`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub done: bool,
    pub error: Option<String>,
}

/// What one volume needs: its copies now and the actions that restore its placement, or why
/// there are none.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumePlan {
    pub volume_id: u32,
    pub placement: String,
    pub replicas: Vec<String>,
    pub actions: Vec<Action>,
    /// Why nothing (or not everything) can be done; null when the actions cover it all.
    pub reason: Option<String>,
}

/// When the leader first saw what (reset with each leadership).
#[derive(Default)]
struct Watch {
    /// Volumes short of copies, since when.
    short_since: HashMap<u32, Instant>,
    /// Each copy (volume, node url), since when.
    copy_seen: HashMap<(u32, String), Instant>,
    /// The copies this leader made (up to date when made, unlike a returning server's).
    made: std::collections::HashSet<(u32, String)>,
    /// The reason last logged for each volume nothing can be done for (logged once).
    reasons_logged: HashMap<u32, String>,
}

/// What the leader knows of one copy's past, as a sort key: copies it made first, then the
/// ones seen earlier (a server that came back is seen last).
type History = (bool, Option<Instant>);

/// A volume's job: running, or waiting to be retried.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub volume_id: u32,
    pub running: bool,
    pub attempts: u32,
    #[serde(skip)]
    not_before: Instant,
    pub last_error: Option<String>,
}

/// The leader's re-replication state and counters (for `/metrics` and `/vol/replication`).
pub struct ReplicationState {
    watch: Mutex<Watch>,
    jobs: Mutex<BTreeMap<u32, Job>>,
    slots: Arc<tokio::sync::Semaphore>,
    pub copies: AtomicU64,
    pub copy_failures: AtomicU64,
    pub trims: AtomicU64,
    pub trim_failures: AtomicU64,
    pub blocked_volumes: AtomicU64,
}

impl Default for ReplicationState {
    fn default() -> Self {
        ReplicationState {
            watch: Mutex::default(),
            jobs: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(REPLICA_JOBS_MAX)),
            copies: AtomicU64::new(0),
            copy_failures: AtomicU64::new(0),
            trims: AtomicU64::new(0),
            trim_failures: AtomicU64::new(0),
            blocked_volumes: AtomicU64::new(0),
        }
    }
}

impl ReplicationState {
    /// A new leadership starts watching afresh (it did not see what happened before).
    pub fn reset(&self) {
        *self.watch.lock().expect("replica watch lock") = Watch::default();
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Job>> {
        self.jobs.lock().expect("replica jobs lock")
    }

    /// The jobs running or waiting for a retry.
    pub fn jobs(&self) -> Vec<Job> {
        self.lock_jobs().values().cloned().collect()
    }

    /// Takes volume `volume_id`'s job (None: one is running).
    fn claim(&self, volume_id: u32) -> Option<()> {
        let mut jobs = self.lock_jobs();
        let job = jobs.entry(volume_id).or_insert_with(|| Job {
            volume_id,
            running: false,
            attempts: 0,
            not_before: Instant::now(),
            last_error: None,
        });
        if job.running {
            return None;
        }
        job.running = true;
        Some(())
    }

    /// Ends volume `volume_id`'s job: failed ones wait twice as long as the last time.
    fn release(&self, volume_id: u32, failure: Option<String>, settle: Duration) {
        let mut jobs = self.lock_jobs();
        let job = jobs.get_mut(&volume_id).expect("a claimed job");
        assert!(job.running, "only a running job is released");
        job.running = false;
        match failure {
            None => {
                job.attempts = 0;
                job.last_error = None;
                job.not_before = Instant::now() + settle;
            }
            Some(error) => {
                job.attempts += 1;
                let doubled = REPLICA_RETRY_MS_MIN << job.attempts.min(16);
                let wait = Duration::from_millis(doubled.min(REPLICA_RETRY_MS_MAX));
                job.not_before = Instant::now() + wait;
                job.last_error = Some(error);
            }
        }
        let now = Instant::now();
        jobs.retain(|_, job| job.running || job.last_error.is_some() || job.not_before > now);
    }

    fn due(&self, volume_id: u32, now: Instant) -> bool {
        self.lock_jobs()
            .get(&volume_id)
            .is_none_or(|job| !job.running && job.not_before <= now)
    }
}

/// How up to date a copy is: at the newest compaction revision, then larger, then more files.
fn data_rank(copy: &VolumeCopy, newest_revision: u16) -> (bool, u64, u64) {
    (
        copy.compact_revision == newest_revision,
        copy.size,
        copy.file_count,
    )
}

/// The copies of `volume`, most up to date first; among equals by their [`History`], then
/// by url.
fn freshest_first<'a>(
    volume: &'a VolumeCopies,
    seen: &dyn Fn(&str) -> History,
) -> Vec<&'a VolumeCopy> {
    let newest = newest_revision(&volume.copies);
    let mut copies: Vec<&VolumeCopy> = volume.copies.iter().collect();
    copies.sort_by(|a, b| {
        let rank = data_rank(b, newest).cmp(&data_rank(a, newest));
        rank.then_with(|| seen(&a.node_url).cmp(&seen(&b.node_url)))
            .then_with(|| a.node_url.cmp(&b.node_url))
    });
    copies
}

/// The most advanced compaction revision (one definition: the vacuum's).
fn newest_revision(copies: &[VolumeCopy]) -> u16 {
    let target = super::topology::VacuumTarget {
        volume_id: 0,
        replicas: copies
            .iter()
            .map(|c| super::topology::Replica {
                node_url: c.node_url.clone(),
                compact_revision: c.compact_revision,
            })
            .collect(),
    };
    target.newest_revision()
}

/// The first `size`-element combination of indexes into `0..count` (in lexicographic order)
/// that `accept` takes, trying at most `REPLICA_PLAN_COMBINATIONS_MAX`.
fn first_combination(
    count: usize,
    size: usize,
    mut accept: impl FnMut(&[usize]) -> bool,
) -> Option<Vec<usize>> {
    if size > count {
        return None;
    }
    let mut picked: Vec<usize> = (0..size).collect();
    for _ in 0..REPLICA_PLAN_COMBINATIONS_MAX {
        if accept(&picked) {
            return Some(picked);
        }
        // The next combination: bump the last index that can move, reset those after it.
        let movable = (0..size).rev().find(|&i| picked[i] < count - size + i)?;
        picked[movable] += 1;
        for i in movable + 1..size {
            picked[i] = picked[i - 1] + 1;
        }
    }
    None
}

fn copy_action(from: &str, to: &str) -> Action {
    Action {
        action: "copy",
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        at: None,
        done: false,
        error: None,
    }
}

fn trim_action(at: &str) -> Action {
    Action {
        action: "trim",
        from: None,
        to: None,
        at: Some(at.to_string()),
        done: false,
        error: None,
    }
}

/// What `volume` needs to meet its placement; an empty plan when it has the right count.
/// `slots` are the servers with room for a volume.
pub fn plan_volume(
    volume: &VolumeCopies,
    slots: &[NodeSlot],
    seen: &dyn Fn(&str) -> History,
) -> VolumePlan {
    let ordered = freshest_first(volume, seen);
    let mut plan = VolumePlan {
        volume_id: volume.volume_id,
        placement: volume.placement.to_string(),
        replicas: ordered.iter().map(|c| c.node_url.clone()).collect(),
        actions: Vec::new(),
        reason: None,
    };
    let wanted = volume.placement.copy_count();
    match ordered.len().cmp(&wanted) {
        std::cmp::Ordering::Less => plan_copies(&mut plan, &ordered, volume, slots),
        std::cmp::Ordering::Greater => plan_trims(&mut plan, &ordered, volume),
        std::cmp::Ordering::Equal => {}
    }
    plan
}

/// Targets for the missing copies: servers without the volume, with a free slot, that keep
/// the placement together with the survivors (most free slots first); the source is the most
/// up-to-date survivor.
fn plan_copies(
    plan: &mut VolumePlan,
    ordered: &[&VolumeCopy],
    volume: &VolumeCopies,
    slots: &[NodeSlot],
) {
    let missing = volume.placement.copy_count() - ordered.len();
    let mut candidates: Vec<&NodeSlot> = slots
        .iter()
        .filter(|s| s.free > 0 && ordered.iter().all(|c| c.node_url != s.url))
        .collect();
    candidates.sort_by(|a, b| b.free.cmp(&a.free).then_with(|| a.url.cmp(&b.url)));
    let survivors: Vec<(&str, &str)> = ordered
        .iter()
        .map(|c| (c.data_center.as_str(), c.rack.as_str()))
        .collect();
    let chosen = first_combination(candidates.len(), missing, |picked| {
        let mut places = survivors.clone();
        places.extend(picked.iter().map(|&i| {
            (
                candidates[i].data_center.as_str(),
                candidates[i].rack.as_str(),
            )
        }));
        placement_met(volume.placement, &places)
    });
    let Some(chosen) = chosen else {
        plan.reason = Some(format!(
            "{} of {} copies left (on {}); no volume server with a free slot keeps placement \
             {} together with them ({} candidates); nothing is copied to a weaker placement",
            ordered.len(),
            volume.placement.copy_count(),
            plan.replicas.join(", "),
            plan.placement,
            candidates.len()
        ));
        return;
    };
    let source = &ordered[0].node_url;
    for index in chosen {
        plan.actions
            .push(copy_action(source, &candidates[index].url));
    }
}

/// The extra copies to trim: the most up-to-date copies that keep the placement stay; a
/// trimmed copy never holds more than a kept one.
fn plan_trims(plan: &mut VolumePlan, ordered: &[&VolumeCopy], volume: &VolumeCopies) {
    let wanted = volume.placement.copy_count();
    let kept = first_combination(ordered.len(), wanted, |picked| {
        let places: Vec<(&str, &str)> = picked
            .iter()
            .map(|&i| (ordered[i].data_center.as_str(), ordered[i].rack.as_str()))
            .collect();
        placement_met(volume.placement, &places)
    });
    let Some(kept) = kept else {
        plan.reason = Some(format!(
            "{} copies of {wanted}, but no {wanted} of them keep placement {}; none trimmed",
            ordered.len(),
            plan.placement
        ));
        return;
    };
    let newest = newest_revision(&volume.copies);
    let least_kept = kept
        .iter()
        .map(|&i| data_rank(ordered[i], newest))
        .min()
        .expect("a placement keeps at least one copy");
    for (index, copy) in ordered.iter().enumerate() {
        if kept.contains(&index) {
            continue;
        }
        if data_rank(copy, newest) > least_kept {
            plan.reason = Some(format!(
                "the extra copy on {} holds more than a copy kept (size {}, revision {}); not \
                 trimmed: repair the volume first (/vol/repair)",
                copy.node_url, copy.size, copy.compact_revision
            ));
            continue;
        }
        plan.actions.push(trim_action(&copy.node_url));
    }
}

/// Records what the leader sees now: which volumes are short of copies, and since when each
/// copy exists.
fn observe(master: &Master, volumes: &[VolumeCopies], now: Instant) {
    let mut watch = master.replication.watch.lock().expect("replica watch lock");
    let short: Vec<u32> = volumes
        .iter()
        .filter(|v| v.copies.len() < v.placement.copy_count())
        .map(|v| v.volume_id)
        .collect();
    watch.short_since.retain(|id, _| short.contains(id));
    for id in short {
        watch.short_since.entry(id).or_insert(now);
    }
    let mut present = std::collections::HashSet::new();
    for volume in volumes {
        for copy in &volume.copies {
            let key = (volume.volume_id, copy.node_url.clone());
            watch.copy_seen.entry(key.clone()).or_insert(now);
            present.insert(key);
        }
    }
    watch.copy_seen.retain(|key, _| present.contains(key));
    watch.made.retain(|key| present.contains(key));
}

/// The plans of every volume (or of `volume_id`) with a copy count other than its
/// placement's, after recording what the leader sees.
fn plans_now(master: &Master, volume_id: Option<u32>) -> Vec<VolumePlan> {
    let now = Instant::now();
    let (all, slots) = {
        let topology = master.lock_topology();
        (topology.volume_copies(None), topology.node_slots())
    };
    observe(master, &all, now);
    let watch = master.replication.watch.lock().expect("replica watch lock");
    all.iter()
        .filter(|v| volume_id.is_none_or(|id| v.volume_id == id))
        .filter(|v| v.copies.len() != v.placement.copy_count())
        .map(|volume| {
            let seen = |url: &str| {
                let key = (volume.volume_id, url.to_string());
                (
                    !watch.made.contains(&key),
                    watch.copy_seen.get(&key).copied(),
                )
            };
            plan_volume(volume, &slots, &seen)
        })
        .collect()
}

/// `/vol/fix_replication`: the plans, carried out with `apply` (the automatic pass's code).
/// 503 until the servers had time to heartbeat to a new leader.
pub async fn fix(
    master: &Arc<Master>,
    volume_id: Option<u32>,
    apply: bool,
) -> Result<Vec<VolumePlan>, MasterError> {
    let warm_up = Duration::from_secs(master.config.pulse_seconds * REPLICA_WARM_UP_PULSES);
    let led_for = leader_for(master);
    if led_for.is_none_or(|led| led < warm_up) {
        return Err(MasterError::Unavailable(format!(
            "the leader is new and waits {} s for every volume server's heartbeat",
            warm_up.as_secs()
        )));
    }
    let mut plans = plans_now(master, volume_id);
    if apply {
        for plan in &mut plans {
            let _slot = master
                .replication
                .slots
                .acquire()
                .await
                .expect("never closed");
            run_plan(master, plan).await;
        }
    }
    Ok(plans)
}

fn leader_for(master: &Master) -> Option<Duration> {
    let since = *master.leader_since.lock().expect("leader_since lock");
    since.map(|since| since.elapsed())
}

/// Carries out `plan`'s actions in order (the volume's one job), marking each done or failed.
async fn run_plan(master: &Master, plan: &mut VolumePlan) {
    let volume_id = plan.volume_id;
    if plan.actions.is_empty() {
        return;
    }
    if master.replication.claim(volume_id).is_none() {
        for action in &mut plan.actions {
            action.error = Some(format!("a job on volume {volume_id} is running"));
        }
        return;
    }
    let mut failure = None;
    for action in &mut plan.actions {
        let result = match action.action {
            "copy" => copy(master, volume_id, action).await,
            _ => trim(master, volume_id, action).await,
        };
        match result {
            Ok(()) => action.done = true,
            Err(error) => {
                tracing::warn!("replication: volume {volume_id}: {} {error}", action.action);
                action.error = Some(error.clone());
                failure = Some(error);
            }
        }
    }
    let settle = Duration::from_secs(master.config.pulse_seconds * REPLICA_SETTLE_PULSES);
    master.replication.release(volume_id, failure, settle);
}

/// `to` pulls volume `volume_id` from `from` (VolumeCopy gRPC); done once the master sees the
/// new copy in `to`'s heartbeat.
async fn copy(master: &Master, volume_id: u32, action: &Action) -> Result<(), String> {
    let from = action.from.as_deref().expect("a copy has a source");
    let to = action.to.as_deref().expect("a copy has a target");
    let outcome = pull(master, volume_id, from, to).await;
    let counter = match outcome {
        Ok(()) => &master.replication.copies,
        Err(_) => &master.replication.copy_failures,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    outcome?;
    tracing::info!("replication: volume {volume_id} copied from {from} to {to}");
    wait_for_report(master, volume_id, to, true).await?;
    let mut watch = master.replication.watch.lock().expect("replica watch lock");
    watch.made.insert((volume_id, to.to_string()));
    Ok(())
}

async fn pull(master: &Master, volume_id: u32, from: &str, to: &str) -> Result<(), String> {
    let source = grpc_spelling(master, from)?;
    let target = grpc_spelling(master, to)?;
    let mut client = crate::volume::grpc::volume_copy::peer_client(&target)
        .await
        .map_err(|e| e.message().to_string())?;
    let request = VolumeCopyRequest {
        volume_id,
        source_data_node: source,
        ..VolumeCopyRequest::default()
    };
    let call = |what: &str, e: tonic::Status| format!("VolumeCopy {what} on {to}: {}", e.message());
    let mut stream = client
        .volume_copy(request)
        .await
        .map_err(|e| call("start", e))?
        .into_inner();
    let stall = Duration::from_millis(REPLICA_COPY_STALL_MS_MAX);
    loop {
        match tokio::time::timeout(stall, stream.message()).await {
            Err(_) => return Err(format!("VolumeCopy on {to}: no progress for {stall:?}")),
            Ok(Err(status)) => return Err(call("pull", status)),
            Ok(Ok(Some(_progress))) => {}
            Ok(Ok(None)) => return Ok(()),
        }
    }
}

/// How SeaweedFS spells node `url`'s gRPC address (`ip:port.grpcPort`), or why it has none.
fn grpc_spelling(master: &Master, url: &str) -> Result<String, String> {
    let topology = master.lock_topology();
    let node = topology
        .nodes
        .get(url)
        .ok_or_else(|| format!("volume server {url} is gone"))?;
    if node.grpc_port == 0 {
        return Err(format!("volume server {url} serves no gRPC"));
    }
    Ok(format!("{url}.{}", node.grpc_port))
}

/// Deletes the extra copy on `at` once it is `--replica-trim-delay-seconds` old.
async fn trim(master: &Master, volume_id: u32, action: &Action) -> Result<(), String> {
    let at = action.at.as_deref().expect("a trim names its copy");
    trim_due(master, volume_id, at)?;
    let url = format!("http://{at}/admin/volume/delete?volume={volume_id}");
    let outcome = master.admin_call(&url).await.map(|_| ());
    let counter = match outcome {
        Ok(()) => &master.replication.trims,
        Err(_) => &master.replication.trim_failures,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    outcome?;
    tracing::info!("replication: volume {volume_id}: extra copy on {at} trimmed");
    wait_for_report(master, volume_id, at, false).await
}

/// Whether the copy of `volume_id` on `at` is old enough to be trimmed (contract: never a
/// copy younger than `--replica-trim-delay-seconds`), or how old it is.
fn trim_due(master: &Master, volume_id: u32, at: &str) -> Result<(), String> {
    let seen = {
        let watch = master.replication.watch.lock().expect("replica watch lock");
        watch.copy_seen.get(&(volume_id, at.to_string())).copied()
    };
    let delay = master.config.replica_trim_delay;
    let age = seen.map_or(Duration::ZERO, |seen| seen.elapsed());
    if age < delay {
        return Err(format!(
            "the extra copy on {at} is {} s old; trimmed once it is {} s old \
             (--replica-trim-delay-seconds)",
            age.as_secs(),
            delay.as_secs()
        ));
    }
    Ok(())
}

/// Waits until `node` reports volume `volume_id` (`present`) or no longer does.
async fn wait_for_report(
    master: &Master,
    volume_id: u32,
    node: &str,
    present: bool,
) -> Result<(), String> {
    let wait = Duration::from_secs(master.config.pulse_seconds * REPLICA_SETTLE_PULSES);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let reported = {
            let topology = master.lock_topology();
            let node = topology.nodes.get(node);
            node.is_some_and(|n| n.volumes.contains_key(&volume_id))
        };
        if reported == present {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let what = if present { "reported" } else { "dropped" };
    Err(format!(
        "done, but {node} has not {what} volume {volume_id} in its heartbeats within {} s",
        wait.as_secs()
    ))
}

/// The automatic pass, every pulse on the leader: volumes short of copies for a full
/// `--replica-absence-max-seconds` on a leader that has led that long are copied; extra
/// copies are trimmed (once old enough). `0` turns it off.
pub async fn auto_fix(master: Arc<Master>) {
    let Some(absence) = master.config.replica_absence_max else {
        return;
    };
    let pulse = Duration::from_secs(master.config.pulse_seconds);
    loop {
        tokio::time::sleep(pulse).await;
        if !master.is_leader.load(Ordering::Acquire) {
            continue;
        }
        let plans = plans_now(&master, None);
        let blocked = plans.iter().filter(|p| p.reason.is_some()).count();
        master
            .replication
            .blocked_volumes
            .store(blocked as u64, Ordering::Relaxed);
        log_new_reasons(&master, &plans);
        if leader_for(&master).is_none_or(|led| led < absence) {
            continue;
        }
        for plan in plans {
            start_job(&master, plan, absence);
        }
    }
}

/// Logs why nothing can be done for a volume, once per volume and reason.
fn log_new_reasons(master: &Master, plans: &[VolumePlan]) {
    let mut watch = master.replication.watch.lock().expect("replica watch lock");
    watch.reasons_logged.retain(|id, _| {
        plans
            .iter()
            .any(|p| p.volume_id == *id && p.reason.is_some())
    });
    for plan in plans {
        let Some(reason) = &plan.reason else { continue };
        if watch.reasons_logged.get(&plan.volume_id) != Some(reason) {
            tracing::warn!("replication: volume {}: {reason}", plan.volume_id);
            watch.reasons_logged.insert(plan.volume_id, reason.clone());
        }
    }
}

/// Starts `plan`'s job in the background when it is due and a job slot is free.
fn start_job(master: &Arc<Master>, mut plan: VolumePlan, absence: Duration) {
    let now = Instant::now();
    let volume_id = plan.volume_id;
    let short_for = {
        let watch = master.replication.watch.lock().expect("replica watch lock");
        watch.short_since.get(&volume_id).map(|since| now - *since)
    };
    let copies_due = short_for.is_none_or(|short| short >= absence);
    plan.actions.retain(|action| match &action.at {
        Some(at) => trim_due(master, volume_id, at).is_ok(),
        None => true,
    });
    if plan.actions.is_empty() || !copies_due || !master.replication.due(volume_id, now) {
        return;
    }
    let Ok(slot) = master.replication.slots.clone().try_acquire_owned() else {
        return; // every job slot is busy: the next pass starts it
    };
    let master = master.clone();
    tokio::spawn(async move {
        run_plan(&master, &mut plan).await;
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_engine::format::ReplicaPlacement;

    fn copy(url: &str, dc: &str, rack: &str, size: u64) -> VolumeCopy {
        VolumeCopy {
            node_url: url.into(),
            data_center: dc.into(),
            rack: rack.into(),
            size,
            file_count: 1,
            compact_revision: 0,
        }
    }

    fn slot(url: &str, dc: &str, rack: &str, free: u32) -> NodeSlot {
        NodeSlot {
            url: url.into(),
            data_center: dc.into(),
            rack: rack.into(),
            free,
        }
    }

    fn volume(placement: &str, copies: Vec<VolumeCopy>) -> VolumeCopies {
        VolumeCopies {
            volume_id: 7,
            placement: ReplicaPlacement::parse(placement).unwrap(),
            copies,
        }
    }

    // Proves a missing copy goes to a server that keeps the placement with the survivor,
    // copied from the survivor, and that no weaker target is ever chosen.
    #[test]
    fn copies_go_where_the_placement_holds() {
        let never = |_: &str| (true, None);
        let slots = vec![
            slot("same-rack:1", "dc1", "r1", 9),
            slot("other-rack:1", "dc1", "r2", 1),
            slot("far:1", "dc2", "r1", 5),
        ];
        let short = volume("010", vec![copy("a:1", "dc1", "r1", 10)]);
        let plan = plan_volume(&short, &slots, &never);
        assert_eq!(plan.actions, vec![copy_action("a:1", "other-rack:1")]);
        assert_eq!(plan.reason, None);
        let no_rack = vec![
            slot("same-rack:1", "dc1", "r1", 9),
            slot("far:1", "dc2", "r1", 5),
        ];
        let plan = plan_volume(&short, &no_rack, &never);
        assert!(plan.actions.is_empty());
        assert!(plan.reason.unwrap().contains("placement 010"));
        let full = vec![slot("other-rack:1", "dc1", "r2", 0)];
        assert!(plan_volume(&short, &full, &never).actions.is_empty());
        let right = volume(
            "010",
            vec![copy("a:1", "dc1", "r1", 1), copy("b:1", "dc1", "r2", 1)],
        );
        assert_eq!(plan_volume(&right, &slots, &never).actions, vec![]);
    }

    // Proves the stale extra copy is trimmed (smaller, or seen last among equals), and that a
    // copy holding more than a kept one is never trimmed.
    #[test]
    fn trims_take_the_stale_copy() {
        let start = Instant::now();
        let extra = volume(
            "010",
            vec![
                copy("a:1", "dc1", "r1", 100),
                copy("back:1", "dc1", "r2", 60),
                copy("new:1", "dc1", "r2", 100),
            ],
        );
        let plan = plan_volume(&extra, &[], &|_| (true, None));
        assert_eq!(plan.actions, vec![trim_action("back:1")]);
        let equal = volume(
            "010",
            vec![
                copy("a:1", "dc1", "r1", 100),
                copy("back:1", "dc1", "r2", 100),
                copy("new:1", "dc1", "r2", 100),
            ],
        );
        let seen = |url: &str| match url {
            "back:1" => (true, Some(start + Duration::from_secs(5))),
            _ => (true, Some(start)),
        };
        assert_eq!(
            plan_volume(&equal, &[], &seen).actions,
            vec![trim_action("back:1")]
        );
        // Seen at the same moment, the copy the leader made is kept.
        let made = |url: &str| (url != "new:1", Some(start));
        let plan = plan_volume(&equal, &[], &made);
        assert_eq!(plan.actions, vec![trim_action("back:1")]);
        // Placement 010 must keep the only copy in r1, though it is the smallest.
        let forced = volume(
            "010",
            vec![
                copy("small:1", "dc1", "r1", 10),
                copy("b:1", "dc1", "r2", 100),
                copy("c:1", "dc1", "r2", 100),
            ],
        );
        let plan = plan_volume(&forced, &[], &|_| (true, None));
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert!(plan.reason.unwrap().contains("holds more than a copy kept"));
    }

    // Proves combinations come in lexicographic order and the search is bounded.
    #[test]
    fn combinations() {
        let mut seen = Vec::new();
        let none = first_combination(4, 2, |picked| {
            seen.push(picked.to_vec());
            false
        });
        assert_eq!(none, None);
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0], vec![0, 1]);
        assert_eq!(seen[5], vec![2, 3]);
        assert_eq!(first_combination(2, 3, |_| true), None);
        assert_eq!(first_combination(3, 0, |_| true), Some(vec![]));
    }
}
