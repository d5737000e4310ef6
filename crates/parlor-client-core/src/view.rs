//! What the client knows of one room (the server's view: users, streams, extra info), and the
//! diff between two views as the exact ADD / DELETE updates the app must see (§6: "a client diffs
//! a snapshot against what it knew and reports exactly the users and streams that were added or
//! deleted meanwhile").
//!
//! The view holds the *others* in the room (never the client's own user) and *every* stream the
//! server says is published, the client's own too: the own ones are needed to decide whether the
//! client must re-publish after a reconnection, and are filtered out of every app report.

use std::collections::BTreeMap;

use parlor_protocol::{RoomExtraItem, RoomState, Stream, User};

use crate::event::{AppEvent, ExtraInfo, UpdateType};

/// One room's state as the client knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomView {
    /// The others in the room, by user id.
    pub users: BTreeMap<String, User>,
    /// Published streams (the client's own too), by stream id.
    pub streams: BTreeMap<String, Stream>,
    /// Room extra info, by key.
    pub extra: BTreeMap<String, RoomExtraItem>,
    /// Everyone in the room.
    pub online: u32,
    /// `users` is only part of the room (§9.10): a large room's first page, or emptied by a
    /// `list_changed` batch. The `members` pages the app reads are added to it, so that the
    /// changes of everyone the app was told of are reported, and nobody else's.
    pub users_partial: bool,
}

impl RoomView {
    /// The view of a login `ok` or a `snapshot`; `me` is the client's user id.
    pub fn from_state(state: &RoomState, me: &str) -> RoomView {
        RoomView {
            users: state.users.iter().flatten().filter(|u| u.id != me).map(|u| (u.id.clone(), u.clone())).collect(),
            streams: state.streams.iter().map(|s| (s.id.clone(), s.clone())).collect(),
            extra: state.extra.iter().map(|e| (e.key.clone(), e.clone())).collect(),
            online: state.online,
            users_partial: users_paged(state),
        }
    }

    /// Streams of other users.
    pub fn others_streams<'a>(&'a self, me: &'a str) -> impl Iterator<Item = &'a Stream> + 'a {
        self.streams.values().filter(move |s| s.user.id != me)
    }

    /// What an app that just logged in must be told: one user ADD, one stream ADD and one
    /// extra-info update, each only when non-empty.
    pub fn initial_events(&self, room: &str, me: &str) -> Vec<AppEvent> {
        RoomView::default().diff_to(self, room, me)
    }

    /// The updates that turn an app's picture of `self` into `new`: users DELETE, users ADD,
    /// streams DELETE, streams ADD, stream extra info changes, room extra info changes (each only
    /// when non-empty, in that order). Online count changes are not reported here.
    pub fn diff_to(&self, new: &RoomView, room: &str, me: &str) -> Vec<AppEvent> {
        let mut out = Vec::new();
        let gone: Vec<User> =
            self.users.values().filter(|u| u.id != me && !new.users.contains_key(&u.id)).cloned().collect();
        let came: Vec<User> =
            new.users.values().filter(|u| u.id != me && !self.users.contains_key(&u.id)).cloned().collect();
        if !gone.is_empty() {
            out.push(AppEvent::RoomUserUpdate { room: room.to_string(), update_type: UpdateType::Delete, users: gone });
        }
        if !came.is_empty() {
            out.push(AppEvent::RoomUserUpdate { room: room.to_string(), update_type: UpdateType::Add, users: came });
        }
        out.extend(self.diff_streams_and_extra_to(new, room, me));
        out
    }

    /// The part of [`RoomView::diff_to`] after the users: streams and extra info.
    pub fn diff_streams_and_extra_to(&self, new: &RoomView, room: &str, me: &str) -> Vec<AppEvent> {
        let mut out = Vec::new();
        // A stream that changed publisher counts as deleted and added.
        let same = |a: &Stream, b: &Stream| a.user.id == b.user.id;
        let gone: Vec<Stream> =
            self.others_streams(me).filter(|s| !new.streams.get(&s.id).is_some_and(|n| same(s, n))).cloned().collect();
        let came: Vec<Stream> =
            new.others_streams(me).filter(|s| !self.streams.get(&s.id).is_some_and(|o| same(s, o))).cloned().collect();
        let changed: Vec<Stream> = new
            .others_streams(me)
            .filter(|s| self.streams.get(&s.id).is_some_and(|o| same(s, o) && o.extra != s.extra))
            .cloned()
            .collect();
        if !gone.is_empty() {
            out.push(AppEvent::RoomStreamUpdate {
                room: room.to_string(),
                update_type: UpdateType::Delete,
                streams: gone,
            });
        }
        if !came.is_empty() {
            out.push(AppEvent::RoomStreamUpdate {
                room: room.to_string(),
                update_type: UpdateType::Add,
                streams: came,
            });
        }
        if !changed.is_empty() {
            out.push(AppEvent::RoomStreamExtraInfoUpdate { room: room.to_string(), streams: changed });
        }
        let extra: Vec<ExtraInfo> =
            new.extra.values().filter(|e| self.extra.get(&e.key) != Some(*e)).map(ExtraInfo::from).collect();
        if !extra.is_empty() {
            out.push(AppEvent::RoomExtraInfoUpdate { room: room.to_string(), extra });
        }
        out
    }
}

/// Whether a room state's `users` is a page of a longer list (§9.10: `users_next` names a rest).
/// A `users_next` of "" says the page held everyone: that list is whole.
pub fn users_paged(state: &RoomState) -> bool {
    state.users_next.as_deref().is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str) -> User {
        User { id: id.into(), name: String::new() }
    }
    fn s(id: &str, user: &str) -> Stream {
        Stream { id: id.into(), user: u(user), extra: String::new() }
    }

    #[test]
    fn diff_reports_exact_adds_and_deletes_and_hides_me() {
        let old = RoomView::from_state(
            &RoomState {
                users: Some(vec![u("a"), u("b")]),
                streams: vec![s("sa", "a"), s("me1", "me")],
                ..Default::default()
            },
            "me",
        );
        let new = RoomView::from_state(
            &RoomState {
                users: Some(vec![u("b"), u("c"), u("me")]),
                streams: vec![s("sc", "c")],
                ..Default::default()
            },
            "me",
        );
        let ev = old.diff_to(&new, "r", "me");
        let j: Vec<serde_json::Value> = ev.iter().map(AppEvent::to_json).collect();
        assert_eq!(j.len(), 4, "{j:?}");
        assert_eq!(j[0]["updateType"], "DELETE");
        assert_eq!(j[0]["users"][0]["id"], "a");
        assert_eq!(j[1]["users"][0]["id"], "c");
        assert_eq!(j[2]["streams"][0]["id"], "sa");
        assert_eq!(j[3]["streams"][0]["id"], "sc");
        assert!(old.diff_to(&old, "r", "me").is_empty());
    }
}
