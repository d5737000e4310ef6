//! [`Core`]: the coordinator. It owns the parts (the connection, the timer table, the rooms, the
//! request queue) and routes each input to the module that handles it; the decisions are in the
//! crate docs, the state machines in their own files:
//!
//! - `connection.rs`: connecting, handshake, liveness, backoff, the session's end;
//! - `timer.rs`: every deadline;
//! - `room.rs`: one room's phase and its transitions;
//! - `requests.rs`: the request queue and where each request stands on the wire;
//! - `command.rs`: the app's calls;
//! - `answers.rs`: `ok` and `error` of requests;
//! - `retry.rs`: requests answered 1000004, sent again until their deadline;
//! - `resume.rs`: acks, `resumed`, snapshots, fresh logins, re-publishing;
//! - `channel.rs`: channel events, kicks and the other room notices.

use std::collections::{BTreeMap, VecDeque};

use parlor_protocol::{decode_server_frame, ClientFrame, DecodeError, ErrorCode, ServerFrame, User};
use serde_json::{json, Value};

use crate::connection::{ConnState, Connection};
use crate::event::{AppEvent, RoomStateReason};
use crate::requests::{Kind, Pending, Requests};
use crate::room::{Phase, Room};
use crate::timer::{Timer, TimerTable};
use crate::view::RoomView;

/// Settings of the core; every timeout has the protocol's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The app id sent in `hello`.
    pub app_id: u32,
    /// Heartbeat interval until a `welcome` or `resumed` says otherwise (10 s).
    pub heartbeat_ms: u64,
    /// How long a login may take, connection included (30 s).
    pub login_timeout_ms: u64,
    /// How long after a loss the client keeps trying to get its rooms back (5 min).
    pub reconnect_window_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { app_id: 1, heartbeat_ms: 10_000, login_timeout_ms: 30_000, reconnect_window_ms: 300_000 }
    }
}

/// The injected random source: each call returns a number in `[0, 1)`.
pub type Random = Box<dyn FnMut() -> f64 + Send>;

/// What the driver must do, or tell the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a new connection (dropping any current one without reporting it), then call
    /// [`Core::handle_opened`] or [`Core::handle_closed`].
    Connect,
    /// Close the current connection (or abandon the attempt). Do not report its closing.
    Disconnect,
    /// Send this frame on the current connection.
    Send(ClientFrame),
    /// Tell the app.
    Event(AppEvent),
}

/// The `extended_data` of a state change that has none: `{}`.
pub(crate) fn no_data() -> Value {
    json!({})
}

/// The client room state machine (sans-IO). See the crate docs.
pub struct Core {
    /// The settings it was made with.
    pub(crate) config: Config,
    /// Where the reconnect jitter comes from.
    pub(crate) random: Random,
    /// Outputs not yet taken by [`Core::poll_output`].
    pub(crate) out: VecDeque<Output>,
    /// The connection and its session.
    pub(crate) conn: Connection,
    /// Every deadline.
    pub(crate) timers: TimerTable,
    /// The session's user, named by the first login.
    pub(crate) user: Option<User>,
    /// The session's token (sent in `hello`), replaced by `renew_token`.
    pub(crate) token: String,
    /// The last applied seq of the session's direct channel.
    pub(crate) direct_seq: u64,
    /// The rooms the client is in, logging in to, or away from, by id.
    pub(crate) rooms: BTreeMap<String, Room>,
    /// The last state reported to the app for each room ever seen.
    pub(crate) states: BTreeMap<String, RoomStateReason>,
    /// Requests waiting for their answer.
    pub(crate) requests: Requests,
    /// The room the app last published each stream in, as it asked (kept until it stops it).
    pub(crate) stream_rooms: BTreeMap<String, String>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("conn", &self.conn)
            .field("timers", &self.timers)
            .field("rooms", &self.rooms)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core with `config`, drawing reconnect jitter from `random` (numbers in `[0, 1)`).
    pub fn new(config: Config, random: Random) -> Core {
        let heartbeat_ms = config.heartbeat_ms.max(1);
        Core {
            config,
            random,
            out: VecDeque::new(),
            conn: Connection::new(heartbeat_ms),
            timers: TimerTable::default(),
            user: None,
            token: String::new(),
            direct_seq: 0,
            rooms: BTreeMap::new(),
            states: BTreeMap::new(),
            requests: Requests::default(),
            stream_rooms: BTreeMap::new(),
        }
    }

    /// The last reported state of `room` (`LOGOUT` for a room never seen).
    pub fn room_state(&self, room: &str) -> RoomStateReason {
        self.states.get(room).copied().unwrap_or(RoomStateReason::Logout)
    }

    /// The rooms the client is in or logging in to.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// The client's view of a room it is in: others, streams (its own too), extra info.
    pub fn room_view(&self, room: &str) -> Option<&RoomView> {
        self.rooms.get(room).map(|r| &r.view)
    }

    /// The room in which the app publishes `stream`: where the server confirmed it, else where the
    /// app last asked to publish it (until it stops it).
    pub fn room_of_own_stream(&self, stream: &str) -> Option<&str> {
        match self.rooms.iter().find(|(_, r)| r.own.contains_key(stream)) {
            Some((id, _)) => Some(id),
            None => self.stream_rooms.get(stream).map(String::as_str),
        }
    }

    /// The current heartbeat interval (ms).
    pub fn heartbeat_ms(&self) -> u64 {
        self.conn.heartbeat_ms
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next (absolute ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next()
    }

    /// Time has come: call at (or after) [`Core::poll_timeout`].
    pub fn handle_timeout(&mut self, now: u64) {
        if self.timers.expired(&Timer::Retry, now) {
            self.retry_due(now);
        }
        if self.timers.expired(&Timer::ReconnectWindow, now) {
            self.timers.stop(&Timer::ReconnectWindow);
            self.reconnect_failed(now);
        }
        for room in self.timers.expired_logins(now) {
            let code = ErrorCode::LoginTimeout.code();
            self.remove_room(&room, RoomStateReason::LoginFailed, code, no_data(), code);
        }
        if self.timers.expired(&Timer::Liveness, now) {
            self.lost(now, true);
        } else if self.timers.expired(&Timer::Attempt, now) {
            self.attempt_due(now);
        }
        if self.conn.state.has_session() && self.timers.expired(&Timer::Ping, now) {
            self.ping_due(now);
        }
        self.maybe_end();
    }

    /// A text frame arrived. Frames that cannot be decoded (or of unknown type) are ignored and
    /// returned as the error, for the driver to log.
    pub fn handle_text(&mut self, now: u64, text: &str) -> Result<(), DecodeError> {
        let f = decode_server_frame(text)?;
        self.handle_frame(now, f);
        Ok(())
    }

    /// A decoded frame arrived.
    pub fn handle_frame(&mut self, now: u64, frame: ServerFrame) {
        if matches!(self.conn.state, ConnState::Idle | ConnState::Waiting | ConnState::Connecting) {
            tracing::debug!("frame without a connection ignored");
            return;
        }
        self.heard(now);
        match frame {
            ServerFrame::Welcome(w) => self.on_welcome(now, w),
            ServerFrame::Resumed(r) => self.on_resumed(now, r),
            ServerFrame::ResumeDone(_) => self.on_resume_done(),
            ServerFrame::Pong(_) => {}
            ServerFrame::Ok(ok) => self.on_ok(ok),
            ServerFrame::Error(e) => self.on_error(now, e),
            ServerFrame::Kicked(k) => self.on_kicked(k),
            ServerFrame::Event(e) => self.on_event(e),
            ServerFrame::Snapshot(s) => self.on_snapshot(s),
            ServerFrame::TokenWillExpire(t) => self.on_token_will_expire(t),
        }
        self.maybe_end();
    }

    // ------------------------------------------------------------------ outputs

    pub(crate) fn send(&mut self, f: ClientFrame) {
        self.out.push_back(Output::Send(f));
    }

    pub(crate) fn emit(&mut self, e: AppEvent) {
        self.out.push_back(Output::Event(e));
    }

    /// Tell the app `room` is now `reason`, with the wire `code` (0: none), and remember it for
    /// [`Core::room_state`].
    pub(crate) fn report(&mut self, room: &str, reason: RoomStateReason, code: u32, data: Value) {
        self.states.insert(room.to_string(), reason);
        let error_code = ErrorCode::from_wire(code);
        self.emit(AppEvent::RoomStateChanged { room: room.to_string(), reason, error_code, extended_data: data });
    }

    /// Report the outcome of the app call `handle`, the wire `code` (0: success); nothing for the
    /// core's own requests.
    pub(crate) fn result(&mut self, handle: Option<u64>, code: u32, message_id: Option<String>) {
        if let Some(handle) = handle {
            self.emit(AppEvent::Result { handle, error_code: ErrorCode::from_wire(code), message_id, members: None });
        }
    }

    /// The session user's id ("" before the first login).
    pub(crate) fn me(&self) -> String {
        self.user.as_ref().map(|u| u.id.clone()).unwrap_or_default()
    }

    // ------------------------------------------------------------------ rooms and requests

    /// The ids of the rooms whose phase `pick` chooses, in id order.
    pub(crate) fn rooms_where(&self, pick: impl Fn(Phase) -> bool) -> Vec<String> {
        self.rooms.iter().filter(|(_, r)| pick(r.phase())).map(|(id, _)| id.clone()).collect()
    }

    /// Whether any room is away (RECONNECTING): the reconnect window runs while one is.
    pub(crate) fn any_away(&self) -> bool {
        self.rooms.values().any(|r| r.phase().is_away())
    }

    /// No room is away any more: the reconnect window is over.
    pub(crate) fn stop_window_if_back(&mut self) {
        if !self.any_away() {
            self.timers.stop(&Timer::ReconnectWindow);
        }
    }

    /// Add a room the app asks to enter, with its login deadline.
    pub(crate) fn add_logining_room(&mut self, now: u64, room: &str, r: Room) {
        self.rooms.insert(room.to_string(), r);
        self.timers.set(Timer::Login(room.to_string()), now + self.config.login_timeout_ms);
    }

    /// Take a room out of the core (its login deadline too).
    pub(crate) fn forget_room(&mut self, room: &str) -> Option<Room> {
        self.timers.stop(&Timer::Login(room.to_string()));
        self.rooms.remove(room)
    }

    /// Queue a request; it goes out now if it may, else when the connection and room allow.
    pub(crate) fn request(&mut self, frame: ClientFrame, kind: Kind, handle: Option<u64>, needs_room: Option<String>) {
        self.requests.push(frame, kind, handle, needs_room);
        self.flush();
    }

    /// Send what may go (see [`Requests::flush`]), when the session is ready.
    pub(crate) fn flush(&mut self) {
        if self.conn.state != ConnState::Ready {
            return;
        }
        let rooms = &self.rooms;
        let may_send = |p: &Pending| match &p.needs_room {
            None => true,
            Some(r) => rooms.get(r).is_some_and(|r| r.phase().is_in()),
        };
        for f in self.requests.flush(may_send) {
            self.send(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use parlor_protocol::RoomConfig;

    #[test]
    fn the_room_of_an_own_stream_is_known_from_the_publish_call_until_the_stop() {
        let mut c = Core::new(Config::default(), Box::new(|| 0.5));
        let user = User { id: "u1".into(), name: String::new() };
        let config = RoomConfig::default();
        c.handle_command(0, 1, Command::LoginRoom { room: "r1".into(), user, token: "t".into(), config });
        assert_eq!(c.room_of_own_stream("s1"), None);
        c.handle_command(0, 2, Command::Publish { room: "r1".into(), stream: "s1".into(), extra: String::new() });
        assert_eq!(c.room_of_own_stream("s1"), Some("r1"), "held, not yet answered");
        c.handle_command(0, 3, Command::Unpublish { room: "r1".into(), stream: "s1".into() });
        assert_eq!(c.room_of_own_stream("s1"), None);
    }
}
