//! Resume in the memory engine (protocol §6): a session's new connection, its return to the
//! rooms it left when it went offline, and the replay or snapshot of every room, then the
//! missed direct events.

use std::collections::BTreeMap;

use parlor_protocol::{Ack, ResumeDone, ResumeOutcome, Resumed as ResumedFrame, ServerFrame, Snapshot};
use tokio::time::Instant;

use super::state::{random_id, RoomKey, State};
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{ConnId, ResumeRefused, Resumed, SessionKey};
use crate::frame::Frame;
use crate::outbox::close_code;

impl State {
    /// See [`Engine::resume`](crate::engine::Engine::resume).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resume(
        &mut self,
        session: &str,
        resume_token: &str,
        ack: &Ack,
        conn: ConnId,
        now: Instant,
        cfg: &ServerConfig,
        clock: &Clock,
    ) -> Result<Resumed, ResumeRefused> {
        let key = *self.by_public.get(session).ok_or(ResumeRefused("unknown or expired session"))?;
        let s = self.sessions.get_mut(&key).ok_or(ResumeRefused("unknown or expired session"))?;
        // A retry with the token the last resume used, before the client confirmed the new one:
        // the same outcome, the same new token (§9.3, "A resume can be retried").
        let retry = s.prev_token.as_deref().is_some_and(|p| crate::secret::same_secret(p, resume_token));
        if !retry && !crate::secret::same_secret(&s.resume_token, resume_token) {
            return Err(ResumeRefused("wrong resume token"));
        }
        s.last_frame = now;
        if retry {
            for (room, code) in std::mem::take(&mut s.told) {
                if !s.kicked.contains_key(&room) {
                    s.kicked.insert(room, code);
                }
            }
        } else {
            s.prev_token = Some(std::mem::replace(&mut s.resume_token, random_id()));
            s.told = Default::default();
        }
        let was_offline = std::mem::take(&mut s.offline);
        let away = std::mem::take(&mut s.away);
        let resumed = Resumed {
            key,
            app: s.app,
            user: s.user.clone(),
            claims: s.claims.clone(),
            last_request: s.last_request,
            resume_token: s.resume_token.clone(),
        };
        tracing::info!(session = %s.public_id, user = %s.user.id, offline = was_offline, "resume");
        self.deliver.close(key, None, close_code::GOING_AWAY, "replaced by a resume", true);
        // An offline session goes back into the rooms it was removed from.
        for (room, m) in away {
            let failed = match self.enter(key, &room, m, now, cfg) {
                Ok(_) => None,
                Err(refusal) => Some(refusal.error(false).0),
            };
            if let (Some(code), Some(s)) = (failed, self.sessions.get_mut(&key)) {
                s.kicked.insert(room, code.code());
            }
        }
        // Only now the new connection is attached: what the return to the rooms caused reaches
        // the client through the replay, after `resumed`, never before it.
        self.deliver.bind(key, conn);
        self.resume_replay(key, ack, now, clock);
        Ok(resumed)
    }

    /// The client holds `token`, the one its last `resumed` carried: the token that resume used
    /// is void from now on, and the kicks it reported are forgotten.
    pub(super) fn confirm(&mut self, key: SessionKey, token: &str) {
        if let Some(s) = self.sessions.get_mut(&key) {
            if crate::secret::same_secret(&s.resume_token, token) {
                s.prev_token = None;
                s.told = Default::default();
            }
        }
    }

    /// After `resumed`: per room a replay or a snapshot, then direct events, then `resume_done`.
    fn resume_replay(&mut self, key: SessionKey, ack: &Ack, now: Instant, clock: &Clock) {
        let Some(s) = self.sessions.get(&key) else {
            return;
        };
        let app = s.app;
        let mut rooms = BTreeMap::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut room_ids: Vec<String> = s.rooms.keys().cloned().collect();
        for r in ack.rooms.keys() {
            if !s.rooms.contains_key(r) {
                room_ids.push(r.clone());
            }
        }
        // By room id, as the Redis engine does: the same replay order on every engine.
        room_ids.sort();
        for room_id in room_ids {
            if !s.rooms.contains_key(&room_id) {
                if let Some(code) = s.kicked.get(&room_id) {
                    rooms.insert(room_id.clone(), ResumeOutcome::Kicked(*code));
                }
                continue;
            }
            let rk: RoomKey = (app, room_id.clone());
            let Some(room) = self.rooms.get(&rk) else {
                continue;
            };
            let notify = room.members.get(&key).copied().unwrap_or(false);
            let replay = ack.rooms.get(&room_id).filter(|a| a.epoch == room.epoch).and_then(|a| {
                let room_events = room.room_log.since(a.room)?;
                let mut out: Vec<Frame> = room_events.map(|e| e.bytes.clone()).collect();
                if notify {
                    out.extend(room.users_log.since(a.users)?.map(|e| e.bytes.clone()));
                }
                Some(out)
            });
            match replay {
                Some(events) => {
                    rooms.insert(room_id.clone(), ResumeOutcome::Replay);
                    frames.extend(events);
                }
                None => {
                    rooms.insert(room_id.clone(), ResumeOutcome::Snapshot);
                    let missed_messages = match ack.rooms.get(&room_id) {
                        Some(a) if a.epoch == room.epoch => room.room_log.lost_messages_after(a.room),
                        _ => room.room_log.had_messages(),
                    };
                    if let Some((state, seq)) = self.room_state(&rk, key) {
                        let snapshot = Snapshot { room: room_id.clone(), state, seq, missed_messages };
                        frames.push(Frame::encode(&ServerFrame::Snapshot(snapshot)));
                    }
                }
            }
        }
        let direct: Vec<Frame> = match s.direct.since(ack.direct) {
            Some(events) => events.map(|e| e.bytes.clone()).collect(),
            // The gap is gone: send what is kept.
            None => s.direct.since(0).map(|e| e.map(|e| e.bytes.clone()).collect()).unwrap_or_default(),
        };
        let resumed = ServerFrame::Resumed(ResumedFrame {
            session: s.public_id.clone(),
            resume_token: s.resume_token.clone(),
            rooms: rooms.clone(),
            heartbeat_ms: None,
            server_time_ms: Some(clock.wall_ms(now)),
        });
        if let Some(s) = self.sessions.get_mut(&key) {
            for (room, outcome) in &rooms {
                if let ResumeOutcome::Kicked(code) = outcome {
                    // Told: forgotten once the client confirms the new token, told again to a
                    // retry before that.
                    s.kicked.remove(room);
                    s.told.insert(room.clone(), *code);
                }
            }
        }
        // The replay does not count toward the outbound limit (see `Deliver::replay`).
        self.deliver.replay(key, Frame::encode(&resumed));
        for f in frames.into_iter().chain(direct) {
            self.deliver.replay(key, f);
        }
        self.deliver.replay(key, Frame::encode(&ServerFrame::ResumeDone(ResumeDone {})));
    }
}
