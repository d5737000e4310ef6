//! [`RedisCluster`]: three `redis-server` masters joined into a Redis Cluster.
//!
//! Why: a Parlor deployment may point `--redis` at a cluster, where a key lives on one of
//! several nodes chosen by its hash slot. Room keys must share a hash tag (`{room}…`) so that
//! one room's keys (and a script touching several of them) land on one node; tests check that
//! against a real cluster, not a mock of one.
//!
//! The three masters hold all 16384 slots between them, with no replicas (`redis-cli --cluster
//! create … --cluster-replicas 0`), or, from [`RedisCluster::start_with_replicas`], each with one
//! replica that takes over its slots when it dies (a failover test kills the primary of the
//! app's slot, [`RedisCluster::master_for`], and waits for [`RedisCluster::wait_new_master`]). Each node's cluster bus gets its own free port through
//! `--cluster-port`, since the default `PORT + 10000` may be taken or out of range.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::redis::RedisServer;
use super::resp::{self, Reply};
use super::{free_port, kill_and_reap, log_stdio, log_tail, poll_until, require_program, wait_child};

const CREATE_TIMEOUT: Duration = Duration::from_secs(20);
const OK_TIMEOUT: Duration = Duration::from_secs(15);
const CMD_TIMEOUT: Duration = Duration::from_secs(5);

/// Three cluster-mode masters (and their replicas); every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Start three masters, join them with `redis-cli --cluster create`, and wait (bounded)
    /// until `CLUSTER INFO` says `cluster_state:ok` on all three. Panics with the relevant log
    /// if any step does not complete, or if `redis-server`/`redis-cli` is missing.
    pub fn start() -> RedisCluster {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisCluster::start`] returning the error instead of panicking.
    pub fn try_start() -> Result<RedisCluster, String> {
        Self::try_start_with(0)
    }

    /// Three masters with one replica each (six nodes).
    pub fn start_with_replicas() -> RedisCluster {
        Self::try_start_with(1).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with(replicas: usize) -> Result<RedisCluster, String> {
        let cli = require_program("redis-cli");
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            nodes.push(start_node()?);
        }
        let dir = tempfile::Builder::new()
            .prefix("parlor-redis-cluster-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let log = dir.path().join("cluster-create.log");
        let (out, err) = log_stdio(&log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut create = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| n.addr().to_string()))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
        match wait_child(&mut create, CREATE_TIMEOUT) {
            Some(status) if status.success() => {}
            Some(status) => {
                return Err(format!("redis-cli --cluster create failed ({status}):\n{}", log_tail(&log, 40)));
            }
            None => {
                kill_and_reap(&mut create);
                return Err(format!(
                    "redis-cli --cluster create did not finish within {CREATE_TIMEOUT:?}:\n{}",
                    log_tail(&log, 40)
                ));
            }
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        let all_ok = poll_until(OK_TIMEOUT, Duration::from_millis(50), || {
            let ok =
                cluster.nodes.iter().all(|n| cluster_info(n.addr()).is_some_and(|i| i.contains("cluster_state:ok")));
            // With replicas: every replica in sync, so that a failover has one to promote.
            let synced = replicas == 0
                || cluster.nodes.iter().filter(|n| role(n.addr()).as_deref() == Some("slave")).count() == 3
                    && cluster.nodes.iter().all(|n| role(n.addr()).as_deref() != Some("slave") || link_up(n.addr()));
            (ok && synced).then_some(())
        });
        if all_ok.is_none() {
            let states: Vec<String> = cluster
                .nodes
                .iter()
                .map(|n| format!("{}: {}", n.addr(), cluster_info(n.addr()).unwrap_or_else(|| "<no answer>".into())))
                .collect();
            return Err(format!(
                "the Redis cluster did not reach cluster_state:ok within {OK_TIMEOUT:?}:\n{}",
                states.join("\n")
            ));
        }
        Ok(cluster)
    }

    /// The address of the master that holds `key`'s slot now (asked of the live nodes).
    pub fn master_for(&self, key: &str) -> Option<SocketAddr> {
        self.nodes.iter().find_map(|n| {
            let slot = match resp::call(n.addr(), &["CLUSTER", "KEYSLOT", key], CMD_TIMEOUT) {
                Ok(Reply::Int(s)) => s,
                _ => return None,
            };
            let Ok(Reply::Array(ranges)) = resp::call(n.addr(), &["CLUSTER", "SLOTS"], CMD_TIMEOUT) else {
                return None;
            };
            ranges.iter().find_map(|r| match r {
                Reply::Array(a) if a.len() >= 3 => {
                    let (Reply::Int(lo), Reply::Int(hi), Reply::Array(m)) = (&a[0], &a[1], &a[2]) else {
                        return None;
                    };
                    (*lo <= slot && slot <= *hi).then(|| format!("{}:{}", m[0], m[1]).parse().ok()).flatten()
                }
                _ => None,
            })
        })
    }

    /// Wait until a node other than `old` is the master of `key`'s slot and the cluster is `ok`
    /// on the live nodes.
    pub fn wait_new_master(&self, key: &str, old: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
        poll_until(timeout, Duration::from_millis(50), || {
            let m = self.master_for(key).filter(|m| *m != old)?;
            cluster_info(m).is_some_and(|i| i.contains("cluster_state:ok")).then_some(m)
        })
    }

    /// The node listening on `addr`, to stop it.
    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut RedisServer> {
        self.nodes.iter_mut().find(|n| n.addr() == addr)
    }

    /// The tails of every node's log.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("\n--- redis {} ---\n{}\n", n.port(), n.log_tail())).collect()
    }

    /// `redis://127.0.0.1:PORT` of each node (masters and replicas: the seeds of a client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The masters, e.g. to pause or stop one.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Run one command like a cluster client: send it to the first node and follow `MOVED`
    /// redirects (at most 3). Returns the reply as text; panics on other errors or timeouts.
    pub fn cmd(&self, args: &[&str]) -> String {
        let mut addr = self.nodes[0].addr();
        for _ in 0..4 {
            match resp::call(addr, args, CMD_TIMEOUT) {
                Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                    let target = e.split_whitespace().nth(2).unwrap_or_default();
                    addr = target.parse().unwrap_or_else(|_| panic!("cannot parse the MOVED target in {e:?}"));
                }
                Ok(Reply::Error(e)) => panic!("redis cluster {args:?} at {addr} answered an error: {e}"),
                Ok(reply) => return reply.to_string(),
                Err(e) => panic!("redis cluster {args:?} at {addr}: {e}"),
            }
        }
        panic!("redis cluster {args:?}: too many MOVED redirects");
    }
}

fn start_node() -> Result<RedisServer, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let bus = free_port();
        let extra = vec![
            "--cluster-enabled".into(),
            "yes".into(),
            // Relative to --dir, which is the node's own temp dir.
            "--cluster-config-file".into(),
            format!("nodes-{port}.conf"),
            "--cluster-port".into(),
            bus.to_string(),
            "--cluster-node-timeout".into(),
            "2000".into(),
        ];
        match RedisServer::start_on(port, extra) {
            Ok(n) => return Ok(n),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn info_replication(addr: SocketAddr) -> Option<String> {
    match resp::call(addr, &["INFO", "replication"], Duration::from_millis(500)) {
        Ok(Reply::Bulk(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

fn role(addr: SocketAddr) -> Option<String> {
    info_replication(addr)?.lines().find_map(|l| l.strip_prefix("role:").map(|r| r.trim().to_string()))
}

fn link_up(addr: SocketAddr) -> bool {
    info_replication(addr).is_some_and(|i| i.contains("master_link_status:up"))
}

fn cluster_info(addr: SocketAddr) -> Option<String> {
    match resp::call(addr, &["CLUSTER", "INFO"], Duration::from_millis(500)) {
        Ok(Reply::Bulk(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster").field("nodes", &self.nodes).finish()
    }
}
