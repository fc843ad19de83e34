//! Per-core request metrics. Each core counts into its own plain (non-atomic) table; a scrape
//! asks every core for a snapshot over the mesh and merges them, so the hot path never
//! touches shared memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency histogram bucket upper bounds, microseconds (Prometheus `le`, in seconds on render).
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000,
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot counts samples above every bound.
    pub buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&mut self, latency_us: u64) {
        let slot = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| latency_us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[slot] += 1;
        self.sum_us = self.sum_us.saturating_add(latency_us);
        self.count += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.count += other.count;
    }
}

/// One core's metrics (also the merged view of all cores). `Send`, so it can cross the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreMetrics {
    /// (method, status) -> counts.
    pub by_method_status: BTreeMap<(&'static str, u16), Counts>,
    /// method -> latency.
    pub latency_by_method: BTreeMap<&'static str, Histogram>,
    /// core -> requests handed to this core by other cores and not yet answered.
    pub handoff_queue_depth: BTreeMap<usize, u64>,
    /// core -> volumes it owns.
    pub volumes: BTreeMap<usize, u64>,
    /// core -> GETs whose record was not in the page cache (read through the ring).
    pub uncached_reads: BTreeMap<usize, u64>,
    /// Compactions (vacuum), all cores together.
    pub compaction: super::compaction::CompactionMetrics,
    /// Replica repairs, all cores together.
    pub repair: super::repair::RepairMetrics,
}

impl CoreMetrics {
    pub fn record(&mut self, method: &'static str, status: u16, sample: RequestSample) {
        let counts = self.by_method_status.entry((method, status)).or_default();
        counts.requests += 1;
        counts.bytes_in += sample.bytes_in;
        counts.bytes_out += sample.bytes_out;
        self.latency_by_method
            .entry(method)
            .or_default()
            .record(sample.latency_us);
    }

    pub fn merge(&mut self, other: &CoreMetrics) {
        for (key, counts) in &other.by_method_status {
            let mine = self.by_method_status.entry(*key).or_default();
            mine.requests += counts.requests;
            mine.bytes_in += counts.bytes_in;
            mine.bytes_out += counts.bytes_out;
        }
        for (method, histogram) in &other.latency_by_method {
            self.latency_by_method
                .entry(method)
                .or_default()
                .merge(histogram);
        }
        for (core, depth) in &other.handoff_queue_depth {
            *self.handoff_queue_depth.entry(*core).or_default() += depth;
        }
        for (core, count) in &other.volumes {
            *self.volumes.entry(*core).or_default() += count;
        }
        for (core, count) in &other.uncached_reads {
            *self.uncached_reads.entry(*core).or_default() += count;
        }
        self.compaction.merge(&other.compaction);
        self.repair.merge(&other.repair);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_counters(&mut out);
        self.render_latency(&mut out);
        render_per_core(
            &mut out,
            ("kelp_volume_handoff_queue_depth", "gauge"),
            "Requests handed to a core by other cores, not yet answered.",
            &self.handoff_queue_depth,
        );
        render_per_core(
            &mut out,
            ("kelp_volume_volumes", "gauge"),
            "Volumes owned by each core.",
            &self.volumes,
        );
        render_per_core(
            &mut out,
            ("kelp_volume_uncached_reads_total", "counter"),
            "GETs whose record was not in the page cache, read through the ring.",
            &self.uncached_reads,
        );
        self.render_compaction(&mut out);
        self.render_repair(&mut out);
        out
    }

    fn render_repair(&self, out: &mut String) {
        let repair = &self.repair;
        let rows = [
            ("passes", "Replica repair passes run.", repair.passes),
            (
                "failed",
                "Replica repair passes that failed.",
                repair.failed,
            ),
            (
                "copied",
                "Needles a repair copied from another replica.",
                repair.copied,
            ),
            (
                "deleted",
                "Deletes a repair applied from another replica.",
                repair.deleted,
            ),
            (
                "skipped",
                "Keys a repair left alone as older than the delete horizon.",
                repair.skipped,
            ),
        ];
        for (what, help, value) in rows {
            let name = format!("kelp_volume_repair_{what}_total");
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }

    fn render_compaction(&self, out: &mut String) {
        let compaction = &self.compaction;
        let rows = [
            (
                "kelp_volume_compactions_running",
                "gauge",
                "Compactions (vacuum) running.",
                compaction.running,
            ),
            (
                "kelp_volume_compactions_committed_total",
                "counter",
                "Compactions committed.",
                compaction.committed,
            ),
            (
                "kelp_volume_compactions_failed_total",
                "counter",
                "Compactions failed or cancelled.",
                compaction.failed,
            ),
            (
                "kelp_volume_compaction_copied_bytes_total",
                "counter",
                "Record bytes compactions wrote to new files.",
                compaction.bytes_copied,
            ),
            (
                "kelp_volume_compaction_reclaimed_bytes_total",
                "counter",
                "Volume file bytes compactions gave back.",
                compaction.bytes_reclaimed,
            ),
            (
                "kelp_volume_compaction_commit_pause_max_seconds",
                "gauge",
                "Longest time a commit held a volume's writes.",
                0,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if name.ends_with("_max_seconds") {
                let seconds = compaction.commit_pause_us_max as f64 / 1e6;
                let _ = writeln!(out, "{name} {seconds}");
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        let name = "kelp_volume_compaction_commit_pause_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long commits held a volume's writes and deletes."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        render_histogram(out, name, "", &compaction.commit_pause);
    }

    fn render_counters(&self, out: &mut String) {
        let families = [
            ("kelp_volume_requests_total", "Requests answered.", 0),
            (
                "kelp_volume_request_bytes_total",
                "Request body bytes received.",
                1,
            ),
            (
                "kelp_volume_response_bytes_total",
                "Response body bytes sent.",
                2,
            ),
        ];
        for (name, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((method, status), counts) in &self.by_method_status {
                let value = [counts.requests, counts.bytes_in, counts.bytes_out][field];
                let _ = writeln!(
                    out,
                    "{name}{{method=\"{method}\",status=\"{status}\"}} {value}"
                );
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        let name = "kelp_volume_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Request latency, parse to response ready."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (method, histogram) in &self.latency_by_method {
            render_histogram(out, name, &format!("method=\"{method}\","), histogram);
        }
    }
}

/// One histogram's buckets (cumulative), sum and count; `labels` is empty or ends in a comma.
fn render_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let mut cumulative = 0;
    for (bound_us, count) in LATENCY_BUCKETS_US.iter().zip(histogram.buckets.iter()) {
        cumulative += count;
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}le=\"+Inf\"}} {}",
        histogram.count
    );
    let sum_s = histogram.sum_us as f64 / 1e6;
    let bare = labels.trim_end_matches(',');
    let braces = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("{{{text}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum_s}", braces(bare));
    let _ = writeln!(out, "{name}_count{} {}", braces(bare), histogram.count);
}

/// One answered request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestSample {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_us: u64,
}

/// One metric family with a value per core: `name{core="N"} value`.
fn render_per_core(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    by_core: &BTreeMap<usize, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (core, value) in by_core {
        let _ = writeln!(out, "{name}{{core=\"{core}\"}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(latency_us: u64) -> RequestSample {
        RequestSample {
            bytes_in: 10,
            bytes_out: 100,
            latency_us,
        }
    }

    // Proves merged snapshots add up and render as cumulative Prometheus buckets.
    #[test]
    fn merge_and_render() {
        let mut core0 = CoreMetrics::default();
        core0.record("GET", 200, sample(40));
        core0.record("GET", 404, sample(3_000));
        let mut core1 = CoreMetrics::default();
        core1.record("GET", 200, sample(20_000_000));
        core1.handoff_queue_depth.insert(1, 2);
        core1.uncached_reads.insert(1, 3);
        let mut merged = CoreMetrics::default();
        merged.merge(&core0);
        merged.merge(&core1);
        let ok = merged.by_method_status[&("GET", 200)];
        assert_eq!((ok.requests, ok.bytes_in, ok.bytes_out), (2, 20, 200));
        let text = merged.render_prometheus();
        assert!(text.contains("kelp_volume_requests_total{method=\"GET\",status=\"200\"} 2\n"));
        assert!(text.contains("kelp_volume_requests_total{method=\"GET\",status=\"404\"} 1\n"));
        assert!(text.contains(
            "kelp_volume_request_duration_seconds_bucket{method=\"GET\",le=\"0.00005\"} 1\n"
        ));
        assert!(text.contains(
            "kelp_volume_request_duration_seconds_bucket{method=\"GET\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "kelp_volume_request_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains("kelp_volume_handoff_queue_depth{core=\"1\"} 2\n"));
        assert!(text.contains("kelp_volume_uncached_reads_total{core=\"1\"} 3\n"));
    }
}
