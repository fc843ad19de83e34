//! The heartbeat to the master (`crate::wire::Heartbeat`), sent by core 0 for the whole server. A
//! master that is down is retried with backoff (at most a pulse) and logged, never fatal.
//! Between two heartbeats the server waits on the leader's `/cluster/watch`, so it hears at
//! once when the leader dies or loses its quorum, and heartbeats to the new leader as soon as
//! one is elected: a new leader learns the topology within milliseconds, not a pulse.

use super::admin_guard::MasterAddresses;
use super::config::MasterKind;
use super::grpc::seaweed_master::MasterLink;
use super::limits::{
    HEARTBEAT_PULSE_SECONDS_DEFAULT, HEARTBEAT_PULSE_SECONDS_MAX, MASTER_BACKOFF_MS_MIN,
};
use super::master_link::{self, Heartbeat, LeaderWatch, Masters};
use super::state::{CoreState, all_snapshots, broadcast_size_limit};
use futures_util::future::Either;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub async fn heartbeat_loop(state: Rc<CoreState>) {
    let mut masters = Masters::new(state.config.masters.clone());
    if master_kind(&mut masters, state.config.master_kind).await == MasterKind::Seaweedfs {
        if state.config.grpc_port == 0 {
            // A SeaweedFS master allocates volumes over gRPC: without it this server would
            // join and never be given a volume.
            eprintln!(
                "kelp volume: the masters {:?} are SeaweedFS, which needs this server's gRPC: \
                 leave out --grpc-port 0",
                state.config.masters
            );
            std::process::exit(2);
        }
        tracing::info!("heartbeat: the masters are SeaweedFS: heartbeating over gRPC");
        state.seaweed_link.use_seaweedfs();
        return;
    }
    let mut pulse_s = HEARTBEAT_PULSE_SECONDS_DEFAULT;
    let mut backoff_ms = 0;
    let mut size_limit_bytes = 0;
    loop {
        let outcome = match build(&state).await {
            Ok(heartbeat) => master_link::send_heartbeat(&mut masters, &heartbeat).await,
            Err(error) => Err(format!("collecting volumes for the heartbeat: {error}")),
        };
        match outcome {
            Ok(answer) => {
                refresh_admin_masters(&state, masters.current());
                if backoff_ms > 0 {
                    tracing::info!("heartbeat: master {} answers again", masters.current());
                    backoff_ms = 0;
                }
                if answer.pulse_seconds > 0 {
                    pulse_s = answer.pulse_seconds.min(HEARTBEAT_PULSE_SECONDS_MAX);
                }
                let new_limit =
                    answer.volume_size_limit > 0 && answer.volume_size_limit != size_limit_bytes;
                if new_limit {
                    size_limit_bytes = answer.volume_size_limit;
                    broadcast_size_limit(&state, size_limit_bytes);
                }
                // With --max 0 how many volumes fit depends on the size limit: a new one is
                // told to the master at once.
                if new_limit && state.config.volumes_max == 0 {
                    continue;
                }
                let link = &state.seaweed_link;
                wait_for_pulse(&mut masters, link, &answer.leader, pulse_s * 1000).await;
            }
            Err(error) => {
                backoff_ms = master_link::next_backoff_ms(backoff_ms, pulse_s * 1000);
                tracing::warn!("heartbeat failed, retrying within {backoff_ms} ms: {error}");
                wait_for_a_leader(&mut masters, backoff_ms).await;
            }
        }
    }
}

/// What the masters run: as `--master-kind` says, or (auto) asked of them until one answers:
/// a Kelp master answers `/cluster/watch` with its leader; a SeaweedFS master does not, and
/// answers `/cluster/status` with `IsLeader`.
async fn master_kind(masters: &mut Masters, flag: MasterKind) -> MasterKind {
    if flag != MasterKind::Auto {
        return flag;
    }
    let mut backoff_ms = 0;
    loop {
        match masters.watch_leader("", 0).await {
            Ok(LeaderWatch::Unsupported) => return seaweedfs_or_kelp(masters).await,
            Ok(_) => return MasterKind::Kelp,
            Err(error) => {
                backoff_ms = master_link::next_backoff_ms(
                    backoff_ms,
                    HEARTBEAT_PULSE_SECONDS_DEFAULT * 1000,
                );
                tracing::warn!(
                    "heartbeat failed, retrying within {backoff_ms} ms: no master answers \
                     yet to tell whether it is Kelp or SeaweedFS ({error})"
                );
                compio::time::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
}

/// A master that did not answer `/cluster/watch` (SeaweedFS, or a Kelp master that cannot
/// yet): SeaweedFS when its `/cluster/status` is SeaweedFS's (`{"IsLeader":..,"Leader":..}`
/// without Kelp's `Members`), else taken for Kelp (HTTP heartbeats).
async fn seaweedfs_or_kelp(masters: &mut Masters) -> MasterKind {
    let Ok((_, answer)) = masters.request("GET", "/cluster/status", b"").await else {
        return MasterKind::Kelp;
    };
    let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    // Kelp's `/cluster/status` has `IsLeader` too, with its `Members` beside it.
    if answer.status == 200 && status["IsLeader"].is_boolean() && status.get("Members").is_none() {
        MasterKind::Seaweedfs
    } else {
        MasterKind::Kelp
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

/// Wait one pulse, cut short when the leader the master names is no longer `leader` or the
/// connection to it breaks (the leader died), or when a gRPC call changed the volumes (a
/// copy mounted, a volume deleted or marked: the master hears of it at once).
async fn wait_for_pulse(masters: &mut Masters, link: &MasterLink, leader: &str, pulse_ms: u64) {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(pulse_ms);
    loop {
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        if left_ms == 0 {
            return;
        }
        let watched = {
            let watch = std::pin::pin!(masters.watch_leader(leader, left_ms));
            let changed = std::pin::pin!(link.wait_for_change());
            match futures_util::future::select(watch, changed).await {
                Either::Left((watched, _)) => Some(watched),
                Either::Right(((), _)) => None,
            }
        };
        let Some(watched) = watched else {
            masters.drop_watch_connection();
            return;
        };
        match watched {
            Ok(LeaderWatch::Unchanged) => {}
            Ok(LeaderWatch::Changed(now)) => {
                tracing::info!("heartbeat: the leader is now {now:?} (was {leader})");
                masters.follow_leader(&now);
                return;
            }
            Ok(LeaderWatch::Unsupported) => {
                compio::time::sleep(Duration::from_millis(left_ms)).await;
                return;
            }
            Err(error) => {
                tracing::info!("heartbeat: lost the leader {leader}: {error}");
                // Never faster than the backoff minimum, whatever the failure.
                let floor = start + Duration::from_millis(MASTER_BACKOFF_MS_MIN);
                compio::time::sleep(floor.saturating_duration_since(Instant::now())).await;
                return;
            }
        }
    }
}

/// After a failed heartbeat: wait up to `backoff_ms`, returning as soon as a master knows a
/// leader (then it is followed), but never sooner than `MASTER_BACKOFF_MS_MIN` (a master may
/// still name a leader that just died). A master that is down is skipped for the next one.
async fn wait_for_a_leader(masters: &mut Masters, backoff_ms: u64) {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(backoff_ms);
    for _ in 0..masters.count() {
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        if left_ms == 0 {
            return;
        }
        match masters.watch_leader("", left_ms).await {
            Ok(LeaderWatch::Changed(leader)) => {
                masters.follow_leader(&leader);
                let floor = start + Duration::from_millis(MASTER_BACKOFF_MS_MIN);
                compio::time::sleep(floor.saturating_duration_since(Instant::now())).await;
                return;
            }
            Ok(LeaderWatch::Unchanged) => return,
            Ok(LeaderWatch::Unsupported) => break,
            // That master is down (watch_leader moved on to the next one).
            Err(_) => {}
        }
    }
    compio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
}

async fn build(state: &CoreState) -> Result<Heartbeat, String> {
    let snapshots = all_snapshots(state).await?;
    let max_file_key = snapshots.iter().map(|s| s.max_file_key).max().unwrap_or(0);
    let mut volumes: Vec<_> = snapshots.into_iter().flat_map(|s| s.volumes).collect();
    state.seaweed_link.drop_staged(&mut volumes, |v| v.id);
    volumes.sort_by_key(|v| v.id);
    let config = &state.config;
    let volumes_now = state.registry.lock().expect("registry").volumes.len();
    let (max_volume_count, _) = super::space::volumes_max(
        config.volumes_max,
        volumes_now,
        &mut state.store.borrow_mut(),
        &config.dir,
    );
    Ok(Heartbeat {
        ip: config.ip.to_string(),
        port: config.port,
        public_url: config.public_url.clone(),
        data_center: config.data_center.clone(),
        rack: config.rack.clone(),
        max_volume_count,
        max_file_key,
        grpc_port: config.grpc_port,
        volumes,
    })
}
