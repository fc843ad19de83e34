//! The handlers of `volume_server_pb.VolumeServer`.

use std::sync::Arc;

use kelp_engine::format::{FileId, ReplicaPlacement, Ttl, check_collection};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::super::config::Config;
use super::super::limits::GRPC_BATCH_DELETE_FILES_MAX;
use super::super::registry::VolumeSettings;
use super::super::shard;
use super::inbox::{CoreCall, DeleteOutcome, Sender};
use super::seaweed_master::MasterLink;
use super::volume_admin::{AdminCall, AdminDone};
use crate::pb::volume_server_pb::volume_server_server::VolumeServer;
use crate::pb::volume_server_pb::*;

#[derive(Clone)]
pub struct VolumeService {
    pub config: Arc<Config>,
    /// One per core.
    pub cores: Vec<Sender>,
    pub link: Arc<MasterLink>,
}

type GrpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl VolumeServer for VolumeService {
    async fn batch_delete(
        &self,
        request: Request<BatchDeleteRequest>,
    ) -> GrpcResult<BatchDeleteResponse> {
        // The allow-list of HTTP's writes and deletes holds here too. Tokens are HTTP's: a
        // BatchDelete carries none, as in SeaweedFS (whose gRPC is trusted or mutual TLS).
        if let Some(security) = self.config.security.as_deref() {
            let peer = request.remote_addr().map(|address| address.ip());
            security
                .white_list
                .check(peer, "deletes")
                .map_err(Status::permission_denied)?;
        }
        let request = request.into_inner();
        let count = request.file_ids.len();
        if count > GRPC_BATCH_DELETE_FILES_MAX {
            return Err(Status::invalid_argument(format!(
                "{count} file ids in one BatchDelete; at most {GRPC_BATCH_DELETE_FILES_MAX}"
            )));
        }
        // Every delete is queued first, then the answers are awaited: the cores work on them
        // side by side.
        let mut pending = Vec::with_capacity(count);
        for file_id in request.file_ids {
            let answer = self
                .queue_delete(&file_id, !request.skip_cookie_check)
                .await;
            pending.push((file_id, answer));
        }
        let mut results = Vec::with_capacity(count);
        for (file_id, answer) in pending {
            let outcome = match answer {
                Ok(reply) => reply.await.unwrap_or_else(|_| DeleteOutcome {
                    status: 500,
                    error: "the core dropped the delete".into(),
                    size: 0,
                }),
                Err(outcome) => outcome,
            };
            results.push(DeleteResult {
                file_id,
                status: i32::from(outcome.status),
                error: outcome.error,
                size: outcome.size,
                version: kelp_engine::format::needle::Version::V3 as u32,
            });
        }
        Ok(Response::new(BatchDeleteResponse { results }))
    }

    async fn volume_server_status(
        &self,
        _request: Request<VolumeServerStatusRequest>,
    ) -> GrpcResult<VolumeServerStatusResponse> {
        let config = &self.config;
        Ok(Response::new(VolumeServerStatusResponse {
            disk_statuses: vec![disk_status(&config.dir)],
            version: concat!("kelp ", env!("CARGO_PKG_VERSION")).into(),
            data_center: config.data_center.clone(),
            rack: config.rack.clone(),
            state: Some(VolumeServerState::default()),
        }))
    }

    async fn allocate_volume(
        &self,
        request: Request<AllocateVolumeRequest>,
    ) -> GrpcResult<AllocateVolumeResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let request = request.into_inner();
        let settings = allocate_settings(&request)?;
        self.admin(request.volume_id, AdminCall::Allocate(settings))
            .await?;
        self.link.volumes_changed();
        Ok(Response::new(AllocateVolumeResponse {}))
    }

    async fn volume_delete(
        &self,
        request: Request<VolumeDeleteRequest>,
    ) -> GrpcResult<VolumeDeleteResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let request = request.into_inner();
        let call = AdminCall::Delete {
            only_empty: request.only_empty,
        };
        self.admin(request.volume_id, call).await?;
        self.unstage(request.volume_id)?;
        self.link.volumes_changed();
        Ok(Response::new(VolumeDeleteResponse {}))
    }

    async fn volume_mark_readonly(
        &self,
        request: Request<VolumeMarkReadonlyRequest>,
    ) -> GrpcResult<VolumeMarkReadonlyResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let volume_id = request.into_inner().volume_id;
        self.admin(volume_id, AdminCall::MarkReadOnly(true)).await?;
        self.unstage(volume_id)?;
        self.link.volumes_changed();
        Ok(Response::new(VolumeMarkReadonlyResponse {}))
    }

    async fn volume_mark_writable(
        &self,
        request: Request<VolumeMarkWritableRequest>,
    ) -> GrpcResult<VolumeMarkWritableResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let volume_id = request.into_inner().volume_id;
        self.admin(volume_id, AdminCall::MarkReadOnly(false))
            .await?;
        self.unstage(volume_id)?;
        self.link.volumes_changed();
        Ok(Response::new(VolumeMarkWritableResponse {}))
    }

    async fn volume_mount(
        &self,
        request: Request<VolumeMountRequest>,
    ) -> GrpcResult<VolumeMountResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        self.mount(request.into_inner().volume_id).await?;
        Ok(Response::new(VolumeMountResponse {}))
    }

    async fn volume_unmount(
        &self,
        request: Request<VolumeUnmountRequest>,
    ) -> GrpcResult<VolumeUnmountResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        self.unmount(request.into_inner().volume_id).await?;
        Ok(Response::new(VolumeUnmountResponse {}))
    }

    async fn volume_configure(
        &self,
        request: Request<VolumeConfigureRequest>,
    ) -> GrpcResult<VolumeConfigureResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let request = request.into_inner();
        self.configure(request.volume_id, &request.replication)
            .await?;
        Ok(Response::new(VolumeConfigureResponse {
            error: String::new(),
        }))
    }

    async fn volume_status(
        &self,
        request: Request<VolumeStatusRequest>,
    ) -> GrpcResult<VolumeStatusResponse> {
        let volume_id = request.into_inner().volume_id;
        match self.admin(volume_id, AdminCall::Status).await? {
            AdminDone::Status(volume) => Ok(Response::new(VolumeStatusResponse {
                is_read_only: volume.read_only,
                volume_size: volume.dat_bytes,
                file_count: volume.file_count,
                file_deleted_count: volume.delete_count,
            })),
            other => Err(Status::internal(format!("VolumeStatus answered {other:?}"))),
        }
    }

    async fn read_volume_file_status(
        &self,
        request: Request<ReadVolumeFileStatusRequest>,
    ) -> GrpcResult<ReadVolumeFileStatusResponse> {
        let volume_id = request.into_inner().volume_id;
        Ok(Response::new(self.file_status(volume_id).await?))
    }

    type CopyFileStream = super::volume_copy::CopyFileStream;

    async fn copy_file(
        &self,
        request: Request<CopyFileRequest>,
    ) -> GrpcResult<Self::CopyFileStream> {
        let stream = VolumeService::copy_file(self, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    type VolumeCopyStream = super::volume_copy::VolumeCopyStream;

    async fn volume_copy(
        &self,
        request: Request<VolumeCopyRequest>,
    ) -> GrpcResult<Self::VolumeCopyStream> {
        self.check_allowed(&request, "volume administration calls")?;
        let staged = request
            .metadata()
            .get(super::volume_copy::STAGED_COPY_METADATA)
            .is_some_and(|value| value == "true");
        Ok(Response::new(VolumeService::volume_copy(
            self,
            request.into_inner(),
            staged,
        )))
    }

    type VolumeTailSenderStream = super::volume_tail::TailStream;

    async fn volume_tail_sender(
        &self,
        request: Request<VolumeTailSenderRequest>,
    ) -> GrpcResult<Self::VolumeTailSenderStream> {
        Ok(Response::new(self.tail_sender(request.into_inner()).await?))
    }

    async fn volume_tail_receiver(
        &self,
        request: Request<VolumeTailReceiverRequest>,
    ) -> GrpcResult<VolumeTailReceiverResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        self.tail_receiver(request.into_inner()).await?;
        Ok(Response::new(VolumeTailReceiverResponse {}))
    }

    async fn vacuum_volume_check(
        &self,
        request: Request<VacuumVolumeCheckRequest>,
    ) -> GrpcResult<VacuumVolumeCheckResponse> {
        let garbage_ratio = self.vacuum_garbage(request.into_inner().volume_id).await?;
        Ok(Response::new(VacuumVolumeCheckResponse { garbage_ratio }))
    }

    type VacuumVolumeCompactStream = super::volume_vacuum::CompactStream;

    async fn vacuum_volume_compact(
        &self,
        request: Request<VacuumVolumeCompactRequest>,
    ) -> GrpcResult<Self::VacuumVolumeCompactStream> {
        self.check_allowed(&request, "volume administration calls")?;
        let volume_id = request.into_inner().volume_id;
        Ok(Response::new(self.vacuum_compact(volume_id).await?))
    }

    async fn vacuum_volume_commit(
        &self,
        request: Request<VacuumVolumeCommitRequest>,
    ) -> GrpcResult<VacuumVolumeCommitResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let volume_id = request.into_inner().volume_id;
        let (is_read_only, volume_size) = self.vacuum_commit(volume_id).await?;
        self.link.volumes_changed();
        Ok(Response::new(VacuumVolumeCommitResponse {
            is_read_only,
            volume_size,
        }))
    }

    async fn vacuum_volume_cleanup(
        &self,
        request: Request<VacuumVolumeCleanupRequest>,
    ) -> GrpcResult<VacuumVolumeCleanupResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        self.vacuum_cleanup(request.into_inner().volume_id).await?;
        Ok(Response::new(VacuumVolumeCleanupResponse {}))
    }

    async fn read_needle_blob(
        &self,
        request: Request<ReadNeedleBlobRequest>,
    ) -> GrpcResult<ReadNeedleBlobResponse> {
        let request = request.into_inner();
        let needle_blob =
            VolumeService::read_needle_blob(self, request.volume_id, request.offset, request.size)
                .await?;
        Ok(Response::new(ReadNeedleBlobResponse { needle_blob }))
    }

    async fn write_needle_blob(
        &self,
        request: Request<WriteNeedleBlobRequest>,
    ) -> GrpcResult<WriteNeedleBlobResponse> {
        self.check_allowed(&request, "volume administration calls")?;
        let request = request.into_inner();
        VolumeService::write_needle_blob(
            self,
            request.volume_id,
            request.needle_id,
            request.needle_blob,
        )
        .await?;
        Ok(Response::new(WriteNeedleBlobResponse {}))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> GrpcResult<PingResponse> {
        let now = crate::pb::unix_now_ns();
        Ok(Response::new(PingResponse {
            start_time_ns: now,
            remote_time_ns: 0,
            stop_time_ns: now,
        }))
    }
}

impl VolumeService {
    /// The allow-list (`--white-list`, `[guard] white_list`) holds for calls that change
    /// volumes, as for HTTP's writes and deletes.
    fn check_allowed<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        let Some(security) = self.config.security.as_deref() else {
            return Ok(());
        };
        let peer = request.remote_addr().map(|address| address.ip());
        security
            .white_list
            .check(peer, what)
            .map_err(Status::permission_denied)
    }

    /// Puts a staged copy of `volume_id` (if it is one) back in the heartbeats, and removes
    /// its marker on disk so that a restart keeps it (see `staged`).
    pub fn unstage(&self, volume_id: u32) -> Result<(), Status> {
        if !self.link.release(volume_id) {
            return Ok(());
        }
        crate::volume::staged::unmark(&self.config.dir, volume_id).map_err(Status::internal)
    }

    /// Serve `call` on `volume_id` on the core that owns it.
    pub async fn admin(&self, volume_id: u32, call: AdminCall) -> Result<AdminDone, Status> {
        let owner = shard::owner_core(volume_id, self.cores.len());
        let (reply, answer) = oneshot::channel();
        let call = CoreCall::Admin {
            volume_id,
            call,
            reply,
        };
        self.cores[owner]
            .send(call)
            .await
            .map_err(|_| Status::unavailable(format!("core {owner} is stopping")))?;
        answer
            .await
            .map_err(|_| Status::internal(format!("core {owner} dropped the call")))?
    }

    /// Hand the delete of `file_id` to the core that owns its volume (waiting for room in
    /// that core's inbox); the answer to await, or the outcome when it never got there.
    async fn queue_delete(
        &self,
        file_id: &str,
        check_cookie: bool,
    ) -> Result<oneshot::Receiver<DeleteOutcome>, DeleteOutcome> {
        let fid = FileId::parse(file_id).map_err(|error| DeleteOutcome {
            status: 400,
            error: error.to_string(),
            size: 0,
        })?;
        let owner = shard::owner_core(fid.volume_id, self.cores.len());
        let (reply, answer) = oneshot::channel();
        let call = CoreCall::Delete {
            fid,
            check_cookie,
            reply,
        };
        match self.cores[owner].send(call).await {
            Ok(()) => Ok(answer),
            Err(_) => Err(DeleteOutcome {
                status: 503,
                error: format!("core {owner} is stopping"),
                size: 0,
            }),
        }
    }
}

/// The settings AllocateVolume asks for, checked as the HTTP create checks them.
fn allocate_settings(request: &AllocateVolumeRequest) -> Result<VolumeSettings, Status> {
    let volume_id = request.volume_id;
    let bad = |what: &str, error: String| {
        Status::invalid_argument(format!("AllocateVolume {volume_id}: {what}: {error}"))
    };
    let replication = ReplicaPlacement::parse(&request.replication)
        .map_err(|e| bad("replication", e.to_string()))?;
    let ttl = Ttl::parse(&request.ttl).map_err(|e| bad("ttl", e.to_string()))?;
    check_collection(&request.collection).map_err(|e| bad("collection", e.to_string()))?;
    if !matches!(request.disk_type.as_str(), "" | "hdd") {
        let error = format!(
            "{:?}: this server holds hdd volumes only",
            request.disk_type
        );
        return Err(bad("disk type", error));
    }
    Ok(VolumeSettings {
        collection: request.collection.clone(),
        replication,
        ttl,
    })
}

/// Size and free space of the file system holding `dir` (`statvfs`).
fn disk_status(dir: &std::path::Path) -> DiskStatus {
    let mut status = DiskStatus {
        dir: dir.display().to_string(),
        disk_type: "hdd".into(),
        ..DiskStatus::default()
    };
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return status;
    };
    // SAFETY: statvfs(3) with a NUL-terminated path and a zeroed struct it fills.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return status;
    }
    let block_bytes = stats.f_frsize as u64;
    status.all = stats.f_blocks as u64 * block_bytes;
    status.free = stats.f_bavail as u64 * block_bytes;
    status.used = status
        .all
        .saturating_sub(stats.f_bfree as u64 * block_bytes);
    if status.all > 0 {
        status.percent_free = (status.free as f64 * 100.0 / status.all as f64) as f32;
        status.percent_used = (status.used as f64 * 100.0 / status.all as f64) as f32;
    }
    status
}
