//! The memory engine (the default): every session and room of one process, behind one lock.
//!
//! One state, one owner: sessions, rooms, streams and logs live in one [`State`] guarded by one
//! mutex. Work under the lock is short and never waits: an event is encoded once, appended to
//! its channel log and handed to the [`Deliver`], which queues it (a reference-counted clone) on
//! each recipient's outbox. Delivering under the lock is what keeps every session's frames in
//! `seq` order.
//!
//! Time is a parameter: every entry point takes `now` (a `tokio::time::Instant`), so tests on
//! tokio's paused clock drive timeouts without sleeping.

mod admin;
mod batch;
mod deadlines;
mod log;
mod pending;
mod presence;
mod requests;
mod resume;
mod room;
mod state;
#[cfg(test)]
mod tick_tests;

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use parlor_protocol::{Ack, ErrorCode, EventBody, ServerFrame, TokenWillExpire, User};
use serde_json::json;
use tokio::time::Instant;

use self::deadlines::Deadlines;
use self::state::{random_id, Leave, Remembered, Session, State};
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{
    ConnId, Deliver, Engine, MembersPage, NewSession, Op, Opened, Outcome, Recalled, Refusal, Reply, Req,
    ResumeRefused, Resumed, RoomInfo, SessionKey, Stats, Unavailable,
};
use crate::frame::Frame;
use crate::named::Named;
use crate::webhook::{Hooks, NoHooks};

/// The in-process engine.
#[derive(Debug)]
pub struct MemoryEngine {
    config: ServerConfig,
    clock: Clock,
    state: Mutex<State>,
    /// Logins waiting for the lock ([`batch`]).
    queue: Mutex<Vec<batch::Job>>,
    /// When each session is next due in the tick. Taken only with `state` held (after it), so
    /// that a tick never misses what a request just changed.
    deadlines: Mutex<Deadlines>,
}

impl MemoryEngine {
    /// An empty engine publishing to `deliver`.
    pub fn new(config: ServerConfig, clock: Clock, deliver: Arc<dyn Deliver>) -> MemoryEngine {
        let state = State {
            sessions: Default::default(),
            by_public: Default::default(),
            rooms: Default::default(),
            streams: Default::default(),
            next_session: 0,
            deliver,
            hooks: Arc::new(NoHooks),
            batching: false,
            pending: Vec::new(),
            config: Arc::new(config.clone()),
        };
        MemoryEngine {
            config,
            clock,
            state: Mutex::new(state),
            queue: Mutex::new(Vec::new()),
            deadlines: Default::default(),
        }
    }

    /// The same engine emitting webhook events to `hooks`.
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> MemoryEngine {
        self.state.get_mut().hooks = hooks;
        self
    }

    fn recall(st: &State, key: SessionKey, id: u64) -> Reply {
        let Some(s) = st.sessions.get(&key) else {
            return Reply::Fresh(Err(Refusal::NoSession));
        };
        let Some((_, remembered)) = s.answers.iter().find(|(i, _)| *i == id) else {
            return Reply::Forgotten;
        };
        Reply::Repeat(match remembered {
            Remembered::Done(seq, message_id) => Recalled::Done { seq: *seq, message_id: message_id.clone() },
            Remembered::Refusal(r) => Recalled::Refusal(*r),
            Remembered::Refused(code, message) => Recalled::Refused(*code, message.clone()),
            Remembered::LoggedIn(room) => {
                let in_room = s.rooms.contains_key(room);
                let kicked = s.kicked.get(room).and_then(|c| ErrorCode::from_code(*c));
                Recalled::LoggedIn(match st.room_state(&(s.app, room.clone()), key) {
                    Some(entered) if in_room => Ok(entered),
                    _ => Err(kicked.unwrap_or(ErrorCode::NotInRoom)),
                })
            }
        })
    }

    fn request_now(&self, req: Req, op: Op, now: Instant, answer: impl FnOnce(Reply) -> Frame) -> Outcome {
        // These leave held logins alone (see `batch`): an existing member's room events reach
        // the deliverer's members only, and a held login's `ok` covers them.
        let keeps = matches!(
            op,
            Op::Message { .. }
                | Op::Publish { .. }
                | Op::Unpublish { .. }
                | Op::StreamExtra { .. }
                | Op::RoomExtra { .. }
        );
        let mut st = if keeps { self.lock_keeping() } else { self.lock() };
        let reply = Self::request_locked(&mut st, &self.config, req, op, now);
        let outcome = if matches!(reply, Reply::Fresh(Ok(_))) { Outcome::Applied } else { Outcome::Answered };
        // Under the lock, so that no event of a later seq reaches the session before it.
        st.deliver.to_session(req.key, answer(reply));
        outcome
    }

    fn request_locked(st: &mut State, config: &ServerConfig, req: Req, op: Op, now: Instant) -> Reply {
        let Some(s) = st.sessions.get_mut(&req.key) else {
            return Reply::Fresh(Err(Refusal::NoSession));
        };
        s.last_frame = now;
        if req.id <= s.last_request {
            return Self::recall(st, req.key, req.id);
        }
        s.last_request = req.id;
        let (result, remembered) = match op {
            // The answer carries the rules' message (the node has it); the engine only remembers.
            Op::Refused { code, message } => (Err(Refusal::Login(code)), Remembered::Refused(code, message)),
            op => {
                let login_room = match &op {
                    Op::Login { room, .. } => Some(room.clone()),
                    Op::Switch { to, .. } => Some(to.clone()),
                    _ => None,
                };
                let result = st.apply(req.key, op, now, config);
                let remembered = match (&result, login_room) {
                    (Ok(_), Some(room)) => Remembered::LoggedIn(room),
                    (Ok(done), None) => Remembered::Done(done.seq, done.message_id.clone()),
                    (Err(r), _) => Remembered::Refusal(*r),
                };
                (result, remembered)
            }
        };
        if let Some(s) = st.sessions.get_mut(&req.key) {
            s.answers.push_back((req.id, remembered));
            while s.answers.len() > config.answer_memory {
                s.answers.pop_front();
            }
        }
        Reply::Fresh(result)
    }

    fn tick_now(&self, now: Instant) {
        let mut st = self.lock();
        let due = self.deadlines.lock().due(now);
        self.tick_sessions(&mut st, now, &due);
        // Each checked session is due again at its next deadline as it is now.
        let mut deadlines = self.deadlines.lock();
        for key in due {
            if let Some(at) = st.sessions.get(&key).and_then(|s| deadlines::next_check(s, &self.config, &self.clock)) {
                deadlines.at(key, at);
            }
        }
    }

    /// The tick's work for the sessions in `keys` (those due; the scan of old checked every
    /// session, which the tests compare against), then for every room.
    fn tick_sessions(&self, st: &mut State, now: Instant, keys: &[SessionKey]) {
        let cfg = &self.config;
        let now_s = self.clock.wall_s(now);
        let mut offline = Vec::new();
        let mut expired = Vec::new();
        let mut tokens = Vec::new();
        for key in keys {
            let Some(s) = st.sessions.get(key) else {
                continue;
            };
            let silent = now.saturating_duration_since(s.last_frame);
            if s.offline {
                if silent >= cfg.retention {
                    expired.push(*key);
                }
                continue;
            }
            if silent >= cfg.session_timeout {
                offline.push(*key);
                continue;
            }
            for (room, m) in &s.rooms {
                if now_s >= m.grant.exp_s {
                    tokens.push((*key, room.clone(), None));
                } else if !m.warned && m.grant.exp_s.saturating_sub(now_s) <= cfg.token_warning.as_secs() {
                    tokens.push((*key, room.clone(), Some(m.grant.exp_s - now_s)));
                }
            }
        }
        crate::telemetry::offline(offline.len() as u64, expired.len() as u64);
        for key in offline {
            st.go_offline(key, now);
        }
        for key in expired {
            if let Some(s) = st.sessions.remove(&key) {
                st.by_public.remove(&s.public_id);
                tracing::info!(session = %s.public_id, user = %s.user.id, "retention ended");
            }
        }
        // Not over the cap while the sessions of every kind are not (no scan then).
        let cap = cfg.max_offline_sessions;
        let over = if cap > 0 && st.sessions.len() > cap { st.over_offline_cap(cap) } else { Vec::new() };
        for key in over {
            if let Some(s) = st.sessions.remove(&key) {
                st.by_public.remove(&s.public_id);
                metrics::counter!("parlor_offline_sessions_dropped_total").increment(1);
                tracing::info!(session = %s.public_id, user = %s.user.id, "offline cap: dropped before its retention ended");
            }
        }
        for (key, room, warn) in tokens {
            match warn {
                Some(remaining_s) => {
                    if let Some(m) = st.sessions.get_mut(&key).and_then(|s| s.rooms.get_mut(&room)) {
                        m.warned = true;
                    }
                    st.send(key, &ServerFrame::TokenWillExpire(TokenWillExpire { room, remaining_s }));
                }
                None => st.kick(key, &room, Leave::Kicked(ErrorCode::KickedTokenExpired, None), now),
            }
        }
        // Large rooms' batches first, so that a batch and the `online` after it agree.
        st.flush_due_presence(now);
        let State { rooms, deliver, .. } = st;
        for ((app, room_id), room) in rooms.iter_mut() {
            room.room_log.trim(now, cfg.log_len, cfg.log_age);
            room.users_log.trim(now, cfg.log_len, cfg.log_age);
            // A large room's count every presence interval (§9.10), others' every 30 s (§5); a
            // room that was large keeps the fast pace until its count was looked at once since.
            let large = cfg.is_large(*app, room.members.len());
            room.fast_online |= large;
            let due = match room.fast_online {
                true => room.online_at + cfg.presence_interval,
                false => room.next_online,
            };
            // A batch still waiting goes first: the count never runs ahead of the changes.
            if now >= due && room.presence.is_empty() {
                room.online_at = now;
                room.next_online = now + cfg.online_interval;
                room.fast_online = large;
                let count = room.members.len() as u32;
                if count != room.online_sent {
                    room.online_sent = count;
                    let frame = Frame::event(room_id, None, None, EventBody::Online { count });
                    deliver.room_event(*app, room_id, None, 0, &frame, None);
                }
            }
        }
    }
}

impl Engine for MemoryEngine {
    async fn open(&self, n: NewSession, conn: ConnId, now: Instant) -> Result<Opened, Unavailable> {
        let mut st = self.lock_keeping();
        st.next_session += 1;
        let key = st.next_session;
        let opened = Opened { key, public_id: random_id(), resume_token: random_id() };
        let session = Session {
            public_id: opened.public_id.clone(),
            resume_token: opened.resume_token.clone(),
            prev_token: None,
            told: Named::default(),
            app: n.app,
            user: n.user,
            claims: n.claims,
            last_frame: now,
            offline: false,
            rooms: Named::default(),
            away: Named::default(),
            kicked: Named::default(),
            direct: Default::default(),
            answers: VecDeque::new(),
            last_request: 0,
        };
        tracing::info!(session = %session.public_id, app = session.app, user = %session.user.id, "hello");
        st.by_public.insert(session.public_id.clone(), key);
        st.sessions.insert(key, Box::new(session));
        st.deliver.bind(key, conn);
        if let Some(at) = now.checked_add(self.config.session_timeout) {
            self.deadlines.lock().at(key, at);
        }
        Ok(opened)
    }

    async fn resume(
        &self,
        session: &str,
        resume_token: &str,
        ack: &Ack,
        conn: ConnId,
        now: Instant,
    ) -> Result<Result<Resumed, ResumeRefused>, Unavailable> {
        let mut st = self.lock();
        let resumed = st.resume(session, resume_token, ack, conn, now, &self.config, &self.clock);
        if let Ok(r) = &resumed {
            // Online again, maybe back in rooms: its deadlines are new.
            self.deadlines.lock().soon(r.key, now);
        }
        Ok(resumed)
    }

    async fn confirm(&self, key: SessionKey, _app: u32, token: &str, _now: Instant) {
        self.lock_keeping().confirm(key, token);
    }

    async fn touch(&self, key: SessionKey, _app: u32, ack: Option<&Ack>, now: Instant) {
        let mut st = self.lock_keeping();
        if let Some(s) = st.sessions.get_mut(&key) {
            s.last_frame = now;
            if let Some(ack) = ack {
                // A kick the client no longer acks is one it has heard of.
                s.kicked.retain(|room, _| ack.rooms.contains_key(room));
            }
        }
    }

    async fn request<A>(&self, req: Req, op: Op, now: Instant, answer: A) -> Outcome
    where
        A: FnOnce(Reply) -> Frame + Send + 'static,
    {
        if matches!(op, Op::Login { .. }) {
            return self.login(req, op, now, Box::new(answer)).await;
        }
        // A switch or renewal brings a token's deadlines (a login's: in `batch`); checked at the
        // next tick. In the answer, which runs under the state lock: a tick cannot come between.
        let new_grant = matches!(op, Op::Switch { .. } | Op::Renew { .. });
        let answer = |reply: Reply| {
            if new_grant && matches!(reply, Reply::Fresh(Ok(_))) {
                self.deadlines.lock().soon(req.key, now);
            }
            answer(reply)
        };
        self.request_now(req, op, now, answer)
    }

    async fn bye(&self, key: SessionKey, _app: u32, now: Instant) {
        self.lock().end_session(key, now);
    }

    async fn tick(&self, now: Instant) {
        self.tick_now(now);
    }

    async fn stats(&self) -> Result<Stats, Unavailable> {
        // Counts only: held logins stay held.
        let st = self.lock_keeping();
        Ok(Stats { sessions: st.sessions.len(), rooms: st.rooms.len(), streams: st.streams.len() })
    }

    async fn rooms(&self, app: u32) -> Result<Vec<RoomInfo>, Unavailable> {
        let st = self.lock();
        let mut out: Vec<RoomInfo> =
            st.rooms.iter().filter(|((a, _), _)| *a == app).map(|((_, id), r)| st.room_info(id, r)).collect();
        out.sort_by(|a, b| a.room.cmp(&b.room));
        Ok(out)
    }

    async fn room(&self, app: u32, room: &str) -> Result<Option<RoomInfo>, Unavailable> {
        let st = self.lock();
        Ok(st.rooms.get(&(app, room.to_string())).map(|r| st.room_info(room, r)))
    }

    async fn members(
        &self,
        app: u32,
        key: Option<SessionKey>,
        room: &str,
        cursor: &str,
        limit: usize,
    ) -> Result<Option<MembersPage>, Unavailable> {
        let st = self.lock();
        let member = |r: &&room::Room| key.is_none_or(|k| r.members.contains_key(&k));
        let Some(r) = st.rooms.get(&(app, room.to_string())).filter(member) else {
            return Ok(None);
        };
        let (keys, next) = r.page(cursor, limit);
        let users: Vec<User> = keys.iter().filter_map(|k| st.sessions.get(k).map(|s| s.user.clone())).collect();
        Ok(Some(MembersPage { users, count: r.members.len() as u32, next }))
    }

    async fn kick(&self, app: u32, room: &str, user: &str, reason: &str, now: Instant) -> Result<bool, Unavailable> {
        let mut st = self.lock();
        let key = st
            .rooms
            .get(&(app, room.to_string()))
            .and_then(|r| r.members.keys().copied().find(|k| st.sessions.get(k).is_some_and(|s| s.user.id == user)));
        Ok(match key {
            Some(key) => {
                let extended = json!({ "reason": reason });
                st.kick(key, room, Leave::Kicked(ErrorCode::KickedByServer, Some(extended)), now);
                true
            }
            None => false,
        })
    }

    async fn close_room(&self, app: u32, room: &str, reason: &str, now: Instant) -> Result<bool, Unavailable> {
        let mut st = self.lock();
        let Some(r) = st.rooms.get(&(app, room.to_string())) else {
            return Ok(false);
        };
        let keys: Vec<SessionKey> = r.members.keys().copied().collect();
        for key in keys {
            let extended = json!({ "reason": reason });
            st.kick(key, room, Leave::Closed(Some(extended)), now);
        }
        Ok(true)
    }
}
