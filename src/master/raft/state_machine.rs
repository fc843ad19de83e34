//! The replicated master state and its snapshots.
//!
//! The state lives in memory; it is rebuilt at start from `snapshot.json` (written durably
//! each time openraft builds or installs a snapshot) plus the log entries after it.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::log_store::write_file_durably;
use super::{Command, CommandResult, Node, NodeId, TypeConfig};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// What the masters agree on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterState {
    /// The largest volume id ever allocated or reported.
    pub max_volume_id: u32,
    /// Every file key below this may have been handed out; new leases start here.
    pub file_key_high_water: u64,
    pub collections: BTreeSet<String>,
}

impl MasterState {
    /// Apply one command; deterministic, so every master computes the same answer. The
    /// largest volume id and the file keys' high water never go down.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        let before = (self.max_volume_id, self.file_key_high_water);
        let result = self.apply_command(command);
        assert!(self.max_volume_id >= before.0 && self.file_key_high_water >= before.1);
        result
    }

    fn apply_command(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::LeaseKeys { count, at_least } => {
                assert!(*count > 0, "a key lease is never empty");
                // Key 0 is never handed out (SeaweedFS treats it as "no key").
                let first = self.file_key_high_water.max(*at_least).max(1);
                let end = first.checked_add(*count).expect("file key space exhausted");
                assert!(first >= 1 && first >= *at_least && end > first);
                self.file_key_high_water = end;
                CommandResult::Keys { first, end }
            }
            Command::NextVolumeIds { count } => {
                let first = self.max_volume_id + 1;
                let end = first
                    .checked_add(*count)
                    .expect("volume id space exhausted");
                self.max_volume_id = end - 1;
                assert!(first >= 1, "volume id 0 is never given out");
                CommandResult::VolumeIds { first, end }
            }
            Command::RaiseVolumeId { at_least } => {
                self.max_volume_id = self.max_volume_id.max(*at_least);
                CommandResult::Done
            }
            Command::AddCollection { name } => {
                self.collections.insert(name.clone());
                CommandResult::Done
            }
            Command::DeleteCollection { name } => {
                self.collections.remove(name);
                CommandResult::Done
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    state: MasterState,
}

struct SmInner {
    directory: PathBuf,
    state: MasterState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Option<SnapshotFile>,
    snapshots_built: u64,
}

/// The state machine; clones share the state (the HTTP side reads it through [`Self::state`]).
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Mutex<SmInner>>,
}

fn snapshot_path(directory: &Path) -> PathBuf {
    directory.join("snapshot.json")
}

impl StateMachineStore {
    /// Open the state machine of `directory`, loading its last snapshot when there is one.
    pub fn open(directory: &Path) -> std::io::Result<StateMachineStore> {
        let path = snapshot_path(directory);
        let snapshot: Option<SnapshotFile> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("parse {}: {e}", path.display()),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut inner = SmInner {
            directory: directory.to_path_buf(),
            state: MasterState::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshots_built: 0,
        };
        if let Some(file) = snapshot {
            let data: SnapshotData = serde_json::from_slice(&file.data).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("parse state in {}: {e}", path.display()),
                )
            })?;
            inner.state = data.state;
            inner.last_applied = file.meta.last_log_id;
            inner.membership = file.meta.last_membership.clone();
            inner.snapshot = Some(file);
        }
        Ok(StateMachineStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.inner.lock().expect("state machine lock poisoned")
    }

    /// A copy of the replicated state as applied on this master.
    pub fn state(&self) -> MasterState {
        self.lock().state.clone()
    }
}

impl SmInner {
    // openraft's StorageError is large; it is the error type the storage traits require.
    #[allow(clippy::result_large_err)]
    fn build_snapshot(&mut self) -> StoreResult<SnapshotFile> {
        let data = serde_json::to_vec(&SnapshotData {
            state: self.state.clone(),
        })
        .expect("the state always serializes");
        self.snapshots_built += 1;
        let last = self.last_applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{last}-{}", self.snapshots_built),
        };
        let file = SnapshotFile { meta, data };
        self.persist(&file)?;
        Ok(file)
    }

    #[allow(clippy::result_large_err)]
    fn persist(&mut self, file: &SnapshotFile) -> StoreResult<()> {
        let bytes = serde_json::to_vec(file).expect("a snapshot always serializes");
        write_file_durably(&snapshot_path(&self.directory), &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(file.meta.signature()), &e))?;
        self.snapshot = Some(SnapshotFile {
            meta: file.meta.clone(),
            data: file.data.clone(),
        });
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let file = self.lock().build_snapshot()?;
        Ok(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut inner = self.lock();
        let mut results = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Done,
                EntryPayload::Normal(command) => inner.state.apply(&command),
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::Done
                }
            };
            results.push(result);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut inner = self.lock();
        inner.persist(&SnapshotFile {
            meta: meta.clone(),
            data: bytes,
        })?;
        inner.state = data.state;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.lock();
        Ok(inner.snapshot.as_ref().map(|file| Snapshot {
            meta: file.meta.clone(),
            snapshot: Box::new(Cursor::new(file.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves leases never overlap and respect `at_least`, and volume ids only grow.
    #[test]
    fn leases_and_volume_ids_only_move_up() {
        let mut state = MasterState::default();
        let first = state.apply(&Command::LeaseKeys {
            count: 10,
            at_least: 0,
        });
        assert_eq!(first, CommandResult::Keys { first: 1, end: 11 });
        let raised = state.apply(&Command::LeaseKeys {
            count: 5,
            at_least: 100,
        });
        assert_eq!(
            raised,
            CommandResult::Keys {
                first: 100,
                end: 105
            }
        );
        let below = state.apply(&Command::LeaseKeys {
            count: 5,
            at_least: 50,
        });
        assert_eq!(
            below,
            CommandResult::Keys {
                first: 105,
                end: 110
            }
        );
        state.apply(&Command::RaiseVolumeId { at_least: 7 });
        let ids = state.apply(&Command::NextVolumeIds { count: 2 });
        assert_eq!(ids, CommandResult::VolumeIds { first: 8, end: 10 });
        state.apply(&Command::RaiseVolumeId { at_least: 3 });
        assert_eq!(state.max_volume_id, 9);
    }

    // Proves a built snapshot is reloaded by a fresh open (a restarted master keeps its state).
    #[test]
    fn snapshot_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateMachineStore::open(dir.path()).unwrap();
        store
            .lock()
            .state
            .apply(&Command::NextVolumeIds { count: 4 });
        store.lock().build_snapshot().unwrap();
        let reopened = StateMachineStore::open(dir.path()).unwrap();
        assert_eq!(reopened.state().max_volume_id, 4);
    }
}
