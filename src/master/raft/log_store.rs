//! The Raft log and vote, persisted in the master directory with fsync.
//!
//! `raft.log` is an append-only sequence of records: `len u32 BE | crc32c u32 BE | JSON`,
//! the JSON being a [`LogRecord`]. Replaying the records in order rebuilds the in-memory log;
//! a torn or corrupt tail (a crash during an append that was never acknowledged) is cut off.
//! A purge rewrites the file (temporary file, fsync, rename, fsync of the directory), so the
//! file holds only the entries after the last snapshot. `vote.json` is replaced the same way.
//!
//! Appends are written and fsynced by one writer thread, in order, several at a time (group
//! commit); openraft is told through `LogFlushed` when they are durable. So an fsync never
//! blocks a tokio worker that serves assignments.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::master::limits::{RAFT_RECORD_BYTES_MAX, RAFT_WRITE_QUEUE_MAX};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

#[derive(Serialize, Deserialize)]
enum LogRecord {
    Entry(Entry<TypeConfig>),
    /// Entries at and after this index were removed (a conflicting suffix).
    Truncate(u64),
    /// Entries up to and including this log id were removed (covered by a snapshot).
    Purge(LogId<NodeId>),
}

/// Work for the writer thread, done in queue order.
enum WriteJob {
    Append {
        bytes: Vec<u8>,
        flushed: Option<LogFlushed<TypeConfig>>,
    },
    /// Replace the whole file (after a purge).
    Rewrite { bytes: Vec<u8> },
    /// Answer once everything queued before is durable (tests wait with it).
    #[cfg(test)]
    Sync {
        done: std::sync::mpsc::Sender<std::io::Result<()>>,
    },
}

struct LogInner {
    directory: PathBuf,
    writer: std::sync::mpsc::SyncSender<WriteJob>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// The log store; clones share the same log (one is the reader openraft asks for).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

fn log_path(directory: &Path) -> PathBuf {
    directory.join("raft.log")
}

fn vote_path(directory: &Path) -> PathBuf {
    directory.join("vote.json")
}

/// Encode one record: length, checksum, JSON.
fn encode_record(record: &LogRecord) -> Vec<u8> {
    let payload = serde_json::to_vec(record).expect("a log record always serializes");
    assert!(payload.len() as u64 <= u64::from(RAFT_RECORD_BYTES_MAX));
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decode the records of a log file; returns them and the byte length of the valid prefix.
fn decode_records(bytes: &[u8]) -> (Vec<LogRecord>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= 8 {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap());
        let crc = u32::from_be_bytes(bytes[offset + 4..offset + 8].try_into().unwrap());
        if len > RAFT_RECORD_BYTES_MAX || bytes.len() - offset - 8 < len as usize {
            break;
        }
        let payload = &bytes[offset + 8..offset + 8 + len as usize];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<LogRecord>(payload) else {
            break;
        };
        records.push(record);
        offset += 8 + len as usize;
    }
    (records, offset)
}

fn io_error(operation: &str, path: &Path, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("{operation} {}: {error}", path.display()),
    )
}

/// Write `bytes` to `path` atomically and durably: temporary file, fsync, rename, fsync dir.
pub fn write_file_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(|e| io_error("create", &temporary, e))?;
    file.write_all(bytes)
        .map_err(|e| io_error("write", &temporary, e))?;
    file.sync_all()
        .map_err(|e| io_error("fsync", &temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| io_error("rename to", path, e))?;
    let directory = path.parent().unwrap_or(Path::new("."));
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error("fsync directory", directory, e))
}

impl LogStore {
    /// Open (or create) the log in `directory`, replaying `raft.log` and reading `vote.json`.
    pub fn open(directory: &Path) -> std::io::Result<LogStore> {
        let path = log_path(directory);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error("read", &path, e))?;
        let (records, valid_len) = decode_records(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                "{}: cutting a torn or corrupt tail of {} bytes at offset {valid_len}",
                path.display(),
                bytes.len() - valid_len
            );
            file.set_len(valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("truncate", &path, e))?;
        }
        let (writer, jobs) = std::sync::mpsc::sync_channel(RAFT_WRITE_QUEUE_MAX);
        let writer_path = path.clone();
        std::thread::Builder::new()
            .name("kelp-raft-log".into())
            .spawn(move || write_loop(writer_path, file, jobs))
            .map_err(|e| io_error("start the log writer for", &path, e))?;
        let mut inner = LogInner {
            directory: directory.to_path_buf(),
            writer,
            entries: BTreeMap::new(),
            last_purged: None,
            vote: read_vote_file(&vote_path(directory))?,
        };
        for record in records {
            inner.replay(record);
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().expect("log store lock poisoned")
    }
}

fn read_vote_file(path: &Path) -> std::io::Result<Option<Vote<NodeId>>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("parse {}: {e}", path.display()),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path, error)),
    }
}

impl LogInner {
    fn replay(&mut self, record: LogRecord) {
        match record {
            LogRecord::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            LogRecord::Truncate(index) => {
                self.entries.split_off(&index);
            }
            LogRecord::Purge(log_id) => self.purge_in_memory(log_id),
        }
    }

    fn purge_in_memory(&mut self, log_id: LogId<NodeId>) {
        self.entries = self.entries.split_off(&(log_id.index + 1));
        if self
            .last_purged
            .is_none_or(|purged| purged.index < log_id.index)
        {
            self.last_purged = Some(log_id);
        }
    }

    fn send(&self, job: WriteJob) -> std::io::Result<()> {
        self.writer.send(job).map_err(|_| {
            let path = log_path(&self.directory);
            std::io::Error::other(format!("{}: the log writer thread stopped", path.display()))
        })
    }

    /// Queue records for the writer; `flushed` is told when they are durable.
    fn append_records(
        &mut self,
        records: &[LogRecord],
        flushed: Option<LogFlushed<TypeConfig>>,
    ) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend_from_slice(&encode_record(record));
        }
        self.send(WriteJob::Append { bytes, flushed })
    }

    /// Queue a rewrite of the log file with only what is left after a purge.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        if let Some(purged) = self.last_purged {
            bytes.extend_from_slice(&encode_record(&LogRecord::Purge(purged)));
        }
        for entry in self.entries.values() {
            bytes.extend_from_slice(&encode_record(&LogRecord::Entry(entry.clone())));
        }
        self.send(WriteJob::Rewrite { bytes })
    }
}

/// The writer thread: takes every queued job, writes them in order, fsyncs once, then tells
/// the waiting parties. Ends when the store is dropped.
fn write_loop(path: PathBuf, mut file: File, jobs: std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < RAFT_WRITE_QUEUE_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        let mut waiting = Vec::new();
        for job in batch {
            match job {
                WriteJob::Append { bytes, flushed } => {
                    if result.is_ok() {
                        result = file
                            .write_all(&bytes)
                            .map_err(|e| io_error("append", &path, e));
                    }
                    waiting.extend(flushed.map(Waiter::Flushed));
                }
                WriteJob::Rewrite { bytes } => {
                    if result.is_ok() {
                        result = file.sync_data().map_err(|e| io_error("fsync", &path, e));
                    }
                    if result.is_ok() {
                        result = rewrite_file(&path, &bytes).map(|reopened| file = reopened);
                    }
                }
                #[cfg(test)]
                WriteJob::Sync { done } => waiting.push(Waiter::Sync(done)),
            }
        }
        if result.is_ok() {
            result = file.sync_data().map_err(|e| io_error("fsync", &path, e));
        }
        if let Err(error) = &result {
            tracing::error!("raft log: {error}");
        }
        for waiter in waiting {
            let copy = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
            };
            match waiter {
                Waiter::Flushed(flushed) => flushed.log_io_completed(copy),
                #[cfg(test)]
                Waiter::Sync(done) => {
                    let _ = done.send(copy);
                }
            }
        }
    }
}

enum Waiter {
    Flushed(LogFlushed<TypeConfig>),
    #[cfg(test)]
    Sync(std::sync::mpsc::Sender<std::io::Result<()>>),
}

fn rewrite_file(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    write_file_durably(path, bytes)?;
    OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error("reopen", path, e))
}

#[cfg(test)]
impl LogStore {
    /// Wait until everything queued so far is durable.
    pub fn flush(&self) -> std::io::Result<()> {
        let (done, wait) = std::sync::mpsc::channel();
        self.lock().send(WriteJob::Sync { done })?;
        wait.recv()
            .map_err(|_| std::io::Error::other("the log writer thread stopped"))?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(vote).expect("a vote always serializes");
        write_file_durably(&vote_path(&inner.directory), &bytes)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Readable at once (in memory); durable when the writer calls `callback`.
        let mut inner = self.lock();
        let records: Vec<LogRecord> = entries.into_iter().map(LogRecord::Entry).collect();
        inner
            .append_records(&records, Some(callback))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        for record in records {
            inner.replay(record);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .append_records(&[LogRecord::Truncate(log_id.index)], None)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        inner.replay(LogRecord::Truncate(log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let mut inner = self.lock();
        inner.purge_in_memory(log_id);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 7), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append_now(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        let mut inner = store.lock();
        let records: Vec<LogRecord> = entries.into_iter().map(LogRecord::Entry).collect();
        inner.append_records(&records, None).unwrap();
        for record in records {
            inner.replay(record);
        }
    }

    // Proves appended, truncated and purged entries survive a reopen, and that a torn tail
    // (half a record, as after a crash mid-append) is cut off instead of failing the open.
    #[test]
    fn log_survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        append_now(&store, (1..=10).map(entry).collect());
        store
            .lock()
            .append_records(&[LogRecord::Truncate(9)], None)
            .unwrap();
        store.lock().replay(LogRecord::Truncate(9));
        {
            let mut inner = store.lock();
            inner.purge_in_memory(entry(3).log_id);
            inner.rewrite().unwrap();
        }
        append_now(&store, vec![entry(9)]);
        store.flush().unwrap();
        drop(store);
        let mut file = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap();
        file.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(file);

        let reopened = LogStore::open(dir.path()).unwrap();
        let inner = reopened.lock();
        let indexes: Vec<u64> = inner.entries.keys().copied().collect();
        assert_eq!(indexes, vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(inner.last_purged.map(|l| l.index), Some(3));
    }

    proptest::proptest! {
        // Proves replay never panics on arbitrary file contents and never claims more valid
        // bytes than the file has.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let (_, valid_len) = decode_records(&bytes);
            proptest::prop_assert!(valid_len <= bytes.len());
        }
    }

    // Proves a corrupt record (bad checksum) ends replay there: nothing after it is trusted.
    #[test]
    fn corrupt_record_ends_replay() {
        let mut bytes = encode_record(&LogRecord::Entry(entry(1)));
        let mut second = encode_record(&LogRecord::Entry(entry(2)));
        let last = second.len() - 1;
        second[last] ^= 0xff;
        bytes.extend_from_slice(&second);
        let (records, valid_len) = decode_records(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(valid_len, bytes.len() - second.len());
    }
}
