//! Chunks leave the volumes in the background: the deleter reads the store's pending-delete
//! records (written in the same batch as the entry change that dropped the chunks), deletes
//! their chunks from the volume servers a batch at a time, and removes a record once all its
//! chunks are gone; failures are retried with backoff, and the records survive restarts.
//!
//! The sweep runs at start: a lease record of this filer still open means the previous run
//! stopped with fids handed out. Every fid of such a lease that no entry references (no
//! `c/<fid>` record) is deleted: that is what a crash between upload and commit leaves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use super::fids;
use super::limits::{DELETE_ATTEMPTS_MAX, DELETE_BATCH_FIDS_MAX, PENDING_READ_MAX};
use super::namespace::{CHUNK_RECORD_PREFIX, FID_SEPARATOR, Namespace, PENDING_PREFIX};
use super::store::Op;
use super::volumes::Volumes;

/// How long the deleter sleeps when idle (it also wakes when deletes are queued).
const IDLE_WAIT_MS: u64 = 5_000;
/// Longest wait between rounds after failures.
const BACKOFF_MS_MAX: u64 = 30_000;

/// Run forever: pending deletes, oldest first.
pub async fn run(namespace: Arc<Namespace>, volumes: Arc<Volumes>) {
    let mut backoff_ms = 100;
    loop {
        let wake = namespace.deletions.notified();
        let pending = match namespace
            .store
            .records(PENDING_PREFIX, PENDING_READ_MAX)
            .await
        {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!("filer: read pending deletes: {error}");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
                continue;
            }
        };
        if pending.is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(IDLE_WAIT_MS), wake).await;
            continue;
        }
        let all_done = delete_round(&namespace, &volumes, pending).await;
        if all_done {
            backoff_ms = 100;
        } else {
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
        }
    }
}

/// Delete the chunks of these records; remove the records whose chunks are all gone.
/// True when every record was finished.
async fn delete_round(
    namespace: &Namespace,
    volumes: &Volumes,
    pending: Vec<(String, Vec<u8>)>,
) -> bool {
    let mut finished = Vec::new();
    for (key, value) in &pending {
        let text = String::from_utf8_lossy(value);
        let chunk_fids: Vec<String> = text
            .split(FID_SEPARATOR)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        let deleted = chunk_fids.len() as u64;
        let failures: usize = futures_util::stream::iter(chunk_fids)
            .map(|fid| async move { delete_with_retries(volumes, &fid).await })
            .buffer_unordered(DELETE_BATCH_FIDS_MAX)
            .map(|ok| usize::from(!ok))
            .fold(0, |sum, failed| async move { sum + failed })
            .await;
        if failures == 0 {
            finished.push(Op::DeleteRecord { key: key.clone() });
            namespace
                .metrics
                .chunks_deleted
                .fetch_add(deleted, Ordering::Relaxed);
        } else {
            namespace
                .metrics
                .chunk_delete_failures
                .fetch_add(failures as u64, Ordering::Relaxed);
        }
    }
    let all_done = finished.len() == pending.len();
    if let Err(error) = namespace.store.apply(finished).await {
        tracing::warn!("filer: remove finished pending deletes: {error}");
        return false;
    }
    all_done
}

async fn delete_with_retries(volumes: &Volumes, fid: &str) -> bool {
    if fids::parse(fid).is_err() {
        tracing::warn!("filer: pending delete of a bad fid {fid:?} dropped");
        return true;
    }
    for attempt in 0..DELETE_ATTEMPTS_MAX {
        match volumes.delete(fid).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::debug!("filer: delete chunk {fid} (attempt {attempt}): {error}");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    false
}

/// Close lease records whose fids are all finished, as they arrive.
pub async fn close_leases(
    namespace: Arc<Namespace>,
    mut closed: tokio::sync::mpsc::Receiver<String>,
) {
    while let Some(key) = closed.recv().await {
        let mut ops = vec![Op::DeleteRecord { key }];
        while let Ok(key) = closed.try_recv() {
            ops.push(Op::DeleteRecord { key });
        }
        if let Err(error) = namespace.store.apply(ops).await {
            tracing::warn!("filer: close lease records: {error} (the next start sweeps them)");
        }
    }
}

/// The lease records a previous run of this filer left open (read before any new lease is
/// taken). A crash leaves one open lease per placement in use: one page holds them; any
/// beyond it are swept at a later start.
pub async fn open_leases(
    namespace: &Namespace,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    namespace
        .store
        .records(prefix, PENDING_READ_MAX)
        .await
        .map_err(|e| format!("read lease records: {e}"))
}

/// Queue for deletion every fid of `leases` that no entry references, then close them.
pub async fn sweep(namespace: Arc<Namespace>, leases: Vec<(String, Vec<u8>)>) {
    for (key, value) in leases {
        match sweep_lease(&namespace, &value).await {
            Ok(orphans) => {
                tracing::info!(
                    "filer: sweep of lease {key}: {orphans} unreferenced fids queued for deletion"
                );
                let _ = namespace.apply(vec![Op::DeleteRecord { key }], false).await;
            }
            Err(error) => {
                tracing::warn!("filer: sweep of lease {key}: {error} (kept for the next start)")
            }
        }
    }
}

async fn sweep_lease(namespace: &Namespace, record: &[u8]) -> Result<usize, String> {
    let record: serde_json::Value =
        serde_json::from_slice(record).map_err(|e| format!("unreadable record: {e}"))?;
    let first_text = record["fid"].as_str().unwrap_or("");
    let first = fids::parse(first_text)?;
    let count = record["count"].as_u64().unwrap_or(0);
    let mut orphans = Vec::new();
    for index in 0..count {
        let fid = fids::nth_of_lease(&first, index);
        let key = format!("{CHUNK_RECORD_PREFIX}{fid}");
        let found = namespace
            .store
            .records(&key, 1)
            .await
            .map_err(|e| format!("look up {key}: {e}"))?;
        let referenced = found.first().is_some_and(|(k, _)| *k == key);
        if !referenced {
            orphans.push(fid);
        }
    }
    let total = orphans.len();
    for batch in orphans.chunks(DELETE_BATCH_FIDS_MAX) {
        namespace
            .queue_deletes(batch.to_vec())
            .await
            .map_err(|e| e.message)?;
    }
    Ok(total)
}
