//! The volume server's gRPC (SeaweedFS's `volume_server_pb.VolumeServer`) with a gRPC client
//! of our own: BatchDelete with and without the cookie check, VolumeServerStatus, and the
//! gRPC port the master hands out with every location.

mod master_common;
mod support;

mod pb {
    pub mod volume_server_pb {
        tonic::include_proto!("volume_server_pb");
    }
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use master_common::{get, http, multipart_file};
use pb::volume_server_pb::volume_server_client::VolumeServerClient;
use pb::volume_server_pb::*;
use support::ChildGuard;

/// Upload `data` through the master's assignment; the fid and where it was stored.
fn upload(master: &str, data: &[u8]) -> (String, String) {
    let assigned = master_common::assign_retrying(master, "", Duration::from_secs(30));
    let fid = assigned["fid"].as_str().unwrap().to_string();
    let url = assigned["url"].as_str().unwrap().to_string();
    let (content_type, body) = multipart_file("a.txt", data);
    let stored = http(
        "POST",
        &url,
        &format!("/{fid}"),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(stored.unwrap().status, 201);
    (fid, url)
}

/// The same file id with another cookie.
fn with_wrong_cookie(fid: &str) -> String {
    let (head, cookie) = fid.split_at(fid.len() - 8);
    let wrong = u32::from_str_radix(cookie, 16).unwrap() ^ 1;
    format!("{head}{wrong:08x}")
}

/// A `kelp server` (no filer) in a directory, on free ports.
struct KelpServer {
    guard: ChildGuard,
    args: Vec<String>,
    log: PathBuf,
    master: String,
    volume_port: u16,
}

impl KelpServer {
    /// Started in `dir` with `cores` cores, its log in `root`.
    fn start(root: &Path, dir: &Path, cores: u16) -> KelpServer {
        let master_port = support::free_port_pair_run(1);
        let volume_port = support::free_port_pair_run(cores + 1);
        let (m, v, c) = (
            master_port.to_string(),
            volume_port.to_string(),
            cores.to_string(),
        );
        let dir = dir.to_str().unwrap();
        let flags = ["--dir", dir, "--master-port", &m, "--volume-port", &v];
        let more = ["--filer-port", "0", "--cores", &c];
        let args: Vec<String> = std::iter::once("server")
            .chain(flags)
            .chain(more)
            .map(String::from)
            .collect();
        let log = root.join("kelp.log");
        KelpServer {
            guard: spawn_server(&args, &log),
            args,
            log,
            master: format!("127.0.0.1:{master_port}"),
            volume_port,
        }
    }

    /// Stops it (SIGTERM, waited for).
    fn stop(&mut self) {
        self.guard.terminate(Duration::from_secs(10));
    }

    /// Starts it again with the same flags.
    fn start_again(&mut self) {
        self.guard = spawn_server(&self.args, &self.log);
    }
}

fn spawn_server(args: &[String], log: &Path) -> ChildGuard {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ChildGuard::spawn_kelp("kelp server", &args, log)
}

// Proves BatchDelete deletes each file on the core that owns it, answering per file as
// SeaweedFS does: 202 with the size, "not found" (404) for a file already gone, 404 for a
// wrong cookie when the cookie is checked, 400 for a malformed id; and deletes with a wrong
// cookie when asked to skip the check (what SeaweedFS's filer asks). Also that lookups carry
// the volume server's gRPC port and VolumeServerStatus names the server's place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_answers_per_file() {
    let root = tempfile::tempdir().unwrap();
    let server = KelpServer::start(root.path(), &root.path().join("kelp"), 2);
    let (master, volume_port) = (server.master.clone(), server.volume_port);
    let uploads = tokio::task::spawn_blocking(move || {
        let files: Vec<(String, String)> = (0..3)
            .map(|i| upload(&master, &[b'x'; 100][..50 + i]))
            .collect();
        let lookup = get(&master, &format!("/dir/lookup?fileId={}", files[0].0)).unwrap();
        (files, lookup.json())
    });
    let (files, lookup) = uploads.await.unwrap();
    assert_eq!(
        lookup["locations"][0]["grpcPort"],
        u64::from(volume_port) + 10_000
    );
    let address = format!("http://127.0.0.1:{}", volume_port + 10_000);
    let mut client = None;
    for _ in 0..100 {
        client = VolumeServerClient::connect(address.clone()).await.ok();
        if client.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = client.expect("the volume gRPC answers within 10 s");
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let checked = BatchDeleteRequest {
        file_ids: ids(&[
            &files[0].0,
            &files[0].0,
            &with_wrong_cookie(&files[1].0),
            "bad-id",
        ]),
        skip_cookie_check: false,
    };
    let results = client
        .batch_delete(checked)
        .await
        .unwrap()
        .into_inner()
        .results;
    let summary: Vec<(i32, &str)> = results
        .iter()
        .map(|r| (r.status, r.error.as_str()))
        .collect();
    assert_eq!(summary[0], (202, ""));
    assert!(results[0].size > 50, "the needle's size: data, name, mime");
    assert_eq!(summary[1], (404, "not found"), "deleted already");
    assert_eq!(
        summary[2],
        (404, "not found"),
        "a wrong cookie reads as not found"
    );
    assert_eq!(summary[3].0, 400, "{:?}", results[3]);
    let skipped = BatchDeleteRequest {
        file_ids: ids(&[&with_wrong_cookie(&files[1].0), &files[2].0]),
        skip_cookie_check: true,
    };
    let results = client
        .batch_delete(skipped)
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(results.iter().all(|r| r.status == 202), "{results:?}");
    let gone = tokio::task::spawn_blocking(move || {
        files
            .iter()
            .all(|(fid, url)| get(url, &format!("/{fid}")).unwrap().status == 404)
    });
    assert!(gone.await.unwrap(), "every file deleted reads 404");
    let status = client
        .volume_server_status(VolumeServerStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.data_center.as_str(), status.rack.as_str()),
        ("DefaultDataCenter", "DefaultRack")
    );
    assert!(status.disk_statuses[0].all > 0);
}

/// The `/status` entry of volume `volume_id` on `server` (a volume server's `Volumes`).
fn status_entry(server: &str, volume_id: u64) -> serde_json::Value {
    let status = get(server, "/status").unwrap().json();
    let volumes = status["Volumes"].as_array().cloned().unwrap_or_default();
    volumes
        .into_iter()
        .find(|volume| volume["Id"] == volume_id)
        .unwrap_or_else(|| panic!("volume {volume_id} not in {server}/status"))
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// Proves a volume reports when it last changed as SeaweedFS does (`modified_at_second`, which
// `weed shell volume.check.disk` compares with the pulse): the time of its newest write, in
// the volume server's `/status` and, through the heartbeat, in the master's topology; and
// after a restart, the `.dat`'s modification time.
#[test]
fn volumes_report_when_they_were_last_modified() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("kelp");
    let mut server = KelpServer::start(root.path(), &dir, 1);
    let master = server.master.clone();
    upload(&master, b"first");
    std::thread::sleep(Duration::from_millis(2100));
    let written_from = unix_now_s();
    let (fid, url) = upload(&master, b"second");
    let written_to = unix_now_s();
    let volume_id: u64 = fid.split(',').next().unwrap().parse().unwrap();
    let modified = status_entry(&url, volume_id)["ModifiedAtSecond"]
        .as_u64()
        .unwrap();
    assert!(
        (written_from..=written_to).contains(&modified),
        "{modified} not in {written_from}..={written_to}: the newest write's time"
    );
    support::wait_until("the master to hear it", Duration::from_secs(15), || {
        let status = get(&master, "/vol/status").unwrap().json().to_string();
        status.contains(&format!("\"ModifiedAtSecond\":{modified}"))
    });
    server.stop();
    let dat = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.to_string_lossy()
                .ends_with(&format!("{volume_id}.dat"))
        })
        .unwrap();
    let dat_modified_s = std::fs::metadata(&dat)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    server.start_again();
    let mut reopened = None;
    support::wait_until("the volume server again", Duration::from_secs(15), || {
        reopened = get(&url, "/status")
            .ok()
            .map(|_| status_entry(&url, volume_id));
        reopened.is_some()
    });
    assert_eq!(
        reopened.unwrap()["ModifiedAtSecond"],
        dat_modified_s,
        "after a restart: the .dat's modification time"
    );
}

/// A client of the volume gRPC at `address` (`http://host:port`), retried while it starts.
async fn volume_client(address: &str) -> VolumeServerClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(client) = VolumeServerClient::connect(address.to_string()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the volume gRPC at {address} answers within 10 s");
}

// Proves VolumeCopy refuses a volume the target's disk has no room for (its free space less
// `--min-free-space-mb`) with an error that says so, before it writes anything: no file of
// the volume, whole or partial, is left on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_copy_refuses_a_volume_without_room() {
    let root = tempfile::tempdir().unwrap();
    let server = KelpServer::start(root.path(), &root.path().join("source"), 1);
    let (master, source_port) = (server.master.clone(), server.volume_port);
    let uploaded = tokio::task::spawn_blocking(move || upload(&master, &[b'y'; 5000]));
    let (fid, _) = uploaded.await.unwrap();
    let volume_id: u32 = fid.split(',').next().unwrap().parse().unwrap();

    let target_port = support::free_port_pair_run(2);
    let target_dir = root.path().join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let (t, master) = (target_port.to_string(), server.master.clone());
    let target_args = [
        "volume",
        "--dir",
        target_dir.to_str().unwrap(),
        "--port",
        &t,
        "--master",
        &master,
        "--cores",
        "1",
        "--min-free-space-mb",
        "1000000000",
    ];
    let log = root.path().join("target.log");
    let _target = ChildGuard::spawn_kelp("kelp volume", &target_args, &log);
    let address = format!("http://127.0.0.1:{}", target_port + 10_000);
    let mut client = volume_client(&address).await;
    let request = VolumeCopyRequest {
        volume_id,
        source_data_node: format!("127.0.0.1:{source_port}.{}", source_port + 10_000),
        ..Default::default()
    };
    let refused = match client.volume_copy(request).await {
        Ok(stream) => {
            let mut stream = stream.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("VolumeCopy of volume {volume_id} succeeded"),
                    Err(status) => break status,
                }
            }
        }
        Err(status) => status,
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("--min-free-space-mb")
            && refused.message().contains(&format!("volume {volume_id}")),
        "{refused:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&target_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains(&volume_id.to_string()))
        .collect();
    assert!(left.is_empty(), "files left on the target: {left:?}");
}

/// Reads `fid` from `url` (off the async runtime): the status and body.
async fn read_back(url: &str, fid: &str) -> (u16, Vec<u8>) {
    let (url, path) = (url.to_string(), format!("/{fid}"));
    let answer = tokio::task::spawn_blocking(move || get(&url, &path).unwrap());
    let answer = answer.await.unwrap();
    (answer.status, answer.body)
}

// Proves VolumeUnmount stops serving a volume and keeps its files, VolumeMount serves it
// again from them (and refuses a volume mounted already, or one whose files are not there),
// and VolumeConfigure changes its placement in the superblock and the `.vif` as SeaweedFS
// does, refusing a bad placement with an error naming it and leaving the volume served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_unmount_mount_and_take_a_new_placement() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("kelp");
    let server = KelpServer::start(root.path(), &dir, 1);
    let (master, volume_port) = (server.master.clone(), server.volume_port);
    let uploaded = tokio::task::spawn_blocking(move || upload(&master, b"kept through it all"));
    let (fid, url) = uploaded.await.unwrap();
    let volume_id: u32 = fid.split(',').next().unwrap().parse().unwrap();
    let address = format!("http://127.0.0.1:{}", volume_port + 10_000);
    let mut client = volume_client(&address).await;
    let status = |volume_id| VolumeStatusRequest { volume_id };

    client
        .volume_unmount(VolumeUnmountRequest { volume_id })
        .await
        .unwrap();
    let gone = client.volume_status(status(volume_id)).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    let dat = dir.join(format!("{volume_id}.dat"));
    assert!(dat.exists() && dir.join(format!("{volume_id}.idx")).exists());
    let again = client
        .volume_unmount(VolumeUnmountRequest { volume_id })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound, "{again:?}");

    client
        .volume_mount(VolumeMountRequest { volume_id })
        .await
        .unwrap();
    let read = read_back(&url, &fid).await;
    assert_eq!(read, (200, b"kept through it all".to_vec()));
    let twice = client
        .volume_mount(VolumeMountRequest { volume_id })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::AlreadyExists, "{twice:?}");
    let absent = client
        .volume_mount(VolumeMountRequest { volume_id: 999 })
        .await
        .unwrap_err();
    assert_eq!(absent.code(), tonic::Code::NotFound, "{absent:?}");

    let configure = |replication: &str| VolumeConfigureRequest {
        volume_id,
        replication: replication.into(),
    };
    let refused = client.volume_configure(configure("9x")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("\"9x\""), "{refused:?}");
    client.volume_configure(configure("010")).await.unwrap();
    let superblock = std::fs::read(&dat).unwrap();
    assert_eq!(superblock[1], 10, "placement 010 in the superblock");
    let vif = std::fs::read_to_string(dir.join(format!("{volume_id}.vif"))).unwrap();
    assert!(vif.contains("\"010\""), "{vif}");
    client.volume_status(status(volume_id)).await.unwrap();
    let read = read_back(&url, &fid).await;
    assert_eq!(read, (200, b"kept through it all".to_vec()));
}
