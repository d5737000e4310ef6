//! Results: one [`Report`] per workload and target, printed as tables or JSON.

use serde::{Deserialize, Serialize};

/// One measured number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    /// What it is.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
}

/// One step of the fan-out workload (W2).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Step {
    /// Messages per second the sender offered.
    pub offered_msgs_per_s: f64,
    /// Messages actually sent.
    pub sent: u64,
    /// Deliveries expected (sent × receivers).
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Deliveries per second (delivered / (last delivery − first send)).
    pub delivered_per_s: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th.
    pub p95_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Server CPU seconds per million deliveries.
    pub cpu_s_per_m: f64,
    /// Broadcasts the server refused (rate limits).
    pub refused: u64,
    /// The server's own fan-out latency (frame read to the last local recipient's write, from
    /// its `parlor_fanout_seconds` histogram), median, ms; None for a peer.
    #[serde(default)]
    pub srv_p50_ms: Option<f64>,
    /// Its 99th percentile.
    #[serde(default)]
    pub srv_p99_ms: Option<f64>,
}

/// A curve for the charts (`--plot`): points `(x, y)`, e.g. W1's login latency by percentile,
/// W4's sessions back by seconds since the cut.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Series {
    /// What it is (`login latency by percentile`, `sessions back`).
    pub name: String,
    /// Unit of x.
    pub x_unit: String,
    /// Unit of y.
    pub y_unit: String,
    /// The points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// The result of one workload against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `w1` … `w5`.
    pub workload: String,
    /// `parlor`, `socketio`, `bare`; W5: `parlor+redis, 1 node` / `parlor+redis, 2 nodes`.
    pub target: String,
    /// Sessions asked for.
    pub sessions: usize,
    /// True when every count is right.
    pub ok: bool,
    /// What was wrong.
    pub problems: Vec<String>,
    /// Numbers.
    pub metrics: Vec<Metric>,
    /// W2 steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Curves for the charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
}

impl Report {
    /// An empty report.
    pub fn new(workload: &str, target: &str, sessions: usize) -> Report {
        Report {
            workload: workload.into(),
            target: target.into(),
            sessions,
            ok: true,
            problems: Vec::new(),
            metrics: Vec::new(),
            steps: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Add a curve.
    pub fn series(&mut self, name: &str, x_unit: &str, y_unit: &str, points: Vec<(f64, f64)>) {
        self.series.push(Series { name: name.into(), x_unit: x_unit.into(), y_unit: y_unit.into(), points });
    }

    /// A curve by name.
    pub fn get_series(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }

    /// Add a number.
    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric { name: name.into(), value, unit: unit.into() });
    }

    /// Record a failed check.
    pub fn problem(&mut self, p: impl Into<String>) {
        self.ok = false;
        self.problems.push(p.into());
    }

    /// A metric's value by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }
}

/// Format a number for a table.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if (v == v.trunc() && v.abs() < 1e12) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The human-readable tables.
pub fn print_tables(out: &mut dyn std::io::Write, reports: &[Report]) -> std::io::Result<()> {
    for r in reports {
        writeln!(out)?;
        writeln!(
            out,
            "== {} against {} ({} sessions): {}",
            r.workload,
            r.target,
            r.sessions,
            if r.ok { "OK" } else { "FAILED" }
        )?;
        let w = r.metrics.iter().map(|m| m.name.len()).max().unwrap_or(10);
        for m in &r.metrics {
            writeln!(out, "  {:<w$}  {:>14} {}", m.name, num(m.value), m.unit)?;
        }
        if !r.steps.is_empty() {
            // The server's own fan-out latency beside the end-to-end one, when it has it.
            let srv = r.steps.iter().any(|s| s.srv_p50_ms.is_some());
            let srv_cell = |v: Option<f64>| {
                if srv {
                    format!(" {:>9}", v.map(num).unwrap_or_else(|| "-".into()))
                } else {
                    String::new()
                }
            };
            let srv_head = |h: &str| if srv { format!(" {h:>9}") } else { String::new() };
            writeln!(
                out,
                "  {:>9} {:>7} {:>11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>7}{}{}",
                "offered/s",
                "sent",
                "delivered",
                "deliv/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "cpu s/M",
                "refused",
                srv_head("srv p50"),
                srv_head("srv p99")
            )?;
            for s in &r.steps {
                writeln!(
                    out,
                    "  {:>9} {:>7} {:>11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>7}{}{}",
                    num(s.offered_msgs_per_s),
                    s.sent,
                    s.delivered,
                    num(s.delivered_per_s),
                    num(s.p50_ms),
                    num(s.p95_ms),
                    num(s.p99_ms),
                    num(s.max_ms),
                    num(s.cpu_s_per_m),
                    s.refused,
                    srv_cell(s.srv_p50_ms),
                    srv_cell(s.srv_p99_ms)
                )?;
            }
        }
        for p in &r.problems {
            writeln!(out, "  PROBLEM: {p}")?;
        }
    }
    print_comparison(out, reports)
}

/// The headline numbers of each workload, side by side, with the ratio to Parlor.
const HEADLINES: &[(&str, &str)] = &[
    ("w1", "logins/s"),
    ("w1", "time to all logged in"),
    ("w2", "peak deliveries/s"),
    ("w2", "p99 at peak"),
    ("w2", "server CPU per M deliveries at peak"),
    ("w3", "server RSS per session"),
    ("w3", "server CPU while idle"),
    ("w4", "time until all back"),
    ("slow", "peak deliveries/s"),
    ("slow", "p50 at peak"),
    ("slow", "p99 at peak"),
];

fn print_comparison(out: &mut dyn std::io::Write, reports: &[Report]) -> std::io::Result<()> {
    let mut targets: Vec<&str> = Vec::new();
    for r in reports {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    let has_rows = HEADLINES.iter().any(|(w, name)| {
        targets
            .iter()
            .filter(|t| reports.iter().any(|r| r.workload == *w && r.target == **t && r.get(name).is_some()))
            .count()
            >= 2
    });
    if targets.len() < 2 || !has_rows {
        return Ok(());
    }
    writeln!(out)?;
    write!(out, "{:<44}", "headline")?;
    for t in &targets {
        write!(out, " {t:>14}")?;
    }
    for t in targets.iter().skip(1) {
        write!(out, " {:>14}", format!("{t}/{}", targets[0]))?;
    }
    writeln!(out)?;
    for (w, name) in HEADLINES {
        let vals: Vec<Option<f64>> = targets
            .iter()
            .map(|t| reports.iter().find(|r| r.workload == *w && r.target == *t).and_then(|r| r.get(name)))
            .collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let unit = reports
            .iter()
            .find(|r| r.workload == *w)
            .and_then(|r| r.metrics.iter().find(|m| m.name == *name))
            .map(|m| m.unit.clone())
            .unwrap_or_default();
        write!(out, "{:<44}", format!("{w} {name} ({unit})"))?;
        for v in &vals {
            write!(out, " {:>14}", v.map(num).unwrap_or_else(|| "n/a".into()))?;
        }
        for v in vals.iter().skip(1) {
            let ratio = match (v, vals[0]) {
                (Some(a), Some(p)) if p != 0.0 => format!("{:.2}x", a / p),
                _ => "n/a".into(),
            };
            write!(out, " {ratio:>14}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A sorted sample as a distribution curve for the charts: `(percentile, value × scale)` at 0,
/// 1, … 99 and 99.9 and 100 (nearest rank), so a chart file stays small for any sample size.
pub fn distribution(sorted: &[u64], scale: f64) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut ps: Vec<f64> = (0..100).map(f64::from).collect();
    ps.extend([99.5, 99.9, 100.0]);
    ps.into_iter().map(|p| (p, percentile(sorted, p) as f64 * scale)).collect()
}

/// Sorted event times as a cumulative count over time, `(time × scale, events so far)`, at
/// most ~200 points (each step's last event, evenly spaced by rank).
pub fn cumulative(sorted: &[u64], scale: f64) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let every = n.div_ceil(200).max(1);
    let mut pts = vec![(0.0, 0.0)];
    for (i, &t) in sorted.iter().enumerate() {
        if (i + 1) % every == 0 || i + 1 == n {
            pts.push((t as f64 * scale, (i + 1) as f64));
        }
    }
    pts
}

/// Percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 99.0), 0);
        assert_eq!(percentile(&[7], 1.0), 7);
    }

    #[test]
    fn curves_are_small_and_end_at_the_sample() {
        let v: Vec<u64> = (1..=10_000).collect();
        let d = distribution(&v, 0.5);
        assert_eq!(d.first(), Some(&(0.0, 0.5)));
        assert_eq!(d.last(), Some(&(100.0, 5000.0)));
        assert!(d.len() < 110);
        let c = cumulative(&v, 1.0);
        assert!(c.len() <= 202);
        assert_eq!(c.last(), Some(&(10_000.0, 10_000.0)));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(cumulative(&[], 1.0).is_empty());
    }

    #[test]
    fn a_saved_report_reads_back() {
        let mut r = Report::new("w2", "parlor", 10);
        r.metric("peak deliveries/s", 5.0, "1/s");
        r.steps.push(Step { offered_msgs_per_s: 2.0, ..Step::default() });
        r.series("x", "", "", vec![(1.0, 2.0)]);
        let back: Vec<Report> = serde_json::from_str(&serde_json::to_string(&[r]).unwrap()).unwrap();
        assert_eq!(back[0].get("peak deliveries/s"), Some(5.0));
        assert_eq!(back[0].steps.len(), 1);
        assert_eq!(back[0].get_series("x").map(|s| s.points.len()), Some(1));
        // A report saved before series existed still reads.
        let old = r#"[{"workload":"w1","target":"bare","sessions":1,"ok":true,"problems":[],"metrics":[]}]"#;
        assert!(serde_json::from_str::<Vec<Report>>(old).unwrap()[0].series.is_empty());
    }

    #[test]
    fn a_failed_check_fails_the_report() {
        let mut r = Report::new("w4", "parlor", 3);
        r.metric("events lost", 0.0, "");
        assert!(r.ok);
        r.problem("1 events lost");
        assert!(!r.ok);
        assert_eq!(r.get("events lost"), Some(0.0));
    }
}
