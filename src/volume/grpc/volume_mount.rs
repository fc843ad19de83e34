//! Taking a volume out of service and back, as `weed shell volume.unmount`, `volume.mount`
//! and `volume.configure.replication` do: `VolumeUnmount` closes a volume on its core and
//! stops serving it, keeping its files; `VolumeMount` opens the files again (on a blocking
//! thread: recovery reads them) and hands the volume to its core; `VolumeConfigure`
//! unmounts a volume, writes its new placement into the superblock and the `.vif`, and
//! mounts it again, as SeaweedFS does.

use std::os::unix::fs::FileExt;
use std::path::Path;

use kelp_engine::format::ReplicaPlacement;
use kelp_engine::volume::{FileVolume, OpenOptions, VolumePaths};
use tonic::Status;

use super::service::VolumeService;
use super::volume_admin::AdminCall;

/// Where the placement byte is in a `.dat` (its superblock's second byte).
const SUPERBLOCK_PLACEMENT_OFFSET: u64 = 1;

/// A volume opened from its files, ready for its core.
struct Opened {
    volume: FileVolume,
    newest_write_ns: u64,
    dat_modified_s: u64,
}

impl VolumeService {
    /// Stops serving `volume_id`, keeping its files.
    pub async fn unmount(&self, volume_id: u32) -> Result<(), Status> {
        self.admin(volume_id, AdminCall::Unmount).await?;
        self.link.volumes_changed();
        Ok(())
    }

    /// Serves `volume_id` again from the files in the volume directory.
    pub async fn mount(&self, volume_id: u32) -> Result<(), Status> {
        if self.admin(volume_id, AdminCall::Status).await.is_ok() {
            return Err(Status::already_exists(format!(
                "volume {volume_id} is mounted already"
            )));
        }
        let dir = self.config.dir.clone();
        let found = tokio::task::spawn_blocking(move || collection_of(&dir, volume_id))
            .await
            .map_err(|e| Status::internal(format!("finding volume {volume_id}: {e}")))??;
        self.open_and_mount(volume_id, found, None).await?;
        self.link.volumes_changed();
        Ok(())
    }

    /// Changes `volume_id`'s placement: unmounted, its superblock and `.vif` rewritten,
    /// mounted again (also when the rewrite failed, with the files as they are then).
    pub async fn configure(&self, volume_id: u32, replication: &str) -> Result<(), Status> {
        let placement = ReplicaPlacement::parse(replication).map_err(|e| {
            Status::invalid_argument(format!(
                "VolumeConfigure of volume {volume_id}: replication {replication:?}: {e}"
            ))
        })?;
        let files = self.volume_files(volume_id).await?;
        self.admin(volume_id, AdminCall::Unmount).await?;
        // The master must hear it gone, or it keeps it under the old placement too.
        self.link.beat_and_wait().await;
        let mounted = self
            .open_and_mount(volume_id, files.collection, Some(placement))
            .await;
        self.link.volumes_changed();
        mounted.map(|_| ())
    }

    /// Opens volume `volume_id` of `collection` from its files (writing `placement` into
    /// them first, when given) and hands it to its core; the append time of its newest live
    /// record.
    pub async fn open_and_mount(
        &self,
        volume_id: u32,
        collection: String,
        placement: Option<ReplicaPlacement>,
    ) -> Result<u64, Status> {
        let dir = self.config.dir.clone();
        let name = collection.clone();
        let opened =
            tokio::task::spawn_blocking(move || open_volume(&dir, &name, volume_id, placement))
                .await
                .map_err(|e| Status::internal(format!("opening volume {volume_id}: {e}")))?
                .map_err(Status::data_loss)?;
        let has_ttl = !opened.volume.core().config().superblock.ttl.is_empty();
        let newest_write_ns = opened.newest_write_ns;
        let call = AdminCall::Mount {
            volume: Box::new(opened.volume),
            collection,
            newest_write_ns: if has_ttl { newest_write_ns } else { 0 },
            dat_modified_s: opened.dat_modified_s,
        };
        self.admin(volume_id, call).await?;
        Ok(newest_write_ns)
    }
}

/// The collection of the volume `volume_id` whose files are in `dir`.
fn collection_of(dir: &Path, volume_id: u32) -> Result<String, Status> {
    let volumes = super::super::store::volume_files(dir).map_err(Status::internal)?;
    volumes
        .into_iter()
        .find(|(_, id)| *id == volume_id)
        .map(|(collection, _)| collection)
        .ok_or_else(|| {
            Status::not_found(format!(
                "no volume {volume_id} in {} to mount",
                dir.display()
            ))
        })
}

/// Opens a volume from its files (with `placement` written into its superblock, and its
/// `.vif` written again from it, when given).
fn open_volume(
    dir: &Path,
    collection: &str,
    volume_id: u32,
    placement: Option<ReplicaPlacement>,
) -> Result<Opened, String> {
    let paths = VolumePaths::new(dir, collection, volume_id);
    if let Some(placement) = placement {
        write_placement(&paths, placement)?;
    }
    let (volume, _report) =
        FileVolume::open(dir, collection, volume_id, &OpenOptions::default())
            .map_err(|e| format!("open volume {volume_id} ({}): {e}", paths.dat.display()))?;
    if placement.is_some() {
        volume
            .save_volume_info()
            .map_err(|e| format!("volume {volume_id}: write {}: {e}", paths.vif.display()))?;
    }
    let newest_write_ns = volume.newest_live_append_ns();
    let dat_modified_s = super::super::store::dat_modified_s(&paths)?;
    Ok(Opened {
        volume,
        newest_write_ns,
        dat_modified_s,
    })
}

/// Writes `placement` into the superblock of a volume's `.dat` (closed: not served now),
/// durably.
fn write_placement(paths: &VolumePaths, placement: ReplicaPlacement) -> Result<(), String> {
    let dat = &paths.dat;
    let failed = |op: &str, e: std::io::Error| format!("{op} {}: {e}", dat.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dat)
        .map_err(|e| failed("open", e))?;
    file.write_all_at(&[placement.to_byte()], SUPERBLOCK_PLACEMENT_OFFSET)
        .map_err(|e| failed("write the placement into", e))?;
    file.sync_data().map_err(|e| failed("fsync", e))
}
