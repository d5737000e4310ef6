//! The Redis connection of the engine: one server (a connection manager that reconnects by
//! itself), the master named by Redis Sentinel (followed through a failover, see
//! [`super::sentinel`]), or a Redis Cluster (commands routed by their key's slot; every key of an
//! app carries the hash tag `{app}`, so each script runs on the one node that owns the app's
//! slot; a replica promoted after its primary died is found by the cluster client's slot
//! refresh).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::sentinel::{Sentinel, SCHEME};

/// A connection to one Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
    /// The master of a Sentinel deployment.
    Sentinel(Arc<Sentinel>),
}

/// Where the pub/sub subscriber connects, each time it (re)connects.
pub enum PubSubSource {
    /// One server.
    Fixed(redis::Client),
    /// The nodes of a cluster, tried in turn (classic PUBLISH reaches every node, replicas
    /// included, so any one hears every channel; a dead one is skipped).
    Seeds(Vec<redis::Client>, AtomicUsize),
    /// The current master, asked of the sentinels.
    Sentinel(Arc<Sentinel>),
}

impl PubSubSource {
    /// The client to subscribe with now.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match self {
            PubSubSource::Fixed(c) => Ok(c.clone()),
            PubSubSource::Seeds(all, next) => Ok(all[next.fetch_add(1, Ordering::Relaxed) % all.len()].clone()),
            PubSubSource::Sentinel(s) => s.master_client().await,
        }
    }
}

impl Conn {
    /// Connect: one URL is one server; several are the seed nodes of a cluster.
    /// `redis+sentinel://…` (split at its commas by the flag's parsing, joined again here) is
    /// a Sentinel deployment.
    pub async fn connect(urls: &[String], timeout: Duration) -> redis::RedisResult<(Conn, PubSubSource)> {
        let first = urls.first().cloned().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        if first.starts_with(SCHEME) {
            let s = Sentinel::connect(&urls.join(","), timeout).await?;
            return Ok((Conn::Sentinel(s.clone()), PubSubSource::Sentinel(s)));
        }
        if urls.len() > 1 {
            let cluster = redis::cluster::ClusterClient::builder(urls.to_vec())
                .response_timeout(timeout)
                .connection_timeout(timeout)
                // While a dead primary's replica is not yet promoted, a call fails fast (the
                // request is answered 1000004 and retried by its client) instead of spending
                // the whole timeout on reconnects and slot refreshes, which would hold the
                // connection's other frames (pings) that long.
                .retries(1)
                .min_retry_wait(10)
                .max_retry_wait(50)
                .build()?;
            let seeds = urls.iter().map(|u| redis::Client::open(u.as_str())).collect::<Result<_, _>>()?;
            return Ok((Conn::Cluster(cluster.get_async_connection().await?), PubSubSource::Seeds(seeds, 0.into())));
        }
        let client = redis::Client::open(first)?;
        let cm = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let conn = Conn::Single(ConnectionManager::new_with_config(client.clone(), cm).await?);
        Ok((conn, PubSubSource::Fixed(client)))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => s.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(s) => s.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(_) => 0,
        }
    }
}
