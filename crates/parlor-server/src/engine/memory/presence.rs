//! Presence of large rooms (protocol §9.10): arrivals and departures in batches.
//!
//! A room with more members than `full_presence_up_to` is *large*. There a login or departure is
//! not told to every member at once (n logins would cost n² deliveries): it goes into the room's
//! [`Presence`], and the tick sends ONE `user_update` per room per `presence_interval` with the
//! net changes (or `list_changed` when they are more than a page). A change made while the room
//! is not large is sent at once, after any batch still pending, so the `users` channel stays in
//! order. Hosts (members with a stream) are always told at once: a publish takes the member's
//! arrival out of the batch and sends it as a `user_add` of its own; a member with streams who
//! leaves is told by a `user_delete` of its own.

use std::collections::BTreeMap;

use parlor_protocol::{Channel, EventBody, User};
use tokio::time::Instant;

use super::room::RoomKey;
use super::state::State;
use crate::engine::SessionKey;

/// Most users a `user_update` lists, and a large room's `ok` or snapshot (§9.10).
pub const PAGE: usize = 100;

/// One user's net change since the last `user_update`.
#[derive(Debug, Clone)]
enum Change {
    Added(User),
    Deleted(User),
}

/// A large room's changes not yet sent.
#[derive(Debug, Default)]
pub struct Presence {
    /// By user id (a user is in a room once).
    changes: BTreeMap<Box<str>, Change>,
    /// When the last `user_update` was made.
    last: Option<Instant>,
}

impl Presence {
    /// `user` arrived: a departure in the same batch and this cancel out.
    fn add(&mut self, user: User) {
        match self.changes.remove(user.id.as_str()) {
            Some(Change::Deleted(_)) => {}
            _ => {
                self.changes.insert(user.id.as_str().into(), Change::Added(user));
            }
        }
    }

    /// `user` left: an arrival in the same batch and this cancel out.
    fn delete(&mut self, user: User) {
        match self.changes.remove(user.id.as_str()) {
            Some(Change::Added(_)) => {}
            _ => {
                self.changes.insert(user.id.as_str().into(), Change::Deleted(user));
            }
        }
    }

    /// Take `id`'s arrival out of the batch, if it is there.
    fn take_added(&mut self, id: &str) -> Option<User> {
        match self.changes.get(id) {
            Some(Change::Added(_)) => match self.changes.remove(id) {
                Some(Change::Added(u)) => Some(u),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether the batch is to be sent at `now`: one per `interval` at most.
    pub fn due(&self, now: Instant, interval: std::time::Duration) -> bool {
        !self.changes.is_empty() && self.last.is_none_or(|l| now >= l + interval)
    }

    /// The batch's event, the batch emptied.
    fn take(&mut self, now: Instant, count: u32) -> EventBody {
        self.last = Some(now);
        let changes = std::mem::take(&mut self.changes);
        if changes.len() > PAGE {
            return EventBody::UserUpdate { added: Vec::new(), deleted: Vec::new(), count, list_changed: true };
        }
        let (mut added, mut deleted) = (Vec::new(), Vec::new());
        for change in changes.into_values() {
            match change {
                Change::Added(u) => added.push(u),
                Change::Deleted(u) => deleted.push(u),
            }
        }
        EventBody::UserUpdate { added, deleted, count, list_changed: false }
    }
}

impl State {
    /// Whether room `rk` is large now.
    pub fn is_large(&self, rk: &RoomKey) -> bool {
        self.rooms.get(rk).is_some_and(|r| self.config.is_large(rk.0, r.members.len()))
    }

    /// `users` entered room `rk` (already members): into the batch of a large room, else one
    /// `user_add` now (not sent to `author`). Returns the `user_add`'s seq when one was sent.
    pub fn announce_added(
        &mut self,
        rk: &RoomKey,
        users: Vec<User>,
        author: Option<SessionKey>,
        now: Instant,
    ) -> Option<u64> {
        if users.is_empty() {
            return None;
        }
        if self.is_large(rk) {
            let room = self.rooms.get_mut(rk)?;
            for u in users {
                room.presence.add(u);
            }
            return None;
        }
        self.flush_presence(rk, now);
        Some(self.emit(rk, Channel::Users, EventBody::UserAdd { users }, author, now))
    }

    /// `user` (session `key`, no longer a member) left room `rk`: into the batch of a large
    /// room unless it was a host (`host`: it had streams there), else one `user_delete` now.
    pub fn announce_deleted(
        &mut self,
        rk: &RoomKey,
        user: User,
        key: SessionKey,
        host: bool,
        now: Instant,
    ) -> Option<u64> {
        if self.is_large(rk) && !host {
            self.rooms.get_mut(rk)?.presence.delete(user);
            return None;
        }
        self.flush_presence(rk, now);
        Some(self.emit(rk, Channel::Users, EventBody::UserDelete { users: vec![user] }, Some(key), now))
    }

    /// Member `key` is about to leave room `rk`: when its departure will be told on its own (it
    /// is a host, or the room will not be large), the pending batch goes first, while the member
    /// is still there to be sent it (its channel stays contiguous up to its own departure).
    pub fn before_leave(&mut self, rk: &RoomKey, key: SessionKey, now: Instant) {
        let Some(room) = self.rooms.get(rk) else {
            return;
        };
        if room.presence.is_empty() || !room.members.contains_key(&key) {
            return;
        }
        let host = room.streams.values().any(|e| e.owner == key);
        if host || !self.config.is_large(rk.0, room.members.len() - 1) {
            self.flush_presence(rk, now);
        }
    }

    /// A member of room `rk` publishes: if its arrival still waits in the batch, it is told now
    /// on its own (hosts stay exact, §9.10), to everyone (its own client skips itself).
    pub fn host_arrives(&mut self, rk: &RoomKey, user_id: &str, now: Instant) {
        let Some(user) = self.rooms.get_mut(rk).and_then(|r| r.presence.take_added(user_id)) else {
            return;
        };
        self.emit(rk, Channel::Users, EventBody::UserAdd { users: vec![user] }, None, now);
    }

    /// Send room `rk`'s pending batch now, if any.
    pub fn flush_presence(&mut self, rk: &RoomKey, now: Instant) {
        let Some(room) = self.rooms.get_mut(rk) else {
            return;
        };
        if room.presence.is_empty() {
            return;
        }
        let count = room.members.len() as u32;
        let body = room.presence.take(now, count);
        self.emit(rk, Channel::Users, body, None, now);
    }

    /// From the tick: send every batch that is due.
    pub fn flush_due_presence(&mut self, now: Instant) {
        let interval = self.config.presence_interval;
        let due: Vec<RoomKey> =
            self.rooms.iter().filter(|(_, r)| r.presence.due(now, interval)).map(|(k, _)| k.clone()).collect();
        for rk in due {
            self.flush_presence(&rk, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str) -> User {
        User { id: id.into(), name: format!("{id} name") }
    }

    fn lists(body: EventBody) -> (Vec<String>, Vec<String>, bool) {
        let EventBody::UserUpdate { added, deleted, list_changed, .. } = body else {
            panic!("a user_update");
        };
        (added.into_iter().map(|u| u.id).collect(), deleted.into_iter().map(|u| u.id).collect(), list_changed)
    }

    #[test]
    fn a_batch_holds_net_changes_only() {
        let now = Instant::now();
        let mut p = Presence::default();
        p.add(u("a")); // came and went: nothing
        p.delete(u("a"));
        p.delete(u("b")); // went and came back: nothing
        p.add(u("b"));
        p.add(u("c"));
        p.delete(u("d"));
        assert_eq!(lists(p.take(now, 7)), (vec!["c".to_string()], vec!["d".to_string()], false));
        assert!(p.is_empty());
    }

    #[test]
    fn more_than_a_page_says_list_changed_and_one_batch_per_interval() {
        let now = Instant::now();
        let second = std::time::Duration::from_secs(1);
        let mut p = Presence::default();
        assert!(!p.due(now, second), "nothing to send");
        for i in 0..=PAGE {
            p.add(u(&format!("u{i}")));
        }
        assert!(p.due(now, second), "the first batch goes at once");
        assert_eq!(lists(p.take(now, 500)), (vec![], vec![], true));
        p.add(u("x"));
        assert!(!p.due(now + second / 2, second), "one batch per interval");
        assert!(p.due(now + second, second));
        assert_eq!(p.take_added("x").map(|u| u.id), Some("x".to_string()));
        assert!(p.is_empty(), "a host's arrival is taken out of the batch");
    }
}
