//! Vacuum over gRPC, as SeaweedFS's master drives it (`weed shell volume.vacuum`, or its own
//! schedule): `VacuumVolumeCheck` (the garbage ratio), `VacuumVolumeCompact` (a stream that
//! ends when the compaction is ready to commit), `VacuumVolumeCommit`, `VacuumVolumeCleanup`.
//! Each maps onto the online compaction of the core that owns the volume (`compaction`).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::service::VolumeService;
use super::volume_admin::{AdminCall, AdminDone};
use crate::pb::volume_server_pb::*;
use crate::wire::{CompactionOutcome, CompactionPhase, CompactionStatus};

/// A compaction's progress is looked at this often while `VacuumVolumeCompact` waits.
pub const VACUUM_POLL_MS: u64 = 50;
/// Progress reports queued for a slow caller (older ones are dropped, not waited for).
pub const VACUUM_REPORTS_QUEUED_MAX: usize = 4;

pub type CompactStream = ReceiverStream<Result<VacuumVolumeCompactResponse, Status>>;

impl VolumeService {
    pub async fn vacuum_garbage(&self, volume_id: u32) -> Result<f64, Status> {
        match self.admin(volume_id, AdminCall::VacuumCheck).await? {
            AdminDone::Garbage(ratio) => Ok(ratio),
            other => Err(Status::internal(format!("VacuumCheck answered {other:?}"))),
        }
    }

    async fn compaction(
        &self,
        volume_id: u32,
        call: AdminCall,
    ) -> Result<CompactionStatus, Status> {
        match self.admin(volume_id, call).await? {
            AdminDone::Compaction(status) => Ok(status),
            other => Err(Status::internal(format!(
                "a vacuum call answered {other:?}"
            ))),
        }
    }

    /// Start compacting `volume_id`; the stream reports the bytes copied and ends when the
    /// compaction is ready to commit (an error when it failed or was cancelled).
    pub async fn vacuum_compact(&self, volume_id: u32) -> Result<CompactStream, Status> {
        self.compaction(volume_id, AdminCall::VacuumStart).await?;
        let (sender, receiver) = mpsc::channel(VACUUM_REPORTS_QUEUED_MAX);
        let service = self.clone();
        tokio::spawn(async move {
            let mut reported = 0;
            loop {
                let status = match service.compaction(volume_id, AdminCall::VacuumStatus).await {
                    Ok(status) => status,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                if status.bytes_copied != reported {
                    reported = status.bytes_copied;
                    let report = VacuumVolumeCompactResponse {
                        processed_bytes: i64::try_from(reported).unwrap_or(i64::MAX),
                        load_avg_1m: 0.0,
                    };
                    if sender.try_send(Ok(report)).is_err() && sender.is_closed() {
                        return; // the caller went away; the compaction goes on for a commit
                    }
                }
                match status.phase {
                    CompactionPhase::Ready | CompactionPhase::Committing => return,
                    CompactionPhase::Copying => {}
                    CompactionPhase::Idle => {
                        let _ = sender.send(Err(ended_early(volume_id, &status.last))).await;
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(VACUUM_POLL_MS)).await;
            }
        });
        Ok(ReceiverStream::new(receiver))
    }

    /// Commit the ready compaction of `volume_id`: (read-only, the new `.dat`'s bytes).
    pub async fn vacuum_commit(&self, volume_id: u32) -> Result<(bool, u64), Status> {
        self.compaction(volume_id, AdminCall::VacuumCommit).await?;
        match self.admin(volume_id, AdminCall::Status).await? {
            AdminDone::Status(volume) => Ok((volume.read_only, volume.dat_bytes)),
            other => Err(Status::internal(format!("VolumeStatus answered {other:?}"))),
        }
    }

    pub async fn vacuum_cleanup(&self, volume_id: u32) -> Result<(), Status> {
        self.compaction(volume_id, AdminCall::VacuumCleanup).await?;
        Ok(())
    }
}

/// Why a compaction stopped before it was ready.
fn ended_early(volume_id: u32, last: &Option<CompactionOutcome>) -> Status {
    let why = match last {
        Some(CompactionOutcome::Failed(reason)) => reason.clone(),
        Some(CompactionOutcome::Cancelled) => "it was cancelled".to_string(),
        Some(CompactionOutcome::Committed(_)) => "it was committed already".to_string(),
        None => "it stopped".to_string(),
    };
    Status::aborted(format!("volume {volume_id}: compaction not ready: {why}"))
}
