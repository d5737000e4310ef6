//! The requests of a session (protocol §4): login, logout, switch, streams, extra info,
//! messages, commands, token renewal. Each runs under the hub's lock and returns its answer.

use super::*;

impl State {
    /// Check the token a login relies on and make the membership.
    fn login_membership(
        &self,
        key: SessionKey,
        room: &str,
        config: &RoomConfig,
        token: Option<&str>,
        hub: &Hub,
        now: Instant,
    ) -> Result<Membership, (ErrorCode, String)> {
        let s = self.sessions.get(&key).ok_or_else(|| err(ErrorCode::ResumeFailed))?;
        validate::room_id(room).map_err(err)?;
        let claims = match token {
            Some(t) => {
                let secret = hub.config.apps.get(&s.app).ok_or_else(|| err(ErrorCode::AuthFailed))?;
                token::verify(secret.as_bytes(), t, s.app, &s.user.id, Some(room), hub.clock.wall_s(now))
                    .map_err(err)?
            }
            None => {
                if s.claims.room_id.as_deref().is_some_and(|r| r != room) {
                    return Err(err_with(ErrorCode::AuthFailed, "the session's token is for another room"));
                }
                if s.claims.exp + token::LEEWAY_S < hub.clock.wall_s(now) {
                    return Err(err(ErrorCode::TokenExpired));
                }
                s.claims.clone()
            }
        };
        if s.rooms.contains_key(room) {
            return Err(err_with(ErrorCode::TooManyRooms, "already in this room"));
        }
        if s.rooms.len() >= hub.config.max_rooms {
            return Err(err_with(ErrorCode::TooManyRooms, "already in the maximum number of rooms"));
        }
        Ok(Membership {
            config: config.clone(),
            exp_s: claims.exp,
            may_publish: claims.may_publish(),
            warned: false,
            messages: Window::default(),
        })
    }

    /// `login` (and the login half of `switch`): the room's state and the channel positions.
    fn login(
        &mut self,
        key: SessionKey,
        room: &str,
        config: RoomConfig,
        token: Option<&str>,
        hub: &Hub,
        now: Instant,
    ) -> Result<(RoomState, Seqs), (ErrorCode, String)> {
        let m = self.login_membership(key, room, &config, token, hub, now)?;
        let entered = self.enter(key, room, config, m, now, &hub.config)?;
        if let Some(s) = self.sessions.get(&key) {
            tracing::info!(session = %s.public_id, user = %s.user.id, room, "login");
        }
        Ok(entered)
    }

    /// Check that `key` is in `room`.
    fn member(&self, key: SessionKey, room: &str) -> Result<(u32, User), (ErrorCode, String)> {
        let s = self.sessions.get(&key).ok_or_else(|| err(ErrorCode::ResumeFailed))?;
        if !s.rooms.contains_key(room) {
            return Err(err(ErrorCode::NotInRoom));
        }
        Ok((s.app, s.user.clone()))
    }

    /// `broadcast` or `barrage`.
    fn room_message(&mut self, key: SessionKey, f: SendMessage, barrage: bool, now: Instant, hub: &Hub) -> Answer {
        let cfg = &hub.config;
        validate::message(&f.message).map_err(err)?;
        let (app, from) = self.member(key, &f.room)?;
        let rk = (app, f.room.clone());
        let user_ok = self
            .sessions
            .get_mut(&key)
            .and_then(|s| s.rooms.get_mut(&f.room))
            .is_some_and(|m| m.messages.allow(now, cfg.user_message_rate));
        let Some(room) = self.rooms.get_mut(&rk) else {
            return Err(err(ErrorCode::NotInRoom));
        };
        if !user_ok || !room.message_window.allow(now, cfg.room_message_rate) {
            return Err(err(ErrorCode::MessagesTooFrequent));
        }
        room.last_message_id += 1;
        let message_id = room.last_message_id.to_string();
        let time_ms = hub.clock.wall_ms(now);
        let body = if barrage {
            EventBody::Barrage { message_id: message_id.clone(), from, message: f.message, time_ms }
        } else {
            EventBody::Broadcast { message_id: message_id.clone(), from, message: f.message, time_ms }
        };
        let seq = self.emit(&rk, Channel::Room, body, Some(key), now);
        Ok(OkFrame {
            id: f.id,
            room: Some(f.room),
            seq: Seqs { room: Some(seq), ..Seqs::default() },
            message_id: Some(message_id),
            ..OkFrame::default()
        })
    }

    /// Execute one request of `key`.
    pub(super) fn request(&mut self, key: SessionKey, frame: ClientFrame, now: Instant, hub: &Hub) -> Answer {
        let cfg = &hub.config;
        let time_ms = hub.clock.wall_ms(now);
        match frame {
            ClientFrame::Login(f) => {
                let (state, seq) = self.login(key, &f.room, f.config, f.token.as_deref(), hub, now)?;
                Ok(OkFrame::with_state(f.id, f.room, state, seq))
            }
            ClientFrame::Logout(f) => {
                let in_room = self.sessions.get(&key).is_some_and(|s| s.rooms.contains_key(&f.room));
                if !in_room {
                    return Err(err(ErrorCode::NotInRoomLogout));
                }
                let seq = self.leave(key, &f.room, &Leave::Logout, now);
                if let Some(s) = self.sessions.get(&key) {
                    tracing::info!(session = %s.public_id, user = %s.user.id, room = %f.room, "logout");
                }
                Ok(OkFrame { id: f.id, room: Some(f.room), seq, ..OkFrame::default() })
            }
            ClientFrame::Switch(f) => {
                let in_room = self.sessions.get(&key).is_some_and(|s| s.rooms.contains_key(&f.from));
                if !in_room {
                    return Err(err(ErrorCode::NotInRoomLogout));
                }
                self.leave(key, &f.from, &Leave::Logout, now);
                let (state, seq) = self.login(key, &f.to, f.config, f.token.as_deref(), hub, now)?;
                Ok(OkFrame::with_state(f.id, f.to, state, seq))
            }
            ClientFrame::Publish(f) => {
                let (app, user) = self.member(key, &f.room)?;
                validate::stream_id(&f.stream).map_err(|c| err_with(c, "invalid stream id"))?;
                validate::stream_extra(&f.extra).map_err(|c| err_with(c, "stream extra info is too long"))?;
                let may = self.sessions.get(&key).and_then(|s| s.rooms.get(&f.room)).is_some_and(|m| m.may_publish);
                if !may {
                    return Err(err(ErrorCode::NoPublishPrivilege));
                }
                match self.streams.get(&(app, f.stream.clone())) {
                    Some((owner, room)) if *owner == key && *room == f.room => {
                        // Publishing again what is already published is a no-op (a client re-publishing
                        // after a resume finds it still there).
                        return Ok(OkFrame { id: f.id, room: Some(f.room), ..OkFrame::default() });
                    }
                    Some(_) => return Err(err(ErrorCode::StreamIdTaken)),
                    None => {}
                }
                let stream = Stream { id: f.stream.clone(), user, extra: f.extra };
                let rk = (app, f.room.clone());
                if let Some(room) = self.rooms.get_mut(&rk) {
                    room.streams.insert(f.stream.clone(), StreamEntry { stream: stream.clone(), owner: key });
                }
                self.streams.insert((app, f.stream), (key, f.room.clone()));
                let seq = self.emit(&rk, Channel::Room, EventBody::StreamAdd { streams: vec![stream] }, Some(key), now);
                Ok(ok_room_event(f.id, f.room, seq))
            }
            ClientFrame::Unpublish(f) => {
                let (app, _) = self.member(key, &f.room)?;
                let rk = (app, f.room.clone());
                let entry = self.rooms.get_mut(&rk).and_then(|r| match r.streams.get(&f.stream) {
                    Some(e) if e.owner == key => r.streams.remove(&f.stream),
                    _ => None,
                });
                let Some(entry) = entry else {
                    return Err(err_with(ErrorCode::InvalidField, "not publishing this stream in this room"));
                };
                self.streams.remove(&(app, f.stream));
                let body =
                    EventBody::StreamDelete { streams: vec![entry.stream], reason: stream_delete_reason::STOPPED };
                let seq = self.emit(&rk, Channel::Room, body, Some(key), now);
                Ok(ok_room_event(f.id, f.room, seq))
            }
            ClientFrame::StreamExtra(f) => {
                let (app, _) = self.member(key, &f.room)?;
                validate::stream_extra(&f.extra).map_err(|c| err_with(c, "stream extra info is too long"))?;
                let rk = (app, f.room.clone());
                let stream = self.rooms.get_mut(&rk).and_then(|r| match r.streams.get_mut(&f.stream) {
                    Some(e) if e.owner == key => {
                        e.stream.extra = f.extra.clone();
                        Some(e.stream.clone())
                    }
                    _ => None,
                });
                let Some(stream) = stream else {
                    return Err(err_with(ErrorCode::InvalidField, "not publishing this stream in this room"));
                };
                let seq =
                    self.emit(&rk, Channel::Room, EventBody::StreamExtra { streams: vec![stream] }, Some(key), now);
                Ok(ok_room_event(f.id, f.room, seq))
            }
            ClientFrame::RoomExtra(f) => {
                let (app, user) = self.member(key, &f.room)?;
                validate::room_extra(&f.key, &f.value).map_err(err)?;
                let rk = (app, f.room.clone());
                let item = RoomExtraItem { key: f.key.clone(), value: f.value.clone(), user: user.clone(), time_ms };
                if let Some(room) = self.rooms.get_mut(&rk) {
                    if !room.extra.contains_key(&f.key) && room.extra.len() >= validate::MAX_ROOM_EXTRA_KEYS {
                        return Err(err(ErrorCode::RoomExtraTooManyKeys));
                    }
                    room.extra.insert(f.key.clone(), item);
                }
                let body = EventBody::RoomExtra { key: f.key, value: f.value, user, time_ms };
                let seq = self.emit(&rk, Channel::Room, body, Some(key), now);
                Ok(ok_room_event(f.id, f.room, seq))
            }
            ClientFrame::Broadcast(f) => self.room_message(key, f, false, now, hub),
            ClientFrame::Barrage(f) => self.room_message(key, f, true, now, hub),
            ClientFrame::Command(f) => {
                validate::message(&f.command).map_err(err)?;
                let (app, from) = self.member(key, &f.room)?;
                if !self.sessions.get_mut(&key).is_some_and(|s| s.commands.allow(now, cfg.command_rate)) {
                    return Err(err(ErrorCode::MessagesTooFrequent));
                }
                let rk = (app, f.room.clone());
                let recipients: Vec<SessionKey> = match self.rooms.get(&rk) {
                    Some(room) => room
                        .members
                        .keys()
                        .copied()
                        .filter(|k| *k != key)
                        .filter(|k| f.to.is_empty() || self.sessions.get(k).is_some_and(|s| f.to.contains(&s.user.id)))
                        .collect(),
                    None => Vec::new(),
                };
                for r in recipients {
                    if let Some(s) = self.sessions.get_mut(&r) {
                        let seq = s.direct.next_seq();
                        let bytes = encode(&ServerFrame::Event(Event {
                            room: f.room.clone(),
                            ch: Some(Channel::Direct),
                            seq: Some(seq),
                            body: EventBody::Command { from: from.clone(), command: f.command.clone(), time_ms },
                        }));
                        s.direct.push(bytes.clone(), now, false);
                        s.direct.trim(now, cfg.log_len, cfg.log_age);
                        if let Some(c) = &s.conn {
                            c.send(bytes);
                        }
                    }
                }
                Ok(OkFrame { id: f.id, room: Some(f.room), ..OkFrame::default() })
            }
            ClientFrame::RenewToken(f) => {
                let s = self.sessions.get_mut(&key).ok_or_else(|| err(ErrorCode::ResumeFailed))?;
                let secret = cfg.apps.get(&s.app).ok_or_else(|| err(ErrorCode::AuthFailed))?;
                let claims = token::verify(secret.as_bytes(), &f.token, s.app, &s.user.id, None, hub.clock.wall_s(now))
                    .map_err(err)?;
                for (room, m) in s.rooms.iter_mut() {
                    if claims.room_id.as_deref().is_none_or(|r| r == room) {
                        m.exp_s = claims.exp;
                        m.may_publish = claims.may_publish();
                        m.warned = false;
                    }
                }
                if claims.room_id.is_none() {
                    s.claims = claims;
                }
                Ok(OkFrame { id: f.id, ..OkFrame::default() })
            }
            ClientFrame::Hello(_) | ClientFrame::Resume(_) | ClientFrame::Ping(_) | ClientFrame::Bye(_) => {
                Err(err(ErrorCode::InvalidField))
            }
        }
    }
}
