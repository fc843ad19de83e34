//! What opening a volume does with a compaction's files (FORMAT.md, "Compaction"): the commit
//! marker decides. With it, the new files are complete and durable, so the swap is finished
//! (whichever of the two renames is still to do); without it, the compaction never reached
//! its commit point, so its files are removed and the old volume stands. The same rule as
//! SeaweedFS 4.48, whose marker has the same name, so either opens the other's leftovers.

use super::io::remove_if_there;
use crate::volume::file::{VolumeIoError, VolumePaths, io_error, sync_dir};
use crate::volume::storage::Storage;

/// What an interrupted compaction left, and what opening the volume did with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompactionRecovery {
    /// Nothing was left.
    #[default]
    Nothing,
    /// The commit marker was there: the new files replaced the old ones (`renamed` of the
    /// two renames were still to do) and the marker was removed.
    Finished { renamed: u8 },
    /// Compaction files without a marker: `removed` files were removed; the old volume stands.
    Abandoned { removed: u8 },
}

/// Finishes or undoes an interrupted compaction of the volume at `paths`.
pub(crate) fn settle<S: Storage>(
    storage: &S,
    paths: &VolumePaths,
) -> Result<CompactionRecovery, VolumeIoError> {
    let exists = |path| storage.exists(path).map_err(io_error(path, "stat"));
    if exists(&paths.cpc)? {
        let mut renamed = 0u8;
        for (from, to) in [(&paths.cpd, &paths.dat), (&paths.cpx, &paths.idx)] {
            if exists(from)? {
                storage
                    .rename(from, to)
                    .map_err(io_error(from, "rename (finishing a compaction)"))?;
                renamed += 1;
            }
        }
        sync_dir(storage, &paths.dat)?;
        storage
            .remove(&paths.cpc)
            .map_err(io_error(&paths.cpc, "remove"))?;
        sync_dir(storage, &paths.cpc)?;
        assert!(renamed <= 2);
        return Ok(CompactionRecovery::Finished { renamed });
    }
    let mut removed = 0u8;
    for path in [&paths.cpd, &paths.cpx] {
        removed += u8::from(remove_if_there(storage, path)?);
    }
    if removed == 0 {
        return Ok(CompactionRecovery::Nothing);
    }
    sync_dir(storage, &paths.cpd)?;
    Ok(CompactionRecovery::Abandoned { removed })
}
