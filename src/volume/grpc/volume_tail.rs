//! A volume's tail: the records appended after a moment, as `volume.move` catches up a copy
//! with what was written while it was made. `VolumeTailSender` streams them (header, then the
//! rest of the record in chunks) until none came for the idle timeout; `VolumeTailReceiver`
//! pulls another server's sender and appends each record here.
//!
//! The sender reads the `.dat` on a blocking thread, from where the records after the asked
//! time start on the first round (`TailSearch`) and from where the last round stopped after
//! that (records are only appended).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kelp_engine::format::idx::{IdxEntry, OffsetWidth};
use kelp_engine::format::needle::{
    self, CHECKSUM_BYTES, HEADER_BYTES, Needle, NeedleHeader, TIMESTAMP_BYTES, Version,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::service::VolumeService;
use super::volume_admin::{AdminCall, VolumeFiles};
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
        let search = TailSearch::of(&self.volume_files(volume_id).await?)?;
        let since_ns = request.since_ns;
        let mut scanned_to = tokio::task::spawn_blocking(move || search.start_after(since_ns))
            .await
            .map_err(|e| Status::internal(format!("tail of volume {volume_id}: {e}")))?
            .map_err(Status::internal)?;
        let mut last_record_at = Instant::now();
        loop {
            let files = self.volume_files(volume_id).await?;
            let start = scanned_to;
            let end = files.dat_bytes.min(start + TAIL_ROUND_BYTES_MAX);
            let version = Version::from_byte(files.version as u8).ok_or_else(|| {
                Status::internal(format!("volume {volume_id}: version {}", files.version))
            })?;
            let dat = files.paths.dat.clone();
            let read = tokio::task::spawn_blocking(move || {
                read_records(&dat, version, start, end, since_ns)
            })
            .await
            .map_err(|e| Status::internal(format!("tail of volume {volume_id}: {e}")))?;
            let (records, stopped_at) = read.map_err(Status::internal)?;
            scanned_to = stopped_at;
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

/// What the search for where a tail starts reads: a volume's files as they were when the
/// tail was asked for.
struct TailSearch {
    dat: PathBuf,
    idx: PathBuf,
    idx_bytes: u64,
    width: OffsetWidth,
    version: Version,
    first_record_offset: u64,
    /// Never compacted: append times rise with the offset in the `.dat` (a compaction
    /// writes the records it keeps in key order).
    append_ordered: bool,
}

impl TailSearch {
    fn of(files: &VolumeFiles) -> Result<TailSearch, Status> {
        let volume_id = files.paths.dat.display();
        let width = OffsetWidth::from_bytes_offset(files.bytes_offset).ok_or_else(|| {
            Status::internal(format!("{volume_id}: offset width {}", files.bytes_offset))
        })?;
        let version = Version::from_byte(files.version as u8)
            .ok_or_else(|| Status::internal(format!("{volume_id}: version {}", files.version)))?;
        Ok(TailSearch {
            dat: files.paths.dat.clone(),
            idx: files.paths.idx.clone(),
            idx_bytes: files.idx_bytes,
            width,
            version,
            first_record_offset: files.first_record_offset,
            append_ordered: files.compaction_revision == 0,
        })
    }

    /// An offset in the `.dat` where no record before it was appended after `since_ns`,
    /// close to the first one that was: a binary search over the `.idx` entries (which
    /// list the records about in append order), reading each probed record's append time,
    /// as SeaweedFS's `BinarySearchByAppendAtNs` does. It answers the offset of the latest
    /// record found at or before `since_ns`: append times rise with the offset, so every
    /// record before it is older too, whatever order the `.idx` lists them in. A volume
    /// without append times (versions 1 and 2) or compacted is read from its first record.
    fn start_after(&self, since_ns: u64) -> Result<u64, String> {
        let start = self.first_record_offset;
        if since_ns == 0 || !self.append_ordered || self.version != Version::V3 {
            return Ok(start);
        }
        let open =
            |path: &Path| File::open(path).map_err(|e| format!("open {}: {e}", path.display()));
        let (idx, dat) = (open(&self.idx)?, open(&self.dat)?);
        let entries = self.idx_bytes / self.width.entry_bytes() as u64;
        let (mut low, mut high, mut latest_old) = (0, entries, start);
        while low < high {
            let middle = low + (high - low) / 2;
            let offset = self.entry_offset(&idx, middle)?;
            let older = offset >= start && self.append_at_ns(&dat, offset)? <= since_ns;
            if older {
                latest_old = latest_old.max(offset);
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(latest_old)
    }

    /// The `.dat` offset of the record `.idx` entry number `entry` names.
    fn entry_offset(&self, idx: &File, entry: u64) -> Result<u64, String> {
        let entry_bytes = self.width.entry_bytes();
        let mut bytes = [0u8; 17];
        let at = entry * entry_bytes as u64;
        idx.read_exact_at(&mut bytes[..entry_bytes], at)
            .map_err(|e| format!("read {} at {at}: {e}", self.idx.display()))?;
        let entry = IdxEntry::decode(&bytes, self.width).expect("17 bytes hold any entry");
        Ok(entry.offset_bytes())
    }

    /// The append time of the record at `offset` (its header, then the 8 bytes after its
    /// body and checksum).
    fn append_at_ns(&self, dat: &File, offset: u64) -> Result<u64, String> {
        let read = |bytes: &mut [u8], at: u64| {
            dat.read_exact_at(bytes, at)
                .map_err(|e| format!("read {} at {at}: {e}", self.dat.display()))
        };
        let mut header = [0u8; HEADER_BYTES];
        read(&mut header, offset)?;
        let parsed = NeedleHeader::decode(&header)
            .map_err(|e| format!("{} at {offset}: {e}", self.dat.display()))?;
        let mut time = [0u8; TIMESTAMP_BYTES];
        let body_end = offset + HEADER_BYTES as u64 + u64::from(parsed.size);
        read(&mut time, body_end + CHECKSUM_BYTES as u64)?;
        Ok(u64::from_be_bytes(time))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_engine::format::{ReplicaPlacement, Ttl};
    use kelp_engine::volume::{FileVolume, default_config};

    /// A volume of 40 records and a delete marker, with the (offset, append time) of each.
    fn volume_with_records(dir: &Path) -> (FileVolume, Vec<(u64, u64)>) {
        let config = default_config(3, "", ReplicaPlacement::default(), Ttl::EMPTY);
        let mut volume = FileVolume::create(dir, config).unwrap();
        let base_ns = 1_700_000_000_000_000_000;
        let mut written = Vec::new();
        for key in 1..=40u64 {
            let data = vec![key as u8; 100 + key as usize];
            let needle = Needle {
                cookie: 7,
                key,
                data: &data,
                ..Needle::default()
            };
            let outcome = volume.write_at(&needle, base_ns + key * 1_000, false);
            let outcome = outcome.unwrap();
            written.push((outcome.offset, outcome.append_at_ns));
        }
        let marker_offset = volume.core().dat_bytes();
        volume.delete(5, 7, false).unwrap();
        written.push((marker_offset, volume.core().last_append_at_ns()));
        (volume, written)
    }

    fn search_of(volume: &FileVolume, append_ordered: bool) -> TailSearch {
        TailSearch {
            dat: volume.paths().dat.clone(),
            idx: volume.paths().idx.clone(),
            idx_bytes: volume.core().idx_bytes(),
            width: OffsetWidth::Five,
            version: Version::V3,
            first_record_offset: volume.core().config().superblock.block_bytes(),
            append_ordered,
        }
    }

    // Proves a tail from a late time starts at the last record at or before that time (found
    // by a binary search of the `.idx`, reading a few records' append times), so that only
    // the end of the `.dat` is read and no record after the time is missed; from time 0, or
    // on a compacted volume, it starts at the first record.
    #[test]
    fn a_tail_starts_where_its_time_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let (volume, written) = volume_with_records(dir.path());
        let search = search_of(&volume, true);
        let first = written[0].0;
        assert_eq!(search.start_after(0).unwrap(), first);
        assert_eq!(search.start_after(written[0].1 - 1).unwrap(), first);
        for k in [0, 1, 19, 20, 38, 39, 40] {
            let since_ns = written[k].1;
            let start = search.start_after(since_ns).unwrap();
            assert_eq!(start, written[k].0, "from the time of record {k}");
            let end = volume.core().dat_bytes();
            let dat = &volume.paths().dat;
            let (records, stopped) = read_records(dat, Version::V3, start, end, since_ns).unwrap();
            assert_eq!(stopped, end);
            let times: Vec<u64> = records.iter().map(|r| r.append_at_ns).collect();
            let later: Vec<u64> = written[k + 1..].iter().map(|w| w.1).collect();
            assert_eq!(times, later, "the records after record {k}, each once");
        }
        let compacted = search_of(&volume, false);
        assert_eq!(compacted.start_after(written[30].1).unwrap(), first);
    }
}
