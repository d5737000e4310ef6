//! Logins applied in one batch look to every session exactly as if applied one at a time, with
//! one `user_add` per room instead of one per login.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use parlor_protocol::token::Claims;
use parlor_protocol::{Channel, RoomConfig, Seqs, User};
use serde_json::Value;
use tokio::time::Instant;

use super::super::MemoryEngine;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{ConnId, Deliver, Engine, Grant, Joining, NewSession, Op, Outcome, Reply, Req, SessionKey};
use crate::frame::Frame;

/// Everything the engine handed to the deliverer, in order, as text.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn push(&self, s: String) {
        self.0.lock().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

impl Deliver for Recorder {
    fn bind(&self, _: SessionKey, _: ConnId) -> bool {
        true
    }
    fn room_event(&self, _: u32, room: &str, ch: Option<Channel>, seq: u64, frame: &Frame, _: Option<SessionKey>) {
        let v: Value = serde_json::from_str(frame.as_str()).unwrap();
        match ch {
            Some(Channel::Users) => {
                self.push(format!("{room} users {seq} {} {}", v["kind"].as_str().unwrap(), ids(&v["users"])))
            }
            Some(Channel::Room) => self.push(format!("{room} room {seq} {}", v["kind"].as_str().unwrap())),
            _ => {}
        }
    }
    fn to_session(&self, key: SessionKey, frame: Frame) {
        let v: Value = serde_json::from_str(frame.as_str()).unwrap();
        match v["t"].as_str() {
            Some("ok") => self.push(format!("{key} ok users={} seq={}", ids(&v["users"]), v["seq"])),
            Some("kicked") => self.push(format!("{key} kicked {}", v["code"])),
            _ => {}
        }
    }
    fn joined(&self, _: u32, room: &str, key: SessionKey, _: bool, at: Seqs, _: Joining) {
        self.push(format!("{key} joined {room} at users {}", at.users.unwrap_or(0)));
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

fn ids(users: &Value) -> String {
    let mut ids: Vec<&str> =
        users.as_array().map(|a| a.iter().filter_map(|u| u["id"].as_str()).collect()).unwrap_or_default();
    ids.sort();
    ids.join(",")
}

fn engine() -> (MemoryEngine, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (MemoryEngine::new(ServerConfig::for_tests(1, "s"), Clock::new(), rec.clone()), rec)
}

async fn open(e: &MemoryEngine, user: &str, now: Instant) -> SessionKey {
    let claims = Claims::new(1, user, 0, u32::MAX as u64, "n");
    let new = NewSession { app: 1, user: User { id: user.into(), name: user.into() }, claims };
    e.open(new, 0, now).await.unwrap().key
}

fn login(e: &MemoryEngine, key: SessionKey, id: u64, now: Instant) -> impl Future<Output = Outcome> + '_ {
    let grant = Grant { exp_s: u64::MAX / 2, may_publish: true };
    let op = Op::Login { room: "r".into(), config: RoomConfig { max_members: 0, user_status_notify: true }, grant };
    let frame: parlor_protocol::ClientFrame =
        serde_json::from_value(serde_json::json!({"t":"login","id":id,"room":"r"})).unwrap();
    let subject = crate::rules::subject(&frame);
    let answer = move |reply: Reply| crate::rules::answer_frame(id, subject, reply, None);
    e.request(Req { key, app: 1, id }, op, now, answer)
}

/// Poll `f` once: a login queued behind the held lock is pending.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn logins_queued_behind_the_lock_are_one_user_add_and_each_ok_lists_the_others() {
    let (e, rec) = engine();
    let now = Instant::now();
    let a = open(&e, "a", now).await;
    let (b, c, d) = (open(&e, "b", now).await, open(&e, "c", now).await, open(&e, "d", now).await);
    assert_eq!(login(&e, a, 1, now).await, Outcome::Applied);
    assert_eq!(
        rec.take(),
        vec![
            "r users 1 user_add a".to_string(),
            format!("{a} joined r at users 1"),
            format!("{a} ok users= seq={{\"room\":0,\"users\":1}}")
        ]
    );

    let held = e.lock();
    let (mut lb, mut lc, mut ld) = (pin!(login(&e, b, 1, now)), pin!(login(&e, c, 1, now)), pin!(login(&e, d, 1, now)));
    assert!(
        poll_once(lb.as_mut()).is_pending()
            && poll_once(lc.as_mut()).is_pending()
            && poll_once(ld.as_mut()).is_pending()
    );
    assert!(rec.take().is_empty(), "nothing is applied while the lock is held");
    drop(held);
    for f in [lb.as_mut(), lc.as_mut(), ld.as_mut()] {
        assert_eq!(poll_once(f), Poll::Ready(Outcome::Applied));
    }
    let seq = "seq={\"room\":0,\"users\":2}";
    assert_eq!(
        rec.take(),
        vec![
            "r users 2 user_add b,c,d".to_string(),
            format!("{b} joined r at users 2"),
            format!("{c} joined r at users 2"),
            format!("{d} joined r at users 2"),
            format!("{b} ok users=a,c,d {seq}"),
            format!("{c} ok users=a,b,d {seq}"),
            format!("{d} ok users=a,b,c {seq}"),
        ]
    );
}

#[tokio::test]
async fn a_second_login_of_a_user_in_the_same_batch_kicks_the_first_after_its_ok() {
    let (e, rec) = engine();
    let now = Instant::now();
    let a = open(&e, "a", now).await;
    assert_eq!(login(&e, a, 1, now).await, Outcome::Applied);
    let (x1, x2, y) = (open(&e, "x", now).await, open(&e, "x", now).await, open(&e, "y", now).await);
    rec.take();

    let held = e.lock();
    let (mut l1, mut l2, mut ly) =
        (pin!(login(&e, x1, 1, now)), pin!(login(&e, x2, 1, now)), pin!(login(&e, y, 1, now)));
    assert!(
        poll_once(l1.as_mut()).is_pending()
            && poll_once(l2.as_mut()).is_pending()
            && poll_once(ly.as_mut()).is_pending()
    );
    drop(held);
    for f in [l1.as_mut(), l2.as_mut(), ly.as_mut()] {
        assert_eq!(poll_once(f), Poll::Ready(Outcome::Applied));
    }
    // x1 is announced and answered first; x2 then replaces it (no user change) and y joins in
    // the next batch with one user_add.
    assert_eq!(
        rec.take(),
        vec![
            "r users 2 user_add x".to_string(),
            format!("{x1} joined r at users 2"),
            format!("{x1} ok users=a seq={{\"room\":0,\"users\":2}}"),
            format!("{x1} kicked 1002050"),
            "r users 3 user_add y".to_string(),
            format!("{x2} joined r at users 3"),
            format!("{y} joined r at users 3"),
            format!("{x2} ok users=a,y seq={{\"room\":0,\"users\":3}}"),
            format!("{y} ok users=a,x seq={{\"room\":0,\"users\":3}}"),
        ]
    );
}

fn engine_holding(from: usize) -> (MemoryEngine, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let mut config = ServerConfig::for_tests(1, "s");
    config.users_batch_from = from;
    config.users_batch_window = std::time::Duration::from_millis(50);
    (MemoryEngine::new(config, Clock::new(), rec.clone()), rec)
}

fn request(e: &MemoryEngine, key: SessionKey, id: u64, op: Op, now: Instant) -> impl Future<Output = Outcome> + '_ {
    let frame: parlor_protocol::ClientFrame =
        serde_json::from_value(serde_json::json!({"t":"logout","id":id,"room":"r"})).unwrap();
    let subject = crate::rules::subject(&frame);
    e.request(Req { key, app: 1, id }, op, now, move |reply: Reply| {
        crate::rules::answer_frame(id, subject, reply, None)
    })
}

#[tokio::test(start_paused = true)]
async fn a_big_room_holds_logins_for_the_window_and_a_logout_announces_them_first() {
    let (e, rec) = engine_holding(2);
    let t0 = Instant::now();
    let a = open(&e, "a", t0).await;
    let (b, c, d) = (open(&e, "b", t0).await, open(&e, "c", t0).await, open(&e, "d", t0).await);
    // A room of one is small (from 2 on they are held): announced at once.
    assert_eq!(login(&e, a, 1, t0).await, Outcome::Applied);
    rec.take();

    // b and c are held for the window; a's message meanwhile is not theirs.
    let (mut lb, mut lc) = (pin!(login(&e, b, 1, t0)), pin!(login(&e, c, 1, t0)));
    assert!(poll_once(lb.as_mut()).is_pending() && poll_once(lc.as_mut()).is_pending());
    let message = Op::Message { room: "r".into(), barrage: false, message: "hi".into(), time_ms: 0 };
    assert_eq!(request(&e, a, 2, message, t0).await, Outcome::Applied);
    assert_eq!(rec.take(), vec!["r room 1 broadcast".to_string(), format!("{a} ok users= seq={{\"room\":1}}")]);
    assert_eq!(lb.as_mut().await, Outcome::Applied, "announced when the window ends");
    assert_eq!(Instant::now() - t0, std::time::Duration::from_millis(50));
    assert_eq!(poll_once(lc.as_mut()), Poll::Ready(Outcome::Applied));
    let seq = "seq={\"room\":1,\"users\":2}";
    assert_eq!(
        rec.take(),
        vec![
            "r users 2 user_add b,c".to_string(),
            format!("{b} joined r at users 2"),
            format!("{c} joined r at users 2"),
            format!("{b} ok users=a,c {seq}"),
            format!("{c} ok users=a,b {seq}"),
        ]
    );

    // d is held; b's logout cannot wait: d is announced (and answered) before it.
    let t1 = Instant::now();
    let mut ld = pin!(login(&e, d, 1, t1));
    assert!(poll_once(ld.as_mut()).is_pending());
    assert_eq!(request(&e, b, 2, Op::Logout { room: "r".into() }, t1).await, Outcome::Applied);
    assert_eq!(poll_once(ld.as_mut()), Poll::Ready(Outcome::Applied));
    assert_eq!(
        rec.take(),
        vec![
            "r users 3 user_add d".to_string(),
            format!("{d} joined r at users 3"),
            format!("{d} ok users=a,b,c seq={{\"room\":1,\"users\":3}}"),
            "r users 4 user_delete b".to_string(),
            format!("{b} ok users= seq={{\"users\":4}}"),
        ]
    );
}
