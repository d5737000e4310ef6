//! Resume (§6) on the server: replay, snapshot, kicks while away, the offline return, repeated
//! requests — on tokio's paused clock with an in-memory server.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use parlor_protocol::ErrorCode;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio::time::sleep;

type P = Peer<DuplexStream>;

fn server_with(f: impl FnOnce(&mut ServerConfig)) -> MemoryServer {
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.user_message_rate = 1000;
    c.room_message_rate = 1000;
    f(&mut c);
    MemoryServer::start(c)
}

/// What a client has applied, as it would ack it.
#[derive(Default)]
struct Applied {
    direct: u64,
    rooms: BTreeMap<String, (String, u64, u64)>,
}

impl Applied {
    fn login(&mut self, ok: &Value) {
        let room = ok["room"].as_str().unwrap().to_string();
        let seq = &ok["seq"];
        self.rooms.insert(
            room,
            (
                ok["room_session"].as_str().unwrap().to_string(),
                seq["room"].as_u64().unwrap_or(0),
                seq["users"].as_u64().unwrap_or(0),
            ),
        );
    }
    fn ok(&mut self, room: &str, ok: &Value) {
        let r = self.rooms.get_mut(room).unwrap();
        if let Some(n) = ok["seq"]["room"].as_u64() {
            r.1 = n;
        }
        if let Some(n) = ok["seq"]["users"].as_u64() {
            r.2 = n;
        }
    }
    /// Apply events, checking each channel stays contiguous.
    fn apply(&mut self, frames: &[Value]) {
        for f in frames.iter().filter(|f| f["t"] == "event" && f.get("seq").is_some()) {
            let seq = f["seq"].as_u64().unwrap();
            if f["ch"] == "direct" {
                assert_eq!(seq, self.direct + 1, "direct not contiguous: {f}");
                self.direct = seq;
                continue;
            }
            let r = self.rooms.get_mut(f["room"].as_str().unwrap()).unwrap();
            let last = if f["ch"] == "room" { &mut r.1 } else { &mut r.2 };
            assert_eq!(seq, *last + 1, "not contiguous: {f}");
            *last = seq;
        }
    }
    fn ack(&self) -> Value {
        let rooms: serde_json::Map<String, Value> =
            self.rooms.iter().map(|(k, (e, r, u))| (k.clone(), json!({"epoch":e,"room":r,"users":u}))).collect();
        json!({"direct":self.direct,"rooms":rooms})
    }
}

/// Resume `p` on a new connection; returns the peer, `resumed`, and the frames up to `resume_done`.
async fn resume(s: &MemoryServer, p: P, welcome: &Value, resume_token: &str, ack: Value) -> (P, Value, Vec<Value>) {
    let (mut p, _old) = p.on(s.connect().await);
    p.send(json!({"t":"resume","v":1,"session":welcome["session"],"resume_token":resume_token,"ack":ack})).await;
    let resumed = p.recv().await;
    let mut frames = Vec::new();
    if resumed["t"] == "resumed" {
        loop {
            let f = p.recv().await;
            if f["t"] == "resume_done" {
                break;
            }
            frames.push(f);
        }
    }
    (p, resumed, frames)
}

#[tokio::test(start_paused = true)]
async fn back_before_the_timeout_replays_what_was_missed_and_the_others_notice_nothing() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    b.login("r").await;
    seen.apply(&a.channel_events().await);
    // The connection is lost; meanwhile b talks and commands a.
    let (a, _dead) = a.on(s.connect().await);
    sleep(Duration::from_secs(30)).await;
    b.request(json!({"t":"broadcast","room":"r","message":"while away"})).await;
    b.request(json!({"t":"command","room":"r","to":["a"],"command":"go"})).await;
    b.request(json!({"t":"publish","room":"r","stream":"cam-b"})).await;
    sleep(Duration::from_secs(30)).await;
    b.barrier().await;
    let (a2, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["t"], "resumed", "{resumed}");
    assert_eq!(resumed["rooms"], json!({"r":"replay"}));
    assert_ne!(resumed["resume_token"], wa["resume_token"], "a new resume token each time");
    assert_eq!(kinds(&frames), vec!["room:1:broadcast", "room:2:stream_add", "direct:1:command"]);
    seen.apply(&frames);
    assert!(b.channel_events().await.is_empty(), "b noticed nothing");
    drop(a2);
}

#[tokio::test(start_paused = true)]
async fn back_after_the_timeout_the_others_see_delete_then_add() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    let ok = a.request(json!({"t":"publish","room":"r","stream":"cam-a"})).await;
    seen.ok("r", &ok);
    b.login("r").await;
    seen.apply(&a.channel_events().await);
    let (a, _dead) = a.on(s.connect().await);
    for _ in 0..12 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await;
    }
    let ev = b.channel_events().await;
    assert_eq!(kinds(&ev), vec!["room:2:stream_delete", "users:3:user_delete"]);
    let (mut a, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["rooms"], json!({"r":"replay"}));
    // The replay includes a's own removal and return, so that every channel stays contiguous.
    assert_eq!(kinds(&frames), vec!["room:2:stream_delete", "users:3:user_delete", "users:4:user_add"]);
    seen.apply(&frames);
    let ev = b.channel_events().await;
    assert_eq!(kinds(&ev), vec!["users:4:user_add"]);
    assert_eq!(ev[0]["users"][0]["id"], "a");
    // The client publishes its stream again.
    let ok = a.request(json!({"t":"publish","room":"r","stream":"cam-a"})).await;
    assert_eq!(ok["seq"]["room"], 3);
    assert_eq!(kinds(&b.channel_events().await), vec!["room:3:stream_add"]);
}

#[tokio::test(start_paused = true)]
async fn kicked_while_away_is_reported_in_resumed() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    seen.login(&a.login("r2").await);
    let (a, _dead) = a.on(s.connect().await);
    let (mut a_elsewhere, _) = hello(s.connect().await, "a").await;
    a_elsewhere.login("r").await;
    let (_a, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["rooms"], json!({"r":"kicked:1002050","r2":"replay"}));
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test(start_paused = true)]
async fn a_gap_longer_than_the_log_gives_a_snapshot_with_missed_messages() {
    let s = server_with(|c| {
        c.log_len = 4;
        c.log_age = Duration::from_secs(1);
    });
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let (mut c, _) = hello(s.connect().await, "c").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    b.login("r").await;
    c.login("r").await;
    c.request(json!({"t":"publish","room":"r","stream":"cam-c"})).await;
    seen.apply(&a.channel_events().await);
    let (a, _dead) = a.on(s.connect().await);
    // Meanwhile: c leaves, d comes and publishes, b talks a lot.
    c.request(json!({"t":"logout","room":"r"})).await;
    let (mut d, _) = hello(s.connect().await, "d").await;
    d.login("r").await;
    d.request(json!({"t":"publish","room":"r","stream":"cam-d"})).await;
    for i in 0..10 {
        b.request(json!({"t":"broadcast","room":"r","message":format!("m{i}")})).await;
    }
    sleep(Duration::from_secs(5)).await;
    b.barrier().await;
    d.barrier().await;
    let (_a, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["rooms"], json!({"r":"snapshot"}));
    assert_eq!(frames.len(), 1, "{frames:?}");
    let snap = &frames[0];
    assert_eq!(snap["t"], "snapshot");
    assert_eq!(snap["missed_messages"], true);
    let users: Vec<&str> = snap["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(users, vec!["b", "d"]);
    assert_eq!(snap["streams"].as_array().unwrap().len(), 1);
    assert_eq!(snap["streams"][0]["id"], "cam-d");
    assert_eq!(snap["seq"], json!({"room":13,"users":5}));
    assert_eq!(snap["online"], 3);
}

#[tokio::test(start_paused = true)]
async fn a_room_emptied_and_created_again_gives_a_snapshot_never_a_replay() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    let old_epoch = seen.rooms["r"].0.clone();
    let (a, _dead) = a.on(s.connect().await);
    // a goes offline: the room is emptied and dropped; b creates it again.
    sleep(Duration::from_secs(95)).await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let ok = b.login("r").await;
    assert_ne!(ok["room_session"], json!(old_epoch));
    b.request(json!({"t":"publish","room":"r","stream":"cam-b"})).await;
    let (_a, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["rooms"], json!({"r":"snapshot"}));
    assert_eq!(frames[0]["t"], "snapshot");
    assert_eq!(frames[0]["room_session"], ok["room_session"]);
    assert_eq!(frames[0]["streams"][0]["id"], "cam-b");
}

#[tokio::test(start_paused = true)]
async fn a_repeated_request_is_answered_again_not_executed_twice() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let mut seen = Applied::default();
    seen.login(&a.login("r").await);
    b.login("r").await;
    seen.apply(&a.channel_events().await);
    // The request is sent just before the cut; its answer is lost with the connection.
    let id = a.take_id();
    a.send(json!({"t":"broadcast","id":id,"room":"r","message":"once"})).await;
    let first = a.answer(id).await;
    let (mut a, resumed, frames) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), seen.ack()).await;
    assert_eq!(resumed["rooms"], json!({"r":"replay"}));
    assert_eq!(kinds(&frames), vec!["room:1:broadcast"], "the replay carries the own event too");
    a.send(json!({"t":"broadcast","id":id,"room":"r","message":"once"})).await;
    let again = a.answer(id).await;
    assert_eq!(first, again);
    let ev = b.channel_events().await;
    assert_eq!(ev.iter().filter(|e| e["message"] == "once").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_resume_that_cannot_be_honoured_gets_1002057_then_hello_works() {
    let s = server_with(|_| {});
    let (a, wa) = hello(s.connect().await, "a").await;
    let (mut a, resumed, _) = resume(&s, a, &wa, "wrong", json!({})).await;
    assert_eq!(resumed["t"], "error");
    assert_eq!(resumed["code"], json!(ErrorCode::ResumeFailed.code()));
    let (mut a2, _) = a.on(s.connect().await);
    a2.send(json!({"t":"resume","v":1,"session":"no-such-session","resume_token":"x","ack":{}})).await;
    assert_eq!(a2.recv().await["code"], json!(ErrorCode::ResumeFailed.code()));
    // The same connection goes on with hello.
    a2.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"a","name":""},"token":token("a")})).await;
    assert_eq!(a2.recv().await["t"], "welcome");
    a = a2;
    a.login("r").await;
}

#[tokio::test(start_paused = true)]
async fn after_retention_the_session_cannot_be_resumed() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    a.login("r").await;
    let (a, _dead) = a.on(s.connect().await);
    sleep(Duration::from_secs(20 * 60 + 95)).await;
    let (_a, resumed, _) = resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), json!({})).await;
    assert_eq!(resumed["code"], json!(ErrorCode::ResumeFailed.code()));
}

#[tokio::test(start_paused = true)]
async fn a_repeated_login_is_answered_with_the_room_as_it_is_now() {
    let s = server_with(|_| {});
    let (mut a, wa) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    b.login("r").await;
    // a's login executes but its answer is lost with the connection.
    let id = a.take_id();
    a.send(json!({"t":"login","id":id,"room":"r"})).await;
    let lost = a.answer(id).await;
    assert_eq!(lost["t"], "ok");
    b.request(json!({"t":"publish","room":"r","stream":"cam-b"})).await;
    // The client did not know it was in r: its ack has no r.
    let (mut a, resumed, frames) =
        resume(&s, a, &wa, wa["resume_token"].as_str().unwrap(), json!({"direct":0,"rooms":{}})).await;
    assert_eq!(resumed["rooms"], json!({"r":"snapshot"}));
    assert_eq!(frames[0]["t"], "snapshot");
    a.send(json!({"t":"login","id":id,"room":"r"})).await;
    let again = a.answer(id).await;
    assert_eq!(again["t"], "ok");
    assert_eq!(again["streams"][0]["id"], "cam-b", "the room as it is now: {again}");
    assert_eq!(again["seq"], json!({"room":1,"users":2}));
    assert_eq!(kinds(&b.channel_events().await), vec!["users:2:user_add"], "a entered once");
}
