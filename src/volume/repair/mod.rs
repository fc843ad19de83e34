//! Anti-entropy: a pass makes this server's copy of a replicated volume agree with its other
//! replicas (README "Replicas and failures"). Pull-only: each server fixes its own copy from
//! its peers, so passes need no coordination. A pass compares digests of the live needles
//! first (`/replica/digest`); with a peer that differs it walks both listings in key order,
//! a page at a time, and decides each key by `decide::decide`: the record of the latest
//! event is copied here with its append time, a needle absent here only if this replica
//! cannot have forgotten deleting it (`horizon`). Passes run every
//! `--repair-interval-seconds` per core (one volume at a time), and on demand
//! (`POST /admin/volume/repair?volume=N`, from the masters).

pub mod decide;
pub mod horizon;
pub mod kept;
pub mod records;
pub mod serve;

use self::decide::Action;
use self::records::{KeyState, Page};
use super::handlers::now_unix_ns;
use super::limits::{
    REPAIR_CLOCK_SKEW_MAX_NS, REPAIR_FIRST_PASS_DELAY_MS, REPAIR_RECORDS_PAGE_MAX,
};
use super::master_link::{self, Masters};
use super::state::CoreState;
use super::store::{self, StoreError};
use kelp_engine::format::needle::Needle;
use kelp_net::http::{Request, Response};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

/// Repair counts, all cores together in `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairMetrics {
    pub passes: u64,
    pub failed: u64,
    pub copied: u64,
    pub deleted: u64,
    pub skipped: u64,
}

impl RepairMetrics {
    pub fn merge(&mut self, other: &RepairMetrics) {
        self.passes += other.passes;
        self.failed += other.failed;
        self.copied += other.copied;
        self.deleted += other.deleted;
        self.skipped += other.skipped;
    }
}

/// One core's repairs: the volumes a pass runs on now, and the counts.
#[derive(Default)]
pub struct Repairs {
    running: HashSet<u32>,
    pub metrics: RepairMetrics,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub volume_id: u32,
    /// The other replicas the master names (those that answered were compared).
    pub peers: Vec<String>,
    pub copied: u64,
    pub deleted: u64,
    pub skipped: u64,
}

/// Why a pass did not run or did not finish: an HTTP status and the reason.
pub type PassError = (u16, String);

/// Runs one pass of `volume_id` (at most one at a time per volume).
pub async fn run_pass(state: &Rc<CoreState>, volume_id: u32) -> Result<PassReport, PassError> {
    check_repairable(state, volume_id)?;
    if !state.repairs.borrow_mut().running.insert(volume_id) {
        return Err((409, format!("volume {volume_id}: a repair pass is running")));
    }
    let result = pass(state, volume_id).await;
    let mut repairs = state.repairs.borrow_mut();
    repairs.running.remove(&volume_id);
    let metrics = &mut repairs.metrics;
    metrics.passes += 1;
    match &result {
        Ok(report) => {
            metrics.copied += report.copied;
            metrics.deleted += report.deleted;
            metrics.skipped += report.skipped;
        }
        Err(_) => metrics.failed += 1,
    }
    result
}

/// Err when `volume_id` is not here or its replicas are not repaired: a TTL volume (its
/// needles' append times are its clock, which a copy with an old time would set back; it
/// expires whole) and a version-2 volume (no append times).
fn check_repairable(state: &CoreState, volume_id: u32) -> Result<(), PassError> {
    let store = state.store.borrow();
    let volume = store
        .volume(volume_id)
        .map_err(|error| (error.status(), error.to_string()))?;
    let core = volume.core();
    if !core.config().superblock.ttl.is_empty() {
        let text = format!("volume {volume_id} has a TTL: its replicas are not repaired");
        return Err((409, text));
    }
    if core.version() != kelp_engine::format::needle::Version::V3 {
        let text = format!("volume {volume_id} is version 2 (no append times): not repaired");
        return Err((409, text));
    }
    Ok(())
}

async fn pass(state: &Rc<CoreState>, volume_id: u32) -> Result<PassReport, PassError> {
    let mut report = PassReport {
        volume_id,
        ..PassReport::default()
    };
    let copies = state.store.borrow().placement_copies(volume_id);
    let copies = copies.map_err(|error| (error.status(), error.to_string()))?;
    if copies < 2 {
        return Ok(report);
    }
    report.peers = other_replicas(state, volume_id).await?;
    let differing = differing_peers(state, volume_id, &report.peers).await?;
    if differing.is_empty() {
        return Ok(report);
    }
    let copy_after_ns = delete_horizon(state, volume_id)
        .await?
        .saturating_add(REPAIR_CLOCK_SKEW_MAX_NS);
    let mut after = None;
    loop {
        let (merged, bound) = merged_pages(state, volume_id, &differing, after).await?;
        for (local, peers) in merged.values() {
            let action = decide::decide(local.as_ref(), peers, copy_after_ns);
            apply(
                state,
                volume_id,
                &differing,
                local.as_ref(),
                peers,
                action,
                &mut report,
            )
            .await?;
        }
        match bound {
            Some(bound) => after = Some(bound),
            None => break,
        }
    }
    if report.copied + report.deleted + report.skipped > 0 {
        tracing::info!(
            "volume {volume_id}: repaired from {}: {} copied, {} deleted, {} skipped",
            differing.join(", "),
            report.copied,
            report.deleted,
            report.skipped
        );
    }
    Ok(report)
}

/// The other replicas of `volume_id`, as the master's lookup names them now (asked, not
/// taken from the lookup cache, nor put there: the writes' view is left as it is).
async fn other_replicas(state: &CoreState, volume_id: u32) -> Result<Vec<String>, PassError> {
    let taken = state.masters.borrow_mut().take();
    let mut masters = taken.unwrap_or_else(|| Masters::new(state.config.masters.clone()));
    let result = master_link::lookup(&mut masters, volume_id).await;
    *state.masters.borrow_mut() = Some(masters);
    let found = result.map_err(|e| {
        (
            502,
            format!("volume {volume_id}: the other replicas are unknown: {e}"),
        )
    })?;
    let mut others: Vec<String> = Vec::new();
    for location in found.iter().filter(|l| !state.config.is_self(&l.url)) {
        if !others.contains(&location.url) {
            others.push(location.url.clone());
        }
    }
    Ok(others)
}

/// The peers whose digest differs from this replica's. A peer that does not answer is left
/// out (logged); Err when none answers.
async fn differing_peers(
    state: &CoreState,
    volume_id: u32,
    peers: &[String],
) -> Result<Vec<String>, PassError> {
    let local = serve::local_digest(state, volume_id)
        .await
        .map_err(|error| (error.status(), error.to_string()))?;
    let mut differing = Vec::new();
    let mut failures = Vec::new();
    for peer in peers {
        let path = format!("/replica/digest?volume={volume_id}");
        let answer = peer_get(state, peer, &path).await.and_then(|body| {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| format!("replica {peer}: a digest: {e}"))?;
            let count = value["count"].as_u64();
            let digest = value["digest"].as_str().map(str::to_string);
            Ok((count, digest))
        });
        match answer {
            Ok((count, digest)) => {
                let same = count == Some(local.count)
                    && digest.as_deref() == Some(format!("{:016x}", local.hash).as_str());
                if !same {
                    differing.push(peer.clone());
                }
            }
            Err(error) => {
                tracing::warn!("volume {volume_id}: repair: {error}");
                failures.push(error);
            }
        }
    }
    if !peers.is_empty() && failures.len() == peers.len() {
        return Err((502, failures.join("; ")));
    }
    Ok(differing)
}

/// The delete horizon of `volume_id` here (read, or started, on a blocking thread).
async fn delete_horizon(state: &CoreState, volume_id: u32) -> Result<u64, PassError> {
    let (path, revision) = {
        let store = state.store.borrow();
        let volume = store
            .volume(volume_id)
            .map_err(|error| (error.status(), error.to_string()))?;
        let revision = volume.core().config().superblock.compaction_revision;
        (volume.paths().horizon.clone(), revision)
    };
    let now_ns = now_unix_ns();
    let found = compio::runtime::spawn_blocking(move || horizon::current(&path, revision, now_ns));
    match found.await {
        Ok(Ok(horizon_ns)) => Ok(horizon_ns),
        Ok(Err(text)) => Err((500, text)),
        Err(_) => Err((
            500,
            format!("volume {volume_id}: the horizon read panicked"),
        )),
    }
}

/// Each key's state here and on the peers, per key.
type Merged = BTreeMap<u64, (Option<KeyState>, Vec<(usize, KeyState)>)>;

/// The next keys above `after` here and on `peers`, up to the lowest last key of a page that
/// left keys out (the returned bound, None when every listing is done): past it a listing
/// may lack keys another has.
async fn merged_pages(
    state: &CoreState,
    volume_id: u32,
    peers: &[String],
    after: Option<u64>,
) -> Result<(Merged, Option<u64>), PassError> {
    let limit = REPAIR_RECORDS_PAGE_MAX;
    let mut pages = vec![serve::local_page(state, volume_id, after, limit).await?];
    for peer in peers {
        let mut path = format!("/replica/records?volume={volume_id}&limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let body = peer_get(state, peer, &path)
            .await
            .map_err(|text| (502, text))?;
        let page = serve::parse_page(&body).map_err(|e| (502, format!("replica {peer}: {e}")))?;
        pages.push(page);
    }
    let bound = pages
        .iter()
        .filter(|page| page.more)
        .filter_map(|page| page.states.last().map(|state| state.key))
        .min();
    let mut merged = Merged::new();
    for (index, page) in pages.into_iter().enumerate() {
        let Page { states, .. } = page;
        for key_state in states
            .into_iter()
            .filter(|s| bound.is_none_or(|b| s.key <= b))
        {
            let entry = merged.entry(key_state.key).or_default();
            match index {
                0 => entry.0 = Some(key_state),
                peer => entry.1.push((peer - 1, key_state)),
            }
        }
    }
    merged.retain(|_, (_, peers)| !peers.is_empty());
    Ok((merged, bound))
}

/// Carries out `action` for one key and counts it.
async fn apply(
    state: &CoreState,
    volume_id: u32,
    peers: &[String],
    local: Option<&KeyState>,
    peer_states: &[(usize, KeyState)],
    action: Action,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let peer = match action {
        Action::Nothing => return Ok(()),
        Action::Skip => {
            let key = peer_states[0].1.key;
            tracing::info!(
                "volume {volume_id}: repair: key {key:x} skipped (older than this replica's \
                 delete horizon, or a delete of unknown time)"
            );
            report.skipped += 1;
            return Ok(());
        }
        Action::Copy { peer } => peer,
    };
    let wanted = peer_states
        .iter()
        .find(|(index, _)| *index == peer)
        .map(|(_, key_state)| *key_state)
        .expect("the action names a peer of the key");
    if wanted.is_deleted() {
        return delete_here(state, volume_id, &wanted, local, report).await;
    }
    let addr = &peers[peer];
    let path = format!(
        "/replica/record?volume={volume_id}&key={}&offset={}&size={}",
        wanted.key, wanted.offset_units, wanted.size
    );
    let record = match peer_get(state, addr, &path).await {
        Ok(record) => record,
        Err(text) => {
            tracing::warn!("volume {volume_id}: repair: {text}; the next pass tries again");
            return Ok(());
        }
    };
    copy_here(state, volume_id, &record, &wanted, local, report).await
}

/// Appends here the copied `record` (the state `wanted` of its key on a peer).
async fn copy_here(
    state: &CoreState,
    volume_id: u32,
    record: &[u8],
    wanted: &KeyState,
    local: Option<&KeyState>,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let version = kelp_engine::format::needle::Version::V3;
    let needle = Needle::decode(record, version)
        .map_err(|e| (502, format!("volume {volume_id}: a copied record: {e}")))?;
    if needle.key != wanted.key || needle.append_at_ns != wanted.append_at_ns {
        return Ok(()); // changed on the peer since its listing: the next pass decides
    }
    append_here(state, volume_id, &needle, local, report).await
}

/// Deletes here the key live here that a peer deleted later (`wanted`): a delete marker with
/// the peer's delete time (its own marker may be compacted away: a kept delete).
async fn delete_here(
    state: &CoreState,
    volume_id: u32,
    wanted: &KeyState,
    local: Option<&KeyState>,
    report: &mut PassReport,
) -> Result<(), PassError> {
    assert!(wanted.is_deleted() && wanted.append_at_ns > 0);
    let cookie = state.store.borrow_mut().live_cookie(volume_id, wanted.key);
    let Some(cookie) = cookie.map_err(|error| (error.status(), error.to_string()))? else {
        return Ok(()); // deleted here meanwhile
    };
    let marker = Needle::tombstone(wanted.key, cookie, wanted.append_at_ns);
    append_here(state, volume_id, &marker, local, report).await
}

/// Appends `needle` (a copied needle, or a delete marker) here if the key is still as
/// `local` says, and counts it.
async fn append_here(
    state: &CoreState,
    volume_id: u32,
    needle: &Needle<'_>,
    local: Option<&KeyState>,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let expected = local.and_then(KeyState::live_value);
    match store::copy_record(&state.store, volume_id, needle, expected).await {
        Ok(true) if needle.data.is_empty() => report.deleted += 1,
        Ok(true) => report.copied += 1,
        Ok(false) | Err(StoreError::NotFound { .. }) => {} // changed here meanwhile
        Err(error) => return Err((error.status(), error.to_string())),
    }
    Ok(())
}

/// GET `path` of peer `addr`, with a token for it when a write key is set; the body of a
/// 2xx answer.
async fn peer_get(state: &CoreState, addr: &str, path: &str) -> Result<bytes::Bytes, String> {
    let security = state.config.security.as_deref();
    let headers: Vec<(&str, String)> = serve::peer_authorization(security, path)
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    let header_refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    state
        .peers
        .exchange(addr, "GET", path, &header_refs, &[])
        .await
}

/// `POST /admin/volume/repair?volume=N`: one pass now.
pub async fn repair_admin(state: &Rc<CoreState>, request: &Request) -> Response {
    let volume_id = match serve::volume_param(&request.query) {
        Ok(volume_id) => volume_id,
        Err(text) => return Response::error(400, &text),
    };
    match run_pass(state, volume_id).await {
        Ok(report) => {
            let body = serde_json::json!({
                "volumeId": report.volume_id,
                "peers": report.peers,
                "copied": report.copied,
                "deleted": report.deleted,
                "skipped": report.skipped,
            });
            Response::json(200, body.to_string())
        }
        Err((status, text)) => Response::error(status, &text),
    }
}

/// Runs a pass of each of this core's replicated volumes every `--repair-interval-seconds`
/// (none when 0), the first soon after start: a replica that lost data while the server was
/// down (a cut `.dat`, a rebuilt `.idx`) gets it back at once.
pub async fn repair_loop(state: Rc<CoreState>) {
    let interval_ms = state.config.repair_interval_ms;
    if interval_ms == 0 {
        return;
    }
    let mut wait_ms = interval_ms.min(REPAIR_FIRST_PASS_DELAY_MS);
    loop {
        compio::time::sleep(Duration::from_millis(wait_ms)).await;
        wait_ms = interval_ms;
        for volume_id in replicated_volumes(&state) {
            if state.repairs.borrow().running.contains(&volume_id) {
                continue;
            }
            if let Err((_, text)) = run_pass(&state, volume_id).await {
                tracing::warn!("volume {volume_id}: repair pass: {text}");
            }
        }
    }
}

/// This core's volumes whose placement asks for more than one copy and that have no TTL.
fn replicated_volumes(state: &CoreState) -> Vec<u32> {
    let mut ids: Vec<u32> = state
        .store
        .borrow()
        .settings()
        .into_iter()
        .filter(|(_, settings)| settings.replication.copy_count() > 1 && settings.ttl.is_empty())
        .map(|(volume_id, _)| volume_id)
        .collect();
    ids.sort_unstable();
    ids
}
