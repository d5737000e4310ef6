//! [`Core`]: the client state machine. See the crate docs for the decisions it embodies.

use std::collections::{BTreeMap, VecDeque};

use parlor_protocol::{
    decode_server_frame, Ack, Bye, Channel, ClientFrame, DecodeError, ErrorCode, ErrorFrame, Event, EventBody, Hello,
    Kicked, Login, Logout, OkFrame, Ping, Publish, RenewToken, Resume, ResumeOutcome, Resumed, RoomAck, RoomConfig,
    RoomState, SendCommand, SendMessage, Seqs, ServerFrame, SetRoomExtra, Snapshot, Stream, StreamExtra, Switch,
    Unpublish, User, Welcome, PROTOCOL_VERSION,
};
use serde_json::{json, Value};

use crate::backoff;
use crate::event::{AppEvent, ExtraInfo, RoomStateReason, UpdateType};
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

/// A call of the app. Every command is made with a `handle` of the app's choosing, and its
/// outcome is reported as [`AppEvent::Result`] with that handle.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Log in to a room. The first login of a session also names the user and the session token.
    LoginRoom {
        /// The room.
        room: String,
        /// Who logs in.
        user: User,
        /// The token (used for `hello` and for this room's `login`).
        token: String,
        /// Login settings.
        config: RoomConfig,
    },
    /// Log out of a room.
    LogoutRoom {
        /// The room.
        room: String,
    },
    /// Leave `from` and enter `to` in one step.
    SwitchRoom {
        /// The room to leave.
        from: String,
        /// The room to enter.
        to: String,
        /// A token for `to` (else the session's).
        token: Option<String>,
        /// Login settings for `to`.
        config: RoomConfig,
    },
    /// Publish a stream.
    Publish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// Its extra info.
        extra: String,
    },
    /// Stop publishing a stream.
    Unpublish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
    },
    /// Set a published stream's extra info.
    SetStreamExtra {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// The new extra info.
        extra: String,
    },
    /// Set one key of the room's extra info.
    SetRoomExtra {
        /// The room.
        room: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Send a broadcast message.
    Broadcast {
        /// The room.
        room: String,
        /// The text.
        message: String,
    },
    /// Send a barrage message.
    Barrage {
        /// The room.
        room: String,
        /// The text.
        message: String,
    },
    /// Send a custom command.
    CustomCommand {
        /// The room.
        room: String,
        /// Recipients; empty means everyone else in the room.
        to: Vec<String>,
        /// The command text.
        command: String,
    },
    /// Replace the session's token.
    RenewToken {
        /// The new token.
        token: String,
    },
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Login sent or waiting for a connection; the room has no epoch yet.
    Logining,
    /// In the room (reported LOGINED or RECONNECTED).
    Active,
    /// The connection was lost; waiting for a resume or a fresh login.
    Reconnecting,
}

#[derive(Debug)]
struct Room {
    phase: Phase,
    config: RoomConfig,
    token: Option<String>,
    login_deadline: Option<u64>,
    epoch: Option<String>,
    seq_room: u64,
    seq_users: u64,
    view: RoomView,
    /// Streams the app publishes here (id → extra), as it last asked and the server confirmed.
    own: BTreeMap<String, String>,
    /// A fresh login after a refused resume is in flight.
    relogin: bool,
    /// After this reconnection completes, re-publish own streams the server no longer has.
    republish_check: bool,
    /// `resumed` said the server has this room (whose login `ok` was lost): its snapshot is the
    /// login's answer.
    login_by_snapshot: bool,
}

impl Room {
    /// A room the app just asked to enter (login or switch), to be answered by `deadline`.
    fn logining(config: RoomConfig, token: Option<String>, deadline: u64) -> Room {
        Room {
            phase: Phase::Logining,
            config,
            token,
            login_deadline: Some(deadline),
            epoch: None,
            seq_room: 0,
            seq_users: 0,
            view: RoomView::default(),
            own: BTreeMap::new(),
            relogin: false,
            republish_check: false,
            login_by_snapshot: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Login {
        room: String,
    },
    Relogin {
        room: String,
    },
    Switch {
        to: String,
    },
    Logout {
        room: String,
    },
    Publish {
        room: String,
        stream: String,
        extra: String,
    },
    Republish {
        room: String,
        stream: String,
    },
    Unpublish {
        room: String,
        stream: String,
    },
    StreamExtra {
        room: String,
        stream: String,
        extra: String,
    },
    RenewToken {
        token: String,
    },
    /// Logout of a room the app gave up on while its login was in flight.
    QuietLogout,
    /// A login (or switch) the app gave up on after it was sent: if the server answers `ok`,
    /// leave the room again. Not sent again after a reconnection.
    Abandoned {
        room: String,
    },
    /// Everything else: only a result to report.
    Plain,
}

#[derive(Debug)]
struct Pending {
    frame: ClientFrame,
    kind: Kind,
    handle: Option<u64>,
    /// A room that must be in the room (`Active`) before the request may be sent.
    needs_room: Option<String>,
    sent: bool,
    /// The `id` it went out with (kept when it goes again after a resume); None until sent.
    wire: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection, none wanted.
    Idle,
    /// No connection; the next attempt starts at this time.
    Waiting(u64),
    /// `Connect` emitted; waiting for `opened`.
    Connecting,
    /// Open; `hello` or `resume` sent, waiting for `welcome` / `resumed`.
    Handshake,
    /// `resumed` received; the replay runs until `resume_done`.
    Resuming,
    /// Ready for requests.
    Ready,
}

#[derive(Debug)]
struct Session {
    id: String,
    resume_token: String,
}

/// The client room state machine (sans-IO). See the crate docs.
pub struct Core {
    config: Config,
    random: Random,
    out: VecDeque<Output>,
    conn: Conn,
    attempt: u32,
    session: Option<Session>,
    user: Option<User>,
    token: String,
    heartbeat_ms: u64,
    next_ping: Option<u64>,
    last_heard: u64,
    window_end: Option<u64>,
    direct_seq: u64,
    next_id: u64,
    next_key: u64,
    rooms: BTreeMap<String, Room>,
    states: BTreeMap<String, RoomStateReason>,
    pending: BTreeMap<u64, Pending>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("conn", &self.conn)
            .field("session", &self.session)
            .field("rooms", &self.rooms)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

fn set_id(frame: &mut ClientFrame, id: u64) {
    match frame {
        ClientFrame::Login(f) => f.id = id,
        ClientFrame::Logout(f) => f.id = id,
        ClientFrame::Switch(f) => f.id = id,
        ClientFrame::Publish(f) => f.id = id,
        ClientFrame::Unpublish(f) => f.id = id,
        ClientFrame::StreamExtra(f) => f.id = id,
        ClientFrame::RoomExtra(f) => f.id = id,
        ClientFrame::Broadcast(f) | ClientFrame::Barrage(f) => f.id = id,
        ClientFrame::Command(f) => f.id = id,
        ClientFrame::RenewToken(f) => f.id = id,
        ClientFrame::Hello(_) | ClientFrame::Resume(_) | ClientFrame::Ping(_) | ClientFrame::Bye(_) => {}
    }
}

fn no_data() -> Value {
    json!({})
}

impl Core {
    /// A core with `config`, drawing reconnect jitter from `random` (numbers in `[0, 1)`).
    pub fn new(config: Config, random: Random) -> Core {
        let heartbeat_ms = config.heartbeat_ms.max(1);
        Core {
            config,
            random,
            out: VecDeque::new(),
            conn: Conn::Idle,
            attempt: 0,
            session: None,
            user: None,
            token: String::new(),
            heartbeat_ms,
            next_ping: None,
            last_heard: 0,
            window_end: None,
            direct_seq: 0,
            next_id: 1,
            next_key: 0,
            rooms: BTreeMap::new(),
            states: BTreeMap::new(),
            pending: BTreeMap::new(),
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

    /// The current heartbeat interval (ms).
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next (absolute ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut put = |x: Option<u64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        put(self.window_end);
        for r in self.rooms.values() {
            put(r.login_deadline);
        }
        match self.conn {
            Conn::Waiting(at) => put(Some(at)),
            Conn::Connecting | Conn::Handshake | Conn::Resuming | Conn::Ready => {
                put(Some(self.liveness_deadline()));
                put(self.next_ping);
            }
            Conn::Idle => {}
        }
        t
    }

    fn liveness_deadline(&self) -> u64 {
        self.last_heard.saturating_add(2 * self.heartbeat_ms)
    }

    // ------------------------------------------------------------------ outputs

    fn send(&mut self, f: ClientFrame) {
        self.out.push_back(Output::Send(f));
    }

    fn emit(&mut self, e: AppEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn report(&mut self, room: &str, reason: RoomStateReason, code: u32, data: Value) {
        self.states.insert(room.to_string(), reason);
        self.emit(AppEvent::RoomStateChanged { room: room.to_string(), reason, error_code: code, extended_data: data });
    }

    fn result(&mut self, handle: Option<u64>, code: u32, message_id: Option<String>) {
        if let Some(handle) = handle {
            self.emit(AppEvent::Result { handle, error_code: code, message_id });
        }
    }

    fn me(&self) -> String {
        self.user.as_ref().map(|u| u.id.clone()).unwrap_or_default()
    }

    fn alloc_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    fn ack(&self) -> Ack {
        let rooms = self
            .rooms
            .iter()
            .filter(|(_, r)| r.phase != Phase::Logining && !r.relogin)
            .filter_map(|(id, r)| {
                r.epoch
                    .as_ref()
                    .map(|e| (id.clone(), RoomAck { epoch: e.clone(), room: r.seq_room, users: r.seq_users }))
            })
            .collect();
        let mut rooms: std::collections::BTreeMap<String, RoomAck> = rooms;
        // A room whose login went out but was not answered may be ours on the server: ack it
        // with an empty epoch, so that the server, if it has us there, answers with a snapshot
        // (which then serves as the login's answer), never a replay we have no base for.
        for p in self.pending.values() {
            if let Kind::Login { room } | Kind::Switch { to: room } | Kind::Relogin { room } = &p.kind {
                if p.wire.is_some() && self.rooms.get(room).is_some_and(|r| r.phase == Phase::Logining || r.relogin) {
                    rooms.entry(room.clone()).or_default();
                }
            }
        }
        Ack { direct: self.direct_seq, rooms }
    }

    // ------------------------------------------------------------------ requests

    /// Queue a request; it goes out now if it may, else when the connection and room allow.
    fn request(
        &mut self,
        frame_of: impl FnOnce(u64) -> ClientFrame,
        kind: Kind,
        handle: Option<u64>,
        needs_room: Option<String>,
    ) {
        let key = self.alloc_key();
        self.pending.insert(key, Pending { frame: frame_of(0), kind, handle, needs_room, sent: false, wire: None });
        self.flush();
    }

    fn may_send(&self, p: &Pending) -> bool {
        match &p.needs_room {
            None => true,
            Some(r) => self.rooms.get(r).is_some_and(|r| r.phase == Phase::Active),
        }
    }

    /// Send what may go: first the requests that were in flight at a cut, again, with their own
    /// ids, in id order (the server answers repeats from memory); then the ones held meanwhile,
    /// in the order the app made them, each getting its id now — ids are given at sending, so
    /// they increase on the wire even when a held request goes out after a later one.
    fn flush(&mut self) {
        if self.conn != Conn::Ready {
            return;
        }
        let mut again: Vec<(u64, u64)> =
            self.pending.iter().filter_map(|(k, p)| p.wire.filter(|_| !p.sent).map(|w| (w, *k))).collect();
        again.sort_unstable();
        for (_, key) in again {
            if let Some(p) = self.pending.get_mut(&key) {
                p.sent = true;
                let f = p.frame.clone();
                self.send(f);
            }
        }
        let fresh: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.wire.is_none() && !p.sent && self.may_send(p))
            .map(|(k, _)| *k)
            .collect();
        for key in fresh {
            let id = self.next_id;
            if let Some(p) = self.pending.get_mut(&key) {
                self.next_id += 1;
                p.sent = true;
                p.wire = Some(id);
                set_id(&mut p.frame, id);
                let f = p.frame.clone();
                self.send(f);
            }
        }
    }

    /// Take the request answered by wire id `id`.
    fn take_answered(&mut self, id: u64) -> Option<Pending> {
        let key = self.pending.iter().find(|(_, p)| p.sent && p.wire == Some(id)).map(|(k, _)| *k)?;
        self.pending.remove(&key)
    }

    /// Fail every request that needs `room` (and a login for it), with `code`.
    fn fail_room_requests(&mut self, room: &str, code: u32) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.needs_room.as_deref() == Some(room)
                    || matches!(&p.kind, Kind::Login { room: r } | Kind::Relogin { room: r } | Kind::Switch { to: r } if r == room)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let is_login = matches!(p.kind, Kind::Login { .. } | Kind::Switch { .. } | Kind::Relogin { .. });
            if is_login && p.sent {
                // The server may still put us in the room: keep it, without a handle, so that
                // its `ok` is answered with a logout.
                self.result(p.handle, code, None);
                self.pending
                    .insert(id, Pending { handle: None, kind: Kind::Abandoned { room: room.to_string() }, ..p });
                continue;
            }
            self.result(p.handle, code, None);
        }
    }

    fn remove_room(&mut self, room: &str, reason: RoomStateReason, code: u32, data: Value, fail_code: u32) {
        self.rooms.remove(room);
        self.report(room, reason, code, data);
        self.fail_room_requests(room, fail_code);
    }

    // ------------------------------------------------------------------ app commands

    /// The app calls something; its outcome is reported later as [`AppEvent::Result`] with
    /// `handle`.
    pub fn handle_command(&mut self, now: u64, handle: u64, cmd: Command) {
        match cmd {
            Command::LoginRoom { room, user, token, config } => self.login_room(now, handle, room, user, token, config),
            Command::LogoutRoom { room } => self.logout_room(handle, room),
            Command::SwitchRoom { from, to, token, config } => self.switch_room(now, handle, from, to, token, config),
            Command::Publish { room, stream, extra } => self.room_request(
                handle,
                room.clone(),
                |id| {
                    ClientFrame::Publish(Publish {
                        id,
                        room: room.clone(),
                        stream: stream.clone(),
                        extra: extra.clone(),
                    })
                },
                Kind::Publish { room: room.clone(), stream: stream.clone(), extra: extra.clone() },
            ),
            Command::Unpublish { room, stream } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    // The app's intent: never re-publish it, whatever happens to the request.
                    r.own.remove(&stream);
                }
                self.room_request(
                    handle,
                    room.clone(),
                    |id| ClientFrame::Unpublish(Unpublish { id, room: room.clone(), stream: stream.clone() }),
                    Kind::Unpublish { room: room.clone(), stream: stream.clone() },
                )
            }
            Command::SetStreamExtra { room, stream, extra } => self.room_request(
                handle,
                room.clone(),
                |id| {
                    ClientFrame::StreamExtra(StreamExtra {
                        id,
                        room: room.clone(),
                        stream: stream.clone(),
                        extra: extra.clone(),
                    })
                },
                Kind::StreamExtra { room: room.clone(), stream: stream.clone(), extra: extra.clone() },
            ),
            Command::SetRoomExtra { room, key, value } => self.room_request(
                handle,
                room.clone(),
                |id| ClientFrame::RoomExtra(SetRoomExtra { id, room: room.clone(), key, value }),
                Kind::Plain,
            ),
            Command::Broadcast { room, message } => self.room_request(
                handle,
                room.clone(),
                |id| ClientFrame::Broadcast(SendMessage { id, room: room.clone(), message }),
                Kind::Plain,
            ),
            Command::Barrage { room, message } => self.room_request(
                handle,
                room.clone(),
                |id| ClientFrame::Barrage(SendMessage { id, room: room.clone(), message }),
                Kind::Plain,
            ),
            Command::CustomCommand { room, to, command } => self.room_request(
                handle,
                room.clone(),
                |id| ClientFrame::Command(SendCommand { id, room: room.clone(), to, command }),
                Kind::Plain,
            ),
            Command::RenewToken { token } => {
                if self.session.is_none() && self.conn == Conn::Idle {
                    self.token = token;
                    self.result(Some(handle), 0, None);
                    return;
                }
                let t = token.clone();
                self.request(
                    |id| ClientFrame::RenewToken(RenewToken { id, token: t }),
                    Kind::RenewToken { token },
                    Some(handle),
                    None,
                );
            }
        }
        self.maybe_end();
    }

    fn room_request(&mut self, handle: u64, room: String, frame_of: impl FnOnce(u64) -> ClientFrame, kind: Kind) {
        if !self.rooms.contains_key(&room) {
            self.result(Some(handle), ErrorCode::NotInRoom.code(), None);
            return;
        }
        self.request(frame_of, kind, Some(handle), Some(room));
    }

    /// Make sure a connection is open or on its way.
    fn want_connection(&mut self, now: u64) {
        if self.conn == Conn::Idle {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: u64) {
        self.conn = Conn::Connecting;
        self.last_heard = now;
        self.out.push_back(Output::Connect);
    }

    fn login_room(&mut self, now: u64, handle: u64, room: String, user: User, token: String, config: RoomConfig) {
        if self.rooms.contains_key(&room) {
            self.result(Some(handle), ErrorCode::TooManyRooms.code(), None);
            return;
        }
        match &self.user {
            Some(u) if self.session.is_some() || self.conn != Conn::Idle => {
                if u.id != user.id {
                    // One session is one user: a second user needs a second engine.
                    self.report(&room, RoomStateReason::Logining, 0, no_data());
                    self.report(&room, RoomStateReason::LoginFailed, ErrorCode::TokenUserMismatch.code(), no_data());
                    self.result(Some(handle), ErrorCode::TokenUserMismatch.code(), None);
                    return;
                }
            }
            _ => {
                self.user = Some(user);
                self.token = token.clone();
            }
        }
        self.rooms.insert(
            room.clone(),
            Room::logining(config.clone(), Some(token.clone()), now + self.config.login_timeout_ms),
        );
        self.report(&room, RoomStateReason::Logining, 0, no_data());
        self.want_connection(now);
        let r = room.clone();
        self.request(
            |id| ClientFrame::Login(Login { id, room: r, config, token: Some(token) }),
            Kind::Login { room },
            Some(handle),
            None,
        );
    }

    fn logout_room(&mut self, handle: u64, room: String) {
        let Some(r) = self.rooms.get(&room) else {
            let code = ErrorCode::NotInRoomLogout.code();
            self.report(&room, RoomStateReason::LogoutFailed, code, no_data());
            self.result(Some(handle), code, None);
            return;
        };
        if r.phase == Phase::Logining {
            // Give up the login; a login already sent is answered with a logout later.
            self.rooms.remove(&room);
            self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
            self.report(&room, RoomStateReason::Logout, 0, no_data());
            self.result(Some(handle), 0, None);
            return;
        }
        let r2 = room.clone();
        self.request(
            |id| ClientFrame::Logout(Logout { id, room: r2 }),
            Kind::Logout { room: room.clone() },
            Some(handle),
            Some(room),
        );
    }

    fn switch_room(
        &mut self,
        now: u64,
        handle: u64,
        from: String,
        to: String,
        token: Option<String>,
        config: RoomConfig,
    ) {
        if !self.rooms.contains_key(&from) {
            let code = ErrorCode::NotInRoomLogout.code();
            self.report(&from, RoomStateReason::LogoutFailed, code, no_data());
            self.result(Some(handle), code, None);
            return;
        }
        if self.rooms.contains_key(&to) {
            self.result(Some(handle), ErrorCode::TooManyRooms.code(), None);
            return;
        }
        // Leaving `from` is reported at once: the server does it in the same step, and from now
        // on nothing about `from` reaches the app.
        let old = self.rooms.remove(&from);
        self.fail_room_requests(&from, ErrorCode::NotInRoom.code());
        self.report(&from, RoomStateReason::Logout, 0, no_data());
        let own_token = token.clone().or_else(|| old.and_then(|o| o.token));
        self.rooms.insert(to.clone(), Room::logining(config.clone(), own_token, now + self.config.login_timeout_ms));
        self.report(&to, RoomStateReason::Logining, 0, no_data());
        self.want_connection(now);
        let t2 = to.clone();
        self.request(
            |id| ClientFrame::Switch(Switch { id, from, to: t2, config, token }),
            Kind::Switch { to },
            Some(handle),
            None,
        );
    }

    // ------------------------------------------------------------------ connection events

    /// The connection asked for by [`Output::Connect`] is open.
    pub fn handle_opened(&mut self, now: u64) {
        if self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Handshake;
        self.last_heard = now;
        if let Some(s) = &self.session {
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

    fn send_hello(&mut self) {
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
        if matches!(self.conn, Conn::Idle | Conn::Waiting(_)) {
            return;
        }
        self.lost(now, false);
    }

    /// The connection is gone (closed, failed, or judged dead).
    fn lost(&mut self, now: u64, disconnect: bool) {
        if disconnect {
            self.out.push_back(Output::Disconnect);
        }
        self.conn = Conn::Idle;
        self.next_ping = None;
        self.pending.retain(|_, p| !matches!(p.kind, Kind::Abandoned { .. }));
        for p in self.pending.values_mut() {
            p.sent = false;
        }
        if self.rooms.is_empty() {
            self.end_session(false);
            return;
        }
        let active: Vec<String> =
            self.rooms.iter().filter(|(_, r)| r.phase == Phase::Active).map(|(id, _)| id.clone()).collect();
        for id in &active {
            if let Some(r) = self.rooms.get_mut(id) {
                r.phase = Phase::Reconnecting;
                r.republish_check = false;
            }
            self.report(id, RoomStateReason::Reconnecting, ErrorCode::Reconnecting.code(), no_data());
        }
        let reconnecting = self.rooms.values().any(|r| r.phase == Phase::Reconnecting);
        if reconnecting && self.window_end.is_none() {
            self.window_end = Some(now + self.config.reconnect_window_ms);
        }
        self.schedule_attempt(now);
    }

    fn schedule_attempt(&mut self, now: u64) {
        let r = (self.random)();
        let wait = backoff::delay_ms(self.attempt, r);
        self.attempt = self.attempt.saturating_add(1);
        self.conn = Conn::Waiting(now + wait);
    }

    /// Forget the session (and close the connection, saying `bye` when `bye`).
    fn end_session(&mut self, bye: bool) {
        match self.conn {
            Conn::Ready | Conn::Resuming => {
                if bye {
                    self.send(ClientFrame::Bye(Bye {}));
                }
                self.out.push_back(Output::Disconnect);
            }
            Conn::Connecting | Conn::Handshake => self.out.push_back(Output::Disconnect),
            Conn::Idle | Conn::Waiting(_) => {}
        }
        self.conn = Conn::Idle;
        self.session = None;
        self.window_end = None;
        self.next_ping = None;
        self.attempt = 0;
        self.direct_seq = 0;
        self.pending.retain(|_, p| p.handle.is_some());
    }

    /// With no room left and nothing the app waits for, end the session.
    fn maybe_end(&mut self) {
        if self.rooms.is_empty()
            && !self.pending.values().any(|p| p.handle.is_some())
            && (self.conn != Conn::Idle || self.session.is_some())
        {
            self.end_session(true);
        }
    }

    /// Time has come: call at (or after) [`Core::poll_timeout`].
    pub fn handle_timeout(&mut self, now: u64) {
        if self.window_end.is_some_and(|t| t <= now) {
            self.window_end = None;
            self.reconnect_failed(now);
        }
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.login_deadline.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let code = ErrorCode::LoginTimeout.code();
            self.remove_room(&id, RoomStateReason::LoginFailed, code, no_data(), code);
        }
        match self.conn {
            Conn::Connecting | Conn::Handshake | Conn::Resuming | Conn::Ready if self.liveness_deadline() <= now => {
                self.lost(now, true);
            }
            Conn::Waiting(at) if at <= now => {
                if self.rooms.is_empty() {
                    self.conn = Conn::Idle;
                } else {
                    self.connect(now);
                }
            }
            _ => {}
        }
        if matches!(self.conn, Conn::Ready | Conn::Resuming) && self.next_ping.is_some_and(|t| t <= now) {
            let f = ClientFrame::Ping(Ping { ack: Some(self.ack()) });
            self.send(f);
            let next = self.next_ping.unwrap_or(now) + self.heartbeat_ms;
            self.next_ping = Some(if next <= now { now + self.heartbeat_ms } else { next });
        }
        self.maybe_end();
    }

    /// The reconnect window has passed: every room still away has failed, for good.
    fn reconnect_failed(&mut self, now: u64) {
        let code = ErrorCode::ReconnectFailed.code();
        let away: Vec<String> =
            self.rooms.iter().filter(|(_, r)| r.phase == Phase::Reconnecting).map(|(id, _)| id.clone()).collect();
        for id in away {
            self.remove_room(&id, RoomStateReason::ReconnectFailed, code, no_data(), code);
        }
        if self.conn != Conn::Ready {
            // Requests for no room (renew_token) held since the loss fail too.
            let ids: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, p)| p.needs_room.is_none() && matches!(p.kind, Kind::RenewToken { .. } | Kind::Plain))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(p) = self.pending.remove(&id) {
                    self.result(p.handle, code, None);
                }
            }
            let logining = !self.rooms.is_empty();
            self.end_session(false);
            if logining {
                // Rooms still logging in start over with a new session.
                self.want_connection(now);
            }
        }
    }

    // ------------------------------------------------------------------ frames

    /// A text frame arrived. Frames that cannot be decoded (or of unknown type) are ignored and
    /// returned as the error, for the driver to log.
    pub fn handle_text(&mut self, now: u64, text: &str) -> Result<(), DecodeError> {
        let f = decode_server_frame(text)?;
        self.handle_frame(now, f);
        Ok(())
    }

    /// A decoded frame arrived.
    pub fn handle_frame(&mut self, now: u64, frame: ServerFrame) {
        if matches!(self.conn, Conn::Idle | Conn::Waiting(_) | Conn::Connecting) {
            tracing::debug!("frame without a connection ignored");
            return;
        }
        self.last_heard = now;
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
            ServerFrame::TokenWillExpire(t) => {
                if self.rooms.contains_key(&t.room) {
                    self.emit(AppEvent::RoomTokenWillExpire { room: t.room, remaining_s: t.remaining_s });
                }
            }
        }
        self.maybe_end();
    }

    fn start_heartbeat(&mut self, now: u64, hb: Option<u64>) {
        if let Some(hb) = hb.filter(|h| *h > 0) {
            self.heartbeat_ms = hb;
        }
        self.next_ping = Some(now + self.heartbeat_ms);
        self.attempt = 0;
    }

    fn on_welcome(&mut self, now: u64, w: Welcome) {
        if self.conn != Conn::Handshake || self.session.is_some() {
            return;
        }
        self.session = Some(Session { id: w.session, resume_token: w.resume_token });
        self.direct_seq = 0;
        self.conn = Conn::Ready;
        self.start_heartbeat(now, Some(w.heartbeat_ms));
        let away: Vec<String> =
            self.rooms.iter().filter(|(_, r)| r.phase == Phase::Reconnecting).map(|(id, _)| id.clone()).collect();
        if !away.is_empty() {
            // A new session after a refused resume: old request ids mean nothing to it, so every
            // waiting request goes out as new (with a new id); then every room that was in logs
            // in again.
            for p in self.pending.values_mut() {
                p.wire = None;
                p.sent = false;
            }
            for room in away {
                self.relogin(room);
            }
        }
        self.flush();
    }

    fn on_resumed(&mut self, now: u64, r: Resumed) {
        if self.conn != Conn::Handshake {
            return;
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        s.id = r.session;
        s.resume_token = r.resume_token;
        self.conn = Conn::Resuming;
        self.start_heartbeat(now, r.heartbeat_ms);
        let away: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.phase == Phase::Reconnecting && !r.relogin)
            .map(|(id, _)| id.clone())
            .collect();
        // Rooms that are (re-)logging in: their login's answer may have been lost.
        let logining: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.phase == Phase::Logining || r.relogin)
            .map(|(id, _)| id.clone())
            .collect();
        for room in logining {
            match r.rooms.get(&room) {
                Some(ResumeOutcome::Snapshot) => {
                    if let Some(rm) = self.rooms.get_mut(&room) {
                        rm.login_by_snapshot = true;
                    }
                }
                Some(ResumeOutcome::Kicked(code)) => {
                    let code = *code;
                    self.remove_room(&room, RoomStateReason::KickOut, code, no_data(), code);
                }
                // Not there (the login never arrived: it goes again) or a replay (the repeated
                // login's `ok` answers it).
                _ => {}
            }
        }
        for room in away {
            let leaving = self.pending.values().any(|p| matches!(&p.kind, Kind::Logout { room: r } if *r == room));
            let Some(status) = r.rooms.get(&room).copied() else {
                if leaving {
                    // Our logout reached the server before the cut: its repeat gets the answer.
                    if let Some(rm) = self.rooms.get_mut(&room) {
                        rm.phase = Phase::Active;
                    }
                    self.report(&room, RoomStateReason::Reconnected, 0, no_data());
                } else {
                    // The server no longer has us there (§9.3): log in again.
                    self.relogin(room);
                }
                continue;
            };
            if let ResumeOutcome::Kicked(code) = status {
                self.remove_room(&room, RoomStateReason::KickOut, code, no_data(), code);
                continue;
            }
            if let Some(rm) = self.rooms.get_mut(&room) {
                rm.phase = Phase::Active;
                rm.republish_check = true;
            }
            self.report(&room, RoomStateReason::Reconnected, 0, no_data());
        }
        // Rooms the server still has us in but the app gave up meanwhile: leave them.
        for (room, status) in &r.rooms {
            if !self.rooms.contains_key(room) && !matches!(status, ResumeOutcome::Kicked(_)) {
                self.abandon(room.clone());
            }
        }
        if !self.rooms.values().any(|r| r.phase == Phase::Reconnecting) {
            self.window_end = None;
        }
    }

    fn on_resume_done(&mut self) {
        if self.conn != Conn::Resuming {
            return;
        }
        self.conn = Conn::Ready;
        let rooms: Vec<String> =
            self.rooms.iter().filter(|(_, r)| r.republish_check).map(|(id, _)| id.clone()).collect();
        for room in rooms {
            self.republish(&room);
        }
        self.flush();
    }

    /// Re-publish the app's streams that the server no longer has in `room` (and that no
    /// request in flight is already publishing or stopping).
    fn republish(&mut self, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.republish_check = false;
        let missing: Vec<(String, String)> = r
            .own
            .iter()
            .filter(|(s, _)| !r.view.streams.contains_key(*s))
            .map(|(s, e)| (s.clone(), e.clone()))
            .collect();
        for (stream, extra) in missing {
            let busy = self.pending.values().any(|p| match &p.kind {
                Kind::Publish { room: pr, stream: ps, .. }
                | Kind::Republish { room: pr, stream: ps }
                | Kind::Unpublish { room: pr, stream: ps } => pr == room && *ps == stream,
                _ => false,
            });
            if busy {
                continue;
            }
            let (rm, st) = (room.to_string(), stream.clone());
            self.request(
                |id| ClientFrame::Publish(Publish { id, room: rm, stream: st, extra }),
                Kind::Republish { room: room.to_string(), stream },
                None,
                Some(room.to_string()),
            );
        }
    }

    fn apply_ok_seq(&mut self, room: Option<&str>, seq: &Seqs) {
        if let Some(r) = room.and_then(|r| self.rooms.get_mut(r)) {
            if r.phase != Phase::Logining {
                if let Some(n) = seq.room {
                    r.seq_room = r.seq_room.max(n);
                }
                if let Some(n) = seq.users {
                    r.seq_users = r.seq_users.max(n);
                }
            }
        }
        if let Some(n) = seq.direct {
            self.direct_seq = self.direct_seq.max(n);
        }
    }

    fn on_ok(&mut self, ok: OkFrame) {
        let Some(p) = self.take_answered(ok.id) else {
            tracing::debug!(id = ok.id, "ok for no request");
            return;
        };
        match p.kind {
            Kind::Login { room } | Kind::Switch { to: room } => {
                let ours = self.rooms.get(&room).is_some_and(|r| r.phase == Phase::Logining);
                if !ours {
                    self.abandon(room);
                    return;
                }
                let state = ok.room_state().unwrap_or_default();
                self.logined(&room, &state, &ok.seq, p.handle);
            }
            Kind::Relogin { room } => {
                if !self.rooms.get(&room).is_some_and(|r| r.relogin) {
                    self.abandon(room);
                    return;
                }
                let state = ok.room_state().unwrap_or_default();
                self.relogined(&room, &state, &ok.seq);
            }
            Kind::Logout { room } => {
                self.rooms.remove(&room);
                self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
                self.report(&room, RoomStateReason::Logout, 0, no_data());
                self.result(p.handle, 0, None);
            }
            Kind::Publish { room, stream, extra } => {
                self.apply_ok_seq(Some(&room), &ok.seq);
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.own.insert(stream.clone(), extra.clone());
                    r.view.streams.insert(
                        stream.clone(),
                        Stream { id: stream, user: self.user.clone().unwrap_or_default(), extra },
                    );
                }
                self.result(p.handle, 0, None);
            }
            Kind::Republish { room, stream } => {
                self.apply_ok_seq(Some(&room), &ok.seq);
                let user = self.user.clone().unwrap_or_default();
                if let Some(r) = self.rooms.get_mut(&room) {
                    if let Some(extra) = r.own.get(&stream).cloned() {
                        r.view.streams.insert(stream.clone(), Stream { id: stream, user, extra });
                    }
                }
            }
            Kind::Unpublish { room, stream } => {
                self.apply_ok_seq(Some(&room), &ok.seq);
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.view.streams.remove(&stream);
                }
                self.result(p.handle, 0, None);
            }
            Kind::StreamExtra { room, stream, extra } => {
                self.apply_ok_seq(Some(&room), &ok.seq);
                if let Some(r) = self.rooms.get_mut(&room) {
                    if let Some(e) = r.own.get_mut(&stream) {
                        *e = extra.clone();
                    }
                    if let Some(s) = r.view.streams.get_mut(&stream) {
                        s.extra = extra;
                    }
                }
                self.result(p.handle, 0, None);
            }
            Kind::RenewToken { token } => {
                self.token = token.clone();
                for r in self.rooms.values_mut() {
                    r.token = Some(token.clone());
                }
                self.result(p.handle, 0, None);
            }
            Kind::QuietLogout => {}
            Kind::Abandoned { room } => self.abandon(room),
            Kind::Plain => {
                let room = ok.room.clone().or_else(|| p.needs_room.clone());
                self.apply_ok_seq(room.as_deref(), &ok.seq);
                self.result(p.handle, 0, ok.message_id);
            }
        }
    }

    /// Log in to a room that was in again (new session, or a resume that no longer has it);
    /// the room stays RECONNECTING until the answer.
    fn relogin(&mut self, room: String) {
        // One login per room at a time: a relogin of a previous session is replaced.
        self.pending.retain(|_, p| !matches!(&p.kind, Kind::Relogin { room: r } if *r == room));
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.relogin = true;
        let (config, token) = (r.config.clone(), r.token.clone());
        let rm = room.clone();
        self.request(
            |id| ClientFrame::Login(Login { id, room: rm, config, token }),
            Kind::Relogin { room },
            None,
            None,
        );
    }

    /// A fresh login after a refused resume succeeded: RECONNECTED, then the diff.
    fn relogined(&mut self, room: &str, state: &RoomState, seq: &Seqs) {
        let me = self.me();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let view = RoomView::from_state(state, &me);
        let old = std::mem::replace(&mut r.view, view.clone());
        r.phase = Phase::Active;
        r.relogin = false;
        r.login_by_snapshot = false;
        r.epoch = Some(state.room_session.clone());
        r.seq_room = seq.room.unwrap_or(0);
        r.seq_users = seq.users.unwrap_or(0);
        self.report(room, RoomStateReason::Reconnected, 0, no_data());
        for e in old.diff_to(&view, room, &me) {
            self.emit(e);
        }
        if old.online != view.online {
            self.emit(AppEvent::RoomOnlineUserCountUpdate { room: room.to_string(), count: view.online });
        }
        if !self.rooms.values().any(|r| r.phase == Phase::Reconnecting) {
            self.window_end = None;
        }
        self.republish(room);
        self.flush();
    }

    /// A login succeeded (by its `ok`, or by the snapshot of a resume).
    fn logined(&mut self, room: &str, state: &RoomState, seq: &Seqs, handle: Option<u64>) {
        let me = self.me();
        let view = RoomView::from_state(state, &me);
        if let Some(r) = self.rooms.get_mut(room) {
            r.phase = Phase::Active;
            r.login_deadline = None;
            r.login_by_snapshot = false;
            r.epoch = Some(state.room_session.clone());
            r.seq_room = seq.room.unwrap_or(0);
            r.seq_users = seq.users.unwrap_or(0);
            r.view = view.clone();
        }
        self.report(room, RoomStateReason::Logined, 0, json!({"room_session_id": state.room_session}));
        for e in view.initial_events(room, &me) {
            self.emit(e);
        }
        self.result(handle, 0, None);
        self.flush();
    }

    /// We are in `room` on the server but the app gave up on it: leave quietly.
    fn abandon(&mut self, room: String) {
        self.request(|id| ClientFrame::Logout(Logout { id, room }), Kind::QuietLogout, None, None);
    }

    fn on_error(&mut self, now: u64, e: ErrorFrame) {
        let Some(id) = e.id else {
            self.on_session_error(now, e);
            return;
        };
        let Some(p) = self.take_answered(id) else {
            return;
        };
        match p.kind {
            Kind::Login { room } | Kind::Switch { to: room } => {
                if self.rooms.get(&room).is_some_and(|r| r.phase == Phase::Logining) {
                    self.remove_room(&room, RoomStateReason::LoginFailed, e.code, no_data(), e.code);
                }
                self.result(p.handle, e.code, None);
            }
            Kind::Relogin { room } => {
                let code = ErrorCode::ReconnectFailed.code();
                if self.rooms.get(&room).is_some_and(|r| r.relogin) {
                    self.remove_room(&room, RoomStateReason::ReconnectFailed, code, json!({"code": e.code}), code);
                }
                if !self.rooms.values().any(|r| r.phase == Phase::Reconnecting) {
                    self.window_end = None;
                }
            }
            Kind::Logout { room } => {
                if e.code == ErrorCode::NotInRoomLogout.code() {
                    self.rooms.remove(&room);
                    self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
                }
                self.report(&room, RoomStateReason::LogoutFailed, e.code, no_data());
                self.result(p.handle, e.code, None);
            }
            Kind::Republish { room, stream } => {
                tracing::warn!(room, stream, code = e.code, "re-publish refused");
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.own.remove(&stream);
                }
            }
            Kind::QuietLogout => {}
            _ => self.result(p.handle, e.code, None),
        }
    }

    /// An `error` without `id`: the server refused `hello` or `resume`.
    fn on_session_error(&mut self, now: u64, e: ErrorFrame) {
        if self.conn != Conn::Handshake {
            tracing::warn!(code = e.code, message = e.message, "session error");
            return;
        }
        if self.session.is_some() {
            // The resume cannot be honoured: start a new session on this connection and log in
            // to every room again (reported RECONNECTED with the diff).
            self.session = None;
            self.direct_seq = 0;
            for p in self.pending.values_mut() {
                p.sent = false;
            }
            self.send_hello();
            return;
        }
        // `hello` refused (bad token, …): nothing will get better by retrying.
        let rooms: Vec<(String, Phase)> = self.rooms.iter().map(|(k, r)| (k.clone(), r.phase)).collect();
        for (room, phase) in rooms {
            if phase == Phase::Logining {
                self.remove_room(&room, RoomStateReason::LoginFailed, e.code, no_data(), e.code);
            } else {
                let code = ErrorCode::ReconnectFailed.code();
                self.remove_room(&room, RoomStateReason::ReconnectFailed, code, json!({"code": e.code}), code);
            }
        }
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                self.result(p.handle, e.code, None);
            }
        }
        let _ = now;
        self.end_session(false);
    }

    fn on_kicked(&mut self, k: Kicked) {
        if !self.rooms.contains_key(&k.room) {
            return;
        }
        let data = k.extended_data.unwrap_or_else(no_data);
        self.remove_room(&k.room, RoomStateReason::KickOut, k.code, data, k.code);
    }

    fn on_snapshot(&mut self, s: Snapshot) {
        let me = self.me();
        let Some(r) = self.rooms.get_mut(&s.room) else {
            return;
        };
        if r.phase == Phase::Logining && r.login_by_snapshot {
            // The login whose answer was lost: this snapshot is its answer.
            let id = self.pending.iter().find_map(|(id, p)| match &p.kind {
                Kind::Login { room } | Kind::Switch { to: room } if *room == s.room => Some(*id),
                _ => None,
            });
            let handle = id.and_then(|id| self.pending.remove(&id)).and_then(|p| p.handle);
            self.logined(&s.room, &s.state, &s.seq, handle);
            return;
        }
        if r.relogin && r.login_by_snapshot {
            let id = self.pending.iter().find_map(|(id, p)| match &p.kind {
                Kind::Relogin { room } if *room == s.room => Some(*id),
                _ => None,
            });
            if let Some(id) = id {
                self.pending.remove(&id);
            }
            self.relogined(&s.room, &s.state, &s.seq);
            return;
        }
        if r.phase != Phase::Active {
            return;
        }
        let view = RoomView::from_state(&s.state, &me);
        let old = std::mem::replace(&mut r.view, view.clone());
        r.epoch = Some(s.state.room_session.clone());
        r.seq_room = s.seq.room.unwrap_or(0);
        r.seq_users = s.seq.users.unwrap_or(0);
        for e in old.diff_to(&view, &s.room, &me) {
            self.emit(e);
        }
        if old.online != view.online {
            self.emit(AppEvent::RoomOnlineUserCountUpdate { room: s.room.clone(), count: view.online });
        }
    }

    fn on_event(&mut self, e: Event) {
        let me = self.me();
        if e.ch == Some(Channel::Direct) {
            if let Some(seq) = e.seq {
                if seq <= self.direct_seq {
                    return;
                }
                self.direct_seq = seq;
            }
            if let EventBody::Command { from, command, time_ms } = e.body {
                if self.rooms.contains_key(&e.room) && from.id != me {
                    self.emit(AppEvent::CustomCommand { room: e.room, from, command, time_ms });
                }
            }
            return;
        }
        let room = e.room.clone();
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.phase != Phase::Active {
            return;
        }
        if let (Some(ch), Some(seq)) = (e.ch, e.seq) {
            let last = match ch {
                Channel::Room => &mut r.seq_room,
                Channel::Users => &mut r.seq_users,
                Channel::Direct => return,
            };
            if seq <= *last {
                return; // seen already (a replay overlapping what we applied)
            }
            if seq != *last + 1 {
                tracing::warn!(room, seq, last = *last, "gap in a channel");
            }
            *last = seq;
        }
        let mut out = Vec::new();
        match e.body {
            EventBody::UserAdd { users } => {
                let added: Vec<User> = users
                    .into_iter()
                    .filter(|u| u.id != me)
                    .filter(|u| r.view.users.insert(u.id.clone(), u.clone()).is_none())
                    .collect();
                if !added.is_empty() {
                    out.push(AppEvent::RoomUserUpdate { room, update_type: UpdateType::Add, users: added });
                }
            }
            EventBody::UserDelete { users } => {
                let gone: Vec<User> =
                    users.into_iter().filter(|u| u.id != me).filter_map(|u| r.view.users.remove(&u.id)).collect();
                if !gone.is_empty() {
                    out.push(AppEvent::RoomUserUpdate { room, update_type: UpdateType::Delete, users: gone });
                }
            }
            EventBody::StreamAdd { streams } => {
                let mut added = Vec::new();
                for s in streams {
                    let new = r.view.streams.insert(s.id.clone(), s.clone()).is_none();
                    if new && s.user.id != me {
                        added.push(s);
                    }
                }
                if !added.is_empty() {
                    out.push(AppEvent::RoomStreamUpdate { room, update_type: UpdateType::Add, streams: added });
                }
            }
            EventBody::StreamDelete { streams, .. } => {
                let mut gone = Vec::new();
                for s in streams {
                    if let Some(old) = r.view.streams.remove(&s.id) {
                        if old.user.id != me {
                            gone.push(old);
                        }
                    }
                }
                if !gone.is_empty() {
                    out.push(AppEvent::RoomStreamUpdate { room, update_type: UpdateType::Delete, streams: gone });
                }
            }
            EventBody::StreamExtra { streams } => {
                let mut changed = Vec::new();
                for s in streams {
                    if let Some(old) = r.view.streams.get_mut(&s.id) {
                        old.extra = s.extra.clone();
                    }
                    if s.user.id != me {
                        changed.push(s);
                    }
                }
                if !changed.is_empty() {
                    out.push(AppEvent::RoomStreamExtraInfoUpdate { room, streams: changed });
                }
            }
            EventBody::RoomExtra { key, value, user, time_ms } => {
                let item = parlor_protocol::RoomExtraItem { key, value, user, time_ms };
                if item.user.id != me {
                    out.push(AppEvent::RoomExtraInfoUpdate { room, extra: vec![ExtraInfo::from(&item)] });
                }
                r.view.extra.insert(item.key.clone(), item);
            }
            // A replay carries the client's own events too (docs/protocol.md §9.3): they are
            // counted, never reported.
            EventBody::Broadcast { from, .. } | EventBody::Barrage { from, .. } | EventBody::Command { from, .. }
                if from.id == me => {}
            EventBody::Broadcast { message_id, from, message, time_ms } => {
                out.push(AppEvent::BroadcastMessage { room, from, message, message_id, time_ms })
            }
            EventBody::Barrage { message_id, from, message, time_ms } => {
                out.push(AppEvent::BarrageMessage { room, from, message, message_id, time_ms })
            }
            EventBody::Command { from, command, time_ms } => {
                out.push(AppEvent::CustomCommand { room, from, command, time_ms })
            }
            EventBody::Online { count } => {
                if r.view.online != count {
                    r.view.online = count;
                    out.push(AppEvent::RoomOnlineUserCountUpdate { room, count });
                }
            }
        }
        for e in out {
            self.emit(e);
        }
    }
}
