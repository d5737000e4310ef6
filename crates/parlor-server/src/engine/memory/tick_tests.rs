//! The tick over the deadline queue does what the full scan of every session did: two engines
//! get the same random sessions, logins, pings, renewals, resumes and ticks; one ticks over its
//! due sessions, the other checks every session; what each tells the sessions and rooms at every
//! tick must be the same (as sets: within one tick the order of sessions was never defined).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use parlor_protocol::token::Claims;
use parlor_protocol::{Ack, Channel, RoomConfig, Seqs, User};
use proptest::prelude::*;
use tokio::time::Instant;

use super::MemoryEngine;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{ConnId, Deliver, Engine, Grant, Joining, NewSession, Op, Opened, Req, SessionKey};
use crate::frame::Frame;

/// What the engine told anyone, in a form both engines produce alike (no seqs, no random ids).
#[derive(Default)]
struct Record(Mutex<Vec<String>>);

impl Record {
    fn take(&self) -> Vec<String> {
        let mut v = std::mem::take(&mut *self.0.lock());
        v.sort();
        v
    }
}

fn kind(frame: &Frame) -> String {
    let mut v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
    match v.get("t").and_then(|t| t.as_str()) {
        Some("kicked") | Some("token_will_expire") => frame.as_str().to_string(),
        Some("event") => {
            if let Some(o) = v.as_object_mut() {
                o.remove("seq");
            }
            v.to_string()
        }
        Some(t) => t.to_string(),
        None => frame.as_str().to_string(),
    }
}

impl Deliver for Record {
    fn bind(&self, _key: SessionKey, _conn: ConnId) -> bool {
        true
    }
    fn room_event(
        &self,
        _app: u32,
        room: &str,
        _ch: Option<Channel>,
        _seq: u64,
        frame: &Frame,
        _author: Option<SessionKey>,
    ) {
        self.0.lock().push(format!("room {room} {}", kind(frame)));
    }
    fn to_session(&self, key: SessionKey, frame: Frame) {
        self.0.lock().push(format!("to {key} {}", kind(&frame)));
    }
    fn joined(&self, _app: u32, _room: &str, _key: SessionKey, _notify: bool, _at: Seqs, _: Joining) {}
    fn left(&self, _app: u32, _room: &str, _key: SessionKey, _: Joining) {}
    fn close(&self, key: SessionKey, _conn: Option<ConnId>, code: u16, _reason: &str, abort: bool) {
        self.0.lock().push(format!("close {key} {code} {abort}"));
    }
    fn has_members(&self, _app: u32, _room: &str) -> bool {
        false
    }
    fn drop_connections(&self, _app: u32) -> usize {
        0
    }
}

#[derive(Debug, Clone)]
enum Step {
    Open(u8),
    Login { session: u8, room: u8, ttl_s: u8 },
    Renew { session: u8, ttl_s: u8 },
    Ping(u8),
    Resume(u8),
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4).prop_map(Step::Open),
        (0u8..8, 0u8..3, 0u8..40).prop_map(|(session, room, ttl_s)| Step::Login { session, room, ttl_s }),
        (0u8..8, 0u8..40).prop_map(|(session, ttl_s)| Step::Renew { session, ttl_s }),
        (0u8..8).prop_map(Step::Ping),
        (0u8..8).prop_map(Step::Resume),
        (1u16..8000).prop_map(Step::Wait),
    ]
}

struct Side {
    engine: MemoryEngine,
    record: Arc<Record>,
    opened: Vec<Opened>,
}

fn side(cfg: &ServerConfig, clock: Clock) -> Side {
    let record = Arc::new(Record::default());
    Side { engine: MemoryEngine::new(cfg.clone(), clock, record.clone()), record, opened: Vec::new() }
}

async fn apply(side: &mut Side, step: &Step, now: Instant, now_s: u64, req_id: u64) {
    let e = &side.engine;
    let key_of = |i: u8| side.opened.get(i as usize % side.opened.len().max(1)).map(|o| o.key);
    match step {
        Step::Open(user) => {
            let claims = Claims::new(1, format!("u{user}"), now_s, 3600, "n");
            let user = User { id: format!("u{user}"), name: String::new() };
            let o = e.open(NewSession { app: 1, user, claims }, 1, now).await.expect("memory is always there");
            side.opened.push(o);
        }
        Step::Login { session, room, ttl_s } => {
            let Some(key) = key_of(*session) else { return };
            let grant = Grant { exp_s: now_s + u64::from(*ttl_s), may_publish: true };
            let op = Op::Login { room: format!("r{room}"), config: RoomConfig::default(), grant };
            e.request(Req { key, app: 1, id: req_id }, op, now, |_| Frame::from("answer".to_string())).await;
        }
        Step::Renew { session, ttl_s } => {
            let Some(key) = key_of(*session) else { return };
            let exp = now_s + u64::from(*ttl_s);
            let claims = Claims::new(1, "u", now_s, u64::from(*ttl_s), "n");
            let op = Op::Renew { room: None, grant: Grant { exp_s: exp, may_publish: true }, claims };
            e.request(Req { key, app: 1, id: req_id }, op, now, |_| Frame::from("answer".to_string())).await;
        }
        Step::Ping(session) => {
            if let Some(key) = key_of(*session) {
                e.touch(key, 1, None, now).await;
            }
        }
        Step::Resume(session) => {
            let Some(o) = side.opened.get(*session as usize % side.opened.len().max(1)).cloned() else { return };
            // The resume token rotates: the next resume of this session fails on both sides alike.
            let _ = e.resume(&o.public_id, &o.resume_token, &Ack::default(), 1, now).await;
        }
        Step::Wait(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn the_deadline_tick_does_what_the_full_scan_did(steps in proptest::collection::vec(step(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let cfg = ServerConfig {
                session_timeout: Duration::from_secs(5),
                retention: Duration::from_secs(12),
                token_warning: Duration::from_secs(3),
                online_interval: Duration::from_secs(2),
                max_offline_sessions: 3,
                ..ServerConfig::default()
            };
            let clock = Clock::new();
            let (mut queued, mut scan) = (side(&cfg, clock), side(&cfg, clock));
            let mut now = Instant::now();
            let mut next_tick = now;
            for (i, step) in steps.iter().enumerate() {
                if let Step::Wait(ms) = step {
                    let until = now + Duration::from_millis(u64::from(*ms));
                    // Ticks every 500 ms, as the node's ticker runs them.
                    while next_tick <= until {
                        now = next_tick;
                        queued.engine.tick_now(now);
                        {
                            let mut st = scan.engine.state.lock();
                            let keys: Vec<SessionKey> = st.sessions.keys().copied().collect();
                            scan.engine.tick_sessions(&mut st, now, &keys);
                        }
                        prop_assert_eq!(queued.record.take(), scan.record.take(), "tick at {:?}", now);
                        next_tick += Duration::from_millis(500);
                    }
                    now = until;
                    continue;
                }
                let now_s = clock.wall_s(now);
                apply(&mut queued, step, now, now_s, i as u64 + 1).await;
                apply(&mut scan, step, now, now_s, i as u64 + 1).await;
                prop_assert_eq!(queued.record.take(), scan.record.take(), "after {:?}", step);
            }
            // Nothing piles up: at most a session's own entry plus one per recheck asked for.
            prop_assert!(queued.engine.deadlines.lock().len() <= queued.opened.len() + steps.len());
            Ok(())
        })?;
    }
}
