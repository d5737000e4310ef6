//! The memory engine's admin operations ([`AdminEngine`]), each under the engine's one lock like
//! a session's operation.

use std::collections::HashSet;

use parlor_protocol::{stream_delete_reason, validate, Channel, EventBody, RoomExtraItem};
use tokio::time::Instant;

use super::state::RoomKey;
use super::MemoryEngine;
use crate::engine::admin::{server_user, AdminEngine, AdminRefusal, AdminResult, RoomPage, Sent, SessionRef};
use crate::engine::{SessionKey, Stats, Unavailable};
use crate::frame::Frame;
use crate::outbox::close_code;

impl AdminEngine for MemoryEngine {
    async fn room_page(&self, app: u32, after: Option<&str>, limit: usize) -> Result<RoomPage, Unavailable> {
        let st = self.lock();
        let mut ids: Vec<&String> = st
            .rooms
            .keys()
            .filter(|(a, id)| *a == app && after.is_none_or(|c| id.as_str() > c))
            .map(|(_, id)| id)
            .collect();
        ids.sort();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let rooms: Vec<_> =
            ids.iter().filter_map(|id| st.rooms.get(&(app, id.to_string())).map(|r| st.room_info(id, r))).collect();
        let more_after = if more { rooms.last().map(|r| r.room.clone()) } else { None };
        Ok(RoomPage { rooms, more_after })
    }

    async fn server_message(
        &self,
        app: u32,
        room: &str,
        barrage: bool,
        message: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<Sent> {
        let mut st = self.lock();
        let rk: RoomKey = (app, room.to_string());
        let Some(r) = st.rooms.get(&rk) else {
            return Ok(Err(AdminRefusal::NoSuchRoom));
        };
        // The message id is the event's seq, as for a session's message.
        let message_id = r.room_log.next_seq().to_string();
        let (from, message) = (server_user(), message.to_string());
        let body = if barrage {
            EventBody::Barrage { message_id: message_id.clone(), from, message, time_ms }
        } else {
            EventBody::Broadcast { message_id: message_id.clone(), from, message, time_ms }
        };
        let seq = st.emit(&rk, Channel::Room, body, None, now);
        Ok(Ok(Sent { seq, message_id }))
    }

    async fn server_command(
        &self,
        app: u32,
        room: &str,
        to: &[String],
        command: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<usize> {
        let mut st = self.lock();
        let named: HashSet<&str> = to.iter().map(String::as_str).collect();
        let recipients: Vec<SessionKey> = match st.rooms.get(&(app, room.to_string())) {
            Some(r) => r
                .members
                .keys()
                .copied()
                .filter(|k| named.is_empty() || st.sessions.get(k).is_some_and(|s| named.contains(s.user.id.as_str())))
                .collect(),
            None => return Ok(Err(AdminRefusal::NoSuchRoom)),
        };
        let cfg = &self.config;
        for key in &recipients {
            if let Some(s) = st.sessions.get_mut(key) {
                let seq = s.direct.next_seq();
                let body = EventBody::Command { from: server_user(), command: command.to_string(), time_ms };
                let frame = Frame::event(room, Some(Channel::Direct), Some(seq), body);
                s.direct.push(frame.clone(), now, false);
                s.direct.trim(now, cfg.log_len, cfg.log_age);
                st.deliver.to_session(*key, frame);
            }
        }
        Ok(Ok(recipients.len()))
    }

    async fn server_room_extra(
        &self,
        app: u32,
        room: &str,
        key: &str,
        value: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<u64> {
        let mut st = self.lock();
        let rk: RoomKey = (app, room.to_string());
        let Some(r) = st.rooms.get_mut(&rk) else {
            return Ok(Err(AdminRefusal::NoSuchRoom));
        };
        if !r.extra.contains_key(key) && r.extra.len() >= validate::MAX_ROOM_EXTRA_KEYS {
            return Ok(Err(AdminRefusal::TooManyExtraKeys));
        }
        let item = RoomExtraItem { key: key.to_string(), value: value.to_string(), user: server_user(), time_ms };
        r.extra.insert(key.to_string(), item.clone());
        let extra = item.clone();
        st.hook(&rk, now, || crate::webhook::Event::RoomExtraUpdated { extra });
        let body = EventBody::RoomExtra { key: item.key, value: item.value, user: item.user, time_ms };
        Ok(Ok(st.emit(&rk, Channel::Room, body, None, now)))
    }

    async fn delete_stream(&self, app: u32, room: &str, stream: &str, now: Instant) -> AdminResult<u64> {
        let mut st = self.lock();
        let rk: RoomKey = (app, room.to_string());
        let Some(r) = st.rooms.get_mut(&rk) else {
            return Ok(Err(AdminRefusal::NoSuchRoom));
        };
        let Some(entry) = r.streams.remove(stream) else {
            return Ok(Err(AdminRefusal::NoSuchStream));
        };
        st.streams.remove(&(app, stream.to_string()));
        let reason = stream_delete_reason::KICKED;
        st.hook(&rk, now, || crate::webhook::Event::StreamDeleted { stream: entry.stream.clone(), reason });
        let body = EventBody::StreamDelete { streams: vec![entry.stream], reason };
        // No author: the publisher is told too (its stream is gone).
        Ok(Ok(st.emit(&rk, Channel::Room, body, None, now)))
    }

    async fn reconnect(&self, app: u32, who: &SessionRef, _now: Instant) -> AdminResult<String> {
        let st = self.lock();
        let key = match who {
            SessionRef::Id(id) => {
                st.by_public.get(id).copied().filter(|k| st.sessions.get(k).is_some_and(|s| s.app == app))
            }
            SessionRef::Member { room, user } => st.rooms.get(&(app, room.clone())).and_then(|r| {
                r.members.keys().copied().find(|k| st.sessions.get(k).is_some_and(|s| s.user.id == *user))
            }),
        };
        let Some((key, s)) = key.and_then(|k| st.sessions.get(&k).map(|s| (k, s))) else {
            return Ok(Err(match who {
                SessionRef::Id(_) => AdminRefusal::NoSuchSession,
                SessionRef::Member { .. } => AdminRefusal::NoSuchUser,
            }));
        };
        tracing::info!(session = %s.public_id, user = %s.user.id, "reconnect asked by the server");
        st.deliver.close(key, None, close_code::SHUTDOWN, "reconnect asked by the server", false);
        Ok(Ok(s.public_id.clone()))
    }

    async fn app_stats(&self, app: u32) -> Result<Stats, Unavailable> {
        let st = self.lock();
        Ok(Stats {
            sessions: st.sessions.values().filter(|s| s.app == app).count(),
            rooms: st.rooms.keys().filter(|(a, _)| *a == app).count(),
            streams: st.streams.keys().filter(|(a, _)| *a == app).count(),
        })
    }

    async fn drop_elsewhere(&self, _app: u32) -> Result<(), Unavailable> {
        Ok(())
    }
}
