//! Vacuum: the leader compacts the volumes whose garbage (deleted and overwritten needles)
//! reached a threshold, on `/vol/vacuum` and every `--vacuum-interval`.
//!
//! For each volume, every replica is asked for its garbage ratio
//! (`/admin/vacuum/check`). When one replica reaches the threshold, every replica is
//! compacted, so the replicas keep one compaction revision; a replica behind the others'
//! revision (it was down, or its commit failed, while the others were compacted) is
//! compacted whatever its ratio, at the next vacuum or as soon as it heartbeats again.
//! A compaction runs on the volume server in the background while the volume serves
//! (`/admin/vacuum/compact`, then `/admin/vacuum/status` until it is ready); the volume
//! leaves the writable lists only while its replicas commit (`/admin/vacuum/commit`).
//! Volumes are vacuumed one after the other, so a volume server runs at most one
//! compaction at a time (it refuses a second one too).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::limits::{
    VACUUM_CATCH_UP_RETRY_MS, VACUUM_POLL_MS, VACUUM_RESULTS_MAX, VACUUM_STALL_MS_MAX,
};
use super::node::{Master, MasterError};
use super::params::Query;
use super::topology::VacuumTarget;
use crate::wire::{CompactionOutcome, CompactionPhase, CompactionStatus, VacuumCheck};

/// A garbage threshold from a flag or a request: a share of the volume, 0 to 1.
pub fn check_threshold(threshold: f64) -> Result<f64, String> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(format!("{threshold} is not a share from 0 to 1"));
    }
    Ok(threshold)
}

/// `--vacuum-interval`: `<n>s`, `<n>m` or `<n>h`; `0` is no automatic vacuum.
pub fn parse_interval(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not a duration like 30s, 15m or 2h (0: never)");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let count: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => count,
        "m" => count.saturating_mul(60),
        "h" => count.saturating_mul(3600),
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(seconds)))
}

/// What one vacuum covers.
#[derive(Debug, Clone, PartialEq)]
pub struct VacuumRequest {
    pub garbage_threshold: f64,
    pub collection: Option<String>,
    pub volume_id: Option<u32>,
}

impl VacuumRequest {
    /// `garbageThreshold` (the master's `--garbage-threshold` when absent or empty),
    /// `collection`, `volumeId`. A threshold that is not a number is refused with 406 and
    /// SeaweedFS's words; one outside 0..=1, a bad volume id or collection with 400.
    pub fn parse(query: &Query, default_threshold: f64) -> Result<VacuumRequest, MasterError> {
        let garbage_threshold = match query.get("garbageThreshold") {
            None | Some("") => default_threshold,
            Some(text) => {
                let value: f64 = text.parse().map_err(|_| {
                    MasterError::NotAcceptable(format!(
                        "garbageThreshold {text} is not a valid float number"
                    ))
                })?;
                check_threshold(value)
                    .map_err(|e| MasterError::BadRequest(format!("garbageThreshold {e}")))?
            }
        };
        let collection = match query.get("collection") {
            None => None,
            Some(name) => {
                kelp_engine::format::check_collection(name)
                    .map_err(|e| MasterError::BadRequest(e.to_string()))?;
                Some(name.to_string())
            }
        };
        let volume_id = match query.get("volumeId") {
            None | Some("") => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                MasterError::BadRequest(format!("volumeId {text:?} is not a volume id"))
            })?),
        };
        Ok(VacuumRequest {
            garbage_threshold,
            collection,
            volume_id,
        })
    }
}

/// The leader's vacuum state and counters (for `/metrics`).
#[derive(Default)]
pub struct VacuumState {
    /// One vacuum at a time (the automatic one, `/vol/vacuum`, a replica's catch-up).
    lock: tokio::sync::Mutex<()>,
    catch_up_running: AtomicBool,
    /// When a lagging replica (volume, node) was last tried, so that a compaction that
    /// keeps failing there is not retried at every heartbeat.
    catch_up_tried: Mutex<HashMap<(u32, String), Instant>>,
    pub compactions: AtomicU64,
    pub failures: AtomicU64,
    pub bytes_reclaimed: AtomicU64,
}

/// What happened to one replica.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaResult {
    pub volume: u32,
    pub url: String,
    pub garbage_ratio: f64,
    /// `committed` or `failed`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub reclaimed_bytes: u64,
    pub commit_pause_micros: u64,
}

/// Every replica one vacuum compacted or tried to (at most `VACUUM_RESULTS_MAX` listed).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VacuumSummary {
    pub volumes_checked: u64,
    pub replicas_compacted: u64,
    pub replicas_failed: u64,
    pub reclaimed_bytes: u64,
    pub results: Vec<ReplicaResult>,
}

impl VacuumSummary {
    fn add(&mut self, result: ReplicaResult) {
        match result.result {
            "committed" => self.replicas_compacted += 1,
            _ => self.replicas_failed += 1,
        }
        self.reclaimed_bytes += result.reclaimed_bytes;
        if self.results.len() < VACUUM_RESULTS_MAX {
            self.results.push(result);
        }
    }
}

/// Vacuums the volumes `request` names, one after the other.
pub async fn vacuum(master: &Arc<Master>, request: &VacuumRequest) -> VacuumSummary {
    let _one_vacuum = master.vacuum.lock.lock().await;
    let targets = master
        .lock_topology()
        .vacuum_targets(request.collection.as_deref(), request.volume_id);
    let mut summary = VacuumSummary::default();
    for target in targets {
        summary.volumes_checked += 1;
        let chosen = choose_replicas(master, &target, request.garbage_threshold).await;
        if chosen.is_empty() {
            continue;
        }
        for result in compact_replicas(master, target.volume_id, chosen).await {
            summary.add(result);
        }
    }
    summary
}

/// The replicas of `target` to compact: all of them when one reached `threshold`, else
/// those behind the newest compaction revision. A replica that cannot be checked is left
/// out (logged).
async fn choose_replicas(
    master: &Master,
    target: &VacuumTarget,
    threshold: f64,
) -> Vec<(String, f64)> {
    let volume_id = target.volume_id;
    let lagging: Vec<&str> = target
        .lagging()
        .iter()
        .map(|r| r.node_url.as_str())
        .collect();
    let mut checked = Vec::new();
    for replica in &target.replicas {
        let url = &replica.node_url;
        match admin::<VacuumCheck>(master, url, "check", volume_id).await {
            Ok(check) => checked.push((url.clone(), check)),
            Err(error) => tracing::warn!("vacuum: volume {volume_id}: {error}"),
        }
    }
    let over = |check: &VacuumCheck| check.garbage_bytes > 0 && check.garbage_ratio >= threshold;
    let any_over = checked.iter().any(|(_, check)| over(check));
    checked
        .into_iter()
        .filter(|(url, _)| any_over || lagging.contains(&url.as_str()))
        .map(|(url, check)| (url, check.garbage_ratio))
        .collect()
}

/// Compacts volume `volume_id` on each of `replicas` (node url, garbage ratio): starts them
/// all, waits until each is ready, then commits them with the volume out of the writable
/// lists meanwhile.
async fn compact_replicas(
    master: &Master,
    volume_id: u32,
    replicas: Vec<(String, f64)>,
) -> Vec<ReplicaResult> {
    let mut running = Vec::new();
    let mut results = Vec::new();
    for (url, garbage_ratio) in replicas {
        let mut result = ReplicaResult {
            volume: volume_id,
            url,
            garbage_ratio,
            result: "failed",
            error: String::new(),
            reclaimed_bytes: 0,
            commit_pause_micros: 0,
        };
        match admin::<CompactionStatus>(master, &result.url, "compact", volume_id).await {
            Ok(_) => running.push(result),
            Err(error) => {
                result.error = error;
                results.push(result);
            }
        }
    }
    let (ready, failed) = wait_until_ready(master, volume_id, running).await;
    results.extend(failed);
    if !ready.is_empty() {
        master.lock_topology().set_committing(volume_id, true);
        for mut result in ready {
            commit(master, volume_id, &mut result).await;
            results.push(result);
        }
        master.lock_topology().set_committing(volume_id, false);
    }
    for result in &results {
        count(master, result);
    }
    results
}

/// Polls the running compactions until each is ready (returned first) or failed (second,
/// with the reason). One that makes no progress for `VACUUM_STALL_MS_MAX` is cancelled.
async fn wait_until_ready(
    master: &Master,
    volume_id: u32,
    mut running: Vec<ReplicaResult>,
) -> (Vec<ReplicaResult>, Vec<ReplicaResult>) {
    let (mut ready, mut failed) = (Vec::new(), Vec::new());
    let mut progress: Vec<(u64, Instant)> = vec![(u64::MAX, Instant::now()); running.len()];
    while !running.is_empty() {
        tokio::time::sleep(Duration::from_millis(VACUUM_POLL_MS)).await;
        let mut still = Vec::new();
        for (mut result, (mark, since)) in running.into_iter().zip(progress) {
            let status = admin::<CompactionStatus>(master, &result.url, "status", volume_id).await;
            let moved = |status: &CompactionStatus| status.bytes_copied + status.steps != mark;
            match status {
                Ok(status) if status.phase == CompactionPhase::Ready => ready.push(result),
                Ok(status) if status.phase == CompactionPhase::Copying => {
                    let mark_now = status.bytes_copied + status.steps;
                    let stalled = since.elapsed() > Duration::from_millis(VACUUM_STALL_MS_MAX);
                    if moved(&status) {
                        still.push((result, (mark_now, Instant::now())));
                    } else if stalled {
                        result.error = format!("no progress for {VACUUM_STALL_MS_MAX} ms");
                        cancel(master, volume_id, &result.url).await;
                        failed.push(result);
                    } else {
                        still.push((result, (mark, since)));
                    }
                }
                Ok(status) => {
                    result.error = not_running(&status);
                    failed.push(result);
                }
                Err(error) => {
                    result.error = error;
                    failed.push(result);
                }
            }
        }
        (running, progress) = still.into_iter().unzip();
    }
    (ready, failed)
}

/// Why a compaction the master started is no longer running.
fn not_running(status: &CompactionStatus) -> String {
    match &status.last {
        Some(CompactionOutcome::Failed(reason)) => reason.clone(),
        Some(CompactionOutcome::Cancelled) => "cancelled on the volume server".into(),
        _ => format!(
            "the volume server has no compaction of volume {} (phase {:?}); it restarted?",
            status.volume, status.phase
        ),
    }
}

async fn cancel(master: &Master, volume_id: u32, url: &str) {
    if let Err(error) = admin::<CompactionStatus>(master, url, "cleanup", volume_id).await {
        tracing::warn!("vacuum: volume {volume_id}: cancelling on {url}: {error}");
    }
}

async fn commit(master: &Master, volume_id: u32, result: &mut ReplicaResult) {
    let answer = admin::<CompactionStatus>(master, &result.url, "commit", volume_id).await;
    match answer.map(|status| status.last) {
        Ok(Some(CompactionOutcome::Committed(done))) => {
            result.result = "committed";
            result.reclaimed_bytes = done.dat_bytes_before.saturating_sub(done.dat_bytes_after);
            result.commit_pause_micros = done.commit_pause_micros;
        }
        Ok(other) => result.error = format!("the commit answered {other:?}"),
        Err(error) => result.error = error,
    }
}

fn count(master: &Master, result: &ReplicaResult) {
    let state = &master.vacuum;
    let volume = result.volume;
    if result.result == "committed" {
        state.compactions.fetch_add(1, Ordering::Relaxed);
        state
            .bytes_reclaimed
            .fetch_add(result.reclaimed_bytes, Ordering::Relaxed);
        tracing::info!(
            "vacuum: volume {volume} on {}: {} bytes reclaimed, writes held {} us",
            result.url,
            result.reclaimed_bytes,
            result.commit_pause_micros
        );
    } else {
        state.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "vacuum: volume {volume} on {}: {}",
            result.url,
            result.error
        );
    }
}

/// `POST /admin/vacuum/<call>?volume=<id>` on the volume server at `url`, its JSON answer.
async fn admin<T: serde::de::DeserializeOwned>(
    master: &Master,
    url: &str,
    call: &str,
    volume_id: u32,
) -> Result<T, String> {
    let address = format!("http://{url}/admin/vacuum/{call}?volume={volume_id}");
    let body = master.admin_call(&address).await?;
    serde_json::from_slice(&body).map_err(|e| {
        let text = String::from_utf8_lossy(&body);
        format!("{address}: answer {text:?} is not what {call} answers: {e}")
    })
}

/// The automatic vacuum: every `--vacuum-interval`, on the leader.
pub async fn auto_vacuum(master: Arc<Master>) {
    let Some(interval) = master.config.vacuum_interval else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        if !master.is_leader.load(Ordering::Acquire) {
            continue;
        }
        let request = VacuumRequest {
            garbage_threshold: master.config.garbage_threshold,
            collection: None,
            volume_id: None,
        };
        let summary = vacuum(&master, &request).await;
        if summary.replicas_compacted + summary.replicas_failed > 0 {
            tracing::info!(
                "vacuum: {} volumes checked, {} replicas compacted, {} failed, {} bytes reclaimed",
                summary.volumes_checked,
                summary.replicas_compacted,
                summary.replicas_failed,
                summary.reclaimed_bytes
            );
        }
    }
}

/// After a heartbeat of `node_url`: its replicas that are behind another replica's
/// compaction revision are compacted in the background (one catch-up at a time, each
/// replica retried at most every `VACUUM_CATCH_UP_RETRY_MS`).
pub fn after_heartbeat(master: &Arc<Master>, node_url: &str) {
    if master.vacuum.catch_up_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let lagging = master.lock_topology().lagging_on(node_url);
    let now = Instant::now();
    let retry = Duration::from_millis(VACUUM_CATCH_UP_RETRY_MS);
    let due: Vec<u32> = {
        let mut tried = master.vacuum.catch_up_tried.lock().expect("catch-up lock");
        tried.retain(|_, at| now.duration_since(*at) < retry);
        lagging
            .into_iter()
            .filter(|id| tried.insert((*id, node_url.to_string()), now).is_none())
            .collect()
    };
    if due.is_empty() {
        master
            .vacuum
            .catch_up_running
            .store(false, Ordering::Release);
        return;
    }
    let master = master.clone();
    tokio::spawn(async move {
        for volume_id in due {
            let request = VacuumRequest {
                garbage_threshold: master.config.garbage_threshold,
                collection: None,
                volume_id: Some(volume_id),
            };
            let summary = vacuum(&master, &request).await;
            tracing::info!("vacuum: catch-up of volume {volume_id}: {summary:?}");
        }
        master
            .vacuum
            .catch_up_running
            .store(false, Ordering::Release);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::topology::Replica;

    // Proves the interval flag takes s/m/h and 0 (off), and refuses other spellings with
    // a message naming the value.
    #[test]
    fn intervals() {
        assert_eq!(parse_interval("15m"), Ok(Some(Duration::from_secs(900))));
        assert_eq!(parse_interval("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_interval("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(parse_interval("0"), Ok(None));
        for bad in ["", "15", "m", "0s", "-1m", "1d", "1.5m"] {
            let error = parse_interval(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }

    // Proves the request's threshold is SeaweedFS's (406 and its words for a non-number),
    // defaults to the flag, and must be a share; volumeId and collection are checked.
    #[test]
    fn requests() {
        let parse = |q: &str| VacuumRequest::parse(&Query::parse(q), 0.3);
        let request = parse("collection=pics&volumeId=7").unwrap();
        assert_eq!(request.garbage_threshold, 0.3);
        assert_eq!(request.collection.as_deref(), Some("pics"));
        assert_eq!(request.volume_id, Some(7));
        assert_eq!(
            parse("garbageThreshold=0.5").unwrap().garbage_threshold,
            0.5
        );
        assert_eq!(parse("garbageThreshold=").unwrap().garbage_threshold, 0.3);
        let error = parse("garbageThreshold=abc").unwrap_err();
        assert_eq!(error.status(), 406);
        assert_eq!(
            error.message(),
            "garbageThreshold abc is not a valid float number"
        );
        for bad in [
            "garbageThreshold=2",
            "garbageThreshold=-0.1",
            "volumeId=x",
            "collection=a b",
        ] {
            assert_eq!(parse(bad).unwrap_err().status(), 400, "{bad}");
        }
    }

    fn target(revisions: &[u16]) -> VacuumTarget {
        VacuumTarget {
            volume_id: 1,
            replicas: revisions
                .iter()
                .enumerate()
                .map(|(index, revision)| Replica {
                    node_url: format!("n{index}"),
                    compact_revision: *revision,
                })
                .collect(),
        }
    }

    // Proves a replica behind the others' revision is found, across the u16 wrap too.
    #[test]
    fn lagging_replicas() {
        assert!(target(&[3, 3]).lagging().is_empty());
        let behind = target(&[4, 3, 4]);
        assert_eq!(behind.newest_revision(), 4);
        assert_eq!(behind.lagging()[0].node_url, "n1");
        let wrapped = target(&[65535, 0]);
        assert_eq!(wrapped.newest_revision(), 0);
        assert_eq!(wrapped.lagging()[0].node_url, "n0");
    }
}
