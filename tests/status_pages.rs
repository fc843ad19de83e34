//! The status pages (`/` of the master and of a volume server) of a cluster with some
//! traffic: what they show, and how a real browser renders them (headless Chromium: a
//! screenshot of each page in `$CARGO_TARGET_TMPDIR/status-pages/`, and the DOM after the
//! page's script ran, whose rates must be numbers).

mod master_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use master_common::{MasterProcess, get, http, multipart_file};
use support::{ChildGuard, free_port, free_port_run, wait_until};

struct Cluster {
    master: MasterProcess,
    volumes: Vec<(ChildGuard, String)>,
    _root: tempfile::TempDir,
}

fn start_volume(root: &Path, name: &str, master: &str, rack: &str) -> (ChildGuard, String) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port_run(3);
    let (port_text, dir_text) = (port.to_string(), dir.display().to_string());
    let args = [
        "volume", "--dir", &dir_text, "--port", &port_text, "--cores", "2", "--master", master,
        "--max", "6", "--rack", rack,
    ];
    let guard = ChildGuard::spawn_kelp(name, &args, &root.join(format!("{name}.log")));
    let address = format!("127.0.0.1:{port}");
    wait_until(&format!("{name} to serve"), Duration::from_secs(20), || {
        get(&address, "/healthz").is_ok_and(|a| a.status == 200)
    });
    (guard, address)
}

/// Assign and upload a file of `size` bytes (then delete it when `delete`); false when there
/// is no room left.
fn write_one(master: &str, size: usize, delete: bool) -> bool {
    let assigned = get(master, "/dir/assign").unwrap();
    if assigned.status != 200 {
        return false;
    }
    let json = assigned.json();
    let (fid, url) = (json["fid"].as_str().unwrap(), json["url"].as_str().unwrap());
    let (content_type, body) = multipart_file("f.bin", &vec![7u8; size]);
    let headers = [("Content-Type", content_type.as_str())];
    let written = http("POST", url, &format!("/{fid}"), &headers, &body).unwrap();
    if written.status == 507 {
        return false; // the volume filled up before the master heard of it
    }
    assert_eq!(written.status, 201, "{}", written.text());
    let read = get(url, &format!("/{fid}")).unwrap();
    assert_eq!(read.status, 200, "{}", read.text());
    if delete {
        let deleted = http("DELETE", url, &format!("/{fid}"), &[], b"").unwrap();
        assert_eq!(deleted.status, 202, "{}", deleted.text());
    }
    true
}

/// A master with a 1 MiB volume size limit and two volume servers, with files written
/// (filling some volumes past the limit) and some deleted (garbage).
fn busy_cluster() -> Cluster {
    let root = tempfile::tempdir().unwrap();
    let extra = ["--volume-size-limit-mb", "1"];
    let master = MasterProcess::start(root.path(), "master", free_port(), "", &extra);
    let volumes = vec![
        start_volume(root.path(), "volume-a", &master.address, "rack-a"),
        start_volume(root.path(), "volume-b", &master.address, "rack-b"),
    ];
    wait_until("two volume servers joined", Duration::from_secs(20), || {
        let status = get(&master.address, "/dir/status");
        status.is_ok_and(|s| s.text().matches("\"Url\"").count() >= 2)
    });
    for index in 0..60 {
        write_one(&master.address, (index % 5 + 1) * 40 * 1024, index % 4 == 1);
    }
    // One heartbeat later the master knows the sizes.
    std::thread::sleep(Duration::from_millis(1500));
    Cluster {
        master,
        volumes,
        _root: root,
    }
}

// Proves the master's page shows the masters with their roles, each volume server with its
// volumes as fill bars (garbage share included), writable and full volumes, and the rate
// tiles; and the volume server's page its volumes, rates and cores.
#[test]
fn pages_show_the_cluster() {
    let cluster = busy_cluster();
    let page = get(&cluster.master.address, "/").unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let text = page.text();
    for words in [
        "Masters",
        "<span class=\"pill leader\">leader</span>",
        &cluster.master.address,
        "rack-a",
        "rack-b",
        "class=\"bar writable\"",
        "% garbage",
        "kelp_master_assign_requests_total",
        "Writable volumes by layout",
    ] {
        assert!(
            text.contains(words),
            "the master's page lacks {words:?}:\n{text}"
        );
    }
    for (_, volume) in &cluster.volumes {
        assert!(text.contains(volume.as_str()), "{volume} missing");
        let page = get(volume, "/").unwrap();
        assert_eq!(page.status, 200, "{}", page.text());
        let text = page.text();
        for words in [
            "volumes / --max",
            "class=\"bar ",
            "method=&quot;GET&quot;",
            "Cores",
        ] {
            assert!(
                text.contains(words),
                "{volume}'s page lacks {words:?}:\n{text}"
            );
        }
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let output = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()?;
        let path = String::from_utf8(output.stdout).ok()?.trim().to_string();
        (!path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// Headless Chromium on `url` with `mode` (`--screenshot=FILE` or `--dump-dom`), letting
/// the page's timers run for a few seconds of virtual time; its standard output.
fn browse(browser: &Path, url: &str, mode: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1360,1500",
            "--virtual-time-budget=9000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium {mode} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Small writes, reads and deletes for a few seconds, while a page samples its rates.
fn traffic(master: &str) -> std::thread::JoinHandle<()> {
    let master = master.to_string();
    std::thread::spawn(move || {
        for index in 0..150 {
            write_one(&master, 2048, index % 5 == 0);
            std::thread::sleep(Duration::from_millis(15));
        }
    })
}

/// Width and height of a PNG, from its header.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

// Proves both pages render in a real browser: a full-size screenshot of each (kept for a
// person to look at), and the rates filled in by the page's script from /metrics.
#[test]
#[ignore = "needs chromium (test.sh runs the needs_chromium tests when it is installed)"]
fn pages_in_a_browser_needs_chromium() {
    let browser = chromium().expect("chromium on the PATH");
    let cluster = busy_cluster();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-pages");
    std::fs::create_dir_all(&shots).unwrap();
    let (_, volume) = &cluster.volumes[0];
    for (name, address) in [("master", &cluster.master.address), ("volume", volume)] {
        let url = format!("http://{address}/");
        // Traffic while the page samples its rates.
        let load = traffic(&cluster.master.address);
        let dom = browse(&browser, &url, "--dump-dom");
        load.join().unwrap();
        let rates = dom.matches("class=\"tile rate\"").count();
        assert!(rates >= 4, "{name}: rate tiles in the DOM:\n{dom}");
        assert!(
            !dom.contains("<div class=\"value\">–</div>"),
            "{name}: a rate left empty:\n{dom}"
        );
        assert!(
            dom.contains("<polyline points=\"0.0,"),
            "{name}: no sparkline drawn:\n{dom}"
        );
        let file = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        let load = traffic(&cluster.master.address);
        browse(&browser, &url, &format!("--screenshot={}", file.display()));
        load.join().unwrap();
        let png = std::fs::read(&file).unwrap();
        assert_eq!(png_size(&png), (1360, 1500), "{name}: {}", file.display());
        assert!(
            png.len() > 20_000,
            "{name}: a near-empty screenshot ({} bytes)",
            png.len()
        );
    }
}
