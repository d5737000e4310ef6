//! What the core tells the app: [`AppEvent`], with the names and JSON shape of the Web SDK's
//! events (`roomStateChanged`, `roomUserUpdate`, …; fields camelCase), so that the shared
//! scenario files under `tests/scenarios/` describe both SDKs.

use parlor_protocol::{ErrorCode, RoomExtraItem, Stream, User};
use serde::{Deserialize, Serialize};

/// The `reason` of `roomStateChanged` (protocol §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoomStateReason {
    /// `login_room` or `switch_room` called.
    Logining,
    /// Login answered `ok`.
    Logined,
    /// Login answered `error`, or timed out (1002031).
    LoginFailed,
    /// The connection of a logged-in room was lost (1002051).
    Reconnecting,
    /// The room is back, after a resume or a fresh login.
    Reconnected,
    /// No success within the reconnect window, or the server refused (1002053). Terminal.
    ReconnectFailed,
    /// `kicked` received (the kick's code).
    KickOut,
    /// Logged out; also the initial state.
    Logout,
    /// Logout of a room the client is not in (1002002).
    LogoutFailed,
}

impl RoomStateReason {
    /// The wire spelling, e.g. `"KICK_OUT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStateReason::Logining => "LOGINING",
            RoomStateReason::Logined => "LOGINED",
            RoomStateReason::LoginFailed => "LOGIN_FAILED",
            RoomStateReason::Reconnecting => "RECONNECTING",
            RoomStateReason::Reconnected => "RECONNECTED",
            RoomStateReason::ReconnectFailed => "RECONNECT_FAILED",
            RoomStateReason::KickOut => "KICK_OUT",
            RoomStateReason::Logout => "LOGOUT",
            RoomStateReason::LogoutFailed => "LOGOUT_FAILED",
        }
    }

    /// True for the states in which the room is usable (`LOGINED`, `RECONNECTED`).
    pub fn is_in_room(self) -> bool {
        matches!(self, RoomStateReason::Logined | RoomStateReason::Reconnected)
    }
}

/// `ADD` or `DELETE` in user and stream updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateType {
    /// Entered / published.
    Add,
    /// Left / stopped.
    Delete,
}

/// One key of a room's extra info as the app sees it (`timeMs` camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraInfo {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Who set it last.
    pub user: User,
    /// When, server time in ms.
    pub time_ms: u64,
}

impl From<&RoomExtraItem> for ExtraInfo {
    fn from(i: &RoomExtraItem) -> Self {
        ExtraInfo { key: i.key.clone(), value: i.value.clone(), user: i.user.clone(), time_ms: i.time_ms }
    }
}

/// An event for the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AppEvent {
    /// A room's state changed (§7).
    #[serde(rename = "roomStateChanged", rename_all = "camelCase")]
    RoomStateChanged {
        /// The room.
        room: String,
        /// The new state.
        reason: RoomStateReason,
        /// None for a change that is no error (LOGINING, LOGINED, RECONNECTED, LOGOUT); else
        /// its code (the table of §7, or the server's code for LOGIN_FAILED, KICK_OUT, …). The
        /// scenario files and the Web SDK spell None as 0.
        #[serde(with = "wire_code")]
        error_code: Option<ErrorCode>,
        /// `{"room_session_id": ...}` for LOGINED, the kick's `extended_data` for KICK_OUT,
        /// otherwise `{}`.
        extended_data: serde_json::Value,
    },
    /// Other users entered or left.
    #[serde(rename = "roomUserUpdate", rename_all = "camelCase")]
    RoomUserUpdate {
        /// The room.
        room: String,
        /// Whether they were added or deleted.
        update_type: UpdateType,
        /// The users concerned, each `{id, name}`.
        users: Vec<User>,
    },
    /// Other users' streams were published or stopped.
    #[serde(rename = "roomStreamUpdate", rename_all = "camelCase")]
    RoomStreamUpdate {
        /// The room.
        room: String,
        /// Whether they were added or deleted.
        update_type: UpdateType,
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// Other users' streams' extra info changed.
    #[serde(rename = "roomStreamExtraInfoUpdate", rename_all = "camelCase")]
    RoomStreamExtraInfoUpdate {
        /// The room.
        room: String,
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// Room extra info changed.
    #[serde(rename = "roomExtraInfoUpdate", rename_all = "camelCase")]
    RoomExtraInfoUpdate {
        /// The room.
        room: String,
        /// The stream's extra info, as the others see it.
        extra: Vec<ExtraInfo>,
    },
    /// A large room's member list changed more than a batch lists (or a snapshot gave only its
    /// first page): page it again with `members` if the app shows it (protocol §9.10).
    #[serde(rename = "roomUserListChanged", rename_all = "camelCase")]
    RoomUserListChanged {
        /// The room.
        room: String,
        /// Everyone in the room, the client too.
        count: u32,
    },
    /// The number of people in the room changed.
    #[serde(rename = "roomOnlineUserCountUpdate", rename_all = "camelCase")]
    RoomOnlineUserCountUpdate {
        /// The room.
        room: String,
        /// Everyone in the room, the client too.
        count: u32,
    },
    /// The token a room relies on expires soon: call `renew_token`.
    #[serde(rename = "roomTokenWillExpire", rename_all = "camelCase")]
    RoomTokenWillExpire {
        /// The room.
        room: String,
        /// Seconds until the token expires.
        remaining_s: u64,
    },
    /// A broadcast message from another user.
    #[serde(rename = "IMRecvBroadcastMessage", rename_all = "camelCase")]
    BroadcastMessage {
        /// The room.
        room: String,
        /// The sender.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// The server's message id.
        message_id: String,
        /// Server time in ms.
        time_ms: u64,
    },
    /// A barrage message from another user.
    #[serde(rename = "IMRecvBarrageMessage", rename_all = "camelCase")]
    BarrageMessage {
        /// The room.
        room: String,
        /// The sender.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// The server's message id.
        message_id: String,
        /// Server time in ms.
        time_ms: u64,
    },
    /// A custom command sent to this user.
    #[serde(rename = "IMRecvCustomCommand", rename_all = "camelCase")]
    CustomCommand {
        /// The room.
        room: String,
        /// The sender.
        from: User,
        /// The command text (at most 1024 bytes).
        command: String,
        /// Server time in ms.
        time_ms: u64,
    },
    /// The outcome of the app call made with `handle`.
    #[serde(rename = "result", rename_all = "camelCase")]
    Result {
        /// The handle passed to [`crate::Core::handle_command`].
        handle: u64,
        /// None on success, otherwise why the call failed (0 in the scenario files).
        #[serde(with = "wire_code")]
        error_code: Option<ErrorCode>,
        /// For broadcast / barrage: the message id the server assigned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// For query_room_member_list: the page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<MemberPage>,
    },
}

/// One page of a room's member list ([`crate::Command::QueryRoomMemberList`]), in the order of
/// user ids; ZIM's `queryRoomMemberList` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPage {
    /// The room.
    pub room: String,
    /// The members on this page (the caller too, when in its range).
    pub users: Vec<User>,
    /// How many members the room had when the page was read.
    pub count: u32,
    /// Pass it to get the next page; "" when this page is the last.
    pub next_flag: String,
}

impl AppEvent {
    /// The event as the JSON object of the scenario files and the Web SDK.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// An optional [`ErrorCode`] as the number the protocol and the scenario files write: 0 for
/// none (success).
mod wire_code {
    use parlor_protocol::ErrorCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(code: &Option<ErrorCode>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(code.map_or(0, ErrorCode::code))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ErrorCode>, D::Error> {
        Ok(ErrorCode::from_wire(u32::deserialize(d)?))
    }
}
