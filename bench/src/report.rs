//! Statistics of one benchmark phase and the report printed from them, laid out like
//! `weed benchmark`'s so the two can be read side by side.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits::{CURVE_POINTS_MAX, CURVE_TICKS_PER_HALF, LATENCY_US_MAX};

/// Percentiles printed, as `weed benchmark` prints them plus 99.9.
pub const PERCENTILES: [f64; 10] = [50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0];

/// Counters and latencies gathered by one worker, merged into the phase total.
pub struct PhaseStats {
    pub completed: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Latency of each completed request in microseconds (from its intended start when a
    /// target rate is set, so queueing behind a slow server counts).
    pub latency_us: Histogram<u64>,
}

impl Default for PhaseStats {
    fn default() -> Self {
        PhaseStats::new()
    }
}

impl PhaseStats {
    pub fn new() -> PhaseStats {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
            .expect("static histogram bounds are valid");
        PhaseStats {
            completed: 0,
            failed: 0,
            bytes: 0,
            latency_us,
        }
    }

    /// Count one completed request of `bytes` that took `latency_us`.
    pub fn record_success(&mut self, bytes: u64, latency_us: u64) {
        self.completed += 1;
        self.bytes += bytes;
        self.latency_us
            .saturating_record(latency_us.clamp(1, LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: &PhaseStats) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds merge");
    }
}

/// min/avg/max/std and percentiles in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub std_ms: f64,
    /// (percent, milliseconds) for each of `PERCENTILES`.
    pub percentiles_ms: Vec<(f64, f64)>,
    /// The whole percentile curve, (percent, milliseconds) with rising percents, denser
    /// towards 100 (HdrHistogram's quantile iteration): what `--plot` and `kelp plot` draw.
    pub curve_ms: Vec<(f64, f64)>,
}

pub fn summarize(latency_us: &Histogram<u64>) -> LatencySummary {
    let count = latency_us.len();
    let ms = |us: f64| us / 1000.0;
    if count == 0 {
        return LatencySummary {
            count,
            min_ms: 0.0,
            avg_ms: 0.0,
            max_ms: 0.0,
            std_ms: 0.0,
            percentiles_ms: PERCENTILES.iter().map(|p| (*p, 0.0)).collect(),
            curve_ms: Vec::new(),
        };
    }
    let percentiles_ms = PERCENTILES
        .iter()
        .map(|percent| {
            // percent / 100 is inexact (99.9 / 100 > 0.999), which would round the rank up one
            // sample; a nudge below keeps ranks exact for any count under 10^9.
            let quantile = (percent / 100.0 - 1e-12).max(0.0);
            let value = latency_us.value_at_quantile(quantile);
            (*percent, ms(value as f64))
        })
        .collect();
    LatencySummary {
        count,
        min_ms: ms(latency_us.min() as f64),
        avg_ms: ms(latency_us.mean()),
        max_ms: ms(latency_us.max() as f64),
        std_ms: ms(latency_us.stdev()),
        percentiles_ms,
        curve_ms: percentile_curve(latency_us),
    }
}

/// The percentile curve of `latency_us`: (percent, milliseconds) points, `CURVE_TICKS_PER_HALF`
/// of them each time the remaining tail halves, at most `CURVE_POINTS_MAX`.
fn percentile_curve(latency_us: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for step in latency_us.iter_quantiles(CURVE_TICKS_PER_HALF) {
        if points.len() == CURVE_POINTS_MAX {
            break;
        }
        let percent = step.quantile_iterated_to() * 100.0;
        let ms = step.value_iterated_to() as f64 / 1000.0;
        assert!(points.last().is_none_or(|last| last.0 <= percent));
        points.push((percent, ms));
    }
    points
}

/// Everything printed for one phase; also the `--json` record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub completed: u64,
    pub failed: u64,
    pub bytes: u64,
    pub requests_per_second: f64,
    pub kbytes_per_second: f64,
    pub latency: LatencySummary,
    /// The `--rate` the latencies are corrected against, if any.
    pub target_rate_per_second: Option<f64>,
    /// user + system CPU time of the benchmark process during the phase.
    pub client_cpu_seconds: f64,
    /// Why the phase ended early, if it did.
    pub aborted: Option<String>,
}

impl PhaseReport {
    pub fn new(name: &str, concurrency: usize, seconds: f64, stats: &PhaseStats) -> PhaseReport {
        assert!(seconds >= 0.0);
        let per_second = |value: f64| if seconds > 0.0 { value / seconds } else { 0.0 };
        PhaseReport {
            name: name.to_string(),
            concurrency,
            seconds,
            completed: stats.completed,
            failed: stats.failed,
            bytes: stats.bytes,
            requests_per_second: per_second(stats.completed as f64),
            kbytes_per_second: per_second(stats.bytes as f64 / 1024.0),
            latency: summarize(&stats.latency_us),
            target_rate_per_second: None,
            client_cpu_seconds: 0.0,
            aborted: None,
        }
    }

    /// Client CPU per completed request, in microseconds.
    pub fn client_cpu_us_per_request(&self) -> f64 {
        if self.completed == 0 {
            return 0.0;
        }
        self.client_cpu_seconds * 1e6 / self.completed as f64
    }

    /// The text report, in `weed benchmark`'s layout.
    pub fn format(&self) -> String {
        let mut out = String::new();
        let summary = &self.latency;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\n------------ {} ----------\n\
             Concurrency Level:      {}\n\
             Time taken for tests:   {:.3} seconds\n\
             Completed requests:      {}\n\
             Failed requests:        {}\n\
             Total transferred:      {} bytes\n\
             Requests per second:    {:.2} [#/sec]\n\
             Transfer rate:          {:.2} [Kbytes/sec]\n",
            self.name,
            self.concurrency,
            self.seconds,
            self.completed,
            self.failed,
            self.bytes,
            self.requests_per_second,
            self.kbytes_per_second,
        );
        let _ = write!(
            out,
            "\nConnection Times (ms)\n\
             \x20             min      avg        max      std\n\
             Total:        {:.2}      {:.2}       {:.2}      {:.2}\n",
            summary.min_ms, summary.avg_ms, summary.max_ms, summary.std_ms,
        );
        out.push_str("\nPercentage of the requests served within a certain time (ms)\n");
        for (percent, ms) in &summary.percentiles_ms {
            let _ = writeln!(out, "  {:>5}%    {ms:6.2} ms", format_percent(*percent));
        }
        if let Some(rate) = self.target_rate_per_second {
            let _ = writeln!(
                out,
                "(latencies measured from each request's scheduled start at {rate:.0} req/s: \
                 corrected for coordinated omission)"
            );
        }
        let _ = writeln!(
            out,
            "\nClient CPU:             {:.3} s user+sys, {:.2} us/request",
            self.client_cpu_seconds,
            self.client_cpu_us_per_request()
        );
        if let Some(reason) = &self.aborted {
            let _ = writeln!(out, "ABORTED (partial report): {reason}");
        }
        out
    }
}

/// "50", "99.9", "100": no trailing ".0".
fn format_percent(percent: f64) -> String {
    if percent.fract() == 0.0 {
        format!("{percent:.0}")
    } else {
        format!("{percent}")
    }
}

/// The `--json` document: every phase of the run.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub tool: &'static str,
    pub phases: Vec<PhaseReport>,
    pub aborted: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with(latencies_us: impl Iterator<Item = u64>) -> PhaseStats {
        let mut stats = PhaseStats::new();
        for latency in latencies_us {
            stats.record_success(1000, latency);
        }
        stats
    }

    #[test]
    fn percentiles_of_a_uniform_histogram() {
        // Proves the percentiles, min, max and mean come out right for a known distribution:
        // 1..=1000 us, once each (values below 2048 are stored exactly at 3 digits).
        let stats = stats_with(1..=1000);
        let summary = summarize(&stats.latency_us);
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.min_ms, 0.001);
        assert_eq!(summary.max_ms, 1.0);
        assert!((summary.avg_ms - 0.5005).abs() < 1e-9, "{}", summary.avg_ms);
        // Population standard deviation of 1..=1000 is sqrt((1000^2 - 1) / 12) = 288.67.
        assert!(
            (summary.std_ms - 0.28867).abs() < 1e-4,
            "{}",
            summary.std_ms
        );
        let expected = [500, 660, 750, 800, 900, 950, 980, 990, 999, 1000];
        for ((percent, ms), expected_us) in summary.percentiles_ms.iter().zip(expected) {
            assert_eq!(*ms, expected_us as f64 / 1000.0, "p{percent}");
        }
    }

    #[test]
    fn percentile_curve_rises_and_ends_at_the_maximum() {
        // Proves the plotted curve is the histogram's: percents and latencies never fall, it
        // ends at 100 % with the largest latency, and its median is the printed p50.
        let stats = stats_with(1..=10_000);
        let summary = summarize(&stats.latency_us);
        let curve = &summary.curve_ms;
        assert!(
            curve.len() > 20 && curve.len() <= CURVE_POINTS_MAX,
            "{}",
            curve.len()
        );
        for pair in curve.windows(2) {
            assert!(pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1, "{pair:?}");
        }
        assert_eq!(curve.last().copied(), Some((100.0, summary.max_ms)));
        let median = curve
            .iter()
            .find(|(percent, _)| *percent >= 50.0)
            .expect("p50");
        assert!(
            (median.1 - summary.percentiles_ms[0].1).abs() < 0.01,
            "{median:?}"
        );
    }

    #[test]
    fn merge_adds_counts_and_latencies() {
        // Proves merging two workers' stats equals recording everything in one.
        let mut left = stats_with(1..=10);
        left.failed = 2;
        let mut right = stats_with(11..=20);
        right.failed = 3;
        left.merge(&right);
        assert_eq!(left.completed, 20);
        assert_eq!(left.failed, 5);
        assert_eq!(left.bytes, 20_000);
        assert_eq!(left.latency_us.len(), 20);
        assert_eq!(left.latency_us.max(), 20);
        assert_eq!(left.latency_us.min(), 1);
    }

    #[test]
    fn report_text_has_weed_layout_and_numbers() {
        // Proves the text report carries the numbers a reader compares with weed benchmark's:
        // request rate, transfer rate, latency table and percentile lines.
        let stats = stats_with((1..=1000).map(|us| us * 2));
        let mut report = PhaseReport::new("Writing Benchmark", 16, 2.0, &stats);
        report.client_cpu_seconds = 0.5;
        let text = report.format();
        assert!(
            text.contains("------------ Writing Benchmark ----------"),
            "{text}"
        );
        assert!(text.contains("Concurrency Level:      16\n"), "{text}");
        assert!(
            text.contains("Time taken for tests:   2.000 seconds\n"),
            "{text}"
        );
        assert!(text.contains("Completed requests:      1000\n"), "{text}");
        assert!(text.contains("Failed requests:        0\n"), "{text}");
        assert!(
            text.contains("Total transferred:      1000000 bytes\n"),
            "{text}"
        );
        assert!(
            text.contains("Requests per second:    500.00 [#/sec]\n"),
            "{text}"
        );
        assert!(
            text.contains("Transfer rate:          488.28 [Kbytes/sec]\n"),
            "{text}"
        );
        assert!(
            text.contains("Total:        0.00      1.00       2.00      0.58\n"),
            "{text}"
        );
        assert!(text.contains("     50%      1.00 ms\n"), "{text}");
        assert!(text.contains("   99.9%      2.00 ms\n"), "{text}");
        assert!(text.contains("    100%      2.00 ms\n"), "{text}");
        assert!(text.contains("500.00 us/request"), "{text}");
        assert!(!text.contains("ABORTED"), "{text}");
    }

    #[test]
    fn empty_and_aborted_reports() {
        // Proves a phase with no completed request reports zeros (no division by zero) and that
        // an aborted phase says so with its reason.
        let stats = PhaseStats::new();
        let mut report = PhaseReport::new("Randomly Reading Benchmark", 4, 0.0, &stats);
        report.aborted = Some("server 127.0.0.1:1 went away".to_string());
        assert_eq!(report.requests_per_second, 0.0);
        assert_eq!(report.client_cpu_us_per_request(), 0.0);
        let text = report.format();
        assert!(text.contains("Completed requests:      0\n"), "{text}");
        assert!(
            text.contains("ABORTED (partial report): server 127.0.0.1:1 went away"),
            "{text}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["completed"], 0);
        assert_eq!(json["latency"]["percentiles_ms"][8][0], 99.9);
    }
}
