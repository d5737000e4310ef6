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
use crate::engine::{ConnId, Deliver, Engine, NewSession, SessionKey};
use crate::frame::Frame;

/// Hands nothing anywhere: the script's answers are what is checked.
struct Nowhere;

impl Deliver for Nowhere {
    fn bind(&self, _: SessionKey, _: ConnId) -> bool {
        true
    }
    fn room_event(&self, _: u32, _: &str, _: Option<Channel>, _: u64, _: &Frame, _: Option<SessionKey>) {}
    fn to_session(&self, _: SessionKey, _: Frame) {}
    fn joined(&self, _: u32, _: &str, _: SessionKey, _: bool, _: Seqs) {}
    fn left(&self, _: u32, _: &str, _: SessionKey) {}
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
    let engine = RedisEngine::connect(config, Clock::new(), Arc::new(Nowhere), Arc::new(Default::default()))
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
    let engine = RedisEngine::connect(config, Clock::new(), Arc::new(Nowhere), Arc::new(Default::default()))
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
