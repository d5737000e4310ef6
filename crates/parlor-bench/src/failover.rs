//! `failover`: Redis failing over under fan-out (Parlor only). A primary, a replica and three
//! `redis-sentinel`s (`parlor_testkit::RedisSentinel`: failover after 1 s of silence), three
//! `parlor serve --redis redis+sentinel://…/parlor` nodes, `n` sessions in `rooms` rooms spread
//! over the nodes as in W6 (every room spans all three), each room's broadcaster sending every
//! 100 ms (W2-style load: 10 messages/s per room, fanned out to every member). Then the primary
//! is SIGKILLed; the sentinels promote the replica and the nodes follow it.
//!
//! Measured with W4's storm ([`crate::w4::storm`], its cut being the kill): promoted after the
//! kill, the first `ok` to a broadcast sent after the kill, broadcasts answered 1000004 (retried
//! with the same `id`, §9.6) and failed (any other error), events lost / duplicated per member,
//! `seq` gaps, false `user_delete`, sessions whose connection broke (they resume), and the
//! nodes' own counts from `/metrics` (1000004s, their queue). Any loss, duplicate, gap, false
//! delete, failed broadcast or snapshot with `missed_messages` fails the run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parking_lot::Mutex;
use parlor_testkit::RedisSentinel;

use crate::cluster::Servers;
use crate::report::Report;
use crate::target::{Kind, Limits, Target};
use crate::w4::{storm, CutBy, Storm};
use crate::Ctx;

/// Parlor nodes on the Sentinel deployment.
const NODES: usize = 3;

/// Each room's broadcaster sends this often.
const PERIOD: Duration = Duration::from_millis(100);

/// The Sentinel deployment under the nodes.
pub struct Sentinel {
    redis: RedisSentinel,
}

impl Sentinel {
    /// SIGKILL the primary and wait (at most 30 s) until the sentinels name a promoted master;
    /// the time it took goes into the report.
    pub(crate) async fn kill_primary_and_wait(&mut self, rep: &mut Report) {
        let Some(old) = self.redis.master_addr() else {
            rep.problem("the sentinels name no master");
            return;
        };
        let Some(primary) = self.redis.servers_mut().iter_mut().find(|s| s.addr() == old) else {
            rep.problem(format!("the master {old} is none of the servers"));
            return;
        };
        primary.stop();
        let killed = Instant::now();
        let redis = &self.redis;
        match tokio::task::block_in_place(|| redis.wait_promoted(old, Duration::from_secs(30))) {
            Some(_) => rep.metric("replica promoted after the kill", killed.elapsed().as_secs_f64() * 1e3, "ms"),
            None => rep.problem(format!("no replica promoted within 30 s{}", redis.logs())),
        }
    }
}

/// Run the failover workload.
pub async fn run(ctx: &Ctx, n: usize, rooms: usize) -> anyhow::Result<Report> {
    if ctx.args.server_url.is_some() {
        bail!("failover starts its own Redis, sentinels and nodes: --server-url does not apply");
    }
    let redis = tokio::task::block_in_place(RedisSentinel::try_start).map_err(anyhow::Error::msg)?;
    let mut sentinel = Sentinel { redis };
    let url = sentinel.redis.url();
    let mut nodes = Vec::with_capacity(NODES);
    for i in 1..=NODES {
        let extra_args = vec!["--redis".into(), url.clone(), "--node-id".into(), format!("n{i}")];
        let extra_args = [extra_args, ctx.args.server_args.clone()].concat();
        let limits = Limits { server_bin: ctx.args.server_bin.clone(), extra_args, ..Limits::default() };
        nodes.push(Target::start(Kind::Parlor, &limits, &ctx.args.app).await.with_context(|| format!("node n{i}"))?);
    }
    let servers = Servers { nodes: nodes.iter().collect(), redis: None };
    let rooms = rooms.clamp(1, n.max(1));
    let addrs = |i| servers.endpoints(i, rooms);
    // The nodes' counters once everyone is in, before the traffic and the kill.
    let before: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());
    let at_joined = |_: &mut Report| *before.lock() = servers.metrics();
    let spec = Storm {
        workload: "failover",
        label: format!("parlor+sentinel, {NODES} nodes"),
        n,
        rooms,
        addrs: &addrs,
        cut: CutBy::RedisPrimary(&mut sentinel),
        at_joined: Some(&at_joined),
        period: Some(PERIOD),
    };
    let rep = storm(ctx, spec).await;
    let after = servers.metrics();
    drop(servers);
    for t in &mut nodes {
        t.stop();
    }
    drop(sentinel);
    let mut rep = rep?;
    crate::workers::storm_figures(&mut rep, &before.lock(), &after);
    rep.metric("nodes", NODES as f64, "");
    rep.metric("broadcast period per room", PERIOD.as_secs_f64() * 1e3, "ms");
    Ok(rep)
}
