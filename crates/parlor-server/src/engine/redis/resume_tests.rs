//! A `resume` whose answer was lost (the node's Redis call timed out after the script ran, or the
//! client's connection died) is run again, by the node or by the client on any node, and gets
//! the same session and the same new token; once the client confirmed the new token, the used
//! one is refused (protocol §9.3, "A resume can be retried").

use std::sync::Arc;

use parlor_protocol::token::Claims;
use parlor_protocol::{Ack, Channel, Seqs, User};
use tokio::time::Instant;

use super::RedisEngine;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{ConnId, Deliver, Engine, Joining, NewSession, SessionKey};
use crate::frame::Frame;

/// Hands nothing anywhere (the scripts' answers are what is checked), and records the `joined`
/// calls: which sessions the engine told this node are in which room.
#[derive(Default)]
struct Joins(parking_lot::Mutex<Vec<(String, SessionKey)>>);

impl Deliver for Joins {
    fn bind(&self, _: SessionKey, _: ConnId) -> bool {
        true
    }
    fn room_event(&self, _: u32, _: &str, _: Option<Channel>, _: u64, _: &Frame, _: Option<SessionKey>) {}
    fn to_session(&self, _: SessionKey, _: Frame) {}
    fn joined(&self, _: u32, room: &str, key: SessionKey, _: bool, _: Seqs, _: Joining) {
        self.0.lock().push((room.to_string(), key));
    }
    fn left(&self, _: u32, _: &str, _: SessionKey, _: Joining) {}
    fn close(&self, _: SessionKey, _: Option<ConnId>, _: u16, _: &str, _: bool) {}
    fn has_members(&self, _: u32, _: &str) -> bool {
        false
    }
    fn drop_connections(&self, _: u32) -> usize {
        0
    }
}

#[tokio::test]
async fn a_resume_retried_with_the_used_token_gets_the_same_new_token_until_it_is_confirmed() {
    let redis = parlor_testkit::RedisServer::start();
    let mut config = ServerConfig::for_tests(1, "s");
    config.redis = vec![redis.url()];
    let engine = RedisEngine::connect(config, Clock::new(), Arc::new(Joins::default()), Arc::new(Default::default()))
        .await
        .expect("connect");
    let now = Instant::now();
    let claims = Claims::new(1, "u1", 0, u32::MAX as u64, "n");
    let new = NewSession { app: 1, user: User { id: "u1".into(), name: "u1".into() }, claims };
    let opened = engine.open(new, 1, now).await.expect("open");
    let attempt = |token: &str, conn: &str, new_token: &str| {
        [opened.public_id.clone(), token.to_string(), "{}".to_string(), conn.to_string(), new_token.to_string()]
    };
    let token_of =
        |payload: &str| serde_json::from_str::<serde_json::Value>(payload).expect("json")["resume_token"].clone();
    let (t1, t2) = ("1".repeat(32), "2".repeat(32));
    let first = engine.run(1, now, "resume", &attempt(&opened.resume_token, "2", &t1)).await.expect("redis");
    assert_eq!(first.status, "resumed", "{:?}", first.payload);
    assert_eq!(token_of(&first.payload), t1);
    // Its answer was lost: the node runs the very same attempt again.
    let again = engine.run(1, now, "resume", &attempt(&opened.resume_token, "2", &t1)).await.expect("redis");
    assert_eq!(again.status, "resumed", "{:?}", again.payload);
    // The client retries on another connection (of any node): the same new token, not its own.
    let retry = engine.run(1, now, "resume", &attempt(&opened.resume_token, "3", &t2)).await.expect("redis");
    assert_eq!((retry.status.as_str(), token_of(&retry.payload)), ("resumed", serde_json::json!(t1)));
    // A confirmation with a token that is not the session's changes nothing.
    engine.confirm(opened.key, 1, &t2, now).await;
    let still = engine.run(1, now, "resume", &attempt(&opened.resume_token, "4", &t2)).await.expect("redis");
    assert_eq!(still.status, "resumed", "{:?}", still.payload);
    // The client shows it holds t1: the used token is void from now on.
    engine.confirm(opened.key, 1, &t1, now).await;
    let copy = engine.run(1, now, "resume", &attempt(&opened.resume_token, "5", &t2)).await.expect("redis");
    assert_eq!((copy.status.as_str(), copy.payload.as_str()), ("refused", "wrong resume token"));
    // The newest token works, through the engine's own resume; a newer resume voids t1 too.
    let resumed = engine.resume(&opened.public_id, &t1, &Ack::default(), 6, now).await.expect("redis");
    let newest = resumed.expect("resumed").resume_token;
    assert_ne!(newest, t1);
    let stale = engine.resume(&opened.public_id, &opened.resume_token, &Ack::default(), 7, now).await.expect("redis");
    assert!(stale.is_err(), "{stale:?}");
    engine.confirm(opened.key, 1, &newest, now).await;
    let stale = engine.resume(&opened.public_id, &t1, &Ack::default(), 8, now).await.expect("redis");
    assert!(stale.is_err(), "{stale:?}");
}

/// A Redis that lost the function library (restarted without persistence, or a failover that
/// lost its load) is given it again by the first call that finds it missing; that call runs.
/// And one call leaves nothing to the next (the library's per-call state is set by `begin`).
#[tokio::test]
async fn a_lost_function_library_is_loaded_again_and_calls_do_not_share_state() {
    let redis = parlor_testkit::RedisServer::start();
    let mut config = ServerConfig::for_tests(1, "s");
    config.redis = vec![redis.url()];
    let engine = RedisEngine::connect(config, Clock::new(), Arc::new(Joins::default()), Arc::new(Default::default()))
        .await
        .expect("connect");
    let now = Instant::now();
    let mut c = engine.conn.clone();
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query_async(&mut c).await.expect("flush");
    let claims = Claims::new(1, "u1", 0, u32::MAX as u64, "n");
    let new = NewSession { app: 1, user: User { id: "u1".into(), name: "u1".into() }, claims: claims.clone() };
    let first = engine.open(new, 1, now).await.expect("open after the library was lost");
    let second = engine
        .open(NewSession { app: 1, user: User { id: "u2".into(), name: "u2".into() }, claims }, 2, now)
        .await
        .expect("open");
    assert_ne!(first.key, second.key);
    let out = engine.run(1, now, "reap", &[]).await.expect("reap");
    assert!(out.raw.is_empty(), "a reap with nothing due reports nothing, not an earlier call's items: {:?}", out.raw);
}

/// A login whose first run's answer was lost (its call timed out after the script ran) and that
/// is then recalled (the node's rerun, or the client's retry on another node) must tell the
/// calling node that the session is in the room: else that node neither subscribes to the room
/// nor delivers its events to the session, and the client, told `ok`, silently misses every
/// event after it (found by `parlor sim --engine redis`, seed 102).
#[tokio::test]
async fn a_recalled_login_tells_the_node_the_session_is_in_the_room() {
    use crate::engine::{Grant, Op, Req};
    let redis = parlor_testkit::RedisServer::start();
    let mut config = ServerConfig::for_tests(1, "s");
    config.redis = vec![redis.url()];
    let connect =
        |deliver: Arc<Joins>| RedisEngine::connect(config.clone(), Clock::new(), deliver, Arc::new(Default::default()));
    let (first_joins, other_joins) = (Arc::new(Joins::default()), Arc::new(Joins::default()));
    let first = connect(first_joins.clone()).await.expect("connect");
    let other = connect(other_joins.clone()).await.expect("connect");
    let now = Instant::now();
    let claims = Claims::new(1, "u1", 0, u32::MAX as u64, "n");
    let grant = Grant::of(&claims);
    let new = NewSession { app: 1, user: User { id: "u1".into(), name: "u1".into() }, claims };
    let opened = first.open(new, 1, now).await.expect("open");
    let login = Op::Login { room: "r1".into(), config: Default::default(), grant };
    let req = Req { key: opened.key, app: 1, id: 1 };
    first.request(req, login.clone(), now, |_| Frame::from("ok".to_string())).await;
    assert_eq!(*first_joins.0.lock(), vec![("r1".to_string(), opened.key)], "the login itself joins");
    // The answer was lost; the client retries the same id on another node: a repeat.
    other.request(req, login, now, |_| Frame::from("ok".to_string())).await;
    assert_eq!(*other_joins.0.lock(), vec![("r1".to_string(), opened.key)], "the repeat must join too");
}

/// Records what a node hands its sessions, in order: room events by seq, and frames.
#[derive(Default)]
struct Log(parking_lot::Mutex<Vec<String>>);

impl Deliver for Log {
    fn bind(&self, _: SessionKey, _: ConnId) -> bool {
        true
    }
    fn room_event(&self, _: u32, room: &str, ch: Option<Channel>, seq: u64, _: &Frame, _: Option<SessionKey>) {
        self.0.lock().push(format!("event {room} {ch:?} {seq}"));
    }
    fn to_session(&self, key: SessionKey, frame: Frame) {
        self.0.lock().push(format!("to {key}: {}", frame.as_str()));
    }
    fn joined(&self, _: u32, _: &str, _: SessionKey, _: bool, _: Seqs, _: Joining) {}
    fn left(&self, _: u32, _: &str, _: SessionKey, _: Joining) {}
    fn close(&self, _: SessionKey, _: Option<ConnId>, _: u16, _: &str, _: bool) {}
    fn has_members(&self, _: u32, _: &str) -> bool {
        true
    }
    fn drop_connections(&self, _: u32) -> usize {
        0
    }
}

/// A request that ran (its answer lost) and is recalled on a node that has not yet delivered the
/// events before its own (its subscriber was away): those events reach the session before the
/// answer, whose seq the client takes as its own (found by `parlor sim --engine redis`, seed
/// 4205: the client got `ok` with seq 4, then event 3, a "duplicate").
#[tokio::test]
async fn a_recalled_answer_follows_the_events_before_its_own() {
    use crate::engine::{Grant, Op, Req};
    let redis = parlor_testkit::RedisServer::start();
    let mut config = ServerConfig::for_tests(1, "s");
    config.redis = vec![redis.url()];
    let a =
        RedisEngine::connect(config.clone(), Clock::new(), Arc::new(Joins::default()), Arc::new(Default::default()))
            .await
            .expect("connect");
    let log = Arc::new(Log::default());
    let b =
        RedisEngine::connect(config, Clock::new(), log.clone(), Arc::new(Default::default())).await.expect("connect");
    let now = Instant::now();
    let session = |user: &str| {
        let claims = Claims::new(1, user, 0, u32::MAX as u64, "n");
        NewSession { app: 1, user: User { id: user.into(), name: user.into() }, claims }
    };
    let (s, t) = (session("s"), session("t"));
    let login = Op::Login { room: "r1".into(), config: Default::default(), grant: Grant::of(&s.claims) };
    let s = b.open(s, 1, now).await.expect("open").key;
    let t = a.open(t, 2, now).await.expect("open").key;
    let ok = |_| Frame::from("answer".to_string());
    b.request(Req { key: s, app: 1, id: 1 }, login.clone(), now, ok).await;
    a.request(Req { key: t, app: 1, id: 1 }, login, now, ok).await;
    // B's subscriber goes away (it comes back 200 ms later and fills gaps from the logs then).
    redis.kill_pubsub_clients();
    let message = |m: &str| Op::Message { room: "r1".into(), barrage: false, message: m.into(), time_ms: 0 };
    // T's broadcast is seq 1 of r1's room channel, which B does not hear.
    a.request(Req { key: t, app: 1, id: 2 }, message("m1"), now, ok).await;
    // S's broadcast (seq 2) first ran where its connection was then; its answer was lost...
    a.request(Req { key: s, app: 1, id: 2 }, message("m2"), now, ok).await;
    log.0.lock().clear();
    // ...and S retries it on B: recalled.
    b.request(Req { key: s, app: 1, id: 2 }, message("m2"), now, ok).await;
    let log = log.0.lock().clone();
    let answer = log.iter().position(|l| l.starts_with("to ")).expect("answered");
    let before = log.iter().position(|l| l == "event r1 Some(Room) 1");
    assert!(before.is_some_and(|e| e < answer), "event 1 must come before the answer: {log:?}");
}
