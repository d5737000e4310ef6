//! What the server tells about a room unasked: channel events (applied exactly once, against the
//! client's view), kicks, and token expiry notices.

use parlor_protocol::{Channel, Event, EventBody, Kicked, RoomExtraItem, TokenWillExpire, User};

use crate::core::{no_data, Core};
use crate::event::{AppEvent, ExtraInfo, UpdateType};
use crate::requests::Kind;

impl Core {
    pub(crate) fn on_kicked(&mut self, k: Kicked) {
        if !self.rooms.contains_key(&k.room) {
            return;
        }
        let data = k.extended_data.unwrap_or_else(no_data);
        self.kicked_out(&k.room, k.code, data);
    }

    pub(crate) fn on_token_will_expire(&mut self, t: TokenWillExpire) {
        if self.rooms.contains_key(&t.room) {
            self.emit(AppEvent::RoomTokenWillExpire { room: t.room, remaining_s: t.remaining_s });
        }
    }

    pub(crate) fn on_event(&mut self, e: Event) {
        let me = self.me();
        if e.ch == Some(Channel::Direct) {
            if let Some(seq) = e.seq {
                if seq <= self.direct_seq {
                    return;
                }
                self.direct_seq = seq;
            }
            if let EventBody::Command { from, command, time_ms } = e.body {
                // Only for a room in use: before LOGINED (or while away) the app knows of no
                // room to put it in, and no correct server sends one then.
                let in_room = self.rooms.get(&e.room).is_some_and(|r| r.phase().is_in());
                if in_room && from.id != me {
                    self.emit(AppEvent::CustomCommand { room: e.room, from, command, time_ms });
                }
            }
            return;
        }
        let room = e.room.clone();
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if !r.phase().is_in() {
            return;
        }
        let event_seq = e.seq;
        if let (Some(ch), Some(seq)) = (e.ch, e.seq) {
            let last = match ch {
                Channel::Room => &mut r.seq_room,
                Channel::Users => &mut r.seq_users,
                Channel::Direct => return,
            };
            if seq <= *last {
                return; // seen already (a replay overlapping what we applied)
            }
            if seq != *last + 1 {
                tracing::warn!(room, seq, last = *last, "gap in a channel");
            }
            *last = seq;
        }
        let mut out = Vec::new();
        match e.body {
            EventBody::UserAdd { users } => {
                let added: Vec<User> = users
                    .into_iter()
                    .filter(|u| u.id != me)
                    .filter(|u| r.view.users.insert(u.id.clone(), u.clone()).is_none())
                    .collect();
                if !added.is_empty() {
                    out.push(AppEvent::RoomUserUpdate { room, update_type: UpdateType::Add, users: added });
                }
            }
            EventBody::UserDelete { users } => {
                let gone: Vec<User> =
                    users.into_iter().filter(|u| u.id != me).filter_map(|u| r.view.users.remove(&u.id)).collect();
                if !gone.is_empty() {
                    out.push(AppEvent::RoomUserUpdate { room, update_type: UpdateType::Delete, users: gone });
                }
            }
            // A large room's batch (§9.10): applied as a set, like `user_add` and `user_delete`
            // above; the count is reported like `online`.
            EventBody::UserUpdate { added, deleted, count, list_changed } => {
                if list_changed {
                    // The list moved on by more than a batch tells: what the view holds may have
                    // left (and come back) unseen. It holds nobody until the app reads pages
                    // again (added to it, see `Kind::Members`), so no such change is swallowed.
                    r.view.users.clear();
                    r.view.users_partial = true;
                }
                let gone: Vec<User> =
                    deleted.into_iter().filter(|u| u.id != me).filter_map(|u| r.view.users.remove(&u.id)).collect();
                let added: Vec<User> = added
                    .into_iter()
                    .filter(|u| u.id != me)
                    .filter(|u| r.view.users.insert(u.id.clone(), u.clone()).is_none())
                    .collect();
                if !gone.is_empty() {
                    out.push(AppEvent::RoomUserUpdate {
                        room: room.clone(),
                        update_type: UpdateType::Delete,
                        users: gone,
                    });
                }
                if !added.is_empty() {
                    out.push(AppEvent::RoomUserUpdate {
                        room: room.clone(),
                        update_type: UpdateType::Add,
                        users: added,
                    });
                }
                if list_changed {
                    out.push(AppEvent::RoomUserListChanged { room: room.clone(), count });
                }
                if r.view.online != count {
                    r.view.online = count;
                    out.push(AppEvent::RoomOnlineUserCountUpdate { room, count });
                }
            }
            EventBody::StreamAdd { streams } => {
                let mut added = Vec::new();
                for s in streams {
                    let new = r.view.streams.insert(s.id.clone(), s.clone()).is_none();
                    if new && s.user.id != me {
                        added.push(s);
                    }
                }
                if !added.is_empty() {
                    out.push(AppEvent::RoomStreamUpdate { room, update_type: UpdateType::Add, streams: added });
                }
            }
            EventBody::StreamDelete { streams, .. } => {
                let mut gone = Vec::new();
                for s in streams {
                    if let Some(old) = r.view.streams.remove(&s.id) {
                        if old.user.id != me {
                            gone.push(old);
                        }
                    }
                }
                if !gone.is_empty() {
                    out.push(AppEvent::RoomStreamUpdate { room, update_type: UpdateType::Delete, streams: gone });
                }
            }
            EventBody::StreamExtra { streams } => {
                let mut changed = Vec::new();
                for s in streams {
                    if let Some(old) = r.view.streams.get_mut(&s.id) {
                        old.extra = s.extra.clone();
                    }
                    if s.user.id != me {
                        changed.push(s);
                    }
                }
                if !changed.is_empty() {
                    out.push(AppEvent::RoomStreamExtraInfoUpdate { room, streams: changed });
                }
            }
            EventBody::RoomExtra { key, value, user, time_ms } => {
                let item = RoomExtraItem { key, value, user, time_ms };
                // Only this client's own set, whose result reports it, goes untold: the same user
                // on another client (which took the room over while this one was away) is news
                // to this app (sim seed 9523566).
                let own = item.user.id == me
                    && self.requests.iter().any(|p| {
                        matches!(&p.kind, Kind::RoomExtra { room: r, key, value }
                            if *r == room && *key == item.key && *value == item.value)
                    });
                if !own {
                    out.push(AppEvent::RoomExtraInfoUpdate { room, extra: vec![ExtraInfo::from(&item)] });
                }
                r.extra_seq.insert(item.key.clone(), event_seq.unwrap_or(r.seq_room));
                r.view.extra.insert(item.key.clone(), item);
            }
            // A replay carries the client's own events too (docs/protocol.md §9.3): they are
            // counted, never reported.
            EventBody::Broadcast { from, .. } | EventBody::Barrage { from, .. } | EventBody::Command { from, .. }
                if from.id == me => {}
            EventBody::Broadcast { message_id, from, message, time_ms } => {
                out.push(AppEvent::BroadcastMessage { room, from, message, message_id, time_ms })
            }
            EventBody::Barrage { message_id, from, message, time_ms } => {
                out.push(AppEvent::BarrageMessage { room, from, message, message_id, time_ms })
            }
            EventBody::Command { from, command, time_ms } => {
                out.push(AppEvent::CustomCommand { room, from, command, time_ms })
            }
            EventBody::Online { count } => {
                if r.view.online != count {
                    r.view.online = count;
                    out.push(AppEvent::RoomOnlineUserCountUpdate { room, count });
                }
            }
        }
        for e in out {
            self.emit(e);
        }
    }
}
