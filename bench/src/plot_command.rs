//! `kelp plot`: charts from saved results. `latency` draws the percentile curves of every
//! phase of `kelp benchmark --json` reports on one chart (two servers side by side);
//! `ratios` draws a bar per line of a "LABEL<TAB>RATIO" table (what `compare.sh` writes).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::limits::PLOT_INPUT_BYTES_MAX;
use crate::plot::{self, Bar, Curve};

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub chart: Chart,
}

#[derive(clap::Subcommand, Debug)]
pub enum Chart {
    /// Percentile curves of every phase of each report, on one chart.
    Latency {
        /// The SVG file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Latency distribution")]
        title: String,
        /// LABEL=REPORT.json, a `kelp benchmark --json` report; its phases are drawn as
        /// "LABEL: phase".
        #[arg(required = true)]
        reports: Vec<String>,
    },
    /// One bar per "LABEL<TAB>RATIO" line of a table, with a line at the goal.
    Ratios {
        /// The SVG file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Throughput ratio")]
        title: String,
        /// Where the goal line is drawn.
        #[arg(long, default_value_t = 3.0)]
        goal: f64,
        /// The table: one "LABEL<TAB>RATIO" per line.
        #[arg(long)]
        table: PathBuf,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn run(args: PlotArgs) -> Result<(), BoxError> {
    match args.chart {
        Chart::Latency {
            out,
            title,
            reports,
        } => {
            let mut curves = Vec::new();
            for spec in &reports {
                let (label, path) = spec.split_once('=').ok_or_else(|| {
                    format!("kelp plot latency: {spec:?} is not LABEL=REPORT.json")
                })?;
                curves.extend(report_curves(label, Path::new(path))?);
            }
            plot::draw_latency(&out, &title, &curves)?;
        }
        Chart::Ratios {
            out,
            title,
            goal,
            table,
        } => {
            let bars = parse_ratio_table(&table, &read_bounded(&table)?)?;
            plot::draw_ratios(&out, &title, &bars, goal)?;
        }
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(PLOT_INPUT_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    if text.len() as u64 > PLOT_INPUT_BYTES_MAX {
        return Err(format!(
            "read {}: larger than {PLOT_INPUT_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The curve of each phase of a `kelp benchmark --json` report, labelled "LABEL: phase".
pub fn report_curves(label: &str, path: &Path) -> Result<Vec<Curve>, String> {
    let text = read_bounded(path)?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let phases = report["phases"].as_array().ok_or_else(|| {
        format!(
            "{}: no \"phases\" list (not a kelp benchmark --json report)",
            path.display()
        )
    })?;
    let mut curves = Vec::new();
    for phase in phases {
        let name = phase["name"].as_str().unwrap_or("phase");
        let points: Option<Vec<(f64, f64)>> =
            phase["latency"]["curve_ms"].as_array().map(|points| {
                points
                    .iter()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                    .collect()
            });
        let points = points.ok_or_else(|| {
            format!(
                "{}: phase {name:?} has no latency.curve_ms (report of an older kelp?)",
                path.display()
            )
        })?;
        if points.is_empty() {
            continue;
        }
        curves.push(Curve {
            label: format!("{label}: {name}"),
            points_ms: points,
        });
    }
    if curves.is_empty() {
        return Err(format!(
            "{}: no phase with completed requests",
            path.display()
        ));
    }
    Ok(curves)
}

/// "LABEL<TAB>RATIO" lines; blank lines are skipped, anything else is an error naming the line.
pub fn parse_ratio_table(path: &Path, text: &str) -> Result<Vec<Bar>, String> {
    let mut bars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "{}:{}: expected LABEL<TAB>RATIO, got {line:?}",
                path.display(),
                number + 1
            )
        };
        let (label, ratio) = line.rsplit_once('\t').ok_or_else(bad)?;
        let ratio: f64 = ratio
            .trim()
            .trim_end_matches('x')
            .parse()
            .map_err(|_| bad())?;
        bars.push(Bar {
            label: label.trim().to_string(),
            ratio,
        });
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_table_lines_and_errors() {
        // Proves the table format compare.sh writes is read back, and a bad line is named.
        let path = Path::new("ratios.tsv");
        let bars = parse_ratio_table(path, "1 KB c16 write\t3.05x\n\n4 KB c64 read\t4.2\n")
            .expect("parse");
        assert_eq!(
            bars,
            vec![
                Bar {
                    label: "1 KB c16 write".into(),
                    ratio: 3.05
                },
                Bar {
                    label: "4 KB c64 read".into(),
                    ratio: 4.2
                },
            ]
        );
        let error = parse_ratio_table(path, "ok\t1\nno ratio here\n").expect_err("bad line");
        assert!(error.contains("ratios.tsv:2"), "{error}");
    }

    #[test]
    fn report_without_curves_is_refused() {
        // Proves a report that is not kelp benchmark's is refused with the file named.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("r.json");
        std::fs::write(&path, r#"{"tool":"x"}"#).expect("write");
        let error = report_curves("Kelp", &path).expect_err("no phases");
        assert!(
            error.contains("r.json") && error.contains("phases"),
            "{error}"
        );
    }
}
