//! HTTP handlers, thin: parse the request, make one store call, encode the answer.

use super::read_response::{self, ReadAsk};
use super::registry::{Registry, VolumeSettings};
use super::state::{CoreState, all_snapshots};
use super::store::{self, NeedleData, StoreError};
use super::upload::{UploadError, UploadInput};
use super::{auth, codec, fid, query, replicate, upload};
use bytes::Bytes;
use kelp_engine::format::{FileId, ReplicaPlacement, Ttl, check_collection};
use kelp_net::http::{Request, Response};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn fid_error_response(error: &fid::PathError) -> Response {
    let status = match error {
        fid::PathError::NotAFid { .. } => 404,
        fid::PathError::BadFid(_) => 400,
    };
    Response::error(status, &error.to_string())
}

fn store_error_response(error: &StoreError) -> Response {
    Response::error(error.status(), &error.to_string())
}

/// The answer to a failed store call on a fid: a volume held by another server is a redirect
/// to it (through the master's lookup); every other failure is its status with a JSON error.
async fn store_failure(state: &Rc<CoreState>, request: &Request, error: StoreError) -> Response {
    match error {
        StoreError::VolumeNotHere { volume_id } => {
            replicate::redirect(state, volume_id, request).await
        }
        error => store_error_response(&error),
    }
}

pub async fn read(state: &Rc<CoreState>, request: &Request) -> Response {
    if let Err(refused) = auth::check_read(&state.config, request) {
        return refused;
    }
    let path = match fid::parse_path(&request.path) {
        Ok(path) => path,
        Err(error) => return fid_error_response(&error),
    };
    let found = match store::read(&state.store, path.fid, now_unix_ns()).await {
        Ok(found) => found,
        Err(error) => return store_failure(state, request, error).await,
    };
    let headers = &request.headers;
    let ask = ReadAsk {
        ext: &path.ext,
        path_filename: path.filename.as_deref(),
        range: headers.get("range"),
        if_none_match: headers.get("if-none-match"),
        if_modified_since: headers.get("if-modified-since"),
        accept_encoding: headers.get("accept-encoding"),
    };
    let (data, data_len) = if read_response::needs_inflate(&found.meta, &ask) {
        match inflate(&found.data) {
            Ok(inflated) => {
                let len = inflated.len() as u64;
                (NeedleData::Bytes(inflated), len)
            }
            Err(error) => return Response::error(500, &format!("{}: {error}", path.fid)),
        }
    } else {
        (found.data, found.data_len)
    };
    let plan = read_response::plan(&found.meta, &ask, data_len);
    let mut response = match plan.status {
        416 => {
            let asked = ask.range.unwrap_or_default();
            let text = format!(
                "{}: range {asked:?} is outside its {data_len} bytes",
                path.fid
            );
            Response::error(416, &text)
        }
        status => Response::new(status),
    };
    response.headers.extend(plan.headers);
    if let Some((start, len)) = plan.body {
        response.body = data.slice(start, len);
    }
    response
}

fn inflate(data: &NeedleData) -> Result<Bytes, String> {
    let stored = data
        .to_bytes()
        .map_err(|e| format!("reading stored data: {e}"))?;
    codec::gunzip(&stored, super::limits::INFLATED_BYTES_MAX)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// `Seaweed-Owner: me` -> ("Owner", "me"); names canonicalized as Go's net/http does.
fn seaweed_pairs(request: &Request) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix("seaweed-")?;
            let value = std::str::from_utf8(value).ok()?;
            Some((canonical_header_name(rest), value.to_string()))
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn upload_error_status(error: &UploadError) -> u16 {
    match error {
        UploadError::Multipart(_)
        | UploadError::Md5Mismatch { .. }
        | UploadError::BadTimestamp { .. }
        | UploadError::PairsTooLarge { .. }
        | UploadError::BadGzip(_)
        | UploadError::BadTtl(_) => 400,
    }
}

pub async fn write(state: &Rc<CoreState>, request: &Request) -> Response {
    if let Err(refused) = auth::check_write(&state.config, request) {
        return refused;
    }
    let path = match fid::parse_path(&request.path) {
        Ok(path) => path,
        Err(error) => return fid_error_response(&error),
    };
    let headers = &request.headers;
    let input = UploadInput {
        query: &request.query,
        content_type: headers.get("content-type"),
        content_disposition: headers.get("content-disposition"),
        content_encoding: headers.get("content-encoding"),
        content_md5: headers.get("content-md5"),
        pairs: seaweed_pairs(request),
        body: request.body.clone(),
        now_unix_s: now_unix_ns() / 1_000_000_000,
    };
    let upload = match upload::parse(input) {
        Ok(upload) => upload,
        Err(error) => {
            return Response::error(
                upload_error_status(&error),
                &format!("{}: {error}", path.fid),
            );
        }
    };
    if !upload.is_replica_copy
        && let Some(refused) = refuse_unmet_placement(state, request, path.fid).await
    {
        return refused;
    }
    let needle = upload.needle(path.fid);
    let written = match store::write(&state.store, path.fid, &needle, now_unix_ns()).await {
        Ok(written) => written,
        Err(error) => return store_failure(state, request, error).await,
    };
    if upload.fsync
        && let Err(error) = sync_volume(state, path.fid.volume_id).await
    {
        return Response::error(500, &error);
    }
    if !upload.is_replica_copy
        && written.copies > 1
        && let Err(error) =
            replicate::fan_out(state, request, path.fid.volume_id, written.copies).await
    {
        let undone = undo_write(state, path.fid).await;
        return Response::error(
            500,
            &format!("{}: written here, but {error}; {undone}", path.fid),
        );
    }
    let name = upload.name.clone().unwrap_or_default();
    let mime = upload.mime.clone().or_else(|| {
        let ext = fid::extension_of(&name);
        (!ext.is_empty()).then(|| codec::mime_for_extension(ext))
    });
    let mut json = serde_json::json!({
        "name": name,
        "size": upload.data.len(),
        "eTag": read_response::etag(written.crc),
    });
    if let Some(mime) = mime {
        json["mime"] = serde_json::Value::String(mime);
    }
    Response::json(201, json.to_string())
}

async fn sync_volume(state: &Rc<CoreState>, volume_id: u32) -> Result<(), String> {
    let files = state.store.borrow().sync_files(volume_id);
    match files {
        Some(files) => state.group_commit.sync(volume_id, files).await,
        None => Err(format!("volume {volume_id} was deleted before its sync")),
    }
}

pub async fn delete(state: &Rc<CoreState>, request: &Request) -> Response {
    if let Err(refused) = auth::check_write(&state.config, request) {
        return refused;
    }
    let path = match fid::parse_path(&request.path) {
        Ok(path) => path,
        Err(error) => return fid_error_response(&error),
    };
    let is_copy = query::param(&request.query, "type").as_deref() == Some("replicate");
    if !is_copy && let Err(refused) = delete_on_replicas(state, request, path.fid).await {
        return refused;
    }
    let deleted = match store::delete(&state.store, path.fid, now_unix_ns()).await {
        Ok(deleted) => deleted,
        // A replica that lacks the needle already holds what the delete asks for.
        Err(StoreError::NotFound { .. }) if is_copy => store::Deleted { size: 0 },
        Err(error) => return store_failure(state, request, error).await,
    };
    if query::flag(&request.query, "fsync")
        && let Err(error) = sync_volume(state, path.fid.volume_id).await
    {
        return Response::error(500, &error);
    }
    Response::json(202, format!("{{\"size\":{}}}", deleted.size))
}

/// Refuses a write to a replicated volume before anything is written when the master lists
/// fewer replicas than its placement asks for.
async fn refuse_unmet_placement(
    state: &Rc<CoreState>,
    request: &Request,
    fid: FileId,
) -> Option<Response> {
    let copies = state.store.borrow().placement_copies(fid.volume_id);
    let copies = match copies {
        Ok(copies) => copies,
        Err(error) => return Some(store_failure(state, request, error).await),
    };
    if copies <= 1 {
        return None;
    }
    let others = replicate::other_replicas(state, fid.volume_id, copies).await;
    let error = others.err()?;
    Some(Response::error(
        500,
        &format!("{fid}: not written: {error}"),
    ))
}

/// A write that some replica did not take is deleted again here (a tombstone appended), so
/// no client sees a file with fewer copies than the placement asks for.
async fn undo_write(state: &Rc<CoreState>, fid: FileId) -> String {
    match store::delete(&state.store, fid, now_unix_ns()).await {
        Ok(_) => "the copy written here is deleted again".to_string(),
        Err(error) => format!("deleting the copy written here failed too: {error}"),
    }
}

/// A delete on a replicated volume goes to the other replicas first and is applied here only
/// when they all took it: refused (500), the file stays readable everywhere it was.
async fn delete_on_replicas(
    state: &Rc<CoreState>,
    request: &Request,
    fid: FileId,
) -> Result<(), Response> {
    let checked = state.store.borrow_mut().check_deletable(fid);
    let copies = match checked {
        Ok(copies) => copies,
        Err(error) => return Err(store_failure(state, request, error).await),
    };
    if copies <= 1 {
        return Ok(());
    }
    match replicate::fan_out(state, request, fid.volume_id, copies).await {
        Ok(()) => Ok(()),
        Err(error) => Err(Response::error(
            500,
            &format!("{fid}: not deleted: {error}"),
        )),
    }
}

pub async fn create_volume(state: &Rc<CoreState>, request: &Request) -> Response {
    let params = match create_params(&request.query) {
        Ok(params) => params,
        Err(message) => return Response::error(400, &message),
    };
    let (volume_id, settings) = params;
    if let Err((status, message)) = allocate(state, volume_id, &settings) {
        return Response::error(status, &message);
    }
    // The owner core's own port (this request was handed to the owner): the master gives it
    // out for the new volume at once, instead of the shared port until the next heartbeat.
    let port = super::shard::core_port(state.config.port, state.core_index);
    let json = serde_json::json!({
        "volume": volume_id,
        "collection": settings.collection,
        "replication": settings.replication,
        "ttl": settings.ttl,
        "port": port,
    });
    Response::json(200, json.to_string())
}

/// Creates volume `volume_id` here with `settings` (this core owns it): idempotent for the
/// same settings; else the HTTP status and the reason (409 other settings, 507 no room).
pub fn allocate(
    state: &CoreState,
    volume_id: u32,
    settings: &VolumeSettings,
) -> Result<(), (u16, String)> {
    claim(state, volume_id, settings)?;
    let created = state.store.borrow_mut().create(volume_id, settings);
    match created {
        Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(error) => {
            release(&state.registry, volume_id);
            Err((error.status(), error.to_string()))
        }
    }
}

/// Claims a slot for volume `volume_id` in the registry (idempotent for the same settings):
/// 409 for other settings, 507 when the server holds its most volumes.
pub fn claim(
    state: &CoreState,
    volume_id: u32,
    settings: &VolumeSettings,
) -> Result<(), (u16, String)> {
    let volumes_now = state.registry.lock().expect("registry").volumes.len();
    let room = super::space::volumes_max(
        state.config.volumes_max,
        volumes_now,
        &mut state.store.borrow_mut(),
        &state.config.dir,
    );
    reserve(&state.registry, room, volume_id, settings)
}

/// Drop `volume_id` from the registry (its store is gone or was never made).
pub fn unclaim(state: &CoreState, volume_id: u32) {
    release(&state.registry, volume_id);
}

fn create_params(query_text: &str) -> Result<(u32, VolumeSettings), String> {
    let volume_text = query::param(query_text, "volume").ok_or("missing volume=<id>")?;
    let volume_id = fid::parse_volume_id(&volume_text).map_err(|e| e.to_string())?;
    let replication = query::param(query_text, "replication").unwrap_or_default();
    let replication = ReplicaPlacement::parse(&replication).map_err(|e| e.to_string())?;
    let ttl = query::param(query_text, "ttl").unwrap_or_default();
    let ttl = Ttl::parse(&ttl).map_err(|e| e.to_string())?;
    let collection = query::param(query_text, "collection").unwrap_or_default();
    check_collection(&collection).map_err(|e| e.to_string())?;
    let settings = VolumeSettings {
        collection,
        replication,
        ttl,
    };
    Ok((volume_id, settings))
}

/// Claim `volume_id` in the registry: idempotent for the same settings, 409 for others,
/// 507 past `room` (the most volumes, and why).
fn reserve(
    registry: &std::sync::Mutex<Registry>,
    (volumes_max, why): (u32, String),
    volume_id: u32,
    settings: &VolumeSettings,
) -> Result<(), (u16, String)> {
    let mut registry = registry.lock().expect("registry");
    if let Some(existing) = registry.volumes.get(&volume_id) {
        if existing == settings {
            return Ok(());
        }
        let message = format!("volume {volume_id} exists with other settings: {existing:?}");
        return Err((409, message));
    }
    if registry.volumes.len() as u64 >= u64::from(volumes_max) {
        return Err((507, why));
    }
    registry.volumes.insert(volume_id, settings.clone());
    Ok(())
}

/// Drop `volume_id` from the registry (its store is gone or was never made).
fn release(registry: &std::sync::Mutex<Registry>, volume_id: u32) {
    registry
        .lock()
        .expect("registry")
        .volumes
        .remove(&volume_id);
}

pub fn delete_volume(state: &Rc<CoreState>, request: &Request) -> Response {
    let volume_text = query::param(&request.query, "volume").unwrap_or_default();
    let volume_id = match fid::parse_volume_id(&volume_text) {
        Ok(volume_id) => volume_id,
        Err(error) => return Response::error(400, &error.to_string()),
    };
    match remove_volume(state, volume_id) {
        Ok(()) => Response::json(200, format!("{{\"volume\":{volume_id}}}")),
        Err(RemoveError::Committing) => {
            let text = format!("volume {volume_id} is committing a compaction; retry in a moment");
            Response::error(409, &text).header("Retry-After", "1")
        }
        Err(RemoveError::Store(error)) => store_error_response(&error),
    }
}

/// Why a volume was not removed.
#[derive(Debug)]
pub enum RemoveError {
    /// Its compaction is swapping its files: retry in a moment.
    Committing,
    Store(StoreError),
}

impl std::fmt::Display for RemoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoveError::Committing => f.write_str("its compaction is committing"),
            RemoveError::Store(error) => error.fmt(f),
        }
    }
}

/// Drops volume `volume_id` and deletes its files (an admin delete, an expired TTL
/// volume). A compaction still copying it stops at its next step and removes its files.
pub fn remove_volume(state: &CoreState, volume_id: u32) -> Result<(), RemoveError> {
    take_out(state, volume_id, |store| store.remove(volume_id))
}

/// Stops serving volume `volume_id`, keeping its files (`VolumeUnmount`). A compaction
/// still copying it stops at its next step and removes its own files.
pub fn unmount_volume(state: &CoreState, volume_id: u32) -> Result<(), RemoveError> {
    take_out(state, volume_id, |store| store.unmount(volume_id))
}

/// Takes volume `volume_id` out of service with `out` (which deletes or closes it).
fn take_out(
    state: &CoreState,
    volume_id: u32,
    out: impl FnOnce(&mut super::store::CoreStore) -> Result<(), StoreError>,
) -> Result<(), RemoveError> {
    if state.compactions.borrow().is_committing(volume_id) {
        return Err(RemoveError::Committing);
    }
    state.compactions.borrow().cancel(volume_id);
    out(&mut state.store.borrow_mut()).map_err(RemoveError::Store)?;
    state.compactions.borrow_mut().forget(volume_id);
    release(&state.registry, volume_id);
    Ok(())
}

pub async fn status(state: &Rc<CoreState>) -> Response {
    let snapshots = match all_snapshots(state).await {
        Ok(snapshots) => snapshots,
        Err(error) => return Response::error(503, &error),
    };
    let mut volumes: Vec<_> = snapshots.into_iter().flat_map(|s| s.volumes).collect();
    volumes.sort_by_key(|v| v.id);
    let volumes: Vec<serde_json::Value> = volumes
        .iter()
        .map(|v| {
            let mut json = v.status_json();
            json["Port"] = v.port.into();
            json
        })
        .collect();
    let json = serde_json::json!({
        "Version": concat!("kelp ", env!("CARGO_PKG_VERSION")),
        "Volumes": volumes,
    });
    Response::json(200, json.to_string())
}

pub async fn metrics(state: &Rc<CoreState>) -> Response {
    let snapshots = match all_snapshots(state).await {
        Ok(snapshots) => snapshots,
        Err(error) => return Response::error(503, &error),
    };
    let mut merged = super::metrics::CoreMetrics::default();
    for snapshot in &snapshots {
        merged.merge(&snapshot.metrics);
    }
    Response::new(200)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body_bytes(merged.render_prometheus())
}

/// `POST /admin/vacuum/{check,compact,status,commit,cleanup}?volume=N` (from the master).
pub async fn vacuum_admin(state: &Rc<CoreState>, request: &Request) -> Response {
    use super::compaction::{self, AdminRefusal};
    let volume_text = query::param(&request.query, "volume").unwrap_or_default();
    let volume_id = match fid::parse_volume_id(&volume_text) {
        Ok(volume_id) => volume_id,
        Err(error) => return Response::error(400, &error.to_string()),
    };
    let call = request.path.trim_start_matches("/admin/vacuum/");
    let answer = match call {
        "check" => compaction::check(state, volume_id)
            .map(|check| serde_json::to_string(&check))
            .map_err(AdminRefusal::from),
        "status" => compaction::status(state, volume_id)
            .map(|status| serde_json::to_string(&status))
            .map_err(AdminRefusal::from),
        "compact" => compaction::start(state, volume_id)
            .await
            .map(|status| serde_json::to_string(&status)),
        "commit" => compaction::commit(state, volume_id)
            .await
            .map(|status| serde_json::to_string(&status)),
        "cleanup" => {
            compaction::cleanup(state, volume_id).map(|status| serde_json::to_string(&status))
        }
        other => {
            let text =
                format!("no vacuum call {other:?} (check, compact, status, commit, cleanup)");
            return Response::error(404, &text);
        }
    };
    match answer {
        Ok(json) => Response::json(200, json.expect("vacuum answers serialize")),
        Err(refusal) => Response::error(refusal.status(), &refusal.to_string()),
    }
}
