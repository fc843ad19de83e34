//! The heartbeat to the master (`crate::wire::Heartbeat`), sent by core 0 for the whole server. A
//! master that is down is retried with backoff and logged, never fatal.

use super::admin_guard::MasterAddresses;
use super::core::{CoreState, all_snapshots, broadcast_size_limit};
use super::master_link::{self, Heartbeat, Masters};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Pulse used until the master says otherwise (SeaweedFS's default).
pub const PULSE_SECONDS_DEFAULT: u64 = 5;
/// A master asking for a longer pulse than this is capped (it would think us dead).
pub const PULSE_SECONDS_MAX: u64 = 60;

pub async fn heartbeat_loop(state: Rc<CoreState>) {
    let mut masters = Masters::new(state.config.masters.clone());
    let mut pulse_s = PULSE_SECONDS_DEFAULT;
    let mut backoff_ms = 0;
    let mut size_limit_bytes = 0;
    loop {
        let outcome = match build(&state).await {
            Ok(heartbeat) => master_link::send_heartbeat(&mut masters, &heartbeat).await,
            Err(error) => Err(format!("collecting volumes for the heartbeat: {error}")),
        };
        let wait_ms = match outcome {
            Ok(answer) => {
                refresh_admin_masters(&state, masters.current());
                if backoff_ms > 0 {
                    tracing::info!("heartbeat: master {} answers again", masters.current());
                    backoff_ms = 0;
                }
                if answer.pulse_seconds > 0 {
                    pulse_s = answer.pulse_seconds.min(PULSE_SECONDS_MAX);
                }
                if answer.volume_size_limit > 0 && answer.volume_size_limit != size_limit_bytes {
                    size_limit_bytes = answer.volume_size_limit;
                    broadcast_size_limit(&state, size_limit_bytes);
                }
                pulse_s * 1000
            }
            Err(error) => {
                backoff_ms = master_link::next_backoff_ms(backoff_ms);
                tracing::warn!("heartbeat failed, retrying in {backoff_ms} ms: {error}");
                backoff_ms
            }
        };
        compio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
}

/// Resolves the masters' names again for the admin calls' gate when it is time (a new
/// leader name, or an old answer), on a blocking thread: DNS must not stall this core.
fn refresh_admin_masters(state: &CoreState, current_master: &str) {
    let guard = state.admin_guard.clone();
    let Some(names) = guard.claim_refresh(current_master, Instant::now()) else {
        return;
    };
    compio::runtime::spawn(async move {
        let resolve = move || MasterAddresses::resolve(names);
        match compio::runtime::spawn_blocking(resolve).await {
            Ok(masters) => guard.replace(masters),
            Err(_) => tracing::warn!("admin calls: resolving the masters panicked"),
        }
    })
    .detach();
}

async fn build(state: &CoreState) -> Result<Heartbeat, String> {
    let snapshots = all_snapshots(state).await?;
    let max_file_key = snapshots.iter().map(|s| s.max_file_key).max().unwrap_or(0);
    let mut volumes: Vec<_> = snapshots.into_iter().flat_map(|s| s.volumes).collect();
    volumes.sort_by_key(|v| v.id);
    let config = &state.config;
    Ok(Heartbeat {
        ip: config.ip.to_string(),
        port: config.port,
        public_url: config.public_url.clone(),
        data_center: config.data_center.clone(),
        rack: config.rack.clone(),
        max_volume_count: config.volumes_max,
        max_file_key,
        volumes,
    })
}
