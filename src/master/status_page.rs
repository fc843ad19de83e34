//! The master's `/` page: the masters with their roles, a summary, live request rates, each
//! volume server with its volumes as fill bars (size against the volume size limit, garbage
//! share), and the writable volumes of each layout.

use std::fmt::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::http::HttpResponse;
use super::node::Master;
use super::topology::{DataNode, Topology};
use crate::ui::{self, escape, ttl_text, volume_row, volume_state};
use crate::wire::VolumeReport;

/// `/` and `/ui/index.html`.
pub fn index(master: &Master) -> HttpResponse {
    let leader = master.leader_address().unwrap_or_default();
    let self_address = &master.config.self_address;
    let leads = !leader.is_empty() && leader == *self_address;
    let badge = match (leader.is_empty(), leads) {
        (true, _) => ("no leader", "warn"),
        (false, true) => ("leader", "leader"),
        (false, false) => ("follower", "follower"),
    };
    let mut page = ui::page_start("master", self_address, Some(badge));
    let limit = master.config.volume_size_limit_bytes;
    if leads {
        let mut topology = master.lock_topology();
        summary(&mut page, &topology, limit);
        rates(&mut page);
        masters(&mut page, master, &leader);
        servers(&mut page, &topology, limit);
        layouts(&mut page, &mut topology);
    } else {
        follower_note(&mut page, &leader);
        rates(&mut page);
        masters(&mut page, master, &leader);
    }
    ui::page_end(&mut page);
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(page)))
        .expect("valid response")
}

/// A follower knows no volume server (they report to the leader): it says where to look.
fn follower_note(page: &mut String, leader: &str) {
    let text = match leader {
        "" => "No leader is elected yet: the volume servers wait for one.".to_string(),
        leader => format!(
            "This master follows the leader, which the volume servers report to: \
             <a href=\"http://{0}/\">{0}</a>.",
            escape(leader)
        ),
    };
    let _ = write!(page, "<div class=\"empty\">{text}</div>");
}

fn all_volumes(node: &DataNode) -> impl Iterator<Item = &VolumeReport> {
    node.volumes
        .values()
        .chain(node.pending.values().map(|(volume, _)| volume))
}

fn summary(page: &mut String, topology: &Topology, limit: u64) {
    let nodes = topology.nodes.len();
    let (mut volumes, mut writable, mut read_only, mut used, mut garbage, mut slots) =
        (0, 0, 0, 0u64, 0u64, 0u64);
    for node in topology.nodes.values() {
        slots += u64::from(node.max_volume_count);
        for volume in all_volumes(node) {
            volumes += 1;
            used += volume.size;
            garbage += volume.deleted_byte_count;
            match volume_state(volume, limit) {
                "writable" => writable += 1,
                _ => read_only += 1,
            }
        }
    }
    page.push_str("<div class=\"tiles\">");
    ui::tile(page, &nodes.to_string(), "volume servers", "");
    let note = format!("{writable} writable, {read_only} read-only or full");
    ui::tile(
        page,
        &format!("{volumes} / {slots}"),
        "volumes / slots",
        &note,
    );
    let capacity = format!(
        "of {} ({} per volume)",
        ui::bytes(slots * limit),
        ui::bytes(limit)
    );
    ui::tile(page, &ui::bytes(used), "stored", &capacity);
    let share = match used {
        0 => 0.0,
        _ => garbage as f64 * 100.0 / used as f64,
    };
    ui::tile(
        page,
        &ui::bytes(garbage),
        "garbage",
        &format!("{share:.1}% of stored"),
    );
    page.push_str("</div>");
}

fn rates(page: &mut String) {
    page.push_str("<h2>Requests</h2><div class=\"tiles\">");
    ui::rate_tile(page, "kelp_master_assign_requests_total", "", "assignments");
    ui::rate_tile(page, "kelp_master_assigned_keys_total", "", "file ids");
    ui::rate_tile(page, "kelp_master_heartbeats_total", "", "heartbeats");
    ui::rate_tile(
        page,
        "kelp_master_proxied_requests_total",
        "",
        "forwarded to the leader",
    );
    page.push_str("</div>");
}

fn masters(page: &mut String, master: &Master, leader: &str) {
    page.push_str("<h2>Masters</h2><table><tr><th>Address</th><th>Role</th><th></th></tr>");
    let mut members = master.member_addresses();
    if members.is_empty() {
        members.push(master.config.self_address.clone());
    }
    for member in members {
        let role = if member == leader {
            "leader"
        } else {
            "follower"
        };
        let this = if member == master.config.self_address {
            "this master"
        } else {
            ""
        };
        let _ = write!(
            page,
            "<tr><td><a href=\"http://{0}/\">{0}</a></td><td><span class=\"pill {role}\">{role}</span></td>\
             <td>{this}</td></tr>",
            escape(&member)
        );
    }
    page.push_str("</table>");
}

fn servers(page: &mut String, topology: &Topology, limit: u64) {
    page.push_str("<h2>Volume servers</h2><div class=\"legend\">fill against the volume size \
                   limit:<i style=\"background:var(--live)\"></i>live data<i style=\"background:\
                   var(--garbage)\"></i>garbage (deleted, reclaimed by vacuum)<i style=\"\
                   background:#8a97a6\"></i>read-only<i style=\"background:var(--full)\"></i>full</div>");
    if topology.nodes.is_empty() {
        page.push_str("<div class=\"empty\">No volume server has joined yet.</div>");
        return;
    }
    page.push_str("<div class=\"servers\">");
    for node in topology.nodes.values() {
        let used: u64 = all_volumes(node).map(|v| v.size).sum();
        let _ = write!(
            page,
            "<div class=\"server\"><h3><a href=\"http://{0}/\">{0}</a></h3><div class=\"where\">\
             {1} / {2} &middot; {3} of {4} volumes &middot; {5}</div>",
            escape(&node.url),
            escape(&node.data_center),
            escape(&node.rack),
            node.volume_count(),
            node.max_volume_count,
            ui::bytes(used)
        );
        for volume in all_volumes(node) {
            volume_row(page, volume, limit);
        }
        page.push_str("</div>");
    }
    page.push_str("</div>");
}

fn layouts(page: &mut String, topology: &mut Topology) {
    page.push_str("<h2>Writable volumes by layout</h2>");
    let layouts = topology.writable_layouts();
    if layouts.is_empty() {
        page.push_str(
            "<div class=\"empty\">No writable volume: the first assignment grows some.</div>",
        );
        return;
    }
    page.push_str("<table><tr><th>Collection</th><th>Replication</th><th>TTL</th><th>Writable volumes</th></tr>");
    for (key, ids) in layouts {
        let ids: Vec<String> = ids.iter().map(|id| format!("#{id}")).collect();
        let collection = ui::collection_text(&key.collection);
        let _ = write!(
            page,
            "<tr><td>{collection}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            key.placement,
            ttl_text(&key.ttl),
            ids.join(" ")
        );
    }
    page.push_str("</table>");
}
