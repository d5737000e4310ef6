//! The command line of `parlor bench` ([`BenchArgs`]: workloads, targets, sizes) and the sizes
//! each workload runs at, full or `--quick`.

use crate::target::Kind;

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Login storm.
    W1,
    /// Fan-out in one room, stepped rates.
    W2,
    /// Idle hold: memory per session.
    W3,
    /// Reconnect storm (Parlor only).
    W4,
    /// Fan-out on Redis, one node vs two (Parlor's Redis engine, Socket.IO's Redis adapter;
    /// needs redis-server).
    W5,
    /// Slow consumer: fan-out with one member that reads nothing (Parlor only).
    Slow,
    /// Failover storm: three Redis nodes (or --nodes N), one SIGKILLed, its sessions resume on
    /// the others (Parlor only; needs redis-server).
    W6,
    /// Big room: every session logs in to one room with user_status_notify (Parlor only).
    W7,
    /// An audience at scale: every session in ONE room on Redis nodes (6; --quick 2), large in
    /// the sense of protocol §9.10; counts, a host's broadcasts to all, whole-list walks (Parlor
    /// only; needs redis-server; not in `all`).
    W8,
    /// Redis failing over under fan-out: a primary, a replica and three redis-sentinels, three
    /// nodes on `redis+sentinel://…`, every room's broadcaster at 10 messages/s; the primary is
    /// SIGKILLed (Parlor only; needs redis-server and redis-sentinel; not in `all`).
    Failover,
    /// Every workload but slow, failover and soak: W1–W7, one after the other, each against the targets
    /// it applies to (W4, W6, W7: Parlor; W5: Parlor and Socket.IO). With --nodes, W3 and W4 run
    /// on Redis nodes as well as against each target's one process.
    All,
    /// Soak: steady logins, logouts, messages and cuts for --minutes; RSS and open files
    /// must stay flat (Parlor only).
    Soak,
}

/// `parlor bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The workload: w1 (login storm), w2 (fan-out), w3 (idle hold), w4 (reconnect storm),
    /// w5 (fan-out on Redis, one node vs two; parlor and socketio), w6 (failover storm: a node
    /// SIGKILLed), w7 (big room), slow (one member reads nothing), failover (the Redis primary
    /// SIGKILLed under fan-out, Sentinel promotes its replica), all (w1–w7) or soak (--minutes of
    /// churn).
    /// (Not needed with --from, which reads the reports of an earlier run instead.)
    #[arg(value_enum, required_unless_present = "from")]
    pub workload: Option<Workload>,
    /// Which server(s), comma-separated; each is started as a child process unless --server-url.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "parlor")]
    pub target: Vec<Kind>,
    /// Small sizes (hundreds of sessions, a few seconds); exits non-zero when counts are wrong.
    #[arg(long)]
    pub quick: bool,
    /// Print the results as JSON on stdout (the tables go to stderr then).
    #[arg(long)]
    pub json: bool,
    /// Use a running server instead of starting one (`ws://127.0.0.1:7700/v1/ws`).
    #[arg(long)]
    pub server_url: Option<String>,
    /// The PID of that server, to read its CPU time and RSS from /proc.
    #[arg(long, requires = "server_url")]
    pub server_pid: Option<u32>,
    /// Start this `parlor` binary as the Parlor server (default: the one running the generator),
    /// e.g. an older build, so that one generator measures both.
    #[arg(long, conflicts_with = "server_url")]
    pub server_bin: Option<std::path::PathBuf>,
    /// Override the number of sessions (W2: room members).
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Override the number of rooms (W1, W3, W4, W6, failover).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Sessions connecting at the same time (the rest queue).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// W2: seconds per rate step.
    #[arg(long)]
    pub step_secs: Option<f64>,
    /// W2: offered rates, messages per second, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// W4 on Redis nodes (--nodes): one second after every connection is dropped, stop Redis
    /// (SIGSTOP) for this many seconds, then let it go on (SIGCONT): a stall in the middle of
    /// the storm. Every session must still come back with nothing lost.
    #[arg(long)]
    pub pause_redis: Option<f64>,
    /// W3: seconds to hold the sessions before measuring.
    #[arg(long)]
    pub hold_secs: Option<f64>,
    /// The app tokens are signed for, as ID:SECRET (default: the dev app).
    #[arg(long, default_value = "1:parlor-dev-secret")]
    pub app: String,
    /// How W4 cuts every connection: `proxy` (a fault proxy in the path, three sockets per
    /// session in this process) or `server` (the admin API's drop-connections, one socket per
    /// session, so the full size fits a 20 000-file limit).
    #[arg(long, value_enum, default_value = "proxy")]
    pub cut: Cut,
    /// Soak: how long, in minutes (--quick: 20 s).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Write SVG charts of the results into this directory (W2/W5 delivered rate and p99 by
    /// offered rate, W1 login latency distribution, W4/W6 sessions back over time).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Run nothing: read the reports of an earlier `--json` run from FILE (e.g.
    /// docs/benchmarks-run.json), print their tables and, with --plot, draw their charts.
    #[arg(long, value_name = "FILE")]
    pub from: Option<std::path::PathBuf>,
    /// Spread the sessions of w1, w3 or w4 over N generator processes (each under the per-process
    /// file limit), their figures merged. A server the generator starts is still one process
    /// with that limit: the full sizes need --server-url to a server allowed more files.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Internal: run as worker K of N of a --workers run (sessions K, K+N, …), meeting the
    /// parent at barriers on stdin/stdout.
    #[arg(long, hide = true, requires = "server_url")]
    pub worker: Option<String>,
    /// W3 / W4 / W6 on Redis nodes: start `redis-server` and N `parlor serve --redis` nodes,
    /// member k of room r on node (k + r) mod N; 0: as many as the size needs (each under 18 000
    /// sockets; W6: the survivors of the kill too). The sessions always run in --workers
    /// processes (raised so that each holds under 18 000; a W4 / W6 room count not a multiple of
    /// them is rounded up); W4 cuts with drop-connections, W6 SIGKILLs the last node. 1 (the
    /// default): one memory-engine server (W6: its three nodes in one generator process).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Internal: a --workers worker of a --nodes run: every node's URL, comma-separated.
    #[arg(long, hide = true, value_delimiter = ',', requires = "worker")]
    pub node_urls: Vec<String>,
    /// W8: seconds of churn (2 000 members, --quick n/25, out and in every second); 0: none.
    /// Default 10 (--quick 3).
    #[arg(long)]
    pub churn: Option<u64>,
    /// An argument for every `parlor serve` the bench starts (repeatable), e.g.
    /// `--server-arg=--full-presence-up-to=0` for W7 with full presence at every size.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Give up on a workload after this many seconds (a soak gets its length on top).
    #[arg(long, default_value_t = 600)]
    pub time_limit: u64,
}

/// How W4 cuts the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cut {
    /// A `parlor_testkit::FaultProxy` between the generator and the server.
    Proxy,
    /// `POST /v1/admin/apps/{app}/connections/drop` on the server.
    Server,
}

/// The soak's length: `--minutes`, else 10, or 20 s with `--quick`.
pub(crate) fn soak_minutes(args: &BenchArgs) -> f64 {
    args.minutes.unwrap_or(if args.quick { 20.0 / 60.0 } else { 10.0 })
}

/// How many sessions workload `w` runs: `--sessions`, else its full or `--quick` size.
pub(crate) fn sessions_of(args: &BenchArgs, w: Workload) -> usize {
    if let Some(n) = args.sessions {
        return n;
    }
    match (w, args.quick) {
        (Workload::W1, false) => 10_000,
        (Workload::W1, true) => 500,
        (Workload::W2 | Workload::W5, false) => 5_000,
        (Workload::W2, true) => 200,
        (Workload::W5, true) => 100,
        (Workload::W3, false) => 100_000,
        (Workload::W3, true) => 500,
        (Workload::W4, false) => 20_000,
        (Workload::W4, true) => 300,
        (Workload::W6, false) => 15_000,
        (Workload::W6, true) => 150,
        (Workload::Failover, false) => 1_000,
        (Workload::Failover, true) => 150,
        (Workload::W7, false) => 10_000,
        (Workload::W7, true) => 1_200,
        (Workload::W8, false) => 100_000,
        (Workload::W8, true) => 3_000,
        (Workload::Slow, false) => 1_000,
        (Workload::Slow, true) => 100,
        (Workload::Soak, false) => 100,
        (Workload::Soak, true) => 30,
        (Workload::All, _) => 0,
    }
}

/// How many rooms workload `w` spreads `sessions` over: `--rooms`, else its default.
pub(crate) fn rooms_of(args: &BenchArgs, w: Workload, sessions: usize) -> usize {
    if let Some(n) = args.rooms {
        return n.max(1);
    }
    match (w, args.quick) {
        (Workload::W1, false) => 100,
        (Workload::W1, true) => 10,
        (Workload::W3, _) => (sessions / 100).max(1),
        // About 100 members a room at any size (200 rooms at the default 20 000).
        (Workload::W4, false) => (sessions / 100).max(1),
        (Workload::W4, true) => 6,
        (Workload::W6, false) => (sessions / 100).max(1),
        (Workload::W6, true) => 6,
        (Workload::Failover, false) => 20,
        (Workload::Failover, true) => 6,
        (Workload::Soak, false) => 10,
        (Workload::Soak, true) => 5,
        _ => 1,
    }
}
