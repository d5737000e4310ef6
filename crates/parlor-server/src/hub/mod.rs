//! The in-memory engine: every session and room of the server, behind one lock.
//!
//! One state, one owner: sessions, rooms, streams and logs live in one [`State`] guarded by one
//! mutex. Work under the lock is short and never waits: an event is encoded once, appended to
//! its channel log and handed (a reference-counted clone) to each recipient's [`Outbox`], whose
//! writer task does the actual IO. Pushing under the lock is also what keeps every session's
//! frames in `seq` order.
//!
//! Time is a parameter: every entry point takes `now` (a `tokio::time::Instant`), so tests on
//! tokio's paused clock drive timeouts without sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use parlor_protocol::token::{self, Claims};
use parlor_protocol::{
    stream_delete_reason, validate, Ack, Channel, ClientFrame, ErrorCode, Event, EventBody, Hello, Kicked, OkFrame,
    Pong, Resume, ResumeDone, Resumed, RoomConfig, RoomExtraItem, RoomState, SendMessage, Seqs, ServerFrame, Snapshot,
    Stream, TokenWillExpire, User, Welcome,
};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::log::ChannelLog;
use crate::named::Named;
use crate::outbox::{close_code, Outbox};
use crate::room::{Member, Room, StreamEntry};

mod requests;
mod resume;

/// A session's key inside the server (its public id is random).
pub type SessionKey = u64;
type RoomKey = (u32, String);

/// A fixed one-second rate window.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    /// Count one more; false when `limit` per second is exceeded.
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        match self.start {
            Some(s) if now.saturating_duration_since(s) < Duration::from_secs(1) => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
            }
        }
        if self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }
}

/// What a session holds for one of its rooms.
#[derive(Debug, Clone)]
struct Membership {
    config: RoomConfig,
    /// Expiry of the token the room relies on, seconds since the epoch.
    exp_s: u64,
    may_publish: bool,
    warned: bool,
    /// Broadcast / barrage rate of this user in this room.
    messages: Window,
}

#[derive(Debug)]
struct Session {
    public_id: String,
    resume_token: String,
    app: u32,
    user: User,
    claims: Claims,
    conn: Option<Outbox>,
    last_frame: Instant,
    offline: bool,
    rooms: Named<Membership>,
    /// Rooms left when the session went offline, to be entered again on resume.
    away: Named<Membership>,
    /// Rooms the session was kicked from, by code, until the client has heard of it.
    kicked: Named<u32>,
    direct: ChannelLog,
    answers: VecDeque<(u64, Remembered)>,
    last_request: u64,
    requests: Window,
    commands: Window,
}

impl Session {
    fn send(&self, frame: &ServerFrame) {
        if let Some(c) = &self.conn {
            c.send(encode(frame));
        }
    }
}

/// An answer kept for a request that may be repeated after a resume.
#[derive(Debug, Clone)]
enum Remembered {
    /// The bytes sent.
    Sent(Utf8Bytes),
    /// A login (or switch) `ok` for this room: a repeat gets the room's state as it is *now*,
    /// which is what the client needs after a resume (the replay does not cover a room the
    /// client did not know it was in), and keeps the memory small (a login `ok` can list
    /// thousands of users).
    LoggedIn(String),
}

/// Why a member leaves a room.
#[derive(Debug, Clone)]
enum Leave {
    /// `logout`, `switch` or `bye`.
    Logout,
    /// The session went offline.
    Offline,
    /// The same user logged in elsewhere (no user change for the others).
    Duplicate,
    /// Kicked with this code (admin 1002055, token expired 1002056).
    Kicked(ErrorCode, Option<serde_json::Value>),
}

#[derive(Debug, Default)]
struct State {
    /// Boxed: the table's spare capacity then costs a pointer per slot, not a whole session.
    sessions: HashMap<SessionKey, Box<Session>>,
    by_public: HashMap<String, SessionKey>,
    rooms: HashMap<RoomKey, Room>,
    /// Stream ids published in each app, with owner and room.
    streams: HashMap<(u32, String), (SessionKey, String)>,
    next_session: SessionKey,
}

/// Counts for `/healthz`, metrics and the admin API.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    /// Sessions, offline ones included.
    pub sessions: usize,
    /// Sessions with a connection.
    pub connected: usize,
    /// Rooms.
    pub rooms: usize,
    /// Streams.
    pub streams: usize,
}

/// A room as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomInfo {
    /// Room id.
    pub room: String,
    /// Its epoch.
    pub room_session: String,
    /// Members.
    pub users: Vec<User>,
    /// Streams.
    pub streams: Vec<Stream>,
    /// Extra info.
    pub extra: Vec<RoomExtraItem>,
}

/// The server's shared state and the protocol logic around it.
#[derive(Debug)]
pub struct Hub {
    /// Settings.
    pub config: ServerConfig,
    /// The clock.
    pub clock: Clock,
    state: Mutex<State>,
    next_conn: AtomicU64,
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(frame.to_json())
}

/// The outcome of a request: its answer, and whether the connection closes after it.
type Answer = Result<OkFrame, (ErrorCode, String)>;

/// The `ok` of a request that produced one event on the room channel.
fn ok_room_event(id: u64, room: String, seq: u64) -> OkFrame {
    OkFrame { id, room: Some(room), seq: Seqs { room: Some(seq), ..Seqs::default() }, ..OkFrame::default() }
}

fn err(code: ErrorCode) -> (ErrorCode, String) {
    (code, code.message().to_string())
}

fn err_with(code: ErrorCode, message: impl Into<String>) -> (ErrorCode, String) {
    (code, message.into())
}

impl Hub {
    /// A hub with `config`.
    pub fn new(config: ServerConfig) -> Hub {
        Hub { config, clock: Clock::new(), state: Mutex::new(State::default()), next_conn: AtomicU64::new(1) }
    }

    /// A new connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts of what the server holds.
    pub fn stats(&self) -> Stats {
        let st = self.state.lock();
        Stats {
            sessions: st.sessions.len(),
            connected: st.sessions.values().filter(|s| s.conn.is_some()).count(),
            rooms: st.rooms.len(),
            streams: st.streams.len(),
        }
    }

    // ------------------------------------------------------------ session start

    /// Start a session from `hello`; `welcome` is queued on `conn`.
    pub fn hello(&self, h: Hello, conn: Outbox, now: Instant) -> Result<SessionKey, (ErrorCode, String)> {
        if h.v != parlor_protocol::PROTOCOL_VERSION {
            return Err(err_with(ErrorCode::InvalidField, format!("unsupported protocol version {}", h.v)));
        }
        let Some(secret) = self.config.apps.get(&h.app_id) else {
            return Err(err_with(ErrorCode::AuthFailed, format!("unknown app {}", h.app_id)));
        };
        validate::user_id(&h.user.id).map_err(err)?;
        validate::user_name(&h.user.name).map_err(err)?;
        let claims = token::verify(secret.as_bytes(), &h.token, h.app_id, &h.user.id, None, self.clock.wall_s(now))
            .map_err(err)?;
        let mut st = self.state.lock();
        st.next_session += 1;
        let key = st.next_session;
        let session = Session {
            public_id: random_id(),
            resume_token: random_id(),
            app: h.app_id,
            user: h.user,
            claims,
            conn: Some(conn),
            last_frame: now,
            offline: false,
            rooms: Named::default(),
            away: Named::default(),
            kicked: Named::default(),
            direct: ChannelLog::default(),
            answers: VecDeque::new(),
            last_request: 0,
            requests: Window::default(),
            commands: Window::default(),
        };
        session.send(&ServerFrame::Welcome(Welcome {
            session: session.public_id.clone(),
            resume_token: session.resume_token.clone(),
            heartbeat_ms: self.config.heartbeat.as_millis() as u64,
            session_timeout_ms: self.config.session_timeout.as_millis() as u64,
            retention_ms: self.config.retention.as_millis() as u64,
            server_time_ms: self.clock.wall_ms(now),
        }));
        tracing::info!(session = %session.public_id, app = session.app, user = %session.user.id, "hello");
        st.by_public.insert(session.public_id.clone(), key);
        st.sessions.insert(key, Box::new(session));
        Ok(key)
    }

    /// The connection `conn_id` of `key` closed without `bye`: the session stays, invisible to
    /// the others, until `session_timeout` has passed since its last frame.
    pub fn detach(&self, key: SessionKey, conn_id: u64) {
        let mut st = self.state.lock();
        if let Some(s) = st.sessions.get(&key) {
            if s.conn.as_ref().map(Outbox::id) == Some(conn_id) {
                tracing::info!(session = %s.public_id, user = %s.user.id, "connection closed");
                st.set_conn(key, None);
            }
        }
    }

    // ------------------------------------------------------------ frames of a session

    /// Handle one frame of an established session.
    pub fn frame(&self, key: SessionKey, frame: ClientFrame, now: Instant) {
        let mut st = self.state.lock();
        let Some(s) = st.sessions.get_mut(&key) else {
            return;
        };
        s.last_frame = now;
        match frame {
            ClientFrame::Ping(p) => {
                if let Some(ack) = p.ack {
                    // A kick the client no longer acks is one it has heard of.
                    s.kicked.retain(|room, _| ack.rooms.contains_key(room));
                }
                s.send(&ServerFrame::Pong(Pong { server_time_ms: self.clock.wall_ms(now) }));
            }
            ClientFrame::Bye(_) => {
                st.end_session(key, now);
            }
            ClientFrame::Hello(_) | ClientFrame::Resume(_) => {
                s.send(&ServerFrame::error_with(None, ErrorCode::InvalidField, "the session has already started"));
            }
            request => {
                let Some(id) = request.request_id() else {
                    return;
                };
                if id <= s.last_request {
                    match s.answers.iter().find(|(i, _)| *i == id).map(|(_, a)| a.clone()) {
                        Some(Remembered::Sent(bytes)) => {
                            if let Some(c) = &s.conn {
                                c.send(bytes);
                            }
                        }
                        Some(Remembered::LoggedIn(room)) => {
                            let (app, in_room) = (s.app, s.rooms.contains_key(&room));
                            let kicked = s.kicked.get(&room).and_then(|c| ErrorCode::from_code(*c));
                            let frame = match st.room_state(&(app, room.clone()), key) {
                                Some((state, seq)) if in_room => {
                                    ServerFrame::Ok(OkFrame::with_state(id, room, state, seq))
                                }
                                _ => ServerFrame::error_with(
                                    Some(id),
                                    kicked.unwrap_or(ErrorCode::NotInRoom),
                                    "no longer in the room this login entered",
                                ),
                            };
                            if let Some(s) = st.sessions.get(&key) {
                                s.send(&frame);
                            }
                        }
                        None => s.send(&ServerFrame::error_with(
                            Some(id),
                            ErrorCode::InvalidField,
                            "request id is not increasing and no answer to it is remembered",
                        )),
                    }
                    return;
                }
                s.last_request = id;
                let answer = if !s.requests.allow(now, self.config.request_rate) {
                    Err(err(ErrorCode::RequestsTooFrequent))
                } else {
                    st.request(key, request, now, self)
                };
                let login_room = match &answer {
                    Ok(ok) if ok.room_session.is_some() => ok.room.clone(),
                    _ => None,
                };
                let frame = match answer {
                    Ok(ok) => ServerFrame::Ok(ok),
                    Err((code, message)) => ServerFrame::error_with(Some(id), code, message),
                };
                let bytes = encode(&frame);
                if let Some(s) = st.sessions.get_mut(&key) {
                    if let Some(c) = &s.conn {
                        c.send(bytes.clone());
                    }
                    let remembered = match login_room {
                        Some(room) => Remembered::LoggedIn(room),
                        None => Remembered::Sent(bytes),
                    };
                    s.answers.push_back((id, remembered));
                    while s.answers.len() > self.config.answer_memory {
                        s.answers.pop_front();
                    }
                }
            }
        }
    }

    /// Count a frame that could not be decoded as life, and answer it with `error`.
    pub fn bad_frame(&self, key: SessionKey, id: Option<u64>, code: ErrorCode, message: String, now: Instant) {
        let mut st = self.state.lock();
        if let Some(s) = st.sessions.get_mut(&key) {
            s.last_frame = now;
            s.send(&ServerFrame::error_with(id, code, message));
        }
    }

    // ------------------------------------------------------------ timers

    /// Everything that happens with time: offline removal, end of retention, token warnings and
    /// expiry, the `online` count, log trimming. Called about every second.
    pub fn tick(&self, now: Instant) {
        let mut st = self.state.lock();
        let cfg = &self.config;
        let now_s = self.clock.wall_s(now);
        let mut offline = Vec::new();
        let mut expired = Vec::new();
        let mut tokens = Vec::new();
        for (key, s) in &st.sessions {
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
                if now_s >= m.exp_s {
                    tokens.push((*key, room.clone(), None));
                } else if !m.warned && m.exp_s.saturating_sub(now_s) <= cfg.token_warning.as_secs() {
                    tokens.push((*key, room.clone(), Some(m.exp_s - now_s)));
                }
            }
        }
        for key in offline {
            st.go_offline(key, now);
        }
        for key in expired {
            if let Some(s) = st.sessions.remove(&key) {
                st.by_public.remove(&s.public_id);
                tracing::info!(session = %s.public_id, user = %s.user.id, "retention ended");
            }
        }
        for (key, room, warn) in tokens {
            match warn {
                Some(remaining_s) => {
                    if let Some(s) = st.sessions.get_mut(&key) {
                        if let Some(m) = s.rooms.get_mut(&room) {
                            m.warned = true;
                        }
                        s.send(&ServerFrame::TokenWillExpire(TokenWillExpire { room, remaining_s }));
                    }
                }
                None => st.kick(key, &room, Leave::Kicked(ErrorCode::KickedTokenExpired, None), now),
            }
        }
        let rooms = &mut st.rooms;
        for ((_, room_id), room) in rooms.iter_mut() {
            room.room_log.trim(now, cfg.log_len, cfg.log_age);
            room.users_log.trim(now, cfg.log_len, cfg.log_age);
            if now >= room.next_online {
                room.next_online = now + cfg.online_interval;
                let count = room.members.len() as u32;
                if count != room.online_sent {
                    room.online_sent = count;
                    let bytes = encode(&ServerFrame::Event(Event {
                        room: room_id.clone(),
                        ch: None,
                        seq: None,
                        body: EventBody::Online { count },
                    }));
                    for c in room.members.values().filter_map(|m| m.conn.as_ref()) {
                        c.send(bytes.clone());
                    }
                }
            }
        }
        metrics::gauge!("parlor_sessions").set(st.sessions.len() as f64);
        metrics::gauge!("parlor_rooms").set(st.rooms.len() as f64);
    }

    /// Close every connection with 4010 (the server is shutting down; clients reconnect).
    pub fn shutdown(&self) {
        let st = self.state.lock();
        for s in st.sessions.values() {
            if let Some(c) = &s.conn {
                c.close(close_code::SHUTDOWN, "server shutting down");
            }
        }
    }

    // ------------------------------------------------------------ admin

    /// Drop every connection of `app` at once, ahead of what is queued, with 4010: the sessions
    /// stay, and their clients resume (the server-side way to cut everyone, used by
    /// `parlor bench w4` and by operators draining a node). Returns how many were dropped.
    pub fn admin_drop_connections(&self, app: u32) -> usize {
        let st = self.state.lock();
        let mut dropped = 0;
        for s in st.sessions.values().filter(|s| s.app == app) {
            if let Some(c) = &s.conn {
                c.abort(close_code::SHUTDOWN, "connections dropped by the server");
                dropped += 1;
            }
        }
        dropped
    }

    /// Kick `user` out of `room` with 1002055 and `reason`. False when no such member.
    pub fn admin_kick(&self, app: u32, room: &str, user: &str, reason: &str, now: Instant) -> bool {
        let mut st = self.state.lock();
        let key = st
            .rooms
            .get(&(app, room.to_string()))
            .and_then(|r| r.members.keys().copied().find(|k| st.sessions.get(k).is_some_and(|s| s.user.id == user)));
        match key {
            Some(key) => {
                let extended = json!({ "reason": reason });
                st.kick(key, room, Leave::Kicked(ErrorCode::KickedByServer, Some(extended)), now);
                true
            }
            None => false,
        }
    }

    /// Close `room`: everyone is kicked with 1002055 and `reason`. False when no such room.
    pub fn admin_close_room(&self, app: u32, room: &str, reason: &str, now: Instant) -> bool {
        let mut st = self.state.lock();
        let Some(r) = st.rooms.get(&(app, room.to_string())) else {
            return false;
        };
        let keys: Vec<SessionKey> = r.members.keys().copied().collect();
        for key in keys {
            let extended = json!({ "reason": reason });
            st.kick(key, room, Leave::Kicked(ErrorCode::KickedByServer, Some(extended)), now);
        }
        true
    }

    /// The rooms of `app`.
    pub fn admin_rooms(&self, app: u32) -> Vec<RoomInfo> {
        let st = self.state.lock();
        let mut out: Vec<RoomInfo> =
            st.rooms.iter().filter(|((a, _), _)| *a == app).map(|((_, id), r)| st.room_info(id, r)).collect();
        out.sort_by(|a, b| a.room.cmp(&b.room));
        out
    }

    /// One room of `app`.
    pub fn admin_room(&self, app: u32, room: &str) -> Option<RoomInfo> {
        let st = self.state.lock();
        st.rooms.get(&(app, room.to_string())).map(|r| st.room_info(room, r))
    }
}

impl State {
    fn room_info(&self, id: &str, r: &Room) -> RoomInfo {
        RoomInfo {
            room: id.to_string(),
            room_session: r.epoch.clone(),
            users: r.members.keys().filter_map(|k| self.sessions.get(k).map(|s| s.user.clone())).collect(),
            streams: r.stream_list(),
            extra: r.extra_list(),
        }
    }

    /// Attach `conn` to session `key` (None: detach), in the session and in the member record
    /// of each of its rooms. Returns the connection it replaces.
    fn set_conn(&mut self, key: SessionKey, conn: Option<Outbox>) -> Option<Outbox> {
        let State { sessions, rooms, .. } = self;
        let s = sessions.get_mut(&key)?;
        for room in s.rooms.keys() {
            if let Some(m) = rooms.get_mut(&(s.app, room.clone())).and_then(|r| r.members.get_mut(&key)) {
                m.conn = conn.clone();
            }
        }
        std::mem::replace(&mut s.conn, conn)
    }

    /// Append an event to a room channel and send it to every member but `author` (and, on the
    /// `users` channel, only to members that asked for it). Returns its seq.
    fn emit(&mut self, rk: &RoomKey, ch: Channel, body: EventBody, author: Option<SessionKey>, now: Instant) -> u64 {
        let Some(room) = self.rooms.get_mut(rk) else {
            return 0;
        };
        let is_message = matches!(body, EventBody::Broadcast { .. } | EventBody::Barrage { .. });
        let log = if ch == Channel::Users { &mut room.users_log } else { &mut room.room_log };
        let seq = log.next_seq();
        let bytes = encode(&ServerFrame::Event(Event { room: rk.1.clone(), ch: Some(ch), seq: Some(seq), body }));
        log.push(bytes.clone(), now, is_message);
        let mut delivered = 0u64;
        for (key, member) in &room.members {
            if Some(*key) == author || (ch == Channel::Users && !member.notify) {
                continue;
            }
            if let Some(c) = &member.conn {
                c.send(bytes.clone());
                delivered += 1;
            }
        }
        metrics::counter!("parlor_events_total").increment(1);
        metrics::counter!("parlor_deliveries_total").increment(delivered);
        seq
    }

    /// The room state a login `ok` or a `snapshot` carries for `key`.
    fn room_state(&self, rk: &RoomKey, key: SessionKey) -> Option<(RoomState, Seqs)> {
        let room = self.rooms.get(rk)?;
        let notify = room.members.get(&key).is_some_and(|m| m.notify);
        let users = notify.then(|| {
            room.members
                .keys()
                .filter(|k| **k != key)
                .filter_map(|k| self.sessions.get(k).map(|s| s.user.clone()))
                .collect()
        });
        let state = RoomState {
            users,
            streams: room.stream_list(),
            extra: room.extra_list(),
            online: room.members.len() as u32,
            room_session: room.epoch.clone(),
        };
        let seq = Seqs { room: Some(room.room_log.last()), users: notify.then(|| room.users_log.last()), direct: None };
        Some((state, seq))
    }

    /// Put `key` in `room`: create the room if needed, kick an older session of the same user,
    /// tell the others. Returns the login `ok` fields.
    fn enter(
        &mut self,
        key: SessionKey,
        room_id: &str,
        config: RoomConfig,
        membership: Membership,
        now: Instant,
        cfg: &ServerConfig,
    ) -> Result<(RoomState, Seqs), (ErrorCode, String)> {
        let (app, user) = match self.sessions.get(&key) {
            Some(s) => (s.app, s.user.clone()),
            None => return Err(err(ErrorCode::ResumeFailed)),
        };
        let rk: RoomKey = (app, room_id.to_string());
        let older = self.rooms.get(&rk).and_then(|r| {
            r.members.keys().copied().find(|k| *k != key && self.sessions.get(k).is_some_and(|s| s.user.id == user.id))
        });
        if let Some(room) = self.rooms.get(&rk) {
            let others = room.members.len() - usize::from(older.is_some());
            if room.max_members > 0 && others >= room.max_members as usize {
                return Err(err(ErrorCode::RoomFull));
            }
        }
        if let Some(older) = older {
            self.kick(older, room_id, Leave::Duplicate, now);
        }
        let room = self
            .rooms
            .entry(rk.clone())
            .or_insert_with(|| Room::new(random_id(), config.max_members, now, cfg.online_interval));
        let conn = self.sessions.get(&key).and_then(|s| s.conn.clone());
        room.members.insert(key, Member { notify: config.user_status_notify, conn });
        if older.is_none() {
            self.emit(&rk, Channel::Users, EventBody::UserAdd { users: vec![user] }, Some(key), now);
        }
        if let Some(s) = self.sessions.get_mut(&key) {
            s.kicked.remove(room_id);
            s.rooms.insert(room_id.to_string(), membership);
        }
        self.room_state(&rk, key).ok_or_else(|| err(ErrorCode::InvalidField))
    }

    /// Take `key` out of `room_id`, deleting its streams and telling the others as `why` says.
    /// Returns the seqs of the events produced.
    fn leave(&mut self, key: SessionKey, room_id: &str, why: &Leave, now: Instant) -> Seqs {
        let Some(s) = self.sessions.get_mut(&key) else {
            return Seqs::default();
        };
        let membership = s.rooms.remove(room_id);
        let (app, user) = (s.app, s.user.clone());
        if let Leave::Offline = why {
            if let Some(m) = membership {
                s.away.insert(room_id.to_string(), m);
            }
        }
        let rk: RoomKey = (app, room_id.to_string());
        let Some(room) = self.rooms.get_mut(&rk) else {
            return Seqs::default();
        };
        if room.members.remove(&key).is_none() {
            return Seqs::default();
        }
        let streams = room.streams_of(key);
        room.streams.retain(|_, e| e.owner != key);
        for st in &streams {
            self.streams.remove(&(app, st.id.clone()));
        }
        let reason = match why {
            Leave::Logout => stream_delete_reason::LOGGED_OUT,
            Leave::Offline => stream_delete_reason::HEARTBEAT_TIMEOUT,
            Leave::Duplicate => stream_delete_reason::DUPLICATE_LOGIN,
            Leave::Kicked(..) => stream_delete_reason::KICKED,
        };
        let mut seq = Seqs::default();
        if !streams.is_empty() {
            seq.room = Some(self.emit(&rk, Channel::Room, EventBody::StreamDelete { streams, reason }, Some(key), now));
        }
        if !matches!(why, Leave::Duplicate) {
            seq.users =
                Some(self.emit(&rk, Channel::Users, EventBody::UserDelete { users: vec![user] }, Some(key), now));
        }
        if self.rooms.get(&rk).is_some_and(|r| r.members.is_empty()) {
            self.rooms.remove(&rk);
        }
        seq
    }

    /// Kick `key` out of `room_id`: the `kicked` frame, and close 4009 when no room is left.
    fn kick(&mut self, key: SessionKey, room_id: &str, why: Leave, now: Instant) {
        self.leave(key, room_id, &why, now);
        let (code, extended_data) = match why {
            Leave::Duplicate => (ErrorCode::KickedDuplicateLogin, None),
            Leave::Kicked(code, extended) => (code, extended),
            Leave::Logout | Leave::Offline => return,
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.kicked.insert(room_id.to_string(), code.code());
        tracing::info!(session = %s.public_id, user = %s.user.id, room = room_id, code = code.code(), "kicked");
        s.send(&ServerFrame::Kicked(Kicked { room: room_id.to_string(), code: code.code(), extended_data }));
        if s.rooms.is_empty() {
            if let Some(c) = &s.conn {
                c.close(close_code::KICKED, "kicked out of every room");
            }
        }
    }

    /// The session has been silent for `session_timeout`: out of every room, kept for retention.
    fn go_offline(&mut self, key: SessionKey, now: Instant) {
        if let Some(c) = self.set_conn(key, None) {
            c.abort(close_code::GOING_AWAY, "session timed out");
        }
        let rooms: Vec<String> = match self.sessions.get_mut(&key) {
            Some(s) => {
                s.offline = true;
                tracing::info!(session = %s.public_id, user = %s.user.id, "offline");
                s.rooms.keys().cloned().collect()
            }
            None => return,
        };
        for room in rooms {
            self.leave(key, &room, &Leave::Offline, now);
        }
    }

    /// `bye`: out of every room, not resumable.
    fn end_session(&mut self, key: SessionKey, now: Instant) {
        let rooms: Vec<String> = self.sessions.get(&key).map(|s| s.rooms.keys().cloned().collect()).unwrap_or_default();
        for room in rooms {
            self.leave(key, &room, &Leave::Logout, now);
        }
        if let Some(s) = self.sessions.remove(&key) {
            self.by_public.remove(&s.public_id);
            if let Some(c) = &s.conn {
                c.close(close_code::NORMAL, "bye");
            }
            tracing::info!(session = %s.public_id, user = %s.user.id, "bye");
        }
    }
}
