//! The master's side of `security.toml` and `--white-list`: tokens for the files it assigns
//! and looks up (`Authorization: Bearer` on `/dir/assign` and `/dir/lookup?fileId=`), tokens
//! on its own admin calls to volume servers, and the allow-list of its destructive calls.
//! Without a security file nor an allow-list nothing here costs more than one branch.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use hyper::header::{AUTHORIZATION, HeaderValue};

use super::http::{HttpResponse, error};
use super::node::Master;
use crate::security::SigningKey;

/// The client's address, put in each request's extensions when it is accepted.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

/// Calls that change or destroy what the cluster holds: taken only from the allow-list.
pub fn is_destructive(path: &str) -> bool {
    matches!(
        path,
        "/col/delete"
            | "/vol/grow"
            | "/vol/vacuum"
            | "/vol/fix_replication"
            | "/vol/repair"
            | "/submit"
            | "/cluster/join"
    ) || path.starts_with("/cluster/raft/")
}

/// The 403 answer to a destructive call from an address not on the allow-list; `None` when
/// the request may go on (not destructive, no allow-list, a caller on it, or another master,
/// which forwards its clients' calls to the leader). Checked on the master that receives
/// the call, before it forwards it.
pub fn refusal<B>(master: &Master, request: &hyper::Request<B>) -> Option<HttpResponse> {
    let path = request.uri().path();
    if !is_destructive(path) {
        return None;
    }
    let peer = request
        .extensions()
        .get::<PeerAddress>()
        .map(|peer| peer.0.ip());
    let refused = check_caller(master, peer, &format!("calls to {path}")).err()?;
    Some(error(403, &refused))
}

/// Whether `peer` may make a destructive call (`what` names it in the refusal): with an
/// allow-list, only its members and the masters may. Shared by HTTP and gRPC.
pub fn check_caller(master: &Master, peer: Option<IpAddr>, what: &str) -> Result<(), String> {
    let Some(security) = master.config.security.as_deref() else {
        return Ok(());
    };
    if security.white_list.is_empty() {
        return Ok(());
    }
    if peer.is_some_and(|ip| security.white_list.allows(ip) || is_master(master, ip)) {
        return Ok(());
    }
    let refused = security.white_list.check(peer, what);
    Err(refused.expect_err("the peer is not on the list"))
}

/// Is `ip` the address of one of the masters (`--peers` and the current leader)? Resolved
/// when asked: only a refused destructive call gets here.
fn is_master(master: &Master, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let leader = master.leader_address();
    master
        .config
        .peers
        .iter()
        .chain(leader.iter())
        .filter_map(|peer| peer.to_socket_addrs().ok())
        .flatten()
        .any(|address| address.ip().to_canonical() == ip)
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Adds `Authorization: Bearer <token>` for `fid` to `response` when the key for it is set:
/// the write key (`[jwt.signing]`), or the read key (`[jwt.signing.read]`) when `for_read`.
pub fn add_file_token(master: &Master, response: &mut HttpResponse, fid: &str, for_read: bool) {
    if let Some(token) = file_token(master, fid, for_read) {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("a token is base64url and dots");
        response.headers_mut().insert(AUTHORIZATION, value);
    }
}

/// The token for `fid` (gRPC's `auth`, HTTP's `Authorization: Bearer`), signed with the
/// write key, or the read key when `for_read`; `None` when that key is not set.
pub fn file_token(master: &Master, fid: &str, for_read: bool) -> Option<String> {
    let security = master.config.security.as_deref()?;
    let key: &SigningKey = match for_read {
        true => security.read_key.as_ref()?,
        false => security.write_key.as_ref()?,
    };
    Some(key.sign(fid, now_unix_s()))
}

/// The `Authorization` header of an admin call to `url` (`http://host:port/admin/...?q`),
/// signed with the write key for that request target; `None` without a write key.
pub fn admin_authorization(master: &Master, url: &str) -> Option<String> {
    let key = master.config.security.as_deref()?.write_key.as_ref()?;
    let target = url
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or(url);
    Some(format!("Bearer {}", key.sign(target, now_unix_s())))
}

/// The token to pass on to the volume server for a `/submit` upload of `fid`.
pub fn upload_authorization(master: &Master, fid: &str) -> Option<String> {
    let key = master.config.security.as_deref()?.write_key.as_ref()?;
    Some(format!("Bearer {}", key.sign(fid, now_unix_s())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the destructive calls are those SeaweedFS's -whiteList guards for changes, plus
    // membership changes, and that reads and assignment are not among them.
    #[test]
    fn destructive_calls() {
        for path in [
            "/col/delete",
            "/vol/grow",
            "/vol/vacuum",
            "/submit",
            "/cluster/join",
            "/cluster/raft/add",
            "/cluster/raft/remove",
        ] {
            assert!(is_destructive(path), "{path}");
        }
        for path in [
            "/dir/assign",
            "/dir/lookup",
            "/",
            "/cluster/status",
            "/metrics",
        ] {
            assert!(!is_destructive(path), "{path}");
        }
    }
}
