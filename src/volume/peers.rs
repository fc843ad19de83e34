//! Keep-alive connections to the other volume servers (the replicas of this server's
//! volumes), per core: taken for a request, given back after a complete answer.

use super::limits::{PEER_IDLE_CONNECTIONS_MAX, PEERS_MAX, REPLICA_REQUEST_TIMEOUT_MS};
use kelp_net::http::client::{Client, ClientOptions};
use std::cell::RefCell;
use std::collections::HashMap;

/// Idle connections by peer address (`host:port`), at most `PEER_IDLE_CONNECTIONS_MAX` for
/// each of at most `PEERS_MAX` peers.
#[derive(Default)]
pub struct PeerPool {
    idle: RefCell<HashMap<String, Vec<Client>>>,
}

impl PeerPool {
    /// An idle connection to `addr`, or a new one (connected at its first request).
    pub fn take(&self, addr: &str) -> Client {
        let pooled = self.idle.borrow_mut().get_mut(addr).and_then(Vec::pop);
        pooled.unwrap_or_else(|| {
            let options = ClientOptions {
                request_timeout_ms: REPLICA_REQUEST_TIMEOUT_MS,
                ..ClientOptions::default()
            };
            Client::new(addr, options)
        })
    }

    /// One request to peer `addr` on a pooled connection: the body of a 2xx answer; Err names
    /// the peer and its answer or the failure.
    pub async fn exchange(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<bytes::Bytes, String> {
        let mut client = self.take(addr);
        let answer = client.request(method, path, headers, body).await;
        match answer {
            Ok(response) if response.status < 300 => {
                self.give_back(client);
                Ok(response.body)
            }
            Ok(response) => {
                self.give_back(client);
                let body = String::from_utf8_lossy(&response.body);
                let status = response.status;
                Err(format!("replica {addr} answered {status}: {}", body.trim()))
            }
            Err(error) => Err(format!("replica {addr} failed: {error}")),
        }
    }

    /// Keeps `client` for the next request to its peer, unless the pool is full.
    pub fn give_back(&self, client: Client) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= PEERS_MAX && !idle.contains_key(client.addr()) {
            return;
        }
        let slot = idle.entry(client.addr().to_string()).or_default();
        if slot.len() < PEER_IDLE_CONNECTIONS_MAX {
            slot.push(client);
        }
        assert!(idle.len() <= PEERS_MAX);
    }
}
