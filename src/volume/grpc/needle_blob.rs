//! Single records between replicas, as `weed shell volume.check.disk` repairs one replica
//! from another: `ReadNeedleBlob` reads the record an `.idx` entry points at (on the gRPC
//! thread's blocking pool), `WriteNeedleBlob` appends such a record here (on the core that
//! owns the volume).

use std::os::unix::fs::FileExt;

use kelp_engine::format::needle::{self, NeedleHeader, Version};
use tonic::Status;

use super::service::VolumeService;
use super::volume_admin::AdminCall;

impl VolumeService {
    /// The record of `volume_id` at byte `offset` whose needle size is `size`.
    pub async fn read_needle_blob(
        &self,
        volume_id: u32,
        offset: i64,
        size: i32,
    ) -> Result<Vec<u8>, Status> {
        let bad = |why: String| Status::invalid_argument(format!("volume {volume_id}: {why}"));
        let offset = u64::try_from(offset).map_err(|_| bad(format!("offset {offset}")))?;
        let size = u32::try_from(size).map_err(|_| bad(format!("needle size {size}")))?;
        let files = self.volume_files(volume_id).await?;
        let version = Version::from_byte(files.version as u8).ok_or_else(|| {
            Status::internal(format!("volume {volume_id}: version {}", files.version))
        })?;
        let record_bytes = needle::record_bytes(size, version);
        let fits = offset >= files.first_record_offset
            && offset
                .checked_add(record_bytes)
                .is_some_and(|end| end <= files.dat_bytes);
        if !fits {
            return Err(Status::out_of_range(format!(
                "volume {volume_id}: a record of {record_bytes} bytes at {offset} is outside \
                 its {} bytes",
                files.dat_bytes
            )));
        }
        let dat = files.paths.dat.clone();
        let read = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&dat)?;
            let mut record = vec![0u8; record_bytes as usize];
            file.read_exact_at(&mut record, offset)?;
            Ok::<_, std::io::Error>(record)
        })
        .await
        .map_err(|e| Status::internal(format!("volume {volume_id}: read: {e}")))?;
        let record = read.map_err(|e| {
            Status::internal(format!(
                "read {} at {offset}: {e}",
                files.paths.dat.display()
            ))
        })?;
        let header = NeedleHeader::decode(&record)
            .map_err(|e| Status::data_loss(format!("volume {volume_id} at {offset}: {e}")))?;
        if header.size != size {
            return Err(Status::failed_precondition(format!(
                "volume {volume_id} at {offset}: the record's size is {}, not {size} (compacted?)",
                header.size
            )));
        }
        Ok(record)
    }

    /// Append `blob` (a record of key `needle_id`) to `volume_id`.
    pub async fn write_needle_blob(
        &self,
        volume_id: u32,
        needle_id: u64,
        blob: Vec<u8>,
    ) -> Result<(), Status> {
        let header = NeedleHeader::decode(&blob)
            .map_err(|e| Status::invalid_argument(format!("volume {volume_id}: a record: {e}")))?;
        if header.key != needle_id {
            return Err(Status::invalid_argument(format!(
                "volume {volume_id}: the record is of key {:x}, not {needle_id:x}",
                header.key
            )));
        }
        self.admin(volume_id, AdminCall::WriteRecord { record: blob })
            .await?;
        Ok(())
    }
}
