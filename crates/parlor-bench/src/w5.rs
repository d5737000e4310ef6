//! W5, fan-out over Redis nodes: W2's room, sender, rates and accounting against Parlor on the
//! Redis engine, in two configurations of one run:
//!
//! - (a) every member on one Redis-backed node;
//! - (b) the same members split evenly over two Redis-backed nodes (member `j` connects straight
//!   to node `j % 2`; the sender is member 0, on the first node).
//!
//! The generator starts `redis-server` (a free loopback port, no persistence) and the nodes
//! (`parlor serve --redis URL --node-id nX`) as child processes, a fresh Redis for each
//! configuration, and always stops them. Every message is numbered and every receiver must get
//! each exactly once. The server's CPU per delivery is the nodes' plus Redis's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::report::Report;
use crate::target::{die_with_parent, free_port, stop_child, Kind, Limits, Target};
use crate::w2::{fan_out, FanOut};
use crate::Ctx;

/// A `redis-server` child process, stopped on drop.
#[derive(Debug)]
pub struct Redis {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its PID, for CPU time.
    pub pid: u32,
    child: Option<Child>,
}

impl Redis {
    /// Start `redis-server` (or `$PARLOR_REDIS_SERVER`) on a free loopback port, without
    /// snapshots or an append-only file, and wait until it answers PING.
    pub async fn start() -> anyhow::Result<Redis> {
        let port = free_port()?;
        let exe = std::env::var("PARLOR_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&exe);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
        cmd.args(["--daemonize", "no", "--loglevel", "warning"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {exe} (W5 needs Redis 7: apt-get install redis-server)"))?;
        let mut redis = Redis { url: format!("redis://127.0.0.1:{port}"), pid: child.id(), child: Some(child) };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(addr) {
                return Ok(redis);
            }
            if let Some(c) = redis.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("redis-server exited at start: {status}");
                }
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop it (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when a Redis at `addr` answers `PING` with `+PONG`.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Start `n` Parlor nodes on `redis`, node ids `n1` … `nN`.
pub(crate) async fn start_nodes(ctx: &Ctx, redis: &Redis, n: usize) -> anyhow::Result<Vec<Target>> {
    let mut nodes = Vec::with_capacity(n);
    for i in 1..=n {
        let limits = Limits {
            server_bin: ctx.args.server_bin.clone(),
            extra_args: vec!["--redis".into(), redis.url.clone(), "--node-id".into(), format!("n{i}")],
            ..Limits::default()
        };
        nodes.push(Target::start(Kind::Parlor, &limits, &ctx.args.app).await.with_context(|| format!("node n{i}"))?);
    }
    Ok(nodes)
}

/// One configuration: a fresh Redis, `n` nodes, the fan-out, everything stopped.
async fn one(ctx: &Ctx, n: usize, members: usize) -> anyhow::Result<Report> {
    let mut redis = Redis::start().await?;
    let mut nodes = start_nodes(ctx, &redis, n).await?;
    let refs: Vec<&Target> = nodes.iter().collect();
    let label = format!("parlor+redis, {n} node{}", if n == 1 { "" } else { "s" });
    let spec = FanOut { workload: "w5", label, nodes: &refs, also_cpu: Some(("redis", redis.pid)), exactly_once: true };
    let rep = fan_out(ctx, &spec, members).await;
    for t in &mut nodes {
        t.stop();
    }
    redis.stop();
    let mut rep = rep?;
    rep.metric("nodes", n as f64, "");
    Ok(rep)
}

/// Run W5: (a) one node, (b) two nodes; the second report carries the ratio at the peak.
pub async fn run(ctx: &Ctx, members: usize) -> anyhow::Result<Vec<Report>> {
    // --quick runs two configurations: 1 s steps instead of W2's 1.5 s keep it under 20 s.
    let mut quick = ctx.clone();
    if ctx.args.quick && ctx.args.step_secs.is_none() {
        quick.args.step_secs = Some(1.0);
    }
    let ctx = &quick;
    let a = one(ctx, 1, members).await?;
    tokio::time::sleep(Duration::from_millis(if ctx.args.quick { 100 } else { 2000 })).await;
    let mut b = one(ctx, 2, members).await?;
    if let (Some(pa), Some(pb)) = (a.get("peak deliveries/s"), b.get("peak deliveries/s")) {
        if pa > 0.0 {
            b.metric("peak deliveries/s, 2 nodes / 1 node", pb / pa, "x");
        }
    }
    Ok(vec![a, b])
}
