//! Copying whole volumes between servers, as `weed shell volume.move` and
//! `volume.fix.replication` do: as the source, `ReadVolumeFileStatus` (the files' lengths)
//! and `CopyFile` (a file's bytes up to a length); as the target, `VolumeCopy`, which pulls
//! the `.dat`, `.idx` and `.vif` from the source with those two calls, then opens the volume
//! and hands it to the core that owns it.
//!
//! The files are read and written on the gRPC thread (tokio's file I/O runs on its blocking
//! threads); a core only answers where a volume's files are and takes the opened volume.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use kelp_engine::format::check_collection;
use kelp_engine::volume::{StdStorage, Storage, VolumePaths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use super::service::VolumeService;
use super::volume_admin::{AdminCall, AdminDone, VolumeFiles};
use crate::pb::grpc_address;
use crate::pb::volume_server_pb::volume_server_client::VolumeServerClient;
use crate::pb::volume_server_pb::*;
use crate::volume::staged as staged_marker;

/// Bytes of a file sent in one CopyFile message (SeaweedFS sends 2 MiB).
pub const COPY_CHUNK_BYTES_MAX: usize = 2 << 20;
/// CopyFile messages (and VolumeCopy progress reports) queued for a slow receiver.
pub const COPY_MESSAGES_QUEUED_MAX: usize = 4;
/// A `.vif` is small: at most this much of it is copied.
pub const VIF_BYTES_MAX: u64 = 1 << 20;
/// VolumeCopy reports its progress after each this many bytes of `.dat`.
pub const COPY_PROGRESS_BYTES: u64 = 128 << 20;
/// Connecting to another volume server's gRPC.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// A message of another volume server's gRPC may be this large (a record of a big file).
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// VolumeCopy request metadata (a Kelp extension SeaweedFS never sends): with "true", the
/// copy is staged: left out of the heartbeats until it is marked read-only or writable (a
/// move's target is told to the master only once its tail caught up with the source).
pub const STAGED_COPY_METADATA: &str = "kelp-staged-copy";
/// CopyFile's compaction revision meaning "any".
const ANY_REVISION: u32 = u32::MAX;

pub type CopyFileStream = ReceiverStream<Result<CopyFileResponse, Status>>;
pub type VolumeCopyStream = ReceiverStream<Result<VolumeCopyResponse, Status>>;

/// A client of the volume server SeaweedFS spells `server` (`host:port[.grpcPort]`).
pub async fn peer_client(server: &str) -> Result<VolumeServerClient<Channel>, Status> {
    let address = grpc_address(server).map_err(Status::invalid_argument)?;
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::invalid_argument(format!("volume server {server}: {e}")))?
        .connect_timeout(std::time::Duration::from_millis(PEER_CONNECT_TIMEOUT_MS))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect to volume server {server}: {e}")))?;
    Ok(VolumeServerClient::new(channel)
        .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX))
}

impl VolumeService {
    /// Where `volume_id`'s files are, asked of its core.
    pub async fn volume_files(&self, volume_id: u32) -> Result<VolumeFiles, Status> {
        match self.admin(volume_id, AdminCall::Files).await? {
            AdminDone::Files(files) => Ok(files),
            other => Err(Status::internal(format!("Files answered {other:?}"))),
        }
    }

    pub async fn file_status(
        &self,
        volume_id: u32,
    ) -> Result<ReadVolumeFileStatusResponse, Status> {
        let files = self.volume_files(volume_id).await?;
        let dat_s = modified_ns(&files.paths.dat).await / 1_000_000_000;
        let idx_s = modified_ns(&files.paths.idx).await / 1_000_000_000;
        Ok(ReadVolumeFileStatusResponse {
            volume_id,
            idx_file_timestamp_seconds: idx_s,
            idx_file_size: files.idx_bytes,
            dat_file_timestamp_seconds: dat_s,
            dat_file_size: files.dat_bytes,
            file_count: files.file_count,
            compaction_revision: u32::from(files.compaction_revision),
            collection: files.collection.clone(),
            disk_type: String::new(),
            volume_info: Some(VolumeInfo {
                version: files.version,
                replication: files.replication.clone(),
                bytes_offset: files.bytes_offset,
                read_only: files.read_only,
            }),
            version: files.version,
        })
    }

    /// Stream one file of a volume up to `stop_offset` bytes.
    pub async fn copy_file(&self, request: CopyFileRequest) -> Result<CopyFileStream, Status> {
        let volume_id = request.volume_id;
        if request.is_ec_volume {
            return Err(Status::unimplemented(
                "this server holds no erasure-coded volumes",
            ));
        }
        let files = self.volume_files(volume_id).await?;
        let revision = u32::from(files.compaction_revision);
        if request.compaction_revision != ANY_REVISION && request.compaction_revision != revision {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} is compacted: revision {revision}, asked for {}",
                request.compaction_revision
            )));
        }
        let path = match request.ext.as_str() {
            ".dat" => files.paths.dat.clone(),
            ".idx" => files.paths.idx.clone(),
            ".vif" => files.paths.vif.clone(),
            other => {
                return Err(Status::invalid_argument(format!(
                    "volume {volume_id}: no file {other:?} (.dat, .idx or .vif)"
                )));
            }
        };
        let (sender, receiver) = mpsc::channel(COPY_MESSAGES_QUEUED_MAX);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if request.ignore_source_file_not_found || request.stop_offset == 0 {
                    return Ok(ReceiverStream::new(receiver)); // nothing to send
                }
                return Err(Status::not_found(format!("{}: {e}", path.display())));
            }
            Err(e) => return Err(Status::internal(format!("open {}: {e}", path.display()))),
        };
        let modified = modified_ns(&path).await.max(1) as i64;
        tokio::spawn(send_file(file, path, request.stop_offset, modified, sender));
        Ok(ReceiverStream::new(receiver))
    }
}

/// Send `file`'s first `stop_offset` bytes in chunks, its modification time in the first.
async fn send_file(
    mut file: tokio::fs::File,
    path: PathBuf,
    stop_offset: u64,
    modified_ts_ns: i64,
    sender: mpsc::Sender<Result<CopyFileResponse, Status>>,
) {
    let mut left = stop_offset;
    let mut modified_ts_ns = modified_ts_ns;
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES_MAX];
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = match file.read(&mut buffer[..want]).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                let error = Status::internal(format!("read {}: {e}", path.display()));
                let _ = sender.send(Err(error)).await;
                return;
            }
        };
        let message = CopyFileResponse {
            file_content: buffer[..read].to_vec(),
            modified_ts_ns,
        };
        if sender.send(Ok(message)).await.is_err() {
            return; // the receiver went away
        }
        modified_ts_ns = 0;
        left -= read as u64;
    }
    if modified_ts_ns != 0 {
        let message = CopyFileResponse {
            file_content: Vec::new(),
            modified_ts_ns,
        };
        let _ = sender.send(Ok(message)).await;
    }
}

/// `path`'s modification time in unix ns (0 when unknown).
async fn modified_ns(path: &Path) -> u64 {
    let Ok(metadata) = tokio::fs::metadata(path).await else {
        return 0;
    };
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos() as u64)
}

impl VolumeService {
    /// Copy `request.volume_id` here from `request.source_data_node`; progress reports, then
    /// the append time of its newest record. A `staged` copy is left out of the heartbeats
    /// (see `STAGED_COPY_METADATA`).
    pub fn volume_copy(&self, request: VolumeCopyRequest, staged: bool) -> VolumeCopyStream {
        let (sender, receiver) = mpsc::channel(COPY_MESSAGES_QUEUED_MAX);
        let service = self.clone();
        tokio::spawn(async move {
            let volume_id = request.volume_id;
            if staged {
                service.link.stage(volume_id);
            }
            let copied = service.copy_volume_here(&request, &sender, staged).await;
            let copied = match copied {
                Err(status) if staged => match service.unstage(volume_id) {
                    Ok(()) => Err(status),
                    Err(unmarked) => Err(Status::internal(format!(
                        "{}; then: {}",
                        status.message(),
                        unmarked.message()
                    ))),
                },
                copied => copied,
            };
            let answer = match copied {
                Ok(last_append_at_ns) => Ok(VolumeCopyResponse {
                    last_append_at_ns,
                    processed_bytes: 0,
                }),
                Err(status) => {
                    tracing::warn!(
                        "VolumeCopy {volume_id} from {}: {}",
                        request.source_data_node,
                        status.message()
                    );
                    Err(status)
                }
            };
            let _ = sender.send(answer).await;
        });
        ReceiverStream::new(receiver)
    }

    async fn copy_volume_here(
        &self,
        request: &VolumeCopyRequest,
        progress: &mpsc::Sender<Result<VolumeCopyResponse, Status>>,
        staged: bool,
    ) -> Result<u64, Status> {
        let volume_id = request.volume_id;
        let source = request.source_data_node.as_str();
        let mut client = peer_client(source).await?;
        let status = client
            .read_volume_file_status(ReadVolumeFileStatusRequest { volume_id })
            .await
            .map_err(|e| peer_failure(source, "ReadVolumeFileStatus", &e))?
            .into_inner();
        check_collection(&status.collection).map_err(|e| {
            Status::invalid_argument(format!("volume {volume_id} on {source}: {e}"))
        })?;
        self.check_room_for_copy(&status, source)?;
        if self.admin(volume_id, AdminCall::Status).await.is_ok() {
            let delete = AdminCall::Delete { only_empty: false };
            self.admin(volume_id, delete).await?;
            self.link.volumes_changed();
        }
        let paths = VolumePaths::new(&self.config.dir, &status.collection, volume_id);
        let marked = match staged {
            true => staged_marker::mark(&paths),
            false => staged_marker::unmark(&self.config.dir, volume_id),
        };
        marked.map_err(Status::internal)?;
        let pace = u64::try_from(request.io_byte_per_second).unwrap_or(0);
        let copied = self.pull_files(&mut client, source, &status, &paths, (progress, pace));
        if let Err(error) = copied.await {
            remove_copies(&paths).await;
            return Err(error);
        }
        let collection = status.collection.clone();
        let mounted = self.open_and_mount(volume_id, collection, None).await;
        if mounted.is_err() {
            remove_volume_files(&paths).await;
        }
        let last_append_at_ns = mounted?;
        self.link.volumes_changed();
        Ok(last_append_at_ns)
    }

    /// Refuses a copy this disk has no room for (before anything is written or replaced):
    /// the source's `.dat` and `.idx` must fit in the free space less the reserve
    /// (`--min-free-space-mb`), as SeaweedFS checks before a VolumeCopy.
    fn check_room_for_copy(
        &self,
        status: &ReadVolumeFileStatusResponse,
        source: &str,
    ) -> Result<(), Status> {
        let dir = &self.config.dir;
        let free_bytes = StdStorage.free_bytes(dir).map_err(|e| {
            Status::internal(format!("free space of {}: statvfs: {e}", dir.display()))
        })?;
        let needed_bytes = status.dat_file_size.saturating_add(status.idx_file_size);
        let reserve_bytes = self.config.min_free_space_bytes;
        if copy_fits(needed_bytes, free_bytes, reserve_bytes) {
            return Ok(());
        }
        Err(Status::resource_exhausted(format!(
            "no room for volume {} from {source}: it needs {needed_bytes} bytes ({} of .dat, \
             {} of .idx); the disk of {} has {free_bytes} free and keeps {reserve_bytes} free \
             (--min-free-space-mb)",
            status.volume_id,
            status.dat_file_size,
            status.idx_file_size,
            dir.display()
        )))
    }

    /// The source's `.dat`, `.idx` and `.vif` into `<file>.copying` next to where they go,
    /// checked against the lengths the source gave, then renamed into place (`.dat` last:
    /// a volume is a `.dat`, so a copy cut short is never taken for one). `.dat` progress
    /// goes to the sender given, at most at the bytes per second given (0: unpaced).
    async fn pull_files(
        &self,
        client: &mut VolumeServerClient<Channel>,
        source: &str,
        status: &ReadVolumeFileStatusResponse,
        paths: &VolumePaths,
        (progress, pace): (&mpsc::Sender<Result<VolumeCopyResponse, Status>>, u64),
    ) -> Result<(), Status> {
        let files = [
            (".vif", &paths.vif, VIF_BYTES_MAX, None),
            (
                ".idx",
                &paths.idx,
                status.idx_file_size,
                Some(status.idx_file_size),
            ),
            (
                ".dat",
                &paths.dat,
                status.dat_file_size,
                Some(status.dat_file_size),
            ),
        ];
        for (ext, path, stop_offset, expected) in &files {
            let request = copy_file_request(status, ext, *stop_offset, expected.is_some());
            let temp = copying_path(path);
            let reports = (*ext == ".dat").then_some((progress, pace));
            let required = expected.is_some();
            let written = receive_file(client, source, request, &temp, required, reports).await?;
            if let Some(expected) = expected
                && written != *expected
            {
                return Err(Status::data_loss(format!(
                    "copied {written} bytes of {}'s {ext} of volume {}, it has {expected}",
                    source, status.volume_id
                )));
            }
        }
        for (_, path, _, expected) in &files {
            let temp = copying_path(path);
            let optional_missing = expected.is_none() && tokio::fs::metadata(&temp).await.is_err();
            if optional_missing {
                continue;
            }
            tokio::fs::rename(&temp, path).await.map_err(|e| {
                Status::internal(format!(
                    "rename {} to {}: {e}",
                    temp.display(),
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// Receive one CopyFile stream into `path` (created or truncated, synced; when not
/// `required`, made only if the source sends something); the bytes written. A `.dat`'s
/// progress goes to `progress`, and its bytes come at most at its pace (bytes per second,
/// 0: unpaced; VolumeCopy's `io_byte_per_second`).
async fn receive_file(
    client: &mut VolumeServerClient<Channel>,
    source: &str,
    request: CopyFileRequest,
    path: &Path,
    required: bool,
    progress: Option<(&mpsc::Sender<Result<VolumeCopyResponse, Status>>, u64)>,
) -> Result<u64, Status> {
    let started = tokio::time::Instant::now();
    let ext = request.ext.clone();
    let mut stream = client
        .copy_file(request)
        .await
        .map_err(|e| peer_failure(source, &format!("CopyFile {ext}"), &e))?
        .into_inner();
    let io_error =
        |op: &str, e: std::io::Error| Status::internal(format!("{op} {}: {e}", path.display()));
    let mut file = None;
    if required {
        let created = tokio::fs::File::create(path).await;
        file = Some(created.map_err(|e| io_error("create", e))?);
    }
    let mut written = 0u64;
    let mut next_report = COPY_PROGRESS_BYTES;
    while let Some(message) = stream
        .message()
        .await
        .map_err(|e| peer_failure(source, &format!("CopyFile {ext}"), &e))?
    {
        if file.is_none() {
            file = Some(
                tokio::fs::File::create(path)
                    .await
                    .map_err(|e| io_error("create", e))?,
            );
        }
        let out = file.as_mut().expect("created above");
        out.write_all(&message.file_content)
            .await
            .map_err(|e| io_error("write", e))?;
        written += message.file_content.len() as u64;
        if let Some((_, pace)) = progress
            && pace > 0
        {
            let due = std::time::Duration::from_secs_f64(written as f64 / pace as f64);
            tokio::time::sleep_until(started + due).await;
        }
        if let Some((progress, _)) = progress
            && written >= next_report
        {
            next_report = written + COPY_PROGRESS_BYTES;
            let report = VolumeCopyResponse {
                last_append_at_ns: 0,
                processed_bytes: written as i64,
            };
            let _ = progress.send(Ok(report)).await; // only a report: the asker may be gone
        }
    }
    if let Some(mut out) = file {
        out.flush().await.map_err(|e| io_error("write", e))?;
        out.sync_all().await.map_err(|e| io_error("fsync", e))?;
    }
    Ok(written)
}

/// Do `needed_bytes` fit in `free_bytes` with `reserve_bytes` left over?
fn copy_fits(needed_bytes: u64, free_bytes: u64, reserve_bytes: u64) -> bool {
    needed_bytes <= free_bytes.saturating_sub(reserve_bytes)
}

fn copying_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".copying");
    PathBuf::from(name)
}

/// Removes what a copy cut short left.
async fn remove_copies(paths: &VolumePaths) {
    for path in [&paths.dat, &paths.idx, &paths.vif] {
        let _ = tokio::fs::remove_file(copying_path(path)).await; // absent is fine
    }
}

/// Removes a copied volume that could not be served.
async fn remove_volume_files(paths: &VolumePaths) {
    for path in [&paths.dat, &paths.idx, &paths.vif] {
        let _ = tokio::fs::remove_file(path).await; // absent is fine
    }
}

/// The `CopyFile` call for the file `ext` of the volume `status` describes, up to
/// `stop_offset`; a file that is not `required` may be missing on the source.
pub fn copy_file_request(
    status: &ReadVolumeFileStatusResponse,
    ext: &str,
    stop_offset: u64,
    required: bool,
) -> CopyFileRequest {
    CopyFileRequest {
        volume_id: status.volume_id,
        ext: ext.to_string(),
        compaction_revision: status.compaction_revision,
        stop_offset,
        collection: status.collection.clone(),
        is_ec_volume: false,
        ignore_source_file_not_found: !required,
    }
}

/// A failed call to another volume server, naming it and the call.
pub fn peer_failure(server: &str, call: &str, status: &Status) -> Status {
    Status::new(
        status.code(),
        format!("{call} on {server}: {}", status.message()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a copy fits only with the reserve left free, counting to the byte.
    #[test]
    fn a_copy_fits_above_the_reserve() {
        assert!(copy_fits(100, 1_100, 1_000));
        assert!(!copy_fits(101, 1_100, 1_000));
        assert!(!copy_fits(1, 500, 1_000), "less free than the reserve");
        assert!(copy_fits(0, 0, 0));
    }
}
