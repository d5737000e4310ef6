//! Every frame of the protocol as a typed value.
//!
//! [`ClientFrame`] is what a client sends, [`ServerFrame`] what the server sends; both are tagged
//! by the JSON field `t`. Optional fields are omitted when empty, and unknown fields are ignored
//! on reading (protocol §1).
//!
//! Here: the values both sides share (users, streams, room settings, channels, seqs, acks); in
//! `client.rs` and `server.rs` the frames of each direction; in `event.rs` the room and direct
//! events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod client;
mod event;
mod server;

pub use client::*;
pub use event::*;
pub use server::*;

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
