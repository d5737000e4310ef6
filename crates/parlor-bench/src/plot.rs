//! `parlor bench --plot DIR`: SVG charts of a run's reports (or of a saved `--json` report,
//! `--from FILE`), drawn with plotters' SVG backend.
//!
//! Text is written as SVG `<text>` in a generic `sans-serif` family and laid out with plotters'
//! built-in estimate (its `ttf` feature is off): no font files, no fontconfig, nothing from the
//! system, so the charts are the same on a fresh Debian and in CI; the viewer's browser picks
//! the face.
//!
//! Charts, each written only when the reports have its data:
//! - `w2.svg` (and `w5.svg`): delivered rate and p99 against offered rate, one line per target;
//! - `w1-login-latency.svg`: the login latency distribution (by percentile) per target;
//! - `w4-sessions-back.svg`, `w6-sessions-back.svg`: share of the cut sessions back over time;
//! - `w7-bytes-per-member.svg`: W7 runs at several sizes, presence bytes per member by mode.
//!
//! A report saved before it carried curves (`series`) still gives the W1 and W4 charts, from its
//! p50 / p99 / max points.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::report::Report;
use crate::{w1, w4};

/// One line of a chart.
#[derive(Debug, Clone)]
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

/// How an axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log,
}

/// One panel: a title, axis descriptions and scales, lines.
#[derive(Debug, Clone)]
struct Panel {
    title: String,
    x_desc: String,
    y_desc: String,
    x_scale: Scale,
    y_scale: Scale,
    lines: Vec<Line>,
}

const SIZE_ONE: (u32, u32) = (720, 440);
const SIZE_TWO: (u32, u32) = (1200, 440);

/// Write every chart the reports have data for into `dir` (created if missing); returns the
/// files written.
pub fn write_all(dir: &Path, reports: &[Report]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for w in ["w2", "w5"] {
        let (delivered, p99) = fan_out_panels(w, reports);
        if !delivered.lines.is_empty() {
            let path = dir.join(format!("{w}.svg"));
            draw(&path, SIZE_TWO, &[delivered, p99])?;
            written.push(path);
        }
    }
    let login = login_panel(reports);
    if !login.lines.is_empty() {
        let path = dir.join("w1-login-latency.svg");
        draw(&path, SIZE_ONE, &[login])?;
        written.push(path);
    }
    let bytes = w7_bytes_panel(reports);
    if !bytes.lines.is_empty() {
        let path = dir.join("w7-bytes-per-member.svg");
        draw(&path, SIZE_ONE, &[bytes])?;
        written.push(path);
    }
    for w in ["w4", "w6"] {
        let back = back_panel(w, reports);
        if !back.lines.is_empty() {
            let path = dir.join(format!("{w}-sessions-back.svg"));
            draw(&path, SIZE_ONE, &[back])?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Read a saved `--json` report (an array of reports).
pub fn load(path: &Path) -> anyhow::Result<Vec<Report>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a `parlor bench --json` report", path.display()))
}

fn fan_out_panels(workload: &str, reports: &[Report]) -> (Panel, Panel) {
    let name = workload.to_uppercase();
    let mut delivered = Panel {
        title: format!("{name} fan-out: deliveries/s by offered rate"),
        x_desc: "offered msg/s".into(),
        y_desc: "deliveries/s".into(),
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        lines: Vec::new(),
    };
    let mut p99 = Panel { title: format!("{name} fan-out: p99 latency"), y_desc: "p99 ms".into(), ..delivered.clone() };
    for r in reports.iter().filter(|r| r.workload == workload && !r.steps.is_empty()) {
        let label = format!("{} ({})", r.target, r.sessions);
        let at = |f: fn(&crate::report::Step) -> f64| r.steps.iter().map(|s| (s.offered_msgs_per_s, f(s))).collect();
        delivered.lines.push(Line { label: label.clone(), points: at(|s| s.delivered_per_s) });
        p99.lines.push(Line { label, points: at(|s| s.p99_ms) });
    }
    (delivered, p99)
}

fn login_panel(reports: &[Report]) -> Panel {
    let mut p = Panel {
        title: "W1 login storm: login latency distribution".into(),
        x_desc: "percentile".into(),
        y_desc: "login latency ms".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        lines: Vec::new(),
    };
    for r in reports.iter().filter(|r| r.workload == "w1") {
        let points = match r.get_series(w1::LATENCY_SERIES) {
            Some(s) => s.points.clone(),
            None => [(50.0, "login latency p50"), (99.0, "login latency p99"), (100.0, "login latency max")]
                .iter()
                .filter_map(|(p, m)| r.get(m).map(|v| (*p, v)))
                .collect(),
        };
        if !points.is_empty() {
            p.lines.push(Line { label: format!("{} ({})", r.target, r.sessions), points });
        }
    }
    p
}

/// W7 at several room sizes: bytes each member received for presence, one line per mode (a
/// room above `--full-presence-up-to` is large, §9.10; `--server-arg=--full-presence-up-to=0`
/// keeps full presence at every size).
fn w7_bytes_panel(reports: &[Report]) -> Panel {
    let mut p = Panel {
        title: "W7 big room: presence bytes received per member".into(),
        x_desc: "members in the room".into(),
        y_desc: "KiB per member".into(),
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        lines: Vec::new(),
    };
    for (label, large) in [("full presence at every size", false), ("large rooms above 500 (default)", true)] {
        let mut points: Vec<(f64, f64)> = reports
            .iter()
            .filter(|r| {
                r.workload == "w7" && r.get("members that saw the room large").is_some_and(|m| (m > 0.0) == large)
            })
            .filter_map(|r| Some((r.sessions as f64, r.get("bytes received per member")?)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            p.lines.push(Line { label: label.into(), points });
        }
    }
    p
}

fn back_panel(workload: &str, reports: &[Report]) -> Panel {
    let mut p = Panel {
        title: format!("{} reconnect storm: sessions back after the cut", workload.to_uppercase()),
        x_desc: "seconds since the connection was lost".into(),
        y_desc: "% of the cut sessions back".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        lines: Vec::new(),
    };
    for r in reports.iter().filter(|r| r.workload == workload) {
        let points: Vec<(f64, f64)> = match r.get_series(w4::BACK_SERIES) {
            Some(s) => {
                let total = s.points.last().map(|p| p.1).unwrap_or(0.0).max(1.0);
                s.points.iter().map(|&(t, n)| (t, 100.0 * n / total)).collect()
            }
            None => [(50.0, "back after p50"), (99.0, "back after p99"), (100.0, "time until all back")]
                .iter()
                .filter_map(|(share, m)| r.get(m).map(|t| (t, *share)))
                .collect(),
        };
        if !points.is_empty() {
            let mut points = points;
            if points[0].1 > 0.0 {
                points.insert(0, (0.0, 0.0));
            }
            p.lines.push(Line { label: format!("{} ({})", r.target, r.sessions), points });
        }
    }
    p
}

/// The same colour for the same target on every chart.
fn colour(label: &str, i: usize) -> RGBColor {
    let target = label.split(' ').next().unwrap_or("");
    match target {
        "parlor" | "parlor+redis," => RGBColor(0x1f, 0x77, 0xb4),
        "socketio" => RGBColor(0xff, 0x7f, 0x0e),
        "socketioxide" => RGBColor(0xd6, 0x27, 0x28),
        "bare" => RGBColor(0x2c, 0xa0, 0x2c),
        _ => {
            let c = Palette99::pick(i + 4).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

fn draw(path: &Path, size: (u32, u32), panels: &[Panel]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let areas = root.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let (xs, ys) = bounds(panel);
        match (panel.x_scale, panel.y_scale) {
            (Scale::Log, Scale::Log) => draw_panel(area, panel, xs.log_scale(), ys.log_scale())?,
            (Scale::Linear, Scale::Log) => draw_panel(area, panel, xs, ys.log_scale())?,
            (Scale::Log, Scale::Linear) => draw_panel(area, panel, xs.log_scale(), ys)?,
            (Scale::Linear, Scale::Linear) => draw_panel(area, panel, xs, ys)?,
        }
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The data's ranges with a margin; only positive values on a log axis.
fn bounds(panel: &Panel) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let range = |scale: Scale, vals: Vec<f64>| {
        let vals: Vec<f64> =
            vals.into_iter().filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() || !hi.is_finite() {
            return if scale == Scale::Log { 1.0..10.0 } else { 0.0..1.0 };
        }
        match scale {
            Scale::Log => (lo / 1.5)..(hi * 1.5).max(lo * 2.0),
            Scale::Linear => {
                let lo = lo.min(0.0);
                if hi > lo {
                    lo..hi + (hi - lo) * 0.05
                } else {
                    lo..lo + 1.0
                }
            }
        }
    };
    let pts = || panel.lines.iter().flat_map(|l| l.points.iter());
    (range(panel.x_scale, pts().map(|p| p.0).collect()), range(panel.y_scale, pts().map(|p| p.1).collect()))
}

fn draw_panel<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    x: X,
    y: Y,
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_desc)
        .y_desc(&panel.y_desc)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .draw()
        .map_err(plot_err)?;
    for (i, line) in panel.lines.iter().enumerate() {
        let c = colour(&line.label, i);
        let pts: Vec<(f64, f64)> = line.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        if pts.len() <= 40 {
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled()))).map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// An axis label: 1 200 000 → "1.2M", 3 500 → "3.5k", 0.25 → "0.25".
fn short(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.2}"))
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{cumulative, distribution, Step};

    fn sample() -> Vec<Report> {
        let mut out = Vec::new();
        for (t, k) in [("parlor", 1.0), ("socketioxide", 0.5)] {
            let mut w1 = Report::new("w1", t, 100);
            let lats: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
            w1.series(w1::LATENCY_SERIES, "%", "ms", distribution(&lats, 1e-3));
            out.push(w1);
            let mut w2 = Report::new("w2", t, 200);
            for rate in [20.0, 50.0, 100.0] {
                w2.steps.push(Step {
                    offered_msgs_per_s: rate,
                    delivered_per_s: rate * 199.0 * k,
                    p99_ms: 30.0 / k,
                    ..Step::default()
                });
            }
            out.push(w2);
        }
        let mut w4 = Report::new("w4", "parlor", 300);
        w4.series(w4::BACK_SERIES, "s", "sessions", cumulative(&(0..300).map(|i| i * 10).collect::<Vec<u64>>(), 1e-3));
        out.push(w4);
        // An old report: no series, only the headline metrics.
        let mut old = Report::new("w4", "parlor-old", 300);
        old.metric("back after p50", 1.0, "s");
        old.metric("back after p99", 2.0, "s");
        old.metric("time until all back", 2.5, "s");
        out.push(old);
        out
    }

    /// Every chart is written and is well-formed SVG with the targets' names in it.
    #[test]
    fn charts_are_written_as_valid_svg() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_all(dir.path(), &sample()).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["w2.svg", "w1-login-latency.svg", "w4-sessions-back.svg"]);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            let paths = doc.descendants().filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path")).count();
            assert!(paths > 0, "{}: no lines", f.display());
        }
        let w2 = std::fs::read_to_string(dir.path().join("w2.svg")).unwrap();
        assert!(w2.contains("socketioxide (200)") && w2.contains("parlor (200)"));
        let w4 = std::fs::read_to_string(dir.path().join("w4-sessions-back.svg")).unwrap();
        assert!(w4.contains("parlor-old (300)"));
    }

    #[test]
    fn no_data_no_chart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_all(dir.path(), &[Report::new("w3", "parlor", 5)]).unwrap().is_empty());
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1_300_000.0), "1.3M");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(320.0), "320");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(2.0), "2");
    }
}
