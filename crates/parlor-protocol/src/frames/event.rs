//! Room and direct events: [`Event`] and what happened in it, [`EventBody`] (§5).

use serde::{Deserialize, Serialize};

use super::*;

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
    /// The net arrivals and departures of a large room since its previous `user_update`
    /// (users channel, §9.10).
    UserUpdate {
        /// Users who arrived.
        #[serde(default)]
        added: Vec<User>,
        /// Users who left.
        #[serde(default)]
        deleted: Vec<User>,
        /// The room's member count when the event was made.
        count: u32,
        /// More changes than a page: `added` and `deleted` are empty, page the list again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        list_changed: bool,
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
