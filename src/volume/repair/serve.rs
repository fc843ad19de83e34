//! The calls replicas make of each other for a repair (README "Replicas and failures"), all
//! `GET` with `?volume=N`, served by the volume's owner core:
//!
//! - `/replica/digest`: `{"volumeId","count","digest"}` of the live needles (`records::Digest`);
//! - `/replica/records?after=K&limit=L`: the last event of each key above K, ascending,
//!   `{"volumeId","more","records":[[key, offsetUnits, size, appendAtNs, checksum], ...]}`;
//! - `/replica/record?key=K&offset=U&size=S`: the raw record an entry of the listing names.
//!
//! Taken from addresses the allow-list admits, with a token signed with the write key (its
//! claim the request target, as for admin calls) when `[jwt.signing] key` is set.

use super::records::{self, Digest, KeyState, Page, Source};
use crate::security::Security;
use crate::volume::state::CoreState;
use crate::volume::store::StoreError;
use crate::volume::{auth, fid, query};
use kelp_engine::format::PADDING_BYTES;
use kelp_engine::format::needle::{self, NeedleHeader};
use kelp_net::http::{Request, Response};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::Duration;

use crate::volume::limits::REPAIR_RECORDS_PAGE_MAX;

/// Answers one of the `/replica/...` calls.
pub async fn serve_replica(state: &Rc<CoreState>, request: &Request) -> Response {
    if let Err(refusal) = check_peer(state.config.security.as_deref(), request) {
        return refusal;
    }
    let volume_id = match volume_param(&request.query) {
        Ok(volume_id) => volume_id,
        Err(text) => return Response::error(400, &text),
    };
    let answer = match request.path.as_str() {
        "/replica/digest" => digest_answer(state, volume_id).await,
        "/replica/records" => records_answer(state, volume_id, &request.query).await,
        "/replica/record" => record_answer(state, volume_id, &request.query).await,
        path => Err((404, format!("{path}: no such replica call"))),
    };
    answer.unwrap_or_else(|(status, text)| Response::error(status, &text))
}

type Answer = Result<Response, (u16, String)>;

/// `volume=N` of a query.
pub fn volume_param(query_text: &str) -> Result<u32, String> {
    let text = query::param(query_text, "volume").ok_or("missing volume=<id>")?;
    fid::parse_volume_id(&text).map_err(|e| format!("volume={text}: {e}"))
}

fn check_peer(security: Option<&Security>, request: &Request) -> Result<(), Response> {
    let Some(security) = security else {
        return Ok(());
    };
    let peer = request.peer.map(|peer| peer.ip());
    security
        .white_list
        .check(peer, "replica repair calls")
        .map_err(|text| Response::error(403, &text))?;
    auth::check_admin(Some(security), request)
}

/// The `Authorization` value a replica call to `path_and_query` carries (None without a
/// write key): a token signed with the write key whose claim is the request target.
pub fn peer_authorization(security: Option<&Security>, path_and_query: &str) -> Option<String> {
    let key = security?.write_key.as_ref()?;
    let (route, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let claim = auth::admin_claim(route, query);
    let now_s = crate::volume::handlers::now_unix_ns() / 1_000_000_000;
    Some(format!("Bearer {}", key.sign(&claim, now_s)))
}

fn store_error(error: StoreError) -> (u16, String) {
    (error.status(), error.to_string())
}

/// The digest of `volume_id`'s live needles here, folded in turns so that a large volume
/// does not hold the core (the map may change between turns: a digest that then differs
/// only costs a listing).
pub async fn local_digest(state: &CoreState, volume_id: u32) -> Result<Digest, StoreError> {
    let mut digest = Digest::default();
    let mut from = 0;
    loop {
        let next = {
            let store = state.store.borrow();
            digest.fold_turn(store.volume(volume_id)?.core().map(), from)
        };
        match next {
            None => return Ok(digest),
            Some(key) => from = key,
        }
        compio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn digest_answer(state: &CoreState, volume_id: u32) -> Answer {
    let digest = local_digest(state, volume_id).await.map_err(store_error)?;
    let body = serde_json::json!({
        "volumeId": volume_id,
        "count": digest.count,
        "digest": format!("{:016x}", digest.hash),
    });
    Ok(Response::json(200, body.to_string()))
}

/// What a listing of `volume_id` reads, taken now.
pub fn source_of(state: &CoreState, volume_id: u32) -> Result<Source, StoreError> {
    let store = state.store.borrow();
    let volume = store.volume(volume_id)?;
    let core = volume.core();
    Ok(Source {
        volume_id,
        idx_path: volume.paths().idx.clone(),
        idx_bytes: core.idx_bytes(),
        dat: volume.dat_file(),
        dat_bytes: core.dat_bytes(),
        width: core.config().offset_width,
        version: core.version(),
        revision: core.config().superblock.compaction_revision,
        deletes_path: volume.paths().deletes.clone(),
    })
}

/// A page of `volume_id`'s listing here (the files read on a blocking thread).
pub async fn local_page(
    state: &CoreState,
    volume_id: u32,
    after: Option<u64>,
    limit: usize,
) -> Result<Page, (u16, String)> {
    let source = source_of(state, volume_id).map_err(store_error)?;
    let listed = compio::runtime::spawn_blocking(move || records::list(&source, after, limit));
    match listed.await {
        Ok(Ok(page)) => Ok(page),
        Ok(Err(text)) => Err((500, text)),
        Err(_) => Err((500, format!("volume {volume_id}: the listing panicked"))),
    }
}

fn number_param(query_text: &str, name: &str) -> Result<Option<u64>, (u16, String)> {
    match query::param(query_text, name) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| (400, format!("{name}={text}: not a number"))),
    }
}

async fn records_answer(state: &CoreState, volume_id: u32, query_text: &str) -> Answer {
    let after = number_param(query_text, "after")?;
    let limit = number_param(query_text, "limit")?.unwrap_or(REPAIR_RECORDS_PAGE_MAX as u64);
    if limit == 0 || limit > REPAIR_RECORDS_PAGE_MAX as u64 {
        let text = format!("limit={limit}: from 1 to {REPAIR_RECORDS_PAGE_MAX}");
        return Err((400, text));
    }
    let page = local_page(state, volume_id, after, limit as usize).await?;
    let rows: Vec<[u64; 5]> = page
        .states
        .iter()
        .map(|s| {
            let (size, checksum) = (u64::from(s.size), u64::from(s.checksum));
            [s.key, s.offset_units, size, s.append_at_ns, checksum]
        })
        .collect();
    let body = serde_json::json!({"volumeId": volume_id, "more": page.more, "records": rows});
    Ok(Response::json(200, body.to_string()))
}

/// Reads the listing's JSON page (as `records_answer` writes it).
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    #[derive(serde::Deserialize)]
    struct Wire {
        more: bool,
        records: Vec<(u64, u64, u32, u64, u32)>,
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| format!("a records page: {e}"))?;
    let states: Vec<KeyState> = wire
        .records
        .into_iter()
        .map(
            |(key, offset_units, size, append_at_ns, checksum)| KeyState {
                key,
                offset_units,
                size,
                append_at_ns,
                checksum,
            },
        )
        .collect();
    if !states.windows(2).all(|pair| pair[0].key < pair[1].key) {
        return Err("a records page whose keys do not ascend".to_string());
    }
    Ok(Page {
        states,
        more: wire.more,
    })
}

async fn record_answer(state: &CoreState, volume_id: u32, query_text: &str) -> Answer {
    let missing = |name: &str| (400, format!("missing {name}=<number>"));
    let key = number_param(query_text, "key")?.ok_or_else(|| missing("key"))?;
    let offset_units = number_param(query_text, "offset")?.ok_or_else(|| missing("offset"))?;
    let size = number_param(query_text, "size")?.ok_or_else(|| missing("size"))?;
    let size = u32::try_from(size).map_err(|_| (400, format!("size={size}: too large")))?;
    let wanted = KeyState {
        key,
        offset_units,
        size,
        append_at_ns: 0,
        checksum: 0,
    };
    let source = source_of(state, volume_id).map_err(store_error)?;
    let read = compio::runtime::spawn_blocking(move || read_record(&source, &wanted)).await;
    let record = read.unwrap_or_else(|_| Err((500, "reading a record panicked".to_string())))?;
    Ok(Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .body_bytes(record))
}

/// The record `wanted` names, checked to be its key's (blocking).
fn read_record(source: &Source, wanted: &KeyState) -> Result<Vec<u8>, (u16, String)> {
    let volume_id = source.volume_id;
    let offset = wanted.offset_units * PADDING_BYTES;
    let record_bytes = needle::record_bytes(wanted.record_size(), source.version);
    if offset == 0 || offset + record_bytes > source.dat_bytes {
        let text = format!(
            "volume {volume_id}: no record of {record_bytes} bytes at {offset} (its .dat has {})",
            source.dat_bytes
        );
        return Err((416, text));
    }
    let mut record = vec![0u8; record_bytes as usize];
    source.dat.read_exact_at(&mut record, offset).map_err(|e| {
        (
            500,
            format!("volume {volume_id}: read the .dat at {offset}: {e}"),
        )
    })?;
    let header = NeedleHeader::decode(&record)
        .map_err(|e| (500, format!("volume {volume_id}: record at {offset}: {e}")))?;
    if header.key != wanted.key || header.size != wanted.record_size() {
        let text = format!(
            "volume {volume_id}: the record at {offset} is no longer key {:x}'s (compacted?)",
            wanted.key
        );
        return Err((409, text));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_net::http::{Headers, Method};

    fn request(path: &str, query: &str, authorization: Option<&str>, peer: &str) -> Request {
        let pairs = authorization.map(|value| ("authorization", value.as_bytes()));
        Request {
            method: Method::Get,
            path: path.to_string(),
            query: query.to_string(),
            headers: Headers::from_pairs(pairs),
            body: Default::default(),
            peer: Some(peer.parse().unwrap()),
        }
    }

    // Proves a replica call passes with the token its peer signs for it, and is refused
    // without one, with a token for another call, or from an address the allow-list lacks.
    #[test]
    fn replica_calls_need_the_peers_token_and_address() {
        let text = "[jwt.signing]\nkey = \"write-secret\"\n[guard]\nwhite_list = \"127.0.0.0/8\"\n";
        let security = Security::parse(text, std::path::Path::new("security.toml")).unwrap();
        let security = Some(&security);
        let target = "/replica/records?volume=3&after=7";
        let token = peer_authorization(security, target).unwrap();
        let (path, query) = target.split_once('?').unwrap();
        let peer = "127.0.0.3:40000";
        assert!(check_peer(security, &request(path, query, Some(&token), peer)).is_ok());
        assert_eq!(
            check_peer(security, &request(path, query, None, peer))
                .unwrap_err()
                .status,
            401
        );
        let other = request(path, "volume=4", Some(&token), peer);
        assert_eq!(check_peer(security, &other).unwrap_err().status, 401);
        let stranger = request(path, query, Some(&token), "10.0.0.1:1");
        assert_eq!(check_peer(security, &stranger).unwrap_err().status, 403);
        assert!(check_peer(None, &request(path, query, None, peer)).is_ok());
        assert_eq!(peer_authorization(None, target), None);
    }
}
