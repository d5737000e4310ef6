//! A connection to the master that Redis Sentinel names, which follows a failover.
//!
//! `redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER`: the sentinels are asked for MASTER's
//! address (and the master is checked with `ROLE`), then one multiplexed connection serves every
//! call. A call that fails because the connection broke or the server is no longer a writable
//! master (`READONLY`, `MASTERDOWN`, `LOADING`) drops it; the next call asks the sentinels again.
//! While no master is known, calls fail at once (the request is answered 1000004 and retried by
//! its client). The `ConnectionManager` of a plain URL cannot do this: it reconnects to one
//! fixed address.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The URL scheme of a Sentinel deployment.
pub const SCHEME: &str = "redis+sentinel://";

/// How soon after a failed attempt the sentinels are asked again (calls fail meanwhile).
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// `redis+sentinel://h1:p1,h2:p2/master` → (`redis://h1:p1`, …), `master`.
pub fn parse(url: &str) -> Option<(Vec<String>, String)> {
    let rest = url.strip_prefix(SCHEME)?;
    let (hosts, master) = rest.split_once('/')?;
    let master = master.trim_end_matches('/');
    let sentinels: Vec<String> =
        hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(|h| format!("redis://{h}")).collect();
    (!sentinels.is_empty() && !master.is_empty() && !master.contains('/')).then(|| (sentinels, master.to_string()))
}

/// The master's connection, re-made through the sentinels when it fails.
pub struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master_name: String,
    timeout: Duration,
    state: Mutex<State>,
    /// One (re)connect at a time; the others wait for its result.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The connection and its generation (a failed call drops only the one it used).
    conn: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    /// The master's address last connected to.
    master: Option<String>,
    /// How many times the master's address changed (a failover seen by this node).
    switches: u64,
    failed_at: Option<std::time::Instant>,
}

impl Sentinel {
    /// Ask the sentinels of `url` and connect to the master once (an error if there is none).
    pub async fn connect(url: &str, timeout: Duration) -> RedisResult<Arc<Sentinel>> {
        let (sentinels, master_name) = parse(url).ok_or_else(|| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "expected redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER",
            ))
        })?;
        let client = SentinelClient::build(sentinels, master_name.clone(), None, SentinelServerType::Master)?;
        let s = Arc::new(Sentinel {
            client: tokio::sync::Mutex::new(client),
            master_name,
            timeout,
            state: Mutex::new(State::default()),
            connecting: tokio::sync::Mutex::new(()),
        });
        s.current().await?;
        Ok(s)
    }

    /// A client for the current master, found through the sentinels (the pub/sub subscriber
    /// connects with it; bounded by the timeout).
    pub async fn master_client(&self) -> RedisResult<redis::Client> {
        let found = tokio::time::timeout(self.timeout * 2, async { self.client.lock().await.async_get_client().await });
        found.await.map_err(|_| timed_out("asking the sentinels for the master timed out"))?
    }

    async fn current(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.state.lock().conn.clone() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        {
            let st = self.state.lock();
            if let Some(c) = st.conn.clone() {
                return Ok(c);
            }
            if st.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return Err(RedisError::from((ErrorKind::Io, "no Redis master known (Sentinel)")));
            }
        }
        match self.reconnect().await {
            Ok(c) => Ok(c),
            Err(e) => {
                self.state.lock().failed_at = Some(std::time::Instant::now());
                tracing::warn!(master = %self.master_name, error = %e, "no Redis master reachable through Sentinel");
                Err(e)
            }
        }
    }

    async fn reconnect(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let client = self.master_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn = client.get_multiplexed_async_connection_with_config(&cfg).await?;
        let mut st = self.state.lock();
        st.generation += 1;
        if st.master.as_deref().is_some_and(|m| m != addr) {
            st.switches += 1;
            tracing::warn!(master = %self.master_name, from = ?st.master, to = %addr, "Redis master changed (Sentinel failover)");
            metrics::counter!("parlor_redis_failovers_total").increment(1);
        } else {
            tracing::info!(master = %self.master_name, addr = %addr, "connected to the Redis master");
        }
        st.master = Some(addr);
        st.failed_at = None;
        st.conn = Some((st.generation, conn.clone()));
        Ok((st.generation, conn))
    }

    /// After a failed call on connection `generation`: drop it if the error means this is no
    /// longer a usable master.
    fn failed(&self, generation: u64, e: &RedisError) {
        let code = e.code().unwrap_or_default();
        let gone = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || matches!(code, "READONLY" | "MASTERDOWN" | "LOADING")
            || e.to_string().contains("READONLY");
        let mut st = self.state.lock();
        if gone && st.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::warn!(master = %self.master_name, error = %e, "Redis master connection lost; asking the sentinels again");
            st.conn = None;
        }
    }

    /// One command on the master.
    pub fn req_packed_command<'a>(&'a self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut c) = self.current().await?;
            let r = c.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.failed(generation, e);
            }
            r
        })
    }

    /// A pipeline on the master.
    pub fn req_packed_commands<'a>(
        &'a self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut c) = self.current().await?;
            let r = c.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &r {
                self.failed(generation, e);
            }
            r
        })
    }
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url() {
        let (s, m) = parse("redis+sentinel://127.0.0.1:26379,10.0.0.2:26380/mymaster").unwrap();
        assert_eq!(s, vec!["redis://127.0.0.1:26379", "redis://10.0.0.2:26380"]);
        assert_eq!(m, "mymaster");
        assert!(parse("redis+sentinel://127.0.0.1:26379").is_none());
        assert!(parse("redis+sentinel:///m").is_none());
        assert!(parse("redis://127.0.0.1:6379").is_none());
    }
}
