//! W5, fan-out over Redis nodes: W2's room, sender, rates and accounting in two configurations
//! of one run, for each target:
//!
//! - Parlor (`parlor+redis`): (a) every member on one Redis-backed node; (b) the same members
//!   split evenly over two Redis-backed nodes.
//! - Socket.IO (`--target socketio`): (a) one Node process with Socket.IO's default in-memory
//!   adapter (what a one-process deployment runs: the adapter would only add a publish per
//!   broadcast that nobody reads); (b) two processes sharing a Redis through
//!   `@socket.io/redis-adapter`, the multi-node setup Socket.IO documents.
//!
//! In (b) member `j` connects straight to server `j % 2`; the sender is member 0, on the first.
//! The generator starts `redis-server` (a free loopback port, no persistence, a fresh one per
//! configuration) and the servers as child processes, and always stops them. Every message is
//! numbered and every receiver must get each exactly once. The server's CPU per delivery is the
//! servers' plus Redis's; Redis's `used_memory` is reported before and after.

use std::time::Duration;

use anyhow::bail;

use crate::args::{sessions_of, Workload};
use crate::redis::{memory_metrics, start_nodes_of, Redis};
use crate::report::Report;
use crate::target::{Kind, Limits, Target};
use crate::w2::{fan_out, FanOut};
use crate::{Ctx, FD_MARGIN};

/// One configuration: `n` servers of `kind` (on a fresh Redis unless one Socket.IO process),
/// the fan-out, everything stopped.
async fn one(ctx: &Ctx, kind: Kind, n: usize, members: usize) -> anyhow::Result<Report> {
    let plural = if n == 1 { "" } else { "s" };
    let (label, redis) = match kind {
        Kind::Parlor => (format!("parlor+redis, {n} node{plural}"), Some(Redis::start().await?)),
        _ if n == 1 => (format!("{}, 1 process", kind.name()), None),
        _ => (format!("{}+redis-adapter, {n} processes", kind.name()), Some(Redis::start().await?)),
    };
    let mut nodes = match &redis {
        Some(r) => start_nodes_of(ctx, kind, r, n).await?,
        None => vec![Target::start(kind, &Limits::default(), &ctx.args.app).await?],
    };
    let mem0 = redis.as_ref().and_then(Redis::memory);
    let refs: Vec<&Target> = nodes.iter().collect();
    let also_cpu = redis.as_ref().map(|r| ("redis", r.pid));
    let spec = FanOut { workload: "w5", label, nodes: &refs, also_cpu, exactly_once: true };
    let rep = fan_out(ctx, &spec, members).await;
    let mem1 = redis.as_ref().and_then(Redis::memory);
    for t in &mut nodes {
        t.stop();
    }
    drop(redis);
    let mut rep = rep?;
    rep.metric("nodes", n as f64, "");
    // After the run: the members have just closed (Parlor keeps their sessions for the session
    // timeout, and the room's log).
    memory_metrics(&mut rep, mem0, mem1, members as f64, 1.0);
    Ok(rep)
}

/// Run W5 for one target: (a) one server, (b) two; the second report carries the ratio at the
/// peak.
pub async fn run(ctx: &Ctx, kind: Kind, members: usize) -> anyhow::Result<Vec<Report>> {
    // --quick runs two configurations: 1 s steps instead of W2's 1.5 s keep it under 20 s.
    let mut quick = ctx.clone();
    if ctx.args.quick && ctx.args.step_secs.is_none() {
        quick.args.step_secs = Some(1.0);
    }
    let ctx = &quick;
    let a = one(ctx, kind, 1, members).await?;
    tokio::time::sleep(Duration::from_millis(if ctx.args.quick { 100 } else { 2000 })).await;
    let mut b = one(ctx, kind, 2, members).await?;
    if let (Some(pa), Some(pb)) = (a.get("peak deliveries/s"), b.get("peak deliveries/s")) {
        if pa > 0.0 {
            b.metric("peak deliveries/s, 2 nodes / 1 node", pb / pa, "x");
        }
    }
    Ok(vec![a, b])
}

/// W5 for every asked target that has a multi-node setup (Parlor, Socket.IO), each bounded by
/// `--time-limit`.
pub async fn run_all(ctx: &Ctx, nofile: u64) -> anyhow::Result<Vec<Report>> {
    let args = &ctx.args;
    if args.server_url.is_some() {
        bail!("w5 starts its own redis-server and servers: --server-url does not apply");
    }
    let kinds: Vec<Kind> = args.target.iter().copied().filter(|k| matches!(k, Kind::Parlor | Kind::Socketio)).collect();
    if kinds.is_empty() {
        bail!("w5 runs against parlor and socketio (Socket.IO's Redis adapter): --target parlor,socketio");
    }
    let asked = sessions_of(args, Workload::W5);
    let sessions = asked.min((nofile as usize).saturating_sub(FD_MARGIN));
    if sessions < asked {
        ctx.progress.println(format!(
            "note: w5: {asked} sessions need more sockets than RLIMIT_NOFILE ({nofile}) allows one process; running {sessions}"
        ))?;
    }
    let deadline = Duration::from_secs(args.time_limit);
    let mut all = Vec::new();
    for kind in kinds {
        let label = if kind == Kind::Parlor { "parlor+redis" } else { "socketio+redis-adapter" };
        let mut reports = match tokio::time::timeout(deadline, run(ctx, kind, sessions)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let mut r = Report::new("w5", label, sessions);
                r.problem(format!("{e:#}"));
                vec![r]
            }
            Err(_) => {
                let mut r = Report::new("w5", label, sessions);
                r.problem(format!("time limit of {} s reached", args.time_limit));
                vec![r]
            }
        };
        for r in &mut reports {
            if sessions < asked {
                r.metric("sessions asked (clamped by RLIMIT_NOFILE)", asked as f64, "");
            }
            r.metric("RLIMIT_NOFILE", nofile as f64, "");
        }
        all.extend(reports);
    }
    Ok(all)
}
