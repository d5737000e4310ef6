//! The Redis under the Redis-engine workloads (W5, W6, W3/W4 `--nodes`): a `redis-server` child
//! process, the Parlor nodes on it, and what Redis itself holds (`INFO memory`'s `used_memory`,
//! `DBSIZE`), reported beside the nodes' RSS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::report::Report;
use crate::target::{die_with_parent, free_port, stop_child, Kind, Limits, Target};
use crate::Ctx;

/// A `redis-server` child process, stopped on drop.
#[derive(Debug)]
pub struct Redis {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its PID, for CPU time.
    pub pid: u32,
    addr: SocketAddr,
    child: Option<Child>,
}

/// What Redis holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisMem {
    /// `INFO memory`'s `used_memory`: bytes its allocator holds for data and overhead.
    pub used: u64,
    /// `DBSIZE`: keys in db 0.
    pub keys: u64,
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
        let child = cmd.spawn().with_context(|| {
            format!("cannot start {exe} (this workload needs Redis 7: apt-get install redis-server)")
        })?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut redis = Redis { url: format!("redis://{addr}"), pid: child.id(), addr, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if matches!(command(addr, &["PING"]), Ok(r) if r.starts_with(b"+PONG")) {
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

    /// Its memory and key count now (None when it does not answer).
    pub fn memory(&self) -> Option<RedisMem> {
        let info = command(self.addr, &["INFO", "memory"]).ok()?;
        let info = String::from_utf8_lossy(&info);
        let used = info.lines().find_map(|l| l.strip_prefix("used_memory:"))?.trim().parse().ok()?;
        let keys = command(self.addr, &["DBSIZE"]).ok()?;
        let keys = std::str::from_utf8(&keys).ok()?.trim().strip_prefix(':')?.parse().ok()?;
        Some(RedisMem { used, keys })
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

/// One RESP command on a fresh connection; the raw reply (a bulk string's body, or the line).
fn command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("redis closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else { continue };
        if buf[0] != b'$' {
            return Ok(buf[..eol].to_vec());
        }
        let len: usize = std::str::from_utf8(&buf[1..eol])?.parse()?;
        if buf.len() >= eol + 2 + len {
            return Ok(buf[eol + 2..eol + 2 + len].to_vec());
        }
    }
}

/// Redis's memory before and after, and its growth per session and per room (the same growth
/// divided by each: Redis does not tell which key is whose without a scan).
pub fn memory_metrics(rep: &mut Report, before: Option<RedisMem>, after: Option<RedisMem>, sessions: f64, rooms: f64) {
    let (Some(a), Some(b)) = (before, after) else { return };
    let mib = |x: u64| x as f64 / 1048576.0;
    rep.metric("redis used_memory before", mib(a.used), "MiB");
    rep.metric("redis used_memory after", mib(b.used), "MiB");
    rep.metric("redis keys after", b.keys as f64, "");
    let grown = b.used as f64 - a.used as f64;
    if sessions > 0.0 {
        rep.metric("redis used_memory per session", grown / sessions / 1024.0, "KiB");
    }
    if rooms > 0.0 {
        rep.metric("redis used_memory per room", grown / rooms / 1024.0, "KiB");
    }
}

/// Start `n` servers of `kind` on `redis`: Parlor nodes `n1` … `nN` (`--redis URL --node-id`),
/// or Socket.IO processes with the Redis adapter on it.
pub(crate) async fn start_nodes_of(ctx: &Ctx, kind: Kind, redis: &Redis, n: usize) -> anyhow::Result<Vec<Target>> {
    let mut nodes = Vec::with_capacity(n);
    for i in 1..=n {
        let extra_args = match kind {
            Kind::Parlor => vec!["--redis".into(), redis.url.clone(), "--node-id".into(), format!("n{i}")],
            Kind::Socketio => vec![redis.url.clone()],
            k => bail!("{} has no Redis nodes here", k.name()),
        };
        let extra_args = [extra_args, ctx.args.server_args.clone()].concat();
        let limits = Limits { server_bin: ctx.args.server_bin.clone(), extra_args, ..Limits::default() };
        nodes.push(Target::start(kind, &limits, &ctx.args.app).await.with_context(|| format!("node n{i}"))?);
    }
    Ok(nodes)
}

/// Start `n` Parlor nodes on `redis`, node ids `n1` … `nN`.
pub(crate) async fn start_nodes(ctx: &Ctx, redis: &Redis, n: usize) -> anyhow::Result<Vec<Target>> {
    start_nodes_of(ctx, Kind::Parlor, redis, n).await
}
