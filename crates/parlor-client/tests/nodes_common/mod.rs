//! Helpers for the multi-process tests in `nodes.rs`: Redis, `parlor serve --redis` nodes and
//! HAProxy as real processes (from `parlor_testkit::procs`), a raw protocol client that pings
//! by itself and checks `seq` contiguity on every channel, a Rust SDK client that records what
//! it reports, and a tiny HTTP client for `/healthz` and the admin API.
//!
//! Everything waits with a deadline; nothing sleeps in place of an assertion.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parlor_protocol::token::{self, Claims};
use parlor_testkit::{bin_path, Haproxy, Node, RedisServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[path = "../common/changes.rs"]
mod changes;
pub mod failover;
mod peer;
mod sdk;
#[allow(unused_imports)]
pub use peer::*;
pub use sdk::*;

pub const APP: u32 = 7;
pub const SECRET: &str = "some-secret";
/// The nodes' session timeout (`--session-timeout`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// The nodes' heartbeat (`--heartbeat`).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token for `user` valid for `ttl_s` seconds.
pub fn token_for(user: &str, ttl_s: u64) -> String {
    token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now_s(), ttl_s, format!("n-{user}")))
}

/// A token for `user` valid for an hour.
pub fn token(user: &str) -> String {
    token_for(user, 3600)
}

/// Await `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| panic!("{what}: not done within {limit:?}"))
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The arguments of one node (after `serve --listen …`).
pub fn node_args(redis: &RedisServer, id: &str) -> Vec<String> {
    node_args_url(&redis.url(), id)
}

/// The arguments of one node on the Redis deployment `url` (`--redis`).
pub fn node_args_url(url: &str, id: &str) -> Vec<String> {
    [
        "--redis",
        url,
        "--node-id",
        id,
        "--app",
        &format!("{APP}:{SECRET}"),
        "--heartbeat",
        "1s",
        "--session-timeout",
        "4s",
        "--retention",
        "60s",
        // The tests send ~10 messages per second per user; the defaults (2/s, 10/s) would refuse.
        "--user-message-rate",
        "100",
        "--room-message-rate",
        "1000",
        "--request-rate",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One Redis, `n` nodes (ids `n1`…), optionally HAProxy in front of them.
pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Haproxy>,
}

impl Cluster {
    pub fn start(n: usize, with_haproxy: bool) -> Cluster {
        let redis = RedisServer::start();
        let nodes: Vec<Node> =
            (1..=n).map(|i| Node::start(&bin_path(), &node_args(&redis, &format!("n{i}")))).collect();
        let haproxy = with_haproxy.then(|| Haproxy::start(&nodes.iter().map(Node::addr).collect::<Vec<_>>()));
        Cluster { redis, nodes, haproxy }
    }

    pub fn lb(&self) -> &Haproxy {
        self.haproxy.as_ref().expect("started with HAProxy")
    }

    /// The tails of every node's log (and HAProxy's), for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!("\n--- node n{} ({}) log tail ---\n{}\n", i + 1, n.addr(), n.log_tail()));
        }
        if let Some(h) = &self.haproxy {
            out.push_str(&format!("\n--- haproxy log tail ---\n{}\n", h.log_tail()));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One HTTP/1.1 request with `Connection: close`; the status and the body as JSON
/// (`Value::String` of the text when it is not JSON). Bounded by 5 s.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect for HTTP");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write HTTP request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read HTTP response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    };
    tokio::time::timeout(secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no answer within 5 s"))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /healthz` of a node.
pub async fn healthz(addr: SocketAddr) -> Value {
    let (status, v) = http(addr, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "healthz of {addr}: {v}");
    v
}

/// The admin view of a room from a node: `Some(room)` or `None` on 404.
pub async fn admin_room(addr: SocketAddr, room: &str) -> Option<Value> {
    let (status, v) = http(addr, "GET", &format!("/v1/admin/apps/{APP}/rooms/{room}"), None).await;
    match status {
        200 => Some(v),
        404 => None,
        other => panic!("GET room {room} on {addr}: {other} {v}"),
    }
}

/// The sorted ids of a room's users (admin view), each `users` entry either a user or an id.
pub fn admin_users(room: &Value) -> Vec<String> {
    let mut v: Vec<String> = room["users"]
        .as_array()
        .map(|a| a.iter().map(|u| u["id"].as_str().or(u.as_str()).unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The sorted ids of a room's streams (admin view).
pub fn admin_streams(room: &Value) -> Vec<String> {
    let mut v: Vec<String> = room["streams"]
        .as_array()
        .map(|a| a.iter().map(|s| s["id"].as_str().or(s.as_str()).unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Raw protocol client

enum Inbound {
    Frame(Instant, Value),
    End(Instant, u16),
}
