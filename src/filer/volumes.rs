//! The filer's side of the master and the volume servers: file ids leased in batches from
//! `/dir/assign?count=N` (one master call per `FID_LEASE_COUNT_MAX` files), volume locations
//! cached from `/dir/lookup`, and chunk upload, read and delete over pooled keep-alive
//! connections.
//!
//! Tokens (when the masters and volume servers have a `security.toml`): an upload carries
//! the token its lease's assign answered (uploading to `fid_N`, which the token covers), and
//! a lease is renewed before that token expires; a delete or a read refused with 401 is
//! repeated with a token this filer signs itself when its `--security` file has the key (as
//! SeaweedFS's filer signs reads), else with one from `/dir/lookup?fileId=` (`&read=yes`).
//! After one refusal, later calls get a token at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::fids;
use super::limits::{FID_LEASE_COUNT_MAX, OUTBOUND_CALL_TIMEOUT_MS, VOLUME_LOCATION_TTL_MS};
use super::store::{FilerStore, Op};
use crate::security::{Security, jwt};

/// Where new chunks go: the assign parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Placement {
    pub collection: String,
    pub replication: String,
    pub ttl: String,
}

/// A batch of consecutive file keys on one volume, handed out one by one.
struct Lease {
    first: kelp_engine::format::FileId,
    url: String,
    count: u64,
    handed: u64,
    state: Arc<LeaseState>,
    /// The assign's token (`Authorization` value) and when it expires (unix seconds).
    token: Option<(String, Option<u64>)>,
}

impl Lease {
    /// Can its token still carry an upload (with a margin for the upload itself)?
    fn token_fresh(&self) -> bool {
        match &self.token {
            Some((_, Some(exp))) => now_unix_s() + TOKEN_MARGIN_S < *exp,
            _ => true,
        }
    }
}

/// A lease's token is not used in its last seconds: a chunk upload may take that long.
const TOKEN_MARGIN_S: u64 = 2;

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What outlives the lease's handing out: its store record, closed when every fid handed
/// out is finished (its entry committed, or its chunk queued for deletion).
pub struct LeaseState {
    record_key: String,
    count: u64,
    finished: AtomicU64,
    closer: tokio::sync::mpsc::Sender<String>,
}

/// A leased fid and where to upload it. Dropping it marks the fid finished.
pub struct FidTicket {
    pub fid: String,
    pub url: String,
    state: Arc<LeaseState>,
    /// With a token: the path to upload to (`/<first fid>_<n>`, which the token covers) and
    /// the `Authorization` value.
    upload_token: Option<(String, String)>,
}

impl Drop for FidTicket {
    fn drop(&mut self) {
        let finished = self.state.finished.fetch_add(1, Ordering::AcqRel) + 1;
        if finished == self.state.count {
            // A full closer queue leaves the record for the next start's sweep: harmless.
            let _ = self.state.closer.try_send(self.state.record_key.clone());
        }
    }
}

#[derive(Debug)]
pub struct VolumeError(pub String);

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Volumes {
    masters: Vec<String>,
    master_turn: AtomicUsize,
    http: Client<HttpConnector, Full<Bytes>>,
    leases: tokio::sync::Mutex<HashMap<Placement, Lease>>,
    locations: std::sync::RwLock<HashMap<u32, (Vec<String>, Instant)>>,
    store: Arc<dyn FilerStore>,
    /// Prefix of this filer's lease records (`l/<owner>/`).
    lease_prefix: String,
    closer: tokio::sync::mpsc::Sender<String>,
    /// `--security`: keys this filer signs with itself.
    security: Option<Arc<Security>>,
    /// Set once a volume server refused a delete (a read) without a token.
    deletes_need_tokens: AtomicBool,
    reads_need_tokens: AtomicBool,
}

/// The key of a lease record of `owner`.
pub fn lease_prefix(owner: &str) -> String {
    format!("l/{owner}/")
}

impl Volumes {
    /// `closer` receives the record keys of leases whose fids are all finished.
    pub fn new(
        masters: Vec<String>,
        store: Arc<dyn FilerStore>,
        owner: &str,
        closer: tokio::sync::mpsc::Sender<String>,
        security: Option<Arc<Security>>,
    ) -> Volumes {
        assert!(!masters.is_empty());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(2_000)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Volumes {
            masters,
            master_turn: AtomicUsize::new(0),
            http,
            leases: tokio::sync::Mutex::new(HashMap::new()),
            locations: std::sync::RwLock::new(HashMap::new()),
            store,
            lease_prefix: lease_prefix(owner),
            closer,
            security,
            deletes_need_tokens: AtomicBool::new(false),
            reads_need_tokens: AtomicBool::new(false),
        }
    }

    /// One call; the answer's status and whole body.
    async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, Bytes), VolumeError> {
        let response = self.send(method, url, headers, body).await?;
        let status = response.status().as_u16();
        let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| VolumeError(format!("{url}: body not read within {timeout:?}")))?
            .map_err(|e| VolumeError(format!("{url}: read body: {e}")))?;
        Ok((status, body.to_bytes()))
    }

    /// A call without a body: its status, its `Authorization` header and its body.
    async fn call_with_headers(
        &self,
        method: Method,
        url: &str,
    ) -> Result<(u16, Option<String>, Bytes), VolumeError> {
        let response = self.send(method, url, &[], Bytes::new()).await?;
        let status = response.status().as_u16();
        let token = response
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| VolumeError(format!("{url}: body not read within {timeout:?}")))?
            .map_err(|e| VolumeError(format!("{url}: read body: {e}")))?;
        Ok((status, token, body.to_bytes()))
    }

    /// Send a request; the response with its body still to read.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<hyper::Response<Incoming>, VolumeError> {
        let mut builder = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| VolumeError(format!("bad url {url}: {e}")))?;
        let timeout = Duration::from_millis(OUTBOUND_CALL_TIMEOUT_MS);
        tokio::time::timeout(timeout, self.http.request(request))
            .await
            .map_err(|_| VolumeError(format!("{url}: no answer within {timeout:?}")))?
            .map_err(|e| VolumeError(format!("{url}: {e}")))
    }

    /// GET `path_and_query` from the masters, each in turn until one answers.
    async fn master_get(&self, path_and_query: &str) -> Result<serde_json::Value, VolumeError> {
        self.master_get_token(path_and_query)
            .await
            .map(|(value, _)| value)
    }

    /// GET `path_and_query` from the masters: the answer and its `Authorization` header.
    async fn master_get_token(
        &self,
        path_and_query: &str,
    ) -> Result<(serde_json::Value, Option<String>), VolumeError> {
        let mut failures = Vec::new();
        for _ in 0..self.masters.len() {
            let turn = self.master_turn.load(Ordering::Relaxed) % self.masters.len();
            let url = format!("http://{}{path_and_query}", self.masters[turn]);
            match self.call_with_headers(Method::GET, &url).await {
                Ok((status, token, body)) => {
                    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                        VolumeError(format!("{url}: answer is not JSON ({status}): {e}"))
                    })?;
                    if let Some(error) = value.get("error").and_then(|e| e.as_str())
                        && !error.is_empty()
                    {
                        return Err(VolumeError(format!("master {url}: {error}")));
                    }
                    return Ok((value, token));
                }
                Err(error) => {
                    failures.push(error.0);
                    self.master_turn.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Err(VolumeError(format!(
            "no master answered: {}",
            failures.join("; ")
        )))
    }

    /// A fid to upload a new chunk to, from this placement's lease (a new lease when it
    /// is used up: its record is stored before any of its fids is handed out).
    pub async fn next_fid(&self, placement: &Placement) -> Result<FidTicket, VolumeError> {
        let mut leases = self.leases.lock().await;
        if let Some(lease) = leases.get_mut(placement)
            && lease.handed < lease.count
            && lease.token_fresh()
        {
            return Ok(hand_out(lease));
        }
        let lease = self.new_lease(placement).await?;
        let lease = leases
            .entry(placement.clone())
            .insert_entry(lease)
            .into_mut();
        Ok(hand_out(lease))
    }

    /// Forget this placement's lease (its volume refused a write: full or read-only).
    pub async fn drop_lease(&self, placement: &Placement) {
        self.leases.lock().await.remove(placement);
    }

    async fn new_lease(&self, placement: &Placement) -> Result<Lease, VolumeError> {
        let mut query = format!("/dir/assign?count={FID_LEASE_COUNT_MAX}");
        for (name, value) in [
            ("collection", &placement.collection),
            ("replication", &placement.replication),
            ("ttl", &placement.ttl),
        ] {
            if !value.is_empty() {
                query.push_str(&format!("&{name}={value}"));
            }
        }
        let (answer, token) = self.master_get_token(&query).await?;
        let fid_text = answer["fid"].as_str().unwrap_or("");
        let first = fids::parse(fid_text)
            .map_err(|e| VolumeError(format!("master assign answered {answer}: {e}")))?;
        let url = answer["url"].as_str().unwrap_or("").to_string();
        let count = answer["count"]
            .as_u64()
            .unwrap_or(1)
            .clamp(1, FID_LEASE_COUNT_MAX);
        let record_key = format!("{}{fid_text}", self.lease_prefix);
        let record = serde_json::json!({ "fid": fid_text, "count": count });
        let op = Op::PutRecord {
            key: record_key.clone(),
            value: record.to_string().into_bytes(),
        };
        self.store
            .apply(vec![op])
            .await
            .map_err(|e| VolumeError(format!("record lease {fid_text}: {e}")))?;
        let state = Arc::new(LeaseState {
            record_key,
            count,
            finished: AtomicU64::new(0),
            closer: self.closer.clone(),
        });
        let token = token.map(|value| {
            let exp = value
                .split_once(' ')
                .and_then(|(_, t)| jwt::unverified_exp(t));
            (value, exp)
        });
        Ok(Lease {
            first,
            url,
            count,
            handed: 0,
            state,
            token,
        })
    }

    /// The URLs of a volume's servers (cached).
    pub async fn locate(&self, volume_id: u32) -> Result<Vec<String>, VolumeError> {
        let ttl = Duration::from_millis(VOLUME_LOCATION_TTL_MS);
        if let Some((urls, at)) = self.locations.read().expect("lock").get(&volume_id)
            && at.elapsed() < ttl
        {
            return Ok(urls.clone());
        }
        let answer = self
            .master_get(&format!("/dir/lookup?volumeId={volume_id}"))
            .await?;
        let urls: Vec<String> = answer["locations"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|l| l["url"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if urls.is_empty() {
            return Err(VolumeError(format!("volume {volume_id} has no location")));
        }
        let mut locations = self.locations.write().expect("lock");
        locations.insert(volume_id, (urls.clone(), Instant::now()));
        Ok(urls)
    }

    pub fn forget_location(&self, volume_id: u32) {
        self.locations.write().expect("lock").remove(&volume_id);
    }

    /// Upload `data` as `ticket`'s fid.
    pub async fn upload(&self, ticket: &FidTicket, data: Bytes) -> Result<(), VolumeError> {
        let mut url = format!("http://{}/{}", ticket.url, ticket.fid);
        let mut headers = vec![("content-type", "application/octet-stream")];
        if let Some((path, token)) = &ticket.upload_token {
            url = format!("http://{}{path}", ticket.url);
            headers.push(("authorization", token));
        }
        let (status, body) = self.call(Method::POST, &url, &headers, data).await?;
        if status != 201 {
            let text = String::from_utf8_lossy(&body);
            return Err(VolumeError(format!("upload {url}: {status} {text}")));
        }
        Ok(())
    }

    /// GET a chunk (bytes `range` of its blob, `first-last` inclusive), body not yet read.
    pub async fn fetch(
        &self,
        fid: &str,
        range: Option<(u64, u64)>,
    ) -> Result<hyper::Response<Incoming>, VolumeError> {
        let volume_id = fids::volume_of(fid).map_err(VolumeError)?;
        let urls = self.locate(volume_id).await?;
        let header = range.map(|(first, last)| format!("bytes={first}-{last}"));
        let mut headers: Vec<(&str, &str)> = header.iter().map(|h| ("range", h.as_str())).collect();
        let mut token = None;
        if self.reads_need_tokens.load(Ordering::Relaxed) {
            token = Some(self.token_for(fid, true).await?);
        }
        headers.extend(token.as_deref().map(|t| ("authorization", t)));
        let mut failures = Vec::new();
        for url in &urls {
            let url = format!("http://{url}/{fid}");
            match self.send(Method::GET, &url, &headers, Bytes::new()).await {
                Ok(response) if matches!(response.status().as_u16(), 200 | 206) => {
                    return Ok(response);
                }
                Ok(response) if response.status() == 401 && token.is_none() => {
                    // Reads need tokens here: from now on every read gets one.
                    self.reads_need_tokens.store(true, Ordering::Relaxed);
                    return Box::pin(self.fetch(fid, range)).await;
                }
                Ok(response) => failures.push(format!("{url}: {}", response.status())),
                Err(error) => failures.push(error.0),
            }
        }
        self.forget_location(volume_id);
        Err(VolumeError(format!(
            "read chunk {fid}: {}",
            failures.join("; ")
        )))
    }

    /// Delete a chunk from every server of its volume; a chunk already gone counts as deleted.
    pub async fn delete(&self, fid: &str) -> Result<(), VolumeError> {
        let volume_id = fids::volume_of(fid).map_err(VolumeError)?;
        let urls = match self.locate(volume_id).await {
            Ok(urls) => urls,
            // A volume the master no longer knows (deleted collection, expired TTL volume)
            // holds nothing to delete.
            Err(error) if error.0.contains("not found") || error.0.contains("no location") => {
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let mut token = None;
        if self.deletes_need_tokens.load(Ordering::Relaxed) {
            token = Some(self.token_for(fid, false).await?);
        }
        for url in urls {
            let url = format!("http://{url}/{fid}");
            let headers: Vec<(&str, &str)> = token
                .iter()
                .map(|t| ("authorization", t.as_str()))
                .collect();
            let (status, body) = self
                .call(Method::DELETE, &url, &headers, Bytes::new())
                .await?;
            if status == 401 && token.is_none() {
                // Deletes need tokens here: from now on every delete gets one.
                self.deletes_need_tokens.store(true, Ordering::Relaxed);
                return Box::pin(self.delete(fid)).await;
            }
            if !matches!(status, 200 | 202 | 204 | 404) {
                self.forget_location(volume_id);
                let text = String::from_utf8_lossy(&body);
                return Err(VolumeError(format!("delete {url}: {status} {text}")));
            }
        }
        Ok(())
    }
}

fn hand_out(lease: &mut Lease) -> FidTicket {
    assert!(lease.handed < lease.count);
    let fid = fids::nth_of_lease(&lease.first, lease.handed);
    let upload_token = lease.token.as_ref().map(|(token, _)| {
        (
            fids::nth_of_lease_path(&lease.first, lease.handed),
            token.clone(),
        )
    });
    lease.handed += 1;
    FidTicket {
        fid,
        url: lease.url.clone(),
        state: lease.state.clone(),
        upload_token,
    }
}

impl Volumes {
    /// The `Authorization` value for a delete (or a read) of `fid`: signed here when this
    /// filer's `--security` file has the key, else asked of the master.
    async fn token_for(&self, fid: &str, for_read: bool) -> Result<String, VolumeError> {
        let security = self.security.as_deref();
        let key = match for_read {
            true => security.and_then(|s| s.read_key.as_ref()),
            false => security.and_then(|s| s.write_key.as_ref()),
        };
        if let Some(key) = key {
            return Ok(format!("Bearer {}", key.sign(fid, now_unix_s())));
        }
        let read = if for_read { "&read=yes" } else { "" };
        let (_, token) = self
            .master_get_token(&format!("/dir/lookup?fileId={fid}{read}"))
            .await?;
        token.ok_or_else(|| {
            let what = if for_read { "read" } else { "delete" };
            VolumeError(format!(
                "{fid}: the volume server wants a token to {what} it, and the master gave none                  (its security.toml lacks the key; or give this filer --security with it)"
            ))
        })
    }
}
