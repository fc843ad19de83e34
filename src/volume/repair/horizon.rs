//! A volume's delete horizon (FORMAT.md "Delete horizon"): the time before which it may have
//! forgotten deletes, because a compaction dropped their delete markers. Kept in
//! `<base>.horizon` as the text `<compaction revision> <ns since the Unix epoch>\n`; a file
//! SeaweedFS does not know and leaves alone.

use std::io::Write;
use std::path::Path;

/// The delete horizon of a volume at compaction revision `revision` whose horizon file is
/// `path` (blocking). A volume never compacted (revision 0, no file) forgot nothing: 0. A
/// file of another revision, or none after a compaction (by SeaweedFS, `kelp compact`, or a
/// copy that left the file behind), means the compaction time is unknown: the horizon is
/// `now_ns`, written down so that it stays.
pub fn current(path: &Path, revision: u16, now_ns: u64) -> Result<u64, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match parse(&text) {
            Some((written, horizon_ns)) if written == revision => return Ok(horizon_ns),
            Some(_) => {}
            None => tracing::warn!(
                "{}: not `<revision> <ns>`; the delete horizon starts again from now",
                path.display()
            ),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && revision == 0 => {
            return Ok(0);
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("read {}: {error}", path.display())),
    }
    write(path, revision, now_ns)?;
    Ok(now_ns)
}

fn parse(text: &str) -> Option<(u16, u64)> {
    let (revision, horizon_ns) = text.trim().split_once(' ')?;
    Some((revision.parse().ok()?, horizon_ns.parse().ok()?))
}

/// Replaces the horizon file atomically (temporary file, fsync, rename, directory fsync).
pub fn write(path: &Path, revision: u16, horizon_ns: u64) -> Result<(), String> {
    let temporary = path.with_extension("horizon.tmp");
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        writeln!(file, "{revision} {horizon_ns}")?;
        file.sync_all()
    });
    written.map_err(|e| format!("write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .map_err(|e| format!("rename {} to {}: {e}", temporary.display(), path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a never-compacted volume forgot nothing, a compaction with no horizon written
    // (or a file of another revision) moves the horizon to now, and it then stays.
    #[test]
    fn horizon_follows_the_compaction_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.horizon");
        assert_eq!(current(&path, 0, 500).unwrap(), 0);
        assert!(
            !path.exists(),
            "nothing written for a volume that forgot nothing"
        );
        assert_eq!(current(&path, 1, 600).unwrap(), 600);
        assert_eq!(current(&path, 1, 900).unwrap(), 600, "it stays");
        assert_eq!(current(&path, 2, 950).unwrap(), 950, "compacted again");
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(current(&path, 2, 990).unwrap(), 990);
        write(&path, 2, 700).unwrap();
        assert_eq!(current(&path, 2, 999).unwrap(), 700);
    }
}
