//! Behaviour of a volume through `FileVolume` (and the sans-I/O `VolumeCore` underneath):
//! what a user of the store relies on when writing, reading and deleting needles.

use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{
    AppendError, DeleteError, FileReadError, FileVolume, OpenOptions, ReadError, VolumeCore,
    WriteError, default_config,
};
use std::path::Path;

fn create(dir: &Path, id: u32) -> FileVolume {
    let config = default_config(
        id,
        "pics",
        ReplicaPlacement::parse("001").unwrap(),
        Ttl::EMPTY,
    );
    FileVolume::create(dir, config).unwrap()
}

fn needle<'a>(key: u64, cookie: u32, data: &'a [u8], name: &'a [u8]) -> Needle<'a> {
    Needle {
        key,
        cookie,
        data,
        name: Some(name),
        mime: Some(b"text/plain"),
        ..Needle::default()
    }
}

// Proves a written needle reads back with its bytes, name and mime, survives a reopen, and
// that the files are named `<collection>_<id>.*`.
#[test]
fn write_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = create(dir.path(), 3);
    volume
        .write(&needle(1, 0xabc, b"hello", b"a.txt"), true)
        .unwrap();
    volume
        .write(&needle(2, 0xdef, b"world!", b"b.txt"), false)
        .unwrap();
    let read = volume.read(1, 0xabc).unwrap();
    assert_eq!(read.needle().data, b"hello");
    assert_eq!(read.needle().name, Some(&b"a.txt"[..]));
    let record = read.clone().into_record();
    assert_eq!(&record[read.data_range()], b"hello");
    assert!(dir.path().join("pics_3.dat").exists() && dir.path().join("pics_3.vif").exists());
    drop(volume);
    let (volume, report) =
        FileVolume::open(dir.path(), "pics", 3, &OpenOptions::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(volume.read(2, 0xdef).unwrap().needle().data, b"world!");
    assert_eq!(volume.stats().live_count, 2);
    assert_eq!(volume.stats().max_key, 2);
}

// Proves the cookie guards reads, overwrites and deletes, and that a delete makes the key
// unreadable and is counted.
#[test]
fn cookie_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = create(dir.path(), 4);
    volume
        .write(&needle(7, 0x1111, b"data", b"n"), false)
        .unwrap();
    assert!(matches!(
        volume.read(7, 0x2222),
        Err(FileReadError::Read(ReadError::CookieMismatch {
            key: 7,
            ..
        }))
    ));
    assert!(matches!(
        volume.write(&needle(7, 0x2222, b"other", b"n"), false),
        Err(WriteError::CookieMismatch { key: 7, .. })
    ));
    assert!(matches!(
        volume.delete(7, 0x2222, false),
        Err(DeleteError::Read(ReadError::CookieMismatch { .. }))
    ));
    let size = volume.delete(7, 0x1111, false).unwrap();
    assert_eq!(size, needle(7, 0x1111, b"data", b"n").body_size().unwrap());
    assert!(matches!(
        volume.read(7, 0x1111),
        Err(FileReadError::Read(ReadError::NotFound { .. }))
    ));
    assert!(matches!(
        volume.delete(7, 0x1111, false),
        Err(DeleteError::Read(ReadError::NotFound { .. }))
    ));
    let stats = volume.stats();
    assert_eq!(
        (stats.file_count, stats.delete_count, stats.live_count),
        (1, 1, 0)
    );
    assert_eq!(stats.deleted_bytes, u64::from(size));
    volume.write(&needle(8, 1, b"first", b"n"), false).unwrap();
    volume.write(&needle(8, 1, b"second", b"n"), false).unwrap();
    let before = volume.stats();
    drop(volume);
    let (volume, _) = FileVolume::open(dir.path(), "pics", 4, &OpenOptions::default()).unwrap();
    assert_eq!(
        volume.stats(),
        before,
        "counters rebuilt from the .idx on open"
    );
    assert_eq!(
        (before.file_count, before.delete_count, before.live_count),
        (3, 2, 1)
    );
}

// Proves `locate` gives the data's place in the `.dat` (for sendfile) and the metadata,
// without reading the data.
#[test]
fn locate_points_at_the_data() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut volume = create(dir.path(), 5);
    let data = vec![42u8; 5000];
    volume
        .write(&needle(9, 5, &data, b"big.bin"), false)
        .unwrap();
    let location = volume.locate(9, 5).unwrap();
    assert_eq!(location.data_len, 5000);
    assert_eq!(location.needle().name, Some(&b"big.bin"[..]));
    assert_eq!(location.needle().mime, Some(&b"text/plain"[..]));
    let mut read = vec![0u8; 5000];
    location
        .file
        .read_exact_at(&mut read, location.data_offset)
        .unwrap();
    assert_eq!(read, data);
    assert!(matches!(
        volume.locate(9, 6),
        Err(FileReadError::Read(ReadError::CookieMismatch { .. }))
    ));
}

// Proves a volume refuses writes past its size limit (deletes still work) and when marked
// read-only, with errors that say so.
#[test]
fn size_limit_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = default_config(6, "", ReplicaPlacement::default(), Ttl::EMPTY);
    config.size_limit_bytes = 100;
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    volume
        .write(&needle(1, 1, &[1u8; 200], b"x"), false)
        .unwrap();
    let error = volume.write(&needle(2, 1, b"y", b"y"), false).unwrap_err();
    assert!(
        matches!(error, WriteError::Append(AppendError::SizeLimit { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("volume 6 is full"), "{error}");
    volume.delete(1, 1, false).unwrap();
    let (mut volume, _) = FileVolume::open(dir.path(), "", 6, &OpenOptions::default()).unwrap();
    volume.core_mut().set_read_only(true);
    volume.save_volume_info().unwrap();
    drop(volume);
    let (mut volume, _) = FileVolume::open(dir.path(), "", 6, &OpenOptions::default()).unwrap();
    let error = volume.write(&needle(3, 1, b"z", b"z"), false).unwrap_err();
    assert!(
        matches!(error, WriteError::Append(AppendError::ReadOnly { .. })),
        "{error:?}"
    );
}

// Proves SeaweedFS's expiry rule: a needle with a TTL and a last-modified time is served
// until append time + TTL, then reported expired; without a last-modified time it never
// expires.
#[test]
fn expired_needle_is_not_served() {
    const MINUTE_NS: u64 = 60_000_000_000;
    let config = default_config(8, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut core = VolumeCore::new(config);
    let ttl = Some(Ttl::parse("3m").unwrap());
    let appended_ns = 1_700_000_000 * 1_000_000_000;
    let with_date = Needle {
        last_modified_s: Some(1_000),
        ttl,
        ..needle(1, 1, b"old", b"o")
    };
    let without_date = Needle {
        ttl,
        ..needle(2, 1, b"old", b"o")
    };
    let mut records = Vec::new();
    for needle in [&with_date, &without_date] {
        let plan = core.plan_write(needle, appended_ns).unwrap();
        core.complete(&plan);
        records.push(plan.record);
    }
    let read = core.plan_read(1).unwrap();
    assert!(
        core.finish_read(&read, &records[0], 1, appended_ns + 2 * MINUTE_NS)
            .is_ok()
    );
    let late = core.finish_read(&read, &records[0], 1, appended_ns + 3 * MINUTE_NS);
    assert!(
        matches!(late, Err(ReadError::Expired { key: 1, .. })),
        "{late:?}"
    );
    let read = core.plan_read(2).unwrap();
    assert!(
        core.finish_read(&read, &records[1], 1, appended_ns + 100 * MINUTE_NS)
            .is_ok()
    );
}

// Proves the sans-I/O core lets appends be in flight at once at distinct offsets, makes a
// key readable only when its write completed, hands `.idx` offsets out in completion order,
// and refuses a volume past what its offsets address.
#[test]
fn core_appends_in_flight() {
    let config = default_config(9, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut core = VolumeCore::new(config.clone());
    let first = core.plan_write(&needle(1, 1, b"one", b"1"), 10).unwrap();
    let second = core.plan_write(&needle(2, 1, b"two", b"2"), 5).unwrap();
    assert_eq!(first.offset, 8);
    assert_eq!(second.offset, 8 + first.record.len() as u64);
    assert!(
        second.append_at_ns > first.append_at_ns,
        "append time never goes back"
    );
    assert!(core.plan_read(2).is_err(), "not readable before completion");
    let idx_second = core.complete(&second);
    let idx_first = core.complete(&first);
    assert_eq!((idx_second.offset, idx_first.offset), (0, 17));
    let read = core.plan_read(1).unwrap();
    let needle_read = core.finish_read(&read, &first.record, 1, 0).unwrap();
    assert_eq!(needle_read.data, b"one");
    // An aborted last reservation gives its space back.
    let third = core.plan_write(&needle(3, 1, b"three", b"3"), 0).unwrap();
    let end = core.dat_bytes();
    core.abort(third);
    assert!(core.dat_bytes() < end && core.read_only().is_none());

    let mut small = config;
    small.offset_width = kelp_engine::format::OffsetWidth::Four;
    small.size_limit_bytes = u64::MAX;
    let full_at = small.offset_width.volume_bytes_max() - 16;
    let mut core =
        VolumeCore::from_parts(small, Default::default(), Default::default(), full_at, 0);
    let error = core
        .plan_write(&needle(4, 1, b"four", b"4"), 0)
        .unwrap_err();
    assert!(
        matches!(error, AppendError::VolumeBytesMax { max_bytes, .. } if max_bytes == 32 << 30),
        "{error:?}"
    );
}

// Proves a version-2 volume (no append time in its needles, no `.vif`, 16-byte `.idx`)
// opens, has its missing `.idx` rebuilt, reads back, and refuses writes as read-only.
#[test]
fn version_2_volume_is_read_only() {
    use kelp_engine::format::{SuperBlock, Version};
    let dir = tempfile::tempdir().unwrap();
    let mut superblock = SuperBlock::new(ReplicaPlacement::default(), Ttl::EMPTY);
    superblock.version = Version::V2;
    let mut dat = superblock.encode().to_vec();
    for key in 1..=3u64 {
        let data = vec![key as u8; 10 * key as usize];
        needle(key, 9, &data, b"v2")
            .encode(Version::V2, &mut dat)
            .unwrap();
    }
    std::fs::write(dir.path().join("12.dat"), &dat).unwrap();
    let (mut volume, report) =
        FileVolume::open(dir.path(), "", 12, &OpenOptions::default()).unwrap();
    assert!(report.idx_rebuilt, "{report:?}");
    assert_eq!(
        std::fs::read(dir.path().join("12.idx")).unwrap().len(),
        3 * 16
    );
    assert_eq!(volume.read(2, 9).unwrap().needle().data, &[2u8; 20][..]);
    let error = volume
        .write(&needle(4, 9, b"new", b"n"), false)
        .unwrap_err();
    assert!(
        matches!(error, WriteError::Append(AppendError::ReadOnly { .. })),
        "{error:?}"
    );
}

// Proves an empty write is refused with a reason (on disk it would be indistinguishable
// from a delete marker, so it could not survive an index rebuild).
#[test]
fn empty_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut volume = create(dir.path(), 13);
    let error = volume
        .write(&needle(1, 1, b"", b"empty"), false)
        .unwrap_err();
    assert!(error.to_string().contains("has no data"), "{error}");
    assert_eq!(volume.stats().file_count, 0);
}
