//! What a client sends: [`ClientFrame`] and the frames it tags.

use serde::{Deserialize, Serialize};

use super::*;

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

/// `members`: one page of a room's members, in the order of their user ids (bytes), after
/// `cursor` (the `next` of the previous page; "" for the first). A member who is in the room
/// through a whole walk is on exactly one page of it, whoever comes and goes meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Members {
    /// Request id.
    pub id: u64,
    /// The room (the session must be in it).
    pub room: String,
    /// Where the page starts: "" for the first page, else the previous page's `next`.
    #[serde(default)]
    pub cursor: String,
    /// At most this many members, 1 to [`MAX_MEMBERS_PAGE`] (default [`DEFAULT_MEMBERS_PAGE`]).
    #[serde(default = "default_members_page")]
    pub limit: u32,
}

/// The largest page of `members`.
pub const MAX_MEMBERS_PAGE: u32 = 500;
/// The page of `members` when its `limit` is left out.
pub const DEFAULT_MEMBERS_PAGE: u32 = 100;

fn default_members_page() -> u32 {
    DEFAULT_MEMBERS_PAGE
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
    /// One page of a room's members.
    Members(Members),
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
            ClientFrame::Members(f) => Some(f.id),
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
            ClientFrame::Members(_) => "members",
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
    "members",
];
