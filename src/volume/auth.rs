//! Who may write, delete and read files (`--security FILE`, `--white-list`): a write or a
//! delete must come from an allowed address and, with `[jwt.signing] key` set, carry a token
//! the master signed for its fid; a read needs a token of `[jwt.signing.read]` when that key
//! is set. A refusal is 401 (token) or 403 (address) with a JSON error. Without a security
//! file nor an allow-list each check is one branch, with no allocation.

use super::config::Config;
use crate::security::{Security, SigningKey, TokenError, jwt};
use kelp_net::http::{Request, Response};

/// Ok when `request` may write or delete the file its path names.
pub fn check_write(config: &Config, request: &Request) -> Result<(), Response> {
    let Some(security) = config.security.as_deref() else {
        return Ok(());
    };
    let peer = request.peer.map(|peer| peer.ip());
    security
        .white_list
        .check(peer, "writes and deletes")
        .map_err(|text| Response::error(403, &text))?;
    match &security.write_key {
        Some(key) => check_file_token(key, request, "[jwt.signing]"),
        None => Ok(()),
    }
}

/// Ok when `request` may read the file its path names.
pub fn check_read(config: &Config, request: &Request) -> Result<(), Response> {
    match config.security.as_deref().and_then(|s| s.read_key.as_ref()) {
        None => Ok(()),
        Some(key) => check_file_token(key, request, "[jwt.signing.read]"),
    }
}

/// Ok when an admin call (already known to come from a master's address) carries a token
/// the master signed with the write key for this very call: its claim is the request target
/// (`/admin/...?query`). Without a write key the address alone decides.
pub fn check_admin(security: Option<&Security>, request: &Request) -> Result<(), Response> {
    let Some(key) = security.and_then(|s| s.write_key.as_ref()) else {
        return Ok(());
    };
    let verified = key.verify(token(request), now_unix_s()).and_then(|claims| {
        match claims.fid == admin_claim(&request.path, &request.query) {
            true => Ok(()),
            false => Err(TokenError::OtherFile {
                claim: claims.fid,
                asked: admin_claim(&request.path, &request.query),
            }),
        }
    });
    verified.map_err(|error| refusal(&error, "admin call", "[jwt.signing]"))
}

/// The claim of an admin call's token: the request target as the master sends it.
pub fn admin_claim(path: &str, query: &str) -> String {
    match query.is_empty() {
        true => path.to_string(),
        false => format!("{path}?{query}"),
    }
}

fn check_file_token(key: &SigningKey, request: &Request, section: &str) -> Result<(), Response> {
    let checked = key
        .verify(token(request), now_unix_s())
        .and_then(|claims| jwt::claim_matches(&claims.fid, &request.path));
    checked.map_err(|error| refusal(&error, &request.path, section))
}

fn refusal(error: &TokenError, what: &str, section: &str) -> Response {
    let text = format!("{what}: {error} (the key of {section})");
    Response::error(401, &text)
}

/// The request's token, from `?jwt=`, `Authorization: Bearer` or the cookie `AT`.
fn token(request: &Request) -> &str {
    let query_jwt = raw_query_param(&request.query, "jwt");
    let authorization = request.headers.get("authorization");
    jwt::token_of(query_jwt, authorization, request.headers.get("cookie"))
}

/// The first value of `name` in a raw query, undecoded (a token is base64url: nothing to
/// decode), without allocating.
fn raw_query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn now_unix_s() -> u64 {
    super::handlers::now_unix_ns() / 1_000_000_000
}
