//! Talking to other volume servers: the replication fan-out of writes and deletes, and 301
//! redirects for volumes held elsewhere. Both find the other servers with the master's
//! `/dir/lookup`, cached per core for a few seconds.

use super::master_link::{self, Location, LookupError, Masters};
use super::state::CoreState;
use kelp_net::http::{Method, Request, Response};
use std::rc::Rc;
use std::time::Instant;

/// Request headers a replica needs to store the same needle (and to accept it: the token).
const FORWARDED_HEADERS: [&str; 6] = [
    "content-type",
    "content-disposition",
    "content-encoding",
    "content-md5",
    "authorization",
    "cookie",
];

/// Where `volume_id` lives, from the cache or the master.
pub async fn locations(state: &CoreState, volume_id: u32) -> Result<Vec<Location>, LookupError> {
    if let Some(cached) = state.lookups.borrow().get(volume_id, Instant::now()) {
        return Ok(cached.to_vec());
    }
    let taken = state.masters.borrow_mut().take();
    let mut masters = taken.unwrap_or_else(|| Masters::new(state.config.masters.clone()));
    let result = master_link::lookup(&mut masters, volume_id).await;
    *state.masters.borrow_mut() = Some(masters);
    let locations = result?;
    state
        .lookups
        .borrow_mut()
        .put(volume_id, locations.clone(), Instant::now());
    Ok(locations)
}

/// Redirect to a server that holds `volume_id`: 301 for reads (as SeaweedFS 0.70), 307 for
/// writes and deletes so that clients repeat the same method and body there.
pub async fn redirect(state: &Rc<CoreState>, volume_id: u32, request: &Request) -> Response {
    let found = match locations(state, volume_id).await {
        Ok(found) => found,
        Err(error) => return lookup_error_response(volume_id, &error),
    };
    let elsewhere = found.iter().find(|l| !state.config.is_self(&l.url));
    let Some(location) = elsewhere else {
        state.lookups.borrow_mut().forget(volume_id);
        let message = format!("volume {volume_id} is not on this server (the master says it is)");
        return Response::error(404, &message);
    };
    let host = if location.public_url.is_empty() {
        &location.url
    } else {
        &location.public_url
    };
    let mut target = format!("http://{host}{}", request.path);
    if !request.query.is_empty() {
        target.push('?');
        target.push_str(&request.query);
    }
    let body = format!(
        "{{\"location\":{}}}",
        serde_json::Value::String(target.clone())
    );
    let status = match request.method {
        Method::Get | Method::Head => 301,
        _ => 307,
    };
    Response::json(status, body).header("Location", target)
}

fn lookup_error_response(volume_id: u32, error: &LookupError) -> Response {
    let status = match error {
        LookupError::Unreachable(_) => 503,
        LookupError::Unknown { .. } => 404,
        LookupError::Malformed { .. } => 502,
    };
    Response::error(
        status,
        &format!("volume {volume_id} is not on this server; {error}"),
    )
}

/// Why an operation on `volume_id`, whose placement asks for `copies`, is refused when only
/// `count` are known (`what` = "replication locations") or took it ("replicating
/// operations"): SeaweedFS's wording. Success is never reported with fewer copies.
fn copies_unmet(what: &str, volume_id: u32, count: usize, copies: usize) -> String {
    format!("{what} [{count}] is less than volume {volume_id} replication copy count [{copies}]")
}

/// The other replicas of `volume_id` the master lists; Err when they and this server are
/// fewer than the `copies` its placement asks for (checked here, not left to the master).
pub async fn other_replicas(
    state: &Rc<CoreState>,
    volume_id: u32,
    copies: usize,
) -> Result<Vec<String>, String> {
    let found = locations(state, volume_id)
        .await
        .map_err(|e| format!("the other replicas are unknown: {e}"))?;
    let mut others: Vec<String> = Vec::new();
    for location in found.iter().filter(|l| !state.config.is_self(&l.url)) {
        if !others.contains(&location.url) {
            others.push(location.url.clone());
        }
    }
    if others.len() + 1 < copies {
        state.lookups.borrow_mut().forget(volume_id);
        let known = others.len() + 1;
        return Err(copies_unmet(
            "replication locations",
            volume_id,
            known,
            copies,
        ));
    }
    Ok(others)
}

/// Send `request` to every other replica of `volume_id` with `type=replicate`, all at once;
/// Ok only when this server and the replicas that took it make the `copies` its placement
/// asks for. Err names the replicas that failed and the copy count.
pub async fn fan_out(
    state: &Rc<CoreState>,
    request: &Request,
    volume_id: u32,
    copies: usize,
) -> Result<(), String> {
    let others = other_replicas(state, volume_id, copies).await?;
    let sends: Vec<_> = others
        .into_iter()
        .map(|addr| {
            let (state, request) = (state.clone(), request.clone());
            let copy = async move { send_copy(&state, &addr, &request).await };
            compio::runtime::spawn(copy)
        })
        .collect();
    let mut failures = Vec::new();
    let mut taken = 1;
    for send in sends {
        match send.await {
            Ok(Ok(())) => taken += 1,
            Ok(Err(error)) => failures.push(error),
            Err(_) => failures.push("a replica copy task panicked".to_string()),
        }
    }
    if failures.is_empty() && taken >= copies {
        return Ok(());
    }
    state.lookups.borrow_mut().forget(volume_id);
    failures.push(copies_unmet(
        "replicating operations",
        volume_id,
        taken,
        copies,
    ));
    Err(failures.join("; "))
}

async fn send_copy(state: &CoreState, addr: &str, request: &Request) -> Result<(), String> {
    let mut path = format!("{}?", request.path);
    if !request.query.is_empty() {
        path.push_str(&request.query);
        path.push('&');
    }
    path.push_str("type=replicate");
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request.headers.iter() {
        let forwarded = FORWARDED_HEADERS.contains(&name) || name.starts_with("seaweed-");
        if let (true, Ok(value)) = (forwarded, std::str::from_utf8(value)) {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let method = request.method.as_str();
    state
        .peers
        .exchange(addr, method, &path, &header_refs, &request.body)
        .await
        .map(|_| ())
}
