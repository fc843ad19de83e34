//! The handlers of `volume_server_pb.VolumeServer`.

use std::sync::Arc;

use kelp_engine::format::FileId;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::super::config::Config;
use super::super::limits::GRPC_BATCH_DELETE_FILES_MAX;
use super::super::shard;
use super::inbox::{CoreCall, DeleteOutcome, Sender};
use crate::pb::volume_server_pb::volume_server_server::VolumeServer;
use crate::pb::volume_server_pb::*;

pub struct VolumeService {
    pub config: Arc<Config>,
    /// One per core.
    pub cores: Vec<Sender>,
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
