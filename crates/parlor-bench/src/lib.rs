//! `parlor bench`: a load generator for Parlor and, for comparison, a Socket.IO 4 rooms server
//! (on Node, and on socketioxide in Rust) and a bare tokio-tungstenite broadcaster.
//!
//! One process drives every session (one tokio task each), or N with `--workers` ([`workers`]).
//! Client sockets are spread over 127.0.0.10–41 as source addresses so that 100 000 connections
//! do not run out of ephemeral ports, and the generator raises its own (and so its child server's) file descriptor limit.
//! The server under test is started as a child process (and always stopped; it also dies with
//! the generator), or given with `--server-url` / `--server-pid`.
//!
//! Workloads (see `docs/benchmarks.md`):
//! - [`w1`] login storm, [`w2`] fan-out with stepped rates, [`w3`] idle hold,
//! - [`w4`] reconnect storm through a [`parlor_testkit::FaultProxy`] cut (Parlor only),
//! - [`w5`] W2's fan-out on Redis: one node against the room split over two (Parlor's Redis
//!   engine; Socket.IO's Redis adapter; starts its own `redis-server`);
//! - [`w6`] failover storm: W4's storm on three Redis nodes (or `--nodes N`), one SIGKILLed
//!   (Parlor only);
//! - [`failover`] the Redis primary SIGKILLed under fan-out, Sentinel promoting its replica
//!   (Parlor only; starts its own redis-server and redis-sentinels);
//! - [`w7`] big room: every session in one room with user lists, each list checked exact
//!   (Parlor only);
//! - [`slow`] W2's fan-out at one rate with one member that stops reading: its cut with 4008,
//!   the others' rate and latency against a run where all read, its catch-up by resume;
//! - [`soak`] steady logins, logouts, messages and cuts by Rust SDK clients for `--minutes`,
//!   with the server's RSS and open files sampled (Parlor only).
//!
//! `--plot DIR` draws SVG charts of the reports ([`plot`]), `--from FILE` reads a saved report.

#![warn(missing_docs)]

pub mod args;
pub mod client;
pub mod cluster;
pub mod failover;
pub mod plot;
pub mod redis;
pub mod report;
pub mod resume;
pub mod slow;
pub mod soak;
pub mod srv_hist;
pub mod sys;
pub mod target;
pub mod w1;
pub mod w2;
pub mod w3;
pub mod w4;
pub mod w5;
pub mod w6;
pub mod w7;
pub mod w8;
pub mod workers;

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use client::{App, Client};
use report::Report;
use target::{Endpoint, Kind, Limits, Target};

use args::{rooms_of, sessions_of, soak_minutes};
pub use args::{BenchArgs, Cut, Workload};

/// What every workload gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The arguments.
    pub args: BenchArgs,
    /// Token signing.
    pub app: App,
    /// Progress bars.
    pub progress: MultiProgress,
    /// This process's share of the sessions, `(K, N)`: sessions K, K+N, … (`(0, 1)`: all).
    pub slice: (usize, usize),
    /// In a `--workers` worker: the barriers with the parent.
    pub coord: Option<std::sync::Arc<workers::Coord>>,
}

impl Ctx {
    /// A counting progress bar.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        let pb = self.progress.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {bar:40} {pos:>7}/{len:7} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(what.to_string());
        pb
    }

    /// A spinner with a message.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        let pb = self.progress.add(ProgressBar::new_spinner());
        pb.set_prefix(what.to_string());
        pb.set_style(
            ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    }

    /// The indices of the sessions (of `n`) this process drives.
    pub fn mine(&self, n: usize) -> Vec<usize> {
        let (k, of) = self.slice;
        (k..n).step_by(of.max(1)).collect()
    }

    /// True in a `--workers` worker process.
    pub fn is_worker(&self) -> bool {
        self.coord.is_some()
    }

    /// Meet the other workers and the parent at barrier `name` (no-op outside `--workers`).
    pub async fn barrier(&self, name: &str) -> anyhow::Result<()> {
        match &self.coord {
            Some(c) => c.barrier(name).await,
            None => Ok(()),
        }
    }

    /// Time limit of one workload.
    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.args.time_limit)
    }
}

/// Nanoseconds since the generator started: one clock for send and receive times.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Connect and join with a few retries (a storm can overflow the listen backlog).
pub async fn join_retry(
    ctx: &Ctx,
    target: &Endpoint,
    i: usize,
    user: &str,
    room: &str,
    notify: bool,
) -> anyhow::Result<Client> {
    // As a client does (§7, §9.7): a refused upgrade (HTTP 503 from a saturated or rate-limited
    // node) or a failed attempt waits a full-jitter backoff, within the login timeout (30 s).
    let mut last = None;
    let started = std::time::Instant::now();
    for attempt in 0..20u32 {
        if attempt > 0 {
            let cap = Duration::from_millis(100 << attempt.min(6)).min(Duration::from_secs(5));
            tokio::time::sleep(cap.mul_f64(rand::random::<f64>())).await;
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        match Client::join(target, client::source(i), &ctx.app, user, room, notify).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

/// Keep a joined client alive until `stop`: heartbeats, Socket.IO pongs, and every other text
/// frame handed to `on_text`.
pub async fn hold(
    mut c: Client,
    room: String,
    mut stop: watch::Receiver<bool>,
    mut on_text: impl FnMut(&str),
) -> anyhow::Result<Client> {
    let every = c.heartbeat_every();
    // Spread the heartbeats: the first one comes at a random point of the interval.
    let first = every.mul_f64(rand::random::<f64>());
    let mut hb = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = hb.tick() => c.heartbeat(&room).await?,
            m = c.ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if !c.keepalive(&t).await? {
                        on_text(t.as_str());
                    }
                }
                Some(Ok(Message::Close(f))) => bail!("closed by the server: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("connection lost: {e}"),
                None => bail!("connection closed"),
            },
        }
    }
    Ok(c)
}

/// Resolves once `stop` holds true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Counters shared by the session tasks of a workload.
#[derive(Debug, Default)]
pub struct Counts {
    /// Sessions joined.
    pub joined: AtomicUsize,
    /// Sessions that could not join.
    pub failed: AtomicUsize,
    /// Sessions whose connection broke while held.
    pub broken: AtomicUsize,
    /// The first error seen.
    pub first_error: parking_lot::Mutex<Option<String>>,
}

impl Counts {
    /// Record an error.
    pub fn error(&self, e: &anyhow::Error) {
        let mut f = self.first_error.lock();
        if f.is_none() {
            *f = Some(format!("{e:#}"));
        }
    }
}

/// Wait until `done()` or the deadline; false on the deadline.
pub async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn parse_app(s: &str) -> anyhow::Result<App> {
    let (id, secret) = s.split_once(':').context("--app is ID:SECRET")?;
    Ok(App { id: id.parse().context("app id")?, secret: secret.to_string() })
}

/// Run the workload(s) against the target(s). Returns the reports; every count right ⇔ all ok.
pub async fn run(args: BenchArgs) -> anyhow::Result<Vec<Report>> {
    if let Some(file) = &args.from {
        return plot::load(file);
    }
    let Some(workload) = args.workload else { bail!("a workload (w1 … soak), or --from FILE") };
    let nofile = sys::raise_nofile();
    let _ = now_ns();
    let slice = match &args.worker {
        Some(s) => workers::parse_slice(s)?,
        None => (0, 1),
    };
    let coord = args.worker.as_ref().map(|_| std::sync::Arc::new(workers::Coord::new()));
    let ctx = Ctx { app: parse_app(&args.app)?, progress: MultiProgress::new(), args: args.clone(), slice, coord };
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) || ctx.is_worker() {
        ctx.progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    // The source addresses must exist: on Linux all of 127.0.0.0/8 is local.
    let probe = std::net::UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 10), 0));
    if probe.is_err() {
        bail!("cannot bind 127.0.0.10: this generator needs the whole 127.0.0.0/8 on loopback");
    }
    let workloads = match workload {
        Workload::All => {
            vec![Workload::W1, Workload::W2, Workload::W3, Workload::W4, Workload::W5, Workload::W6, Workload::W7]
        }
        w => vec![w],
    };
    let all = workload == Workload::All;
    let has = |k: Kind| args.target.contains(&k);
    let mut reports = Vec::new();
    if args.workers > 1 && !ctx.is_worker() {
        for w in workloads.iter().filter(|w| !workers::supported(**w) && !cluster::applies(&ctx, **w)) {
            eprintln!("note: {}: --workers spreads w1, w3 and w4 only; one process", name_of(*w));
        }
    }
    // Off a terminal (e.g. with --json into a file) the bars are hidden: a line per workload and
    // target says how far a long run is instead.
    let say = !std::io::IsTerminal::is_terminal(&std::io::stderr()) && !ctx.is_worker();
    let started = Instant::now();
    for w in workloads {
        if say {
            eprintln!("bench: [{:.0} s] {}", started.elapsed().as_secs_f64(), name_of(w));
        }
        if w == Workload::W5 {
            // In `all`, W5 runs when a target it knows is asked for; alone, it says which.
            if !all || has(Kind::Parlor) || has(Kind::Socketio) {
                reports.extend(w5::run_all(&ctx, nofile).await?);
            }
            continue;
        }
        // In `all`, the runs on Redis nodes are Parlor's, as W5's and W6's are.
        if cluster::applies(&ctx, w) && (!all || has(Kind::Parlor)) {
            reports.push(cluster::run(&ctx, w, nofile).await);
            if !all {
                continue;
            }
            // `all --nodes`: the one-process run of each target follows.
        }
        if w == Workload::W6 && all && !has(Kind::Parlor) {
            continue;
        }
        if w == Workload::W6 {
            // Every session is one socket here and one in the node it is on.
            let asked = sessions_of(&args, w);
            let sessions = asked.min((nofile as usize).saturating_sub(FD_MARGIN));
            let fut = w6::run(&ctx, sessions, rooms_of(&args, w, sessions));
            let mut r = match tokio::time::timeout(Duration::from_secs(args.time_limit), fut).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let mut r = Report::new("w6", "parlor+redis", sessions);
                    r.problem(format!("{e:#}"));
                    r
                }
                Err(_) => {
                    let mut r = Report::new("w6", "parlor+redis", sessions);
                    r.problem(format!("time limit of {} s reached", args.time_limit));
                    r
                }
            };
            if sessions < asked {
                r.metric("sessions asked (clamped by RLIMIT_NOFILE)", asked as f64, "");
            }
            reports.push(r);
            continue;
        }
        if w == Workload::Failover {
            let sessions = sessions_of(&args, w).min((nofile as usize).saturating_sub(FD_MARGIN));
            let fut = failover::run(&ctx, sessions, rooms_of(&args, w, sessions));
            reports.push(match tokio::time::timeout(Duration::from_secs(args.time_limit), fut).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let mut r = Report::new("failover", "parlor+sentinel", sessions);
                    r.problem(format!("{e:#}"));
                    r
                }
                Err(_) => {
                    let mut r = Report::new("failover", "parlor+sentinel", sessions);
                    r.problem(format!("time limit of {} s reached", args.time_limit));
                    r
                }
            });
            continue;
        }
        if w == Workload::Slow {
            let sessions = sessions_of(&args, w).min((nofile as usize).saturating_sub(FD_MARGIN));
            let fut = slow::run(&ctx, sessions);
            match tokio::time::timeout(Duration::from_secs(args.time_limit), fut).await {
                Ok(r) => reports.extend(r?),
                Err(_) => bail!("slow: time limit of {} s reached", args.time_limit),
            }
            continue;
        }
        for &kind in &args.target {
            if matches!(w, Workload::W4 | Workload::W7 | Workload::Soak) && kind != Kind::Parlor {
                // Resume and user lists are Parlor's own protocol; the soak's clients are the
                // Rust SDK.
                continue;
            }
            if say {
                eprintln!("bench: [{:.0} s] {} against {}", started.elapsed().as_secs_f64(), name_of(w), kind.name());
            }
            let asked = sessions_of(&args, w);
            // Every session is one socket here (three in W4: the client and both sides of the
            // fault proxy) and one in a server we start, which inherits our limit.
            let per_session = if w == Workload::W4 && args.cut == Cut::Proxy { 3 } else { 1 };
            let per_process = (nofile as usize).saturating_sub(FD_MARGIN);
            let spread = args.workers > 1 && workers::supported(w) && !ctx.is_worker();
            let fit = match (spread, &args.server_url) {
                _ if ctx.is_worker() => usize::MAX, // the parent clamped
                // N generators, and a server elsewhere that may hold more
                (true, Some(_)) => args.workers * per_process / per_session,
                // N generators, but the server we start is one process with our limit
                (true, None) => per_process.min(args.workers * per_process / per_session),
                (false, _) => per_process / per_session,
            };
            let sessions = asked.min(fit);
            if sessions < asked {
                ctx.progress.println(format!(
                    "note: {}: {asked} sessions need more sockets than RLIMIT_NOFILE ({nofile}, the hard limit) \
                     allows one process; running {sessions}",
                    name_of(w)
                ))?;
            }
            let limits = Limits {
                server_bin: args.server_bin.clone(),
                extra_args: args.server_args.clone(),
                ..Limits::default()
            };
            let mut target = match &args.server_url {
                Some(url) => Target::external(kind, url, args.server_pid)?,
                None => Target::start(kind, &limits, &args.app).await?,
            };
            let minutes = soak_minutes(&args);
            let mut deadline = Duration::from_secs(args.time_limit);
            if w == Workload::Soak {
                deadline += Duration::from_secs_f64(minutes * 60.0);
            }
            let fut = async {
                if spread {
                    return workers::run(
                        &ctx,
                        &cluster::Servers::one(&target),
                        w,
                        sessions,
                        rooms_of(&args, w, sessions),
                    )
                    .await;
                }
                match w {
                    Workload::W1 => w1::run(&ctx, &target, sessions, rooms_of(&args, w, sessions)).await,
                    Workload::W2 => w2::run(&ctx, &target, sessions).await,
                    Workload::W3 => {
                        w3::run(&ctx, &cluster::Servers::one(&target), sessions, rooms_of(&args, w, sessions)).await
                    }
                    Workload::W4 => w4::run(&ctx, &target, sessions, rooms_of(&args, w, sessions)).await,
                    Workload::W7 => w7::run(&ctx, &target, sessions).await,
                    Workload::Soak => soak::run(&ctx, &target, sessions, rooms_of(&args, w, sessions), minutes).await,
                    Workload::W5
                    | Workload::W6
                    | Workload::W8
                    | Workload::Slow
                    | Workload::Failover
                    | Workload::All => {
                        unreachable!()
                    }
                }
            };
            let mut report = match tokio::time::timeout(deadline, fut).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let mut r = Report::new(name_of(w), kind.name(), sessions);
                    r.problem(format!("{e:#}"));
                    r
                }
                Err(_) => {
                    let mut r = Report::new(name_of(w), kind.name(), sessions);
                    r.problem(format!("time limit of {} s reached", args.time_limit));
                    r
                }
            };
            if sessions < asked {
                report.metric("sessions asked (clamped by RLIMIT_NOFILE)", asked as f64, "");
            }
            report.metric("RLIMIT_NOFILE", nofile as f64, "");
            target.stop();
            // Let the kernel reap the sockets of this run before the next.
            if !ctx.is_worker() {
                tokio::time::sleep(Duration::from_millis(if args.quick { 100 } else { 2000 })).await;
            }
            reports.push(report);
        }
    }
    Ok(reports)
}

/// File descriptors kept free of sessions (listeners, /proc reads, the runtime, stdio).
pub(crate) const FD_MARGIN: usize = 200;

pub(crate) fn name_of(w: Workload) -> &'static str {
    match w {
        Workload::W1 => "w1",
        Workload::W2 => "w2",
        Workload::W3 => "w3",
        Workload::W4 => "w4",
        Workload::W5 => "w5",
        Workload::Slow => "slow",
        Workload::W6 => "w6",
        Workload::W7 => "w7",
        Workload::W8 => "w8",
        Workload::Failover => "failover",
        Workload::All => "all",
        Workload::Soak => "soak",
    }
}

/// Print the reports (tables, or JSON on stdout with the tables on stderr) and return whether
/// every count was right.
pub fn finish(args: &BenchArgs, reports: &[Report]) -> anyhow::Result<bool> {
    if args.worker.is_some() {
        // The parent reads this; the tables are its to print.
        println!("{}", serde_json::to_string(reports)?);
        return Ok(reports.iter().all(|r| r.ok));
    }
    if args.json {
        report::print_tables(&mut std::io::stderr(), reports)?;
        println!("{}", serde_json::to_string_pretty(reports)?);
    } else {
        report::print_tables(&mut std::io::stdout(), reports)?;
    }
    if let Some(dir) = &args.plot {
        for f in plot::write_all(dir, reports)? {
            eprintln!("chart: {}", f.display());
        }
    }
    Ok(reports.iter().all(|r| r.ok))
}

/// Run the bare peer (the hidden `parlor bare-peer` command the generator starts).
pub async fn bare_peer(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    parlor_bare_peer::run(addr).await?;
    Ok(())
}
