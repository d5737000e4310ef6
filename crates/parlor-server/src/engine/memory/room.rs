//! A room of the memory engine: its members, streams, extra info, and its `room` and `users`
//! channel logs.
//!
//! A room lives while it has members. When the last one leaves it is dropped with its logs, and
//! the next login creates a new one with a new `room_session` (epoch): a client that resumes
//! with the old epoch gets a snapshot, never a replay of another life's log (§6).

use std::collections::{BTreeMap, HashMap};

use parlor_protocol::{RoomExtraItem, Stream};
use tokio::time::Instant;

use super::log::ChannelLog;
use crate::engine::SessionKey;
use crate::window::Window;

/// A room's key: its app and id.
pub type RoomKey = (u32, String);

/// One published stream and the session that owns it.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The stream as sent on the wire.
    pub stream: Stream,
    /// Its publisher.
    pub owner: SessionKey,
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// The id of this room's life.
    pub epoch: String,
    /// Maximum members (0: no limit), set by the creator.
    pub max_members: u32,
    /// Members in join order (session keys increase), each with whether it gets the `users`
    /// channel.
    pub members: BTreeMap<SessionKey, bool>,
    /// Each member's session by user id: a login finds the same user's older session without
    /// a scan of the room (n logins to a big room were n²/2 lookups).
    pub by_user: HashMap<Box<str>, SessionKey>,
    /// Published streams by id.
    pub streams: BTreeMap<String, StreamEntry>,
    /// Extra info by key.
    pub extra: BTreeMap<String, RoomExtraItem>,
    /// The `room` channel.
    pub room_log: ChannelLog,
    /// The `users` channel.
    pub users_log: ChannelLog,
    /// The last `online` count sent.
    pub online_sent: u32,
    /// When the `online` count is looked at next.
    pub next_online: Instant,
    /// Broadcast / barrage rate of the whole room.
    pub message_window: Window,
}

impl Room {
    /// A new, empty room.
    pub fn new(epoch: String, max_members: u32, now: Instant, online_interval: std::time::Duration) -> Room {
        Room {
            epoch,
            max_members,
            members: BTreeMap::new(),
            by_user: HashMap::new(),
            streams: BTreeMap::new(),
            extra: BTreeMap::new(),
            room_log: ChannelLog::default(),
            users_log: ChannelLog::default(),
            online_sent: 1,
            next_online: now + online_interval,
            message_window: Window::default(),
        }
    }

    /// The streams as the wire carries them.
    pub fn stream_list(&self) -> Vec<Stream> {
        self.streams.values().map(|e| e.stream.clone()).collect()
    }

    /// The extra info as the wire carries it.
    pub fn extra_list(&self) -> Vec<RoomExtraItem> {
        self.extra.values().cloned().collect()
    }

    /// The streams `owner` publishes here.
    pub fn streams_of(&self, owner: SessionKey) -> Vec<Stream> {
        self.streams.values().filter(|e| e.owner == owner).map(|e| e.stream.clone()).collect()
    }
}
