//! Administrative calls on one volume, as SeaweedFS's master and `weed shell` make them over
//! gRPC (AllocateVolume, VolumeDelete, VolumeMarkReadonly / VolumeMarkWritable,
//! VolumeStatus): served on the core that owns the volume, through its inbox.

use std::rc::Rc;

use kelp_engine::format::FileId;
use kelp_engine::format::needle::Needle;
use kelp_engine::volume::{FileVolume, VolumePaths};
use tonic::Status;

use super::super::compaction::{self, AdminRefusal};
use super::super::handlers::{self, RemoveError, now_unix_ns};
use super::super::registry::VolumeSettings;
use super::super::state::CoreState;
use super::super::store::{self, StoreError};
use crate::wire::CompactionStatus;

/// A call on one volume.
#[derive(Debug)]
pub enum AdminCall {
    /// Create it with these settings (idempotent for the same settings).
    Allocate(VolumeSettings),
    /// Drop it and its files; with `only_empty`, only when it holds no live file.
    Delete { only_empty: bool },
    /// Stop serving it and close its files, which stay (`VolumeUnmount`).
    Unmount,
    /// Refuse writes (true) or take writes again (false).
    MarkReadOnly(bool),
    /// Its size and counts.
    Status,
    /// Where its files are and how long they are now (a copy of it starts).
    Files,
    /// Serve a volume opened from files copied here.
    Mount {
        volume: Box<FileVolume>,
        collection: String,
        newest_write_ns: u64,
        dat_modified_s: u64,
    },
    /// Append a record copied from another server (its tail, a replica's repair); a record
    /// without data deletes its key.
    WriteRecord { record: Vec<u8> },
    /// Its garbage ratio.
    VacuumCheck,
    /// Start compacting it (or report the compaction running).
    VacuumStart,
    /// How its compaction goes.
    VacuumStatus,
    /// Commit its ready compaction (answered once the new files serve).
    VacuumCommit,
    /// Stop its compaction before the commit.
    VacuumCleanup,
}

/// What a call did.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminDone {
    Done,
    Status(VolumeState),
    Files(VolumeFiles),
    Garbage(f64),
    Compaction(CompactionStatus),
}

/// A volume's files as a copy reads them: their paths, and the lengths to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFiles {
    pub paths: VolumePaths,
    pub collection: String,
    pub dat_bytes: u64,
    pub idx_bytes: u64,
    pub file_count: u64,
    pub compaction_revision: u16,
    pub version: u32,
    /// The append time of its newest write, 0 when unknown.
    pub last_append_at_ns: u64,
    /// Where its first record starts (after the superblock).
    pub first_record_offset: u64,
    pub replication: String,
    pub bytes_offset: u32,
    pub read_only: bool,
}

/// A volume's state as VolumeStatus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeState {
    pub read_only: bool,
    pub dat_bytes: u64,
    pub file_count: u64,
    pub delete_count: u64,
}

pub type AdminAnswer = Result<AdminDone, Status>;

/// Serve `call` on `volume_id` (this core owns it).
pub async fn serve(state: &Rc<CoreState>, volume_id: u32, call: AdminCall) -> AdminAnswer {
    match call {
        AdminCall::Allocate(settings) => handlers::allocate(state, volume_id, &settings)
            .map(|()| AdminDone::Done)
            .map_err(|(status, message)| status_of_http(status, message)),
        AdminCall::Delete { only_empty } => delete(state, volume_id, only_empty),
        AdminCall::Unmount => removal_answer(volume_id, handlers::unmount_volume(state, volume_id)),
        AdminCall::MarkReadOnly(read_only) => {
            let marked = state
                .store
                .borrow_mut()
                .mark_read_only(volume_id, read_only);
            match marked {
                Ok(now) if now == read_only => Ok(AdminDone::Done),
                Ok(_) => Err(Status::failed_precondition(format!(
                    "volume {volume_id} stays read-only: it refuses writes for another reason \
                     (full, a failed write, an old version, or a failed compaction commit)"
                ))),
                Err(error) => Err(status_of_store(&error)),
            }
        }
        AdminCall::Status => volume_state(state, volume_id).map(AdminDone::Status),
        AdminCall::Files => volume_files(state, volume_id).map(AdminDone::Files),
        AdminCall::Mount {
            volume,
            collection,
            newest_write_ns,
            dat_modified_s,
        } => {
            let clocks = (newest_write_ns, dat_modified_s);
            mount(state, *volume, collection, clocks).map(|()| AdminDone::Done)
        }
        AdminCall::WriteRecord { record } => write_record(state, volume_id, &record)
            .await
            .map(|()| AdminDone::Done),
        AdminCall::VacuumCheck => compaction::check(state, volume_id)
            .map(|check| AdminDone::Garbage(check.garbage_ratio))
            .map_err(|error| status_of_store(&error)),
        AdminCall::VacuumStart => compaction_answer(compaction::start(state, volume_id).await),
        AdminCall::VacuumStatus => {
            compaction_answer(compaction::status(state, volume_id).map_err(AdminRefusal::from))
        }
        AdminCall::VacuumCommit => compaction_answer(compaction::commit(state, volume_id).await),
        AdminCall::VacuumCleanup => compaction_answer(compaction::cleanup(state, volume_id)),
    }
}

fn compaction_answer(answer: Result<CompactionStatus, AdminRefusal>) -> AdminAnswer {
    answer
        .map(AdminDone::Compaction)
        .map_err(|refusal| match refusal {
            AdminRefusal::Busy { .. } | AdminRefusal::NotReady { .. } => {
                Status::failed_precondition(refusal.to_string())
            }
            AdminRefusal::NoSpace(text) => Status::resource_exhausted(text),
            AdminRefusal::Failed(text) => Status::internal(text),
            AdminRefusal::Store(error) => status_of_store(&error),
        })
}

fn volume_files(state: &CoreState, volume_id: u32) -> Result<VolumeFiles, Status> {
    let store = state.store.borrow();
    let (volume, collection) = store
        .files_of(volume_id)
        .map_err(|error| status_of_store(&error))?;
    let core = volume.core();
    Ok(VolumeFiles {
        paths: volume.paths().clone(),
        collection: collection.to_string(),
        dat_bytes: core.dat_bytes(),
        idx_bytes: core.idx_bytes(),
        file_count: core.stats().file_count,
        compaction_revision: core.config().superblock.compaction_revision,
        version: core.version() as u32,
        last_append_at_ns: core.last_append_at_ns(),
        first_record_offset: core.config().superblock.block_bytes(),
        replication: core.config().superblock.placement.to_string(),
        bytes_offset: core.config().offset_width as u32,
        read_only: core.read_only().is_some(),
    })
}

fn mount(
    state: &CoreState,
    volume: FileVolume,
    collection: String,
    (newest_write_ns, dat_modified_s): (u64, u64),
) -> Result<(), Status> {
    let volume_id = volume.id();
    let superblock = volume.core().config().superblock;
    let settings = VolumeSettings {
        collection: collection.clone(),
        replication: superblock.placement,
        ttl: superblock.ttl,
    };
    handlers::claim(state, volume_id, &settings)
        .map_err(|(status, message)| status_of_http(status, message))?;
    let mounted =
        state
            .store
            .borrow_mut()
            .mount(volume, collection, newest_write_ns, dat_modified_s);
    mounted.map_err(|error| {
        handlers::unclaim(state, volume_id);
        status_of_store(&error)
    })
}

async fn write_record(state: &CoreState, volume_id: u32, record: &[u8]) -> Result<(), Status> {
    let version = state
        .store
        .borrow()
        .version_of(volume_id)
        .map_err(|error| status_of_store(&error))?;
    let needle = Needle::decode(record, version).map_err(|error| {
        Status::invalid_argument(format!("volume {volume_id}: a copied record: {error}"))
    })?;
    if !needle.data.is_empty() {
        return store::write_needle(&state.store, volume_id, &needle, now_unix_ns())
            .await
            .map_err(|error| status_of_store(&error));
    }
    let cookie = state.store.borrow_mut().live_cookie(volume_id, needle.key);
    let cookie = cookie.map_err(|error| status_of_store(&error))?;
    let Some(cookie) = cookie else {
        return Ok(()); // deleted here already
    };
    let fid = FileId {
        volume_id,
        key: needle.key,
        cookie,
    };
    match store::delete(&state.store, fid, now_unix_ns()).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(error) => Err(status_of_store(&error)),
    }
}

fn volume_state(state: &CoreState, volume_id: u32) -> Result<VolumeState, Status> {
    let report = state
        .store
        .borrow()
        .report_of(volume_id, state.config.port)
        .map_err(|error| status_of_store(&error))?;
    Ok(VolumeState {
        read_only: report.read_only,
        dat_bytes: report.size,
        file_count: report.file_count,
        delete_count: report.delete_count,
    })
}

fn delete(state: &CoreState, volume_id: u32, only_empty: bool) -> AdminAnswer {
    if only_empty {
        let volume = volume_state(state, volume_id)?;
        let live = volume.file_count.saturating_sub(volume.delete_count);
        if live > 0 {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} is not empty: {live} live files"
            )));
        }
    }
    removal_answer(volume_id, handlers::remove_volume(state, volume_id))
}

fn removal_answer(volume_id: u32, removed: Result<(), RemoveError>) -> AdminAnswer {
    match removed {
        Ok(()) => Ok(AdminDone::Done),
        Err(RemoveError::Committing) => Err(Status::unavailable(format!(
            "volume {volume_id} is committing a compaction; retry in a moment"
        ))),
        Err(RemoveError::Store(error)) => Err(status_of_store(&error)),
    }
}

/// The gRPC status for a store failure.
pub fn status_of_store(error: &StoreError) -> Status {
    status_of_http(error.status(), error.to_string())
}

/// The gRPC status for an HTTP status and its message.
pub fn status_of_http(status: u16, message: String) -> Status {
    match status {
        400 => Status::invalid_argument(message),
        404 => Status::not_found(message),
        409 => Status::already_exists(message),
        503 => Status::unavailable(message),
        507 => Status::resource_exhausted(message),
        _ => Status::internal(message),
    }
}
