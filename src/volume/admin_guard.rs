//! Who may make the admin calls (`/admin/...`: create and delete volumes): the masters only.
//! A call from any other address is refused with 403 before a handler or another core sees
//! it. The masters are the hosts of `--master` and of any leader the heartbeat follows,
//! resolved to addresses at start, again when the leader is a new name, and every
//! `MASTER_RESOLVE_INTERVAL_MS`. With `[jwt.signing] key` set, the call must also carry a
//! token the master signed for it (see `auth::check_admin`).

use super::limits::{MASTER_RESOLVE_INTERVAL_MS, MASTER_RESOLVE_RETRY_MS};
use crate::security::Security;
use kelp_net::http::{Request, Response};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The masters' names (`host:port`) and the addresses they resolved to.
#[derive(Debug, Clone, Default)]
pub struct MasterAddresses {
    names: Vec<String>,
    /// Canonical (an IPv4-mapped IPv6 address is stored as IPv4).
    ips: Vec<IpAddr>,
    /// Whether every name resolved (if not, the next try comes sooner).
    complete: bool,
}

impl MasterAddresses {
    /// Resolves every `host:port` of `names` (blocking: DNS may be asked). A name that does
    /// not resolve is logged and tried again later; its calls are refused meanwhile.
    pub fn resolve(names: Vec<String>) -> MasterAddresses {
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut complete = true;
        for name in &names {
            match name.to_socket_addrs() {
                Ok(addresses) => ips.extend(addresses.map(|a| a.ip().to_canonical())),
                Err(error) => {
                    complete = false;
                    tracing::warn!("admin calls: cannot resolve master {name}: {error}");
                }
            }
        }
        ips.sort_unstable();
        ips.dedup();
        MasterAddresses {
            names,
            ips,
            complete,
        }
    }
}

/// The admin calls' gate, shared by every core.
pub struct AdminGuard {
    masters: RwLock<MasterAddresses>,
    /// Its write key signs the masters' admin calls.
    security: Option<Arc<Security>>,
    /// When the last resolution started (a refresh is claimed by moving it).
    resolved_at: RwLock<Instant>,
}

impl AdminGuard {
    pub fn new(masters: MasterAddresses) -> AdminGuard {
        AdminGuard {
            masters: RwLock::new(masters),
            security: None,
            resolved_at: RwLock::new(Instant::now()),
        }
    }

    /// The same gate, requiring tokens signed with `security`'s write key when it has one.
    pub fn signed(self, security: Option<Arc<Security>>) -> AdminGuard {
        AdminGuard { security, ..self }
    }

    /// Ok when `request` may make an admin call; otherwise the 403 answer saying why.
    pub fn authorize(&self, request: &Request) -> Result<(), Response> {
        let masters = self.masters.read().expect("admin guard lock");
        let peer = request.peer.map(|peer| peer.ip().to_canonical());
        if peer.is_some_and(|ip| masters.ips.contains(&ip)) {
            return super::auth::check_admin(self.security.as_deref(), request);
        }
        let who = peer.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
        let names = masters.names.join(", ");
        let text =
            format!("admin calls are taken only from the masters ({names}); {who} is not one");
        Err(Response::error(403, &text))
    }

    /// The names to resolve again, if it is time: `current_master` is a name not resolved
    /// yet (a leader the heartbeat now follows), or the last resolution is old. The caller
    /// resolves them off the event loop and hands the result to [`AdminGuard::replace`].
    pub fn claim_refresh(&self, current_master: &str, now: Instant) -> Option<Vec<String>> {
        let masters = self.masters.read().expect("admin guard lock");
        let new_name = !masters.names.iter().any(|name| name == current_master);
        let interval_ms = match masters.complete {
            true => MASTER_RESOLVE_INTERVAL_MS,
            false => MASTER_RESOLVE_RETRY_MS,
        };
        let mut resolved_at = self.resolved_at.write().expect("admin guard lock");
        let due = now.duration_since(*resolved_at) >= Duration::from_millis(interval_ms);
        if !new_name && !due {
            return None;
        }
        *resolved_at = now;
        let mut names = masters.names.clone();
        if new_name {
            names.push(current_master.to_string());
        }
        Some(names)
    }

    pub fn replace(&self, masters: MasterAddresses) {
        *self.masters.write().expect("admin guard lock") = masters;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_from(peer: Option<&str>) -> Request {
        Request {
            method: kelp_net::http::Method::Post,
            path: "/admin/volume/delete".to_string(),
            query: "volume=1".to_string(),
            headers: Default::default(),
            body: Default::default(),
            peer: peer.map(|text| text.parse().unwrap()),
        }
    }

    // Proves only the masters' addresses pass (IPv4-mapped IPv6 too), a request without a
    // peer address is refused, and the refusal is a 403 naming the masters and the caller.
    #[test]
    fn only_master_addresses_pass() {
        let names = vec!["127.0.0.1:9333".to_string(), "localhost:9334".to_string()];
        let guard = AdminGuard::new(MasterAddresses::resolve(names));
        assert!(
            guard
                .authorize(&request_from(Some("127.0.0.1:40000")))
                .is_ok()
        );
        assert!(
            guard
                .authorize(&request_from(Some("[::ffff:127.0.0.1]:1")))
                .is_ok()
        );
        for stranger in [Some("127.0.0.2:40000"), Some("[::2]:1"), None] {
            let refused = guard.authorize(&request_from(stranger)).unwrap_err();
            assert_eq!(refused.status, 403);
            let kelp_net::http::Body::Bytes(body) = refused.body else {
                panic!("a JSON body")
            };
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.contains("127.0.0.1:9333, localhost:9334"), "{text}");
        }
    }

    // Proves a refresh is claimed once for a new leader name and then only when the interval
    // has passed (sooner while a name does not resolve).
    #[test]
    fn refresh_is_claimed_for_new_names_and_old_answers() {
        let start = Instant::now();
        let guard = AdminGuard::new(MasterAddresses::resolve(vec!["127.0.0.1:1".into()]));
        assert_eq!(guard.claim_refresh("127.0.0.1:1", start), None);
        let names = guard.claim_refresh("127.0.0.3:2", start).unwrap();
        assert_eq!(names, ["127.0.0.1:1", "127.0.0.3:2"]);
        guard.replace(MasterAddresses::resolve(names));
        assert_eq!(guard.claim_refresh("127.0.0.3:2", start), None);
        let later = start + Duration::from_millis(MASTER_RESOLVE_INTERVAL_MS);
        assert!(guard.claim_refresh("127.0.0.3:2", later).is_some());
        assert_eq!(
            guard.claim_refresh("127.0.0.3:2", later),
            None,
            "claimed once"
        );
        // A name that cannot resolve (here without asking DNS: its port is not a number).
        let unresolved = MasterAddresses::resolve(vec!["127.0.0.1:port".into()]);
        assert!(!unresolved.complete && unresolved.ips.is_empty());
        guard.replace(unresolved);
        let retry = later + Duration::from_millis(MASTER_RESOLVE_RETRY_MS);
        assert!(guard.claim_refresh("127.0.0.1:port", retry).is_some());
    }
}
