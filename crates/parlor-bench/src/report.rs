//! Results: one [`Report`] per workload and target, printed as tables or JSON.

use serde::Serialize;

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// What it is.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
}

/// One step of the fan-out workload (W2).
#[derive(Debug, Clone, Default, Serialize)]
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
}

/// The result of one workload against one target.
#[derive(Debug, Clone, Serialize)]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
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
        }
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
            writeln!(
                out,
                "  {:>9} {:>7} {:>11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>7}",
                "offered/s",
                "sent",
                "delivered",
                "deliv/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "cpu s/M",
                "refused"
            )?;
            for s in &r.steps {
                writeln!(
                    out,
                    "  {:>9} {:>7} {:>11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>12} {:>7}",
                    num(s.offered_msgs_per_s),
                    s.sent,
                    s.delivered,
                    num(s.delivered_per_s),
                    num(s.p50_ms),
                    num(s.p95_ms),
                    num(s.p99_ms),
                    num(s.max_ms),
                    num(s.cpu_s_per_m),
                    s.refused
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
    fn a_failed_check_fails_the_report() {
        let mut r = Report::new("w4", "parlor", 3);
        r.metric("events lost", 0.0, "");
        assert!(r.ok);
        r.problem("1 events lost");
        assert!(!r.ok);
        assert_eq!(r.get("events lost"), Some(0.0));
    }
}
