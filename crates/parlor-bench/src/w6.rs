//! W6, failover storm (Parlor on Redis): one `redis-server` and three Redis-backed nodes (started
//! as in W5), `n` sessions in `rooms` rooms spread over the nodes so that every room spans all
//! three (member `k` of room `r` is on node `(k + r) % 3`, so the rooms' broadcasters are spread
//! too), one broadcaster per room. Then one node is SIGKILLed: its sessions lose their
//! connections and resume (§6) on the others — each tries its own node first and then the next
//! ones in turn, as a client behind a balancer would — within the session timeout, so nobody
//! may see a `user_delete`.
//!
//! Counted as in W4 (`w4::storm`): time until every cut session is back, events lost,
//! duplicated, `seq` gaps, false `user_delete`; any of these fails the run.
//!
//! With `--nodes N` (other than 1) the run is [`crate::cluster`]'s instead: N nodes, the sessions
//! in `--workers` processes ([`run_nodes`] in each), the last node SIGKILLed by the parent at
//! the workers' `kill` barrier, the nodes' own figures from their `/metrics` as for W4.

use anyhow::{bail, Context};

use crate::cluster::Servers;
use crate::redis::{memory_metrics, start_nodes, Redis};
use crate::report::Report;
use crate::target::Endpoint;
use crate::w4::{storm, CutBy, Storm};
use crate::Ctx;

/// Nodes in the cluster.
pub const NODES: usize = 3;

/// The node (0-based) that is killed: the last one.
const VICTIM: usize = NODES - 1;

/// Run W6.
pub async fn run(ctx: &Ctx, n: usize, rooms: usize) -> anyhow::Result<Report> {
    if ctx.args.server_url.is_some() {
        bail!("w6 starts its own redis-server and nodes: --server-url does not apply");
    }
    let rooms = rooms.clamp(1, n.max(1));
    let mut redis = Redis::start().await?;
    let mut nodes = start_nodes(ctx, &redis, NODES).await.context("starting the nodes")?;
    let eps: Vec<Endpoint> = nodes.iter().map(|t| t.endpoint()).collect();
    let mem0 = redis.memory();
    let rss0: Option<u64> = nodes.iter().map(|t| t.rss()).sum();
    let pids: Vec<Option<u32>> = nodes.iter().map(|t| t.pid).collect();
    let at_joined = |rep: &mut Report| {
        let rss: Option<u64> = pids.iter().map(|p| p.and_then(crate::sys::rss_bytes)).sum();
        if let (Some(a), Some(b)) = (rss0, rss) {
            rep.metric("nodes' RSS before", a as f64 / 1048576.0, "MiB");
            rep.metric("nodes' RSS with all logged in", b as f64 / 1048576.0, "MiB");
            rep.metric("nodes' RSS per session", (b as f64 - a as f64) / n as f64 / 1024.0, "KiB");
        }
        memory_metrics(rep, mem0, redis.memory(), n as f64, rooms as f64);
    };
    let addrs = |i: usize| {
        let home = (i / rooms + i % rooms) % NODES;
        (0..NODES).map(|k| eps[(home + k) % NODES].clone()).collect::<Vec<_>>()
    };
    let spec = Storm {
        workload: "w6",
        label: format!("parlor+redis, {NODES} nodes"),
        n,
        rooms,
        addrs: &addrs,
        cut: CutBy::Kill(&mut nodes[VICTIM]),
        at_joined: Some(&at_joined),
        period: None,
    };
    let rep = storm(ctx, spec).await;
    for t in &mut nodes {
        t.stop(); // the killed one is already gone
    }
    redis.stop();
    let mut rep = rep?;
    rep.metric("nodes", NODES as f64, "");
    Ok(rep)
}

/// A worker's share of W6 on `--nodes`: member `k` of room `r` on node `(k + r) % N`, resuming on
/// the next nodes in turn; the parent SIGKILLs the last node at the `kill` barrier.
pub async fn run_nodes(ctx: &Ctx, servers: &Servers<'_>, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let victim = servers.nodes.last().context("no nodes")?.addr;
    let addrs = |i| servers.endpoints(i, rooms);
    let label = format!("parlor+redis, {} nodes", servers.nodes.len());
    let cut = CutBy::KillByParent(victim);
    storm(ctx, Storm { workload: "w6", label, n, rooms, addrs: &addrs, cut, at_joined: None, period: None }).await
}
