//! The master's HTTP API (hyper on tokio). Handlers are thin: parse, one master call, encode.
//! A follower proxies every API call to the leader; Raft RPCs, `/cluster/status`,
//! `/healthz` and `/metrics` are answered by every master itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use super::checked_stream::CheckedStream;
use super::limits::{
    ASSIGN_COUNT_MAX, CONNECTIONS_MAX, GROW_COUNT_MAX, HEADER_READ_TIMEOUT_MS,
    OUTBOUND_CALL_TIMEOUT_MS, REQUEST_BODY_BYTES_MAX,
};
use super::node::{Master, MasterError};
use super::params::{AssignOptions, Query};
use super::topology::Heartbeat;
use super::vacuum::VacuumRequest;
use kelp_engine::format::{check_collection, parse_volume_id_prefix};

pub type HttpResponse = Response<Full<Bytes>>;

/// Marks a request a follower forwarded, so it is never forwarded twice.
const PROXIED_HEADER: &str = "x-kelp-proxied";

/// Accept connections on `--ip:--port` until the task is dropped.
pub async fn serve(master: Arc<Master>) -> Result<(), String> {
    let address = format!("{}:{}", master.config.ip, master.config.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("listen on {address} (--ip, --port): {e}"))?;
    tracing::info!(
        "master: listening on {address} as {}",
        master.config.self_address
    );
    serve_listener(master, listener).await
}

pub async fn serve_listener(
    master: Arc<Master>,
    listener: tokio::net::TcpListener,
) -> Result<(), String> {
    // Bounded: past the limit, accepting waits until a connection closes.
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("master: accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let master = master.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(super::guard::PeerAddress(peer));
                let master = master.clone();
                async move { Ok::<_, Infallible>(route(master, request).await) }
            });
            // hyper sees only requests kelp_net's parser accepted; a refused one is answered
            // by `finish` once hyper has answered those before it. The checked stream ends
            // at the refused request: half_close lets hyper answer the requests it still
            // holds instead of dropping them at that end.
            let checked = TokioIo::new(CheckedStream::new(stream));
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                .keep_alive(true)
                .half_close(true)
                .pipeline_flush(true)
                .serve_connection(checked, service)
                .without_shutdown();
            match connection.await {
                Ok(parts) => parts.io.into_inner().finish().await,
                Err(error) => tracing::debug!("master: connection: {error}"),
            }
        });
    }
}

/// A JSON answer; `pretty` indents it.
pub fn json<T: Serialize>(status: u16, value: &T, pretty: bool) -> HttpResponse {
    let body = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    }
    .expect("answers always serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

pub fn error(status: u16, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }), false)
}

pub fn master_error(failure: &MasterError) -> HttpResponse {
    let mut response = error(failure.status(), failure.message());
    if failure.status() == 503 {
        response
            .headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    }
    response
}

fn bad_request(message: String) -> HttpResponse {
    error(400, &message)
}

/// The request's Content-Type, "" when absent or not text.
fn content_type(parts: &hyper::http::request::Parts) -> &str {
    parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn read_body(
    request: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), HttpResponse> {
    let (parts, body) = request.into_parts();
    match Limited::new(body, REQUEST_BODY_BYTES_MAX).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(failure) => Err(error(
            413,
            &format!("request body unreadable or over {REQUEST_BODY_BYTES_MAX} bytes: {failure}"),
        )),
    }
}

/// The methods an endpoint takes (its `Allow` header); `None` for a path that is not an
/// endpoint (answered 404 by `route`).
fn allowed_methods(path: &str) -> Option<&'static str> {
    let allow = match path {
        "/dir/assign" | "/vol/grow" | "/vol/vacuum" => "GET, POST",
        "/dir/lookup" => "GET, HEAD, POST",
        "/submit" => "POST, PUT",
        "/col/delete" => "GET, POST, DELETE",
        "/heartbeat"
        | "/cluster/join"
        | "/raft/append"
        | "/raft/vote"
        | "/raft/snapshot"
        | "/vol/fix_replication"
        | "/vol/repair" => "POST",
        "/vol/replication" => "GET, HEAD",
        "/cluster/status" | "/healthz" | "/metrics" | "/vol/status" | "/dir/status" | "/"
        | "/ui/index.html" => "GET, HEAD",
        _ if is_fid_path(path) => "GET, HEAD, POST, PUT, DELETE",
        _ => return None,
    };
    Some(allow)
}

/// `/<fid>` (redirected to a volume server).
fn is_fid_path(path: &str) -> bool {
    path.len() > 1 && path.as_bytes()[1].is_ascii_digit()
}

async fn route(master: Arc<Master>, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
    if let Some(allow) = allowed_methods(&path)
        && !allow
            .split(", ")
            .any(|method| method == request.method().as_str())
    {
        let text = format!("{path} takes {allow}, not {}", request.method());
        let mut response = error(405, &text);
        let allow = hyper::header::HeaderValue::from_static(allow);
        response.headers_mut().insert(hyper::header::ALLOW, allow);
        return response;
    }
    if let Some(refused) = super::guard::refusal(&master, &request) {
        return refused;
    }
    if path.starts_with("/raft/") {
        return super::status::raft_rpc(&master, request).await;
    }
    match path.as_str() {
        "/cluster/status" => return super::status::cluster_status(&master, request.uri().query()),
        "/healthz" => return super::status::healthz(&master),
        "/metrics" => return super::status::metrics(&master),
        "/" | "/ui/index.html" => return super::status_page::index(&master),
        _ => {}
    }
    let query = Query::parse(request.uri().query().unwrap_or(""));
    // Cluster membership and leader following (see cluster.rs).
    match path.as_str() {
        "/cluster/watch" => return super::cluster::watch(&master, &query).await,
        "/dir/assign" | "/submit" | "/heartbeat" | "/vol/grow"
            if master.is_leader.load(Ordering::Acquire) =>
        {
            if let Err(failure) = super::quorum::check_lease(&master) {
                return master_error(&failure);
            }
        }
        _ => {}
    }
    if !master.is_leader.load(Ordering::Acquire) {
        return proxy_to_leader(&master, request).await;
    }
    let pretty = query.is_pretty();
    match path.as_str() {
        "/dir/assign" => assign(&master, &query).await,
        "/dir/lookup" => lookup(&master, &query),
        "/heartbeat" => heartbeat(&master, request).await,
        "/submit" => submit(&master, &query, request).await,
        "/vol/grow" => grow(&master, &query).await,
        "/vol/vacuum" => vacuum(&master, &query).await,
        "/vol/fix_replication" => fix_replication(&master, &query).await,
        "/vol/replication" => super::status::replication_status(&master, pretty),
        "/vol/repair" => repair(&master, &query).await,
        "/vol/status" => super::status::volume_status(&master, pretty),
        "/dir/status" => super::status::dir_status(&master, pretty),
        "/col/delete" => delete_collection(&master, &query).await,
        "/cluster/join" => join(&master, request).await,
        "/cluster/raft/add" | "/cluster/raft/remove" => {
            super::cluster::raft_change(&master, &path, &query).await
        }
        _ if is_fid_path(&path) => redirect(&master, &request),
        _ => error(404, &format!("no such endpoint: {path}")),
    }
}

#[derive(Serialize)]
struct AssignAnswer<'a> {
    fid: &'a str,
    url: &'a str,
    #[serde(rename = "publicUrl")]
    public_url: &'a str,
    count: u64,
}

/// The already parsed `count` with the placement options of `query` (assign and vol/grow take
/// the same ones), or the first bad parameter's message.
fn count_and_options(
    master: &Master,
    query: &Query,
    count: Result<u64, String>,
) -> Result<(u64, AssignOptions), String> {
    Ok((
        count?,
        AssignOptions::parse(query, master.config.default_placement)?,
    ))
}

async fn assign(master: &Arc<Master>, query: &Query) -> HttpResponse {
    let count = query.count("count", 1, ASSIGN_COUNT_MAX);
    let (count, options) = match count_and_options(master, query, count) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    match master.assign(&options, count).await {
        Ok(assignment) => {
            let answer = AssignAnswer {
                fid: &assignment.fid,
                url: &assignment.location.url,
                public_url: &assignment.location.public_url,
                count: assignment.count,
            };
            let mut response = json(200, &answer, query.is_pretty());
            super::guard::add_file_token(master, &mut response, &assignment.fid, false);
            response
        }
        Err(failure) => master_error(&failure),
    }
}

fn lookup(master: &Master, query: &Query) -> HttpResponse {
    let asked = query
        .get("volumeId")
        .filter(|v| !v.is_empty())
        .or_else(|| query.get("fileId"))
        .unwrap_or("");
    if asked.is_empty() {
        return bad_request("lookup needs volumeId or fileId".into());
    }
    let volume_id = match super::params::lookup_volume_id(asked) {
        Ok(volume_id) => volume_id,
        Err(message) => return bad_request(message),
    };
    let mut topology = master.lock_topology();
    match topology.lookup(volume_id) {
        Some(volume) => {
            let answer = serde_json::json!({
                "volumeOrFileId": asked,
                "locations": volume.locations,
            });
            let mut response = json(200, &answer, query.is_pretty());
            // With fileId, a token to change the file (or to read it with read=yes).
            if let Some(fid) = query.get("fileId").filter(|fid| !fid.is_empty()) {
                let for_read = query.get("read") == Some("yes");
                super::guard::add_file_token(master, &mut response, fid, for_read);
            }
            response
        }
        None => {
            let answer = serde_json::json!({
                "volumeOrFileId": asked,
                "error": format!("volume id {volume_id} not found"),
            });
            json(404, &answer, query.is_pretty())
        }
    }
}

async fn heartbeat(master: &Arc<Master>, request: Request<Incoming>) -> HttpResponse {
    let body = match read_body(request).await {
        Ok((_, body)) => body,
        Err(response) => return response,
    };
    let beat: Heartbeat = match serde_json::from_slice(&body) {
        Ok(beat) => beat,
        Err(failure) => return bad_request(format!("heartbeat: bad JSON: {failure}")),
    };
    if beat.ip.is_empty() || beat.port == 0 {
        return bad_request("heartbeat: ip and port are required".into());
    }
    master.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
    master.raise_key_floor(beat.max_file_key);
    let reported_max = beat.volumes.iter().map(|v| v.id).max().unwrap_or(0);
    let node_url = format!("{}:{}", beat.ip, beat.port);
    master.lock_topology().heartbeat(beat, Instant::now());
    super::vacuum::after_heartbeat(master, &node_url);
    if reported_max > master.state().max_volume_id {
        let command = super::raft::Command::RaiseVolumeId {
            at_least: reported_max,
        };
        if let Err(failure) = master.propose(command).await {
            return master_error(&failure);
        }
    }
    let answer = serde_json::json!({
        "volumeSizeLimit": master.config.volume_size_limit_bytes,
        "pulseSeconds": master.config.pulse_seconds,
        "leader": master.config.self_address,
    });
    json(200, &answer, false)
}

async fn submit(master: &Arc<Master>, query: &Query, request: Request<Incoming>) -> HttpResponse {
    let options = match AssignOptions::parse(query, master.config.default_placement) {
        Ok(options) => options,
        Err(message) => return bad_request(message),
    };
    let (parts, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let content_type = content_type(&parts);
    if !content_type.starts_with("multipart/form-data") {
        return bad_request("submit needs a multipart/form-data body (curl -F file=@name)".into());
    }
    let assignment = match master.assign(&options, 1).await {
        Ok(assignment) => assignment,
        Err(failure) => return master_error(&failure),
    };
    let url = format!("http://{}/{}", assignment.location.url, assignment.fid);
    let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
    let token = super::guard::upload_authorization(master, &assignment.fid);
    let mut headers = vec![("content-type", content_type)];
    headers.extend(token.as_deref().map(|token| ("authorization", token)));
    let reply = match master
        .client
        .call(Method::POST, &url, &headers, body, timeout)
        .await
    {
        Ok(reply) => reply,
        Err(failure) => return error(502, &format!("upload to the volume server: {failure}")),
    };
    if !(200..300).contains(&reply.status) {
        return passthrough(reply);
    }
    let file_url = format!("{}/{}", assignment.location.public_url, assignment.fid);
    match submit_answer(&reply.body, &assignment.fid, &file_url) {
        Ok(answer) => json(201, &answer, query.is_pretty()),
        Err(message) => error(502, &format!("upload to {url}: {message}")),
    }
}

/// The `/submit` answer built from the volume server's upload answer
/// (`{"name","size","eTag"}`); an answer without them is an error, not empty fields.
fn submit_answer(uploaded: &[u8], fid: &str, file_url: &str) -> Result<serde_json::Value, String> {
    let text = || String::from_utf8_lossy(uploaded).into_owned();
    let uploaded: serde_json::Value = serde_json::from_slice(uploaded)
        .map_err(|e| format!("stored, but the answer {:?} is not JSON: {e}", text()))?;
    let field = |name: &str| {
        uploaded
            .get(name)
            .cloned()
            .ok_or_else(|| format!("stored, but the answer {:?} has no {name:?}", text()))
    };
    Ok(serde_json::json!({
        "fileName": field("name")?,
        "fid": fid,
        "fileUrl": file_url,
        "size": field("size")?,
        "eTag": field("eTag")?,
    }))
}

fn passthrough(reply: super::http_client::Reply) -> HttpResponse {
    let mut builder = Response::builder().status(reply.status);
    for name in ["content-type", "location", "retry-after", "authorization"] {
        if let Some(value) = reply.headers.get(name) {
            builder = builder.header(name, value);
        }
    }
    builder.body(Full::new(reply.body)).expect("valid response")
}

async fn grow(master: &Arc<Master>, query: &Query) -> HttpResponse {
    let count = match query.get("count") {
        None | Some("") => return bad_request("vol/grow needs count".into()),
        Some(_) => query.count("count", 1, u64::from(GROW_COUNT_MAX)),
    };
    let (count, options) = match count_and_options(master, query, count) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    match master.grow(&options, count as u32, false).await {
        Ok(grown) => json(
            200,
            &serde_json::json!({ "count": grown }),
            query.is_pretty(),
        ),
        Err(failure) => master_error(&failure),
    }
}

/// `/vol/vacuum`: compacts the volumes over the garbage threshold and answers, as SeaweedFS,
/// with the topology (`/dir/status`'s), plus what was compacted (`Vacuum`).
async fn vacuum(master: &Arc<Master>, query: &Query) -> HttpResponse {
    let request = match VacuumRequest::parse(query, master.config.garbage_threshold) {
        Ok(request) => request,
        Err(failure) => return master_error(&failure),
    };
    let summary = super::vacuum::vacuum(master, &request).await;
    let mut answer = super::status::topology_answer(master);
    answer["Vacuum"] = serde_json::to_value(&summary).expect("a summary serializes");
    json(200, &answer, query.is_pretty())
}

/// `/vol/repair[?volumeId=N]`: one repair pass on every replica (see `repair.rs`).
async fn repair(master: &Master, query: &Query) -> HttpResponse {
    let volume_id = match super::repair::volume_param(query) {
        Ok(volume_id) => volume_id,
        Err(text) => return bad_request(text),
    };
    match super::repair::repair(master, volume_id).await {
        Ok(answer) => json(200, &answer, query.is_pretty()),
        Err(text) => error(404, &text),
    }
}

async fn delete_collection(master: &Master, query: &Query) -> HttpResponse {
    let collection = query.text("collection");
    if collection.is_empty() {
        return bad_request("col/delete needs collection".into());
    }
    if let Err(failure) = check_collection(collection) {
        return bad_request(failure.to_string());
    }
    match master.delete_collection(collection).await {
        Ok(()) => Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()))
            .expect("valid response"),
        Err(failure) => master_error(&failure),
    }
}

async fn join(master: &Master, request: Request<Incoming>) -> HttpResponse {
    let body = match read_body(request).await {
        Ok((_, body)) => body,
        Err(response) => return response,
    };
    let address = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("addr").and_then(|a| a.as_str()).map(str::to_string));
    let Some(address) = address else {
        return bad_request("join needs a JSON body {\"addr\":\"host:port\"}".into());
    };
    match super::cluster::join(master, &address).await {
        Ok(()) => json(200, &serde_json::json!({ "joined": address }), false),
        Err(failure) => master_error(&failure),
    }
}

/// `GET /<fid>` (also HEAD and DELETE): send the client to a replica, rotating among them.
fn redirect(master: &Master, request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    let volume_id = match parse_volume_id_prefix(&path[1..]) {
        Ok(id) => id,
        Err(failure) => return bad_request(failure.to_string()),
    };
    let Some(location) = master.lock_topology().redirect_target(volume_id) else {
        return error(404, &format!("volume id {volume_id} not found"));
    };
    let mut target = format!("http://{}{path}", location.public_url);
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    // 301 as in SeaweedFS for reads; 307 keeps the method and body of a write.
    let status = match *request.method() {
        Method::GET | Method::HEAD | Method::DELETE => 301,
        _ => 307,
    };
    let body = format!("<a href=\"{target}\">Moved Permanently</a>.\n\n");
    Response::builder()
        .status(status)
        .header("location", target)
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Forward a request to the leader and relay its answer.
async fn proxy_to_leader(master: &Master, request: Request<Incoming>) -> HttpResponse {
    if request.headers().contains_key(PROXIED_HEADER) {
        return master_error(&MasterError::Unavailable(
            "forwarded to a master that is not the leader; leadership is changing".into(),
        ));
    }
    let Some(leader) = master.leader_address() else {
        let failure = super::quorum::leader_unavailable(master, "no leader elected yet");
        return master_error(&failure);
    };
    if leader == master.config.self_address {
        return master_error(&MasterError::Unavailable(
            "this master is becoming the leader".into(),
        ));
    }
    master
        .counters
        .proxied_requests
        .fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let (parts, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let content_type = content_type(&parts);
    let mut headers = vec![(PROXIED_HEADER, "1")];
    if !content_type.is_empty() {
        headers.push(("content-type", content_type));
    }
    let url = format!("http://{leader}{path_and_query}");
    let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
    let call = master.client.call(method, &url, &headers, body, timeout);
    let what = match super::cluster::while_leader(master, &leader, call).await {
        Some(Ok(reply)) => return passthrough(reply),
        Some(Err(failure)) => {
            if let super::http_client::CallError::Unreachable { .. } = failure {
                // Known at once, not at the next probe: /cluster/watch stops naming it.
                master.quorum.note_probe(&leader, false);
            }
            format!("the leader did not answer: {failure}")
        }
        None => format!("the leader {leader} does not answer"),
    };
    master_error(&super::quorum::leader_unavailable(master, &what))
}

/// `POST /vol/fix_replication[?volumeId=N][&apply=true]`: the plans for the volumes whose copy
/// count differs from their placement's, carried out with `apply` (see replication.rs).
async fn fix_replication(master: &Arc<Master>, query: &Query) -> HttpResponse {
    let volume_id = match query.get("volumeId") {
        None | Some("") => None,
        Some(text) => match text.parse::<u32>() {
            Ok(id) => Some(id),
            Err(_) => return bad_request(format!("volumeId {text:?} is not a volume id")),
        },
    };
    let apply = match query.text("apply") {
        "" | "false" | "0" => false,
        "true" | "1" => true,
        other => return bad_request(format!("apply must be true or false, not {other:?}")),
    };
    match super::replication::fix(master, volume_id, apply).await {
        Ok(plans) => json(
            200,
            &serde_json::json!({ "volumes": plans }),
            query.is_pretty(),
        ),
        Err(failure) => master_error(&failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the /submit answer takes name, size and eTag from the volume server's answer,
    // and that an answer that is not JSON or lacks one of them is an error naming it (it
    // used to give empty fields).
    #[test]
    fn submit_answer_needs_the_upload_fields() {
        let uploaded = br#"{"name":"a.txt","size":3,"eTag":"\"abc\""}"#;
        let answer = submit_answer(uploaded, "3,01637037d6", "h:1/3,01637037d6").unwrap();
        assert_eq!(answer["fileName"], "a.txt");
        assert_eq!(answer["size"], 3);
        assert_eq!(answer["fid"], "3,01637037d6");
        let not_json = submit_answer(b"<html>", "3,01", "u").unwrap_err();
        assert!(not_json.contains("not JSON"), "{not_json}");
        let no_size = submit_answer(br#"{"name":"a","eTag":"x"}"#, "3,01", "u").unwrap_err();
        assert!(no_size.contains("\"size\""), "{no_size}");
    }
}
