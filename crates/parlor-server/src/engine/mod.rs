//! The engine: every piece of state that all nodes of a deployment share, behind one interface.
//!
//! An engine owns sessions (resume token, acks, remembered answers, the `direct` channel),
//! rooms (members, streams, extra info, epochs, the `room` and `users` channel logs with their
//! `seq`) and the app's stream-id registry. It is given *operations* ([`Op`]) that the
//! [`rules`](crate::rules) have already validated and authorized, applies each one atomically
//! (check, change, take the next `seq`, log the event, publish it) and answers with an outcome or
//! a typed [`Refusal`] — the rules, not the engine, decide which error code a refusal gets.
//!
//! An engine never sees a connection. What it publishes goes to a [`Deliver`] (the node-local
//! [`Hub`](crate::hub::Hub)), which owns the connections of this node:
//! - [`memory::MemoryEngine`] (the default) keeps everything in one process behind one lock and
//!   calls its `Deliver` under that lock, so every session's frames leave in `seq` order;
//! - the Redis engine (several nodes) does each operation as one Lua script and delivers what
//!   pub/sub brings, filling `seq` gaps from the logs.
//!
//! Why the atomic part of a rule lives in the engine and not in the rules: on several nodes,
//! "is the user in the room, is the stream id free, is the room full, which `seq` comes next"
//! must be checked and changed in one step, which in Redis means inside one script. So the
//! engine's operations are small, precisely specified steps (each documented on [`Op`]), the
//! conformance suite (`tests/engine_conformance.rs`) runs the same requests against every engine
//! and compares events and codes, and everything that needs no shared state — field validation,
//! tokens, per-session rate limits, the choice of error code — is in the rules, written once.

use std::future::Future;

use parlor_protocol::token::Claims;
use parlor_protocol::{Ack, Channel, ErrorCode, RoomConfig, RoomExtraItem, RoomState, Seqs, Stream, User};
use tokio::time::Instant;

use crate::frame::Frame;

pub use self::any::AnyEngine;

pub mod admin;
mod any;
pub mod memory;
pub mod redis;

/// A session's key: unique across the nodes of a deployment (its public id is random).
pub type SessionKey = u64;

/// A connection of this node, as the hub knows it (the engine only passes it back to the hub).
pub type ConnId = u64;

/// What a token grants in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The token's expiry, seconds since the Unix epoch.
    pub exp_s: u64,
    /// Whether the user may publish streams.
    pub may_publish: bool,
}

impl Grant {
    /// The grant of `claims`.
    pub fn of(claims: &Claims) -> Grant {
        Grant { exp_s: claims.exp, may_publish: claims.may_publish() }
    }
}

/// A request of a session, identified for the exactly-once rule of §1: an id at or below the
/// session's last is never executed again, it is answered from what the engine remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Req {
    /// The session.
    pub key: SessionKey,
    /// Its app.
    pub app: u32,
    /// The request id.
    pub id: u64,
}

/// One operation of a session, already validated and authorized by the rules.
#[derive(Debug, Clone)]
pub enum Op {
    /// Enter `room` (create it with `config.max_members` if it does not exist). Refused with
    /// [`Refusal::AlreadyInRoom`], [`Refusal::TooManyRooms`] (at `max_rooms`) or
    /// [`Refusal::RoomFull`] (the user's own older session not counted). An older session of the
    /// same user is kicked with 1002050 (its streams deleted with reason 3, no user change);
    /// otherwise the others get `user_add`. Answers the room's state ([`Done::state`]).
    Login {
        /// The room.
        room: String,
        /// The login's settings.
        config: RoomConfig,
        /// What the token allows there.
        grant: Grant,
    },
    /// Leave `room`: streams deleted with reason 5, `user_delete`. Refused with
    /// [`Refusal::NotInRoom`].
    Logout {
        /// The room.
        room: String,
    },
    /// Leave `from` as [`Op::Logout`] does, then enter `to` as [`Op::Login`] does; a refused
    /// login leaves the session in neither room. `NotInRoom` refers to `from`. `login` is the
    /// login's settings and grant, or the code the rules refused the login half with (then
    /// `from` is still left, and the answer is [`Refusal::Login`]).
    Switch {
        /// The room left.
        from: String,
        /// The room entered.
        to: String,
        /// The login's settings and what the token allows in `to`, or why the rules refused it.
        login: Result<(RoomConfig, Grant), ErrorCode>,
    },
    /// Publish a stream: `stream_add`. Republishing the same stream in the same room is a no-op
    /// answered without `seq`. Refused with `NotInRoom`, `NoPublishPrivilege`, `StreamIdTaken`.
    Publish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// Its extra info.
        extra: String,
    },
    /// Stop a stream: `stream_delete` reason 1. Refused with `NotInRoom`, `NotPublishing`.
    Unpublish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
    },
    /// Change a stream's extra info: `stream_extra`. Refused with `NotInRoom`, `NotPublishing`.
    StreamExtra {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// The new extra info.
        extra: String,
    },
    /// Set a room extra info key: `room_extra`. Refused with `NotInRoom`, `TooManyExtraKeys`
    /// (an eleventh key).
    RoomExtra {
        /// The room.
        room: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The wall time it is set at.
        time_ms: u64,
    },
    /// A broadcast or barrage: its `message_id` is unique within the room's life. Refused with
    /// `NotInRoom`, `RoomMessageRate` (beyond `room_message_rate` per second in the room).
    Message {
        /// The room.
        room: String,
        /// Barrage rather than broadcast.
        barrage: bool,
        /// The text.
        message: String,
        /// The wall time it is sent at.
        time_ms: u64,
    },
    /// A custom command on the `direct` channel of the members named in `to` (everyone else when
    /// empty; unknown ids ignored). Refused with `NotInRoom`.
    Command {
        /// The room.
        room: String,
        /// Recipients' user ids.
        to: Vec<String>,
        /// The text.
        command: String,
        /// The wall time it is sent at.
        time_ms: u64,
    },
    /// A renewed token: the rooms it covers (one, or all when `room` is None) get its grant and
    /// their expiry warning reset.
    Renew {
        /// The token's `room_id` claim.
        room: Option<String>,
        /// What it grants.
        grant: Grant,
        /// Its claims: the session's token from now on when `room` is None.
        claims: Claims,
    },
    /// The rules refused the request before it reached the engine: only remembered, so that a
    /// repeat gets the same answer.
    Refused {
        /// The code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
}

/// Why the engine did not apply an operation. The rules turn it into an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session does not exist (anymore).
    NoSession,
    /// The session is not in the room.
    NotInRoom,
    /// The session is already in the room.
    AlreadyInRoom,
    /// The session is in `max_rooms` rooms.
    TooManyRooms,
    /// The room has `max_members` members.
    RoomFull,
    /// Someone else publishes that stream id in the app.
    StreamIdTaken,
    /// The token forbids publishing.
    NoPublishPrivilege,
    /// The session does not publish that stream in that room.
    NotPublishing,
    /// The room has the most extra info keys.
    TooManyExtraKeys,
    /// The room's broadcast / barrage rate is exceeded.
    RoomMessageRate,
    /// The login half of a switch was refused by the rules with this code.
    Login(ErrorCode),
}

impl Refusal {
    /// The error code and message a refusal is answered with (§8, §9.2): the one place that
    /// decides it. `leaving` is true for `logout` and the `from` of `switch`, whose "not in the
    /// room" is 1002002; every other request's is 1009005.
    pub fn error(self, leaving: bool) -> (ErrorCode, &'static str) {
        let code = match self {
            Refusal::NoSession => return (ErrorCode::ResumeFailed, "the session is gone"),
            Refusal::NotInRoom if leaving => ErrorCode::NotInRoomLogout,
            Refusal::NotInRoom => ErrorCode::NotInRoom,
            Refusal::AlreadyInRoom => return (ErrorCode::TooManyRooms, "already in this room"),
            Refusal::TooManyRooms => return (ErrorCode::TooManyRooms, "already in the maximum number of rooms"),
            Refusal::RoomFull => ErrorCode::RoomFull,
            Refusal::StreamIdTaken => ErrorCode::StreamIdTaken,
            Refusal::NoPublishPrivilege => ErrorCode::NoPublishPrivilege,
            Refusal::NotPublishing => {
                return (ErrorCode::InvalidField, "not publishing this stream in this room");
            }
            Refusal::TooManyExtraKeys => ErrorCode::RoomExtraTooManyKeys,
            Refusal::RoomMessageRate => ErrorCode::MessagesTooFrequent,
            Refusal::Login(code) => code,
        };
        (code, code.message())
    }
}

/// What an applied operation produced, for its `ok`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    /// The seqs of the events it produced (for a login: each channel's last seq).
    pub seq: Seqs,
    /// The message id of a broadcast or barrage.
    pub message_id: Option<String>,
    /// The room's state, for a login or switch.
    pub state: Option<RoomState>,
    /// The state's `users`, already encoded as a JSON array (then `state.users` is empty): a
    /// batch of logins to a big room encodes each member once, not once per login's `ok`
    /// ([`crate::rules::answer_frame`] puts it in place).
    pub users_json: Option<String>,
}

/// The answer to a request, as the engine remembers it for repeats.
#[derive(Debug, Clone, PartialEq)]
pub enum Recalled {
    /// It was applied with these seqs and message id.
    Done {
        /// The seqs of its events.
        seq: Seqs,
        /// Its message id.
        message_id: Option<String>,
    },
    /// It was a login or switch that entered a room: a repeat gets the room's state as it is
    /// *now* (what a client needs after a resume), or the code of why the session is no longer
    /// in it.
    LoggedIn(Result<(RoomState, Seqs), ErrorCode>),
    /// It was refused by the engine.
    Refusal(Refusal),
    /// It was refused by the rules with this code and message.
    Refused(ErrorCode, String),
}

/// The engine's answer to [`Engine::request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Executed now.
    Fresh(Result<Done, Refusal>),
    /// A repeat of a remembered request, not executed again.
    Repeat(Recalled),
    /// A repeat too old to be remembered.
    Forgotten,
    /// The engine could not be reached; nothing is known to have been applied (answered with
    /// 1000004; the client retries with the same id, which the engine then executes or recalls).
    Unavailable,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now.
    Applied,
    /// Answered without being applied (refused, or recalled).
    Answered,
    /// The engine could not be reached (answered with 1000004).
    Unavailable,
}

/// The engine could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A new session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its app.
    pub app: u32,
    /// Its user.
    pub user: User,
    /// The claims of the token of its `hello`.
    pub claims: Claims,
}

/// A started session.
#[derive(Debug, Clone)]
pub struct Opened {
    /// Its key.
    pub key: SessionKey,
    /// Its public id (`welcome.session`).
    pub public_id: String,
    /// Its first resume token.
    pub resume_token: String,
}

/// A resumed session: what the node serving it now needs to know of it.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// Its key.
    pub key: SessionKey,
    /// Its app.
    pub app: u32,
    /// Its user.
    pub user: User,
    /// The claims the session's token gives (for logins without a token of their own).
    pub claims: Claims,
    /// The last request id it used.
    pub last_request: u64,
    /// The new resume token its `resumed` carried (to [`Engine::confirm`] at the client's next
    /// frame).
    pub resume_token: String,
}

/// Why a resume was not honoured (answered with 1002057 and this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRefused(pub &'static str);

/// Counts of what an engine holds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stats {
    /// Sessions, offline ones included.
    pub sessions: usize,
    /// Rooms.
    pub rooms: usize,
    /// Streams.
    pub streams: usize,
}

/// A room as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// One page of a room's members ([`Engine::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    /// The members on it, by user id.
    pub users: Vec<User>,
    /// How many members the room has.
    pub count: u32,
    /// The cursor of the next page; "" when this page is the last.
    pub next: String,
}

/// Which membership of a room a join or a departure is: the room's life (a hash of its epoch)
/// and the join's ordinal in that life. The Redis engine hears a departure twice on the node
/// whose request made it (the script's answer, then pub/sub); a copy that comes late, after
/// the same session entered the room again, must not end the newer membership. The memory
/// engine changes its hub under its own lock and passes the default (every departure applies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Joining {
    /// The room's life: a hash of its epoch.
    pub life: u64,
    /// The join's ordinal in that life.
    pub ord: u64,
}

impl Joining {
    /// The membership of the `ord`-th join of the room's life `epoch`.
    pub fn of(epoch: &str, ord: u64) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        epoch.hash(&mut h);
        Self { life: h.finish(), ord }
    }

    /// Whether a departure of `self` ends `current` (the membership a node knows): every
    /// departure does but one of an earlier join of the same life, heard late.
    pub fn ends(&self, current: &Joining) -> bool {
        self.life != current.life || self.ord >= current.ord
    }

    /// Whether this join is of a membership that `departure` (heard already) ended: the same
    /// life, not a later join. Never for the memory engine's default, which names none.
    pub fn ended_by(&self, departure: &Joining) -> bool {
        *self != Joining::default() && self.life == departure.life && self.ord <= departure.ord
    }
}

/// The node-local side that an engine publishes to: this node's connections and the rooms its
/// sessions are in. Calls for a session or room this node does not serve are ignored.
pub trait Deliver: Send + Sync + 'static {
    /// Attach this node's connection `conn` to session `key` (closing any older one of the
    /// session with 1001). False when `conn` is gone already.
    fn bind(&self, key: SessionKey, conn: ConnId) -> bool;
    /// An event of a room channel, to every local member but `author` (on the `users` channel
    /// only to members with `user_status_notify`); `ch` None is `online` (no seq).
    fn room_event(
        &self,
        app: u32,
        room: &str,
        ch: Option<Channel>,
        seq: u64,
        frame: &Frame,
        author: Option<SessionKey>,
    );
    /// A frame for one session (`kicked`, `token_will_expire`, a direct event, a replay).
    fn to_session(&self, key: SessionKey, frame: Frame);
    /// A frame of a resume's replay for one session (`resumed`, replayed events, snapshots,
    /// `resume_done`): like [`Deliver::to_session`], but not counted toward the connection's
    /// outbound limit, so that a gap larger than the limit can still be caught up.
    fn replay(&self, key: SessionKey, frame: Frame) {
        self.to_session(key, frame);
    }
    /// Session `key` is now in `room`, having every event up to `at`.
    fn joined(&self, app: u32, room: &str, key: SessionKey, notify: bool, at: Seqs, joining: Joining);
    /// Session `key` is no longer in `room` (only if `ended` [`Joining::ends`] the one it has).
    fn left(&self, app: u32, room: &str, key: SessionKey, ended: Joining);
    /// Close the session's connection with `code`: after what is queued, or at once (`abort`).
    /// With `conn`, only if that is still the session's connection.
    fn close(&self, key: SessionKey, conn: Option<ConnId>, code: u16, reason: &str, abort: bool);
    /// [`Deliver::bind`], then `frames` (a replay, see [`Deliver::replay`]) queued on the
    /// connection before any other frame.
    fn bind_with(&self, key: SessionKey, conn: ConnId, frames: Vec<Frame>) -> bool {
        let bound = self.bind(key, conn);
        for f in frames {
            self.replay(key, f);
        }
        bound
    }
    /// The rooms (app, room) session `key` is in on this node.
    fn rooms_of(&self, _key: SessionKey) -> Vec<(u32, String)> {
        Vec::new()
    }
    /// Whether a session of this node is in `room`.
    fn has_members(&self, app: u32, room: &str) -> bool;
    /// Send session `key` its own events in `room` too (`on`), or stop: while the engine cannot
    /// tell whether a request of the session was applied.
    fn echo_own(&self, _key: SessionKey, _app: u32, _room: &str, _on: bool) {}
    /// Close every connection of `app` at once with 4010 (the sessions stay). Returns how many.
    fn drop_connections(&self, app: u32) -> usize;
    /// The sessions (app, key) of this node that have a connection now.
    fn connected(&self) -> Vec<(u32, SessionKey)> {
        Vec::new()
    }
}

/// All shared state of a deployment. See the module docs.
pub trait Engine: Send + Sync + 'static {
    /// Start a session; `conn` is bound to it.
    fn open(
        &self,
        s: NewSession,
        conn: ConnId,
        now: Instant,
    ) -> impl Future<Output = Result<Opened, Unavailable>> + Send;

    /// Resume a session on `conn`: rotate its resume token, put an offline session back in the
    /// rooms it was removed from, and — bound to `conn` in one step with it — send `resumed`,
    /// each room's replay or snapshot, the missed direct events and `resume_done` (§6).
    fn resume(
        &self,
        session: &str,
        resume_token: &str,
        ack: &Ack,
        conn: ConnId,
        now: Instant,
    ) -> impl Future<Output = Result<Result<Resumed, ResumeRefused>, Unavailable>> + Send;

    /// The client of `key` has shown that it holds `token`, the one its last `resumed` carried
    /// (the first frame on the resumed connection): the token that resume used is void from now
    /// on (§9.3, "A resume can be retried"). Nothing when `token` is no longer the session's.
    fn confirm(&self, key: SessionKey, app: u32, token: &str, now: Instant) -> impl Future<Output = ()> + Send;

    /// A frame of `key` arrived: it is alive (and, with `ack`, has heard of what it acks).
    fn touch(&self, key: SessionKey, app: u32, ack: Option<&Ack>, now: Instant) -> impl Future<Output = ()> + Send;

    /// Execute (or recall) a request of a session, and send the session `answer(reply)` in
    /// order with the events: after every event the answer's `seq` counts as received, before
    /// any later one. A request counts as life, as [`Engine::touch`] does.
    fn request<A>(&self, req: Req, op: Op, now: Instant, answer: A) -> impl Future<Output = Outcome> + Send
    where
        A: FnOnce(Reply) -> Frame + Send + 'static;

    /// `bye`: out of every room, not resumable.
    fn bye(&self, key: SessionKey, app: u32, now: Instant) -> impl Future<Output = ()> + Send;

    /// Everything that happens with time: sessions going offline at the session timeout, the
    /// end of retention, token warnings and expiry, the `online` count, log trimming.
    fn tick(&self, now: Instant) -> impl Future<Output = ()> + Send;

    /// Counts, of every app.
    fn stats(&self) -> impl Future<Output = Result<Stats, Unavailable>> + Send;

    /// The rooms of `app`, by room id.
    fn rooms(&self, app: u32) -> impl Future<Output = Result<Vec<RoomInfo>, Unavailable>> + Send;

    /// One room of `app`: None when there is no such room.
    fn room(&self, app: u32, room: &str) -> impl Future<Output = Result<Option<RoomInfo>, Unavailable>> + Send;

    /// One page of `room`'s members for session `key` (`members`, protocol §9.9), or for the
    /// admin API (`key` None): up to `limit` members whose user ids sort after `cursor`
    /// (bytes), the room's member count, and the cursor of the next page ("" when none). None
    /// when the session is not in the room (admin: when there is no such room).
    fn members(
        &self,
        app: u32,
        key: Option<SessionKey>,
        room: &str,
        cursor: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Option<MembersPage>, Unavailable>> + Send;

    /// Kick `user` out of `room` with 1002055 and `reason`. False when no such member.
    fn kick(
        &self,
        app: u32,
        room: &str,
        user: &str,
        reason: &str,
        now: Instant,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;

    /// Kick everyone out of `room` with 1002055 and `reason`. False when no such room.
    fn close_room(
        &self,
        app: u32,
        room: &str,
        reason: &str,
        now: Instant,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;
}
