//! Resume (protocol §6): a session's new connection, its return to the rooms it left when it went
//! offline, and the replay or snapshot of every room, then the missed direct events.

use super::*;

impl Hub {
    /// Resume a session on a new connection (§6): `resumed`, the replays and snapshots, the
    /// missed direct events, `resume_done` are queued on `conn`.
    pub fn resume(&self, r: Resume, conn: Outbox, now: Instant) -> Result<SessionKey, (ErrorCode, String)> {
        let mut st = self.state.lock();
        let key = match st.by_public.get(&r.session) {
            Some(k) => *k,
            None => return Err(err_with(ErrorCode::ResumeFailed, "unknown or expired session")),
        };
        let Some(s) = st.sessions.get_mut(&key) else {
            return Err(err_with(ErrorCode::ResumeFailed, "unknown or expired session"));
        };
        if s.resume_token != r.resume_token {
            return Err(err_with(ErrorCode::ResumeFailed, "wrong resume token"));
        }
        s.last_frame = now;
        s.resume_token = random_id();
        let was_offline = std::mem::take(&mut s.offline);
        let away = std::mem::take(&mut s.away);
        tracing::info!(session = %s.public_id, user = %s.user.id, offline = was_offline, "resume");
        if let Some(old) = st.set_conn(key, None) {
            old.abort(close_code::GOING_AWAY, "replaced by a resume");
        }
        // An offline session goes back into the rooms it was removed from.
        for (room, m) in away {
            let config = m.config.clone();
            if let Err((code, _)) = st.enter(key, &room, config, m, now, &self.config) {
                if let Some(s) = st.sessions.get_mut(&key) {
                    s.kicked.insert(room, code.code());
                }
            }
        }
        // Only now the new connection is attached: what the return to the rooms caused reaches
        // the client through the replay, after `resumed`, never before it.
        st.set_conn(key, Some(conn));
        st.resume_replay(key, &r.ack, now, &self.clock);
        Ok(key)
    }
}

impl State {
    /// After `resumed`: per room a replay or a snapshot, then direct events, then `resume_done`.
    pub(super) fn resume_replay(&mut self, key: SessionKey, ack: &Ack, now: Instant, clock: &Clock) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let app = s.app;
        let mut rooms = BTreeMap::new();
        let mut frames: Vec<Utf8Bytes> = Vec::new();
        let mut room_ids: Vec<String> = s.rooms.keys().cloned().collect();
        for r in ack.rooms.keys() {
            if !s.rooms.contains_key(r) {
                room_ids.push(r.clone());
            }
        }
        for room_id in room_ids {
            let Some(s) = self.sessions.get(&key) else {
                return;
            };
            if !s.rooms.contains_key(&room_id) {
                if let Some(code) = s.kicked.get(&room_id) {
                    rooms.insert(room_id.clone(), format!("kicked:{code}"));
                }
                continue;
            }
            let rk: RoomKey = (app, room_id.clone());
            let Some(room) = self.rooms.get(&rk) else {
                continue;
            };
            let notify = room.members.get(&key).is_some_and(|m| m.notify);
            let replay = ack.rooms.get(&room_id).filter(|a| a.epoch == room.epoch).and_then(|a| {
                let room_events = room.room_log.since(a.room)?;
                let mut out: Vec<Utf8Bytes> = room_events.map(|e| e.bytes.clone()).collect();
                if notify {
                    out.extend(room.users_log.since(a.users)?.map(|e| e.bytes.clone()));
                }
                Some(out)
            });
            match replay {
                Some(events) => {
                    rooms.insert(room_id.clone(), "replay".to_string());
                    frames.extend(events);
                }
                None => {
                    rooms.insert(room_id.clone(), "snapshot".to_string());
                    let missed_messages = match ack.rooms.get(&room_id) {
                        Some(a) if a.epoch == room.epoch => room.room_log.lost_messages_after(a.room),
                        _ => room.room_log.had_messages(),
                    };
                    if let Some((state, seq)) = self.room_state(&rk, key) {
                        frames.push(encode(&ServerFrame::Snapshot(Snapshot {
                            room: room_id.clone(),
                            state,
                            seq,
                            missed_messages,
                        })));
                    }
                }
            }
        }
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let direct: Vec<Utf8Bytes> = match s.direct.since(ack.direct) {
            Some(events) => events.map(|e| e.bytes.clone()).collect(),
            // The gap is gone: send what is kept.
            None => s.direct.since(0).map(|e| e.map(|e| e.bytes.clone()).collect()).unwrap_or_default(),
        };
        for room in rooms.iter().filter(|(_, v)| v.starts_with("kicked:")).map(|(k, _)| k.clone()).collect::<Vec<_>>() {
            s.kicked.remove(&room);
        }
        s.send(&ServerFrame::Resumed(Resumed {
            session: s.public_id.clone(),
            resume_token: s.resume_token.clone(),
            rooms: rooms.into_iter().map(|(k, v)| (k, v.parse().expect("replay, snapshot or kicked:<code>"))).collect(),
            heartbeat_ms: None,
            server_time_ms: Some(clock.wall_ms(now)),
        }));
        if let Some(c) = &s.conn {
            for f in frames.into_iter().chain(direct) {
                c.send(f);
            }
        }
        s.send(&ServerFrame::ResumeDone(ResumeDone {}));
    }
}
