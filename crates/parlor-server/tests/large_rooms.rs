//! Audience-scale rooms (protocol §9.10), the same on every engine: one scripted run with a
//! threshold of 2 members, recorded as a transcript and compared with the golden file
//! `tests/golden/large_rooms.json` (`PARLOR_BLESS=1` rewrites it from the memory engine), as
//! `engine_conformance.rs` does for the rest of the protocol.
//!
//! It covers: a room crossing the threshold (the third login is batched, its `ok` a page with
//! `users_next`), one `user_update` per batch with the net changes and the count, a host's
//! arrival taken out of the batch and sent on its own before its `stream_add`, a logout batched,
//! a resume across batches (replayed once), a large room's snapshot (a page), and the room
//! crossing back (the pending batch sent first, then the departure on its own).
//!
//! `online` events are kept aside (see `Harness::online_aside`): they come at ticks of their
//! own; the counts are checked at the end. Timing assumption: the steps between a login and
//! the publish that follows it run within the presence interval (1 s; they take milliseconds),
//! so the arrival is still in the batch.

mod common;

use std::path::PathBuf;

use common::transcript::{check_golden, Harness, Tracker, Transcript};
use common::{token, APP};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};

fn config() -> ServerConfig {
    let mut c = ServerConfig::for_tests(APP, common::SECRET);
    c.full_presence_up_to = 2;
    c.request_rate = 1000;
    c
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/large_rooms.json")
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().map(|a| a.iter().filter_map(|u| u["id"].as_str()).collect()).unwrap_or_default()
}

fn login() -> Value {
    json!({"t":"login","room":"big","config":{"max_members":0,"user_status_notify":true}})
}

async fn hello(h: &mut Harness, name: &str) -> Value {
    h.connect(name, Tracker::default()).await;
    let user = json!({"id":name,"name":format!("{name} name")});
    h.send(name, json!({"t":"hello","v":1,"app_id":APP,"user":user,"token":token(name)})).await;
    let w = h.recv(name).await;
    assert_eq!(w["t"], "welcome", "{name}: {w}");
    w
}

/// Each of `peers` receives one `user_update` with this seq, these users and count.
async fn batch(h: &mut Harness, peers: &[&str], seq: u64, added: &[&str], deleted: &[&str], count: u64) {
    for p in peers {
        let f = h.recv(p).await;
        assert_eq!(
            (f["kind"].as_str(), f["ch"].as_str(), f["seq"].as_u64(), ids(&f["added"]), ids(&f["deleted"])),
            (Some("user_update"), Some("users"), Some(seq), added.to_vec(), deleted.to_vec()),
            "{p}: {f}"
        );
        assert_eq!(f["count"], json!(count), "{p}: {f}");
    }
}

/// Each of `peers` receives one event `kind` with this seq on channel `ch`.
async fn event(h: &mut Harness, peers: &[&str], ch: &str, seq: u64, kind: &str) {
    for p in peers {
        let f = h.recv(p).await;
        assert_eq!(
            (f["kind"].as_str(), f["ch"].as_str(), f["seq"].as_u64()),
            (Some(kind), Some(ch), Some(seq)),
            "{p}: {f}"
        );
    }
}

async fn run_script(config: ServerConfig) -> Transcript {
    let server = Server::start(config).await.expect("server starts");
    let mut h = Harness::new(server.ws_url());
    h.online_aside = Some(Default::default());
    let alice_welcome = hello(&mut h, "alice").await;
    for p in ["bob", "carol", "erin"] {
        hello(&mut h, p).await;
    }
    let dave_welcome = hello(&mut h, "dave").await;

    // ── Up to the threshold (2) a room is as it always was.
    let a = h.req("alice", login()).await;
    assert_eq!((&a["seq"], a.get("users_next")), (&json!({"room":0,"users":1}), None), "{a}");
    let a = h.req("bob", login()).await;
    assert_eq!((ids(&a["users"]), a.get("users_next")), (vec!["alice"], None), "{a}");
    event(&mut h, &["alice"], "users", 2, "user_add").await;

    // ── The third login makes it large: its `ok` is a page with a cursor, and its arrival comes
    // in the next batch, to everyone, itself included.
    let a = h.req("carol", login()).await;
    assert_eq!(
        (ids(&a["users"]), &a["users_next"], &a["online"]),
        (vec!["alice", "bob"], &json!(""), &json!(3)),
        "{a}"
    );
    assert_eq!(a["seq"]["users"], 2, "its arrival is not yet an event: {a}");
    batch(&mut h, &["alice", "bob", "carol"], 3, &["carol"], &[], 3).await;
    let a = h.req("dave", login()).await;
    assert_eq!((ids(&a["users"]), &a["users_next"]), (vec!["alice", "bob", "carol"], &json!("")), "{a}");
    batch(&mut h, &["alice", "bob", "carol", "dave"], 4, &["dave"], &[], 4).await;

    // ── A host is told at once: erin's arrival is taken out of the batch when she publishes.
    let a = h.req("erin", login()).await;
    assert_eq!(a["seq"]["users"], 4, "{a}");
    // (Its own user_add comes before the answer: erin's only other request.)
    h.send("erin", json!({"t":"publish","id":2,"room":"big","stream":"s1","extra":""})).await;
    event(&mut h, &["alice", "bob", "carol", "dave", "erin"], "users", 5, "user_add").await;
    let a = h.recv("erin").await;
    assert_eq!((&a["t"], &a["seq"]), (&json!("ok"), &json!({"room":1})), "{a}");
    event(&mut h, &["alice", "bob", "carol", "dave"], "room", 1, "stream_add").await;

    // ── bob logs out (batched). alice resumes on a new connection from before erin's arrival
    // (as if the last frames were lost with the old one): the replay has the stream, erin's
    // user_add and the batch, each once.
    let a = h.req("bob", json!({"t":"logout","room":"big"})).await;
    assert_eq!((a["t"].as_str(), a["seq"].get("users")), (Some("ok"), None), "batched: no seq of its own: {a}");
    batch(&mut h, &["alice", "carol", "dave", "erin"], 6, &[], &["bob"], 4).await;
    let mut old = Tracker::default();
    let epoch = h.tracker("carol").rooms["big"].0.clone();
    old.rooms.insert("big".into(), (epoch, 0, 4));
    let f = resume_as(&mut h, "alice2", &alice_welcome, old, 5).await;
    let kinds: Vec<&str> = f.iter().map(|f| f["kind"].as_str().unwrap_or(f["t"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds, vec!["resumed", "stream_add", "user_add", "user_update", "resume_done"], "{f:?}");
    assert_eq!(h.expect("alice", 1).await, vec![json!({"t":"<close>","code":1001})]);

    // ── dave resumes with an epoch the room no longer has: a snapshot, whose list is a page.
    let mut stale = Tracker::default();
    stale.rooms.insert("big".into(), ("gone".into(), 0, 0));
    let f = resume_as(&mut h, "dave2", &dave_welcome, stale, 3).await;
    assert_eq!(f[1]["t"], "snapshot", "{f:?}");
    assert_eq!((ids(&f[1]["users"]), &f[1]["users_next"]), (vec!["alice", "carol", "erin"], &json!("")), "{f:?}");
    assert_eq!(h.expect("dave", 1).await, vec![json!({"t":"<close>","code":1001})]);

    // ── Back to the threshold: carol's logout is batched; dave's makes the room small, so the
    // batch goes first (dave still gets it) and dave's departure follows on its own.
    h.req("carol", json!({"t":"logout","room":"big"})).await;
    // (The session goes on: its next request id follows its last one.)
    h.send("dave2", json!({"t":"logout","id":2,"room":"big"})).await;
    batch(&mut h, &["alice2", "erin", "dave2"], 7, &[], &["carol"], 3).await;
    let a = h.recv("dave2").await;
    assert_eq!((&a["t"], &a["seq"]), (&json!("ok"), &json!({"users":8})), "{a}");
    event(&mut h, &["alice2", "erin"], "users", 8, "user_delete").await;

    // ── Counts: every member is sent the room's count within an interval of the change, at
    // every size (§9.10): here the last one, 2, a departure the room was not large after.
    h.await_online("erin", 2).await;
    h.await_online("alice2", 2).await;
    h.quiet(&[]).await;
    h.transcript
}

/// Open `name`, resume `welcome`'s session with `tracker`'s ack, read `n` frames.
async fn resume_as(h: &mut Harness, name: &str, welcome: &Value, tracker: Tracker, n: usize) -> Vec<Value> {
    let ack = tracker.ack();
    h.connect(name, tracker).await;
    let resume =
        json!({"t":"resume","v":1,"session":welcome["session"],"resume_token":welcome["resume_token"],"ack":ack});
    h.send(name, resume).await;
    h.expect(name, n).await
}

#[tokio::test]
async fn memory_engine_large_rooms() {
    let transcript = run_script(config()).await;
    check_golden(&transcript, &golden_path(), true, "memory engine");
}

#[tokio::test]
async fn redis_engine_large_rooms() {
    let redis = parlor_testkit::RedisServer::start();
    let mut c = config();
    c.redis = vec![redis.url()];
    let transcript = run_script(c).await;
    check_golden(&transcript, &golden_path(), false, "redis engine");
}
