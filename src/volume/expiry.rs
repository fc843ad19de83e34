//! When a TTL volume is over: it expires once the newest append time of its live needles
//! plus its TTL has passed (then it leaves the heartbeat, so the master assigns no more
//! files to it), and its files are deleted a removal delay later, `min(TTL / 10,
//! --ttl-removal-delay-max-seconds)`, as SeaweedFS does (its cap is 10 minutes). The clock
//! is the needles' append times (`FileVolume::newest_live_append_ns` at open, then each
//! write), so it survives restarts. An empty volume never expires. No I/O here.

use kelp_engine::format::Ttl;
use std::time::Duration;

/// Where a volume is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeAge {
    /// No TTL, no data yet, or its TTL has not passed.
    Live,
    /// Its TTL passed: left out of the heartbeat, files kept for the removal delay.
    Expired,
    /// Its TTL and the removal delay passed: its files are deleted.
    Removable,
}

/// How long after its expiry a TTL volume's files are deleted.
pub fn removal_delay(ttl: Ttl, delay_max: Duration) -> Duration {
    Duration::from_secs(ttl.seconds() / 10).min(delay_max)
}

/// The age of a volume with `ttl` whose newest write was at `newest_write_ns` (0: none),
/// at `now_ns` (nanoseconds since the Unix epoch).
pub fn volume_age(ttl: Ttl, newest_write_ns: u64, now_ns: u64, delay_max: Duration) -> VolumeAge {
    if ttl.is_empty() || newest_write_ns == 0 {
        return VolumeAge::Live;
    }
    let expires_ns = newest_write_ns.saturating_add(ttl.seconds().saturating_mul(1_000_000_000));
    let delay_ns = removal_delay(ttl, delay_max).as_nanos() as u64;
    if now_ns < expires_ns {
        VolumeAge::Live
    } else if now_ns < expires_ns.saturating_add(delay_ns) {
        VolumeAge::Expired
    } else {
        VolumeAge::Removable
    }
}

/// Deletes this core's TTL volumes whose removal delay passed, every
/// `EXPIRY_CHECK_MS` (as an admin delete would: a compaction of one is stopped first).
pub async fn expiry_loop(state: std::rc::Rc<super::state::CoreState>) {
    loop {
        compio::time::sleep(Duration::from_millis(super::limits::EXPIRY_CHECK_MS)).await;
        let removable = state
            .store
            .borrow()
            .removable(super::handlers::now_unix_ns());
        for volume_id in removable {
            match super::handlers::remove_volume(&state, volume_id) {
                Ok(()) => tracing::info!("volume {volume_id}: TTL expired; its files are deleted"),
                Err(error) => {
                    tracing::warn!("volume {volume_id}: TTL expired, not deleted: {error}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    // Proves SeaweedFS's timeline: live until the TTL, expired for min(TTL/10, cap), then
    // removable; no TTL or no data never expires.
    #[test]
    fn timeline() {
        let ttl = Ttl::parse("1h").unwrap();
        let cap = Duration::from_secs(600);
        assert_eq!(removal_delay(ttl, cap), Duration::from_secs(360));
        assert_eq!(removal_delay(Ttl::parse("1d").unwrap(), cap), cap);
        let written = 1_000 * S;
        let age = |now: u64| volume_age(ttl, written, now, cap);
        assert_eq!(age(written + 3599 * S), VolumeAge::Live);
        assert_eq!(age(written + 3600 * S), VolumeAge::Expired);
        assert_eq!(age(written + 3959 * S), VolumeAge::Expired);
        assert_eq!(age(written + 3960 * S), VolumeAge::Removable);
        let short = volume_age(ttl, written, written + 3600 * S, Duration::ZERO);
        assert_eq!(short, VolumeAge::Removable, "a zero cap removes at expiry");
        assert_eq!(volume_age(ttl, 0, u64::MAX, cap), VolumeAge::Live);
        assert_eq!(volume_age(Ttl::EMPTY, 1, u64::MAX, cap), VolumeAge::Live);
    }
}
