//! The volume server's `/` page: its volumes as fill bars (size against the master's volume
//! size limit, garbage share), live request rates by method, and its cores. With a
//! `[jwt.signing]` key it is served only when `[access] ui = true` (as in SeaweedFS).

use std::fmt::Write;
use std::rc::Rc;

use kelp_net::http::{Request, Response};

use super::config::Config;
use super::master_link::VolumeReport;
use super::state::{CoreSnapshot, CoreState, all_snapshots};
use crate::ui::{self, escape, volume_row};

/// `/` and `/ui/index.html`.
pub async fn index(state: &Rc<CoreState>, _request: &Request) -> Response {
    let config = &state.config;
    if let Some(security) = config.security.as_deref()
        && security.write_key.is_some()
        && !security.ui_access
    {
        let text = format!(
            "the status page is off while {} sets a [jwt.signing] key; [access] ui = true turns it on",
            security.path.display()
        );
        return Response::error(401, &text);
    }
    let snapshots = match all_snapshots(state).await {
        Ok(snapshots) => snapshots,
        Err(error) => return Response::error(503, &error),
    };
    let limit = state.store.borrow().size_limit_bytes();
    let mut volumes: Vec<_> = snapshots.iter().flat_map(|s| s.volumes.iter()).collect();
    volumes.sort_by_key(|v| v.id);
    let cores = format!("{} cores", config.cores);
    let mut page = ui::page_start(
        "volume server",
        &config.public_url,
        Some((&cores, "follower")),
    );
    summary_tiles(&mut page, config, &volumes, limit);
    request_tiles(&mut page);
    volume_rows(&mut page, &volumes, limit);
    cores_table(&mut page, state, &snapshots);
    ui::page_end(&mut page);
    Response::new(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .body_bytes(page)
}

fn cores_table(page: &mut String, state: &CoreState, snapshots: &[CoreSnapshot]) {
    page.push_str(
        "<h2>Cores</h2><table><tr><th>Core</th><th>Own port</th><th>Volumes</th>\
                   <th>Hand-offs in progress</th></tr>",
    );
    let mut merged = super::metrics::CoreMetrics::default();
    for snapshot in snapshots {
        merged.merge(&snapshot.metrics);
    }
    for core in 0..state.config.cores {
        let volumes = merged.volumes.get(&core).copied().unwrap_or(0);
        let in_progress = merged.handoff_queue_depth.get(&core).copied().unwrap_or(0);
        let _ = write!(
            page,
            "<tr><td>{core}</td><td>{}</td><td>{volumes}</td><td>{in_progress}</td></tr>",
            escape(&super::shard::core_port(state.config.port, core).to_string())
        );
    }
    page.push_str("</table>");
}

/// Volumes against `--max`, bytes stored and garbage, and the masters.
fn summary_tiles(page: &mut String, config: &Config, volumes: &[&VolumeReport], limit: u64) {
    let used: u64 = volumes.iter().map(|v| v.size).sum();
    let garbage: u64 = volumes.iter().map(|v| v.deleted_byte_count).sum();
    page.push_str("<div class=\"tiles\">");
    let slots = format!("{} / {}", volumes.len(), config.volumes_max);
    ui::tile(
        page,
        &slots,
        "volumes / --max",
        &format!("{} per volume", ui::bytes(limit)),
    );
    ui::tile(
        page,
        &ui::bytes(used),
        "stored",
        &format!("in {}", config.dir.display()),
    );
    ui::tile(page, &ui::bytes(garbage), "garbage", "reclaimed by vacuum");
    let masters = config.masters.join(", ");
    ui::tile(page, &config.masters.len().to_string(), "masters", &masters);
}

/// Live request rates by method, and bytes in and out.
fn request_tiles(page: &mut String) {
    page.push_str("</div><h2>Requests</h2><div class=\"tiles\">");
    for (method, title) in [("GET", "reads"), ("POST", "writes"), ("DELETE", "deletes")] {
        let label = format!("method=\"{method}\"");
        ui::rate_tile(page, "kelp_volume_requests_total", &label, title);
    }
    ui::rate_tile(page, "kelp_volume_response_bytes_total", "", "bytes sent");
    ui::rate_tile(
        page,
        "kelp_volume_request_bytes_total",
        "",
        "bytes received",
    );
}

fn volume_rows(page: &mut String, volumes: &[&VolumeReport], limit: u64) {
    page.push_str("</div><h2>Volumes</h2>");
    if volumes.is_empty() {
        page.push_str("<div class=\"empty\">No volume yet: the master creates them on the first assignment.</div>");
    } else {
        page.push_str("<div class=\"server\">");
        for volume in volumes {
            volume_row(page, volume, limit);
        }
        page.push_str("</div>");
    }
}
