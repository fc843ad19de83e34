//! The `/metrics` families are what deploy/README.md documents and what the Grafana
//! dashboard charts: every family a master, a volume server and a filer serve has a row in
//! the README's tables, every row is served, and every metric the dashboard queries exists.

mod filer_support;
mod support;

use std::collections::BTreeSet;

use filer_support::{KelpCluster, http};

/// The families (`# TYPE name kind` lines) of a `/metrics` answer.
fn families(port: u16) -> BTreeSet<String> {
    let answer = http(port, "GET", "/metrics", &[], b"");
    assert_eq!(answer.status, 200, "/metrics on {port}");
    answer
        .text()
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Words of `text` that are metric names (`kelp_...`), histogram suffixes dropped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("kelp_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_string();
        // `kelp_.*`, the dashboard's pattern of every family, is no name.
        if family.len() > "kelp_".len() {
            names.insert(family);
        }
    }
    names
}

// Proves the README's metric tables and the served families are the same sets, and that
// the dashboard queries only served families.
#[test]
fn metrics_are_documented_and_charted() {
    let root = tempfile::tempdir().unwrap();
    let filer_port = support::free_port();
    let cluster = KelpCluster::start(root.path(), filer_port);
    let mut served = families(cluster.master_port);
    served.extend(families(cluster.volume_port));
    served.extend(families(filer_port));
    let readme = repo_file("deploy/README.md");
    let documented: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("kelp_"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented, served,
        "deploy/README.md's tables against /metrics"
    );
    let dashboard = repo_file("deploy/grafana-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10));
    let charted = metric_names(&dashboard);
    let unknown: Vec<_> = charted.difference(&served).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries unknown metrics: {unknown:?}"
    );
    for family in [
        "kelp_master_assign_requests_total",
        "kelp_volume_requests_total",
    ] {
        assert!(charted.contains(family), "{family} is not charted");
    }
}
