//! Synthetic volumes for scale benchmarks (`kelp generate-volumes`): whole volumes (`.dat`,
//! `.idx`, `.vif`) written straight through the format encoders, sequentially and buffered,
//! so that a hundred million needles take minutes rather than the hours of uploads.
//!
//! The files are what a volume server writes: a version-3 superblock, needles encoded by
//! `Needle::encode` back to back, one 17-byte `.idx` entry per needle in `.dat` order, and a
//! `.vif` with 5-byte offsets, so Kelp and SeaweedFS (the large-disk build) open them as any
//! other volume. Every needle is a function of its key (`GeneratedNeedle::for_key`), so a
//! reader can check the bytes it is served without a list of what was written.

use super::file::{VolumeIoError, VolumePaths, io_error, now_ns};
use crate::format::{
    IdxEntry, Needle, OffsetWidth, ReplicaPlacement, SuperBlock, Ttl, VolumeInfo, needle,
};
use crate::limits::{GENERATED_DATA_BYTES_MAX, GENERATED_WRITE_BUFFER_BYTES};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What to generate: `volumes` volumes with ids from `first_volume_id`, each holding
/// `needles_per_volume` needles of `data_bytes_min..=data_bytes_max` data bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateSpec {
    pub collection: String,
    pub first_volume_id: u32,
    pub volumes: u32,
    pub needles_per_volume: u64,
    pub data_bytes_min: usize,
    pub data_bytes_max: usize,
}

#[derive(Debug)]
pub enum GenerateError {
    /// The spec cannot be generated (the reason says which field).
    BadSpec(String),
    /// A volume file already exists: generating never overwrites a volume.
    Exists(std::path::PathBuf),
    Io(VolumeIoError),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::BadSpec(reason) => write!(f, "cannot generate volumes: {reason}"),
            GenerateError::Exists(path) => write!(
                f,
                "{} exists; volumes are generated into files that do not exist yet",
                path.display()
            ),
            GenerateError::Io(error) => write!(f, "{error}"),
        }
    }
}
impl std::error::Error for GenerateError {}

impl From<VolumeIoError> for GenerateError {
    fn from(error: VolumeIoError) -> Self {
        GenerateError::Io(error)
    }
}

impl GenerateSpec {
    /// Checks the spec: sizes in range, at least one volume, ids that do not overflow, and
    /// volumes small enough for the default volume size limit.
    pub fn check(&self) -> Result<(), GenerateError> {
        let bad = |reason: String| Err(GenerateError::BadSpec(reason));
        if self.volumes == 0 {
            return bad("--volumes must be at least 1".into());
        }
        if self.first_volume_id == 0 || self.first_volume_id.checked_add(self.volumes).is_none() {
            return bad(format!(
                "volume ids {} + {} volumes must be within 1..=u32::MAX",
                self.first_volume_id, self.volumes
            ));
        }
        if self.data_bytes_min == 0 || self.data_bytes_min > self.data_bytes_max {
            return bad(format!(
                "data bytes {}..={} must be a non-empty range starting at 1 or more",
                self.data_bytes_min, self.data_bytes_max
            ));
        }
        if self.data_bytes_max > GENERATED_DATA_BYTES_MAX {
            return bad(format!(
                "data bytes max {} is above {GENERATED_DATA_BYTES_MAX}",
                self.data_bytes_max
            ));
        }
        let record_max = GeneratedNeedle::record_bytes_max(self.data_bytes_max);
        let volume_bytes_max = crate::limits::VOLUME_SIZE_LIMIT_BYTES_DEFAULT;
        if self.needles_per_volume.saturating_mul(record_max) >= volume_bytes_max {
            return bad(format!(
                "{} needles of up to {record_max} bytes pass the volume size limit {volume_bytes_max}",
                self.needles_per_volume
            ));
        }
        Ok(())
    }

    /// The key of needle `index` of the volume at position `volume_index`: keys are dealt
    /// round-robin over the volumes, as a master's sequencer spreads them, so each volume's
    /// keys ascend with a gap of `volumes`.
    pub fn key(&self, volume_index: u32, index: u64) -> u64 {
        index * u64::from(self.volumes) + u64::from(volume_index) + 1
    }

    pub fn volume_id(&self, volume_index: u32) -> u32 {
        self.first_volume_id + volume_index
    }
}

/// The needle a generated volume holds under a key: its cookie and data follow from the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedNeedle {
    pub key: u64,
    pub cookie: u32,
    pub data: Vec<u8>,
}

impl GeneratedNeedle {
    pub fn for_key(key: u64, data_bytes_min: usize, data_bytes_max: usize) -> GeneratedNeedle {
        assert!(data_bytes_min >= 1 && data_bytes_min <= data_bytes_max);
        let mut state = key;
        let mix = splitmix64(&mut state);
        let span = (data_bytes_max - data_bytes_min + 1) as u64;
        let len = data_bytes_min + (mix % span) as usize;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let word = splitmix64(&mut state).to_le_bytes();
            let take = (len - data.len()).min(word.len());
            data.extend_from_slice(&word[..take]);
        }
        GeneratedNeedle {
            key,
            cookie: (mix >> 32) as u32,
            data,
        }
    }

    /// Largest record of a generated needle with at most `data_bytes_max` data bytes.
    fn record_bytes_max(data_bytes_max: usize) -> u64 {
        let data = vec![0u8; data_bytes_max];
        let needle = Needle {
            data: &data,
            ..Needle::default()
        };
        needle
            .record_bytes(needle::Version::V3)
            .expect("generated data is far below the needle limits")
    }
}

/// SplitMix64: a fast, well-mixed sequence from any seed (the keys here are consecutive).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What one generated volume takes on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneratedVolume {
    pub needles: u64,
    pub dat_bytes: u64,
    pub idx_bytes: u64,
}

/// Writes the volume at position `volume_index` of `spec` into `dir` and syncs it. Fails,
/// writing nothing, when its `.dat`, `.idx` or `.vif` exists.
pub fn generate_volume(
    dir: &Path,
    spec: &GenerateSpec,
    volume_index: u32,
) -> Result<GeneratedVolume, GenerateError> {
    spec.check()?;
    assert!(volume_index < spec.volumes);
    let paths = VolumePaths::new(dir, &spec.collection, spec.volume_id(volume_index));
    let (dat_file, idx_file) = create_new_files(&paths)?;
    let mut dat = BufWriter::with_capacity(GENERATED_WRITE_BUFFER_BYTES, &dat_file);
    let mut idx = BufWriter::with_capacity(GENERATED_WRITE_BUFFER_BYTES, &idx_file);
    let superblock = SuperBlock::new(ReplicaPlacement::default(), Ttl::EMPTY);
    dat.write_all(&superblock.encode())
        .map_err(io_error(&paths.dat, "write superblock"))?;
    let mut written = GeneratedVolume {
        needles: 0,
        dat_bytes: superblock.block_bytes(),
        idx_bytes: 0,
    };
    let width = OffsetWidth::Five;
    let mut record = Vec::new();
    let mut entry = vec![0u8; width.entry_bytes()];
    let append_base_ns = now_ns();
    for index in 0..spec.needles_per_volume {
        let key = spec.key(volume_index, index);
        let generated = GeneratedNeedle::for_key(key, spec.data_bytes_min, spec.data_bytes_max);
        let needle = Needle {
            key,
            cookie: generated.cookie,
            data: &generated.data,
            append_at_ns: append_base_ns + index,
            ..Needle::default()
        };
        record.clear();
        let size = needle
            .encode(needle::Version::V3, &mut record)
            .expect("generated needles are within the limits (checked by the spec)");
        let offset_units = written.dat_bytes / 8;
        IdxEntry {
            key,
            offset_units,
            size,
        }
        .encode(width, &mut entry)
        .expect("the spec keeps a volume within 5-byte offsets");
        dat.write_all(&record)
            .map_err(io_error(&paths.dat, "write needle"))?;
        idx.write_all(&entry)
            .map_err(io_error(&paths.idx, "write entry"))?;
        written.needles += 1;
        written.dat_bytes += record.len() as u64;
        written.idx_bytes += entry.len() as u64;
    }
    finish(dat, &paths.dat)?;
    finish(idx, &paths.idx)?;
    write_vif(&paths.vif, width)?;
    let parent = paths.dat.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_error(parent, "fsync directory"))?;
    Ok(written)
}

/// Fails, naming the first in volume order, when a file of any volume of `spec` exists in
/// `dir`: checked before a run writes anything, so a run writes all its volumes or none.
pub fn check_files_free(dir: &Path, spec: &GenerateSpec) -> Result<(), GenerateError> {
    (0..spec.volumes).try_for_each(|volume_index| {
        check_volume_free(&VolumePaths::new(
            dir,
            &spec.collection,
            spec.volume_id(volume_index),
        ))
    })
}

fn check_volume_free(paths: &VolumePaths) -> Result<(), GenerateError> {
    for path in [&paths.dat, &paths.idx, &paths.vif] {
        if path.exists() {
            return Err(GenerateError::Exists(path.clone()));
        }
    }
    Ok(())
}

/// Creates the `.dat` and `.idx` of `paths`; fails, creating nothing, when any of the
/// volume's files exists.
fn create_new_files(paths: &VolumePaths) -> Result<(File, File), GenerateError> {
    check_volume_free(paths)?;
    let create = |path: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_error(path, "create"))
    };
    Ok((create(&paths.dat)?, create(&paths.idx)?))
}

fn finish(mut writer: BufWriter<&File>, path: &Path) -> Result<(), VolumeIoError> {
    writer.flush().map_err(io_error(path, "write"))?;
    let file = writer.into_inner().map_err(|e| VolumeIoError {
        path: path.to_path_buf(),
        op: "write",
        source: io::Error::other(e.to_string()),
    })?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

fn write_vif(path: &Path, width: OffsetWidth) -> Result<(), VolumeIoError> {
    let info = VolumeInfo::new(width, ReplicaPlacement::default().to_string());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error(path, "create"))?;
    file.write_all(info.encode().as_bytes())
        .map_err(io_error(path, "write"))?;
    file.sync_all().map_err(io_error(path, "fsync"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{FileVolume, OpenOptions as VolumeOpenOptions};

    fn spec(volumes: u32, needles: u64) -> GenerateSpec {
        GenerateSpec {
            collection: "gen".into(),
            first_volume_id: 5,
            volumes,
            needles_per_volume: needles,
            data_bytes_min: 8,
            data_bytes_max: 64,
        }
    }

    /// Generated volumes open without repair and read back every needle's bytes.
    #[test]
    fn generated_volumes_open_clean_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(3, 2_000);
        for volume_index in 0..spec.volumes {
            let written = generate_volume(dir.path(), &spec, volume_index).unwrap();
            assert_eq!(written.needles, 2_000);
            assert_eq!(written.idx_bytes, 2_000 * 17);
        }
        for volume_index in 0..spec.volumes {
            let id = spec.volume_id(volume_index);
            let options = VolumeOpenOptions::default();
            let (volume, report) = FileVolume::open(dir.path(), "gen", id, &options).unwrap();
            assert!(report.is_clean(), "volume {id}: {report:?}");
            assert_eq!(volume.core().stats().file_count, 2_000);
            for index in (0..2_000).step_by(7) {
                let key = spec.key(volume_index, index);
                let expected = GeneratedNeedle::for_key(key, 8, 64);
                let read = volume.read(key, expected.cookie).unwrap();
                assert_eq!(read.needle().data, &expected.data[..], "key {key}");
            }
            // Keys of the other volumes are not here.
            let other = spec.key((volume_index + 1) % spec.volumes, 3);
            assert!(volume.read(other, 0).is_err());
        }
    }

    /// A volume is never generated over existing files.
    #[test]
    fn generating_over_a_volume_fails_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(1, 10);
        generate_volume(dir.path(), &spec, 0).unwrap();
        let dat = dir.path().join("gen_5.dat");
        let before = std::fs::read(&dat).unwrap();
        let error = generate_volume(dir.path(), &spec, 0).unwrap_err();
        assert!(matches!(error, GenerateError::Exists(_)), "{error}");
        assert!(error.to_string().contains("gen_5.dat"), "{error}");
        assert_eq!(std::fs::read(&dat).unwrap(), before);
    }

    /// A run whose later volume exists writes none of its volumes, and names the first
    /// existing file in volume order (whatever order the threads would take them in).
    #[test]
    fn a_spec_with_any_existing_volume_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(3, 10);
        generate_volume(dir.path(), &spec, 2).unwrap();
        generate_volume(dir.path(), &spec, 1).unwrap();
        let error = check_files_free(dir.path(), &spec).unwrap_err();
        assert!(error.to_string().contains("gen_6.dat"), "{error}");
        assert!(!dir.path().join("gen_5.dat").exists());
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut bad = spec(0, 10);
        assert!(bad.check().unwrap_err().to_string().contains("--volumes"));
        bad = spec(1, 10);
        bad.data_bytes_min = 0;
        assert!(bad.check().is_err());
        bad = spec(1, 10);
        bad.data_bytes_max = GENERATED_DATA_BYTES_MAX + 1;
        assert!(bad.check().is_err());
        bad = spec(1, u64::MAX / 2);
        assert!(bad.check().unwrap_err().to_string().contains("size limit"));
        bad = spec(2, 10);
        bad.first_volume_id = u32::MAX;
        assert!(bad.check().is_err());
    }

    #[test]
    fn generated_needles_follow_from_their_key() {
        let a = GeneratedNeedle::for_key(42, 8, 64);
        assert_eq!(a, GeneratedNeedle::for_key(42, 8, 64));
        assert!((8..=64).contains(&a.data.len()));
        let lengths: std::collections::HashSet<usize> = (0..1000)
            .map(|key| GeneratedNeedle::for_key(key, 8, 64).data.len())
            .collect();
        assert!(lengths.len() > 40, "sizes spread over the range");
    }
}
