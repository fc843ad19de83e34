//! The filer's namespace: entries read and changed through the store. Every change is one
//! atomic store batch that also carries its chunk bookkeeping ([`chunk_ops`]): a record per
//! live chunk (`c/<fid>`) and a pending-delete record (`d/...`) for every chunk an update
//! or delete leaves behind, so no crash can orphan a chunk that was once committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::entry::Entry;
use super::error::{FilerError, FilerResult};
use super::limits::{CONFLICT_RETRIES_MAX, DIRECTORY_CACHE_ENTRIES_MAX, DIRECTORY_CACHE_TTL_MS};
use super::metrics::Metrics;
use super::path;
use super::store::{Expect, FilerStore, Op, StoreError};

/// Prefix of the record that says a chunk is referenced by an entry.
pub const CHUNK_RECORD_PREFIX: &str = "c/";
/// Prefix of pending chunk deletions.
pub const PENDING_PREFIX: &str = "d/";
/// Between the fids of a pending-delete record (a fid has a comma of its own).
pub const FID_SEPARATOR: &str = " ";

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A key no other pending-delete record has: time, then a per-process counter and a random
/// tag (several filers may share a store).
fn pending_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static TAG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let tag = *TAG.get_or_init(rand::random);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PENDING_PREFIX}{:020}-{tag:08x}-{count}", now_ns())
}

/// The chunk bookkeeping of replacing `old` by `new` (either may be None). Returns the ops
/// and whether any chunk was dropped (the deleter has work).
pub fn chunk_ops(old: Option<&Entry>, new: Option<&Entry>) -> (Vec<Op>, bool) {
    let mut ops = Vec::new();
    let dropped = old.map(|o| o.chunks_dropped_by(new)).unwrap_or_default();
    let added = new.map(|n| n.chunks_dropped_by(old)).unwrap_or_default();
    for fid in &added {
        ops.push(Op::PutRecord {
            key: format!("{CHUNK_RECORD_PREFIX}{fid}"),
            value: Vec::new(),
        });
    }
    for fid in &dropped {
        ops.push(Op::DeleteRecord {
            key: format!("{CHUNK_RECORD_PREFIX}{fid}"),
        });
    }
    if !dropped.is_empty() {
        ops.push(Op::PutRecord {
            key: pending_key(),
            value: dropped.join(FID_SEPARATOR).into_bytes(),
        });
    }
    (ops, !dropped.is_empty())
}

/// A stored entry with the exact bytes it was read as (the expectation of an update).
pub struct Found {
    pub entry: Entry,
    pub raw: Vec<u8>,
}

pub struct Namespace {
    pub store: Arc<dyn FilerStore>,
    /// Directories known to exist, with when that was last seen.
    directories: std::sync::Mutex<HashMap<String, Instant>>,
    /// Woken when chunks were queued for deletion.
    pub deletions: Arc<tokio::sync::Notify>,
    pub metrics: Arc<Metrics>,
}

impl Namespace {
    pub fn new(store: Arc<dyn FilerStore>, metrics: Arc<Metrics>) -> Namespace {
        Namespace {
            store,
            directories: std::sync::Mutex::new(HashMap::new()),
            deletions: Arc::new(tokio::sync::Notify::new()),
            metrics,
        }
    }

    /// The entry at `path` (the root is a directory always there). An entry whose TTL
    /// passed is removed and reads as absent.
    pub async fn find(&self, path: &str) -> FilerResult<Option<Found>> {
        if path == "/" {
            let root = Entry::new_directory(0);
            return Ok(Some(Found {
                entry: root,
                raw: Vec::new(),
            }));
        }
        let Some(raw) = self.store.get(path).await? else {
            return Ok(None);
        };
        let entry = Entry::decode(&raw, path).map_err(FilerError::internal)?;
        if entry.is_expired(now_ns()) {
            self.expire(path, raw).await;
            return Ok(None);
        }
        Ok(Some(Found { entry, raw }))
    }

    /// Delete an expired entry (its chunks through the pending deletes).
    async fn expire(&self, path: &str, raw: Vec<u8>) {
        let Ok(entry) = Entry::decode(&raw, path) else {
            return;
        };
        let mut ops = vec![Op::Delete {
            path: path.to_string(),
            expect: Expect::Exactly(raw),
        }];
        let (chunk_ops, dropped) = chunk_ops(Some(&entry), None);
        ops.extend(chunk_ops);
        if self.store.apply(ops).await.is_ok() && dropped {
            self.deletions.notify_one();
        }
    }

    /// Change the entry at `path`: `change` gets the current entry (None when absent) and
    /// returns the new one (None deletes it). Parents are made as directories. Retried when
    /// another writer changed the entry meanwhile. Returns the entry written.
    pub async fn update<F>(&self, path: &str, change: F) -> FilerResult<Option<Entry>>
    where
        F: FnMut(Option<&Entry>) -> FilerResult<Option<Entry>>,
    {
        self.update_from(path, None, change).await
    }

    /// [`Namespace::update`] whose first attempt starts from `read`, what the caller just
    /// read at `path` (saves a store read).
    pub async fn update_from<F>(
        &self,
        path: &str,
        mut read: Option<Option<Found>>,
        mut change: F,
    ) -> FilerResult<Option<Entry>>
    where
        F: FnMut(Option<&Entry>) -> FilerResult<Option<Entry>>,
    {
        assert!(path != "/", "the root is never written");
        for _ in 0..CONFLICT_RETRIES_MAX {
            let found = match read.take() {
                Some(found) => found,
                None => self.find(path).await?,
            };
            let old = found.as_ref().map(|f| &f.entry);
            let new = change(old)?;
            let mut ops = match &new {
                Some(_) => self.parent_ops(path).await?,
                None => Vec::new(),
            };
            let expect = match &found {
                Some(found) => Expect::Exactly(found.raw.clone()),
                None => Expect::Absent,
            };
            match &new {
                Some(entry) => ops.push(Op::Put {
                    path: path.to_string(),
                    value: entry.encode(),
                    expect,
                }),
                None if found.is_some() => ops.push(Op::Delete {
                    path: path.to_string(),
                    expect,
                }),
                None => return Ok(None),
            }
            let (bookkeeping, dropped) = chunk_ops(old, new.as_ref());
            ops.extend(bookkeeping);
            match self.store.apply(ops).await {
                Ok(()) => {
                    self.after_commit(path, &new, dropped);
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. }) => {
                    self.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(FilerError::conflict(format!(
            "{path}: changed by other writers {CONFLICT_RETRIES_MAX} times in a row; try again"
        )))
    }

    fn after_commit(&self, path: &str, new: &Option<Entry>, dropped: bool) {
        if dropped {
            self.deletions.notify_one();
        }
        // Ancestors exist now (made or found by this batch); a directory already known keeps
        // the time it was last checked, so a removal elsewhere is noticed within the TTL.
        let mut directories = self.directories.lock().expect("lock");
        if new.is_some() {
            for ancestor in path::ancestors(path) {
                if !directories.contains_key(ancestor) {
                    remember(&mut directories, ancestor);
                }
            }
        }
        match new {
            Some(entry) if entry.is_directory() => remember(&mut directories, path),
            _ => {
                directories.remove(path);
            }
        }
    }

    /// Ops that make every missing ancestor of `path` a directory; an ancestor that is a
    /// file is an error.
    pub async fn parent_ops(&self, path: &str) -> FilerResult<Vec<Op>> {
        let mut ops = Vec::new();
        for ancestor in path::ancestors(path) {
            if self.directory_known(ancestor) {
                continue;
            }
            match self.find(ancestor).await? {
                Some(found) if found.entry.is_directory() => {
                    remember(&mut self.directories.lock().expect("lock"), ancestor);
                }
                Some(_) => {
                    return Err(FilerError::conflict(format!(
                        "{ancestor} is a file, not a directory: cannot create {path}"
                    )));
                }
                None => ops.push(Op::PutIfAbsent {
                    path: ancestor.to_string(),
                    value: Entry::new_directory(now_ns()).encode(),
                }),
            }
        }
        Ok(ops)
    }

    fn directory_known(&self, dir: &str) -> bool {
        let ttl = Duration::from_millis(DIRECTORY_CACHE_TTL_MS);
        let directories = self.directories.lock().expect("lock");
        directories
            .get(dir)
            .is_some_and(|seen| seen.elapsed() < ttl)
    }

    /// Forget cached directories at or below `dir` (after deletes and renames).
    pub fn forget_directories_under(&self, dir: &str) {
        let mut directories = self.directories.lock().expect("lock");
        directories.retain(|known, _| !path::is_within(known, dir));
    }

    /// Record chunks to delete (uploaded but never committed, or failed uploads).
    pub async fn queue_deletes(&self, fids: Vec<String>) -> FilerResult<()> {
        if fids.is_empty() {
            return Ok(());
        }
        let op = Op::PutRecord {
            key: pending_key(),
            value: fids.join(FID_SEPARATOR).into_bytes(),
        };
        self.apply(vec![op], true).await
    }

    /// Apply ops made outside [`Namespace::update`] (recursive deletes, renames).
    pub async fn apply(&self, ops: Vec<Op>, dropped: bool) -> FilerResult<()> {
        self.store.apply(ops).await?;
        if dropped {
            self.deletions.notify_one();
        }
        Ok(())
    }
}

fn remember(directories: &mut HashMap<String, Instant>, dir: &str) {
    if directories.len() >= DIRECTORY_CACHE_ENTRIES_MAX {
        directories.clear();
    }
    match directories.get_mut(dir) {
        Some(seen) => *seen = Instant::now(),
        None => {
            directories.insert(dir.to_string(), Instant::now());
        }
    }
}
