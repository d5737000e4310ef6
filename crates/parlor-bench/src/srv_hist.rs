//! The server's own fan-out latency, read from its `/metrics`: the histogram
//! `parlor_fanout_seconds` (a room message's frame read to its last local recipient's write),
//! scraped before and after a W2 step; the difference is that step's.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The histogram's name.
pub const FANOUT: &str = "parlor_fanout_seconds";

/// A Prometheus histogram: cumulative counts by upper bound (seconds), ascending, `+Inf` last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    /// `(le, cumulative count)`.
    pub buckets: Vec<(f64, u64)>,
}

impl Hist {
    /// The histogram `name` in Prometheus text (empty when absent: nothing recorded yet).
    pub fn parse(text: &str, name: &str) -> Hist {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else { continue };
            let Some((labels, value)) = rest.split_once("} ") else { continue };
            let Some(le) = labels.split(',').find_map(|l| l.trim().strip_prefix("le=\"")?.strip_suffix('"')) else {
                continue;
            };
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            let Ok(count) = value.trim().parse::<f64>() else { continue };
            // Labels other than `le` (none today) would give several series: summed.
            match buckets.iter_mut().find(|(l, _)| *l == le) {
                Some((_, c)) => *c += count as u64,
                None => buckets.push((le, count as u64)),
            }
        }
        buckets.retain(|(le, _)| !le.is_nan());
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Hist { buckets }
    }

    /// `self − earlier` (the counts of what happened between the two scrapes).
    pub fn since(&self, earlier: &Hist) -> Hist {
        let before = |le: f64| earlier.buckets.iter().find(|(l, _)| *l == le).map_or(0, |(_, c)| *c);
        Hist { buckets: self.buckets.iter().map(|(le, c)| (*le, c.saturating_sub(before(*le)))).collect() }
    }

    /// The sum of two nodes' histograms.
    pub fn add(&self, other: &Hist) -> Hist {
        let mut out = self.clone();
        for (le, c) in &other.buckets {
            match out.buckets.iter_mut().find(|(l, _)| l == le) {
                Some((_, n)) => *n += c,
                None => out.buckets.push((*le, *c)),
            }
        }
        out.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.buckets.last().map_or(0, |(_, c)| *c)
    }

    /// The `q`-quantile (0..1) in ms, interpolated within its bucket as Prometheus'
    /// `histogram_quantile` does (the upper bound of the last finite bucket when it falls in
    /// `+Inf`); None without observations.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for (le, c) in &self.buckets {
            if (*c as f64) >= rank {
                if le.is_infinite() {
                    return Some(lower * 1e3);
                }
                let inside = (*c - below) as f64;
                let frac = if inside > 0.0 { (rank - below as f64) / inside } else { 1.0 };
                return Some((lower + (le - lower) * frac) * 1e3);
            }
            (lower, below) = (*le, *c);
        }
        Some(lower * 1e3)
    }
}

/// Scrape `/metrics` of the server at `addr` and read histogram `name`.
pub async fn scrape(addr: SocketAddr, name: &str) -> anyhow::Result<Hist> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: parlor\r\nConnection: close\r\n\r\n").await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "/metrics answered {answer:.100}");
    Ok(Hist::parse(&answer, name))
}

/// The text of `/metrics` of the server at `addr`, blocking (for the parent's snapshots at the
/// barriers); None when it does not answer within 5 s.
pub fn scrape_text(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    tcp.set_read_timeout(Some(timeout)).ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: parlor\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then_some(answer)
}

/// The sum of every series of the counter or gauge `name` whose labels contain `labels` (""
/// for all) in Prometheus text.
pub fn value(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (l, v) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            l.contains(labels).then(|| v.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE parlor_fanout_seconds histogram\n\
        parlor_fanout_seconds_bucket{le=\"0.0005\"} 10\n\
        parlor_fanout_seconds_bucket{le=\"0.001\"} 90\n\
        parlor_fanout_seconds_bucket{le=\"0.0025\"} 100\n\
        parlor_fanout_seconds_bucket{le=\"+Inf\"} 100\n\
        parlor_fanout_seconds_sum 0.08\n\
        parlor_fanout_seconds_count 100\n\
        parlor_login_seconds_bucket{le=\"0.001\"} 7\n";

    #[test]
    fn reads_counters_by_label() {
        let text = "parlor_upgrades_refused_total{why=\"rate\"} 3\n\
            parlor_upgrades_refused_total{why=\"saturated\"} 4\n\
            parlor_unavailable_total 2\n";
        assert_eq!(value(text, "parlor_upgrades_refused_total", ""), 7.0);
        assert_eq!(value(text, "parlor_upgrades_refused_total", "saturated"), 4.0);
        assert_eq!(value(text, "parlor_unavailable_total", ""), 2.0);
        assert_eq!(value(text, "parlor_unavailable", ""), 0.0);
    }

    #[test]
    fn reads_the_buckets_and_interpolates_quantiles() {
        let h = Hist::parse(TEXT, FANOUT);
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.count(), 100);
        // The 50th of 100 is the 40th of the 80 in (0.5 ms, 1 ms].
        assert!((h.quantile_ms(0.5).unwrap() - 0.75).abs() < 1e-9);
        assert!((h.quantile_ms(0.99).unwrap() - 2.35).abs() < 1e-9);
        assert_eq!(Hist::parse("", FANOUT).quantile_ms(0.5), None);
    }

    #[test]
    fn a_step_is_the_difference_of_two_scrapes() {
        let before = Hist::parse(TEXT, FANOUT);
        let after = before.add(&before);
        let step = after.since(&before);
        assert_eq!(step, before);
        assert_eq!(before.since(&before).count(), 0);
    }
}
