//! This node's pub/sub side of the Redis engine: one subscriber connection (re-made when it
//! drops, every channel subscribed again), the room channels of the rooms this node has sessions
//! in, this node's control channel (`parlor:node:<id>`: kicks, direct events, closes for its
//! sessions, sent by scripts run on other nodes) and the deployment-wide `parlor:all`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::PubSubSink;
use serde_json::Value;

use super::conn::PubSubSource;
use super::fanout::{Ev, Fanout, Msg};
use crate::engine::{Joining, SessionKey};
use crate::frame::Frame;

/// A message of a script for one session: `[app, key, conn, kind, a, b, c]`.
#[derive(Debug, Clone)]
pub struct Ctl {
    app: u32,
    key: SessionKey,
    conn: u64,
    kind: String,
    a: Value,
    b: Value,
    c: Value,
}

impl Ctl {
    /// Read one from its JSON array.
    pub fn parse(v: &Value) -> Option<Ctl> {
        let a = v.as_array()?;
        let get = |i: usize| a.get(i).cloned().unwrap_or(Value::Null);
        Some(Ctl {
            app: a.first()?.as_u64()? as u32,
            key: a.get(1)?.as_u64()?,
            conn: a.get(2)?.as_u64().unwrap_or(0),
            kind: a.get(3)?.as_str()?.to_string(),
            a: get(4),
            b: get(5),
            c: get(6),
        })
    }
}

/// What `/healthz` shows of the deployment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    /// Whether Redis answered just now.
    pub redis: bool,
    /// The nodes seen in the last few seconds.
    pub nodes: Vec<String>,
}

/// Note this node as alive (a sorted set of nodes by last beat, wall ms).
pub async fn beat(conn: &super::gate::Gated, node_id: &str, now_ms: u64) {
    let mut c = conn.clone();
    let _: redis::RedisResult<()> = redis::pipe()
        .cmd("ZADD")
        .arg("parlor:nodes")
        .arg(now_ms)
        .arg(node_id)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg("parlor:nodes")
        .arg("-inf")
        .arg(now_ms.saturating_sub(60_000))
        .ignore()
        .query_async(&mut c)
        .await;
}

/// Whether Redis answers, and the nodes that beat in the last 3 s.
pub async fn health(conn: &super::gate::Gated, now_ms: u64) -> NodeHealth {
    let mut c = conn.clone();
    let nodes: redis::RedisResult<Vec<String>> = redis::cmd("ZRANGEBYSCORE")
        .arg("parlor:nodes")
        .arg(now_ms.saturating_sub(3_000))
        .arg("+inf")
        .query_async(&mut c)
        .await;
    match nodes {
        Ok(nodes) => NodeHealth { redis: true, nodes },
        Err(_) => NodeHealth { redis: false, nodes: Vec::new() },
    }
}

/// This node's subscriptions.
pub struct Subscriptions {
    node_id: String,
    fanout: Arc<Fanout>,
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    channels: Mutex<HashSet<String>>,
    /// The subscriber's task (see [`Subscriptions::stop`]).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The connection ([`Fanout::new_connection`]) subscribed now, 0 while none is.
    up: AtomicU64,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions").field("node", &self.node_id).finish()
    }
}

/// The control channel of node `id`.
pub fn node_channel(id: &str) -> String {
    format!("parlor:node:{id}")
}

/// How long a subscribe (or connecting the subscriber) may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The channel every node hears.
pub const ALL: &str = "parlor:all";

impl Subscriptions {
    /// Connect the subscriber (and keep it connected) in a task of its own.
    /// Each (re)connect asks `source` where to connect: after a failover that is the new master
    /// (Sentinel) or another node (cluster), and every channel is subscribed again.
    pub fn start(source: PubSubSource, node_id: String, fanout: Arc<Fanout>) -> Arc<Subscriptions> {
        let subs = Arc::new(Subscriptions {
            node_id,
            fanout,
            sink: tokio::sync::Mutex::new(None),
            channels: Mutex::new(HashSet::new()),
            task: Mutex::new(None),
            up: AtomicU64::new(0),
        });
        let me = subs.clone();
        *subs.task.lock() = Some(tokio::spawn(async move { me.run(source).await }));
        subs
    }

    /// End the subscriber (its engine is gone: a node dropped in-process must not keep hearing
    /// its rooms).
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }

    async fn run(self: Arc<Self>, source: PubSubSource) {
        loop {
            let client = match source.client().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "redis subscriber: no server to connect to yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match tokio::time::timeout(SUBSCRIBE_TIMEOUT, client.get_async_pubsub()).await {
                Ok(Ok(ps)) => {
                    let (mut sink, mut stream) = ps.split();
                    let mut wanted: Vec<String> = self.channels.lock().iter().cloned().collect();
                    wanted.push(node_channel(&self.node_id));
                    wanted.push(ALL.to_string());
                    let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(&wanted)).await;
                    if matches!(subscribed, Ok(Ok(()))) {
                        // Before its first message: the master may be another one now.
                        let connection = self.fanout.new_connection();
                        *self.sink.lock().await = Some(sink);
                        self.up.store(connection, Ordering::SeqCst);
                        tracing::info!(channels = wanted.len(), "redis subscriber connected");
                        while let Some(msg) = stream.next().await {
                            self.handle(msg.get_channel_name(), msg.get_payload_bytes());
                        }
                        tracing::warn!("redis subscriber lost; reconnecting (gaps are filled from the logs)");
                    }
                    self.up.store(0, Ordering::SeqCst);
                    *self.sink.lock().await = None;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "redis subscriber cannot connect yet"),
                Err(_) => tracing::debug!("redis subscriber: connecting timed out"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The subscriber connection that hears this node's control channel now; 0 while it does
    /// not (a message published for this node's sessions meanwhile is lost: see `retell.rs`).
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    /// Subscribe to a room's channel (once). Bounded: with the subscriber connection down, the
    /// channel is subscribed when it comes back (and gaps are filled from the logs).
    pub async fn subscribe(&self, channel: String) {
        if !self.channels.lock().insert(channel.clone()) {
            return;
        }
        let sink = self.sink.lock().await.clone();
        if let Some(mut sink) = sink {
            let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(&channel)).await;
        }
    }

    /// Stop hearing the rooms this node has no session in any more.
    pub async fn unsubscribe_unused(&self) {
        for channel in self.fanout.forget_unused() {
            self.unsubscribe(channel).await;
        }
    }

    /// Stop hearing a room's channel.
    pub async fn unsubscribe(&self, channel: String) {
        if !self.channels.lock().remove(&channel) {
            return;
        }
        let sink = self.sink.lock().await.clone();
        if let Some(mut sink) = sink {
            let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.unsubscribe(&channel)).await;
        }
    }

    fn handle(&self, channel: &str, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        if channel == node_channel(&self.node_id) {
            if let Some(ctl) = serde_json::from_str::<Value>(text).ok().as_ref().and_then(Ctl::parse) {
                self.apply_ctl(&ctl);
            }
        } else if channel == ALL {
            let v = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            let from_me = v.get("from").and_then(Value::as_str) == Some(self.node_id.as_str());
            if let (Some(app), false) = (v.get("drop").and_then(Value::as_u64), from_me) {
                self.fanout.deliver.drop_connections(app as u32);
            }
        } else if let Some((app, room)) = parse_room_channel(channel) {
            if let Some(ev) = parse_event(text) {
                self.fanout.incoming(app, room, ev);
            }
        }
    }

    /// Apply a script's message for a session of this node.
    pub fn apply_ctl(&self, ctl: &Ctl) {
        let d = &self.fanout.deliver;
        match ctl.kind.as_str() {
            "frame" => {
                // A `kicked` names the membership it ended (`<epoch>|<ord>`, lib.lua `kick`): it
                // ends here first, so that no event of the room, still on its way through the
                // room's channel from before the departure, follows the `kicked` (sim seed
                // 34064). A late copy does not end a newer membership ([`Joining::ends`]).
                if let (Some(room), Some((epoch, ord))) =
                    (ctl.b.as_str(), ctl.c.as_str().and_then(|m| m.rsplit_once('|')))
                {
                    if let Ok(ord) = ord.parse() {
                        d.left(ctl.app, room, ctl.key, Joining::of(epoch, ord));
                    }
                }
                if let Some(f) = ctl.a.as_str() {
                    d.to_session(ctl.key, Frame::from(f.to_string()));
                }
            }
            "close" => {
                let code = ctl.a.as_u64().unwrap_or(1001) as u16;
                let reason = ctl.b.as_str().unwrap_or("");
                let abort = ctl.c.as_bool().unwrap_or(false);
                d.close(ctl.key, (ctl.conn != 0).then_some(ctl.conn), code, reason, abort);
            }
            other => tracing::debug!(kind = other, app = ctl.app, "unknown control message"),
        }
    }
}

/// `parlor:{APP}:ev:ROOM` → (APP, ROOM).
fn parse_room_channel(channel: &str) -> Option<(u32, &str)> {
    let rest = channel.strip_prefix("parlor:{")?;
    let (app, rest) = rest.split_once("}:ev:")?;
    Some((app.parse().ok()?, rest))
}

/// `c|seq|author|epoch|frame` (c: `r` or `u`), or `l|key|rseq|useq|epoch|ord`.
fn parse_event(text: &str) -> Option<Msg> {
    if let Some(rest) = text.strip_prefix("l|") {
        let mut parts = rest.split('|');
        let key = parts.next()?.parse().ok()?;
        let at = [parts.next()?.parse().ok()?, parts.next()?.parse().ok()?];
        let epoch = parts.next()?.to_string();
        let ord = parts.next().and_then(|o| o.parse().ok()).unwrap_or(u64::MAX);
        return Some(Msg::Left { key, at, epoch, ord });
    }
    let mut parts = text.splitn(5, '|');
    let c = parts.next()?;
    let ch = if c == "u" { 1 } else { 0 };
    let seq = parts.next()?.parse().ok()?;
    let author = parts.next()?.parse().ok()?;
    let epoch = parts.next()?.to_string();
    let frame = Frame::from(parts.next()?.to_string());
    Some(Msg::Event(Ev { ch, seq, author, epoch, frame }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channels_and_events() {
        assert_eq!(parse_room_channel("parlor:{7}:ev:r|1"), Some((7, "r|1")));
        assert_eq!(parse_room_channel("parlor:node:x"), None);
        let Some(Msg::Event(ev)) = parse_event("u|3|12|ep|{\"t\":\"event\",\"x\":\"a|b\"}") else {
            panic!("an event");
        };
        assert_eq!((ev.ch, ev.seq, ev.author, ev.epoch.as_str()), (1, 3, 12, "ep"));
        assert_eq!(ev.frame.as_str(), "{\"t\":\"event\",\"x\":\"a|b\"}");
        let Some(Msg::Left { key, at, epoch, ord }) = parse_event("l|12|4|7|ep|3") else {
            panic!("a departure");
        };
        assert_eq!((key, at, epoch.as_str(), ord), (12, [4, 7], "ep", 3));
    }
}
