//! A volume's tail: the records appended after a moment, as `volume.move` catches up a copy
//! with what was written while it was made. `VolumeTailSender` streams them (header, then the
//! rest of the record in chunks) until none came for the idle timeout; `VolumeTailReceiver`
//! pulls another server's sender and appends each record here.
//!
//! The sender reads the `.dat` on a blocking thread, from the first record on the first
//! round and from where the last round stopped after that (records are only appended).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kelp_engine::format::needle::{self, HEADER_BYTES, Needle, NeedleHeader, Version};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::service::VolumeService;
use super::volume_admin::AdminCall;
use super::volume_copy::{
    COPY_CHUNK_BYTES_MAX, COPY_MESSAGES_QUEUED_MAX, peer_client, peer_failure,
};
use crate::pb::volume_server_pb::*;

/// The sender looks for new records this often.
pub const TAIL_POLL_MS: u64 = 500;
/// Bytes of records one round reads from the `.dat` at most (more wait for the next round).
pub const TAIL_ROUND_BYTES_MAX: u64 = 64 << 20;
/// A record the receiver puts together may be at most this large.
pub const TAIL_RECORD_BYTES_MAX: usize = 1 << 30;

pub type TailStream = ReceiverStream<Result<VolumeTailSenderResponse, Status>>;

/// A record read from the `.dat`: its bytes, and its append time.
struct TailRecord {
    bytes: Vec<u8>,
    append_at_ns: u64,
}

impl VolumeService {
    pub async fn tail_sender(
        &self,
        request: VolumeTailSenderRequest,
    ) -> Result<TailStream, Status> {
        // Fails at once for a volume not here.
        self.volume_files(request.volume_id).await?;
        let (sender, receiver) = mpsc::channel(COPY_MESSAGES_QUEUED_MAX);
        let service = self.clone();
        tokio::spawn(async move {
            if let Err(status) = service.send_tail(&request, &sender).await {
                let _ = sender.send(Err(status)).await; // the receiver may be gone
            }
        });
        Ok(ReceiverStream::new(receiver))
    }

    /// Rounds of "send what is new" until nothing came for the idle timeout (0: forever,
    /// until the receiver goes away).
    async fn send_tail(
        &self,
        request: &VolumeTailSenderRequest,
        sender: &mpsc::Sender<Result<VolumeTailSenderResponse, Status>>,
    ) -> Result<(), Status> {
        let volume_id = request.volume_id;
        let idle = Duration::from_secs(u64::from(request.idle_timeout_seconds));
        let mut scanned_to = None;
        let mut last_record_at = Instant::now();
        loop {
            let files = self.volume_files(volume_id).await?;
            let start = scanned_to.unwrap_or(files.first_record_offset);
            let end = files.dat_bytes.min(start + TAIL_ROUND_BYTES_MAX);
            let version = Version::from_byte(files.version as u8).ok_or_else(|| {
                Status::internal(format!("volume {volume_id}: version {}", files.version))
            })?;
            let dat = files.paths.dat.clone();
            let since_ns = request.since_ns;
            let read = tokio::task::spawn_blocking(move || {
                read_records(&dat, version, start, end, since_ns)
            })
            .await
            .map_err(|e| Status::internal(format!("tail of volume {volume_id}: {e}")))?;
            let (records, stopped_at) = read.map_err(Status::internal)?;
            scanned_to = Some(stopped_at);
            if !records.is_empty() {
                last_record_at = Instant::now();
            }
            for record in records {
                if !send_record(sender, &record.bytes, files.version).await {
                    return Ok(()); // the receiver went away
                }
                tracing::trace!("tail of volume {volume_id}: sent {}", record.append_at_ns);
            }
            let caught_up = stopped_at >= files.dat_bytes;
            if caught_up && !idle.is_zero() && last_record_at.elapsed() >= idle {
                return Ok(());
            }
            if caught_up {
                tokio::time::sleep(Duration::from_millis(TAIL_POLL_MS)).await;
            }
        }
    }

    /// Pull `request.source_volume_server`'s tail of the volume and append every record here.
    pub async fn tail_receiver(&self, request: VolumeTailReceiverRequest) -> Result<(), Status> {
        let volume_id = request.volume_id;
        self.volume_files(volume_id).await?;
        let source = request.source_volume_server.as_str();
        let mut client = peer_client(source).await?;
        let ask = VolumeTailSenderRequest {
            volume_id,
            since_ns: request.since_ns,
            idle_timeout_seconds: request.idle_timeout_seconds,
        };
        let mut stream = client
            .volume_tail_sender(ask)
            .await
            .map_err(|e| peer_failure(source, "VolumeTailSender", &e))?
            .into_inner();
        let mut record: Vec<u8> = Vec::new();
        while let Some(message) = stream
            .message()
            .await
            .map_err(|e| peer_failure(source, "VolumeTailSender", &e))?
        {
            if record.is_empty() {
                if message.needle_header.is_empty() {
                    continue; // "nothing new"
                }
                record.extend_from_slice(&message.needle_header);
            }
            record.extend_from_slice(&message.needle_body);
            if record.len() > TAIL_RECORD_BYTES_MAX {
                return Err(Status::invalid_argument(format!(
                    "a record of volume {volume_id}'s tail from {source} passes \
                     {TAIL_RECORD_BYTES_MAX} bytes"
                )));
            }
            if message.is_last_chunk {
                let call = AdminCall::WriteRecord {
                    record: std::mem::take(&mut record),
                };
                self.admin(volume_id, call).await?;
            }
        }
        Ok(())
    }
}

/// Send one record: its header, then the rest in chunks; false when the receiver is gone.
async fn send_record(
    sender: &mpsc::Sender<Result<VolumeTailSenderResponse, Status>>,
    record: &[u8],
    version: u32,
) -> bool {
    let (header, body) = record.split_at(HEADER_BYTES);
    let mut chunks = body.chunks(COPY_CHUNK_BYTES_MAX).peekable();
    if chunks.peek().is_none() {
        let message = VolumeTailSenderResponse {
            needle_header: header.to_vec(),
            needle_body: Vec::new(),
            is_last_chunk: true,
            version,
        };
        return sender.send(Ok(message)).await.is_ok();
    }
    while let Some(chunk) = chunks.next() {
        let message = VolumeTailSenderResponse {
            needle_header: header.to_vec(),
            needle_body: chunk.to_vec(),
            is_last_chunk: chunks.peek().is_none(),
            version,
        };
        if sender.send(Ok(message)).await.is_err() {
            return false;
        }
    }
    true
}

/// The records of `dat` in `[start, end)` appended after `since_ns`, and the offset where
/// the reading stopped (the start of a record not read whole, or `end`).
fn read_records(
    dat: &Path,
    version: Version,
    start: u64,
    end: u64,
    since_ns: u64,
) -> Result<(Vec<TailRecord>, u64), String> {
    let file = std::fs::File::open(dat).map_err(|e| format!("open {}: {e}", dat.display()))?;
    let mut records = Vec::new();
    let mut offset = start;
    let mut header = [0u8; HEADER_BYTES];
    while offset + HEADER_BYTES as u64 <= end {
        file.read_exact_at(&mut header, offset)
            .map_err(|e| format!("read {} at {offset}: {e}", dat.display()))?;
        let parsed = NeedleHeader::decode(&header)
            .map_err(|e| format!("{} at {offset}: {e}", dat.display()))?;
        let record_bytes = needle::record_bytes(parsed.size, version);
        if offset + record_bytes > end {
            break;
        }
        let mut bytes = vec![0u8; record_bytes as usize];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| format!("read {} at {offset}: {e}", dat.display()))?;
        let needle = Needle::decode_skip_crc(&bytes, version)
            .map_err(|e| format!("{} at {offset}: {e}", dat.display()))?;
        let append_at_ns = needle.append_at_ns;
        if append_at_ns > since_ns {
            records.push(TailRecord {
                bytes,
                append_at_ns,
            });
        }
        offset += record_bytes;
    }
    Ok((records, offset))
}
