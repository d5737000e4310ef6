//! The memory engine's state and the steps every operation is made of: enter a room, leave it,
//! kick, go offline, end a session, append an event to a channel.
//!
//! Everything here runs under the engine's one lock and calls the [`Deliver`] under it, which is
//! what keeps every session's frames in `seq` order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parlor_protocol::token::Claims;
use parlor_protocol::{
    stream_delete_reason, Channel, ErrorCode, EventBody, Kicked, RoomConfig, RoomState, Seqs, ServerFrame, User,
};
use tokio::time::Instant;

use super::log::ChannelLog;
use super::pending::Pending;
use super::room::Room;
use crate::config::ServerConfig;
use crate::engine::{Deliver, Grant, Joining, Refusal, RoomInfo, SessionKey};
use crate::frame::Frame;
use crate::named::Named;
use crate::outbox::close_code;
use crate::webhook::{Event, HookEvent, Hooks, LogoutReason};

pub(super) use super::room::RoomKey;

/// What a session holds for one of its rooms.
#[derive(Debug, Clone)]
pub(super) struct Membership {
    /// The login's settings (kept to enter again on resume).
    pub config: RoomConfig,
    /// What the token the room relies on allows, and until when.
    pub grant: Grant,
    /// Whether `token_will_expire` was sent for the current token.
    pub warned: bool,
}

/// An answer kept for a request that may be repeated after a resume.
#[derive(Debug, Clone)]
pub(super) enum Remembered {
    /// Applied with these seqs and message id.
    Done(Seqs, Option<String>),
    /// A login (or switch) that entered this room: a repeat gets the room's state as it is now.
    LoggedIn(String),
    /// Refused by the engine.
    Refusal(Refusal),
    /// Refused by the rules.
    Refused(ErrorCode, String),
}

/// One session.
#[derive(Debug)]
pub(super) struct Session {
    /// Its public id.
    pub public_id: String,
    /// The token a resume must present (rotated by every resume).
    pub resume_token: String,
    /// The token the last resume used, still valid until the client shows it holds the new
    /// one (its first frame after `resumed`, or a resume with it): a resume whose answer was
    /// lost can be retried (protocol §9.3).
    pub prev_token: Option<String>,
    /// The kicks the last resume reported, told again by its retry and forgotten when the
    /// client confirms the new token.
    pub told: Named<u32>,
    /// Its app.
    pub app: u32,
    /// Its user.
    pub user: User,
    /// The claims of the session's token (for logins without a token of their own).
    pub claims: Claims,
    /// When its last frame arrived.
    pub last_frame: Instant,
    /// Out of its rooms after the session timeout, kept for retention.
    pub offline: bool,
    /// The rooms it is in.
    pub rooms: Named<Membership>,
    /// Rooms left when the session went offline, to be entered again on resume.
    pub away: Named<Membership>,
    /// Rooms the session was kicked from, by code, until the client has heard of it.
    pub kicked: Named<u32>,
    /// Its `direct` channel.
    pub direct: ChannelLog,
    /// Recent answers by request id, oldest first.
    pub answers: VecDeque<(u64, Remembered)>,
    /// The highest request id executed.
    pub last_request: u64,
}

/// Why a member leaves a room.
#[derive(Debug, Clone)]
pub(super) enum Leave {
    /// `logout`, `switch` or `bye`.
    Logout,
    /// The session went offline.
    Offline,
    /// The same user logged in elsewhere (no user change for the others).
    Duplicate,
    /// Kicked with this code (admin 1002055, token expired 1002056).
    Kicked(ErrorCode, Option<serde_json::Value>),
    /// Kicked with 1002055 because the admin API closed the room.
    Closed(Option<serde_json::Value>),
}

impl Leave {
    /// The `user_logout` reason of the webhook.
    fn hook_reason(&self) -> LogoutReason {
        match self {
            Leave::Logout => LogoutReason::Logout,
            Leave::Offline => LogoutReason::Timeout,
            Leave::Duplicate => LogoutReason::DuplicateLogin,
            Leave::Kicked(ErrorCode::KickedTokenExpired, _) => LogoutReason::TokenExpired,
            Leave::Kicked(..) => LogoutReason::AdminKick,
            Leave::Closed(_) => LogoutReason::RoomClosed,
        }
    }
}

/// Every session and room of the process.
pub(super) struct State {
    /// Boxed: the table's spare capacity then costs a pointer per slot, not a whole session.
    pub sessions: HashMap<SessionKey, Box<Session>>,
    /// Public id → key.
    pub by_public: HashMap<String, SessionKey>,
    /// Rooms by app and id.
    pub rooms: HashMap<RoomKey, Room>,
    /// Stream ids published in each app, with owner and room.
    pub streams: HashMap<(u32, String), (SessionKey, String)>,
    /// The last session key given out.
    pub next_session: SessionKey,
    /// Where events go.
    pub deliver: Arc<dyn Deliver>,
    /// Where webhook events go.
    pub hooks: Arc<dyn Hooks>,
    /// Set while a batch of logins is applied ([`super::batch`]): `enter` then defers the
    /// room's `user_add` and the new member's delivery to the batch's announcement.
    pub batching: bool,
    /// The rooms with logins not yet announced, in order, with what they defer.
    pub pending: Vec<Pending>,
    /// The server's settings (which rooms are large, §9.10).
    pub config: Arc<ServerConfig>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("sessions", &self.sessions.len()).field("rooms", &self.rooms.len()).finish()
    }
}

/// A random opaque id (session ids, resume tokens, epochs).
pub(super) fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl State {
    /// A room as the admin API shows it.
    pub fn room_info(&self, id: &str, r: &Room) -> RoomInfo {
        RoomInfo {
            room: id.to_string(),
            room_session: r.epoch.clone(),
            users: r.members.keys().filter_map(|k| self.sessions.get(k).map(|s| s.user.clone())).collect(),
            streams: r.stream_list(),
            extra: r.extra_list(),
        }
    }

    /// Emit the webhook event `event()` of room `rk` (built only when the app has webhooks).
    pub fn hook(&self, rk: &RoomKey, now: Instant, event: impl FnOnce() -> Event) {
        if !self.hooks.wants(rk.0) {
            return;
        }
        let Some(room) = self.rooms.get(rk) else {
            return;
        };
        let ev = HookEvent { room: rk.1.clone(), room_session: room.epoch.clone(), event: event() };
        self.hooks.emit(rk.0, now, ev);
    }

    /// Send a frame to one session.
    pub fn send(&self, key: SessionKey, frame: &ServerFrame) {
        self.deliver.to_session(key, Frame::encode(frame));
    }

    /// Append an event to a room channel and publish it to every member but `author`. Returns
    /// its seq.
    pub fn emit(
        &mut self,
        rk: &RoomKey,
        ch: Channel,
        body: EventBody,
        author: Option<SessionKey>,
        now: Instant,
    ) -> u64 {
        let Some(room) = self.rooms.get_mut(rk) else {
            return 0;
        };
        let is_message = matches!(body, EventBody::Broadcast { .. } | EventBody::Barrage { .. });
        let log = if ch == Channel::Users { &mut room.users_log } else { &mut room.room_log };
        let seq = log.next_seq();
        let frame = Frame::event(&rk.1, Some(ch), Some(seq), body);
        log.push(frame.clone(), now, is_message);
        self.deliver.room_event(rk.0, &rk.1, Some(ch), seq, &frame, author);
        metrics::counter!("parlor_events_total").increment(1);
        seq
    }

    /// The room state a login `ok` or a `snapshot` carries for `key`.
    pub fn room_state(&self, rk: &RoomKey, key: SessionKey) -> Option<(RoomState, Seqs)> {
        self.room_state_listing(rk, key, true)
    }

    /// [`State::room_state`], with `users` left empty unless `list_users`.
    pub fn room_state_listing(&self, rk: &RoomKey, key: SessionKey, list_users: bool) -> Option<(RoomState, Seqs)> {
        let room = self.rooms.get(rk)?;
        let notify = room.members.get(&key).copied().unwrap_or(false);
        // A large room's list is its first page and the cursor of the rest (§9.10).
        let large = self.config.is_large(rk.0, room.members.len());
        let mut users_next = None;
        let users = notify.then(|| {
            if large {
                let me = self.sessions.get(&key).map(|s| s.user.id.as_str()).unwrap_or("");
                let (page, next) = room.page_without(me, super::presence::PAGE);
                users_next = Some(next);
                return page.iter().filter_map(|k| self.sessions.get(k).map(|s| s.user.clone())).collect();
            }
            if !list_users {
                return Vec::new();
            }
            room.members
                .keys()
                .filter(|k| **k != key)
                .filter_map(|k| self.sessions.get(k).map(|s| s.user.clone()))
                .collect()
        });
        let state = RoomState {
            users,
            users_next,
            streams: room.stream_list(),
            extra: room.extra_list(),
            online: room.members.len() as u32,
            room_session: room.epoch.clone(),
        };
        Some((state, Self::seqs_in(room, notify)))
    }

    /// The seqs a member of `room` is at (`notify`: it gets the `users` channel).
    fn seqs_in(room: &Room, notify: bool) -> Seqs {
        Seqs { room: Some(room.room_log.last()), users: notify.then(|| room.users_log.last()), direct: None }
    }

    /// [`State::room_state`]'s seqs alone, for `key` in room `rk`: no list is built.
    pub fn seqs_of(&self, rk: &RoomKey, key: SessionKey) -> Option<Seqs> {
        let room = self.rooms.get(rk)?;
        let notify = room.members.get(&key).copied().unwrap_or(false);
        Some(Self::seqs_in(room, notify))
    }

    /// Put `key` in `room`: create the room if needed, kick an older session of the same user,
    /// tell the others. Returns the login `ok` fields.
    pub fn enter(
        &mut self,
        key: SessionKey,
        room_id: &str,
        membership: Membership,
        now: Instant,
        cfg: &ServerConfig,
    ) -> Result<(RoomState, Seqs), Refusal> {
        let (app, user) = match self.sessions.get(&key) {
            Some(s) => (s.app, s.user.clone()),
            None => return Err(Refusal::NoSession),
        };
        let rk: RoomKey = (app, room_id.to_string());
        let older = self.rooms.get(&rk).and_then(|r| r.by_user.get(user.id.as_str()).copied()).filter(|k| *k != key);
        if let Some(room) = self.rooms.get(&rk) {
            let others = room.members.len() - usize::from(older.is_some());
            if room.max_members > 0 && others >= room.max_members as usize {
                return Err(Refusal::RoomFull);
            }
        }
        if let Some(older) = older {
            self.kick(older, room_id, Leave::Duplicate, now);
        }
        let notify = membership.config.user_status_notify;
        let created = !self.rooms.contains_key(&rk);
        let room = self
            .rooms
            .entry(rk.clone())
            .or_insert_with(|| Room::new(random_id(), membership.config.max_members, now, cfg.online_interval));
        room.members.insert(key, notify);
        room.by_user.insert(user.id.as_str().into(), key);
        if created {
            self.hook(&rk, now, || Event::RoomCreated);
        }
        let added = older.is_none().then(|| user.clone());
        let session = self.sessions.get(&key).map(|s| s.public_id.clone()).unwrap_or_default();
        self.hook(&rk, now, || Event::UserLogin { user, session });
        if let Some(s) = self.sessions.get_mut(&key) {
            s.kicked.remove(room_id);
            s.rooms.insert(room_id.to_string(), membership);
        }
        if self.batching {
            // The room state is filled in when the batch is announced.
            let i = match self.pending.iter().position(|p| p.room == rk) {
                Some(i) => i,
                None => {
                    self.pending.push(Pending::new(rk));
                    self.pending.len() - 1
                }
            };
            self.pending[i].users.extend(added);
            self.pending[i].joiners.push((key, notify));
            return Ok((RoomState::default(), Seqs::default()));
        }
        if let Some(user) = added {
            self.announce_added(&rk, vec![user], Some(key), now);
        }
        let entered = self.room_state(&rk, key).ok_or(Refusal::NoSession)?;
        self.deliver.joined(app, room_id, key, notify, entered.1, Joining::default());
        Ok(entered)
    }

    /// Whether `key`'s user has a login pending in room `room_id` of the current batch (a
    /// second login of the same user must see the first one announced: it kicks it).
    pub fn pending_user(&self, key: SessionKey, room_id: &str) -> bool {
        let Some(s) = self.sessions.get(&key) else {
            return false;
        };
        let rk: RoomKey = (s.app, room_id.to_string());
        let Some(older) = self.rooms.get(&rk).and_then(|r| r.by_user.get(s.user.id.as_str())) else {
            return false;
        };
        self.pending.iter().filter(|p| p.room == rk).any(|p| p.joiners.iter().any(|(k, _)| k == older))
    }

    /// Take `key` out of `room_id`, deleting its streams and telling the others as `why` says.
    /// Returns the seqs of the events produced.
    pub fn leave(&mut self, key: SessionKey, room_id: &str, why: &Leave, now: Instant) -> Seqs {
        let Some(s) = self.sessions.get_mut(&key) else {
            return Seqs::default();
        };
        let membership = s.rooms.remove(room_id);
        let (app, user) = (s.app, s.user.clone());
        if let Leave::Offline = why {
            if let Some(m) = membership {
                s.away.insert(room_id.to_string(), m);
            }
        }
        let rk: RoomKey = (app, room_id.to_string());
        self.before_leave(&rk, key, now);
        let Some(room) = self.rooms.get_mut(&rk) else {
            return Seqs::default();
        };
        if room.members.remove(&key).is_none() {
            return Seqs::default();
        }
        if room.by_user.get(user.id.as_str()) == Some(&key) {
            room.by_user.remove(user.id.as_str());
        }
        self.deliver.left(app, room_id, key, Joining::default());
        let streams = room.streams_of(key);
        let host = !streams.is_empty();
        room.streams.retain(|_, e| e.owner != key);
        for st in &streams {
            self.streams.remove(&(app, st.id.clone()));
        }
        let reason = match why {
            Leave::Logout => stream_delete_reason::LOGGED_OUT,
            Leave::Offline => stream_delete_reason::HEARTBEAT_TIMEOUT,
            Leave::Duplicate => stream_delete_reason::DUPLICATE_LOGIN,
            Leave::Kicked(..) | Leave::Closed(_) => stream_delete_reason::KICKED,
        };
        let mut seq = Seqs::default();
        for stream in &streams {
            self.hook(&rk, now, || Event::StreamDeleted { stream: stream.clone(), reason });
        }
        if !streams.is_empty() {
            seq.room = Some(self.emit(&rk, Channel::Room, EventBody::StreamDelete { streams, reason }, Some(key), now));
        }
        let session = self.sessions.get(&key).map(|s| s.public_id.clone()).unwrap_or_default();
        self.hook(&rk, now, || Event::UserLogout { user: user.clone(), session, reason: why.hook_reason() });
        if !matches!(why, Leave::Duplicate) {
            seq.users = self.announce_deleted(&rk, user, key, host, now);
        }
        if self.rooms.get(&rk).is_some_and(|r| r.members.is_empty()) {
            self.hook(&rk, now, || Event::RoomClosed);
            self.rooms.remove(&rk);
        }
        seq
    }

    /// Kick `key` out of `room_id`: the `kicked` frame, and close 4009 when no room is left.
    pub fn kick(&mut self, key: SessionKey, room_id: &str, why: Leave, now: Instant) {
        self.leave(key, room_id, &why, now);
        let (code, extended_data) = match why {
            Leave::Duplicate => (ErrorCode::KickedDuplicateLogin, None),
            Leave::Kicked(code, extended) => (code, extended),
            Leave::Closed(extended) => (ErrorCode::KickedByServer, extended),
            Leave::Logout | Leave::Offline => return,
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.kicked.insert(room_id.to_string(), code.code());
        tracing::info!(session = %s.public_id, user = %s.user.id, room = room_id, code = code.code(), "kicked");
        let no_room_left = s.rooms.is_empty();
        self.send(key, &ServerFrame::Kicked(Kicked { room: room_id.to_string(), code: code.code(), extended_data }));
        if no_room_left {
            self.deliver.close(key, None, close_code::KICKED, "kicked out of every room", false);
        }
    }

    /// The offline sessions beyond the `cap` most recently heard from (none when `cap` is 0 or
    /// not reached): the memory that sessions nobody may come back for can hold is bounded, and
    /// the first to go are those least likely to resume.
    pub fn over_offline_cap(&self, cap: usize) -> Vec<SessionKey> {
        // Counted first: the common case, under the cap, allocates nothing.
        if cap == 0 || self.sessions.values().filter(|s| s.offline).count() <= cap {
            return Vec::new();
        }
        let mut offline: Vec<(Instant, SessionKey)> =
            self.sessions.iter().filter(|(_, s)| s.offline).map(|(k, s)| (s.last_frame, *k)).collect();
        let excess = offline.len() - cap;
        offline.select_nth_unstable(excess - 1);
        offline.truncate(excess);
        offline.into_iter().map(|(_, k)| k).collect()
    }

    /// The session has been silent for `session_timeout`: out of every room, kept for retention.
    pub fn go_offline(&mut self, key: SessionKey, now: Instant) {
        let rooms: Vec<String> = match self.sessions.get_mut(&key) {
            Some(s) => {
                s.offline = true;
                tracing::info!(session = %s.public_id, user = %s.user.id, "offline");
                s.rooms.keys().cloned().collect()
            }
            None => return,
        };
        self.deliver.close(key, None, close_code::GOING_AWAY, "session timed out", true);
        for room in rooms {
            self.leave(key, &room, &Leave::Offline, now);
        }
    }

    /// `bye`: out of every room, not resumable.
    pub fn end_session(&mut self, key: SessionKey, now: Instant) {
        let rooms: Vec<String> = self.sessions.get(&key).map(|s| s.rooms.keys().cloned().collect()).unwrap_or_default();
        for room in rooms {
            self.leave(key, &room, &Leave::Logout, now);
        }
        if let Some(s) = self.sessions.remove(&key) {
            self.by_public.remove(&s.public_id);
            self.deliver.close(key, None, close_code::NORMAL, "bye", false);
            tracing::info!(session = %s.public_id, user = %s.user.id, "bye");
        }
    }
}
