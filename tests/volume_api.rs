//! End-to-end tests of `kelp volume`'s HTTP API (one core): the real binary, driven by curl
//! and by raw HTTP/1.1 over std TcpStream.

mod support;
mod volume_support;

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;
use volume_support::{VolumeServer, curl, get, request};

const FID: &str = "1,01637037d6";

fn server_with_volume() -> VolumeServer {
    let server = VolumeServer::start(1, "", &[]);
    server.create_volume(1, "");
    server
}

// Proves a `curl -F` upload is stored with its name and type, every path form reads it back
// with SeaweedFS's headers, HEAD sends them without a body, and curl's range read and
// delete work.
#[test]
fn multipart_upload_then_every_path_form() {
    let server = server_with_volume();
    let file = server.dir.join("hello.txt");
    std::fs::write(&file, b"hello kelp\n").unwrap();
    let url = format!("http://127.0.0.1:{}/{FID}", server.port);
    let (out, _) = curl(&["-F", &format!("file=@{}", file.display()), &url]);
    let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(answer["name"], "hello.txt");
    assert_eq!(answer["size"], 11);
    let etag = answer["eTag"].as_str().unwrap().to_string();
    assert_eq!(etag.len(), 8);
    let head = request(server.port, "HEAD", "/1,01637037d6", &[], b"");
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("11"))
    );
    assert_eq!(head.header("etag"), Some(format!("\"{etag}\"").as_str()));
    assert!(head.body.is_empty());
    for path in [
        "/1,01637037d6",
        "/1,01637037d6.txt",
        "/1/01637037d6",
        "/1/01637037d6/hello.txt",
    ] {
        let response = get(server.port, path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        assert_eq!(response.body, b"hello kelp\n", "GET {path}");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain"),
            "GET {path}"
        );
        assert_eq!(
            response.header("etag"),
            Some(format!("\"{etag}\"").as_str())
        );
        assert_eq!(response.header("accept-ranges"), Some("bytes"));
        assert!(response.header("last-modified").is_some());
        assert_eq!(
            response.header("content-disposition"),
            Some("inline; filename=hello.txt")
        );
    }
    let (ranged, _) = curl(&["-r", "6-9", &url]);
    assert_eq!(ranged, b"kelp", "curl's range read");
    let (deleted, _) = curl(&["-X", "DELETE", &url]);
    let deleted: serde_json::Value = serde_json::from_slice(&deleted).unwrap();
    assert!(deleted["size"].as_u64().unwrap() >= 11);
    let (gone, _) = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(gone, b"404");
    let head = request(server.port, "HEAD", "/1,01637037d6.txt", &[], b"");
    assert_eq!(head.status, 404, "HEAD of a deleted needle");
}

// Proves raw uploads honour Content-MD5 (400 on mismatch), Seaweed-* pairs, ts and the
// name from Content-Disposition; PUT works like POST.
#[test]
fn raw_upload_options() {
    let server = server_with_volume();
    let bad = request(
        server.port,
        "POST",
        "/1,02aabbccdd",
        &[("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")],
        b"hello",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("Content-MD5")
    );
    assert_eq!(
        get(server.port, "/1,02aabbccdd").status,
        404,
        "a refused upload stores nothing"
    );
    let headers = [
        ("Content-MD5", "XUFAKrxLKna5cZ2REBfFkg=="),
        ("Seaweed-Owner", "alice"),
        ("Content-Type", "application/x-kelp"),
        ("Content-Disposition", "attachment; filename=\"notes.bin\""),
    ];
    let put = request(
        server.port,
        "PUT",
        "/1,02aabbccdd?ts=784111777",
        &headers,
        b"hello",
    );
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.json()["name"], "notes.bin");
    let response = get(server.port, "/1,02aabbccdd");
    assert_eq!(response.body, b"hello");
    assert_eq!(response.header("owner"), Some("alice"));
    assert_eq!(response.header("content-type"), Some("application/x-kelp"));
    assert_eq!(
        response.header("last-modified"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
}

// Proves gzip uploads are stored as sent, served as-is to clients that accept gzip and
// inflated for those that do not.
#[test]
fn gzip_served_as_stored_or_inflated() {
    use flate2::write::GzEncoder;
    let server = server_with_volume();
    let original = b"squeeze me ".repeat(100);
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&original).unwrap();
    let compressed = encoder.finish().unwrap();
    let up = request(
        server.port,
        "POST",
        "/1,03000000aa",
        &[("Content-Encoding", "gzip")],
        &compressed,
    );
    assert_eq!(up.status, 201, "{}", up.text());
    let zipped = request(
        server.port,
        "GET",
        "/1,03000000aa",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.body, compressed);
    let plain = get(server.port, "/1,03000000aa");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, original);
}

// Proves conditional GETs give 304, single ranges 206 with Content-Range, and a range past
// the end 416.
#[test]
fn conditional_and_range_reads() {
    let server = server_with_volume();
    let up = request(
        server.port,
        "POST",
        "/1,04000000bb?ts=784111777",
        &[],
        b"0123456789",
    );
    assert_eq!(up.status, 201);
    let etag = format!("\"{}\"", up.json()["eTag"].as_str().unwrap());
    // The uploaded needle, read with one request header.
    let get_with = |name: &str, value: &str| {
        request(server.port, "GET", "/1,04000000bb", &[(name, value)], b"")
    };
    let cached = get_with("If-None-Match", &etag);
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let since = get_with("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(since.status, 304);
    let older = get_with("If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT");
    assert_eq!(older.status, 200);
    let ranged = get_with("Range", "bytes=2-5");
    assert_eq!((ranged.status, ranged.body.as_slice()), (206, &b"2345"[..]));
    assert_eq!(ranged.header("content-range"), Some("bytes 2-5/10"));
    let suffix = get_with("Range", "bytes=-3");
    assert_eq!(suffix.body, b"789");
    let past = get_with("Range", "bytes=10-");
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */10"));
}

// Proves deletes answer 202 with the size and the needle is gone; wrong cookies, missing keys
// and another cookie's overwrite are refused.
#[test]
fn delete_cookie_and_ttl_rules() {
    let server = server_with_volume();
    assert_eq!(
        request(server.port, "POST", "/1,05000000cc", &[], b"abc").status,
        201
    );
    assert_eq!(
        get(server.port, "/1,05000000dd").status,
        404,
        "wrong cookie reads as missing"
    );
    let overwrite = request(server.port, "POST", "/1,05000000dd", &[], b"xyz");
    assert_eq!(
        overwrite.status,
        400,
        "another cookie cannot overwrite: {}",
        overwrite.text()
    );
    let deleted = request(server.port, "DELETE", "/1,05000000cc", &[], b"");
    assert_eq!(deleted.status, 202);
    assert!(deleted.json()["size"].as_u64().unwrap() > 0);
    assert_eq!(get(server.port, "/1,05000000cc").status, 404);
    assert_eq!(
        request(server.port, "DELETE", "/1,05000000cc", &[], b"").status,
        404
    );
    assert_eq!(
        get(server.port, "/9,06000000ee").status,
        503,
        "no master reachable for a redirect"
    );
    assert_eq!(get(server.port, "/1,xyz").status, 400);
}

// Proves a needle whose TTL has run out reads as missing (404, GET and HEAD) while one still
// within its TTL reads back. SeaweedFS counts a TTL from the needle's append time, so the
// expired needle is written through the engine with an append time two hours ago, before the
// server opens the volume.
#[test]
fn expired_needles_read_as_missing() {
    use kelp_engine::format::{Needle, ReplicaPlacement, Ttl};
    use kelp_engine::volume::{FileVolume, default_config};
    use std::os::unix::fs::FileExt as _;

    let temp = tempfile::tempdir().unwrap();
    let config = default_config(1, "", ReplicaPlacement::default(), Ttl::EMPTY);
    let volume = FileVolume::create(temp.path(), config).unwrap();
    let (mut core, dat, idx, _paths) = volume.into_parts();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let two_hours_ns = 2 * 3600 * 1_000_000_000;
    for (key, ttl, append_at_ns) in [(6, "1m", now_ns - two_hours_ns), (7, "1d", now_ns)] {
        let needle = Needle {
            cookie: 0xee,
            key,
            data: b"old",
            flags: 0,
            name: None,
            mime: None,
            last_modified_s: Some(append_at_ns / 1_000_000_000),
            ttl: Some(Ttl::parse(ttl).unwrap()),
            pairs: None,
            checksum: 0,
            append_at_ns: 0,
        };
        let plan = core.plan_write(&needle, append_at_ns).unwrap();
        dat.write_all_at(&plan.record, plan.offset).unwrap();
        let entry = core.complete(&plan);
        idx.write_all_at(entry.bytes(), entry.offset).unwrap();
    }
    drop((core, dat, idx));
    let server = VolumeServer::start_in(temp.path(), 1, "", &[]);
    assert_eq!(get(server.port, "/1,06000000ee").status, 404, "expired");
    let head = request(server.port, "HEAD", "/1,06000000ee", &[], b"");
    assert_eq!(head.status, 404, "HEAD of an expired needle");
    let fresh = get(server.port, "/1,07000000ee");
    assert_eq!((fresh.status, fresh.body.as_slice()), (200, &b"old"[..]));
}

// Proves the admin calls: create is idempotent, conflicts are 409, --max is 507, delete
// drops the files (404 after), and /status, /healthz, /metrics report.
#[test]
fn admin_status_health_metrics() {
    let server = VolumeServer::start(1, "", &["--max", "2"]);
    server.create_volume(1, "collection=pics&replication=000");
    server.create_volume(1, "collection=pics&replication=0");
    let conflict = request(
        server.port,
        "POST",
        "/admin/volume/create?volume=1&collection=docs",
        &[],
        b"",
    );
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    server.create_volume(2, "ttl=3d");
    let full = request(
        server.port,
        "POST",
        "/admin/volume/create?volume=3",
        &[],
        b"",
    );
    assert_eq!(full.status, 507, "{}", full.text());
    assert!(server.dir.join("pics_1.dat").exists());
    assert_eq!(
        request(server.port, "POST", "/2,01000000aa", &[], b"x").status,
        201
    );
    let status = get(server.port, "/status").json();
    assert_eq!(status["Volumes"].as_array().unwrap().len(), 2);
    assert_eq!(status["Volumes"][0]["Collection"], "pics");
    assert_eq!(status["Volumes"][1]["Ttl"], "3d");
    assert_eq!(status["Volumes"][1]["FileCount"], 1);
    let dropped = request(
        server.port,
        "POST",
        "/admin/volume/delete?volume=1",
        &[],
        b"",
    );
    assert_eq!(dropped.status, 200, "{}", dropped.text());
    assert!(!server.dir.join("pics_1.dat").exists());
    assert_eq!(
        request(
            server.port,
            "POST",
            "/admin/volume/delete?volume=1",
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(get(server.port, "/healthz").status, 200);
    let metrics = get(server.port, "/metrics").text();
    assert!(
        metrics.contains("kelp_volume_requests_total{method=\"POST\",status=\"201\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kelp_volume_request_duration_seconds_bucket{method=\"GET\""));
}

// Proves pipelined requests on one connection are all answered, in order.
#[test]
fn pipelined_requests() {
    let server = server_with_volume();
    assert_eq!(
        request(server.port, "POST", "/1,07000000aa", &[], b"first").status,
        201
    );
    let mut stream = volume_support::connect(server.port);
    let mut batch = volume_support::encode("GET", "/1,07000000aa", &[], b"");
    batch.extend(volume_support::encode(
        "POST",
        "/1,08000000aa",
        &[],
        b"second",
    ));
    batch.extend(volume_support::encode("GET", "/1,08000000aa", &[], b""));
    stream.write_all(&batch).unwrap();
    let responses = volume_support::read_responses(&mut stream, 3);
    let (first, written, second) = (&responses[0], &responses[1], &responses[2]);
    assert_eq!((first.status, first.body.as_slice()), (200, &b"first"[..]));
    assert_eq!(written.status, 201);
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"second"[..])
    );
}

// Proves curl's Expect: 100-continue upload (> 1 KB) works, a body over the limit is 413,
// and a malformed request does not hurt the next connection.
#[test]
fn continue_limit_and_malformed() {
    let server = VolumeServer::start(1, "", &["--file-size-limit-mb", "1"]);
    server.create_volume(1, "");
    let big = server.dir.join("big.bin");
    std::fs::write(&big, vec![7u8; 100_000]).unwrap();
    let url = format!("http://127.0.0.1:{}/1,09000000aa", server.port);
    let (_, trace) = curl(&[
        "-v",
        "--data-binary",
        &format!("@{}", big.display()),
        "-H",
        "Expect: 100-continue",
        &url,
    ]);
    assert!(
        trace.contains("100 Continue"),
        "server must answer 100 Continue: {trace}"
    );
    assert_eq!(get(server.port, "/1,09000000aa").body.len(), 100_000);
    let tail = request(
        server.port,
        "GET",
        "/1,09000000aa",
        &[("Range", "bytes=99990-")],
        b"",
    );
    assert_eq!(
        (tail.status, tail.body.as_slice()),
        (206, &[7u8; 10][..]),
        "range sent from the file"
    );
    let huge = vec![1u8; 2 << 20];
    let refused = request(server.port, "POST", "/1,0a000000aa", &[], &huge);
    assert_eq!(refused.status, 413);
    let mut bad = volume_support::connect(server.port);
    bad.write_all(b"GARBAGE \x01\x02 NOT-HTTP\r\n\r\n").unwrap();
    let answer = volume_support::read_response(&mut bad, false);
    assert_eq!(answer.status, 400);
    assert_eq!(get(server.port, "/1,09000000aa").status, 200);
}

// Proves a client that sends half a request and stalls does not delay others.
#[test]
fn slow_client_does_not_block_others() {
    let server = server_with_volume();
    assert_eq!(
        request(server.port, "POST", "/1,0b000000aa", &[], b"quick").status,
        201
    );
    let mut slow = volume_support::connect(server.port);
    slow.write_all(b"POST /1,0c000000aa HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly-part")
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(get(server.port, "/1,0b000000aa").body, b"quick");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads waited on the slow client"
    );
    drop(slow);
}

// Proves SIGTERM stops the server cleanly (every core syncs its volumes, exit status 0) and
// what it acknowledged reads back after the restart.
#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let mut server = VolumeServer::start(2, "", &[]);
    server.create_volume(1, "");
    server.create_volume(2, "");
    for fid in ["/1,11000000aa", "/2,12000000aa"] {
        let written = request(server.port, "POST", fid, &[], fid.as_bytes());
        assert_eq!(written.status, 201, "{}", written.text());
    }
    server.stop_and_restart();
    let log = server.log_text();
    assert!(log.contains("volume server: stopped"), "{log}");
    assert!(!log.contains("at shutdown"), "a sync failed: {log}");
    for fid in ["/1,11000000aa", "/2,12000000aa"] {
        assert_eq!(get(server.port, fid).body, fid.as_bytes());
    }
}

// Proves data acknowledged before a SIGKILL (with and without fsync=true) is read back after
// the restart, with the volume recovered by itself.
#[test]
fn data_survives_sigkill() {
    let mut server = server_with_volume();
    let durable = request(
        server.port,
        "POST",
        "/1,0d000000aa?fsync=true",
        &[],
        b"durable",
    );
    assert_eq!(durable.status, 201, "{}", durable.text());
    assert_eq!(
        request(server.port, "POST", "/1,0e000000aa", &[], b"cached").status,
        201
    );
    assert_eq!(
        request(server.port, "DELETE", "/1,0e000000aa?fsync=true", &[], b"").status,
        202
    );
    assert_eq!(
        request(server.port, "POST", "/1,0f000000aa", &[], b"page cache").status,
        201
    );
    server.crash_and_restart();
    assert_eq!(get(server.port, "/1,0d000000aa").body, b"durable");
    assert_eq!(get(server.port, "/1,0e000000aa").status, 404);
    assert_eq!(get(server.port, "/1,0f000000aa").body, b"page cache");
    assert_eq!(
        request(server.port, "POST", "/1,10000000aa", &[], b"after").status,
        201
    );
}

// Proves concurrent fsync=true writes (group commit) are all acknowledged and readable, and a
// master that does not answer is retried and logged, not fatal.
#[test]
fn concurrent_durable_writes() {
    let server = server_with_volume();
    let port = server.port;
    let writers: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let path = format!("/1,{:x}000000aa?fsync=true", 0x20 + i);
                request(port, "POST", &path, &[], format!("durable {i}").as_bytes()).status
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.join().unwrap(), 201);
    }
    for i in 0..8 {
        let path = format!("/1,{:x}000000aa", 0x20 + i);
        assert_eq!(get(port, &path).text(), format!("durable {i}"));
    }
    assert!(
        server.log_text().contains("heartbeat failed, retrying"),
        "{}",
        server.log_text()
    );
}

/// `kelp volume` on 2 cores, started with RLIMIT_NOFILE set to 1024 (soft and hard).
fn volume_with_fd_limit_1024(dir: &std::path::Path, port: u16, extra: &[&str]) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(support::kelp_bin());
    command
        .args(["volume", "--dir", &dir.display().to_string()])
        .args(["--port", &port.to_string(), "--cores", "2"])
        .args(["--master", &support::dead_address()])
        .args(extra);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

// Proves an open-file limit too low for `--max-connections` stops the start with an error
// naming the flag and the fix, and that without the flag the server starts anyway, with as
// many connections per core as the limit allows (and says so).
#[test]
fn open_file_limit_checked_against_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port_run(3);
    let refused = volume_with_fd_limit_1024(dir.path(), port, &["--max-connections", "5000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("--max-connections 5000"), "{stderr}");
    assert!(stderr.contains("ulimit -n"), "{stderr}");
    let log_path = dir.path().join("volume.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = volume_with_fd_limit_1024(dir.path(), port, &[])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = support::ChildGuard::adopt("volume", child, &log_path);
    support::wait_until("the volume server", Duration::from_secs(20), || {
        volume_support::healthy(port)
    });
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("connections per core"), "{log}");
}

// Proves a GET of a file the page cache dropped (as memory pressure would) is answered with
// its bytes, read through the ring rather than by faulting on the core's thread, and is
// counted in /metrics; the read brings the file back, so the next GET comes from the cache.
#[test]
fn evicted_files_read_back_through_the_ring() {
    // On the build's disk: `/tmp` may be a tmpfs, whose pages cannot be dropped.
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = VolumeServer::start_in(temp.path(), 1, "", &[]);
    server.create_volume(1, "");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let up = request(server.port, "POST", "/1,0a000000aa", &[], &data);
    assert_eq!(up.status, 201, "{}", up.text());
    let uncached = |port: u16| {
        let metrics = get(port, "/metrics").text();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("kelp_volume_uncached_reads_total{core=\"0\"}"))
            .unwrap_or_else(|| panic!("no uncached-reads metric in {metrics}"))
            .to_string();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    assert_eq!(uncached(server.port), 0);
    let dat = std::fs::File::open(temp.path().join("1.dat")).unwrap();
    dat.sync_all().unwrap();
    // SAFETY: posix_fadvise on an open descriptor; no memory is touched.
    let dropped = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&dat),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    assert_eq!(dropped, 0);
    let cold = get(server.port, "/1,0a000000aa");
    assert_eq!(cold.status, 200, "{}", cold.text());
    assert!(
        cold.body == data,
        "the evicted file read back different bytes"
    );
    assert_eq!(uncached(server.port), 1);
    let warm = get(server.port, "/1,0a000000aa");
    assert!(warm.status == 200 && warm.body == data);
    assert_eq!(uncached(server.port), 1, "read again from the page cache");
}
