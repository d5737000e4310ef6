//! Webhooks on two nodes sharing one Redis: each event is sent once (not once per node), in the
//! order of the room, with the same bodies as on the memory engine; and a backend that only
//! consumes them rebuilds who is in which room and finds what the admin API says.
//!
//! Needs Debian's `redis-server` (the README's test command installs it); real time, short
//! settings.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::receiver::{admin_picture, peer, rebuild, timeout_and_expiry, Mode, Receiver};
use common::*;
use parlor_server::webhook::verify;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::RedisServer;
use serde_json::{json, Value};

async fn node(redis: &RedisServer, id: &str, url: &str) -> Server {
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.redis = vec![redis.url()];
    c.node_id = id.to_string();
    c.webhooks = vec![url.to_string()];
    c.webhook.retry_base = Duration::from_millis(20);
    c.session_timeout = Duration::from_secs(4);
    c.token_warning = Duration::from_secs(0);
    Server::start(c).await.expect("a node on Redis")
}

fn logouts(bodies: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = bodies
        .iter()
        .filter(|b| b["event"] == "user_logout")
        .map(|b| format!("{}:{}:{}", b["room"].as_str().unwrap(), b["user"]["id"].as_str().unwrap(), b["reason"]))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_event_once_in_order_and_a_backend_rebuilds_the_rooms() {
    let rx = Receiver::start(Mode::FailFirst(2)).await;
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a", &rx.url).await, node(&redis, "b", &rx.url).await);
    let mut alice = peer(&a, "alice").await;
    let mut bob = peer(&b, "bob").await;
    let mut carol = peer(&a, "carol").await;
    let mut dave = peer(&b, "dave").await;
    alice.login("r1").await;
    bob.login("r1").await;
    carol.login("r1").await;
    assert_eq!(code(&bob.request(json!({"t":"publish","room":"r1","stream":"cam-b","extra":"x"})).await), 0);
    assert_eq!(code(&alice.request(json!({"t":"room_extra","room":"r1","key":"k","value":"v"})).await), 0);
    assert_eq!(code(&bob.request(json!({"t":"unpublish","room":"r1","stream":"cam-b"})).await), 0);
    dave.login("r2").await;
    bob.login("r2").await;
    assert_eq!(code(&bob.request(json!({"t":"publish","room":"r1","stream":"cam-b2"})).await), 0);
    assert_eq!(code(&bob.request(json!({"t":"logout","room":"r1"})).await), 0);
    let mut alice2 = peer(&b, "alice").await; // a duplicate login on the other node
    alice2.login("r1").await;
    assert!(b.node.admin_kick(APP, "r1", "carol", "test", tokio::time::Instant::now()).await.expect("reachable"));
    assert!(a.node.admin_close_room(APP, "r2", "done", tokio::time::Instant::now()).await.expect("reachable"));
    // erin times out, frank's token expires, zed logs in last (common/receiver.rs).
    let (_gina, mut zed) = timeout_and_expiry(&rx, &a, &b, &mut alice2).await;

    let bodies = rx.accepted();
    // Exactly once: no id twice, and every request the receiver got but the two refused was a
    // distinct event (the two 500s were retries of the first).
    let ids: HashSet<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), bodies.len(), "an event sent twice: {bodies:#?}");
    assert_eq!(rx.got().len(), bodies.len() + 2);
    let sent = a.node.webhooks.sent.load(Relaxed) + b.node.webhooks.sent.load(Relaxed);
    assert!(sent <= bodies.len() as u64, "both nodes sent: {sent} for {} events", bodies.len());
    for g in rx.got() {
        assert_eq!(verify(SECRET, &g.signature, g.body.as_bytes(), now_s(), 300), Ok(()));
    }
    // Order in r1, as the room applied it.
    let r1: Vec<String> = bodies
        .iter()
        .filter(|b| b["room"] == "r1")
        .map(|b| {
            let who = b["user"]["id"].as_str().or(b["stream"]["id"].as_str()).unwrap_or("");
            format!("{}:{who}", b["event"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        r1,
        [
            "room_created:",
            "user_login:alice",
            "user_login:bob",
            "user_login:carol",
            "stream_added:cam-b",
            "room_extra_updated:",
            "stream_deleted:cam-b",
            "stream_added:cam-b2",
            "stream_deleted:cam-b2",
            "user_logout:bob",
            "user_logout:alice",
            "user_login:alice",
            "user_logout:carol",
        ],
        "{bodies:#?}"
    );
    let extra = bodies.iter().find(|b| b["event"] == "room_extra_updated").unwrap();
    assert_eq!(extra["extra"]["user"], json!({"id":"alice","name":"alice name"}), "{extra}");
    assert_eq!(extra["app_id"], APP);
    let deleted = bodies.iter().find(|b| b["event"] == "stream_deleted").unwrap();
    assert_eq!((&deleted["reason"], &deleted["reason_name"]), (&json!(1), &json!("stopped")), "{deleted}");
    assert_eq!(deleted["stream"], json!({"id":"cam-b","user":{"id":"bob","name":"bob name"},"extra":"x"}));
    assert_eq!(
        logouts(&bodies),
        [
            r#"r1:alice:"duplicate_login""#,
            r#"r1:bob:"logout""#,
            r#"r1:carol:"admin_kick""#,
            r#"r2:bob:"room_closed""#,
            r#"r2:dave:"room_closed""#,
            r#"r3:erin:"timeout""#,
            r#"r3:frank:"token_expired""#,
        ]
    );
    let codes: Vec<u64> = bodies.iter().filter_map(|b| b["code"].as_u64()).collect();
    assert_eq!(codes.len(), 5, "every kick has its code: {codes:?}");

    // The backend's picture is the admin API's, on either node.
    let picture = rebuild(&bodies);
    assert_eq!(picture, admin_picture(a.addr, APP, SECRET).await);
    assert_eq!(picture, admin_picture(b.addr, APP, SECRET).await);
    let users = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let expected =
        [("r1".to_string(), users(&["alice"])), ("r3".into(), users(&["gina"])), ("r4".into(), users(&["zed"]))];
    assert_eq!(picture, expected.into_iter().collect());
    zed.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_log_is_bounded_and_a_hanging_receiver_does_not_delay_the_room() {
    let rx = Receiver::start(Mode::Hang).await;
    let redis = RedisServer::start();
    let start = |id: &'static str| {
        let (redis, url) = (&redis, rx.url.clone());
        async move {
            let mut c = ServerConfig::for_tests(APP, SECRET);
            c.redis = vec![redis.url()];
            c.node_id = id.to_string();
            c.webhooks = vec![url];
            c.webhook.queue = 10;
            c.webhook.timeout = Duration::from_secs(600);
            c.request_rate = 1000;
            c.room_message_rate = 1000;
            c.user_message_rate = 1000;
            Server::start(c).await.expect("a node on Redis")
        }
    };
    let (a, b) = (start("a").await, start("b").await);
    let mut alice = peer(&a, "alice").await;
    let mut bob = peer(&b, "bob").await;
    alice.login("r").await;
    bob.login("r").await; // 3 events; the first is under way (and stays in the log until sent)
    rx.wait_until("the first attempt", |g| !g.is_empty()).await;
    for i in 0..40 {
        let v = json!({"t":"room_extra","room":"r","key":"k","value":format!("v{i}")});
        assert_eq!(code(&alice.request(v).await), 0);
        assert_eq!(code(&alice.request(json!({"t":"broadcast","room":"r","message":format!("m{i}")})).await), 0);
    }
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(bob.channel_events().await);
        if got.len() >= 80 {
            break;
        }
    }
    assert_eq!(got.iter().filter(|e| e["kind"] == "broadcast").count(), 40, "the room's traffic flows");
    let dropped = a.node.webhooks.dropped.load(Relaxed) + b.node.webhooks.dropped.load(Relaxed);
    assert_eq!(dropped, 43 - 10, "ten events fit in the log (the one under way included)");
    assert_eq!(rx.got().len(), 1, "one attempt under way, nothing else sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_lease_holder_goes_another_node_delivers() {
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a", &rx.url).await, node(&redis, "b", &rx.url).await);
    let mut alice = peer(&a, "alice").await;
    alice.login("r1").await;
    rx.wait_for_user_event("user_login", "alice").await;
    let (holder, other) = if a.node.webhooks.sent.load(Relaxed) > 0 { (a, b) } else { (b, a) };
    assert!(holder.node.webhooks.sent.load(Relaxed) > 0 && other.node.webhooks.sent.load(Relaxed) == 0);
    drop(alice);
    holder.shutdown().await;
    let mut bob = peer(&other, "bob").await;
    bob.login("r2").await;
    rx.wait_for_user_event("user_login", "bob").await;
    assert!(other.node.webhooks.sent.load(Relaxed) > 0, "the other node took the lease");
    let bodies = rx.accepted();
    let ids: HashSet<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    // The holder may have gone between alice's user_login being taken and its deletion from the
    // log: then the next holder sends it again, with the same id (at-least-once across a death).
    assert!(bodies.len() - ids.len() <= 1, "at most the one under way twice: {bodies:#?}");
    // (alice's session, cut by the shutdown, may meanwhile time out: user_logout, room_closed.)
    let mut events: Vec<String> = bodies
        .iter()
        .filter(|b| b["event"] == "room_created" || b["event"] == "user_login")
        .map(|b| format!("{}:{}", b["room"].as_str().unwrap(), b["event"].as_str().unwrap()))
        .collect();
    events.dedup();
    assert_eq!(events, ["r1:room_created", "r1:user_login", "r2:room_created", "r2:user_login"], "{bodies:#?}");
}

/// A body with what differs between runs (ids, times, epochs, session ids) replaced.
fn normalized(b: &Value) -> Value {
    let mut b = b.clone();
    for k in ["id", "time_ms", "room_session", "session"] {
        if b.get(k).is_some() {
            b[k] = json!(k);
        }
    }
    if b.get("extra").is_some_and(|e| e.get("time_ms").is_some()) {
        b["extra"]["time_ms"] = json!("time_ms");
    }
    b
}

/// The same script on `s` (one server, or two nodes: `t`), and the bodies it produced.
async fn script(s: &Server, t: &Server, rx: &Receiver) -> Vec<Value> {
    let mut a = peer(s, "a").await;
    let mut b = peer(t, "b").await;
    a.login("r").await;
    b.login("r").await;
    assert_eq!(code(&a.request(json!({"t":"publish","room":"r","stream":"s1","extra":"cam"})).await), 0);
    assert_eq!(code(&a.request(json!({"t":"room_extra","room":"r","key":"topic","value":"rust"})).await), 0);
    assert_eq!(code(&a.request(json!({"t":"unpublish","room":"r","stream":"s1"})).await), 0);
    assert_eq!(code(&b.request(json!({"t":"publish","room":"r","stream":"s2"})).await), 0);
    let mut a2 = peer(t, "a").await;
    a2.login("r").await;
    assert_eq!(code(&b.request(json!({"t":"logout","room":"r"})).await), 0);
    assert_eq!(code(&a2.request(json!({"t":"publish","room":"r","stream":"s3"})).await), 0);
    // The server's own changes are webhooks too: extra info set and a stream deleted by the
    // admin API (on the other node).
    let http = parlor_server::http_client::client(std::time::Duration::from_secs(10), b"").unwrap();
    let admin = format!("http://{}/v1/admin/apps/{APP}/rooms/r", t.addr);
    let set = http.post(format!("{admin}/extra")).bearer_auth(SECRET).json(&json!({"key":"mood","value":"calm"}));
    assert!(set.send().await.unwrap().status().is_success());
    let del = http.delete(format!("{admin}/streams/s3")).bearer_auth(SECRET);
    assert!(del.send().await.unwrap().status().is_success());
    b.login("r2").await;
    assert!(s.node.admin_kick(APP, "r", "a", "test", tokio::time::Instant::now()).await.expect("reachable"));
    assert!(t.node.admin_close_room(APP, "r2", "done", tokio::time::Instant::now()).await.expect("reachable"));
    rx.wait_until("room_closed of r2", |g| {
        g.iter().any(|g| g.json["event"] == "room_closed" && g.json["room"] == "r2")
    })
    .await;
    rx.accepted()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_redis_send_the_same_events() {
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.webhooks = vec![rx.url.clone()];
    let m = Server::start(c).await.unwrap();
    let on_memory = script(&m, &m, &rx).await;
    let rx2 = Receiver::start(Mode::FailFirst(0)).await;
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a", &rx2.url).await, node(&redis, "b", &rx2.url).await);
    let on_redis = script(&a, &b, &rx2).await;
    // 19 before the server's two changes; the admin kick then has no s3 left to delete.
    assert_eq!(on_memory.len(), 20, "{on_memory:#?}");
    let by_server: Vec<&Value> =
        on_memory.iter().filter(|b| b["extra"]["key"] == "mood" || b["stream"]["id"] == "s3").collect();
    assert_eq!(by_server.len(), 3, "s3 added, mood set, s3 deleted by the server: {by_server:#?}");
    assert_eq!(by_server[1]["event"], "room_extra_updated");
    assert_eq!(by_server[1]["extra"]["user"]["id"], "$server");
    assert_eq!((&by_server[2]["event"], &by_server[2]["reason"]), (&json!("stream_deleted"), &json!(4)));
    let (m, r): (Vec<Value>, Vec<Value>) =
        (on_memory.iter().map(normalized).collect(), on_redis.iter().map(normalized).collect());
    for (i, (m, r)) in m.iter().zip(&r).enumerate() {
        assert_eq!(m, r, "event {i} differs");
    }
    assert_eq!(m.len(), r.len());
}
