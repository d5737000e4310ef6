//! What the server sends: [`ServerFrame`] and the frames it tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

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
    /// The others in the room (absent when `user_status_notify` is false); in a large room
    /// (§9.10) only the first page of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<User>>,
    /// In a large room (§9.10): the `members` cursor of the rest of the list ("" when `users`
    /// held them all); absent in a room that is not large, whose `users` is the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_next: Option<String>,
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
    /// For login / switch in a large room (§9.10): the `members` cursor of the rest of `users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_next: Option<String>,
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
    /// For members: how many members the room has now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// For members: the `cursor` of the next page; "" when this page is the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl OkFrame {
    /// The room state of a login / switch `ok` (None for other requests).
    pub fn room_state(&self) -> Option<RoomState> {
        Some(RoomState {
            users: self.users.clone(),
            users_next: self.users_next.clone(),
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
            users_next: state.users_next,
            streams: Some(state.streams),
            extra: Some(state.extra),
            online: Some(state.online),
            room_session: Some(state.room_session),
            seq,
            message_id: None,
            count: None,
            next: None,
        }
    }

    /// The `ok` of `members`: one page (`users`, the caller too when on it), the room's member
    /// count and the next page's cursor.
    pub fn members(id: u64, room: String, users: Vec<User>, count: u32, next: String) -> OkFrame {
        OkFrame { id, room: Some(room), users: Some(users), count: Some(count), next: Some(next), ..OkFrame::default() }
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
