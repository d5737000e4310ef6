//! W3, W4 and W6 on several Redis nodes (`--nodes N`): the full sizes (100 000 idle sessions, a
//! 20 000-session reconnect storm, 60 000 sessions with a node SIGKILLed) need more sockets than
//! one process may hold, on the server side as well as the generator's. The generator starts `redis-server` and N `parlor serve
//! --redis` nodes (as W5/W6 do) and always runs the sessions in `--workers` generator processes
//! ([`crate::workers`], at least one, raised so that each holds under [`PER_PROCESS`] sockets);
//! the parent reads the nodes' RSS and CPU (summed) and Redis's memory at the workers'
//! barriers.
//!
//! Member `k` of room `r` is on node `(k + r) % N` (as in W6), so every room with at least N
//! members spans all nodes and its events cross Redis. W4 with nodes cuts with the admin API's
//! drop-connections (on one node: with Redis every node drops its own), never a proxy, so each
//! session is one socket here and one in a node.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::args::{rooms_of, sessions_of, Workload};
use crate::redis::{start_nodes, Redis, RedisMem};
use crate::report::Report;
use crate::target::{Endpoint, Kind, Target};
use crate::{name_of, Ctx, Cut, FD_MARGIN};

/// Sockets one process (node or generator) is given at most when the counts are chosen
/// automatically: under the box's 20 000-file limit with room for listeners and Redis.
pub const PER_PROCESS: usize = 18_000;

/// The servers of one run: one (the memory engine, or an external one) or Redis nodes.
#[derive(Debug)]
pub struct Servers<'a> {
    /// The nodes; session `i` logs in to `nodes[home(i)]`.
    pub nodes: Vec<&'a Target>,
    /// Their Redis, when the generator started it.
    pub redis: Option<&'a Redis>,
}

impl<'a> Servers<'a> {
    /// One server.
    pub fn one(t: &'a Target) -> Servers<'a> {
        Servers { nodes: vec![t], redis: None }
    }

    /// What the servers are.
    pub fn kind(&self) -> Kind {
        self.nodes[0].kind
    }

    /// The node (index) session `i` of a run with `rooms` rooms logs in to: member `i / rooms`
    /// of room `i % rooms` on node `(i / rooms + i % rooms) % N`.
    pub fn home(&self, i: usize, rooms: usize) -> usize {
        home_of(i, rooms, self.nodes.len())
    }

    /// Where session `i` logs in.
    pub fn endpoint(&self, i: usize, rooms: usize) -> Endpoint {
        self.nodes[self.home(i, rooms)].endpoint()
    }

    /// Where session `i` logs in and then, in turn, the other nodes: each member of a room
    /// starts on a different one (as a balancer spreads them), so that a dead node's sessions
    /// land evenly on the others instead of all on the next one (W6 at 60 000 on 5 nodes: 24 000
    /// on one survivor, past its file limit).
    pub fn endpoints(&self, i: usize, rooms: usize) -> Vec<Endpoint> {
        let home = self.home(i, rooms);
        let n = self.nodes.len();
        let shift = i / rooms.max(1);
        let others = (0..n.saturating_sub(1)).map(|k| (home + 1 + (shift + k) % (n - 1)) % n);
        std::iter::once(home).chain(others).map(|k| self.nodes[k].endpoint()).collect()
    }

    /// CPU time of every node plus Redis; None when a PID is unknown.
    pub fn cpu(&self) -> Option<Duration> {
        let nodes = self.nodes.iter().map(|t| t.cpu()).sum::<Option<Duration>>()?;
        match self.redis {
            Some(r) => Some(nodes + crate::sys::cpu_time(r.pid)?),
            None => Some(nodes),
        }
    }

    /// Redis's CPU time alone.
    pub fn redis_cpu(&self) -> Option<Duration> {
        self.redis.and_then(|r| crate::sys::cpu_time(r.pid))
    }

    /// Each node's `/metrics` text, None for a node that does not answer (W6's killed one).
    pub fn metrics(&self) -> Vec<Option<String>> {
        self.nodes.iter().map(|t| crate::srv_hist::scrape_text(t.addr)).collect()
    }

    /// The nodes' RSS, summed.
    pub fn rss(&self) -> Option<u64> {
        self.nodes.iter().map(|t| t.rss()).sum()
    }

    /// Redis's memory now.
    pub fn redis_memory(&self) -> Option<RedisMem> {
        self.redis.and_then(Redis::memory)
    }
}

/// Member `i / rooms` of room `i % rooms` is on node `(i / rooms + i % rooms) % nodes`.
fn home_of(i: usize, rooms: usize, nodes: usize) -> usize {
    (i / rooms.max(1) + i % rooms.max(1)) % nodes.max(1)
}

/// True when workload `w` runs on Redis nodes here: W3 / W4 / W6 with `--nodes` other than 1
/// (0: as many as the size needs), or a worker of such a run.
pub fn applies(ctx: &Ctx, w: Workload) -> bool {
    w == Workload::W8
        || matches!(w, Workload::W3 | Workload::W4 | Workload::W6)
            && (ctx.args.nodes != 1 || !ctx.args.node_urls.is_empty())
}

/// Run W3 or W4 on Redis nodes; every failure is the report's problem.
pub async fn run(ctx: &Ctx, w: Workload, nofile: u64) -> Report {
    let fut = async {
        if ctx.is_worker() {
            return worker(ctx, w).await;
        }
        parent(ctx, w, nofile).await
    };
    match tokio::time::timeout(Duration::from_secs(ctx.args.time_limit), fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let mut r = Report::new(name_of(w), "parlor+redis", sessions_of(&ctx.args, w));
            r.problem(format!("{e:#}"));
            r
        }
        Err(_) => {
            let mut r = Report::new(name_of(w), "parlor+redis", sessions_of(&ctx.args, w));
            r.problem(format!("time limit of {} s reached", ctx.args.time_limit));
            r
        }
    }
}

/// A worker: its share of the sessions against the nodes the parent started.
async fn worker(ctx: &Ctx, w: Workload) -> anyhow::Result<Report> {
    let targets: Vec<Target> =
        ctx.args.node_urls.iter().map(|u| Target::external(Kind::Parlor, u, None)).collect::<Result<_, _>>()?;
    let servers = Servers { nodes: targets.iter().collect(), redis: None };
    let n = sessions_of(&ctx.args, w);
    let rooms = rooms_of(&ctx.args, w, n);
    match w {
        Workload::W3 => crate::w3::run(ctx, &servers, n, rooms).await,
        Workload::W6 => crate::w6::run_nodes(ctx, &servers, n, rooms).await,
        Workload::W8 => crate::w8::run_nodes(ctx, &servers, n).await,
        _ => crate::w4::run_nodes(ctx, &servers, n, rooms).await,
    }
}

/// The parent: Redis, the nodes, the workers, the merged report.
async fn parent(ctx: &Ctx, w: Workload, nofile: u64) -> anyhow::Result<Report> {
    let args = &ctx.args;
    if args.server_url.is_some() {
        bail!("--nodes starts its own redis-server and nodes: --server-url does not apply");
    }
    // Alone, a peer target is a mistake to say; `all` runs this only with Parlor among its
    // targets, the nodes being Parlor's part of the run.
    let alone = args.workload != Some(Workload::All);
    if alone && args.target.iter().any(|k| *k != Kind::Parlor) {
        bail!("--nodes runs Parlor's Redis engine only (--target parlor)");
    }
    let asked = sessions_of(args, w);
    let per_process = PER_PROCESS.min((nofile as usize).saturating_sub(FD_MARGIN));
    // W6: the killed node's sessions move to the others, which then hold n / (N - 1) each.
    let spare = usize::from(w == Workload::W6);
    let nodes = match args.nodes {
        0 => (asked.div_ceil(per_process) + spare).max(2 + spare),
        // W8 is for several nodes: 6 (--quick 2) unless asked.
        1 if w == Workload::W8 => {
            if args.quick {
                2
            } else {
                6
            }
        }
        n => n.max(1 + spare),
    };
    let workers = args.workers.max(asked.div_ceil(per_process)).max(1);
    let sessions = asked.min((nodes - spare) * per_process).min(workers * per_process);
    let mut rooms = rooms_of(args, w, sessions);
    // A storm's room lies within one worker (its accounting is per room): round the count up.
    if matches!(w, Workload::W4 | Workload::W6) && !rooms.is_multiple_of(workers) {
        let to = rooms.next_multiple_of(workers);
        ctx.progress
            .println(format!("note: {}: {to} rooms (a multiple of {workers} workers, not {rooms})", name_of(w)))?;
        rooms = to;
    }
    if sessions < asked {
        ctx.progress.println(format!(
            "note: {}: {asked} sessions need more than {nodes} nodes × {per_process} sockets; running {sessions}",
            name_of(w)
        ))?;
    }
    if workers > args.workers {
        ctx.progress
            .println(format!("note: {}: {workers} generator workers (each < {per_process} sockets)", name_of(w)))?;
    }
    if w == Workload::W4 && args.cut == Cut::Proxy && args.nodes != 1 {
        ctx.progress.println("note: w4 --nodes cuts with the admin API's drop-connections (--cut server)")?;
    }
    let mut sub = ctx.clone();
    sub.args.workers = workers;
    sub.args.cut = Cut::Server;
    sub.args.sessions = Some(sessions);
    sub.args.rooms = Some(rooms);
    let mut redis = Redis::start().await?;
    let mut targets = start_nodes(ctx, &redis, nodes).await.context("starting the nodes")?;
    let servers = Servers { nodes: targets.iter().collect(), redis: Some(&redis) };
    let rep = crate::workers::run(&sub, &servers, w, sessions, rooms).await;
    drop(servers);
    for t in &mut targets {
        t.stop();
    }
    redis.stop();
    let mut rep = rep?;
    if w == Workload::W8 {
        crate::w8::finish(&mut rep);
    }
    rep.target = format!("parlor+redis, {nodes} nodes");
    rep.metric("nodes", nodes as f64, "");
    if sessions < asked {
        rep.metric("sessions asked (clamped by the nodes)", asked as f64, "");
    }
    rep.metric("RLIMIT_NOFILE", nofile as f64, "");
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_spans_every_node_and_the_nodes_hold_the_same() {
        let (n, rooms, nodes) = (600, 30, 4);
        let mut per_room = vec![std::collections::HashSet::new(); rooms];
        let mut per_node = vec![0usize; nodes];
        for i in 0..n {
            let h = home_of(i, rooms, nodes);
            per_room[i % rooms].insert(h);
            per_node[h] += 1;
        }
        assert!(per_room.iter().all(|s| s.len() == nodes), "{per_room:?}");
        assert!(per_node.iter().all(|&c| c == n / nodes), "{per_node:?}");
    }

    #[test]
    fn a_dead_nodes_sessions_fall_back_evenly_on_the_others() {
        let (n, rooms, nodes) = (600, 30, 5);
        let targets: Vec<Target> = (0..nodes)
            .map(|k| Target::external(Kind::Parlor, &format!("ws://127.0.0.1:{}/v1/ws", 7000 + k), None).unwrap())
            .collect();
        let servers = Servers { nodes: targets.iter().collect(), redis: None };
        let victim = targets[nodes - 1].addr;
        let mut first_fallback = vec![0usize; nodes];
        for i in (0..n).filter(|&i| servers.home(i, rooms) == nodes - 1) {
            let eps = servers.endpoints(i, rooms);
            assert_eq!(eps.len(), nodes);
            assert_eq!(eps[0].addr, victim);
            let mut seen: Vec<_> = eps.iter().map(|e| e.addr).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), nodes, "every node once");
            first_fallback[targets.iter().position(|t| t.addr == eps[1].addr).unwrap()] += 1;
        }
        let on_victim = n / nodes;
        assert_eq!(first_fallback[nodes - 1], 0);
        assert!(first_fallback[..nodes - 1].iter().all(|&c| c == on_victim / (nodes - 1)), "{first_fallback:?}");
    }
}
