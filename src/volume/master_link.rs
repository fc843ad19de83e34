//! Talking to the master: the heartbeat (`crate::wire`) with leader following and backoff,
//! `/cluster/watch` to hear at once when the leader goes away or a new one is elected, and
//! `/dir/lookup` for fids this server does not hold, cached for a short time.

use super::limits::{
    LOOKUP_CACHE_ENTRIES_MAX, LOOKUP_CACHE_MS_MAX, MASTER_BACKOFF_MS_MIN, MASTER_CONNECT_MS_MAX,
    MASTER_REQUEST_MS_MAX,
};
pub use crate::wire::{Heartbeat, VolumeReport};
use kelp_net::http::client::{Client, ClientError, ClientOptions};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn master_client_options() -> ClientOptions {
    ClientOptions {
        connect_timeout_ms: MASTER_CONNECT_MS_MAX,
        request_timeout_ms: MASTER_REQUEST_MS_MAX,
        body_bytes_max: 64 << 20,
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    #[serde(default)]
    pub volume_size_limit: u64,
    #[serde(default)]
    pub pulse_seconds: u64,
    #[serde(default)]
    pub leader: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Location {
    pub url: String,
    #[serde(rename = "publicUrl", default)]
    pub public_url: String,
    #[serde(rename = "dataCenter", default)]
    pub data_center: String,
}

#[derive(Debug, Clone, Deserialize)]
struct LookupAnswer {
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    error: Option<String>,
}

/// Why a lookup did not give locations.
#[derive(Debug)]
pub enum LookupError {
    /// Every master was tried; the last error.
    Unreachable(ClientError),
    /// The master answered that it does not know the volume.
    Unknown {
        volume_id: u32,
        message: String,
    },
    Malformed {
        master: String,
        reason: String,
    },
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::Unreachable(error) => write!(f, "no master reachable: {error}"),
            LookupError::Unknown { volume_id, message } => {
                write!(f, "volume {volume_id} not found by the master: {message}")
            }
            LookupError::Malformed { master, reason } => {
                write!(
                    f,
                    "lookup answer from master {master} is malformed: {reason}"
                )
            }
        }
    }
}

/// The `--master` list with the leader we currently believe in.
pub struct Masters {
    addrs: Vec<String>,
    current: usize,
    client: Option<Client>,
    /// For `/cluster/watch` on the current master (its request timeout covers the wait).
    watch_client: Option<(u64, Client)>,
}

/// What `/cluster/watch` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderWatch {
    /// The master now names this leader ("" for none).
    Changed(String),
    /// The wait ended with the leader as believed.
    Unchanged,
    /// The master does not offer `/cluster/watch` (an older master, or SeaweedFS).
    Unsupported,
}

impl Masters {
    pub fn new(addrs: Vec<String>) -> Masters {
        assert!(!addrs.is_empty(), "at least one master address");
        Masters {
            addrs,
            current: 0,
            client: None,
            watch_client: None,
        }
    }

    /// How many masters the list holds.
    pub fn count(&self) -> usize {
        self.addrs.len()
    }

    pub fn current(&self) -> &str {
        &self.addrs[self.current]
    }

    /// Follow a leader hint from a master's answer (added to the list if new).
    pub fn follow_leader(&mut self, leader: &str) {
        if leader.is_empty() || leader == self.current() {
            return;
        }
        let index = match self.addrs.iter().position(|a| a == leader) {
            Some(index) => index,
            None => {
                self.addrs.push(leader.to_string());
                self.addrs.len() - 1
            }
        };
        self.current = index;
        self.client = None;
        self.watch_client = None;
    }

    /// Move on to the next master of the list.
    pub fn advance(&mut self) {
        self.current = (self.current + 1) % self.addrs.len();
        self.client = None;
        self.watch_client = None;
    }

    /// Wait up to `wait_ms` on the current master until the leader it names is not
    /// `believed`. An error means the connection failed: the master went away (then the next
    /// master is current).
    pub async fn watch_leader(
        &mut self,
        believed: &str,
        wait_ms: u64,
    ) -> Result<LeaderWatch, ClientError> {
        let addr = self.current().to_string();
        let request_timeout_ms = wait_ms + MASTER_REQUEST_MS_MAX;
        if self
            .watch_client
            .as_ref()
            .is_none_or(|(timeout, _)| *timeout != request_timeout_ms)
        {
            let options = ClientOptions {
                request_timeout_ms,
                ..master_client_options()
            };
            self.watch_client = Some((request_timeout_ms, Client::new(&addr, options)));
        }
        let (_, client) = self.watch_client.as_mut().expect("watch client set above");
        let path = format!("/cluster/watch?leader={believed}&wait_ms={wait_ms}");
        match client.request("GET", &path, &[], b"").await {
            Ok(response) => Ok(parse_watch(response.status, &response.body)),
            Err(error) => {
                self.advance();
                Err(error)
            }
        }
    }

    /// Forgets the connection of a watch given up half way (its answer must not be read as the
    /// next one's).
    pub fn drop_watch_connection(&mut self) {
        self.watch_client = None;
    }

    /// One request to the current master, moving on to the next one on a connection error;
    /// every master is tried once.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(String, kelp_net::http::client::ClientResponse), ClientError> {
        let mut last_error = None;
        for _ in 0..self.addrs.len() {
            let addr = self.current().to_string();
            let client = self
                .client
                .get_or_insert_with(|| Client::new(&addr, master_client_options()));
            let headers = [("Content-Type", "application/json")];
            match client.request(method, path, &headers, body).await {
                Ok(response) => return Ok((addr, response)),
                Err(error) => {
                    last_error = Some(error);
                    self.advance();
                }
            }
        }
        Err(last_error.expect("at least one master was tried"))
    }
}

/// Send one heartbeat; follows the leader named in the answer.
pub async fn send_heartbeat(
    masters: &mut Masters,
    heartbeat: &Heartbeat,
) -> Result<HeartbeatAnswer, String> {
    let body = serde_json::to_vec(heartbeat).expect("heartbeat serializes");
    let (addr, response) = masters
        .request("POST", "/heartbeat", &body)
        .await
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        // A master that cannot take it now (no leader, no quorum) may stay so: ask the next.
        masters.advance();
        let text = String::from_utf8_lossy(&response.body);
        return Err(format!(
            "master {addr} answered {}: {text}",
            response.status
        ));
    }
    let answer: HeartbeatAnswer = serde_json::from_slice(&response.body)
        .map_err(|e| format!("master {addr} heartbeat answer: {e}"))?;
    masters.follow_leader(&answer.leader);
    Ok(answer)
}

/// The next backoff after a failure: doubles, capped at one pulse.
pub fn next_backoff_ms(current_ms: u64, pulse_ms: u64) -> u64 {
    current_ms
        .saturating_mul(2)
        .clamp(MASTER_BACKOFF_MS_MIN, pulse_ms.max(MASTER_BACKOFF_MS_MIN))
}

#[derive(Deserialize)]
struct WatchAnswer {
    #[serde(rename = "Leader")]
    leader: String,
    #[serde(rename = "Changed")]
    changed: bool,
}

fn parse_watch(status: u16, body: &[u8]) -> LeaderWatch {
    match serde_json::from_slice::<WatchAnswer>(body) {
        Ok(answer) if status == 200 && answer.changed => LeaderWatch::Changed(answer.leader),
        Ok(_) if status == 200 => LeaderWatch::Unchanged,
        _ => LeaderWatch::Unsupported,
    }
}

/// Per-core cache of `/dir/lookup` answers.
#[derive(Default)]
pub struct LookupCache {
    entries: HashMap<u32, (Instant, Vec<Location>)>,
}

impl LookupCache {
    pub fn get(&self, volume_id: u32, now: Instant) -> Option<&[Location]> {
        let (fetched_at, locations) = self.entries.get(&volume_id)?;
        let age = now.saturating_duration_since(*fetched_at);
        (age < Duration::from_millis(LOOKUP_CACHE_MS_MAX)).then_some(locations.as_slice())
    }

    pub fn put(&mut self, volume_id: u32, locations: Vec<Location>, now: Instant) {
        if self.entries.len() >= LOOKUP_CACHE_ENTRIES_MAX {
            self.entries.clear();
        }
        self.entries.insert(volume_id, (now, locations));
    }

    pub fn forget(&mut self, volume_id: u32) {
        self.entries.remove(&volume_id);
    }
}

/// Ask the masters where volume `volume_id` lives.
pub async fn lookup(masters: &mut Masters, volume_id: u32) -> Result<Vec<Location>, LookupError> {
    let path = format!("/dir/lookup?volumeId={volume_id}");
    let (master, response) = masters
        .request("GET", &path, &[])
        .await
        .map_err(LookupError::Unreachable)?;
    parse_lookup(&master, volume_id, response.status, &response.body)
}

fn parse_lookup(
    master: &str,
    volume_id: u32,
    status: u16,
    body: &[u8],
) -> Result<Vec<Location>, LookupError> {
    let answer: LookupAnswer =
        serde_json::from_slice(body).map_err(|e| LookupError::Malformed {
            master: master.to_string(),
            reason: format!("status {status}: {e}"),
        })?;
    if status != 200 || answer.locations.is_empty() {
        let message = answer.error.unwrap_or_else(|| format!("status {status}"));
        return Err(LookupError::Unknown { volume_id, message });
    }
    Ok(answer.locations)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the heartbeat JSON has the field names the master reads (camelCase, as `crate::wire`).
    #[test]
    fn heartbeat_json_shape() {
        let heartbeat = Heartbeat {
            ip: "127.0.0.1".into(),
            port: 8080,
            public_url: "127.0.0.1:8080".into(),
            data_center: "dc1".into(),
            rack: "rack1".into(),
            max_volume_count: 8,
            max_file_key: 1234,
            grpc_port: 18080,
            volumes: vec![VolumeReport {
                id: 3,
                port: 8081,
                size: 1234,
                collection: String::new(),
                file_count: 10,
                delete_count: 1,
                deleted_byte_count: 100,
                read_only: false,
                replica_placement: kelp_engine::format::ReplicaPlacement::default(),
                ttl: kelp_engine::format::Ttl::EMPTY,
                compact_revision: 0,
                modified_at_second: 1_700_000_000,
            }],
        };
        let expected = r#"{"ip":"127.0.0.1","port":8080,"publicUrl":"127.0.0.1:8080","dataCenter":"dc1","rack":"rack1","maxVolumeCount":8,"maxFileKey":1234,"grpcPort":18080,"volumes":[{"id":3,"port":8081,"size":1234,"collection":"","fileCount":10,"deleteCount":1,"deletedByteCount":100,"readOnly":false,"replicaPlacement":"000","ttl":"","compactRevision":0,"modifiedAtSecond":1700000000}]}"#;
        assert_eq!(serde_json::to_string(&heartbeat).unwrap(), expected);
        let answer: HeartbeatAnswer =
            serde_json::from_str(r#"{"volumeSizeLimit":1024,"pulseSeconds":5,"leader":"m2:9333"}"#)
                .unwrap();
        assert_eq!((answer.volume_size_limit, answer.pulse_seconds), (1024, 5));
    }

    // Proves leader hints move the current master, adding unknown ones to the list.
    #[test]
    fn leader_following() {
        let mut masters = Masters::new(vec!["m1:1".into(), "m2:2".into()]);
        masters.follow_leader("m2:2");
        assert_eq!(masters.current(), "m2:2");
        masters.follow_leader("m3:3");
        assert_eq!(masters.current(), "m3:3");
        masters.advance();
        assert_eq!(masters.current(), "m1:1");
        masters.follow_leader("");
        assert_eq!(masters.current(), "m1:1");
    }

    // Proves the backoff doubles from its minimum and never passes one pulse, however long
    // the masters stay away (it used to grow to 30 s, so a volume server found a new leader
    // up to 30 s late).
    #[test]
    fn backoff_is_capped_at_one_pulse() {
        let pulse_ms = 5_000;
        assert_eq!(next_backoff_ms(0, pulse_ms), MASTER_BACKOFF_MS_MIN);
        assert_eq!(next_backoff_ms(1000, pulse_ms), 2000);
        let mut backoff_ms = 0;
        for _ in 0..100 {
            backoff_ms = next_backoff_ms(backoff_ms, pulse_ms);
            assert!(backoff_ms <= pulse_ms);
        }
        assert_eq!(backoff_ms, pulse_ms);
        assert_eq!(next_backoff_ms(u64::MAX, 1000), 1000);
        assert_eq!(
            next_backoff_ms(0, 0),
            MASTER_BACKOFF_MS_MIN,
            "pulse 0 is no cap below the minimum"
        );
    }

    // Proves /cluster/watch answers are read, and anything else counts as "not offered".
    #[test]
    fn watch_answers() {
        let changed = br#"{"Leader":"m2:2","Changed":true}"#;
        assert_eq!(
            parse_watch(200, changed),
            LeaderWatch::Changed("m2:2".into())
        );
        let unchanged = br#"{"Leader":"m1:1","Changed":false}"#;
        assert_eq!(parse_watch(200, unchanged), LeaderWatch::Unchanged);
        assert_eq!(
            parse_watch(404, br#"{"error":"no such endpoint"}"#),
            LeaderWatch::Unsupported
        );
        assert_eq!(parse_watch(200, b"<html>"), LeaderWatch::Unsupported);
    }

    // Proves lookup answers parse, unknown volumes are errors, and the cache expires.
    #[test]
    fn lookup_answers_and_cache() {
        let body = br#"{"volumeOrFileId":"3","locations":[{"url":"h:1","publicUrl":"p:1","dataCenter":"dc"}]}"#;
        let locations = parse_lookup("m", 3, 200, body).unwrap();
        assert_eq!(locations[0].public_url, "p:1");
        let missing = parse_lookup("m", 4, 404, br#"{"error":"volume id 4 not found"}"#);
        assert!(matches!(
            missing,
            Err(LookupError::Unknown { volume_id: 4, .. })
        ));
        assert!(matches!(
            parse_lookup("m", 4, 200, b"<html>"),
            Err(LookupError::Malformed { .. })
        ));
        let mut cache = LookupCache::default();
        let start = Instant::now();
        cache.put(3, locations, start);
        assert!(cache.get(3, start).is_some());
        let later = start + Duration::from_millis(LOOKUP_CACHE_MS_MAX + 1);
        assert!(cache.get(3, later).is_none());
    }
}
