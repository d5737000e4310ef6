//! Every frame of the protocol as a typed value.
//!
//! [`ClientFrame`] is what a client sends, [`ServerFrame`] what the server sends; both are tagged
//! by the JSON field `t`. Optional fields are omitted when empty, and unknown fields are ignored
//! on reading (protocol §1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A user as the protocol carries it: `{"id","name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct User {
    /// The user id (§2).
    pub id: String,
    /// The display name; empty means "show the id".
    #[serde(default)]
    pub name: String,
}

/// A published stream: `{"id","user","extra"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The stream id, unique within an app while published.
    pub id: String,
    /// The publisher.
    pub user: User,
    /// The stream's extra info.
    #[serde(default)]
    pub extra: String,
}

/// One key of a room's extra info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomExtraItem {
    /// The key (at most 128 bytes).
    pub key: String,
    /// The value (at most 1024 bytes).
    pub value: String,
    /// Who set it last.
    pub user: User,
    /// When it was set, server time in ms.
    pub time_ms: u64,
}

/// Login settings sent with `login` and `switch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// Maximum members, 0 = no limit; honoured from the user who creates the room.
    #[serde(default)]
    pub max_members: u32,
    /// Whether this session gets the room's `users` channel.
    #[serde(default = "default_true")]
    pub user_status_notify: bool,
}

fn default_true() -> bool {
    true
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig { max_members: 0, user_status_notify: true }
    }
}

/// The three kinds of channel (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A room's stream, extra-info and message events.
    Room,
    /// A room's user events.
    Users,
    /// A session's own `command` events.
    Direct,
}

/// Channel positions: in an `ok` the seq numbers of the events a request produced (or, for a
/// login, each channel's last seq), in a snapshot each channel's last seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Seqs {
    /// The room channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<u64>,
    /// The users channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// The session's direct channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<u64>,
}

impl Seqs {
    /// True when no channel is named.
    pub fn is_empty(&self) -> bool {
        self.room.is_none() && self.users.is_none() && self.direct.is_none()
    }
}

/// What a client has applied of one room: its epoch and the last seq of each channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomAck {
    /// The room's `room_session` the numbers belong to.
    #[serde(default)]
    pub epoch: String,
    /// Last applied seq of the room channel.
    #[serde(default)]
    pub room: u64,
    /// Last applied seq of the users channel.
    #[serde(default)]
    pub users: u64,
}

/// The `ack` of `ping` and `resume` (§6).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ack {
    /// Last applied seq of the session's direct channel.
    #[serde(default)]
    pub direct: u64,
    /// Per room, by room id.
    #[serde(default)]
    pub rooms: BTreeMap<String, RoomAck>,
}

// ---------------------------------------------------------------- client → server

/// `hello`: the first frame of a new session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version, 1.
    pub v: u32,
    /// The app.
    pub app_id: u32,
    /// Who logs in.
    pub user: User,
    /// The HS256 token.
    pub token: String,
}

/// `resume`: the first frame of a new connection for an existing session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// Protocol version, 1.
    pub v: u32,
    /// The session id from `welcome`.
    pub session: String,
    /// The latest resume token.
    pub resume_token: String,
    /// What the client has applied.
    #[serde(default)]
    pub ack: Ack,
}

/// `ping`: heartbeat with acknowledgements.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ping {
    /// What the client has applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

/// `login` to a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// Login settings.
    #[serde(default)]
    pub config: RoomConfig,
    /// A token for this room, replacing the `hello` token for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `logout` of a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logout {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
}

/// `switch`: logout of `from` and login to `to` in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// Request id.
    pub id: u64,
    /// The room to leave.
    pub from: String,
    /// The room to enter.
    pub to: String,
    /// Login settings for `to`.
    #[serde(default)]
    pub config: RoomConfig,
    /// A token for `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `publish` a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The stream id.
    pub stream: String,
    /// The stream's extra info, as the others see it.
    #[serde(default)]
    pub extra: String,
}

/// `unpublish` a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unpublish {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The stream id.
    pub stream: String,
}

/// `stream_extra`: set a stream's extra info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamExtra {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The stream id.
    pub stream: String,
    /// The new extra info.
    #[serde(default)]
    pub extra: String,
}

/// `room_extra`: set one key of the room's extra info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRoomExtra {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// `broadcast` or `barrage`: a room message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// The message text (at most 1024 bytes).
    pub message: String,
}

/// `command`: a custom command to some or all of the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendCommand {
    /// Request id.
    pub id: u64,
    /// The room.
    pub room: String,
    /// Recipients by user id; empty means everyone else in the room.
    #[serde(default)]
    pub to: Vec<String>,
    /// The command text (at most 1024 bytes).
    pub command: String,
}

/// `renew_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewToken {
    /// Request id.
    pub id: u64,
    /// The new token.
    pub token: String,
}

/// `bye`: end the session.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Bye {}

/// Every frame a client sends, tagged by `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start a session.
    Hello(Hello),
    /// Resume a session.
    Resume(Resume),
    /// Heartbeat.
    Ping(Ping),
    /// End the session.
    Bye(Bye),
    /// Log in to a room.
    Login(Login),
    /// Log out of a room.
    Logout(Logout),
    /// Switch rooms.
    Switch(Switch),
    /// Publish a stream.
    Publish(Publish),
    /// Stop publishing a stream.
    Unpublish(Unpublish),
    /// Set a stream's extra info.
    StreamExtra(StreamExtra),
    /// Set a room extra info key.
    RoomExtra(SetRoomExtra),
    /// Broadcast message.
    Broadcast(SendMessage),
    /// Barrage message.
    Barrage(SendMessage),
    /// Custom command.
    Command(SendCommand),
    /// Renew the session's token.
    RenewToken(RenewToken),
}

impl ClientFrame {
    /// The request id, for frames that are requests.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientFrame::Hello(_) | ClientFrame::Resume(_) | ClientFrame::Ping(_) | ClientFrame::Bye(_) => None,
            ClientFrame::Login(f) => Some(f.id),
            ClientFrame::Logout(f) => Some(f.id),
            ClientFrame::Switch(f) => Some(f.id),
            ClientFrame::Publish(f) => Some(f.id),
            ClientFrame::Unpublish(f) => Some(f.id),
            ClientFrame::StreamExtra(f) => Some(f.id),
            ClientFrame::RoomExtra(f) => Some(f.id),
            ClientFrame::Broadcast(f) | ClientFrame::Barrage(f) => Some(f.id),
            ClientFrame::Command(f) => Some(f.id),
            ClientFrame::RenewToken(f) => Some(f.id),
        }
    }

    /// The `t` of this frame.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "hello",
            ClientFrame::Resume(_) => "resume",
            ClientFrame::Ping(_) => "ping",
            ClientFrame::Bye(_) => "bye",
            ClientFrame::Login(_) => "login",
            ClientFrame::Logout(_) => "logout",
            ClientFrame::Switch(_) => "switch",
            ClientFrame::Publish(_) => "publish",
            ClientFrame::Unpublish(_) => "unpublish",
            ClientFrame::StreamExtra(_) => "stream_extra",
            ClientFrame::RoomExtra(_) => "room_extra",
            ClientFrame::Broadcast(_) => "broadcast",
            ClientFrame::Barrage(_) => "barrage",
            ClientFrame::Command(_) => "command",
            ClientFrame::RenewToken(_) => "renew_token",
        }
    }

    /// Encode as the JSON text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialize")
    }
}

/// The `t` values a client may send.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "hello",
    "resume",
    "ping",
    "bye",
    "login",
    "logout",
    "switch",
    "publish",
    "unpublish",
    "stream_extra",
    "room_extra",
    "broadcast",
    "barrage",
    "command",
    "renew_token",
];

// ---------------------------------------------------------------- server → client

/// `welcome`: answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The session id.
    pub session: String,
    /// The token to present in `resume`.
    pub resume_token: String,
    /// How often the client pings.
    pub heartbeat_ms: u64,
    /// Silence after which the session goes offline.
    pub session_timeout_ms: u64,
    /// How long an offline session can still resume.
    pub retention_ms: u64,
    /// Server wall time.
    pub server_time_ms: u64,
}

/// `resumed`: answer to `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resumed {
    /// The session id.
    pub session: String,
    /// The new resume token (the old one is no longer valid).
    pub resume_token: String,
    /// What became of each room the session was in: on the wire `"replay"`, `"snapshot"` or
    /// `"kicked:<code>"` (a room the server no longer has the session in is left out).
    #[serde(default)]
    pub rooms: BTreeMap<String, ResumeOutcome>,
    /// Heartbeat interval (a Parlor addition, same as in `welcome`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// Server wall time (a Parlor addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time_ms: Option<u64>,
}

/// What a resume did with one room (a value of `resumed.rooms`, protocol §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeOutcome {
    /// `"replay"`: the room's missed events follow, then `resume_done`.
    Replay,
    /// `"snapshot"`: the missed events are gone; a `snapshot` of the room follows instead.
    Snapshot,
    /// `"kicked:<code>"`: the session was put out of the room while away, for this reason (§8).
    Kicked(u32),
}

impl ResumeOutcome {
    /// The exact text on the wire: `replay`, `snapshot` or `kicked:<code>`.
    pub fn to_wire(self) -> String {
        match self {
            ResumeOutcome::Replay => "replay".to_string(),
            ResumeOutcome::Snapshot => "snapshot".to_string(),
            ResumeOutcome::Kicked(code) => format!("kicked:{code}"),
        }
    }

    /// Read the wire text; anything but `replay`, `snapshot` or `kicked:` followed by a decimal
    /// code is refused (the whole `resumed` frame is then an invalid frame).
    pub fn from_wire(text: &str) -> Option<ResumeOutcome> {
        match text {
            "replay" => Some(ResumeOutcome::Replay),
            "snapshot" => Some(ResumeOutcome::Snapshot),
            _ => {
                let code = text.strip_prefix("kicked:")?;
                if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                code.parse().ok().map(ResumeOutcome::Kicked)
            }
        }
    }
}

impl std::str::FromStr for ResumeOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResumeOutcome::from_wire(s).ok_or_else(|| format!("{s:?} is not replay, snapshot or kicked:<code>"))
    }
}

impl Serialize for ResumeOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for ResumeOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Server wall time.
    pub server_time_ms: u64,
}

/// The room state carried by a login `ok` and by `snapshot`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RoomState {
    /// The others in the room (absent when `user_status_notify` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<User>>,
    /// Published streams.
    #[serde(default)]
    pub streams: Vec<Stream>,
    /// Room extra info.
    #[serde(default)]
    pub extra: Vec<RoomExtraItem>,
    /// Everyone in the room, the caller too.
    #[serde(default)]
    pub online: u32,
    /// The id of this room's life (the `epoch` of acks).
    #[serde(default)]
    pub room_session: String,
}

/// `ok`: the answer to a request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OkFrame {
    /// The request id.
    pub id: u64,
    /// The room the request was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// For login / switch: the others in the room (absent when `user_status_notify` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<User>>,
    /// For login / switch: published streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<Stream>>,
    /// For login / switch: room extra info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Vec<RoomExtraItem>>,
    /// For login / switch: everyone in the room, the caller too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<u32>,
    /// For login / switch: the id of this room's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_session: Option<String>,
    /// The channels and numbers of the events this request produced (for a login: each
    /// channel's last seq).
    #[serde(default, skip_serializing_if = "Seqs::is_empty")]
    pub seq: Seqs,
    /// For broadcast / barrage: the message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl OkFrame {
    /// The room state of a login / switch `ok` (None for other requests).
    pub fn room_state(&self) -> Option<RoomState> {
        Some(RoomState {
            users: self.users.clone(),
            streams: self.streams.clone().unwrap_or_default(),
            extra: self.extra.clone().unwrap_or_default(),
            online: self.online.unwrap_or(0),
            room_session: self.room_session.clone()?,
        })
    }

    /// An `ok` for a login / switch carrying `state`.
    pub fn with_state(id: u64, room: String, state: RoomState, seq: Seqs) -> OkFrame {
        OkFrame {
            id,
            room: Some(room),
            users: state.users,
            streams: Some(state.streams),
            extra: Some(state.extra),
            online: Some(state.online),
            room_session: Some(state.room_session),
            seq,
            message_id: None,
        }
    }
}

/// `error`: a request failed, or the connection is about to close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The request id, when the error answers a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The code (§8).
    pub code: u32,
    /// What went wrong, for people.
    #[serde(default)]
    pub message: String,
}

/// `kicked`: the session is out of a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kicked {
    /// The room.
    pub room: String,
    /// Why (§8).
    pub code: u32,
    /// For admin kicks: `{"reason": "..."}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_data: Option<serde_json::Value>,
}

/// What happened, by `kind` (§5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// Users entered (users channel).
    UserAdd {
        /// The users concerned, each `{id, name}`.
        users: Vec<User>,
    },
    /// Users left (users channel).
    UserDelete {
        /// The users concerned, each `{id, name}`.
        users: Vec<User>,
    },
    /// Streams published (room channel).
    StreamAdd {
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// Streams gone (room channel).
    StreamDelete {
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
        /// 1 stopped, 2 heartbeat timeout, 3 same user logged in elsewhere, 4 kicked, 5 logged out.
        reason: u32,
    },
    /// Stream extra info changed (room channel).
    StreamExtra {
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// A room extra info key changed (room channel).
    RoomExtra {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Who set it.
        user: User,
        /// When it happened: server wall time, ms since the Unix epoch.
        time_ms: u64,
    },
    /// Broadcast message (room channel).
    Broadcast {
        /// The id the server gave the message.
        message_id: String,
        /// Who sent it.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// When it happened: server wall time, ms since the Unix epoch.
        time_ms: u64,
    },
    /// Barrage message (room channel).
    Barrage {
        /// The id the server gave the message.
        message_id: String,
        /// Who sent it.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// When it happened: server wall time, ms since the Unix epoch.
        time_ms: u64,
    },
    /// Custom command (direct channel; `room` is on the event).
    Command {
        /// Who sent it.
        from: User,
        /// The command text (at most 1024 bytes).
        command: String,
        /// When it happened: server wall time, ms since the Unix epoch.
        time_ms: u64,
    },
    /// Online count (no channel, no seq).
    Online {
        /// Everyone in the room.
        count: u32,
    },
}

/// Reasons of `stream_delete`.
pub mod stream_delete_reason {
    /// The publisher stopped it.
    pub const STOPPED: u32 = 1;
    /// The publisher's session timed out.
    pub const HEARTBEAT_TIMEOUT: u32 = 2;
    /// The same user logged in elsewhere.
    pub const DUPLICATE_LOGIN: u32 = 3;
    /// The publisher was kicked.
    pub const KICKED: u32 = 4;
    /// The publisher logged out.
    pub const LOGGED_OUT: u32 = 5;
}

/// `event`: a change in a room or a direct command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The room.
    pub room: String,
    /// The channel (absent for `online`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ch: Option<Channel>,
    /// The seq on that channel (absent for `online`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// `snapshot`: a room's state after a resume whose gap is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The room.
    pub room: String,
    /// Its state, as in a login `ok`.
    #[serde(flatten)]
    pub state: RoomState,
    /// Each channel's last seq.
    #[serde(default)]
    pub seq: Seqs,
    /// True if broadcasts or barrages were lost.
    #[serde(default)]
    pub missed_messages: bool,
}

/// `token_will_expire`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenWillExpire {
    /// The room relying on the token.
    pub room: String,
    /// Seconds until the token expires.
    pub remaining_s: u64,
}

/// `resume_done`: replay finished.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResumeDone {}

/// Every frame the server sends, tagged by `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `hello`.
    Welcome(Welcome),
    /// Answer to `resume`.
    Resumed(Resumed),
    /// Answer to `ping`.
    Pong(Pong),
    /// A request succeeded.
    Ok(OkFrame),
    /// A request failed.
    Error(ErrorFrame),
    /// Out of a room.
    Kicked(Kicked),
    /// A room or direct event.
    Event(Event),
    /// A room's state after a resume.
    Snapshot(Snapshot),
    /// Replay finished.
    ResumeDone(ResumeDone),
    /// A token a room relies on expires soon.
    TokenWillExpire(TokenWillExpire),
}

impl ServerFrame {
    /// Encode as the JSON text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }

    /// An `error` frame for `code`, with the code's own message.
    pub fn error(id: Option<u64>, code: crate::ErrorCode) -> ServerFrame {
        ServerFrame::Error(ErrorFrame { id, code: code.code(), message: code.message().to_string() })
    }

    /// An `error` frame for `code` with a message of its own.
    pub fn error_with(id: Option<u64>, code: crate::ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error(ErrorFrame { id, code: code.code(), message: message.into() })
    }
}
