//! `kelp backup --master H:P --dir D --volume-id N [--collection C]`: keeps a local copy of a
//! volume up to date, as `weed backup`.
//!
//! The volume's servers come from the master's `/dir/lookup`; the first that answers is the
//! source. With no local copy, or one at another compaction revision than the source's (the
//! source was compacted since), or one longer than the source's `.dat`, the `.vif`, `.idx`
//! and `.dat` are copied whole (CopyFile gRPC) into `<file>.backup` files, then put in place
//! with the local `.idx` removed first and the new `.idx` last: a run cut short leaves the
//! previous copy, or a `.dat` whose `.idx` the next open rebuilds. Otherwise only the records
//! appended after the local copy's last one are pulled (VolumeTailSender from its append
//! time) and appended through the engine with their append times, so the `.idx` follows and
//! the next run starts where this one stopped; deletes arrive as delete markers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kelp_engine::format::needle::{Needle, Version};
use kelp_engine::volume::offline::DatFile;
use kelp_engine::volume::{DeleteError, FileVolume, OpenOptions, VolumePaths};
use tonic::transport::Channel;

use crate::CliResult;
use crate::pb::volume_server_pb::volume_server_client::VolumeServerClient;
use crate::pb::volume_server_pb::{
    CopyFileRequest, ReadVolumeFileStatusRequest, ReadVolumeFileStatusResponse,
    VolumeTailSenderRequest,
};
use crate::volume::grpc::volume_copy::copy_file_request;

/// Seconds the source's tail stays open without a new record before the pull ends.
const TAIL_IDLE_SECONDS: u32 = 1;
/// Timeout of the master lookup.
const LOOKUP_TIMEOUT_MS: u64 = 10_000;
/// A record of the tail may be at most this large (as the volume server's receiver).
const RECORD_BYTES_MAX: usize = 1 << 30;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The master (`host:port`) that says where the volume is.
    #[arg(long)]
    pub master: String,
    /// The local copy (its collection is checked against the source's).
    #[command(flatten)]
    pub volume: crate::tools::VolumeFiles,
}

/// What one run did.
#[derive(Debug, Default)]
struct Pulled {
    whole_copy: bool,
    bytes: u64,
    needles_appended: u64,
    deletes_applied: u64,
}

pub fn run(args: Args) -> CliResult {
    kelp_engine::format::check_collection(&args.volume.collection)
        .map_err(|e| format!("--collection: {e}"))?;
    std::fs::create_dir_all(&args.volume.dir)
        .map_err(|e| format!("create --dir {}: {e}", args.volume.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))?;
    let (source, pulled) = runtime.block_on(backup(&args))?;
    let volume_id = args.volume.volume_id;
    let how = if pulled.whole_copy {
        "copied whole"
    } else {
        "brought up to date"
    };
    println!(
        "backup: volume {volume_id} {how} from {source} into {}: {} bytes pulled, {} needles \
         appended, {} deletes applied",
        args.volume.dir.display(),
        pulled.bytes,
        pulled.needles_appended,
        pulled.deletes_applied
    );
    Ok(())
}

async fn backup(args: &Args) -> Result<(String, Pulled), String> {
    let volume_id = args.volume.volume_id;
    let servers = locate(&args.master, volume_id).await?;
    let mut failures = Vec::new();
    for server in servers {
        let client = crate::volume::grpc::volume_copy::peer_client(&server).await;
        let mut client = match client {
            Ok(client) => client,
            Err(status) => {
                failures.push(status.message().to_string());
                continue;
            }
        };
        let request = ReadVolumeFileStatusRequest { volume_id };
        match client.read_volume_file_status(request).await {
            Ok(status) => {
                let status = status.into_inner();
                let pulled = pull(args, &mut client, &server, &status).await?;
                return Ok((server, pulled));
            }
            Err(status) => failures.push(format!("{server}: {}", status.message())),
        }
    }
    Err(format!(
        "no server of volume {volume_id} answered: {}",
        failures.join("; ")
    ))
}

/// The servers of `volume_id` as the master lists them, spelled `host:port.grpcPort`.
async fn locate(master: &str, volume_id: u32) -> Result<Vec<String>, String> {
    let url = format!("http://{master}/dir/lookup?volumeId={volume_id}");
    let client = crate::master::http_client::HttpClient::new();
    let timeout = Duration::from_millis(LOOKUP_TIMEOUT_MS);
    let reply = client
        .call(hyper::Method::GET, &url, &[], bytes::Bytes::new(), timeout)
        .await
        .map_err(|e| format!("ask the master: {e}"))?;
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        return Err(format!("{url}: status {}: {text}", reply.status));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&reply.body).map_err(|e| format!("{url}: {text:?}: {e}"))?;
    let locations = answer["locations"].as_array().cloned().unwrap_or_default();
    let servers: Vec<String> = locations
        .iter()
        .filter_map(|l| {
            let url = l["url"].as_str()?;
            match l["grpcPort"].as_u64() {
                Some(port) => Some(format!("{url}.{port}")),
                None => Some(url.to_string()),
            }
        })
        .collect();
    if servers.is_empty() {
        return Err(format!("{url}: no server holds volume {volume_id}: {text}"));
    }
    Ok(servers)
}

/// Brings the local copy up to date from `source`: whole or by its tail.
async fn pull(
    args: &Args,
    client: &mut VolumeServerClient<Channel>,
    source: &str,
    status: &ReadVolumeFileStatusResponse,
) -> Result<Pulled, String> {
    let volume_id = args.volume.volume_id;
    if status.collection != args.volume.collection {
        return Err(format!(
            "volume {volume_id} on {source} is in collection {:?}, not {:?} (--collection)",
            status.collection, args.volume.collection
        ));
    }
    let paths = VolumePaths::new(&args.volume.dir, &args.volume.collection, volume_id);
    for path in [&paths.vif, &paths.idx, &paths.dat] {
        remove_if_there(&temp_path(path))?; // what a run cut short left
    }
    let local = local_state(&paths, args, status)?;
    let Some(since_ns) = local else {
        let bytes = copy_whole(client, source, status, &paths).await?;
        open_local(args)?;
        return Ok(Pulled {
            whole_copy: true,
            bytes,
            ..Pulled::default()
        });
    };
    tail(args, client, source, since_ns).await
}

/// The append time to pull from, or None when the local copy must be replaced whole (none,
/// another compaction revision, longer than the source's, or a version without append
/// times); the reason is printed.
fn local_state(
    paths: &VolumePaths,
    args: &Args,
    status: &ReadVolumeFileStatusResponse,
) -> Result<Option<u64>, String> {
    if !paths.dat.exists() {
        println!("backup: no local copy of volume {}", args.volume.volume_id);
        return Ok(None);
    }
    let dat = DatFile::open(
        &args.volume.dir,
        &args.volume.collection,
        args.volume.volume_id,
    )
    .map_err(|e| format!("the local copy: {e}"))?;
    let revision = u32::from(dat.superblock.compaction_revision);
    if revision != status.compaction_revision {
        println!(
            "backup: the source was compacted (revision {}, local copy {revision}): copying \
             the volume whole",
            status.compaction_revision
        );
        return Ok(None);
    }
    if dat.len > status.dat_file_size || dat.superblock.version == Version::V2 {
        println!(
            "backup: the local .dat ({} bytes, version {:?}) cannot be extended from the \
             source's ({} bytes): copying the volume whole",
            dat.len, dat.superblock.version, status.dat_file_size
        );
        return Ok(None);
    }
    let mut last_append_ns = 0;
    dat.scan(|_, needle| last_append_ns = last_append_ns.max(needle.append_at_ns))
        .map_err(|e| format!("the local copy: {e}"))?;
    Ok(Some(last_append_ns))
}

/// Copies the source's `.vif`, `.idx` and `.dat` into `<file>.backup`, then into place.
async fn copy_whole(
    client: &mut VolumeServerClient<Channel>,
    source: &str,
    status: &ReadVolumeFileStatusResponse,
    paths: &VolumePaths,
) -> Result<u64, String> {
    let files = [
        (".vif", &paths.vif, u64::MAX, false),
        (".idx", &paths.idx, status.idx_file_size, true),
        (".dat", &paths.dat, status.dat_file_size, true),
    ];
    let mut bytes = 0;
    for (ext, path, stop_offset, required) in &files {
        let request = copy_file_request(status, ext, *stop_offset, *required);
        let written = receive(client, source, request, &temp_path(path), *required).await?;
        if *required && written != *stop_offset {
            return Err(format!(
                "{source} sent {written} bytes of volume {}'s {ext}, it has {stop_offset}",
                status.volume_id
            ));
        }
        bytes += written;
    }
    remove_if_there(&paths.idx)?;
    for (_, path, _, _) in [&files[0], &files[2], &files[1]] {
        let temp = temp_path(path);
        if temp.exists() {
            std::fs::rename(&temp, path)
                .map_err(|e| format!("rename {} to {}: {e}", temp.display(), path.display()))?;
        }
    }
    Ok(bytes)
}

/// One CopyFile stream into `path` (synced; when not `required`, made only if the source
/// sends something); the bytes written.
async fn receive(
    client: &mut VolumeServerClient<Channel>,
    source: &str,
    request: CopyFileRequest,
    path: &Path,
    required: bool,
) -> Result<u64, String> {
    use std::io::Write;
    let ext = request.ext.clone();
    let failed = |e: tonic::Status| format!("CopyFile {ext} on {source}: {}", e.message());
    let mut stream = client
        .copy_file(request)
        .await
        .map_err(failed)?
        .into_inner();
    let create =
        || std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()));
    let mut file = if required { Some(create()?) } else { None };
    let mut written = 0u64;
    while let Some(message) = stream.message().await.map_err(failed)? {
        if file.is_none() {
            file = Some(create()?);
        }
        let out = file.as_mut().expect("created above");
        out.write_all(&message.file_content)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        written += message.file_content.len() as u64;
    }
    if let Some(out) = file {
        out.sync_all()
            .map_err(|e| format!("fsync {}: {e}", path.display()))?;
    }
    Ok(written)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".backup");
    PathBuf::from(name)
}

fn remove_if_there(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

/// Opens the local copy (recovering it: an `.idx` missing after a cut-short run is rebuilt).
fn open_local(args: &Args) -> Result<FileVolume, String> {
    let opened = FileVolume::open(
        &args.volume.dir,
        &args.volume.collection,
        args.volume.volume_id,
        &OpenOptions::default(),
    );
    let (volume, _report) = opened.map_err(|e| format!("open the local copy: {e}"))?;
    Ok(volume)
}

/// Pulls the records appended after `since_ns` and appends them to the local copy.
async fn tail(
    args: &Args,
    client: &mut VolumeServerClient<Channel>,
    source: &str,
    since_ns: u64,
) -> Result<Pulled, String> {
    let volume_id = args.volume.volume_id;
    let mut volume = open_local(args)?;
    let version = volume.core().version();
    let request = VolumeTailSenderRequest {
        volume_id,
        since_ns,
        idle_timeout_seconds: TAIL_IDLE_SECONDS,
    };
    let failed = |e: tonic::Status| format!("VolumeTailSender on {source}: {}", e.message());
    let mut stream = client
        .volume_tail_sender(request)
        .await
        .map_err(failed)?
        .into_inner();
    let mut pulled = Pulled::default();
    let mut record: Vec<u8> = Vec::new();
    while let Some(message) = stream.message().await.map_err(failed)? {
        if record.is_empty() && message.needle_header.is_empty() {
            continue; // "nothing new"
        }
        if record.is_empty() {
            record.extend_from_slice(&message.needle_header);
        }
        record.extend_from_slice(&message.needle_body);
        if record.len() > RECORD_BYTES_MAX {
            return Err(format!(
                "a record of volume {volume_id} from {source} passes {RECORD_BYTES_MAX} bytes"
            ));
        }
        if message.is_last_chunk {
            pulled.bytes += record.len() as u64;
            apply(&mut volume, &record, version, &mut pulled)?;
            record.clear();
        }
    }
    volume.sync().map_err(|e| format!("the local copy: {e}"))?;
    Ok(pulled)
}

/// Appends one record of the source's tail to the local copy, with its append time: a write,
/// or a delete marker (a delete of a needle the copy no longer has is skipped).
fn apply(
    volume: &mut FileVolume,
    record: &[u8],
    version: Version,
    pulled: &mut Pulled,
) -> Result<(), String> {
    let needle = Needle::decode(record, version).map_err(|e| {
        format!(
            "volume {}: a record from the source: {e}",
            volume.core().config().id
        )
    })?;
    if !needle.data.is_empty() {
        volume
            .write_at(&needle, needle.append_at_ns, false)
            .map_err(|e| format!("the local copy: append {}: {e}", needle.key))?;
        pulled.needles_appended += 1;
        return Ok(());
    }
    match volume.delete_at(needle.key, needle.cookie, needle.append_at_ns, false) {
        Ok(_) => {
            pulled.deletes_applied += 1;
            Ok(())
        }
        Err(DeleteError::Read(_)) => Ok(()), // not here (deleted already)
        Err(e) => Err(format!("the local copy: delete {}: {e}", needle.key)),
    }
}
