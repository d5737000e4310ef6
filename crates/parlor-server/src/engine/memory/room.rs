//! A room of the memory engine: its members, streams, extra info, and its `room` and `users`
//! channel logs.
//!
//! A room lives while it has members. When the last one leaves it is dropped with its logs, and
//! the next login creates a new one with a new `room_session` (epoch): a client that resumes
//! with the old epoch gets a snapshot, never a replay of another life's log (§6).

use std::collections::BTreeMap;

use parlor_protocol::{RoomExtraItem, Stream};
use tokio::time::Instant;

use super::log::ChannelLog;
use super::presence::Presence;
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
    /// a scan of the room (n logins to a big room were n²/2 lookups); ordered, for the pages of
    /// `members` (by user id, so that a walk is stable while others come and go).
    pub by_user: BTreeMap<Box<str>, SessionKey>,
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
    /// When the `online` count was last looked at (a large room's is every presence interval).
    pub online_at: Instant,
    /// A large room's arrivals and departures not yet sent (§9.10).
    pub presence: Presence,
    /// The count is looked at every presence interval: the room is large, or was at the last
    /// look (so that the count after it stops being large is sent within an interval too).
    pub fast_online: bool,
}

impl Room {
    /// A new, empty room.
    pub fn new(epoch: String, max_members: u32, now: Instant, online_interval: std::time::Duration) -> Room {
        Room {
            epoch,
            max_members,
            members: BTreeMap::new(),
            by_user: BTreeMap::new(),
            streams: BTreeMap::new(),
            extra: BTreeMap::new(),
            room_log: ChannelLog::default(),
            users_log: ChannelLog::default(),
            online_sent: 1,
            next_online: now + online_interval,
            message_window: Window::default(),
            online_at: now,
            presence: Presence::default(),
            fast_online: false,
        }
    }

    /// One page of `members` (§9.9): up to `limit` members whose user ids sort after `cursor`
    /// ("" for the first page), and the next page's cursor ("" when this one is the last). A
    /// member who stays through a walk is on exactly one of its pages, whoever else comes and
    /// goes: the cursor is a position in the order of user ids, not an index.
    pub fn page(&self, cursor: &str, limit: usize) -> (Vec<SessionKey>, String) {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = if cursor.is_empty() { Unbounded } else { Excluded(cursor) };
        let mut walk = self.by_user.range::<str, _>((from, Unbounded));
        let page: Vec<(&Box<str>, &SessionKey)> = walk.by_ref().take(limit).collect();
        let next = match (walk.next(), page.last()) {
            (Some(_), Some((last, _))) => last.to_string(),
            _ => String::new(),
        };
        (page.into_iter().map(|(_, k)| *k).collect(), next)
    }

    /// The first `limit` members but the one with user id `me`, in the order of [`Room::page`],
    /// and the cursor of the rest ("" when there is none): a large room's `ok` (§9.10).
    pub fn page_without(&self, me: &str, limit: usize) -> (Vec<SessionKey>, String) {
        let mut walk = self.by_user.iter().filter(|(id, _)| id.as_ref() != me);
        let page: Vec<(&Box<str>, &SessionKey)> = walk.by_ref().take(limit).collect();
        let next = match (walk.next(), page.last()) {
            (Some(_), Some((last, _))) => last.to_string(),
            _ => String::new(),
        };
        (page.into_iter().map(|(_, k)| *k).collect(), next)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A walk in pages while others come and go: everyone there through the whole walk is
        /// on exactly one page, and no page repeats anyone.
        #[test]
        fn a_walk_is_stable_under_churn(
            start in proptest::collection::btree_set(0u16..2000, 0..300),
            limit in 1usize..60,
            churn in proptest::collection::vec((any::<bool>(), 0u16..2000), 0..400),
        ) {
            let now = Instant::now();
            let mut room = Room::new("e".into(), 0, now, std::time::Duration::from_secs(30));
            let id = |n: u16| format!("u{n}");
            for n in &start {
                room.by_user.insert(id(*n).into(), *n as SessionKey);
            }
            let mut stayed: std::collections::BTreeSet<u16> = start.clone();
            let (mut cursor, mut seen, mut steps) = (String::new(), Vec::new(), churn.iter());
            for pages in 0.. {
                // Every page moves past at least one member: a walk of 2 300 at most ends.
                prop_assert!(pages <= 2300, "the walk does not end");
                let (keys, next) = room.page(&cursor, limit);
                prop_assert!(keys.len() <= limit);
                seen.extend(keys);
                // Between pages, some join and some leave.
                for (join, n) in steps.by_ref().take(5) {
                    if *join {
                        room.by_user.insert(id(*n).into(), *n as SessionKey);
                    } else {
                        room.by_user.remove(id(*n).as_str());
                        stayed.remove(n);
                    }
                }
                if next.is_empty() {
                    break;
                }
                cursor = next;
            }
            let mut unique = seen.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), seen.len(), "a member on two pages");
            for n in stayed {
                prop_assert!(seen.contains(&(n as SessionKey)), "u{} stayed but was skipped", n);
            }
        }
    }
}
