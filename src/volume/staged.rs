//! Staged copies on disk: a move's target holds its copy of a volume out of the heartbeats
//! until the move switches to it (`grpc::volume_copy::STAGED_COPY_METADATA`). A marker file
//! `<base>.staged` beside the volume's files records that on disk, so that a target restarted
//! before the switch removes the unfinished copy instead of serving a replica that misses
//! what the source took since (the source keeps the volume: a move deletes it only after the
//! target was marked read-only or writable, which removes the marker first).

use kelp_engine::format::parse_volume_base_name;
use kelp_engine::volume::VolumePaths;
use std::path::{Path, PathBuf};

/// The extension of a staged copy's marker file.
const MARKER_EXTENSION: &str = "staged";

/// Extensions of the files a volume may have beside its marker: all removed with it.
const VOLUME_EXTENSIONS: [&str; 8] = [
    "dat", "idx", "vif", "cpd", "cpx", "cpc", "horizon", "deletes",
];

fn marker_path(paths: &VolumePaths) -> PathBuf {
    paths.dat.with_extension(MARKER_EXTENSION)
}

/// Records on disk (synced with its directory) that the volume at `paths` is a staged copy.
pub fn mark(paths: &VolumePaths) -> Result<(), String> {
    let marker = marker_path(paths);
    std::fs::write(
        &marker,
        b"a volume copy staged by a move; removed when the move switches\n",
    )
    .and_then(|()| std::fs::File::open(&marker)?.sync_all())
    .map_err(|e| format!("write {}: {e}", marker.display()))?;
    sync_dir(&marker)
}

/// Removes the marker of volume `volume_id`'s staged copy in `dir` (none is fine) and syncs
/// the directory: after this returns, a restart keeps the volume.
pub fn unmark(dir: &Path, volume_id: u32) -> Result<(), String> {
    for marker in markers(dir)? {
        let base = marker
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("");
        if parse_volume_base_name(base).is_some_and(|(_, id)| id == volume_id) {
            std::fs::remove_file(&marker)
                .map_err(|e| format!("remove {}: {e}", marker.display()))?;
            sync_dir(&marker)?;
        }
    }
    Ok(())
}

/// The staged copies' markers in `dir`, sorted (none when `dir` does not exist yet).
fn markers(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let reading = |e: std::io::Error| format!("reading {}: {e}", dir.display());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(reading(error)),
    };
    let mut markers = Vec::new();
    for entry in entries {
        let path = entry.map_err(reading)?.path();
        if path.extension().is_some_and(|e| e == MARKER_EXTENSION) {
            markers.push(path);
        }
    }
    markers.sort();
    Ok(markers)
}

/// At start-up, before the volumes open: removes every staged copy in `dir` (its marker
/// names it) with all its files, and what a copy in progress left (`*.copying`). Returns
/// the markers handled.
pub fn remove_unfinished(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let markers = markers(dir)?;
    for marker in &markers {
        for extension in VOLUME_EXTENSIONS {
            let file = marker.with_extension(extension);
            remove_if_present(&file)?;
            let mut copying = file.into_os_string();
            copying.push(".copying");
            remove_if_present(Path::new(&copying))?;
        }
        tracing::warn!(
            "{}: a volume copied here by a move that did not finish before this server \
             stopped; its copy is removed (the move's source keeps the volume)",
            marker.display()
        );
        std::fs::remove_file(marker).map_err(|e| format!("remove {}: {e}", marker.display()))?;
    }
    if let Some(marker) = markers.first() {
        sync_dir(marker)?;
    }
    Ok(markers)
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("remove {}: {error}", path.display())),
    }
}

fn sync_dir(file: &Path) -> Result<(), String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| format!("fsync directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a marked copy is removed at start-up with all its files and leftovers, an
    // unmarked one and other volumes are kept.
    #[test]
    fn only_marked_copies_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staged = VolumePaths::new(dir.path(), "pics", 7);
        let kept = VolumePaths::new(dir.path(), "pics", 8);
        let released = VolumePaths::new(dir.path(), "", 9);
        for paths in [&staged, &kept, &released] {
            for file in [&paths.dat, &paths.idx, &paths.vif] {
                std::fs::write(file, b"x").unwrap();
            }
        }
        std::fs::write(dir.path().join("pics_7.dat.copying"), b"x").unwrap();
        mark(&staged).unwrap();
        mark(&released).unwrap();
        unmark(dir.path(), 9).unwrap();
        unmark(dir.path(), 9).unwrap();

        let removed = remove_unfinished(dir.path()).unwrap();
        assert_eq!(removed, vec![dir.path().join("pics_7.staged")]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let expected = [
            "9.dat",
            "9.idx",
            "9.vif",
            "pics_8.dat",
            "pics_8.idx",
            "pics_8.vif",
        ];
        assert_eq!(left, expected);
        assert!(remove_unfinished(dir.path()).unwrap().is_empty());
    }
}
