//! The connection and the session on it: connecting, the handshake, liveness, backoff between
//! attempts, and the end of the session.
//!
//! ```text
//!  Idle ──login──► Connecting ──opened──► Handshake ──welcome──► Ready
//!   ▲                  │                     │  └──resumed──► Resuming ──resume_done──► Ready
//!   │                  └─────── closed, or silent for 2 heartbeats ───────┐
//!   │                                                                     ▼
//!   └──── no room left ◄──── Waiting (backoff: random × min(10 s, 0.5 s × 2^n)) ──► Connecting
//! ```

use parlor_protocol::{
    bounds, Bye, ClientFrame, ErrorCode, ErrorFrame, Hello, Ping, Resume, Welcome, PROTOCOL_VERSION,
};
use serde_json::json;

use crate::backoff;
use crate::core::{no_data, Core, Output};
use crate::event::RoomStateReason;
use crate::requests::Kind;
use crate::timer::Timer;

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// No connection, none wanted.
    Idle,
    /// No connection; the next attempt starts at [`Timer::Attempt`].
    Waiting,
    /// [`Output::Connect`] emitted; waiting for `opened`.
    Connecting,
    /// Open; `hello` or `resume` sent, waiting for `welcome` / `resumed` (or `error`). Nothing
    /// else is sent meanwhile: the server may take any frame after a `resume` as proof that the
    /// client holds the new token (§9.3), which it cannot before the answer.
    Handshake,
    /// `resumed` received; the replay runs until `resume_done`.
    Resuming,
    /// Ready for requests.
    Ready,
}

impl ConnState {
    /// A connection is open or on its way (its liveness is watched).
    pub(crate) fn is_live(self) -> bool {
        matches!(self, ConnState::Connecting | ConnState::Handshake | ConnState::Resuming | ConnState::Ready)
    }

    /// The session is established on this connection (pings go out).
    pub(crate) fn has_session(self) -> bool {
        matches!(self, ConnState::Resuming | ConnState::Ready)
    }
}

/// What the server knows us by.
#[derive(Debug)]
pub(crate) struct Session {
    /// The session id of `welcome` / `resumed`.
    pub(crate) id: String,
    /// The token to present in the next `resume`: replaced by each `welcome` / `resumed`, and
    /// only then, so a resume whose answer was lost is retried with the same token (§9.3).
    pub(crate) resume_token: String,
}

/// The connection's state machine and the session it carries.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Where the connection stands.
    pub(crate) state: ConnState,
    /// Attempts since the last loss (or failure), for the backoff; reset by `welcome` / `resumed`.
    pub(crate) attempt: u32,
    /// The session to resume, once `welcome` gave one.
    pub(crate) session: Option<Session>,
    /// The heartbeat interval in force (ms): the config's until the server names one.
    pub(crate) heartbeat_ms: u64,
    /// When a frame was last heard (or the attempt began): liveness runs from here.
    pub(crate) last_heard: u64,
}

impl Connection {
    /// No connection yet, pinging every `heartbeat_ms` once there is one.
    pub(crate) fn new(heartbeat_ms: u64) -> Connection {
        Connection { state: ConnState::Idle, attempt: 0, session: None, heartbeat_ms, last_heard: 0 }
    }

    /// When the connection is judged dead: two heartbeat intervals after the last frame heard.
    pub(crate) fn liveness_deadline(&self) -> u64 {
        self.last_heard.saturating_add(self.heartbeat_ms.saturating_mul(2))
    }
}

impl Core {
    /// Something was heard (or an attempt began) at `now`: liveness starts over.
    pub(crate) fn heard(&mut self, now: u64) {
        self.conn.last_heard = now;
        self.timers.set(Timer::Liveness, self.conn.liveness_deadline());
    }

    /// Make sure a connection is open or on its way.
    pub(crate) fn want_connection(&mut self, now: u64) {
        if self.conn.state == ConnState::Idle {
            self.connect(now);
        }
    }

    /// Start a connection attempt.
    pub(crate) fn connect(&mut self, now: u64) {
        self.conn.state = ConnState::Connecting;
        self.timers.stop(&Timer::Attempt);
        self.heard(now);
        self.out.push_back(Output::Connect);
    }

    /// The connection asked for by [`Output::Connect`] is open.
    pub fn handle_opened(&mut self, now: u64) {
        if self.conn.state != ConnState::Connecting {
            return;
        }
        self.conn.state = ConnState::Handshake;
        self.heard(now);
        if let Some(s) = &self.conn.session {
            let f = ClientFrame::Resume(Resume {
                v: PROTOCOL_VERSION,
                session: s.id.clone(),
                resume_token: s.resume_token.clone(),
                ack: self.ack(),
            });
            self.send(f);
        } else {
            self.send_hello();
        }
    }

    pub(crate) fn send_hello(&mut self) {
        let f = ClientFrame::Hello(Hello {
            v: PROTOCOL_VERSION,
            app_id: self.config.app_id,
            user: self.user.clone().unwrap_or_default(),
            token: self.token.clone(),
        });
        self.send(f);
    }

    /// The connection closed, or a connect attempt failed.
    pub fn handle_closed(&mut self, now: u64) {
        if !self.conn.state.is_live() {
            return;
        }
        self.lost(now, false);
        // A close after the last room went (a kick is followed by close 4009) ends the session
        // with no connection to come: what still waits (a renew_token in flight) is answered
        // now, or never (sim seeds 1006124, 1015244).
        self.maybe_end();
    }

    /// A connect attempt refused with HTTP 503 and `Retry-After` (protocol §9.7): as
    /// [`Core::handle_closed`], but the next attempt waits until the server's slot for this
    /// client ([`backoff::retry_after_delay_ms`]), if that is later than the backoff's.
    pub fn handle_refused(&mut self, now: u64, retry_after_ms: u64) {
        if !self.conn.state.is_live() {
            return;
        }
        self.handle_closed(now);
        if self.conn.state == ConnState::Waiting {
            let at = now + backoff::retry_after_delay_ms(retry_after_ms, (self.random)());
            if self.timers.get(&Timer::Attempt).is_none_or(|t| t < at) {
                self.timers.set(Timer::Attempt, at);
            }
        }
    }

    /// The network is back (the browser's `online` event, or the OS saying so): a connection
    /// attempt waiting for its backoff starts at once.
    pub fn handle_network_online(&mut self, now: u64) {
        if self.conn.state == ConnState::Waiting {
            self.attempt_due(now);
        }
    }

    /// The backoff wait is over: try again, unless no room is left to connect for.
    pub(crate) fn attempt_due(&mut self, now: u64) {
        self.timers.stop(&Timer::Attempt);
        if self.rooms.is_empty() {
            self.conn.state = ConnState::Idle;
        } else {
            self.connect(now);
        }
    }

    /// The connection is gone (closed, failed, or judged dead, then `disconnect` it).
    pub(crate) fn lost(&mut self, now: u64, disconnect: bool) {
        if disconnect {
            self.out.push_back(Output::Disconnect);
        }
        self.conn.state = ConnState::Idle;
        self.timers.stop_connection();
        self.requests.cut();
        if self.rooms.is_empty() {
            self.end_session(false);
            return;
        }
        let mut lost = Vec::new();
        for (id, r) in self.rooms.iter_mut() {
            if r.connection_lost() {
                lost.push(id.clone());
            }
        }
        for id in &lost {
            self.report(id, RoomStateReason::Reconnecting, ErrorCode::Reconnecting.code(), no_data());
        }
        if self.any_away() && !self.timers.is_set(&Timer::ReconnectWindow) {
            self.timers.set(Timer::ReconnectWindow, now + self.config.reconnect_window_ms);
        }
        self.schedule_attempt(now);
    }

    fn schedule_attempt(&mut self, now: u64) {
        let wait = backoff::delay_ms(self.conn.attempt, (self.random)());
        self.conn.attempt = self.conn.attempt.saturating_add(1);
        self.conn.state = ConnState::Waiting;
        self.timers.set(Timer::Attempt, now + wait);
    }

    /// Forget the session (and close the connection, saying `bye` when `bye`).
    pub(crate) fn end_session(&mut self, bye: bool) {
        match self.conn.state {
            ConnState::Ready | ConnState::Resuming => {
                if bye {
                    self.send(ClientFrame::Bye(Bye {}));
                }
                self.out.push_back(Output::Disconnect);
            }
            ConnState::Connecting | ConnState::Handshake => self.out.push_back(Output::Disconnect),
            ConnState::Idle | ConnState::Waiting => {}
        }
        self.conn.state = ConnState::Idle;
        self.conn.session = None;
        self.conn.attempt = 0;
        self.timers.stop(&Timer::ReconnectWindow);
        self.timers.stop_connection();
        self.direct_seq = 0;
        self.requests.retain(|p| p.handle.is_some());
    }

    /// With no room left and nothing the app waits for, end the session. With no room left and
    /// no session up, nothing will connect again (no room is alive), so what still waits is
    /// answered now: a `renew_token` keeps its token for the next session's `hello` (as when
    /// there is no session at all), anything else fails with 1002053.
    pub(crate) fn maybe_end(&mut self) {
        if self.rooms.is_empty() && !matches!(self.conn.state, ConnState::Ready | ConnState::Resuming) {
            for (_, p) in self.requests.take_where(|p| p.handle.is_some()) {
                match p.kind {
                    Kind::RenewToken { token } => {
                        self.token = token;
                        self.result(p.handle, 0, None);
                    }
                    _ => self.result(p.handle, ErrorCode::ReconnectFailed.code(), None),
                }
            }
        }
        if self.rooms.is_empty()
            && !self.requests.app_waits()
            && (self.conn.state != ConnState::Idle || self.conn.session.is_some())
        {
            self.end_session(true);
        }
    }

    /// Tear down (the app destroys the engine): end the session, saying `bye` when it is up on
    /// the connection (not while a `hello` or `resume` waits for its answer, §9.3), and forget
    /// every room and request without reporting anything.
    pub fn shutdown(&mut self, _now: u64) {
        for room in self.rooms.keys() {
            self.timers.stop(&Timer::Login(room.clone()));
        }
        self.timers.stop(&Timer::Retry);
        self.rooms.clear();
        self.requests.clear();
        self.end_session(true);
    }

    /// The session is up (`welcome` or `resumed`): pings start, at the server's interval when it
    /// names one (clamped into [`bounds`]), and the backoff starts over.
    pub(crate) fn start_heartbeat(&mut self, now: u64, hb: Option<u64>) {
        if let Some(hb) = hb {
            self.conn.heartbeat_ms = bounds::heartbeat_ms(hb);
            self.timers.set(Timer::Liveness, self.conn.liveness_deadline());
        }
        self.timers.set(Timer::Ping, now + self.conn.heartbeat_ms);
        self.conn.attempt = 0;
    }

    /// A ping is due: send it with the acks, and arm the next one.
    pub(crate) fn ping_due(&mut self, now: u64) {
        let f = ClientFrame::Ping(Ping { ack: Some(self.ack()) });
        self.send(f);
        let hb = self.conn.heartbeat_ms;
        let next = self.timers.get(&Timer::Ping).unwrap_or(now) + hb;
        self.timers.set(Timer::Ping, if next <= now { now + hb } else { next });
    }

    pub(crate) fn on_welcome(&mut self, now: u64, w: Welcome) {
        if self.conn.state != ConnState::Handshake || self.conn.session.is_some() {
            return;
        }
        self.conn.session = Some(Session { id: w.session, resume_token: w.resume_token });
        self.direct_seq = 0;
        self.conn.state = ConnState::Ready;
        self.start_heartbeat(now, Some(w.heartbeat_ms));
        let away = self.rooms_where(|p| p.is_away());
        if !away.is_empty() {
            // A new session after a refused resume: old request ids mean nothing to it, so every
            // waiting request goes out as new (with a new id); then every room that was in logs
            // in again.
            self.requests.forget_ids();
            // The previous session's relogins go first: one left waiting would be sent by the
            // first relogin's flush and then replaced by its room's own, a second login whose
            // 1002001 fails the room (sim seed 3188).
            self.requests.retain(|p| !matches!(&p.kind, Kind::Relogin { room } if away.contains(room)));
            for room in away {
                self.relogin(room);
            }
        }
        self.flush();
    }

    /// An `error` without `id`: the server refused `hello` or `resume`.
    pub(crate) fn on_session_error(&mut self, now: u64, e: ErrorFrame) {
        if self.conn.state != ConnState::Handshake {
            tracing::warn!(code = e.code, message = e.message, "session error");
            return;
        }
        if e.code == ErrorCode::ServiceUnavailable.code() {
            // The server cannot reach its shared state (§9.6; close 4010 follows): one failed
            // attempt. The session, if any, is resumed at the next one.
            self.lost(now, true);
            return;
        }
        if self.conn.session.is_some() {
            // The resume cannot be honoured: start a new session on this connection and log in
            // to every room again (reported RECONNECTED with the diff).
            self.conn.session = None;
            self.direct_seq = 0;
            self.requests.unsend();
            self.send_hello();
            return;
        }
        // `hello` refused (bad token, …): nothing will get better by retrying.
        let rooms: Vec<(String, bool)> = self.rooms.iter().map(|(k, r)| (k.clone(), r.phase().is_logining())).collect();
        for (room, logining) in rooms {
            if logining {
                self.remove_room(&room, RoomStateReason::LoginFailed, e.code, no_data(), e.code);
            } else {
                let code = ErrorCode::ReconnectFailed.code();
                self.remove_room(&room, RoomStateReason::ReconnectFailed, code, json!({"code": e.code}), code);
            }
        }
        for (_, p) in self.requests.take_where(|_| true) {
            self.result(p.handle, e.code, None);
        }
        self.end_session(false);
    }

    /// The reconnect window has passed: every room still away has failed, for good.
    pub(crate) fn reconnect_failed(&mut self, now: u64) {
        let code = ErrorCode::ReconnectFailed.code();
        for id in self.rooms_where(|p| p.is_away()) {
            self.remove_room(&id, RoomStateReason::ReconnectFailed, code, no_data(), code);
        }
        if self.conn.state != ConnState::Ready {
            // Requests for no room (renew_token, and those of a room left since) held since the
            // loss fail too.
            let failed = self
                .requests
                .take_where(|p| p.needs_room.is_none() && matches!(p.kind, Kind::RenewToken { .. } | Kind::Left));
            for (_, p) in failed {
                self.result(p.handle, code, None);
            }
            let logining = !self.rooms.is_empty();
            self.end_session(false);
            if logining {
                // Rooms still logging in start over with a new session.
                self.want_connection(now);
            }
        }
    }
}
