//! The requests of one benchmark worker, the same ones `weed benchmark` makes: assign a file id
//! from the master (`/dir/assign?count=1`), upload the file as multipart (filename ".", type
//! `image/bench`) to the volume server, and later look the volume up (`/dir/lookup`, cached) and
//! GET the file back; optionally delete a share of the files one second after writing them.
//!
//! Against servers with a `security.toml`, an upload carries the token its assign answered
//! (`Authorization: Bearer`), and a read or a delete refused with 401 is repeated with a
//! token from `/dir/lookup?fileId=` (`&read=yes` for a read), as `weed benchmark` does.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kelp_engine::format::{FileId, ReplicaPlacement, parse_volume_id_prefix};
use kelp_net::http::client::{Client, ClientError, ClientOptions, ClientResponse};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::limits::{
    ASSIGN_ATTEMPTS_MAX, ASSIGN_BACKOFF_MS, ASSIGN_BACKOFF_MS_MAX, ASSIGN_RETRY_MS_MAX,
    CONNECT_TIMEOUT_MS, DELETE_DELAY_MS, LOOKUP_CACHE_ENTRIES_MAX, PENDING_DELETES_MAX,
    REQUEST_TIMEOUT_MS,
};
use crate::run::Shared;

/// Multipart boundary of uploads; the random file bytes contain it with probability ~2^-200.
const BOUNDARY: &str = "kelpbench7d1c9f0e3a5b48e2b6a4f0c1d9e8b7a6";
/// Bytes of random data a worker draws file contents from (contents start at a random offset).
const RANDOM_POOL_EXTRA_BYTES: usize = 4096;

/// The workload settings every worker shares.
#[derive(Debug, Clone)]
pub struct Workload {
    pub masters: Vec<String>,
    pub size: usize,
    pub size_jitter: usize,
    pub collection: String,
    pub replication: ReplicaPlacement,
    pub fsync: bool,
    pub delete_percent: u8,
}

/// A written file: where it is and what a read must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub fid: String,
    /// Bytes written, and the 8-byte little-endian id at the front of the data; None when
    /// the fid came from a `--list` file (nothing to check then but the status).
    pub expected: Option<(u64, u64)>,
}

/// Why one operation failed, and whether the failure was at the connection level (a run of those
/// means the server went away).
#[derive(Debug)]
pub struct OpError {
    pub message: String,
    pub connection_level: bool,
}

impl OpError {
    fn client(context: &str, error: ClientError) -> OpError {
        let connection_level =
            matches!(error, ClientError::Connect { .. } | ClientError::Io { .. });
        OpError {
            message: format!("{context}: {error}"),
            connection_level,
        }
    }

    fn server(context: &str, response: &ClientResponse) -> OpError {
        let body = String::from_utf8_lossy(&response.body);
        OpError {
            message: format!("{context}: HTTP {} {}", response.status, body.trim()),
            connection_level: false,
        }
    }

    fn other(message: String) -> OpError {
        OpError {
            message,
            connection_level: false,
        }
    }
}

#[derive(Deserialize)]
struct AssignAnswer {
    fid: Option<String>,
    url: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct LookupAnswer {
    #[serde(default)]
    locations: Vec<LookupLocation>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct LookupLocation {
    url: String,
}

struct PendingDelete {
    due: Instant,
    url: String,
    fid: String,
}

/// One worker: its own connections (one per server), lookup cache and random source.
pub struct Worker {
    shared: Arc<Shared>,
    workload: Arc<Workload>,
    clients: HashMap<String, Client>,
    lookup_cache: HashMap<u32, Vec<String>>,
    random: SmallRng,
    random_pool: Vec<u8>,
    pending_deletes: VecDeque<PendingDelete>,
    /// The `Authorization` value of the last assign's answer, for its upload.
    upload_token: Option<String>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, workload: Arc<Workload>, seed: u64) -> Worker {
        let mut random = SmallRng::seed_from_u64(seed);
        let pool_bytes = workload.size + workload.size_jitter + RANDOM_POOL_EXTRA_BYTES;
        let mut random_pool = vec![0u8; pool_bytes];
        random.fill(&mut random_pool[..]);
        Worker {
            shared,
            workload,
            clients: HashMap::new(),
            lookup_cache: HashMap::new(),
            random,
            random_pool,
            pending_deletes: VecDeque::new(),
            upload_token: None,
        }
    }

    fn client(&mut self, addr: &str) -> &mut Client {
        self.clients.entry(addr.to_string()).or_insert_with(|| {
            let options = ClientOptions {
                connect_timeout_ms: CONNECT_TIMEOUT_MS,
                request_timeout_ms: REQUEST_TIMEOUT_MS,
                ..ClientOptions::default()
            };
            Client::new(addr, options)
        })
    }

    /// Assign + upload one file with id `id`. Returns the record and the bytes written.
    pub async fn write_file(&mut self, id: u64) -> Result<(FileRecord, u64, String), OpError> {
        let jitter = self.random.random_range(0..=self.workload.size_jitter);
        let size = self.workload.size + jitter;
        let (fid, url) = self.assign().await?;
        let mut target = format!("/{fid}");
        if self.workload.fsync {
            target.push_str("?fsync=true");
        }
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let token = self.upload_token.take();
        let mut headers = vec![("Content-Type", content_type.as_str())];
        headers.extend(token.as_deref().map(|token| ("Authorization", token)));
        let offset = self.random.random_range(0..RANDOM_POOL_EXTRA_BYTES);
        // Borrowed out of `self` while the client (also in `self`) writes the request.
        let pool = std::mem::take(&mut self.random_pool);
        let data = &pool[offset..offset + size];
        let result = self
            .client(&url)
            .request_writing_body("POST", &target, &headers, upload_len(size), |out| {
                write_upload(out, data, id)
            })
            .await;
        self.random_pool = pool;
        let response = result.map_err(|e| OpError::client(&format!("upload {fid}"), e))?;
        if response.status != 201 && response.status != 200 {
            return Err(OpError::server(
                &format!("upload {fid} to {url}"),
                &response,
            ));
        }
        let record = FileRecord {
            fid,
            expected: Some((size as u64, id)),
        };
        Ok((record, size as u64, url))
    }

    /// `/dir/assign?count=1` on the current master, following the leader through the list and
    /// waiting out "volume growth in progress" and "no leader yet" (503) answers, as weed's
    /// client does, for at most `ASSIGN_RETRY_MS_MAX`. A master that refuses the connection
    /// or drops it mid-request is skipped; when every master did, the error is
    /// connection-level (the caller may end the run).
    async fn assign(&mut self) -> Result<(String, String), OpError> {
        let target = format!(
            "/dir/assign?count=1&collection={}&replication={}",
            self.workload.collection, self.workload.replication
        );
        let mut unreachable: Vec<String> = Vec::new();
        let mut last_error = None;
        let deadline = Instant::now() + Duration::from_millis(ASSIGN_RETRY_MS_MAX);
        for attempt in 0..ASSIGN_ATTEMPTS_MAX {
            if attempt > 0 && Instant::now() >= deadline {
                break;
            }
            let master = self
                .shared
                .current_master(&self.workload.masters)
                .to_string();
            let context = format!("assign on master {master}");
            let retry = match self.client(&master).request("GET", &target, &[], b"").await {
                Ok(response) => {
                    unreachable.clear();
                    match parse_assign(&master, &response) {
                        Ok(assigned) => {
                            self.upload_token =
                                response.header("authorization").map(str::to_string);
                            return Ok(assigned);
                        }
                        Err((error, retry)) => {
                            last_error = Some(error);
                            retry
                        }
                    }
                }
                // An assignment is safe to ask again, of the next master.
                Err(error @ (ClientError::Connect { .. } | ClientError::Io { .. })) => {
                    last_error = Some(OpError::client(&context, error));
                    if !unreachable.contains(&master) {
                        unreachable.push(master.clone());
                    }
                    if unreachable.len() >= self.workload.masters.len() {
                        return Err(last_error.expect("set above"));
                    }
                    AssignRetry::NextMaster
                }
                Err(error) => return Err(OpError::client(&context, error)),
            };
            if retry == AssignRetry::No {
                break;
            }
            self.wait_before_retry(retry, attempt, &master).await;
        }
        let last = last_error.expect("at least one master was tried");
        Err(OpError::other(format!("gave up: {}", last.message)))
    }

    /// Before the next try of an assignment: wait (doubling from `ASSIGN_BACKOFF_MS`; also
    /// after each round over every master) and move on to the next master when told.
    async fn wait_before_retry(&self, retry: AssignRetry, attempt: u32, master: &str) {
        let backoff_ms = (ASSIGN_BACKOFF_MS << attempt.min(4)).min(ASSIGN_BACKOFF_MS_MAX);
        let backoff = Duration::from_millis(backoff_ms);
        let round_done = (attempt as usize + 1).is_multiple_of(self.workload.masters.len());
        match retry {
            AssignRetry::No => {}
            AssignRetry::Later => compio::time::sleep(backoff).await,
            AssignRetry::NextMaster | AssignRetry::LaterElsewhere => {
                if retry == AssignRetry::LaterElsewhere || round_done {
                    compio::time::sleep(backoff).await;
                }
                self.shared.next_master(master, &self.workload.masters);
            }
        }
    }

    /// Look up (cached) and GET one file; checks its length and id when known.
    pub async fn read_file(&mut self, record: &FileRecord) -> Result<u64, OpError> {
        let volume_id = parse_volume_id(&record.fid)?;
        let urls = self.lookup(volume_id).await?;
        let target = format!("/{}", record.fid);
        let mut last_error = None;
        for url in &urls {
            let mut answer = self.client(url).request("GET", &target, &[], b"").await;
            if let Ok(response) = &answer
                && response.status == 401
            {
                let token = self.file_token(&record.fid, true).await?;
                let headers = [("Authorization", token.as_str())];
                answer = self
                    .client(url)
                    .request("GET", &target, &headers, b"")
                    .await;
            }
            match answer {
                Ok(response) if response.status == 200 => {
                    check_read(record, &response.body)?;
                    return Ok(response.body.len() as u64);
                }
                Ok(response) => {
                    last_error = Some(OpError::server(&format!("read {}", record.fid), &response))
                }
                Err(error) => {
                    last_error = Some(OpError::client(&format!("read {}", record.fid), error))
                }
            }
        }
        // A failed read may mean the volume moved: look it up again next time.
        self.lookup_cache.remove(&volume_id);
        Err(last_error.expect("lookup returns at least one location"))
    }

    async fn lookup(&mut self, volume_id: u32) -> Result<Vec<String>, OpError> {
        if let Some(urls) = self.lookup_cache.get(&volume_id) {
            return Ok(urls.clone());
        }
        let target = format!("/dir/lookup?volumeId={volume_id}");
        let master = self
            .shared
            .current_master(&self.workload.masters)
            .to_string();
        let context = format!("lookup volume {volume_id} on master {master}");
        let response = match self.client(&master).request("GET", &target, &[], b"").await {
            Ok(response) => response,
            Err(error) => {
                if matches!(error, ClientError::Connect { .. }) {
                    self.shared.next_master(&master, &self.workload.masters);
                }
                return Err(OpError::client(&context, error));
            }
        };
        let answer: LookupAnswer = serde_json::from_slice(&response.body)
            .map_err(|e| OpError::other(format!("{context}: bad JSON answer: {e}")))?;
        if response.status != 200 || answer.locations.is_empty() {
            let reason = answer.error.unwrap_or_else(|| "no locations".to_string());
            return Err(OpError::other(format!("{context}: {reason}")));
        }
        let urls: Vec<String> = answer.locations.into_iter().map(|l| l.url).collect();
        if self.lookup_cache.len() >= LOOKUP_CACHE_ENTRIES_MAX {
            self.lookup_cache.clear();
        }
        self.lookup_cache.insert(volume_id, urls.clone());
        Ok(urls)
    }

    /// A token to read (or change) `fid`: the `Authorization` header of the current master's
    /// `/dir/lookup?fileId=` answer.
    async fn file_token(&mut self, fid: &str, for_read: bool) -> Result<String, OpError> {
        let read = if for_read { "&read=yes" } else { "" };
        let target = format!("/dir/lookup?fileId={fid}{read}");
        let master = self
            .shared
            .current_master(&self.workload.masters)
            .to_string();
        let context = format!("token for {fid} from master {master}");
        let response = self
            .client(&master)
            .request("GET", &target, &[], b"")
            .await
            .map_err(|e| OpError::client(&context, e))?;
        match response.header("authorization") {
            Some(token) => Ok(token.to_string()),
            None => Err(OpError::server(
                &format!("{context}: the volume server wants a token, the master gave none"),
                &response,
            )),
        }
    }

    /// Should this freshly written file be deleted later (`--delete-percent`)?
    pub fn choose_delete(&mut self) -> bool {
        self.workload.delete_percent > 0
            && self.random.random_range(0..100u8) < self.workload.delete_percent
    }

    /// Schedule a delete one second from now; false when the queue is full (then the file is
    /// kept, and counted as a normal write).
    pub fn schedule_delete(&mut self, url: String, fid: String) -> bool {
        if self.pending_deletes.len() >= PENDING_DELETES_MAX {
            return false;
        }
        let due = Instant::now() + Duration::from_millis(DELETE_DELAY_MS);
        self.pending_deletes
            .push_back(PendingDelete { due, url, fid });
        true
    }

    /// The next scheduled delete, waiting for it to be due when `wait` (else only if due now).
    pub async fn next_delete(&mut self, wait: bool) -> Option<(String, String)> {
        let front = self.pending_deletes.front()?;
        let now = Instant::now();
        if front.due > now {
            if !wait {
                return None;
            }
            compio::time::sleep(front.due - now).await;
        }
        let delete = self.pending_deletes.pop_front()?;
        Some((delete.url, delete.fid))
    }

    pub async fn delete_file(&mut self, url: &str, fid: &str) -> Result<(), OpError> {
        let target = format!("/{fid}");
        let mut response = self
            .client(url)
            .request("DELETE", &target, &[], b"")
            .await
            .map_err(|e| OpError::client(&format!("delete {fid}"), e))?;
        if response.status == 401 {
            let token = self.file_token(fid, false).await?;
            let headers = [("Authorization", token.as_str())];
            response = self
                .client(url)
                .request("DELETE", &target, &headers, b"")
                .await
                .map_err(|e| OpError::client(&format!("delete {fid}"), e))?;
        }
        if !(200..300).contains(&response.status) {
            return Err(OpError::server(
                &format!("delete {fid} on {url}"),
                &response,
            ));
        }
        Ok(())
    }

    /// A random number in `0..bound` from this worker's generator.
    pub fn random_below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.random.random_range(0..bound)
    }
}

/// What to do after an assign that gave no fid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AssignRetry {
    /// A final answer (bad parameters, no space).
    No,
    /// This master is not the leader: ask the next one.
    NextMaster,
    /// The master is busy (503: growing volumes, warming up): ask again shortly.
    Later,
    /// No leader serves now (an election, no quorum, the leader went away): wait a little,
    /// then ask the next master.
    LaterElsewhere,
}

/// Parse a `/dir/assign` answer: Ok((fid, url)) or Err((error, what to do next)).
fn parse_assign(
    master: &str,
    response: &ClientResponse,
) -> Result<(String, String), (OpError, AssignRetry)> {
    let context = format!("assign on master {master}");
    let answer: AssignAnswer = serde_json::from_slice(&response.body).map_err(|e| {
        let error = OpError::other(format!(
            "{context}: HTTP {} with a body that is not the JSON expected: {e}",
            response.status
        ));
        (error, AssignRetry::No)
    })?;
    if let (200, Some(fid), Some(url), None) =
        (response.status, &answer.fid, &answer.url, &answer.error)
    {
        if let Err(error) = FileId::parse(fid) {
            let error = OpError::other(format!("{context}: HTTP 200 with {error}"));
            return Err((error, AssignRetry::No));
        }
        return Ok((fid.clone(), url.clone()));
    }
    let reason = answer
        .error
        .unwrap_or_else(|| "no fid in the answer".to_string());
    let lower = reason.to_ascii_lowercase();
    let no_leader = ["no quorum", "no leader", "not answer", "went away"]
        .iter()
        .any(|words| lower.contains(words));
    let not_the_leader = lower.contains("not the leader");
    let retry = if response.status == 503 && no_leader {
        AssignRetry::LaterElsewhere
    } else if not_the_leader {
        AssignRetry::NextMaster
    } else if response.status == 503 {
        AssignRetry::Later
    } else {
        AssignRetry::No
    };
    let error = OpError::other(format!("{context}: HTTP {}: {reason}", response.status));
    Err((error, retry))
}

/// The part head of an upload, between the opening boundary and the data.
const UPLOAD_PART_HEAD: &[u8] =
    b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\".\"\r\nContent-Type: image/bench\r\n\r\n";

/// Bytes of the multipart body `write_upload` writes for `size` bytes of data.
fn upload_len(size: usize) -> usize {
    // "--" BOUNDARY part-head data "\r\n--" BOUNDARY "--\r\n"
    2 + BOUNDARY.len() + UPLOAD_PART_HEAD.len() + size + 4 + BOUNDARY.len() + 4
}

/// Appends the multipart body of one upload (one part, named "file") holding `data`, with
/// the file `id` over its first bytes, as weed's FakeReader does, so a read can be checked.
fn write_upload(out: &mut Vec<u8>, data: &[u8], id: u64) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(UPLOAD_PART_HEAD);
    let data_start = out.len();
    out.extend_from_slice(data);
    let id_bytes = id.to_le_bytes();
    let id_len = data.len().min(id_bytes.len());
    out[data_start..data_start + id_len].copy_from_slice(&id_bytes[..id_len]);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

fn parse_volume_id(fid: &str) -> Result<u32, OpError> {
    parse_volume_id_prefix(fid).map_err(|error| OpError::other(error.to_string()))
}

fn check_read(record: &FileRecord, body: &[u8]) -> Result<(), OpError> {
    let Some((size, id)) = record.expected else {
        return Ok(());
    };
    if body.len() as u64 != size {
        return Err(OpError::other(format!(
            "read {}: got {} bytes, wrote {size}",
            record.fid,
            body.len()
        )));
    }
    let id_bytes = id.to_le_bytes();
    let id_len = body.len().min(id_bytes.len());
    if body[..id_len] != id_bytes[..id_len] {
        return Err(OpError::other(format!(
            "read {}: data does not start with the id {id} written",
            record.fid
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_body_is_one_multipart_part_with_the_id_first() {
        // Proves the upload body has the length announced for it and is one "file" part whose
        // data is the given bytes with the id over their start (cut short for tiny files).
        for (size, id) in [(0usize, 7u64), (3, 0x0102_0304), (8, u64::MAX), (65536, 42)] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut out = b"head".to_vec();
            write_upload(&mut out, &data, id);
            let body = &out[4..];
            assert_eq!(body.len(), upload_len(size), "size {size}");
            let opening = format!("--{BOUNDARY}\r\n");
            let closing = format!("\r\n--{BOUNDARY}--\r\n");
            assert!(body.starts_with(opening.as_bytes()));
            assert!(body.ends_with(closing.as_bytes()));
            let data_start = 2 + BOUNDARY.len() + UPLOAD_PART_HEAD.len();
            let written = &body[data_start..data_start + size];
            let id_len = size.min(8);
            assert_eq!(written[..id_len], id.to_le_bytes()[..id_len]);
            assert_eq!(written[id_len..], data[id_len..]);
        }
    }

    #[test]
    fn volume_id_of_fids() {
        // Proves fids in both URL forms give their volume id and junk is refused.
        assert_eq!(parse_volume_id("3,01637037d6").unwrap(), 3);
        assert_eq!(parse_volume_id("12/01637037d6").unwrap(), 12);
        assert!(parse_volume_id("x,01").is_err());
        assert!(parse_volume_id("+3,01").is_err());
        assert!(parse_volume_id("").is_err());
    }

    #[test]
    fn read_check_catches_wrong_length_and_wrong_data() {
        // Proves a read that returns another file's bytes or a short body is a failure.
        let record = FileRecord {
            fid: "3,01".to_string(),
            expected: Some((10, 7)),
        };
        let mut good = 7u64.to_le_bytes().to_vec();
        good.extend_from_slice(b"ab");
        assert!(check_read(&record, &good).is_ok());
        assert!(check_read(&record, &good[..9]).is_err());
        let mut wrong = 8u64.to_le_bytes().to_vec();
        wrong.extend_from_slice(b"ab");
        assert!(check_read(&record, &wrong).is_err());
        let unknown = FileRecord {
            fid: "3,01".to_string(),
            expected: None,
        };
        assert!(check_read(&unknown, b"anything").is_ok());
    }

    #[test]
    fn assign_answers() {
        // Proves assign answers are read like SeaweedFS writes them, and that a leader error
        // moves on to the next master while other errors do not.
        let response = |status: u16, body: &str| ClientResponse {
            status,
            headers: Vec::new(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
        };
        let ok = response(
            200,
            r#"{"fid":"14,02a74e0a0b","url":"127.0.0.1:23080","publicUrl":"x","count":1}"#,
        );
        assert_eq!(
            parse_assign("m", &ok).ok(),
            Some(("14,02a74e0a0b".to_string(), "127.0.0.1:23080".to_string()))
        );
        let follower = response(
            503,
            r#"{"error":"not the leader; leader is 127.0.0.1:9334"}"#,
        );
        assert!(matches!(
            parse_assign("m", &follower),
            Err((_, AssignRetry::NextMaster))
        ));
        let growing = response(
            503,
            r#"{"error":"no writable volumes, volume growth in progress"}"#,
        );
        assert!(matches!(
            parse_assign("m", &growing),
            Err((_, AssignRetry::Later))
        ));
        let electing = response(
            503,
            r#"{"error":"no leader elected yet; a quorum: 2 of 3 voting masters reachable"}"#,
        );
        assert!(matches!(
            parse_assign("m", &electing),
            Err((_, AssignRetry::LaterElsewhere))
        ));
        let warming = response(
            503,
            r#"{"error":"the leader is new and waits for heartbeats"}"#,
        );
        assert!(matches!(
            parse_assign("m", &warming),
            Err((_, AssignRetry::Later))
        ));
        let cut_off = response(
            503,
            r#"{"error":"no quorum: the leader m:1 has had no answer"}"#,
        );
        assert!(matches!(
            parse_assign("m", &cut_off),
            Err((_, AssignRetry::LaterElsewhere))
        ));
        let bad = response(406, r#"{"error":"unexpected replication type: abc"}"#);
        match parse_assign("m", &bad) {
            Err((error, AssignRetry::No)) => {
                assert!(error.message.contains("replication type"), "{error:?}")
            }
            other => panic!("expected a final error, got {:?}", other.map(|_| ())),
        }
        assert!(matches!(
            parse_assign("m", &response(200, "<html>")),
            Err((_, AssignRetry::No))
        ));
        let not_a_fid = response(200, r#"{"fid":"14,zz","url":"127.0.0.1:23080"}"#);
        match parse_assign("m", &not_a_fid) {
            Err((error, AssignRetry::No)) => {
                assert!(error.message.contains("\"14,zz\""), "{error:?}")
            }
            other => panic!("expected a final error, got {:?}", other.map(|_| ())),
        }
    }
}
