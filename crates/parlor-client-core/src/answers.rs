//! The answers to requests: `ok` and `error` with an `id`, and what each does to the rooms.

use parlor_protocol::{ClientFrame, ErrorCode, ErrorFrame, Logout, OkFrame, RoomExtraItem, RoomState, Seqs, Stream};
use serde_json::{json, Value};

use crate::core::{no_data, Core};
use crate::event::{AppEvent, ExtraInfo, MemberPage, RoomStateReason};
use crate::requests::{Kind, Pending, Wire};
use crate::timer::Timer;
use crate::view::RoomView;

impl Core {
    pub(crate) fn on_ok(&mut self, ok: OkFrame) {
        self.requests.served();
        let Some(p) = self.requests.take_answered(ok.id) else {
            tracing::debug!(id = ok.id, "ok for no request");
            // A login's `ok` (it carries the room's state) that no request awaits: a login the
            // app gave up and the core forgot when its connection was lost, which a stalled path
            // delivered late, and which ran after the resume (so `resumed` could not name the
            // room). The server has us in the room: leave it unless the app wants it.
            if let (Some(room), Some(_)) = (ok.room.clone(), ok.room_session.as_ref()) {
                self.abandon_unless_wanted(room);
            }
            return;
        };
        match p.kind {
            Kind::Login { room } | Kind::Switch { to: room } => {
                if !self.rooms.get(&room).is_some_and(|r| r.phase().is_logining()) {
                    self.abandon_unless_wanted(room);
                    return;
                }
                let state = ok.room_state().unwrap_or_default();
                self.logined(&room, &state, &ok.seq, p.handle);
            }
            Kind::Relogin { room } => {
                if !self.rooms.get(&room).is_some_and(|r| r.phase().is_relogining()) {
                    self.abandon_unless_wanted(room);
                    return;
                }
                let state = ok.room_state().unwrap_or_default();
                self.relogined(&room, &state, &ok.seq);
            }
            Kind::Logout { room } => {
                self.forget_room(&room);
                self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
                self.report(&room, RoomStateReason::Logout, 0, no_data());
                self.result(p.handle, 0, None);
            }
            Kind::Publish { room, stream, extra } => {
                self.saw_seqs(Some(&room), &ok.seq);
                let user = self.user.clone().unwrap_or_default();
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.own.insert(stream.clone(), extra.clone());
                    r.view.streams.insert(stream.clone(), Stream { id: stream, user, extra });
                }
                self.result(p.handle, 0, None);
            }
            Kind::Republish { room, stream } => {
                self.saw_seqs(Some(&room), &ok.seq);
                let user = self.user.clone().unwrap_or_default();
                if let Some(r) = self.rooms.get_mut(&room) {
                    if let Some(extra) = r.own.get(&stream).cloned() {
                        r.view.streams.insert(stream.clone(), Stream { id: stream, user, extra });
                    }
                }
            }
            Kind::Unpublish { room, stream } => {
                self.saw_seqs(Some(&room), &ok.seq);
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.view.streams.remove(&stream);
                }
                self.result(p.handle, 0, None);
            }
            Kind::StreamExtra { room, stream, extra } => {
                self.saw_seqs(Some(&room), &ok.seq);
                if let Some(r) = self.rooms.get_mut(&room) {
                    if let Some(e) = r.own.get_mut(&stream) {
                        *e = extra.clone();
                    }
                    if let Some(s) = r.view.streams.get_mut(&stream) {
                        s.extra = extra;
                    }
                }
                self.result(p.handle, 0, None);
            }
            Kind::RenewToken { token } => {
                self.token = token.clone();
                for r in self.rooms.values_mut() {
                    r.token = Some(token.clone());
                }
                self.result(p.handle, 0, None);
            }
            Kind::QuietLogout => {}
            Kind::Abandoned { room } => self.abandon_unless_wanted(room),
            Kind::Members => {
                // A page of a room whose view is partial (§9.10) is what the app now lists: its
                // users join the view, so that their later changes are reported.
                let room = ok.room.clone().or_else(|| p.needs_room.clone()).unwrap_or_default();
                let me = self.me();
                if let Some(r) = self.rooms.get_mut(&room).filter(|r| r.view.users_partial) {
                    for u in ok.users.iter().flatten().filter(|u| u.id != me) {
                        r.view.users.insert(u.id.clone(), u.clone());
                    }
                }
                let page = MemberPage {
                    room: ok.room.clone().unwrap_or_default(),
                    users: ok.users.clone().unwrap_or_default(),
                    count: ok.count.unwrap_or(0),
                    next_flag: ok.next.clone().unwrap_or_default(),
                };
                if let Some(handle) = p.handle {
                    self.emit(AppEvent::Result { handle, error_code: None, message_id: None, members: Some(page) });
                }
            }
            Kind::RoomExtra { room, key, value } => {
                // The app takes a successful set as the key's value. When a later change of the
                // key is already applied (this `ok` is a recalled answer, come after the replay
                // that carried the change), the app is told that newer value after the result,
                // or it would keep ours (sim seed 9146734).
                let user = self.user.clone().unwrap_or_default();
                let item = RoomExtraItem { key, value, user, time_ms: 0 };
                let newer = self
                    .rooms
                    .get_mut(&room)
                    .filter(|r| r.phase().is_in())
                    .and_then(|r| r.own_extra_set(item, ok.seq.room));
                self.saw_seqs(Some(&room), &ok.seq);
                self.result(p.handle, 0, None);
                if let Some(item) = newer {
                    self.emit(AppEvent::RoomExtraInfoUpdate { room, extra: vec![ExtraInfo::from(&item)] });
                }
            }
            Kind::Plain => {
                let room = ok.room.clone().or_else(|| p.needs_room.clone());
                self.saw_seqs(room.as_deref(), &ok.seq);
                self.result(p.handle, 0, ok.message_id);
            }
            Kind::Left => {
                self.saw_seqs(None, &ok.seq);
                self.result(p.handle, 0, ok.message_id);
            }
        }
    }

    pub(crate) fn on_error(&mut self, now: u64, e: ErrorFrame) {
        let Some(id) = e.id else {
            self.on_session_error(now, e);
            return;
        };
        if e.code == ErrorCode::ServiceUnavailable.code() {
            if self.retry_later(now, id) {
                return;
            }
        } else {
            self.requests.served();
        }
        let Some(p) = self.requests.take_answered(id) else {
            return;
        };
        self.fail_request(p, e.code);
    }

    /// A request failed with `code` (its `error`, or a 1000004 retried until its deadline).
    pub(crate) fn fail_request(&mut self, p: Pending, code: u32) {
        match p.kind {
            Kind::Login { room } | Kind::Switch { to: room } => {
                if self.rooms.get(&room).is_some_and(|r| r.phase().is_logining()) {
                    self.remove_room(&room, RoomStateReason::LoginFailed, code, no_data(), code);
                }
                self.result(p.handle, code, None);
            }
            Kind::Relogin { room } => {
                let fail = ErrorCode::ReconnectFailed.code();
                if self.rooms.get(&room).is_some_and(|r| r.phase().is_relogining()) {
                    self.remove_room(&room, RoomStateReason::ReconnectFailed, fail, json!({"code": code}), fail);
                }
                self.stop_window_if_back();
            }
            Kind::Logout { room } => {
                if code == ErrorCode::NotInRoomLogout.code() {
                    self.forget_room(&room);
                    self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
                }
                self.report(&room, RoomStateReason::LogoutFailed, code, no_data());
                self.result(p.handle, code, None);
            }
            Kind::Republish { room, stream } => {
                tracing::warn!(room, stream, code, "re-publish refused");
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.own.remove(&stream);
                }
            }
            Kind::QuietLogout => {}
            _ => self.result(p.handle, code, None),
        }
    }

    /// Raise the acks to the seqs an `ok` names: `room`'s channels and the direct channel.
    pub(crate) fn saw_seqs(&mut self, room: Option<&str>, seq: &Seqs) {
        if let Some(r) = room.and_then(|r| self.rooms.get_mut(r)) {
            r.saw_seqs(seq);
        }
        if let Some(n) = seq.direct {
            self.direct_seq = self.direct_seq.max(n);
        }
    }

    /// A login succeeded (by its `ok`, or by the snapshot of a resume): LOGINED, then what the
    /// room holds.
    pub(crate) fn logined(&mut self, room: &str, state: &RoomState, seq: &Seqs, handle: Option<u64>) {
        let me = self.me();
        let view = RoomView::from_state(state, &me);
        self.timers.stop(&Timer::Login(room.to_string()));
        if let Some(r) = self.rooms.get_mut(room) {
            r.entered(state, seq, view.clone());
        }
        self.report(room, RoomStateReason::Logined, 0, json!({"room_session_id": state.room_session}));
        for e in view.initial_events(room, &me) {
            self.emit(e);
        }
        self.result(handle, 0, None);
        self.flush();
    }

    /// We are in `room` on the server but the app gave up on it: leave quietly.
    pub(crate) fn abandon(&mut self, room: String) {
        self.request(ClientFrame::Logout(Logout { id: 0, room }), Kind::QuietLogout, None, None);
    }

    /// A login the app gave up was answered `ok`: the server has us in `room`. If the app is in
    /// the room or entering it again, a logout now would take that away (a later login, behind a
    /// switch out of the room, re-enters it: sim seed 4012098): that login's own answer decides,
    /// and if it fails the room is left ([`crate::room::Room::on_server`]). Otherwise leave
    /// quietly.
    pub(crate) fn abandon_unless_wanted(&mut self, room: String) {
        match self.rooms.get_mut(&room) {
            Some(r) if r.phase().is_logging_in() => r.on_server = true,
            Some(_) => {}
            None => self.abandon(room),
        }
    }

    /// Fail every request that needs `room` (and a login for it), with `code`.
    pub(crate) fn fail_room_requests(&mut self, room: &str, code: u32) {
        let failed =
            self.requests.take_where(|p| p.needs_room.as_deref() == Some(room) || p.kind.login_room() == Some(room));
        for (key, p) in failed {
            let in_flight = matches!(p.wire, Wire::InFlight(_));
            self.result(p.handle, code, None);
            if p.kind.login_room().is_some() && in_flight {
                // The server may still put us in the room: keep it, without a handle, so that
                // its `ok` is answered with a logout.
                let kind = Kind::Abandoned { room: room.to_string() };
                self.requests.put_back(key, Pending { handle: None, kind, ..p });
            }
        }
    }

    /// The app leaves `room` by a switch: its requests not sent yet fail with 1009005, but the
    /// messages, commands, extra info and stream calls already sent stay until the server
    /// answers them (see [`Core::take_sent_room_requests`]): it executes them before the switch,
    /// which follows them. (A logout under way fails as before: the switch reports the room's
    /// LOGOUT.)
    pub(crate) fn leave_room_requests(&mut self, room: &str) {
        let sent = self.take_sent_room_requests(room);
        self.fail_room_requests(room, ErrorCode::NotInRoom.code());
        self.answer_as_left(sent);
    }

    /// The room's messages, commands, extra info and stream calls already sent (on the wire, or
    /// on a connection since lost, to go again with their id), taken out before the room is
    /// left: the server may have executed them while the session was still in the room, so
    /// failing them would be a guess. Given back by [`Core::answer_as_left`].
    pub(crate) fn take_sent_room_requests(&mut self, room: &str) -> Vec<(u64, Pending)> {
        self.requests.take_where(|p| {
            p.needs_room.as_deref() == Some(room)
                && p.wire.id().is_some()
                && matches!(
                    p.kind,
                    Kind::Plain
                        | Kind::RoomExtra { .. }
                        | Kind::Publish { .. }
                        | Kind::Unpublish { .. }
                        | Kind::StreamExtra { .. }
                )
        })
    }

    /// Requests of a room since left, kept until the server answers them (from memory, by their
    /// id, if it ran them in that life of the room; otherwise with an error): their answers only
    /// report a result ([`Kind::Left`]) and touch no later life of the room.
    pub(crate) fn answer_as_left(&mut self, sent: Vec<(u64, Pending)>) {
        for (key, p) in sent {
            self.requests.put_back(key, Pending { needs_room: None, kind: Kind::Left, ..p });
        }
    }

    /// The server took us out of `room` (a live `kicked`, or `kicked:<code>` in `resumed`): the
    /// app gets KICK_OUT, requests not sent yet fail with `code`, but those already sent may have
    /// run before the kick (sim seeds 9366268, 9713742), so they wait for their answer.
    pub(crate) fn kicked_out(&mut self, room: &str, code: u32, data: Value) {
        let sent = self.take_sent_room_requests(room);
        self.remove_room(room, RoomStateReason::KickOut, code, data, code);
        self.answer_as_left(sent);
    }

    /// `room` is gone for the app: report `reason` / `code` / `data`, fail its requests with
    /// `fail_code`.
    pub(crate) fn remove_room(&mut self, room: &str, reason: RoomStateReason, code: u32, data: Value, fail_code: u32) {
        let old = self.forget_room(room);
        self.report(room, reason, code, data);
        self.fail_room_requests(room, fail_code);
        self.leave_if_on_server(room, old);
    }

    /// A room given up before its held login landed, which `resumed` said the server has us
    /// in (see [`crate::room::Room::on_server`]): leave it quietly, or the server keeps us
    /// there with no client.
    pub(crate) fn leave_if_on_server(&mut self, room: &str, old: Option<crate::room::Room>) {
        if old.is_some_and(|r| r.on_server) {
            self.abandon(room.to_string());
        }
    }
}
