//! [`RedisSentinel`]: a primary, one replica and three `redis-sentinel`s watching them.
//!
//! Why: `parlor serve --redis redis+sentinel://…/MASTER` must follow a failover — the primary
//! SIGKILLed, the sentinels agreeing it is down and promoting the replica — and that can only be
//! shown with the real programs. The sentinels run with `down-after-milliseconds` 1000 and
//! `failover-timeout` 3000, so a failover takes a few seconds, not the default half minute.
//! Starting waits (bounded) until every sentinel knows the replica and the two other sentinels:
//! before that a failover cannot get its quorum and majority.
//!
//! The replica replicates through a [`FaultProxy`], so that a test can make the primary
//! acknowledge writes the replica never gets ([`RedisSentinel::replication`]: black-hole it,
//! write, kill the primary, cut it): the writes a real failover loses. (SIGSTOP of the replica
//! would not do: the kernel still buffers the replication stream for it.) Must be started
//! inside a multi-threaded tokio runtime, which runs the proxy.

use std::fs;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis::RedisServer;
use super::resp::{self, Reply};
use super::{free_port, kill_and_reap, log_stdio, log_tail, poll_until, require_program};
use crate::FaultProxy;

/// The master's name the sentinels monitor.
pub const MASTER: &str = "parlor";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A primary, a replica and three sentinels; all killed on drop.
pub struct RedisSentinel {
    /// The servers: `[primary, replica]` at start (roles change with a failover).
    servers: Vec<RedisServer>,
    replication: FaultProxy,
    sentinels: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
}

impl RedisSentinel {
    /// Start everything and wait until the sentinels are ready to fail over. Panics, with the
    /// logs, when something does not come up.
    pub fn start() -> RedisSentinel {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisSentinel::start`] returning the error instead of panicking.
    pub fn try_start() -> Result<RedisSentinel, String> {
        let bin = require_program("redis-sentinel");
        let dir = tempfile::Builder::new()
            .prefix("parlor-sentinel-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let primary = RedisServer::try_start()?;
        let replication =
            FaultProxy::start(primary.addr()).map_err(|e| format!("cannot start the replication proxy: {e}"))?;
        let replica = start_replica(replication.addr().port())?;
        let mut s = RedisSentinel { servers: vec![primary, replica], replication, sentinels: Vec::new(), dir };
        // Three distinct ports (held together, so that `free_port` cannot hand one out twice).
        let held: Vec<std::net::TcpListener> =
            (0..3).filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok()).collect();
        let mut ports: Vec<u16> = held.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect();
        drop(held);
        while ports.len() < 3 {
            ports.push(free_port());
        }
        for (i, port) in ports.into_iter().enumerate() {
            let child = s.spawn_sentinel(&bin, i, port)?;
            s.sentinels.push((port, child));
        }
        // A port taken meanwhile by another process: that sentinel exits at once; again elsewhere.
        for i in 0..3 {
            for _ in 0..3 {
                let exited = poll_until(Duration::from_millis(300), Duration::from_millis(50), || {
                    s.sentinels[i].1.try_wait().ok().flatten()
                });
                if exited.is_none() {
                    break;
                }
                let port = free_port();
                let child = s.spawn_sentinel(&bin, i, port)?;
                s.sentinels[i] = (port, child);
            }
        }
        let ready = poll_until(READY_TIMEOUT, Duration::from_millis(100), || {
            s.sentinels
                .iter()
                .all(|(port, _)| {
                    let m = master_fields(*port);
                    m.get("num-slaves").is_some_and(|n| n == "1")
                        && m.get("num-other-sentinels").is_some_and(|n| n == "2")
                })
                .then_some(())
        });
        if ready.is_none() {
            return Err(format!("the sentinels did not discover each other within {READY_TIMEOUT:?}:\n{}", s.logs()));
        }
        Ok(s)
    }

    fn spawn_sentinel(&self, bin: &std::path::Path, i: usize, port: u16) -> Result<Child, String> {
        let conf = self.dir.path().join(format!("sentinel-{i}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 3000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            self.dir.path().display(),
            self.servers[0].port()
        );
        fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let log = self.dir.path().join(format!("sentinel-{i}.log"));
        let (out, err) = log_stdio(&log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        Command::new(bin)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/parlor`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The servers, `[primary, replica]` as started.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// The path from the replica to the primary.
    pub fn replication(&self) -> &FaultProxy {
        &self.replication
    }

    /// Mutable access to the servers (to stop one).
    pub fn servers_mut(&mut self) -> &mut [RedisServer] {
        &mut self.servers
    }

    /// The master's address as the first sentinel that answers reports it.
    pub fn master_addr(&self) -> Option<SocketAddr> {
        self.sentinels.iter().find_map(|(port, _)| {
            match resp::call(sentinel_addr(*port), &["SENTINEL", "get-master-addr-by-name", MASTER], ms(500)) {
                Ok(Reply::Array(a)) if a.len() == 2 => format!("{}:{}", a[0], a[1]).parse().ok(),
                _ => None,
            }
        })
    }

    /// Wait until the sentinels name a master other than `old` and it says `role:master`.
    pub fn wait_promoted(&self, old: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
        poll_until(timeout, Duration::from_millis(50), || {
            let addr = self.master_addr().filter(|a| *a != old)?;
            match resp::call(addr, &["ROLE"], ms(500)) {
                Ok(Reply::Array(a)) if a.first().is_some_and(|r| r.to_string() == "master") => Some(addr),
                _ => None,
            }
        })
    }

    /// The tails of every sentinel's and server's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, (port, _)) in self.sentinels.iter().enumerate() {
            let log = self.dir.path().join(format!("sentinel-{i}.log"));
            out.push_str(&format!("\n--- sentinel {port} ---\n{}\n", log_tail(&log, 20)));
        }
        for s in &self.servers {
            out.push_str(&format!("\n--- redis {} ---\n{}\n", s.port(), s.log_tail()));
        }
        out
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sentinel_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `SENTINEL MASTER parlor` as a map (empty when it does not answer).
fn master_fields(port: u16) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    if let Ok(Reply::Array(a)) = resp::call(sentinel_addr(port), &["SENTINEL", "MASTER", MASTER], ms(500)) {
        for kv in a.chunks(2) {
            if let [k, v] = kv {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

fn start_replica(primary: u16) -> Result<RedisServer, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let extra = vec!["--replicaof".into(), "127.0.0.1".into(), primary.to_string()];
        match RedisServer::start_on(free_port(), extra) {
            Ok(r) => {
                // In sync before anyone relies on it.
                let synced = poll_until(Duration::from_secs(10), ms(50), || {
                    matches!(r.try_cmd(&["INFO", "replication"], ms(500)),
                        Ok(Reply::Bulk(b)) if String::from_utf8_lossy(&b).contains("master_link_status:up"))
                    .then_some(())
                });
                return synced.map(|_| r).ok_or_else(|| "the replica did not sync with the primary".to_string());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            kill_and_reap(child);
        }
    }
}

impl std::fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSentinel").field("servers", &self.servers).finish()
    }
}
