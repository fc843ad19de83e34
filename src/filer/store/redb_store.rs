//! The embedded store: one redb file. Entries are keyed `parent NUL name`, so a directory's
//! entries are one key range. Writes go through one writer thread that merges the batches
//! waiting for it into one write transaction (group commit): one fsync acknowledges many
//! concurrent creates. Reads use their own read transactions and never wait for the writer.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    BoxFuture, Expect, FilerStore, Listed, Op, StoreError, StoreResult, entry_key, prefix_end,
    split_for_key,
};
use crate::filer::limits::{GROUP_COMMIT_OPS_MAX, STORE_WRITE_QUEUE_MAX};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

const KIND: &str = "redb";

struct WriteJob {
    ops: Vec<Op>,
    reply: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

pub struct RedbStore {
    db: Arc<Database>,
    /// None only while dropping.
    writer: Option<SyncSender<WriteJob>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbStore {
    /// Close the queue and wait for the writer to finish what it took, so the file is closed
    /// (and can be opened again) when the store is gone.
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn backend(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::backend(KIND, operation, error)
}

impl RedbStore {
    /// Open (or create) the store file and start its writer thread.
    pub fn open(file: &Path) -> Result<RedbStore, String> {
        let db = Database::create(file).map_err(|e| format!("open {}: {e}", file.display()))?;
        let setup = db
            .begin_write()
            .map_err(|e| format!("{}: begin: {e}", file.display()))?;
        setup
            .open_table(ENTRIES)
            .map_err(|e| format!("{}: create tables: {e}", file.display()))?;
        setup
            .open_table(RECORDS)
            .map_err(|e| format!("{}: create tables: {e}", file.display()))?;
        setup
            .commit()
            .map_err(|e| format!("{}: commit: {e}", file.display()))?;
        let db = Arc::new(db);
        let (writer, jobs) = std::sync::mpsc::sync_channel(STORE_WRITE_QUEUE_MAX);
        let writer_db = db.clone();
        let writer_thread = std::thread::Builder::new()
            .name("kelp-filer-redb".into())
            .spawn(move || write_loop(&writer_db, &jobs))
            .map_err(|e| format!("start the store writer thread: {e}"))?;
        Ok(RedbStore {
            db,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
        })
    }

    fn read_entry(&self, path: &str) -> StoreResult<Option<Vec<u8>>> {
        let (dir, name) = split_for_key(path);
        let txn = self.db.begin_read().map_err(|e| backend("get", e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| backend("get", e))?;
        let found = table
            .get(entry_key(dir, name).as_slice())
            .map_err(|e| backend("get", e))?;
        Ok(found.map(|value| value.value().to_vec()))
    }

    fn read_page(
        &self,
        dir: &str,
        start: &str,
        inclusive: bool,
        limit: usize,
    ) -> StoreResult<Vec<Listed>> {
        let txn = self.db.begin_read().map_err(|e| backend("list", e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| backend("list", e))?;
        let first = entry_key(dir, start);
        let mut end = dir.as_bytes().to_vec();
        end.push(1);
        let range = table
            .range(first.as_slice()..end.as_slice())
            .map_err(|e| backend("list", e))?;
        let mut page = Vec::with_capacity(limit.min(1024));
        for item in range {
            let (key, value) = item.map_err(|e| backend("list", e))?;
            let key = key.value();
            let name = &key[dir.len() + 1..];
            if !inclusive && name == start.as_bytes() {
                continue;
            }
            if page.len() == limit {
                break;
            }
            let name = String::from_utf8(name.to_vec()).map_err(|e| backend("list", e))?;
            page.push(Listed {
                name,
                value: value.value().to_vec(),
            });
        }
        Ok(page)
    }

    fn read_records(&self, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(|e| backend("records", e))?;
        let table = txn.open_table(RECORDS).map_err(|e| backend("records", e))?;
        let end = prefix_end(prefix);
        let range = table
            .range(prefix..end.as_str())
            .map_err(|e| backend("records", e))?;
        let mut found = Vec::new();
        for item in range.take(limit) {
            let (key, value) = item.map_err(|e| backend("records", e))?;
            found.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(found)
    }
}

/// The writer thread: take every job waiting (up to `GROUP_COMMIT_OPS_MAX` ops), apply them
/// in one transaction, commit (fsync), answer each job. A job whose expectation fails gets
/// `Conflict` and changes nothing; the others still commit.
fn write_loop(db: &Database, jobs: &Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut ops = batch[0].ops.len();
        while ops < GROUP_COMMIT_OPS_MAX {
            match jobs.try_recv() {
                Ok(job) => {
                    ops += job.ops.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        match commit_batch(db, &batch) {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!("filer: {error}");
                for job in batch {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One transaction for the batch; the outcome of each job, or the error that failed them all.
fn commit_batch(db: &Database, batch: &[WriteJob]) -> StoreResult<Vec<StoreResult<()>>> {
    let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut entries = txn.open_table(ENTRIES).map_err(|e| backend("open", e))?;
        let mut records = txn.open_table(RECORDS).map_err(|e| backend("open", e))?;
        for job in batch {
            match first_conflict(&entries, &job.ops)? {
                Some(path) => outcomes.push(Err(StoreError::Conflict { path })),
                None => {
                    apply_ops(&mut entries, &mut records, &job.ops)?;
                    outcomes.push(Ok(()));
                }
            }
        }
    }
    txn.commit().map_err(|e| backend("commit", e))?;
    Ok(outcomes)
}

fn first_conflict(entries: &redb::Table<&[u8], &[u8]>, ops: &[Op]) -> StoreResult<Option<String>> {
    for op in ops {
        let (path, expect) = match op {
            Op::Put { path, expect, .. } | Op::Delete { path, expect } => (path, expect),
            _ => continue,
        };
        if *expect == Expect::Any {
            continue;
        }
        let (dir, name) = split_for_key(path);
        let current = entries
            .get(entry_key(dir, name).as_slice())
            .map_err(|e| backend("check", e))?;
        let holds = match (expect, current) {
            (Expect::Absent, None) => true,
            (Expect::Exactly(wanted), Some(found)) => found.value() == wanted.as_slice(),
            _ => false,
        };
        if !holds {
            return Ok(Some(path.clone()));
        }
    }
    Ok(None)
}

fn apply_ops(
    entries: &mut redb::Table<&[u8], &[u8]>,
    records: &mut redb::Table<&str, &[u8]>,
    ops: &[Op],
) -> StoreResult<()> {
    for op in ops {
        match op {
            Op::Put { path, value, .. } => {
                let (dir, name) = split_for_key(path);
                entries
                    .insert(entry_key(dir, name).as_slice(), value.as_slice())
                    .map_err(|e| backend("put", e))?;
            }
            Op::PutIfAbsent { path, value } => {
                let (dir, name) = split_for_key(path);
                let key = entry_key(dir, name);
                let present = entries
                    .get(key.as_slice())
                    .map_err(|e| backend("put", e))?
                    .is_some();
                if !present {
                    entries
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| backend("put", e))?;
                }
            }
            Op::Delete { path, .. } => {
                let (dir, name) = split_for_key(path);
                entries
                    .remove(entry_key(dir, name).as_slice())
                    .map_err(|e| backend("delete", e))?;
            }
            Op::PutRecord { key, value } => {
                records
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| backend("put record", e))?;
            }
            Op::DeleteRecord { key } => {
                records
                    .remove(key.as_str())
                    .map_err(|e| backend("delete record", e))?;
            }
        }
    }
    Ok(())
}

impl FilerStore for RedbStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move { self.read_entry(path) })
    }

    fn list<'a>(
        &'a self,
        dir: &'a str,
        start: &'a str,
        inclusive: bool,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Listed>>> {
        Box::pin(async move { self.read_page(dir, start, inclusive, limit) })
    }

    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = WriteJob { ops, reply };
            let writer = self
                .writer
                .as_ref()
                .expect("the writer lives as long as the store");
            let job = match writer.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Full(job)) => Some(job),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(backend("apply", "the writer thread stopped"));
                }
            };
            if let Some(job) = job {
                // The queue is full: wait for room off the async threads.
                let writer = writer.clone();
                tokio::task::spawn_blocking(move || writer.send(job))
                    .await
                    .map_err(|e| backend("apply", e))?
                    .map_err(|_| backend("apply", "the writer thread stopped"))?;
            }
            answer
                .await
                .map_err(|_| backend("apply", "the writer thread dropped the batch"))?
        })
    }

    fn records<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<super::Records>> {
        Box::pin(async move { self.read_records(prefix, limit) })
    }
}
