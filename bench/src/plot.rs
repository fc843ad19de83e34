//! Charts of benchmark results, as SVG files: the latency distribution of phases (percentile
//! curves, `kelp benchmark --plot` and `kelp plot latency`) and the throughput ratios of a
//! side-by-side run (`kelp plot ratios`, drawn by `bench/compare.sh --plots`).

use std::fmt;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordu32};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::limits::{CHART_BARS_MAX, CHART_CURVES_MAX};

/// Chart size in pixels.
const CHART_WIDTH_PX: u32 = 960;
const CHART_HEIGHT_PX: u32 = 540;
/// The highest percentile the x axis shows: 99.999 %, five nines (x = 5 on the axis).
const NINES_MAX: f64 = 5.0;
/// Line colours, in order (Tableau 10: told apart on white and by most colour-blind readers).
const CURVE_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Height of one bar's row in a ratio chart, in pixels.
const BAR_HEIGHT_PX: u32 = 28;

/// A chart that could not be drawn or written, with the file it was for.
#[derive(Debug)]
pub struct PlotError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "draw chart {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for PlotError {}

/// One line of a latency chart: (percent, milliseconds) points with rising percents.
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    pub points_ms: Vec<(f64, f64)>,
}

/// One bar of a ratio chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub ratio: f64,
}

/// The x position of `percent`: its number of nines, -log10(1 - percent/100), so 90 % is 1,
/// 99 % is 2 and 99.9 % is 3; 100 % is drawn at the axis end.
pub fn nines(percent: f64) -> f64 {
    assert!((0.0..=100.0).contains(&percent), "percent {percent}");
    let tail = 1.0 - percent / 100.0;
    if tail <= 10f64.powf(-NINES_MAX) {
        return NINES_MAX;
    }
    -tail.log10()
}

/// The axis label at `nines`: "0%", "90%", "99%", "99.9%"...
fn nines_label(nines: f64) -> String {
    let whole = nines.round();
    if (nines - whole).abs() > 1e-9 {
        return String::new();
    }
    match whole as u32 {
        0 => "0%".to_string(),
        count => format!("{}%", 100.0 - 100.0 * 10f64.powi(-(count as i32))),
    }
}

fn failure(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError {
        path: path.to_path_buf(),
        reason,
    }
}

/// The latency range of `curves` for a log axis: [min / 1.25, max * 1.25], positive.
fn latency_range_ms(curves: &[Curve]) -> (f64, f64) {
    let values = curves.iter().flat_map(|c| c.points_ms.iter().map(|p| p.1));
    let positive = values.filter(|ms| *ms > 0.0);
    let (low, high) = positive.fold((f64::MAX, 0.0f64), |(lo, hi), ms| (lo.min(ms), hi.max(ms)));
    if high == 0.0 {
        return (0.001, 1.0);
    }
    (low / 1.25, high * 1.25)
}

/// Draws `curves` on one chart: percentile on the x axis (by nines), latency in ms on a log
/// y axis, one colour per curve and a legend.
pub fn draw_latency(path: &Path, title: &str, curves: &[Curve]) -> Result<(), PlotError> {
    let fail = failure(path);
    if curves.is_empty() || curves.len() > CHART_CURVES_MAX {
        return Err(fail(format!(
            "{} curves; give 1 to {CHART_CURVES_MAX}",
            curves.len()
        )));
    }
    let root = SVGBackend::new(path, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let (low_ms, high_ms) = latency_range_ms(curves);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..NINES_MAX, (low_ms..high_ms).log_scale())
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| nines_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    for (index, curve) in curves.iter().enumerate() {
        let color = CURVE_COLORS[index % CURVE_COLORS.len()];
        let points = curve.points_ms.iter().filter(|p| p.1 > 0.0);
        let line = points.map(|(percent, ms)| (nines(*percent), *ms));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| fail(e.to_string()))?
            .label(curve.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// Draws one horizontal bar per ratio with its value beside it, and a dashed line at `goal`
/// (bars that reach it are green, the others orange).
pub fn draw_ratios(path: &Path, title: &str, bars: &[Bar], goal: f64) -> Result<(), PlotError> {
    let fail = failure(path);
    if bars.is_empty() || bars.len() > CHART_BARS_MAX {
        return Err(fail(format!(
            "{} bars; give 1 to {CHART_BARS_MAX}",
            bars.len()
        )));
    }
    if let Some(bad) = bars
        .iter()
        .find(|b| !(b.ratio.is_finite() && b.ratio >= 0.0))
    {
        return Err(fail(format!(
            "bar {:?}: ratio {} is not >= 0",
            bad.label, bad.ratio
        )));
    }
    // The y axis counts upwards: reversed, the first bar is the top row.
    let bars: Vec<Bar> = bars.iter().rev().cloned().collect();
    let bars = &bars[..];
    let highest = bars.iter().map(|b| b.ratio).fold(goal, f64::max) * 1.15;
    let height_px = (BAR_HEIGHT_PX * bars.len() as u32 + 120).max(240);
    let root = SVGBackend::new(path, (CHART_WIDTH_PX, height_px)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let last = bars.len() as u32 - 1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..highest, (0u32..last).into_segmented())
        .map_err(|e| fail(e.to_string()))?;
    let bar_label = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(index) => bars.get(*index as usize).map(|b| b.label.clone()),
        _ => None,
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|value| bar_label(value).unwrap_or_default())
        .y_label_style(("sans-serif", 14))
        .x_desc("ratio")
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    draw_bars(&mut chart, bars, goal).map_err(&fail)?;
    root.present().map_err(|e| fail(e.to_string()))
}

type BarChart<'a> =
    ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordu32>>>;

fn draw_bars(chart: &mut BarChart<'_>, bars: &[Bar], goal: f64) -> Result<(), String> {
    let reached = RGBColor(46, 139, 87);
    let short = RGBColor(230, 140, 30);
    let value_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (index, bar) in bars.iter().enumerate() {
        let color = if bar.ratio >= goal { reached } else { short };
        let index = index as u32;
        let corners = [
            (0.0, SegmentValue::Exact(index)),
            (bar.ratio, SegmentValue::Exact(index + 1)),
        ];
        let mut rectangle = Rectangle::new(corners, color.filled());
        rectangle.set_margin(4, 4, 0, 0);
        chart
            .draw_series(std::iter::once(rectangle))
            .map_err(|e| e.to_string())?;
        let at = (bar.ratio, SegmentValue::CenterOf(index));
        let text = Text::new(format!(" {:.2}x", bar.ratio), at, value_style.clone());
        chart
            .draw_series(std::iter::once(text))
            .map_err(|e| e.to_string())?;
    }
    let end = bars.len() as u32;
    let line = [
        (goal, SegmentValue::Exact(0)),
        (goal, SegmentValue::Exact(end)),
    ];
    chart
        .draw_series(DashedLineSeries::new(line, 6, 4, RED.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_place_percentiles_on_the_axis() {
        // Proves the x axis: 0 % at 0, 90 % at 1, 99 % at 2, 99.9 % at 3, 100 % at the end,
        // and the tick labels read as percentiles.
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), NINES_MAX);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(2.5), "");
    }

    #[test]
    fn latency_chart_names_every_curve() {
        // Proves an SVG is written with one legend entry per curve, and that an empty chart is
        // refused with the file named.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latency.svg");
        let curve = |label: &str, scale: f64| Curve {
            label: label.to_string(),
            points_ms: vec![
                (0.0, scale),
                (50.0, 2.0 * scale),
                (99.0, 9.0 * scale),
                (100.0, 20.0 * scale),
            ],
        };
        draw_latency(
            &path,
            "t",
            &[curve("Kelp: read", 0.1), curve("SeaweedFS: read", 0.4)],
        )
        .expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("Kelp: read") && svg.contains("SeaweedFS: read"));
        assert!(svg.contains("99.9%"), "x axis labels");
        let error = draw_latency(&path, "t", &[]).expect_err("no curves");
        assert!(error.to_string().contains("latency.svg"), "{error}");
    }

    #[test]
    fn ratio_chart_labels_bars_and_refuses_bad_ratios() {
        // Proves each bar's label and value are in the SVG, and a negative or NaN ratio is
        // refused naming the bar.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ratios.svg");
        let bars = [
            Bar {
                label: "1 KB c16 write".into(),
                ratio: 3.2,
            },
            Bar {
                label: "64 KB c64 write".into(),
                ratio: 1.81,
            },
        ];
        draw_ratios(&path, "Kelp / SeaweedFS", &bars, 3.0).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.contains("1 KB c16 write") && svg.contains("64 KB c64 write"));
        assert!(svg.contains("3.20x") && svg.contains("1.81x"));
        let bad = [Bar {
            label: "x".into(),
            ratio: f64::NAN,
        }];
        let error = draw_ratios(&path, "t", &bad, 3.0).expect_err("NaN");
        assert!(error.to_string().contains("bar \"x\""), "{error}");
    }
}
