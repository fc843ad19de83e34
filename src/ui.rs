//! The parts the master's and the volume server's status pages share: the page frame and its
//! style, summary tiles, fill bars, and the script that turns `/metrics` counters into live
//! rates. The pages are plain HTML rendered on the server (readable without the script);
//! the script only adds the rates and reloads the page now and then.

use std::fmt::Write;

use crate::wire::VolumeReport;

/// Seconds between two `/metrics` samples of the live rates.
const RATE_POLL_SECONDS: u32 = 2;
/// Seconds between two reloads of the whole page (volumes, fill, roles).
const PAGE_RELOAD_SECONDS: u32 = 20;

/// Text safe inside HTML (elements and attribute values).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bytes in binary units with three significant digits: `1.50 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, value) {
        (0, _) => format!("{count} B"),
        (_, v) if v >= 100.0 => format!("{v:.0} {}", UNITS[unit]),
        (_, v) if v >= 10.0 => format!("{v:.1} {}", UNITS[unit]),
        (_, v) => format!("{v:.2} {}", UNITS[unit]),
    }
}

/// The start of a page: title, style, and a header with `title`, `subtitle` and `badge`.
pub fn page_start(title: &str, subtitle: &str, badge: Option<(&str, &str)>) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><header><div>\
         <span class=\"logo\">kelp</span> <span class=\"title\">{}</span>\
         <span class=\"subtitle\">{}</span></div>",
        escape(title),
        escape(title),
        escape(subtitle),
    );
    if let Some((text, kind)) = badge {
        let _ = write!(page, "<span class=\"badge {kind}\">{}</span>", escape(text));
    }
    page.push_str("</header><main>");
    page
}

/// The end of a page: the live-rate script and the closing tags.
pub fn page_end(page: &mut String) {
    let _ = writeln!(
        page,
        "<footer>{} &middot; rates from <a href=\"/metrics\">/metrics</a> every {RATE_POLL_SECONDS} s \
         &middot; page reloads every {PAGE_RELOAD_SECONDS} s</footer></main><script>{}</script></body></html>",
        escape(concat!("kelp ", env!("CARGO_PKG_VERSION"))),
        SCRIPT
            .replace("RATE_POLL_MS", &(RATE_POLL_SECONDS * 1000).to_string())
            .replace("PAGE_RELOAD_MS", &(PAGE_RELOAD_SECONDS * 1000).to_string()),
    );
}

/// A summary tile: a big number and what it counts.
pub fn tile(page: &mut String, value: &str, label: &str, note: &str) {
    let _ = write!(
        page,
        "<div class=\"tile\"><div class=\"value\">{}</div><div class=\"label\">{}</div>\
         <div class=\"note\">{}</div></div>",
        escape(value),
        escape(label),
        escape(note)
    );
}

/// A live-rate tile: per second of the counter family `metric` (its series whose labels
/// contain `label`, summed), with a sparkline of the last minute.
pub fn rate_tile(page: &mut String, metric: &str, label: &str, title: &str) {
    let unit = if metric.ends_with("_bytes_total") {
        "bytes"
    } else {
        "count"
    };
    let _ = write!(
        page,
        "<div class=\"tile rate\" data-metric=\"{}\" data-label=\"{}\" data-unit=\"{unit}\"><div class=\"value\">&ndash;</div>\
         <div class=\"label\">{} /s</div><svg class=\"spark\" viewBox=\"0 0 120 28\" \
         preserveAspectRatio=\"none\"><polyline points=\"\"/></svg></div>",
        escape(metric),
        escape(label),
        escape(title)
    );
}

/// A fill bar: live data and garbage against `limit`, with the numbers beside it.
pub fn fill_bar(page: &mut String, size: u64, garbage: u64, limit: u64, state: &str) {
    let limit = limit.max(1);
    let live = size.saturating_sub(garbage);
    let live_percent = (live as f64 * 100.0 / limit as f64).min(100.0);
    let garbage_percent = (garbage as f64 * 100.0 / limit as f64).min(100.0 - live_percent);
    let garbage_share = match size {
        0 => 0.0,
        _ => garbage as f64 * 100.0 / size as f64,
    };
    let _ = write!(
        page,
        "<div class=\"bar {state}\" title=\"{} of {} ({:.1}% garbage)\">\
         <span class=\"live\" style=\"width:{live_percent:.2}%\"></span>\
         <span class=\"garbage\" style=\"width:{garbage_percent:.2}%\"></span></div>\
         <div class=\"barnote\">{} / {} &middot; {:.0}% full &middot; {:.1}% garbage</div>",
        bytes(size),
        bytes(limit),
        garbage_share,
        bytes(size),
        bytes(limit),
        size as f64 * 100.0 / limit as f64,
        garbage_share,
    );
}

/// How a volume takes writes: "full" (at the size limit), "readonly" or "writable".
pub fn volume_state(volume: &VolumeReport, limit: u64) -> &'static str {
    if volume.size >= limit {
        "full"
    } else if volume.read_only {
        "readonly"
    } else {
        "writable"
    }
}

/// One volume: its id and state, its fill bar, its collection, placement, TTL and counts.
pub fn volume_row(page: &mut String, volume: &VolumeReport, limit: u64) {
    let state = volume_state(volume, limit);
    let collection = collection_text(&volume.collection);
    let _ = write!(
        page,
        "<div class=\"vol\"><div><div class=\"id\">#{}</div><span class=\"pill {state}\">{}</span></div><div>",
        volume.id,
        state.replace("readonly", "read-only"),
    );
    fill_bar(page, volume.size, volume.deleted_byte_count, limit, state);
    let _ = write!(
        page,
        "</div><div class=\"meta\">{collection} &middot; {} &middot; ttl {}<br>{} files, {} deleted</div></div>",
        volume.replica_placement,
        ttl_text(&volume.ttl),
        volume.file_count,
        volume.delete_count,
    );
}

/// A collection's name for a page, escaped; "default" for the default collection.
pub fn collection_text(collection: &str) -> String {
    match collection {
        "" => "default".to_string(),
        name => escape(name),
    }
}

/// A TTL as text, "none" for none.
pub fn ttl_text(ttl: &kelp_engine::format::Ttl) -> String {
    match ttl.to_string() {
        text if text.is_empty() => "none".to_string(),
        text => text,
    }
}

const STYLE: &str = r#"
:root{--bg:#f4f6f8;--card:#fff;--ink:#1d2733;--mute:#6b7785;--line:#e3e8ee;--live:#2f9e6e;
--garbage:#e8a33d;--full:#c94b4b;--accent:#1f6feb;--head:#0f2a33}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;justify-content:space-between;align-items:center;padding:14px 28px;
background:var(--head);color:#e9f5f2}.logo{font-weight:800;letter-spacing:.5px;color:#5fd3a8;
font-size:20px}.title{font-size:18px;font-weight:600;margin-left:8px}.subtitle{margin-left:14px;
color:#9fb7bf}.badge{padding:4px 12px;border-radius:999px;font-weight:600;font-size:13px}
.badge.leader{background:#5fd3a8;color:#0f2a33}.badge.follower{background:#d8e3e8;color:#0f2a33}
.badge.warn{background:var(--garbage);color:#1d2733}main{padding:20px 28px;max-width:1280px}
h2{font-size:15px;text-transform:uppercase;letter-spacing:.6px;color:var(--mute);margin:26px 0 10px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.tile .value{font-size:24px;font-weight:700}.tile .label{color:var(--mute)}
.tile .note{color:var(--mute);font-size:12px}.tile.rate .value{color:var(--accent)}
.spark{width:100%;height:28px;margin-top:4px}.spark polyline{fill:none;stroke:var(--accent);
stroke-width:1.5}table{width:100%;border-collapse:collapse;background:var(--card);
border:1px solid var(--line);border-radius:10px;overflow:hidden}th,td{text-align:left;
padding:7px 12px;border-bottom:1px solid var(--line);vertical-align:middle}th{font-size:12px;
color:var(--mute);font-weight:600;background:#fafbfc}tr:last-child td{border-bottom:0}
.servers{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
.server{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.server h3{margin:0 0 2px;font-size:15px}.server .where{color:var(--mute);font-size:12px;
margin-bottom:8px}.vol{display:grid;grid-template-columns:78px 1fr 150px;gap:10px;
align-items:center;padding:5px 0;border-top:1px solid var(--line)}.vol .id{font-weight:600}
.vol .meta{color:var(--mute);font-size:12px}.bar{height:12px;border-radius:6px;background:#e9edf1;
display:flex;overflow:hidden}.bar .live{background:var(--live)}.bar .garbage{background:var(--garbage)}
.bar.readonly .live{background:#8a97a6}.bar.full .live{background:var(--full)}
.barnote{font-size:11px;color:var(--mute);margin-top:2px}.pill{display:inline-block;padding:1px 8px;
white-space:nowrap;
border-radius:999px;font-size:11px;font-weight:600}.pill.writable{background:#dff3ea;color:#1f7a52}
.pill.readonly{background:#e6e9ee;color:#4b5664}.pill.full{background:#f6dede;color:#9c2f2f}
.pill.leader{background:#dff3ea;color:#1f7a52}.pill.follower{background:#e6e9ee;color:#4b5664}
.legend{color:var(--mute);font-size:12px;margin:4px 0 10px}.legend i{display:inline-block;width:10px;
height:10px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}.empty{color:var(--mute);
padding:14px;background:var(--card);border:1px dashed var(--line);border-radius:10px}
footer{color:var(--mute);font-size:12px;margin:28px 0 10px}a{color:var(--accent)}
"#;

/// Polls `/metrics`, turns the counters each rate tile names into per-second rates (and a
/// one-minute sparkline), and reloads the page every `PAGE_RELOAD_MS`.
const SCRIPT: &str = r#"
(function(){
  var tiles=[].slice.call(document.querySelectorAll('.tile.rate'));
  var last=null,history=tiles.map(function(){return [];});
  function total(text,metric,label){
    var sum=0;text.split('\n').forEach(function(line){
      if(line.charAt(0)==='#'||line.indexOf(metric)!==0)return;
      var rest=line.slice(metric.length);if(rest.charAt(0)!=='{'&&rest.charAt(0)!==' ')return;
      if(label&&rest.indexOf(label)<0)return;
      var value=parseFloat(line.slice(line.lastIndexOf(' ')+1));if(!isNaN(value))sum+=value;});
    return sum;}
  function human(n){var units=['B','KiB','MiB','GiB','TiB'],i=0;
    while(n>=1024&&i<units.length-1){n/=1024;i++;}return (n>=100||i===0?n.toFixed(0):n.toFixed(1))+' '+units[i];}
  function draw(tile,points){
    var max=Math.max.apply(null,points.concat([1]));
    var step=120/Math.max(points.length-1,1);
    var coords=points.map(function(v,i){return (i*step).toFixed(1)+','+(27-v*25/max).toFixed(1);});
    tile.querySelector('polyline').setAttribute('points',coords.join(' '));}
  function sample(){
    fetch('/metrics').then(function(r){return r.text();}).then(function(text){
      var now=Date.now(),values=tiles.map(function(t){return total(text,t.dataset.metric,t.dataset.label);});
      if(last){var seconds=(now-last.at)/1000;tiles.forEach(function(tile,i){
        var rate=Math.max(0,(values[i]-last.values[i])/seconds);
        tile.querySelector('.value').textContent=tile.dataset.unit==='bytes'?human(rate):
          (rate>=100?rate.toFixed(0):rate.toFixed(1));
        history[i].push(rate);if(history[i].length>60)history[i].shift();draw(tile,history[i]);});}
      last={at:now,values:values};}).catch(function(){});}
  if(tiles.length){sample();setTimeout(sample,1000);setInterval(sample,RATE_POLL_MS);}
  setTimeout(function(){location.reload();},PAGE_RELOAD_MS);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    // Proves byte counts read as people write them and text is escaped for HTML.
    #[test]
    fn bytes_and_escaping() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(30 * 1024 * 1024 * 1024), "30.0 GiB");
        assert_eq!(bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    // Proves a fill bar's widths add up within the limit and name the garbage share.
    #[test]
    fn fill_bars() {
        let mut page = String::new();
        fill_bar(&mut page, 600, 150, 1000, "writable");
        assert!(
            page.contains("width:45.00%") && page.contains("width:15.00%"),
            "{page}"
        );
        assert!(page.contains("25.0% garbage"), "{page}");
        let mut over = String::new();
        fill_bar(&mut over, 2000, 0, 1000, "full");
        assert!(
            over.contains("width:100.00%") && over.contains("width:0.00%"),
            "{over}"
        );
    }
}
