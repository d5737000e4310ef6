//! `--workers N`: one workload's sessions spread over N generator processes, so that together
//! they hold more sockets than one process may open (RLIMIT_NOFILE).
//!
//! The parent starts the server as usual and re-runs its own executable N times in a hidden
//! worker mode (`--worker K/N --server-url URL --json`). Worker K drives the sessions
//! `K, K + N, K + 2N, …` (so with a room count divisible by N each room lies within one worker
//! and W4's per-room accounting stays local). The processes meet at named barriers (W1 `start`,
//! `logged-in`; W3 `start`, `connected`, `held`; W4 `joined`, `cut` or `drop`; W6 `joined`,
//! `kill`): a worker prints `@@barrier NAME` and waits for a `go` line on its stdin; once all N
//! are there the parent measures the server (CPU time, RSS: the workers do not know its PID),
//! performs the barrier's action (`drop`: the admin API's drop-connections, once; `kill`: SIGKILL
//! of the last node), and lets them go. At the end each
//! worker prints its report as JSON and the parent merges them: counts add up, times and
//! latency percentiles are the worst worker's, the server's figures are the parent's.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::cluster::Servers;
use crate::redis::{memory_metrics, RedisMem};
use crate::report::Report;
use crate::target::die_with_parent;
use crate::{name_of, Ctx, Cut, Workload};

/// The line a worker prints at a barrier.
const BARRIER: &str = "@@barrier ";

/// A worker's end of the barriers: its stdin.
#[derive(Debug)]
pub struct Coord {
    lines: tokio::sync::Mutex<tokio::io::Lines<BufReader<tokio::io::Stdin>>>,
}

impl Coord {
    /// The worker's coordinator on its own stdin.
    pub fn new() -> Coord {
        Coord { lines: tokio::sync::Mutex::new(BufReader::new(tokio::io::stdin()).lines()) }
    }

    /// Announce the barrier and wait for the parent's `go`.
    pub async fn barrier(&self, name: &str) -> anyhow::Result<()> {
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{BARRIER}{name}")?;
            out.flush()?;
        }
        match self.lines.lock().await.next_line().await? {
            Some(l) if l == "go" => Ok(()),
            other => bail!("barrier {name}: the parent answered {other:?}"),
        }
    }
}

impl Default for Coord {
    fn default() -> Self {
        Coord::new()
    }
}

/// `--worker K/N`.
pub fn parse_slice(s: &str) -> anyhow::Result<(usize, usize)> {
    let (k, n) = s.split_once('/').context("--worker is K/N")?;
    let (k, n): (usize, usize) = (k.parse()?, n.parse()?);
    if n == 0 || k >= n {
        bail!("--worker {s}: need 0 <= K < N");
    }
    Ok((k, n))
}

/// The workloads that can be spread (W6 only on Redis nodes, `--nodes`).
pub fn supported(w: Workload) -> bool {
    matches!(w, Workload::W1 | Workload::W3 | Workload::W4 | Workload::W8)
}

/// What the parent saw at a barrier.
#[derive(Debug, Clone)]
struct Snap {
    at: Instant,
    cpu: Option<Duration>,
    rss: Option<u64>,
    redis: Option<RedisMem>,
    redis_cpu: Option<Duration>,
    /// Each node's `/metrics` text (Redis nodes: their queue in front of Redis, refusals); None
    /// for a node that did not answer.
    metrics: Vec<Option<String>>,
}

impl Snap {
    fn of(servers: &Servers<'_>) -> Snap {
        Snap {
            at: Instant::now(),
            cpu: servers.cpu(),
            rss: servers.rss(),
            redis: servers.redis_memory(),
            redis_cpu: servers.redis_cpu(),
            metrics: servers.metrics(),
        }
    }
}

/// Run workload `w` against `servers` over `ctx.args.workers` worker processes; the merged
/// report. On Redis nodes (`servers.redis`) the workers get every node's URL (`--node-urls`),
/// and the server's figures are the nodes' summed, with Redis's CPU and memory.
pub async fn run(ctx: &Ctx, servers: &Servers<'_>, w: Workload, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let target = servers.nodes[0];
    let args = &ctx.args;
    let workers = args.workers.max(1);
    if matches!(w, Workload::W4 | Workload::W6) && !rooms.is_multiple_of(workers) {
        bail!("{} --workers {workers}: the room count ({rooms}) must be a multiple of the workers", name_of(w));
    }
    let exe = std::env::current_exe().context("cannot find the parlor binary")?;
    let url = format!("ws://{}{}", target.addr, target.path);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Option<String>)>();
    let mut stdins = Vec::new();
    let mut children = Vec::new();
    for k in 0..workers {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("bench").arg(name_of(w)).args(["--target", target.kind.name(), "--server-url", &url]);
        cmd.args(["--worker", &format!("{k}/{workers}"), "--json", "--app", &args.app]);
        cmd.args(["--sessions", &n.to_string(), "--rooms", &rooms.to_string()]);
        cmd.args(["--concurrency", &args.concurrency.div_ceil(workers).max(1).to_string()]);
        cmd.args(["--time-limit", &args.time_limit.to_string()]);
        if servers.redis.is_some() {
            let urls: Vec<String> = servers.nodes.iter().map(|t| format!("ws://{}{}", t.addr, t.path)).collect();
            cmd.args(["--node-urls", &urls.join(",")]);
        }
        cmd.args(["--cut", if args.cut == Cut::Server { "server" } else { "proxy" }]);
        if let Some(c) = args.churn {
            cmd.args(["--churn", &c.to_string()]);
        }
        if let Some(h) = args.hold_secs {
            cmd.args(["--hold-secs", &h.to_string()]);
        }
        if args.quick {
            cmd.arg("--quick");
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = Command::from(cmd).kill_on_drop(true).spawn().context("cannot start a worker")?;
        stdins.push(child.stdin.take().context("worker stdin")?);
        let stdout = child.stdout.take().context("worker stdout")?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send((k, Some(l)));
            }
            let _ = tx.send((k, None));
        });
        children.push(child);
    }
    drop(tx);
    let mut json: Vec<String> = vec![String::new(); workers];
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut snaps: HashMap<String, Snap> = HashMap::new();
    snaps.insert(BEGIN.into(), Snap::of(servers));
    let mut done = 0;
    while done < workers {
        let Some((k, line)) = rx.recv().await else { break };
        let Some(line) = line else {
            done += 1;
            continue;
        };
        let Some(name) = line.strip_prefix(BARRIER) else {
            json[k].push_str(&line);
            json[k].push('\n');
            continue;
        };
        let count = at.entry(name.to_string()).or_insert(0);
        *count += 1;
        if *count < workers {
            continue;
        }
        // Everyone is here: measure, act, release.
        snaps.insert(name.to_string(), Snap::of(servers));
        if name == "drop" {
            crate::w4::drop_connections(target.addr, &ctx.app).await?;
            if let (Some(secs), Some(redis)) = (args.pause_redis, servers.redis) {
                pause_later(redis.pid, Duration::from_secs(1), Duration::from_secs_f64(secs));
            }
        }
        if name == "kill" {
            // W6: the last node dies; its sessions resume on the others.
            let victim = servers.nodes.last().context("no nodes")?;
            let pid = victim.pid.context("the victim node's pid")?;
            // SAFETY: kill with the pid of a child we started; it is reaped when it is stopped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            eprintln!("bench: SIGKILL the node on {}", victim.addr);
        }
        for s in &mut stdins {
            s.write_all(b"go\n").await?;
            s.flush().await?;
        }
    }
    for c in &mut children {
        let _ = c.wait().await;
    }
    snaps.insert(END.into(), Snap::of(servers));
    let mut parts = Vec::with_capacity(workers);
    for (k, text) in json.iter().enumerate() {
        let mut r: Vec<Report> =
            serde_json::from_str(text).with_context(|| format!("worker {k} printed no report: {text:.300}"))?;
        parts.push(r.pop().with_context(|| format!("worker {k}: an empty report"))?);
    }
    let mut rep = merge(name_of(w), target.kind.name(), n, &parts);
    server_figures(&mut rep, w, rooms, &snaps);
    rep.metric("generator workers", workers as f64, "");
    Ok(rep)
}

/// Counts that add up over workers; every other metric is the worst (largest) worker's.
const SUMS: &[&str] = &[
    "sessions logged in",
    "sessions held",
    "broadcasts sent",
    "connections cut",
    "sessions back",
    "resume attempts",
    "snapshots instead of replay",
    "deliveries checked",
    "deliveries without an ok",
    "events lost",
    "events duplicated",
    "seq gaps",
    "false user_delete",
    "sessions the cut should reach",
    "broadcasts never answered",
    "broadcasts never answered after a repeat",
    "broadcasts answered 1000004 (retried)",
    "broadcasts failed (an error other than 1000004)",
    "counts exact",
    "counts wrong",
    "presence bytes received",
    "broadcast deliveries",
    "whole-list walks exact",
    "churners",
    "churners back",
    "churn changes",
    "seq gaps seen by churners",
    "seq gaps on the users channel",
];

/// Merge the workers' reports of one workload.
pub fn merge(workload: &str, target: &str, n: usize, parts: &[Report]) -> Report {
    let mut rep = Report::new(workload, target, n);
    for p in parts {
        for m in p.metrics.iter().filter(|m| m.name != "RLIMIT_NOFILE") {
            match rep.metrics.iter_mut().find(|x| x.name == m.name) {
                Some(x) if SUMS.contains(&m.name.as_str()) => x.value += m.value,
                Some(x) => x.value = x.value.max(m.value),
                None => rep.metrics.push(m.clone()),
            }
        }
        for pr in &p.problems {
            rep.problem(format!("worker: {pr}"));
        }
    }
    // Rates follow from the merged counts and times.
    if let (Some(j), Some(t)) = (rep.get("sessions logged in"), rep.get("time to all logged in")) {
        if t > 0.0 {
            set(&mut rep, "logins/s", j / t);
        }
    }
    // Curves: W1 latency, the worst worker's at each percentile; sessions back, summed.
    if let Some(first) = parts.iter().find_map(|p| p.get_series(crate::w1::LATENCY_SERIES)) {
        let mut s = first.clone();
        for p in parts.iter().filter_map(|p| p.get_series(crate::w1::LATENCY_SERIES)) {
            for (a, b) in s.points.iter_mut().zip(&p.points) {
                a.1 = a.1.max(b.1);
            }
        }
        rep.series.push(s);
    }
    let backs: Vec<&crate::report::Series> =
        parts.iter().filter_map(|p| p.get_series(crate::w4::BACK_SERIES)).collect();
    if let Some(first) = backs.first() {
        let mut xs: Vec<f64> = backs.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let at =
            |s: &crate::report::Series, x: f64| s.points.iter().take_while(|p| p.0 <= x).last().map_or(0.0, |p| p.1);
        let points = xs.iter().map(|&x| (x, backs.iter().map(|s| at(s, x)).sum())).collect();
        rep.series(&first.name, &first.x_unit, &first.y_unit, points);
    }
    rep
}

/// The nodes' own view of a storm, from their `/metrics` at the cut and at the end (each node's
/// `cut` and `end` text at the same index; a node missing from either, W6's killed one, is left
/// out): Redis calls per session back, their queue in front of Redis, the upgrades they shed and
/// the 1000004s.
pub(crate) fn storm_figures(rep: &mut Report, cut: &[Option<String>], end: &[Option<String>]) {
    use crate::srv_hist::{value, Hist};
    let pairs: Vec<(&str, &str)> =
        cut.iter().zip(end).filter_map(|(a, b)| Some((a.as_deref()?, b.as_deref()?))).collect();
    if pairs.is_empty() {
        return;
    }
    let delta = |name: &str, labels: &str| -> f64 {
        pairs.iter().map(|(a, b)| value(b, name, labels) - value(a, name, labels)).sum::<f64>()
    };
    let hist = |texts: &mut dyn Iterator<Item = &str>| {
        texts.fold(Hist::default(), |h, t| h.add(&Hist::parse(t, "parlor_redis_queue_wait_seconds")))
    };
    let back = rep.get("sessions back").unwrap_or(0.0);
    let calls = delta("parlor_redis_calls_total", "");
    if back > 0.0 && calls > 0.0 {
        rep.metric("Redis calls per session back (cut to end, all nodes)", calls / back, "");
    }
    let waits = hist(&mut pairs.iter().map(|p| p.1)).since(&hist(&mut pairs.iter().map(|p| p.0)));
    if let (Some(p50), Some(p99)) = (waits.quantile_ms(0.5), waits.quantile_ms(0.99)) {
        rep.metric("node queue wait p50", p50, "ms");
        rep.metric("node queue wait p99", p99, "ms");
    }
    let peak = pairs.iter().map(|p| value(p.1, "parlor_redis_queue_depth_max", "")).fold(0.0, f64::max);
    rep.metric("node queue depth, peak (any node, whole run)", peak, "");
    rep.metric("HTTP 503, node saturated", delta("parlor_upgrades_refused_total", "saturated"), "");
    rep.metric("HTTP 503, connection rate", delta("parlor_upgrades_refused_total", "\"rate\""), "");
    rep.metric("answered 1000004", delta("parlor_unavailable_total", ""), "");
    rep.metric("Redis calls run again (healthy Redis)", delta("parlor_redis_retries_total", ""), "");
}

fn set(rep: &mut Report, name: &str, v: f64) {
    if let Some(m) = rep.metrics.iter_mut().find(|m| m.name == name) {
        m.value = v;
    }
}

/// Stop process `pid` (SIGSTOP) after `after`, for `secs`, then let it go on (SIGCONT): Redis
/// stalled in the middle of a storm (`--pause-redis`).
fn pause_later(pid: u32, after: Duration, secs: Duration) {
    let signal = move |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("bench: kill {sig} {pid} failed");
        }
    };
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!("bench: Redis stopped (SIGSTOP) for {:.1} s", secs.as_secs_f64());
        signal("-STOP");
        std::thread::sleep(secs);
        signal("-CONT");
        eprintln!("bench: Redis goes on (SIGCONT)");
    });
}

/// The parent's snapshots before the workers start and after they end.
const BEGIN: &str = "@begin";
const END: &str = "@end";

/// The server's CPU and RSS from the parent's snapshots at the barriers (nodes summed), and
/// Redis's memory when there is one: W3 from `start` to `held`, W4 from before the workers to
/// `joined` (every session logged in), its CPU from the cut to the end.
fn server_figures(rep: &mut Report, w: Workload, rooms: usize, snaps: &HashMap<String, Snap>) {
    let cpu = |a: &str, b: &str| match (snaps.get(a).and_then(|s| s.cpu), snaps.get(b).and_then(|s| s.cpu)) {
        (Some(x), Some(y)) => Some((y - x).as_secs_f64()),
        _ => None,
    };
    let mib = |b: u64| b as f64 / 1048576.0;
    match w {
        Workload::W1 => {
            if let Some(c) = cpu("start", "logged-in") {
                rep.metric("server CPU", c, "s");
            }
            if let Some(r) = snaps.get("logged-in").and_then(|s| s.rss) {
                rep.metric("server RSS after", mib(r), "MiB");
            }
        }
        Workload::W3 => {
            let (r0, r1) = (snaps.get("start").and_then(|s| s.rss), snaps.get("held").and_then(|s| s.rss));
            let held = rep.get("sessions held").unwrap_or(0.0);
            if let (Some(a), Some(b)) = (r0, r1) {
                rep.metric("server RSS before", mib(a), "MiB");
                rep.metric("server RSS after", mib(b), "MiB");
                if held > 0.0 {
                    rep.metric("server RSS per session", (b as f64 - a as f64) / held / 1024.0, "KiB");
                }
            }
            if let (Some(c), Some(a), Some(b)) = (cpu("connected", "held"), snaps.get("connected"), snaps.get("held")) {
                let secs = (b.at - a.at).as_secs_f64();
                if secs > 0.0 {
                    rep.metric("server CPU while idle", 100.0 * c / secs, "% of a core");
                    let rc = |k: &str| snaps.get(k).and_then(|s| s.redis_cpu);
                    if let (Some(x), Some(y)) = (rc("connected"), rc("held")) {
                        rep.metric(
                            "redis CPU while idle (in the server's)",
                            100.0 * (y - x).as_secs_f64() / secs,
                            "% of a core",
                        );
                    }
                }
            }
            let mem = |k: &str| snaps.get(k).and_then(|s| s.redis);
            memory_metrics(rep, mem("start"), mem("held"), held, rooms as f64);
        }
        Workload::W4 | Workload::W6 => {
            let n = rep.sessions as f64;
            let (r0, r1) = (snaps.get(BEGIN).and_then(|s| s.rss), snaps.get("joined").and_then(|s| s.rss));
            if let (Some(a), Some(b)) = (r0, r1) {
                rep.metric("server RSS before", mib(a), "MiB");
                rep.metric("server RSS with all logged in", mib(b), "MiB");
                rep.metric("server RSS per session", (b as f64 - a as f64) / n / 1024.0, "KiB");
            }
            let cut = ["drop", "kill"].into_iter().find(|k| snaps.contains_key(*k)).unwrap_or("cut");
            if let Some(c) = cpu(cut, END) {
                rep.metric("server CPU from the cut to the end", c, "s");
                if let Some(back) = rep.get("sessions back").filter(|b| *b > 0.0) {
                    rep.metric("server CPU per session back", 1000.0 * c / back, "ms");
                }
            }
            let mem = |k: &str| snaps.get(k).and_then(|s| s.redis);
            memory_metrics(rep, mem(BEGIN), mem("joined"), n, rooms as f64);
            if let (Some(a), Some(b)) = (snaps.get(cut), snaps.get(END)) {
                storm_figures(rep, &a.metrics, &b.metrics);
            }
        }
        Workload::W8 => {
            if let Some(c) = cpu("churn-start", "churn-stop") {
                rep.metric("server CPU during the churn (nodes + Redis)", c, "s");
                if let Some(k) = rep.get("churn changes").filter(|k| *k > 0.0) {
                    rep.metric("server CPU per change", 1e6 * c / k, "µs");
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_times_are_the_worst() {
        let mut a = Report::new("w4", "parlor", 10);
        a.metric("sessions back", 5.0, "");
        a.metric("time until all back", 2.0, "s");
        a.series(crate::w4::BACK_SERIES, "s", "sessions", vec![(0.0, 0.0), (1.0, 3.0), (2.0, 5.0)]);
        let mut b = Report::new("w4", "parlor", 10);
        b.metric("sessions back", 5.0, "");
        b.metric("time until all back", 3.0, "s");
        b.series(crate::w4::BACK_SERIES, "s", "sessions", vec![(0.0, 0.0), (3.0, 5.0)]);
        b.problem("1 events lost");
        let m = merge("w4", "parlor", 10, &[a, b]);
        assert_eq!(m.get("sessions back"), Some(10.0));
        assert_eq!(m.get("time until all back"), Some(3.0));
        assert!(!m.ok && m.problems[0].contains("events lost"));
        let s = m.get_series(crate::w4::BACK_SERIES).unwrap();
        assert_eq!(s.points, vec![(0.0, 0.0), (1.0, 3.0), (2.0, 5.0), (3.0, 10.0)]);
    }

    #[test]
    fn slices_are_checked() {
        assert_eq!(parse_slice("1/4").unwrap(), (1, 4));
        assert!(parse_slice("4/4").is_err());
        assert!(parse_slice("x").is_err());
    }
}
