//! Admin locks (`LeaseAdminToken` / `ReleaseAdminToken`, weed shell's `lock` and `unlock`):
//! one holder per lock name at a time. A holder leases a token and renews it (with the
//! token and its time) before `ADMIN_LOCK_LEASE_MS` passes; anyone may take a lock whose
//! lease lapsed. Kept by the leader in memory, as SeaweedFS does: a new leader starts with
//! no locks, and a shell that holds one renews it there. No I/O here.

use std::collections::BTreeMap;

use super::super::limits::{ADMIN_LOCK_LEASE_MS, ADMIN_LOCKS_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
struct AdminLock {
    token: i64,
    /// When the token was handed out (unix ns): it identifies the lease with the token.
    lock_ts_ns: i64,
    client: String,
    message: String,
}

#[derive(Debug, Default)]
pub struct AdminLocks {
    locks: BTreeMap<String, AdminLock>,
}

/// A lease: the token and its time, which a renewal or release must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: i64,
    pub lock_ts_ns: i64,
}

const LEASE_NS: i64 = (ADMIN_LOCK_LEASE_MS * 1_000_000) as i64;

impl AdminLocks {
    /// Take `name` for `client`, or renew it when `previous` is the current lease. A lock
    /// another holder leased within `ADMIN_LOCK_LEASE_MS` is refused, naming the holder.
    pub fn lease(
        &mut self,
        name: &str,
        client: &str,
        message: &str,
        previous: Lease,
        now_ns: i64,
        token: i64,
    ) -> Result<Lease, String> {
        if let Some(held) = self.locks.get(name)
            && now_ns - held.lock_ts_ns < LEASE_NS
        {
            let renewal = previous.token != 0
                && held.token == previous.token
                && held.lock_ts_ns == previous.lock_ts_ns;
            if !renewal {
                return Err(format!(
                    "already locked by {}: {}",
                    held.client, held.message
                ));
            }
        }
        if !self.locks.contains_key(name) && self.locks.len() >= ADMIN_LOCKS_MAX {
            self.locks
                .retain(|_, held| now_ns - held.lock_ts_ns < LEASE_NS);
            if self.locks.len() >= ADMIN_LOCKS_MAX {
                return Err(format!("{ADMIN_LOCKS_MAX} admin locks are held already"));
            }
        }
        // A token of 0 means "none" to a renewing client.
        let token = if token == 0 { 1 } else { token };
        let lock = AdminLock {
            token,
            lock_ts_ns: now_ns,
            client: client.to_string(),
            message: message.to_string(),
        };
        self.locks.insert(name.to_string(), lock);
        Ok(Lease {
            token,
            lock_ts_ns: now_ns,
        })
    }

    /// Give `name` up, if `lease` is its current lease (else nothing happens, as in SeaweedFS).
    pub fn release(&mut self, name: &str, lease: Lease) {
        let current = self
            .locks
            .get(name)
            .is_some_and(|held| held.token == lease.token && held.lock_ts_ns == lease.lock_ts_ns);
        if current {
            self.locks.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Lease = Lease {
        token: 0,
        lock_ts_ns: 0,
    };

    // Proves one holder at a time: a second client is refused with the holder's name, the
    // holder renews with its lease, a stale lease cannot renew, a lapsed lock is free, and
    // a release with the current lease frees it at once.
    #[test]
    fn one_holder_at_a_time() {
        let mut locks = AdminLocks::default();
        let first = locks
            .lease("admin", "shell-a", "moving", NONE, 1_000, 7)
            .unwrap();
        let refused = locks
            .lease("admin", "shell-b", "", NONE, 2_000, 8)
            .unwrap_err();
        assert!(
            refused.contains("shell-a") && refused.contains("moving"),
            "{refused}"
        );
        let renewed = locks
            .lease("admin", "shell-a", "", first, 3_000, 9)
            .unwrap();
        assert_eq!(renewed.token, 9);
        assert!(
            locks
                .lease("admin", "shell-a", "", first, 4_000, 10)
                .is_err()
        );
        let lapsed = 3_000 + LEASE_NS;
        assert!(
            locks
                .lease("admin", "shell-b", "", NONE, lapsed, 11)
                .is_ok()
        );
        let held = locks.lease("other", "shell-c", "", NONE, 0, 12).unwrap();
        locks.release("other", NONE);
        assert!(locks.lease("other", "shell-d", "", NONE, 1, 13).is_err());
        locks.release("other", held);
        assert!(locks.lease("other", "shell-d", "", NONE, 1, 14).is_ok());
    }
}
