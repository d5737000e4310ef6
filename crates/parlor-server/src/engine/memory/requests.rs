//! The memory engine's operations (the [`Op`]s of a session's requests), each applied under the
//! engine's lock. Their specification is on [`Op`]; the Redis engine's scripts do the same.

use std::collections::HashSet;

use parlor_protocol::{stream_delete_reason, validate, Channel, EventBody, RoomExtraItem, Seqs, Stream};
use tokio::time::Instant;

use super::room::StreamEntry;
use super::state::{Leave, Membership, State};
use crate::config::ServerConfig;
use crate::engine::{Done, Op, Refusal, SessionKey};
use crate::frame::Frame;

/// The `Done` of an operation that produced one event on the room channel.
fn room_event(seq: u64) -> Done {
    Done { seq: Seqs { room: Some(seq), ..Seqs::default() }, ..Done::default() }
}

impl State {
    /// The member's app and user, or `NotInRoom`.
    fn member(&self, key: SessionKey, room: &str) -> Result<(u32, parlor_protocol::User), Refusal> {
        let s = self.sessions.get(&key).ok_or(Refusal::NoSession)?;
        if !s.rooms.contains_key(room) {
            return Err(Refusal::NotInRoom);
        }
        Ok((s.app, s.user.clone()))
    }

    /// Enter `room` for a login or the login half of a switch.
    fn login(
        &mut self,
        key: SessionKey,
        room: &str,
        config: parlor_protocol::RoomConfig,
        grant: crate::engine::Grant,
        now: Instant,
        cfg: &ServerConfig,
    ) -> Result<Done, Refusal> {
        let s = self.sessions.get(&key).ok_or(Refusal::NoSession)?;
        if s.rooms.contains_key(room) {
            return Err(Refusal::AlreadyInRoom);
        }
        if s.rooms.len() >= cfg.max_rooms {
            return Err(Refusal::TooManyRooms);
        }
        let m = Membership { config, grant, warned: false };
        let (state, seq) = self.enter(key, room, m, now, cfg)?;
        if let Some(s) = self.sessions.get(&key) {
            tracing::info!(session = %s.public_id, user = %s.user.id, room, "login");
        }
        Ok(Done { seq, message_id: None, state: Some(state), users_json: None })
    }

    /// Apply one operation of `key`.
    pub(super) fn apply(&mut self, key: SessionKey, op: Op, now: Instant, cfg: &ServerConfig) -> Result<Done, Refusal> {
        match op {
            Op::Login { room, config, grant } => self.login(key, &room, config, grant, now, cfg),
            Op::Logout { room } => {
                self.member(key, &room)?;
                let seq = self.leave(key, &room, &Leave::Logout, now);
                if let Some(s) = self.sessions.get(&key) {
                    tracing::info!(session = %s.public_id, user = %s.user.id, room = %room, "logout");
                }
                Ok(Done { seq, ..Done::default() })
            }
            Op::Switch { from, to, login } => {
                self.member(key, &from)?;
                self.leave(key, &from, &Leave::Logout, now);
                match login {
                    Ok((config, grant)) => self.login(key, &to, config, grant, now, cfg),
                    Err(code) => Err(Refusal::Login(code)),
                }
            }
            Op::Publish { room, stream, extra } => {
                let (app, user) = self.member(key, &room)?;
                let may = self.sessions.get(&key).and_then(|s| s.rooms.get(&room)).is_some_and(|m| m.grant.may_publish);
                if !may {
                    return Err(Refusal::NoPublishPrivilege);
                }
                match self.streams.get(&(app, stream.clone())) {
                    // Publishing again what is already published is a no-op (a client
                    // re-publishing after a resume finds it still there).
                    Some((owner, r)) if *owner == key && *r == room => return Ok(Done::default()),
                    Some(_) => return Err(Refusal::StreamIdTaken),
                    None => {}
                }
                let rk = (app, room.clone());
                self.host_arrives(&rk, &user.id, now);
                let entry = Stream { id: stream.clone(), user, extra };
                if let Some(r) = self.rooms.get_mut(&rk) {
                    r.streams.insert(stream.clone(), StreamEntry { stream: entry.clone(), owner: key });
                }
                self.streams.insert((app, stream), (key, room));
                self.hook(&rk, now, || crate::webhook::Event::StreamAdded { stream: entry.clone() });
                Ok(room_event(self.emit(
                    &rk,
                    Channel::Room,
                    EventBody::StreamAdd { streams: vec![entry] },
                    Some(key),
                    now,
                )))
            }
            Op::Unpublish { room, stream } => {
                let (app, _) = self.member(key, &room)?;
                let rk = (app, room);
                let entry = self.rooms.get_mut(&rk).and_then(|r| match r.streams.get(&stream) {
                    Some(e) if e.owner == key => r.streams.remove(&stream),
                    _ => None,
                });
                let entry = entry.ok_or(Refusal::NotPublishing)?;
                self.streams.remove(&(app, stream));
                let reason = stream_delete_reason::STOPPED;
                self.hook(&rk, now, || crate::webhook::Event::StreamDeleted { stream: entry.stream.clone(), reason });
                let body = EventBody::StreamDelete { streams: vec![entry.stream], reason };
                Ok(room_event(self.emit(&rk, Channel::Room, body, Some(key), now)))
            }
            Op::StreamExtra { room, stream, extra } => {
                let (app, _) = self.member(key, &room)?;
                let rk = (app, room);
                let changed = self.rooms.get_mut(&rk).and_then(|r| match r.streams.get_mut(&stream) {
                    Some(e) if e.owner == key => {
                        e.stream.extra = extra;
                        Some(e.stream.clone())
                    }
                    _ => None,
                });
                let changed = changed.ok_or(Refusal::NotPublishing)?;
                let body = EventBody::StreamExtra { streams: vec![changed] };
                Ok(room_event(self.emit(&rk, Channel::Room, body, Some(key), now)))
            }
            Op::RoomExtra { room, key: k, value, time_ms } => {
                let (app, user) = self.member(key, &room)?;
                let rk = (app, room);
                if let Some(r) = self.rooms.get_mut(&rk) {
                    if !r.extra.contains_key(&k) && r.extra.len() >= validate::MAX_ROOM_EXTRA_KEYS {
                        return Err(Refusal::TooManyExtraKeys);
                    }
                    let item = RoomExtraItem { key: k.clone(), value: value.clone(), user: user.clone(), time_ms };
                    r.extra.insert(k.clone(), item);
                }
                let extra = RoomExtraItem { key: k.clone(), value: value.clone(), user: user.clone(), time_ms };
                self.hook(&rk, now, || crate::webhook::Event::RoomExtraUpdated { extra });
                let body = EventBody::RoomExtra { key: k, value, user, time_ms };
                Ok(room_event(self.emit(&rk, Channel::Room, body, Some(key), now)))
            }
            Op::Message { room, barrage, message, time_ms } => {
                let (app, from) = self.member(key, &room)?;
                let rk = (app, room);
                let r = self.rooms.get_mut(&rk).ok_or(Refusal::NotInRoom)?;
                if !r.message_window.allow(now, cfg.room_message_rate) {
                    return Err(Refusal::RoomMessageRate);
                }
                // The message id is the event's seq: unique within the room's life, and taken in
                // the same step on every engine.
                let message_id = r.room_log.next_seq().to_string();
                let body = if barrage {
                    EventBody::Barrage { message_id: message_id.clone(), from, message, time_ms }
                } else {
                    EventBody::Broadcast { message_id: message_id.clone(), from, message, time_ms }
                };
                let seq = self.emit(&rk, Channel::Room, body, Some(key), now);
                Ok(Done { message_id: Some(message_id), ..room_event(seq) })
            }
            Op::Command { room, to, command, time_ms } => {
                let (app, from) = self.member(key, &room)?;
                let rk = (app, room.clone());
                // A set, not the list: a `to` of thousands of names (a max-size frame holds ~7 000)
                // checked against every member was members × names comparisons under the lock.
                let named: HashSet<&str> = to.iter().map(String::as_str).collect();
                let recipients: Vec<SessionKey> = match self.rooms.get(&rk) {
                    Some(r) => r
                        .members
                        .keys()
                        .copied()
                        .filter(|k| *k != key)
                        .filter(|k| {
                            named.is_empty() || self.sessions.get(k).is_some_and(|s| named.contains(s.user.id.as_str()))
                        })
                        .collect(),
                    None => Vec::new(),
                };
                for r in recipients {
                    if let Some(s) = self.sessions.get_mut(&r) {
                        let seq = s.direct.next_seq();
                        let body = EventBody::Command { from: from.clone(), command: command.clone(), time_ms };
                        let frame = Frame::event(&room, Some(Channel::Direct), Some(seq), body);
                        s.direct.push(frame.clone(), now, false);
                        s.direct.trim(now, cfg.log_len, cfg.log_age);
                        self.deliver.to_session(r, frame);
                    }
                }
                Ok(Done::default())
            }
            Op::Renew { room, grant, claims } => {
                let s = self.sessions.get_mut(&key).ok_or(Refusal::NoSession)?;
                for (r, m) in s.rooms.iter_mut() {
                    if room.as_deref().is_none_or(|only| only == r) {
                        m.grant = grant;
                        m.warned = false;
                    }
                }
                if room.is_none() {
                    s.claims = claims;
                }
                Ok(Done::default())
            }
            // `request` remembers these without applying them.
            Op::Refused { .. } => Ok(Done::default()),
        }
    }
}
