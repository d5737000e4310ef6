//! What one app knows, built from its events alone (as an app would), and the rules every
//! event stream must keep: each room's states follow §7; an update never adds a user or stream
//! the app has or deletes one it has not, and comes only while the room is in; the app never
//! hears of its own user or its own messages; no message or command is reported twice; every
//! call has exactly one result.

use std::collections::{BTreeMap, BTreeSet};

use parlor_client_core::{AppEvent, Command, RoomStateReason, UpdateType};
use RoomStateReason::*;

/// One room as the app pictures it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomPicture {
    /// The others in it.
    pub users: BTreeSet<String>,
    /// The others' streams: id → extra.
    pub streams: BTreeMap<String, String>,
    /// Room extra: key → value.
    pub extra: BTreeMap<String, String>,
}

/// One app's picture and what was wrong with its events.
#[derive(Debug, Default)]
pub struct Picture {
    /// Rooms by id.
    pub rooms: BTreeMap<String, RoomPicture>,
    /// The last state of each room.
    pub states: BTreeMap<String, RoomStateReason>,
    /// Broken rules, described.
    pub violations: Vec<String>,
    /// Messages received: text → message ids (one per receipt).
    pub messages: BTreeMap<String, Vec<String>>,
    /// Commands received: text → how many times.
    pub commands: BTreeMap<String, usize>,
    /// Results: handle → how many.
    pub results: BTreeMap<u64, usize>,
}

/// Whether §7 allows `prev` → `next` (the model of `docs/protocol.md` §7).
fn allowed(prev: Option<RoomStateReason>, next: RoomStateReason) -> bool {
    match next {
        Logining => matches!(prev, None | Some(Logout | LoginFailed | ReconnectFailed | KickOut | LogoutFailed)),
        Logined | LoginFailed => prev == Some(Logining),
        Reconnecting => matches!(prev, Some(Logined | Reconnected)),
        Reconnected | ReconnectFailed => prev == Some(Reconnecting),
        KickOut | Logout => matches!(prev, Some(Logining | Logined | Reconnected | Reconnecting)),
        LogoutFailed => true,
    }
}

/// Build the picture of the app of user `me` from its events and its own calls by handle (the
/// app knows the room extra info it set itself from its call's success: no event says so).
pub fn build(me: &str, events: &[(u64, AppEvent)], calls: &BTreeMap<u64, Command>) -> Picture {
    let mut p = Picture::default();
    for (ms, e) in events {
        p.apply(me, *ms, e);
        if let AppEvent::Result { handle, error_code: None, .. } = e {
            if let Some(Command::SetRoomExtra { room, key, value }) = calls.get(handle) {
                if p.in_room(room) {
                    p.rooms.entry(room.clone()).or_default().extra.insert(key.clone(), value.clone());
                }
            }
        }
    }
    p
}

impl Picture {
    fn bad(&mut self, ms: u64, what: String) {
        self.violations.push(format!("{ms} ms: {what}"));
    }

    fn in_room(&self, room: &str) -> bool {
        matches!(self.states.get(room), Some(Logined | Reconnected))
    }

    fn apply(&mut self, me: &str, ms: u64, e: &AppEvent) {
        match e {
            AppEvent::RoomStateChanged { room, reason, .. } => {
                let prev = self.states.get(room).copied();
                if !allowed(prev, *reason) {
                    self.bad(ms, format!("{room}: {prev:?} -> {reason:?} is not a §7 transition"));
                }
                if matches!(reason, Logined | LoginFailed | KickOut | Logout | ReconnectFailed | LogoutFailed) {
                    self.rooms.remove(room);
                }
                self.states.insert(room.clone(), *reason);
            }
            AppEvent::RoomUserUpdate { room, update_type, users } => {
                if !self.in_room(room) {
                    self.bad(ms, format!("user update for {room} in {:?}", self.states.get(room)));
                }
                let mut wrong = Vec::new();
                let pic = self.rooms.entry(room.clone()).or_default();
                for u in users {
                    let fine = u.id != me
                        && match update_type {
                            UpdateType::Add => pic.users.insert(u.id.clone()),
                            UpdateType::Delete => pic.users.remove(&u.id),
                        };
                    if !fine {
                        wrong.push(u.id.clone());
                    }
                }
                if !wrong.is_empty() {
                    self.bad(ms, format!("{room}: user {update_type:?} of {wrong:?} (own, or already so)"));
                }
            }
            // The sim's rooms have a few members: never large (§9.10), so never a page only.
            AppEvent::RoomUserListChanged { room, .. } => {
                self.bad(ms, format!("{room}: list changed, but the sim's rooms are never large"));
            }
            AppEvent::RoomStreamUpdate { room, update_type, streams } => {
                if !self.in_room(room) {
                    self.bad(ms, format!("stream update for {room} in {:?}", self.states.get(room)));
                }
                let mut wrong = Vec::new();
                let pic = self.rooms.entry(room.clone()).or_default();
                for s in streams {
                    let fine = s.user.id != me
                        && match update_type {
                            UpdateType::Add => pic.streams.insert(s.id.clone(), s.extra.clone()).is_none(),
                            UpdateType::Delete => pic.streams.remove(&s.id).is_some(),
                        };
                    if !fine {
                        wrong.push(s.id.clone());
                    }
                }
                if !wrong.is_empty() {
                    self.bad(ms, format!("{room}: stream {update_type:?} of {wrong:?} (own, or already so)"));
                }
            }
            AppEvent::RoomStreamExtraInfoUpdate { room, streams } => {
                let pic = self.rooms.entry(room.clone()).or_default();
                let mut unknown = Vec::new();
                for s in streams {
                    match pic.streams.get_mut(&s.id) {
                        Some(extra) if s.user.id != me => *extra = s.extra.clone(),
                        _ => unknown.push(s.id.clone()),
                    }
                }
                if !unknown.is_empty() {
                    self.bad(ms, format!("{room}: extra info of streams {unknown:?} not in the picture"));
                }
            }
            AppEvent::RoomExtraInfoUpdate { room, extra } => {
                let pic = self.rooms.entry(room.clone()).or_default();
                for x in extra {
                    pic.extra.insert(x.key.clone(), x.value.clone());
                }
            }
            AppEvent::BroadcastMessage { room, from, message, message_id, .. }
            | AppEvent::BarrageMessage { room, from, message, message_id, .. } => {
                if from.id == me {
                    self.bad(ms, format!("{room}: own message {message} reported"));
                }
                self.messages.entry(message.clone()).or_default().push(message_id.clone());
            }
            AppEvent::CustomCommand { room, from, command, .. } => {
                if from.id == me {
                    self.bad(ms, format!("{room}: own command {command} reported"));
                }
                *self.commands.entry(command.clone()).or_default() += 1;
            }
            AppEvent::Result { handle, .. } => *self.results.entry(*handle).or_default() += 1,
            AppEvent::RoomOnlineUserCountUpdate { .. } | AppEvent::RoomTokenWillExpire { .. } => {}
        }
    }
}
