//! Webhook delivery with Redis: each event once across the nodes, in order per app.
//!
//! The scripts append every event of an app with webhooks to the Redis Stream
//! `parlor:{APP}:hooks`, in the same atomic step as the change (`hook` in `lua/lib.lua`), so the
//! stream holds the app's events in the order the changes were applied, whichever node applied
//! them. Every node runs one task per such app; the one holding the app's lease
//! (`parlor:{APP}:hooks:lease`, [`LEASE`], renewed every [`RENEW`]) reads the stream from its
//! head, sends one event at a time ([`Sender::send`]: retries, backoff, dead letters) and then
//! deletes it — only while it still holds the lease, in one script. What is in the stream is
//! therefore exactly what is still to send, and the stream's length is the queue
//! (`parlor_webhook_queue`), bounded by `webhook.queue` in the scripts.
//!
//! When the lease holder dies (or cannot reach Redis for [`LEASE`]), another node takes the
//! lease and starts at the head: an event whose delivery was under way (sent, not yet deleted)
//! is sent again, with the same `id`. So: exactly once while the lease holder lives; at least
//! once, deduplicated by `id`, across a node's death.

use std::time::Duration;

use tokio::time::Instant;

use super::gate::Gated as Conn;
use crate::webhook::deliver::{Endpoint, Sender};

/// How long a lease lasts without renewal: how long the app's events wait after its holder died.
pub const LEASE: Duration = Duration::from_secs(5);
/// How often the holder renews it (also while an event's retries are under way).
pub const RENEW: Duration = Duration::from_secs(1);
/// How often the holder looks at an empty stream.
const POLL: Duration = Duration::from_millis(50);
/// Events read at once.
const BATCH: usize = 100;

/// Take or renew the lease (KEYS[1]) for node ARGV[1], ARGV[2] ms.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0";

/// Delete the sent entry ARGV[2] of the stream KEYS[2], if node ARGV[1] holds the lease KEYS[1].
const DONE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XDEL', KEYS[2], ARGV[2])
return 1";

/// The keys of one app's webhook delivery.
struct Keys {
    stream: String,
    lease: String,
}

/// One app's delivery task on this node (aborted when the engine is dropped).
pub(super) async fn run(app: u32, node: String, conn: Conn, sender: Sender, ep: Endpoint) {
    let keys = Keys { stream: format!("parlor:{{{app}}}:hooks"), lease: format!("parlor:{{{app}}}:hooks:lease") };
    let (claim, done) = (redis::Script::new(CLAIM), redis::Script::new(DONE));
    let mut conn = conn;
    loop {
        if !holds(&claim, &keys, &node, &mut conn).await {
            tokio::time::sleep(RENEW).await;
            continue;
        }
        let batch = read(&keys, &mut conn).await;
        if batch.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        for (id, body) in batch {
            if !send_holding(app, &sender, &ep, &body, &claim, &keys, &node, &mut conn).await {
                break;
            }
            let deleted: redis::RedisResult<i64> =
                done.key(&keys.lease).key(&keys.stream).arg(&node).arg(&id).invoke_async(&mut conn).await;
            if !matches!(deleted, Ok(1)) {
                break;
            }
        }
    }
}

async fn holds(claim: &redis::Script, keys: &Keys, node: &str, conn: &mut Conn) -> bool {
    let r: redis::RedisResult<i64> =
        claim.key(&keys.lease).arg(node).arg(LEASE.as_millis() as u64).invoke_async(conn).await;
    matches!(r, Ok(1))
}

/// The oldest events still to send, and the queue's length in the gauge.
async fn read(keys: &Keys, conn: &mut Conn) -> Vec<(String, String)> {
    let r: redis::RedisResult<redis::streams::StreamRangeReply> =
        redis::cmd("XRANGE").arg(&keys.stream).arg("-").arg("+").arg("COUNT").arg(BATCH).query_async(conn).await;
    let Ok(reply) = r else {
        return Vec::new();
    };
    let len: redis::RedisResult<u64> = redis::cmd("XLEN").arg(&keys.stream).query_async(conn).await;
    if let Ok(len) = len {
        let app = keys.stream.split(['{', '}']).nth(1).unwrap_or("").to_string();
        metrics::gauge!("parlor_webhook_queue", "app" => app).set(len as f64);
    }
    reply
        .ids
        .into_iter()
        .filter_map(|e| {
            let body: Option<String> = e.get("b");
            Some((e.id, body?))
        })
        .collect()
}

/// Send one event, renewing the lease meanwhile. False when the lease was lost (the send is
/// then abandoned: the new holder sends the event).
#[allow(clippy::too_many_arguments)]
async fn send_holding(
    app: u32,
    sender: &Sender,
    ep: &Endpoint,
    body: &str,
    claim: &redis::Script,
    keys: &Keys,
    node: &str,
    conn: &mut Conn,
) -> bool {
    let send = sender.send(app, ep, body);
    tokio::pin!(send);
    let mut next = Instant::now() + RENEW;
    loop {
        tokio::select! {
            _ = &mut send => return true,
            _ = tokio::time::sleep_until(next) => {
                if !holds(claim, keys, node, conn).await {
                    tracing::warn!(app, "webhook lease lost during a delivery: the next holder sends the event again");
                    return false;
                }
                next = Instant::now() + RENEW;
            }
        }
    }
}
