//! A `resume` whose answer the node lost (its Redis call timed out after the script ran) is run
//! again by the node, with the same new token, and succeeds; the used token stays single-use
//! for everyone else (protocol §9.3, "Resume tokens are single-use").

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
async fn a_resume_run_again_by_its_node_succeeds_and_the_used_token_stays_single_use() {
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
    let attempt = |token: &str, new_token: &str| {
        [opened.public_id.clone(), token.to_string(), "{}".to_string(), "2".to_string(), new_token.to_string()]
    };
    let (t1, t2) = ("1".repeat(32), "2".repeat(32));
    let first = engine.run(1, now, "resume", &attempt(&opened.resume_token, &t1)).await.expect("redis");
    assert_eq!(first.status, "resumed", "{:?}", first.payload);
    // Its answer was lost: the node runs the very same attempt again.
    let again = engine.run(1, now, "resume", &attempt(&opened.resume_token, &t1)).await.expect("redis");
    assert_eq!(again.status, "resumed", "{:?}", again.payload);
    // Any other attempt with the used token (a client's copy of it) is refused.
    let copy = engine.run(1, now, "resume", &attempt(&opened.resume_token, &t2)).await.expect("redis");
    assert_eq!((copy.status.as_str(), copy.payload.as_str()), ("refused", "wrong resume token"));
    // The newest token works, through the engine's own resume, and then is used up in turn.
    let resumed = engine.resume(&opened.public_id, &t1, &Ack::default(), 3, now).await.expect("redis");
    assert!(resumed.is_ok(), "{resumed:?}");
    let stale = engine.resume(&opened.public_id, &t1, &Ack::default(), 4, now).await.expect("redis");
    assert!(stale.is_err(), "{stale:?}");
}
