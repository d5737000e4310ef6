//! The Redis connection of the engine: one server (a connection manager that reconnects by
//! itself), or a Redis Cluster (commands routed by their key's slot; every key of an app carries
//! the hash tag `{app}`, so each script runs on the one node that owns the app's slot).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to one Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connect: one URL is one server; several are the seed nodes of a cluster.
    pub async fn connect(urls: &[String], timeout: Duration) -> redis::RedisResult<(Conn, redis::Client)> {
        let first = urls.first().cloned().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        // Pub/sub: a plain client on the first node (classic PUBLISH reaches every node of a
        // cluster, so any one node hears every channel).
        let client = redis::Client::open(first)?;
        if urls.len() > 1 {
            let cluster = redis::cluster::ClusterClient::builder(urls.to_vec())
                .response_timeout(timeout)
                .connection_timeout(timeout)
                .retries(2)
                .build()?;
            return Ok((Conn::Cluster(cluster.get_async_connection().await?), client));
        }
        let cm = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        Ok((Conn::Single(ConnectionManager::new_with_config(client.clone(), cm).await?), client))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
