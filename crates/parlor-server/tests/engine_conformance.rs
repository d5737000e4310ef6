//! Engine conformance: one scripted run of the protocol, the same on every engine.
//!
//! The server's shared state lives behind an [`Engine`](parlor_server::engine::Engine): the
//! memory engine, and a Redis engine for several nodes. The rules are written once, but each
//! engine applies the operations itself (membership, seqs, logs, replay, kicks), so two engines
//! can drift apart in ways no unit test of either one notices: an extra event, a different seq,
//! a code chosen from a different refusal, a replay that starts one event late.
//!
//! So this suite drives several raw protocol peers (JSON over real WebSockets, no SDK) through
//! one strictly sequential script — hello, login, streams, room extra info, messages, commands,
//! logout, switch, repeated ids, resume (replay, snapshot, refused), admin kicks and closes,
//! `bye` — and records a transcript: every frame each peer received, in order, with the random
//! and time-based values normalized (see `common::transcript`). The transcript of the memory
//! engine is committed as a golden file (`tests/golden/conformance.json`), and *every* engine's
//! transcript must equal it, frame for frame. Comparing against a committed file rather than
//! "memory vs Redis in the same run" means that a change to either engine's behaviour shows up
//! as a reviewed diff of the golden file (`PARLOR_BLESS=1` rewrites it from the memory engine),
//! and the two engines cannot drift apart silently.
//!
//! Determinism: each step waits for its answer and for every event it causes on every other
//! peer (the counts come from the protocol) before the next step starts; nothing orders by
//! sleeping. Waits are bounded (5 s per expected frame) and the clock is real, because the Redis
//! engine does real network IO. The few timing assumptions are stated where they are made (the
//! message rate steps run within one second of each other, as they do in milliseconds).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::transcript::{check_golden, Harness, Tracker, Transcript};
use common::{token, token_with, APP};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};

/// The settings the script is written for: small limits so that each one is reached quickly.
fn config() -> ServerConfig {
    let mut c = ServerConfig::for_tests(APP, common::SECRET);
    // A log of two events per channel, none kept for age: a gap of three is a snapshot.
    c.log_len = 2;
    c.log_age = Duration::ZERO;
    // Remember four answers: a repeat of the last one is answered, the first id is forgotten.
    c.answer_memory = 4;
    // Two messages per user per room per second, three per room per second.
    c.user_message_rate = 2;
    c.room_message_rate = 3;
    // The per-session request rate is not what this suite is about; keep it out of the way.
    c.request_rate = 1000;
    c
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/conformance.json")
}

fn code(a: &Value) -> u64 {
    common::code(a)
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().map(|a| a.iter().filter_map(|u| u["id"].as_str()).collect()).unwrap_or_default()
}

fn hello_frame(user: &str, token: String) -> Value {
    json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user,"name":format!("{user} name")},"token":token})
}

fn login(room: &str, max_members: u32) -> Value {
    json!({"t":"login","room":room,"config":{"max_members":max_members,"user_status_notify":true}})
}

/// Assert `frames` are `kind` events (one per peer listed), with `seq` on channel `ch`.
fn assert_event(frames: &[Value], ch: &str, seq: u64, kind: &str) {
    for f in frames {
        assert_eq!(
            (f["t"].as_str(), f["ch"].as_str(), f["seq"].as_u64(), f["kind"].as_str()),
            (Some("event"), Some(ch), Some(seq), Some(kind)),
            "expected a {ch}:{seq}:{kind} event, got {f}"
        );
    }
}

/// Open `name` and say `hello` as `user`; returns the (raw) `welcome`.
async fn hello(h: &mut Harness, name: &str, user: &str) -> Value {
    h.connect(name, Tracker::default()).await;
    h.send(name, hello_frame(user, token(user))).await;
    let w = h.recv(name).await;
    assert_eq!(w["t"], "welcome", "{name}: {w}");
    w
}

/// A step: `name` sends request `v`; every peer in `others` receives that many frames (the
/// events the request causes). Returns the answer and each other peer's frames.
async fn step(h: &mut Harness, name: &str, v: Value, others: &[(&str, usize)]) -> (Value, Vec<Vec<Value>>) {
    let a = h.req(name, v).await;
    let mut frames = Vec::new();
    for (peer, n) in others {
        frames.push(h.expect(peer, *n).await);
    }
    (a, frames)
}

/// Like [`step`] with one event per other peer: asserts the answer is `ok` and each event is
/// `ch:seq:kind`.
async fn ok_step(h: &mut Harness, name: &str, v: Value, others: &[&str], ch: &str, seq: u64, kind: &str) -> Value {
    let counts: Vec<(&str, usize)> = others.iter().map(|p| (*p, 1)).collect();
    let (a, frames) = step(h, name, v.clone(), &counts).await;
    assert_eq!(a["t"], "ok", "{name}: {v} → {a}");
    assert_eq!(a["seq"][ch], json!(seq), "{name}: {v} → {a}");
    for f in &frames {
        assert_event(f, ch, seq, kind);
    }
    a
}

/// A request that must fail with `expected` and cause nothing elsewhere.
async fn refused(h: &mut Harness, name: &str, v: Value, expected: u64) -> Value {
    let a = h.req(name, v.clone()).await;
    assert_eq!(code(&a), expected, "{name}: {v} → {a}");
    a
}

/// Open `name`, `resume` with `session`/`resume_token`/`tracker.ack()`, and read `n` frames.
async fn resume(h: &mut Harness, name: &str, welcome: &Value, tracker: Tracker, n: usize) -> Vec<Value> {
    let ack = tracker.ack();
    h.connect(name, tracker).await;
    h.send(
        name,
        json!({"t":"resume","v":1,"session":welcome["session"],"resume_token":welcome["resume_token"],"ack":ack}),
    )
    .await;
    h.expect(name, n).await
}

async fn admin_rooms(h: &mut Harness, server: &Server, label: &str) -> Value {
    let rooms = serde_json::to_value(server.node.admin_rooms(APP).await.expect("reachable")).expect("rooms serialize");
    h.record("admin", json!({"t":"<admin_rooms>","at":label,"rooms":rooms}));
    rooms
}

/// The script. Every engine must produce the same transcript.
async fn run_script(config: ServerConfig) -> Transcript {
    let server = Server::start(config).await.expect("server starts");
    let mut h = Harness::new(server.ws_url());

    // ── hello: a bad token, an unknown app, a token of another user → error, close 1008.
    h.connect("bad-token", Tracker::default()).await;
    h.send("bad-token", hello_frame("mallory", "not-a-jwt".into())).await;
    let f = h.expect("bad-token", 2).await;
    assert_eq!((f[0]["t"].as_str(), f[0].get("id")), (Some("error"), None), "{f:?}");
    assert_eq!(f[1], json!({"t":"<close>","code":1008}));
    h.connect("bad-app", Tracker::default()).await;
    h.send("bad-app", json!({"t":"hello","v":1,"app_id":999,"user":{"id":"mallory"},"token":token("mallory")})).await;
    let f = h.expect("bad-app", 2).await;
    assert_eq!((f[0]["t"].as_str(), &f[1]), (Some("error"), &json!({"t":"<close>","code":1008})), "{f:?}");
    h.connect("bad-user", Tracker::default()).await;
    h.send("bad-user", hello_frame("mallory", token("alice"))).await;
    let f = h.expect("bad-user", 2).await;
    assert_eq!((code(&f[0]), &f[1]), (1002077, &json!({"t":"<close>","code":1008})), "{f:?}");

    // ── Good hellos.
    let alice_welcome = hello(&mut h, "alice", "alice").await;
    hello(&mut h, "bob", "bob").await;
    hello(&mut h, "carol", "carol").await;
    let dave_welcome = hello(&mut h, "dave", "dave").await;
    let erin_welcome = hello(&mut h, "erin", "erin").await;

    // ── login: a new room (seq room 0, users 1), a second and third user, a full room, twice.
    let a = h.req("alice", login("r1", 3)).await;
    assert_eq!((a["t"].as_str(), &a["seq"], &a["online"]), (Some("ok"), &json!({"room":0,"users":1}), &json!(1)));
    assert_eq!(ids(&a["users"]), Vec::<&str>::new(), "{a}");
    let (a, f) = step(&mut h, "bob", login("r1", 0), &[("alice", 1)]).await;
    assert_eq!((ids(&a["users"]), &a["online"], &a["seq"]["users"]), (vec!["alice"], &json!(2), &json!(2)), "{a}");
    assert_event(&f[0], "users", 2, "user_add");
    assert_eq!(ids(&f[0][0]["users"]), vec!["bob"]);
    let (a, f) = step(&mut h, "carol", login("r1", 0), &[("alice", 1), ("bob", 1)]).await;
    assert_eq!(a["online"], 3, "{a}");
    assert_event(&f.concat(), "users", 3, "user_add");
    refused(&mut h, "dave", login("r1", 0), 1002034).await;
    refused(&mut h, "bob", login("r1", 0), 1002001).await;

    // ── members (§9.9): pages in user id order, the caller too, with the room's count and the
    // next page's cursor ("" after the last); only for a member; a page of 1 to 500.
    let a = h.req("bob", json!({"t":"members","room":"r1","limit":2})).await;
    assert_eq!((ids(&a["users"]), &a["count"], &a["next"]), (vec!["alice", "bob"], &json!(3), &json!("bob")), "{a}");
    let a = h.req("bob", json!({"t":"members","room":"r1","cursor":a["next"],"limit":2})).await;
    assert_eq!((ids(&a["users"]), &a["count"], &a["next"]), (vec!["carol"], &json!(3), &json!("")), "{a}");
    let a = h.req("carol", json!({"t":"members","room":"r1"})).await;
    assert_eq!((ids(&a["users"]), &a["next"]), (vec!["alice", "bob", "carol"], &json!("")), "{a}");
    refused(&mut h, "dave", json!({"t":"members","room":"r1"}), 1009005).await;
    refused(&mut h, "bob", json!({"t":"members","room":"r1","limit":501}), 1000003).await;
    refused(&mut h, "bob", json!({"t":"members","room":"r1","limit":0}), 1000003).await;

    // ── A token that forbids publishing (and is for r2 only), passed with the login.
    let no_publish = token_with(|c| {
        c.user_id = "dave".into();
        c.room_id = Some("r2".into());
        c.publish = Some(false);
    });
    let mut l = login("r2", 0);
    l["token"] = json!(no_publish);
    let a = h.req("dave", l).await;
    assert_eq!(a["seq"], json!({"room":0,"users":1}), "{a}");
    refused(&mut h, "dave", json!({"t":"publish","room":"r2","stream":"dave-cam","extra":""}), 1003026).await;

    // ── Streams.
    let others = ["alice", "carol"];
    let publish = json!({"t":"publish","room":"r1","stream":"bob-cam","extra":"hd"});
    ok_step(&mut h, "bob", publish.clone(), &others, "room", 1, "stream_add").await;
    let a = h.req("bob", publish.clone()).await;
    assert_eq!((a["t"].as_str(), a["seq"].get("room")), (Some("ok"), None), "republishing is a no-op: {a}");
    refused(&mut h, "carol", json!({"t":"publish","room":"r1","stream":"bob-cam","extra":""}), 1003025).await;
    let extra = json!({"t":"stream_extra","room":"r1","stream":"bob-cam","extra":"sd"});
    ok_step(&mut h, "bob", extra, &others, "room", 2, "stream_extra").await;
    refused(&mut h, "carol", json!({"t":"unpublish","room":"r1","stream":"bob-cam"}), 1000003).await;
    let unpublish = json!({"t":"unpublish","room":"r1","stream":"bob-cam"});
    ok_step(&mut h, "bob", unpublish, &others, "room", 3, "stream_delete").await;
    ok_step(&mut h, "bob", publish, &others, "room", 4, "stream_add").await;

    // ── Room extra info: ten keys, an eleventh refused, an existing one set again.
    let others = ["bob", "carol"];
    for k in 0..10u64 {
        let v = json!({"t":"room_extra","room":"r1","key":format!("k{k}"),"value":format!("v{k}")});
        ok_step(&mut h, "alice", v, &others, "room", 5 + k, "room_extra").await;
    }
    refused(&mut h, "alice", json!({"t":"room_extra","room":"r1","key":"k10","value":"x"}), 1002017).await;
    let v = json!({"t":"room_extra","room":"r1","key":"k0","value":"again"});
    ok_step(&mut h, "alice", v, &others, "room", 15, "room_extra").await;

    // ── Messages. Rates: these steps run within one second (they take milliseconds); alice's
    // third message is over her 2/s, carol's is over the room's 3/s (alice's two and bob's one).
    let a = ok_step(
        &mut h,
        "alice",
        json!({"t":"broadcast","room":"r1","message":"hello"}),
        &others,
        "room",
        16,
        "broadcast",
    )
    .await;
    assert!(a["message_id"].is_string(), "{a}");
    let b =
        ok_step(&mut h, "alice", json!({"t":"barrage","room":"r1","message":"wow"}), &others, "room", 17, "barrage")
            .await;
    assert_ne!(a["message_id"], b["message_id"]);
    refused(&mut h, "alice", json!({"t":"broadcast","room":"r1","message":"x".repeat(1025)}), 1009002).await;
    refused(&mut h, "alice", json!({"t":"broadcast","room":"r1","message":"third"}), 1002073).await;
    refused(&mut h, "dave", json!({"t":"broadcast","room":"r1","message":"not in"}), 1009005).await;
    let v = json!({"t":"broadcast","room":"r1","message":"from bob"});
    ok_step(&mut h, "bob", v, &["alice", "carol"], "room", 18, "broadcast").await;
    refused(&mut h, "carol", json!({"t":"broadcast","room":"r1","message":"room is busy"}), 1002073).await;

    // ── Commands: to everyone else, to a list with an unknown id, back to alice.
    let (a, f) =
        step(&mut h, "alice", json!({"t":"command","room":"r1","to":[],"command":"go"}), &[("bob", 1), ("carol", 1)])
            .await;
    assert_eq!(a["t"], "ok", "{a}");
    assert_event(&f.concat(), "direct", 1, "command");
    let to_bob = json!({"t":"command","room":"r1","to":["bob","nobody"],"command":"only bob"});
    let (to_bob_ok, f) = step(&mut h, "alice", to_bob.clone(), &[("bob", 1)]).await;
    assert_event(&f[0], "direct", 2, "command");
    let v = json!({"t":"command","room":"r1","to":["alice"],"command":"hi alice"});
    let (_, f) = step(&mut h, "carol", v, &[("alice", 1)]).await;
    assert_event(&f[0], "direct", 1, "command");

    // ── Repeated ids: the last one is answered again, identically, and not executed (bob gets
    // no second command); the first one is too old for a memory of four answers.
    let last = h.last_id("alice");
    let again = h.req_id("alice", last, to_bob).await;
    assert_eq!(again, to_bob_ok, "a repeat gets the same answer");
    h.quiet(&["bob", "carol"]).await;
    let a = h.req_id("alice", 1, login("r1", 3)).await;
    assert_eq!(code(&a), 1000003, "{a}");

    // ── A duplicate login of bob: the old session is kicked (1002050), its stream deleted with
    // reason 3, nobody sees a user change, and it is closed with 4009 (it has no room left).
    hello(&mut h, "bob#2", "bob").await;
    let (a, f) = step(&mut h, "bob#2", login("r1", 0), &[("bob", 2), ("alice", 1), ("carol", 1)]).await;
    assert_eq!((ids(&a["users"]), &a["streams"], &a["online"]), (vec!["alice", "carol"], &json!([]), &json!(3)), "{a}");
    assert_eq!(f[0], vec![json!({"t":"kicked","room":"r1","code":1002050}), json!({"t":"<close>","code":4009})]);
    assert_event(&f[1..].concat(), "room", 19, "stream_delete");
    assert_eq!(f[1][0]["reason"], 3, "{:?}", f[1]);

    // ── Logout, and logout of a room the session is not in.
    let r1 = ["alice", "bob#2"];
    ok_step(&mut h, "carol", json!({"t":"logout","room":"r1"}), &r1, "users", 4, "user_delete").await;
    refused(&mut h, "carol", json!({"t":"logout","room":"r1"}), 1002002).await;

    // ── Switch: r3 → r1 (the ok has the login's fields), from a room not in, to an invalid id.
    let a = h.req("carol", login("r3", 0)).await;
    assert_eq!(a["seq"], json!({"room":0,"users":1}), "{a}");
    let switch = json!({"t":"switch","from":"r3","to":"r1","config":{"max_members":0,"user_status_notify":true}});
    let a = ok_step(&mut h, "carol", switch.clone(), &r1, "users", 5, "user_add").await;
    assert_eq!((a["room"].as_str(), ids(&a["users"])), (Some("r1"), vec!["alice", "bob"]), "{a}");
    assert!(a["room_session"].is_string() && a["online"] == 3, "{a}");
    refused(&mut h, "carol", switch, 1002002).await;
    let bad = json!({"t":"switch","from":"r1","to":"bad room","config":{"max_members":0,"user_status_notify":true}});
    let (a, f) = step(&mut h, "carol", bad, &[("alice", 1), ("bob#2", 1)]).await;
    assert_eq!(a["t"], "error", "{a}");
    assert_event(&f.concat(), "users", 6, "user_delete");
    refused(&mut h, "carol", json!({"t":"broadcast","room":"r1","message":"in neither"}), 1009005).await;
    refused(&mut h, "carol", json!({"t":"logout","room":"r3"}), 1002002).await;

    // ── renew_token.
    let a = h.req("alice", json!({"t":"renew_token","token":token("alice")})).await;
    assert_eq!(a["t"], "ok", "{a}");

    // ── Resume with replay: alice's ack is from before three events (one per channel), which
    // her old connection still receives live; the new connection replays them, the old one is
    // closed with 1001.
    let alice_before = h.tracker("alice");
    let v = json!({"t":"publish","room":"r1","stream":"bob-cam","extra":"again"});
    ok_step(&mut h, "bob#2", v, &["alice"], "room", 20, "stream_add").await;
    ok_step(&mut h, "carol", login("r1", 0), &["alice", "bob#2"], "users", 7, "user_add").await;
    let (_, f) =
        step(&mut h, "carol", json!({"t":"command","room":"r1","to":["alice"],"command":"missed"}), &[("alice", 1)])
            .await;
    assert_event(&f[0], "direct", 2, "command");
    let f = resume(&mut h, "alice#2", &alice_welcome, alice_before, 5).await;
    assert_eq!((f[0]["t"].as_str(), &f[0]["rooms"]), (Some("resumed"), &json!({"r1":"replay"})), "{f:?}");
    assert_eq!(f[0]["session"], alice_welcome["session"]);
    assert_event(&f[1..2], "room", 20, "stream_add");
    assert_event(&f[2..3], "users", 7, "user_add");
    assert_event(&f[3..4], "direct", 2, "command");
    assert_eq!(f[4]["t"], "resume_done", "{f:?}");
    assert_eq!(h.expect("alice", 1).await, vec![json!({"t":"<close>","code":1001})]);

    // ── Resume with a snapshot: dave's ack of r2 is three room events old (a broadcast among
    // the lost ones) and the log keeps two.
    let dave_before = h.tracker("dave");
    ok_step(&mut h, "erin", login("r2", 0), &["dave"], "users", 2, "user_add").await;
    ok_step(&mut h, "erin", json!({"t":"broadcast","room":"r2","message":"lost"}), &["dave"], "room", 1, "broadcast")
        .await;
    let v = json!({"t":"publish","room":"r2","stream":"erin-cam","extra":""});
    ok_step(&mut h, "erin", v, &["dave"], "room", 2, "stream_add").await;
    let v = json!({"t":"stream_extra","room":"r2","stream":"erin-cam","extra":"x"});
    ok_step(&mut h, "erin", v, &["dave"], "room", 3, "stream_extra").await;
    // Log trimming may be the tick's job (the memory engine's is): run one now, so that what
    // the log keeps does not depend on when the background ticker last ran.
    server.node.tick(tokio::time::Instant::now()).await;
    let f = resume(&mut h, "dave#2", &dave_welcome, dave_before, 3).await;
    assert_eq!(f[0]["rooms"], json!({"r2":"snapshot"}), "{f:?}");
    assert_eq!((f[1]["t"].as_str(), &f[1]["missed_messages"]), (Some("snapshot"), &json!(true)), "{f:?}");
    assert_eq!((ids(&f[1]["users"]), &f[1]["seq"]), (vec!["erin"], &json!({"room":3,"users":2})), "{f:?}");
    assert_eq!(f[2]["t"], "resume_done", "{f:?}");
    assert_eq!(h.expect("dave", 1).await, vec![json!({"t":"<close>","code":1001})]);

    // ── A resume with a wrong token is refused (1002057); hello on the same connection works.
    h.connect("frank", Tracker::default()).await;
    let bad = json!({"t":"resume","v":1,"session":erin_welcome["session"],"resume_token":"wrong","ack":{"direct":0,"rooms":{}}});
    h.send("frank", bad).await;
    let f = h.expect("frank", 1).await;
    assert_eq!((f[0]["t"].as_str(), code(&f[0])), (Some("error"), 1002057), "{f:?}");
    h.send("frank", hello_frame("frank", token("frank"))).await;
    assert_eq!(h.recv("frank").await["t"], "welcome");

    // ── Admin: kick carol from r1 (1002055 with the reason; the others get user_delete; she has
    // no room left: 4009), list the rooms, close r2, list again.
    let now = tokio::time::Instant::now();
    assert!(server.node.admin_kick(APP, "r1", "carol", "spam", now).await.expect("reachable"), "carol is in r1");
    let f = h.until_close("carol", 5).await;
    assert_eq!(f[0], json!({"t":"kicked","room":"r1","code":1002055,"extended_data":{"reason":"spam"}}));
    assert_eq!(f.last(), Some(&json!({"t":"<close>","code":4009})));
    let f = [h.expect("alice#2", 1).await, h.expect("bob#2", 1).await].concat();
    assert_event(&f, "users", 8, "user_delete");
    let rooms = admin_rooms(&mut h, &server, "after the kick").await;
    let names: Vec<&str> = rooms.as_array().expect("a list").iter().filter_map(|r| r["room"].as_str()).collect();
    assert_eq!(names, vec!["r1", "r2"]);
    assert!(!server.node.admin_kick(APP, "r1", "carol", "again", now).await.expect("reachable"), "carol is gone");
    assert!(server.node.admin_close_room(APP, "r2", "done", tokio::time::Instant::now()).await.expect("reachable"));
    for peer in ["dave#2", "erin"] {
        let f = h.until_close(peer, 5).await;
        assert!(
            f.contains(&json!({"t":"kicked","room":"r2","code":1002055,"extended_data":{"reason":"done"}})),
            "{peer}: {f:?}"
        );
        assert_eq!(f.last(), Some(&json!({"t":"<close>","code":4009})), "{peer}: {f:?}");
    }
    assert!(!server.node.admin_close_room(APP, "r2", "again", tokio::time::Instant::now()).await.expect("reachable"));
    let rooms = admin_rooms(&mut h, &server, "after closing r2").await;
    assert_eq!(rooms.as_array().map(Vec::len), Some(1), "{rooms}");

    // ── bye: the others see the stream go (reason 5) and the user go; the connection closes 1000.
    h.send("bob#2", json!({"t":"bye"})).await;
    assert_eq!(h.until_close("bob#2", 1).await, vec![json!({"t":"<close>","code":1000})]);
    let f = h.expect("alice#2", 2).await;
    assert_event(&f[..1], "room", 21, "stream_delete");
    assert_eq!(f[0]["reason"], 5, "{f:?}");
    assert_event(&f[1..], "users", 9, "user_delete");
    h.send("alice#2", json!({"t":"bye"})).await;
    assert_eq!(h.until_close("alice#2", 1).await, vec![json!({"t":"<close>","code":1000})]);
    admin_rooms(&mut h, &server, "after everyone left").await;

    // Nothing else arrives anywhere.
    assert_eq!(h.open(), vec!["frank".to_string()]);
    h.quiet(&[]).await;
    server_operations(&mut h, &server).await;
    server.shutdown().await;
    h.transcript
}

/// The admin API's own operations (`engine::admin`): pages of rooms, messages, commands and room
/// extra info from the server, a stream deleted, reconnects forced by member and by session id,
/// and each one's refusal.
async fn server_operations(h: &mut Harness, server: &Server) {
    use parlor_server::engine::admin::{AdminRefusal, SessionRef};
    let now = tokio::time::Instant::now;
    let frank = hello(h, "frank2", "frank").await;
    let _ = hello(h, "gina", "gina").await;
    // A second session of frank (the first one stays open, in no room).
    let (a, _) = step(h, "frank2", login("r3", 0), &[]).await;
    assert_eq!(code(&a), 0, "{a}");
    let (a, _) = step(h, "gina", login("r3", 0), &[("frank2", 1)]).await;
    assert_eq!(code(&a), 0, "{a}");
    let (a, _) = step(h, "gina", login("r4", 0), &[]).await;
    assert_eq!(code(&a), 0, "{a}");
    ok_step(
        h,
        "gina",
        json!({"t":"publish","room":"r3","stream":"g1","extra":""}),
        &["frank2"],
        "room",
        1,
        "stream_add",
    )
    .await;

    let page = server.node.engine.room_page(APP, None, 1).await.expect("a page");
    assert_eq!((page.rooms.len(), page.more_after.as_deref()), (1, Some("r3")));
    let page2 = server.node.engine.room_page(APP, Some("r3"), 5).await.expect("a page");
    let names: Vec<&str> = page2.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!((names, page2.more_after.as_deref()), (vec!["r4"], None));
    let page = server.node.engine.room_page(APP, None, 2).await.expect("a page");
    assert_eq!((page.rooms.len(), page.more_after.as_deref()), (2, None), "exactly full: no next page");
    h.record("admin", json!({"t":"<room_page>","rooms":serde_json::to_value(&page.rooms).expect("json")}));

    let sent = server.node.engine.server_message(APP, "r3", false, "hello", 1, now()).await;
    let sent = sent.expect("reachable").expect("r3 exists");
    assert_eq!((sent.seq, sent.message_id.as_str()), (2, "2"));
    let f = [h.expect("frank2", 1).await, h.expect("gina", 1).await].concat();
    assert_event(&f, "room", 2, "broadcast");
    assert_eq!(f[0]["from"], json!({"id":"$server","name":"server"}));
    let sent = server.node.engine.server_message(APP, "r3", true, "wow", 1, now()).await;
    assert_eq!(sent.expect("reachable").expect("r3 exists").seq, 3);
    assert_event(&[h.expect("frank2", 1).await, h.expect("gina", 1).await].concat(), "room", 3, "barrage");
    let none = server.node.engine.server_message(APP, "nope", false, "x", 1, now()).await;
    assert_eq!(none.expect("reachable"), Err(AdminRefusal::NoSuchRoom));

    let to = vec!["gina".to_string(), "nobody".to_string()];
    let n = server.node.engine.server_command(APP, "r3", &to, "go", 1, now()).await;
    assert_eq!(n.expect("reachable"), Ok(1));
    let f = h.expect("gina", 1).await;
    assert_eq!(
        (f[0]["ch"].as_str(), f[0]["seq"].as_u64(), f[0]["command"].as_str()),
        (Some("direct"), Some(1), Some("go"))
    );
    let n = server.node.engine.server_command(APP, "r3", &[], "all", 1, now()).await;
    assert_eq!(n.expect("reachable"), Ok(2));
    let _ = [h.expect("frank2", 1).await, h.expect("gina", 1).await];

    let seq = server.node.engine.server_room_extra(APP, "r3", "topic", "news", 1, now()).await;
    assert_eq!(seq.expect("reachable"), Ok(4));
    assert_event(&[h.expect("frank2", 1).await, h.expect("gina", 1).await].concat(), "room", 4, "room_extra");

    let seq = server.node.engine.delete_stream(APP, "r3", "g1", now()).await;
    assert_eq!(seq.expect("reachable"), Ok(5));
    let f = [h.expect("frank2", 1).await, h.expect("gina", 1).await].concat();
    assert_event(&f, "room", 5, "stream_delete");
    assert_eq!(f[1]["reason"], 4, "the publisher is told, reason 4");
    let gone = server.node.engine.delete_stream(APP, "r3", "g1", now()).await;
    assert_eq!(gone.expect("reachable"), Err(AdminRefusal::NoSuchStream));

    let who = SessionRef::Member { room: "r4".into(), user: "gina".into() };
    let id = server.node.engine.reconnect(APP, &who, now()).await.expect("reachable").expect("gina is in r4");
    assert_eq!(h.until_close("gina", 1).await, vec![json!({"t":"<close>","code":4010})]);
    let who = SessionRef::Id(frank["session"].as_str().expect("a session id").to_string());
    let frank_id = server.node.engine.reconnect(APP, &who, now()).await.expect("reachable").expect("frank's session");
    assert_eq!(h.until_close("frank2", 1).await, vec![json!({"t":"<close>","code":4010})]);
    assert_ne!(id, frank_id);
    h.record("admin", json!({"t":"<reconnected>","session":frank_id}));
    let who = SessionRef::Member { room: "r4".into(), user: "frank".into() };
    assert_eq!(server.node.engine.reconnect(APP, &who, now()).await.expect("reachable"), Err(AdminRefusal::NoSuchUser));
    let who = SessionRef::Id("7.nope".into());
    assert_eq!(
        server.node.engine.reconnect(APP, &who, now()).await.expect("reachable"),
        Err(AdminRefusal::NoSuchSession)
    );

    let stats = server.node.engine.app_stats(APP).await.expect("reachable");
    assert_eq!((stats.rooms, stats.streams), (2, 0), "r3, r4");
    h.quiet(&[]).await;
}

#[tokio::test]
async fn memory_engine_conformance() {
    let started = std::time::Instant::now();
    let transcript = run_script(config()).await;
    check_golden(&transcript, &golden_path(), true, "memory engine");
    eprintln!("the script ran in {:?}", started.elapsed());
}

#[tokio::test]
async fn redis_engine_matches_memory() {
    let redis = parlor_testkit::RedisServer::start();
    let mut c = config();
    c.redis = vec![redis.url()];
    let transcript = run_script(c).await;
    check_golden(&transcript, &golden_path(), false, "redis engine");
}
