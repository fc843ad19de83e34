//! Deletes a compaction keeps (FORMAT.md "Delete horizon"): a compaction drops delete
//! markers, so before it copies a volume the deletes younger than `--delete-retention-seconds`
//! are written to `<base>.deletes` (the `.dat` stays what SeaweedFS's compaction would make).
//! A repair lists them as deletes with their times, so a replica that missed a delete learns
//! of it after the other compacted; the volume's delete horizon becomes the retention's
//! start. Text: a first line `<compaction revision> <horizon ns>`, then `<key> <append ns>`
//! per delete, keys ascending. Written as `<base>.deletes.next` when the compaction starts,
//! renamed over `<base>.deletes` by its commit (with the horizon file); a file of another
//! revision than the volume's is not used.

use super::records::{self, Source};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Keys listed per scan of the `.idx` while the kept deletes are gathered: the memory a
/// compaction's start takes for it.
const GATHER_KEYS_PER_SCAN: usize = 1 << 20;

/// The kept deletes of revision `revision` (key -> append time), none when the file is of
/// another revision or absent (blocking).
pub fn read(path: &Path, revision: u16) -> Result<BTreeMap<u64, u64>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(format!("read {}: {error}", path.display())),
    };
    let bad = |line: &str| format!("{}: a line {line:?} is not two numbers", path.display());
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let (written, _) = pair(first).ok_or_else(|| bad(first))?;
    if written != u64::from(revision) {
        return Ok(BTreeMap::new());
    }
    lines
        .map(|line| pair(line).ok_or_else(|| bad(line)))
        .collect()
}

fn pair(line: &str) -> Option<(u64, u64)> {
    let (a, b) = line.split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `<base>.deletes.next`, where a compaction writes the deletes it keeps.
pub fn next_path(path: &Path) -> PathBuf {
    path.with_extension("deletes.next")
}

/// Gathers the deletes of `source` (its `.idx` entries and the kept deletes of its current
/// revision) appended at or after `cutoff_ns`, and writes them, for revision `revision + 1`
/// with the horizon `horizon_ns`, to `<base>.deletes.next` (blocking). Returns how many.
pub fn prepare(
    source: &Source,
    deletes_path: &Path,
    cutoff_ns: u64,
    horizon_ns: u64,
) -> Result<usize, String> {
    let mut kept: Vec<(u64, u64)> = Vec::new();
    let mut after = None;
    loop {
        let page = records::list(source, after, GATHER_KEYS_PER_SCAN)?;
        kept.extend(
            page.states
                .iter()
                .filter(|state| state.is_deleted() && state.append_at_ns >= cutoff_ns)
                .map(|state| (state.key, state.append_at_ns)),
        );
        match (page.more, page.states.last()) {
            (true, Some(last)) => after = Some(last.key),
            _ => break,
        }
    }
    let next = next_path(deletes_path);
    let revision = source.revision.wrapping_add(1);
    let written = std::fs::File::create(&next).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "{revision} {horizon_ns}")?;
        for (key, append_at_ns) in &kept {
            writeln!(out, "{key} {append_at_ns}")?;
        }
        out.into_inner()?.sync_all()
    });
    written.map_err(|e| format!("write {}: {e}", next.display()))?;
    Ok(kept.len())
}

/// After a compaction committed revision `revision`: its kept deletes take the place of the
/// old ones and its horizon is written (blocking). Without a prepared file of that revision
/// nothing is done: the next repair then starts the horizon from its own time.
pub fn commit(deletes_path: &Path, horizon_path: &Path, revision: u16) -> Result<(), String> {
    let next = next_path(deletes_path);
    let first = match std::fs::read_to_string(&next) {
        Ok(text) => text.lines().next().and_then(pair),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("read {}: {error}", next.display())),
    };
    let Some((written, horizon_ns)) = first.filter(|(r, _)| *r == u64::from(revision)) else {
        let _ = std::fs::remove_file(&next); // stale: left by a compaction that failed
        return Ok(());
    };
    assert_eq!(written, u64::from(revision));
    std::fs::rename(&next, deletes_path).map_err(|e| {
        format!(
            "rename {} to {}: {e}",
            next.display(),
            deletes_path.display()
        )
    })?;
    super::horizon::write(horizon_path, revision, horizon_ns)
}

/// What a compaction's start needs to keep the deletes of a replicated volume, taken on the
/// owner core at the compaction's snapshot.
pub struct Preparation {
    source: Source,
    deletes_path: PathBuf,
    horizon_path: PathBuf,
}

impl Preparation {
    /// None for a volume whose replicas are not repaired (one copy, a TTL, version 2).
    pub fn of(state: &crate::volume::state::CoreState, volume_id: u32) -> Option<Preparation> {
        let source = super::serve::source_of(state, volume_id).ok()?;
        let store = state.store.borrow();
        let volume = store.volume(volume_id).ok()?;
        let superblock = volume.core().config().superblock;
        let repaired = superblock.placement.copy_count() > 1
            && superblock.ttl.is_empty()
            && source.version == kelp_engine::format::needle::Version::V3;
        repaired.then(|| Preparation {
            source,
            deletes_path: volume.paths().deletes.clone(),
            horizon_path: volume.paths().horizon.clone(),
        })
    }

    /// Writes the deletes appended since `now_ns - retention_ns` for the compaction's
    /// revision (blocking). A failure is logged: the compaction goes on, and its volume's
    /// horizon then starts from the next repair's time (nothing is resurrected).
    pub fn prepare(&self, retention_ns: u64, now_ns: u64) {
        let volume_id = self.source.volume_id;
        let prepared = super::horizon::current(&self.horizon_path, self.source.revision, now_ns)
            .and_then(|old_horizon_ns| {
                let cutoff_ns = now_ns.saturating_sub(retention_ns);
                let horizon_ns = old_horizon_ns.max(cutoff_ns);
                prepare(&self.source, &self.deletes_path, cutoff_ns, horizon_ns)
            });
        match prepared {
            Ok(count) => tracing::info!("volume {volume_id}: the compaction keeps {count} deletes"),
            Err(error) => {
                let _ = std::fs::remove_file(next_path(&self.deletes_path));
                tracing::warn!("volume {volume_id}: the compaction keeps no deletes: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a prepared file takes the place of the kept deletes only when its compaction
    // committed that revision, with its horizon; a stale one is removed and changes nothing.
    #[test]
    fn commit_installs_the_prepared_revision_only() {
        let dir = tempfile::tempdir().unwrap();
        let deletes = dir.path().join("3.deletes");
        let horizon = dir.path().join("3.horizon");
        std::fs::write(&deletes, "1 0\n5 100\n9 200\n").unwrap();
        assert_eq!(
            read(&deletes, 1).unwrap(),
            BTreeMap::from([(5, 100), (9, 200)])
        );
        assert!(
            read(&deletes, 2).unwrap().is_empty(),
            "another revision's file"
        );
        std::fs::write(next_path(&deletes), "7 150\n9 200\n").unwrap();
        commit(&deletes, &horizon, 2).unwrap();
        assert!(!next_path(&deletes).exists(), "a stale file is removed");
        assert_eq!(read(&deletes, 1).unwrap().len(), 2, "unchanged");
        assert!(!horizon.exists());
        std::fs::write(next_path(&deletes), "2 150\n9 200\n").unwrap();
        commit(&deletes, &horizon, 2).unwrap();
        assert_eq!(read(&deletes, 2).unwrap(), BTreeMap::from([(9, 200)]));
        assert_eq!(
            super::super::horizon::current(&horizon, 2, 999).unwrap(),
            150
        );
        std::fs::write(&deletes, "2 150\n9 x\n").unwrap();
        assert!(read(&deletes, 2).unwrap_err().contains("not two numbers"));
    }
}
