//! Compatibility with the real SeaweedFS 4.48 (the large-disk build: 17-byte `.idx`, `.vif`
//! with `"bytesOffset": 5`): volumes it writes open in Kelp and read back the same bytes,
//! names, mimes, pairs and flags; volumes Kelp writes pass `weed export`, and `weed fix`
//! rebuilds the same `.idx` Kelp wrote (and the same one `kelp fix` rebuilds).

mod support;

use kelp_engine::format::{FileId, Needle, ReplicaPlacement, Ttl};
use kelp_engine::volume::{
    FileReadError, FileVolume, OpenOptions, ReadError, default_config, offline,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::WeedCluster;

/// A free port whose gRPC companion (port + 10000) is free too.
fn free_peer_port() -> u16 {
    for _ in 0..200 {
        let port = support::free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000) found");
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, head, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, response[split + 4..].to_vec())
}

fn assign(master_port: u16) -> Option<String> {
    let (status, _, body) = http(
        master_port,
        "GET",
        "/dir/assign?collection=compat",
        &[],
        b"",
    );
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    (status == 200)
        .then(|| value["fid"].as_str().map(str::to_string))
        .flatten()
}

/// What was uploaded, to check against what Kelp reads.
struct Upload {
    fid: FileId,
    stored: Vec<u8>,
    name: String,
    mime: String,
    gzip: bool,
    pair: Option<(String, String)>,
    deleted: bool,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn upload_all(master_port: u16, volume_port: u16) -> Vec<Upload> {
    let mut uploads = Vec::new();
    for i in 0..12usize {
        let fid_text = assign(master_port).expect("assign");
        let fid = FileId::parse(&fid_text).unwrap();
        let plain: Vec<u8> = (0..(i * 997 + 3)).map(|j| (i * 7 + j * 13) as u8).collect();
        let gzip_it = i % 4 == 1;
        let stored = if gzip_it { gzip(&plain) } else { plain };
        let name = format!("file-{i}.bin");
        let mime = if i % 3 == 0 {
            "image/png"
        } else {
            "application/x-kelp"
        }
        .to_string();
        let disposition = format!("attachment; filename=\"{name}\"");
        let mut headers = vec![
            ("Content-Type", mime.as_str()),
            ("Content-Disposition", disposition.as_str()),
        ];
        if gzip_it {
            headers.push(("Content-Encoding", "gzip"));
        }
        let pair = (i % 2 == 0).then(|| ("Color".to_string(), format!("blue{i}")));
        let pair_header = pair.as_ref().map(|(_, v)| v.clone());
        if let Some(value) = &pair_header {
            headers.push(("Seaweed-Color", value.as_str()));
        }
        let (status, _, body) = http(
            volume_port,
            "POST",
            &format!("/{fid_text}"),
            &headers,
            &stored,
        );
        assert_eq!(
            status,
            201,
            "upload {fid_text}: {}",
            String::from_utf8_lossy(&body)
        );
        uploads.push(Upload {
            fid,
            stored,
            name,
            mime,
            gzip: gzip_it,
            pair,
            deleted: false,
        });
    }
    for upload in uploads.iter_mut().filter(|u| u.fid.key % 3 == 0) {
        let (status, _, body) = http(volume_port, "DELETE", &format!("/{}", upload.fid), &[], b"");
        assert_eq!(
            status,
            202,
            "delete {}: {}",
            upload.fid,
            String::from_utf8_lossy(&body)
        );
        upload.deleted = true;
    }
    assert!(uploads.iter().any(|u| u.deleted) && uploads.iter().any(|u| !u.deleted));
    uploads
}

/// Starts a SeaweedFS master and volume server, uploads and deletes, stops them, and
/// returns the volume directory and what was uploaded.
fn peer_volumes(root: &Path) -> (PathBuf, Vec<Upload>) {
    let vdir = root.join("v");
    let ports = (free_peer_port(), free_peer_port());
    let mut weed = WeedCluster::start(root, &vdir, ports, 64, 20);
    let (master_port, volume_port) = ports;
    support::wait_until("SeaweedFS to assign", Duration::from_secs(30), || {
        support::port_is_open(master_port) && assign(master_port).is_some()
    });
    let uploads = upload_all(master_port, volume_port);
    weed.stop();
    (vdir, uploads)
}

fn weed(args: &[&str]) -> String {
    let out = Command::new(support::weed_binary())
        .args(args)
        .output()
        .expect("run weed");
    assert!(
        out.status.success(),
        "weed {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_volume(from: &Path, to: &Path, base: &str) {
    std::fs::create_dir_all(to).unwrap();
    for ext in ["dat", "idx", "vif"] {
        let name = format!("{base}.{ext}");
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

// Proves volumes written by SeaweedFS 4.48 open in Kelp without repair and read back the
// uploaded bytes, names, mimes, gzip flags and pairs, deleted files being gone; and that
// `kelp fix` rebuilds the same `.idx` as `weed fix` and as SeaweedFS wrote live.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_volumes_open_in_kelp() {
    let root = tempfile::tempdir().unwrap();
    let (vdir, uploads) = peer_volumes(root.path());
    let mut volume_ids: Vec<u32> = uploads.iter().map(|u| u.fid.volume_id).collect();
    volume_ids.sort_unstable();
    volume_ids.dedup();
    for &id in &volume_ids {
        let base = format!("compat_{id}");
        let (weed_copy, kelp_copy) = (root.path().join("weed-fix"), root.path().join("kelp-fix"));
        copy_volume(&vdir, &weed_copy, &base);
        copy_volume(&vdir, &kelp_copy, &base);
        weed(&[
            "fix",
            &format!("-volumeId={id}"),
            "-collection=compat",
            weed_copy.to_str().unwrap(),
        ]);
        offline::fix_index(&kelp_copy, "compat", id).unwrap();
        let idx = format!("{base}.idx");
        let weed_fixed = std::fs::read(weed_copy.join(&idx)).unwrap();
        assert_eq!(
            std::fs::read(kelp_copy.join(&idx)).unwrap(),
            weed_fixed,
            "volume {id}: kelp fix vs weed fix"
        );
        assert_eq!(
            std::fs::read(vdir.join(&idx)).unwrap(),
            weed_fixed,
            "volume {id}: live .idx vs weed fix"
        );
        assert_eq!(weed_fixed.len() % 17, 0, "the peer writes 17-byte entries");
    }
    for &id in &volume_ids {
        let (volume, report) =
            FileVolume::open(&vdir, "compat", id, &OpenOptions::default()).unwrap();
        assert!(report.is_clean(), "volume {id}: {report:?}");
        assert_eq!(
            volume.core().config().offset_width,
            kelp_engine::format::OffsetWidth::Five
        );
        for upload in uploads.iter().filter(|u| u.fid.volume_id == id) {
            check_upload(&volume, upload);
        }
    }
}

fn check_upload(volume: &FileVolume, upload: &Upload) {
    let fid = upload.fid;
    let read = volume.read(fid.key, fid.cookie);
    if upload.deleted {
        assert!(
            matches!(read, Err(FileReadError::Read(ReadError::NotFound { .. }))),
            "{fid}: {read:?}"
        );
        return;
    }
    let read = read.unwrap_or_else(|e| panic!("{fid}: {e}"));
    let needle = read.needle();
    assert_eq!(needle.data, &upload.stored[..], "{fid}: data");
    assert_eq!(needle.name, Some(upload.name.as_bytes()), "{fid}: name");
    assert_eq!(needle.mime, Some(upload.mime.as_bytes()), "{fid}: mime");
    assert_eq!(needle.is_gzipped(), upload.gzip, "{fid}: gzip flag");
    assert_eq!(
        needle.checksum,
        kelp_engine::format::crc32c(&upload.stored),
        "{fid}: crc"
    );
    let pairs = needle
        .pairs
        .map(|p| serde_json::from_slice::<serde_json::Value>(p).unwrap());
    match (&upload.pair, pairs) {
        (Some((name, value)), Some(pairs)) => {
            assert_eq!(pairs[name], value.as_str(), "{fid}: pairs")
        }
        (None, None) => {}
        (want, got) => panic!("{fid}: pairs: want {want:?}, got {got:?}"),
    }
    let location = volume.locate(fid.key, fid.cookie).unwrap();
    assert_eq!(
        location.data_len as usize,
        upload.stored.len(),
        "{fid}: located length"
    );
}

// Proves a volume written by Kelp passes `weed export` (every live needle listed with its
// fid, name, size, gzip flag and mime; deleted ones not) and that `weed fix` rebuilds an
// `.idx` identical to the one Kelp wrote.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn kelp_volumes_pass_weed_export_and_fix() {
    let _ = support::weed_binary();
    let dir = tempfile::tempdir().unwrap();
    let config = default_config(
        42,
        "kc",
        ReplicaPlacement::parse("010").unwrap(),
        Ttl::EMPTY,
    );
    let mut volume = FileVolume::create(dir.path(), config).unwrap();
    let zipped = gzip(b"compressed body");
    let mut expected = Vec::new();
    for key in 1..=10u64 {
        let data: Vec<u8> = if key == 4 {
            zipped.clone()
        } else {
            vec![key as u8; key as usize * 300]
        };
        let name = format!("k{key}.dat");
        let needle = Needle {
            key,
            cookie: 0x1000 + key as u32,
            data: &data,
            flags: if key == 4 { 0x01 } else { 0 },
            name: Some(name.as_bytes()),
            mime: Some(b"application/octet-stream"),
            last_modified_s: Some(1_700_000_000 + key),
            pairs: (key == 2).then_some(&br#"{"A":"b"}"#[..]),
            ..Needle::default()
        };
        volume.write(&needle, false).unwrap();
        expected.push((
            FileId {
                volume_id: 42,
                key,
                cookie: 0x1000 + key as u32,
            },
            name,
            data.len(),
            key == 4,
        ));
    }
    for key in [3u64, 7] {
        volume.delete(key, 0x1000 + key as u32, false).unwrap();
    }
    volume.sync().unwrap();
    drop(volume);
    expected.retain(|(fid, ..)| fid.key != 3 && fid.key != 7);

    let listing = weed(&[
        "export",
        "-dir",
        dir.path().to_str().unwrap(),
        "-volumeId",
        "42",
        "-collection",
        "kc",
    ]);
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(
        rows.len(),
        expected.len(),
        "weed export listing:\n{listing}"
    );
    for ((fid, name, len, gzipped), row) in expected.iter().zip(&rows) {
        assert_eq!(row[0], fid.to_string(), "{listing}");
        assert_eq!(row[1], name);
        assert_eq!(row[2], len.to_string());
        assert_eq!(row[3], gzipped.to_string());
        assert_eq!(row[4], "application/octet-stream");
    }

    let idx = dir.path().join("kc_42.idx");
    let written = std::fs::read(&idx).unwrap();
    std::fs::remove_file(&idx).unwrap();
    weed(&[
        "fix",
        "-volumeId=42",
        "-collection=kc",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        written,
        "weed fix rebuilt a different .idx"
    );
}

// Proves a SeaweedFS volume server loads a volume Kelp wrote, serves its needles (bytes,
// name, mime, pairs as headers), appends to it, and that Kelp then reopens the volume
// without repair and reads SeaweedFS's append.
#[test]
#[ignore = "needs the SeaweedFS peer (KELP_PEER_WEED)"]
fn seaweedfs_serves_and_appends_to_a_kelp_volume() {
    let root = tempfile::tempdir().unwrap();
    let vdir = root.path().join("v");
    std::fs::create_dir_all(&vdir).unwrap();
    let config = default_config(7, "kv", ReplicaPlacement::default(), Ttl::EMPTY);
    let mut volume = FileVolume::create(&vdir, config).unwrap();
    let data = b"written by kelp".repeat(50);
    let needle = Needle {
        key: 0x2a,
        cookie: 0xfeed_beef,
        data: &data,
        name: Some(b"kelp.txt"),
        mime: Some(b"text/x-kelp"),
        pairs: Some(br#"{"Origin":"kelp"}"#),
        last_modified_s: Some(1_700_000_000),
        ..Needle::default()
    };
    volume.write(&needle, true).unwrap();
    drop(volume);

    let ports = (free_peer_port(), free_peer_port());
    // 30720 MB is SeaweedFS's default volume size limit.
    let mut weed = WeedCluster::start(root.path(), &vdir, ports, 30_720, 5);
    let volume_port = weed.volume_port;
    let fid = FileId {
        volume_id: 7,
        key: 0x2a,
        cookie: 0xfeed_beef,
    }
    .to_string();
    let mut got = (0, String::new(), Vec::new());
    support::wait_until(
        "SeaweedFS to serve the Kelp volume",
        Duration::from_secs(30),
        || {
            if !support::port_is_open(volume_port) {
                return false;
            }
            got = http(volume_port, "GET", &format!("/{fid}"), &[], b"");
            got.0 == 200
        },
    );
    let (_, head, body) = got;
    assert_eq!(body, data);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/x-kelp"), "{head}");
    assert!(head.contains("origin: kelp"), "{head}");
    assert!(head.contains("kelp.txt"), "{head}");

    let appended = FileId {
        volume_id: 7,
        key: 0x2b,
        cookie: 0x0bad_cafe,
    };
    let headers = [
        ("Content-Type", "text/plain"),
        ("Content-Disposition", "attachment; filename=\"w.txt\""),
    ];
    let (status, _, body) = http(
        volume_port,
        "POST",
        &format!("/{appended}"),
        &headers,
        b"from weed",
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    weed.stop();

    let (volume, report) = FileVolume::open(&vdir, "kv", 7, &OpenOptions::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        volume.read(0x2b, 0x0bad_cafe).unwrap().needle().data,
        b"from weed"
    );
    assert_eq!(
        volume.read(0x2a, 0xfeed_beef).unwrap().needle().data,
        &data[..]
    );
}
