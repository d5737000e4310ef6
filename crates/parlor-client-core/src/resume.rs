//! Getting the rooms back after a cut: the acks of `resume` and `ping`, `resumed`, snapshots
//! (and their diff against what the app knew), fresh logins for rooms the server lost, and
//! publishing again the app's streams the server no longer has.

use parlor_protocol::{Ack, ClientFrame, Login, Publish, ResumeOutcome, Resumed, RoomAck, RoomState, Seqs, Snapshot};

use crate::connection::ConnState;
use crate::core::{no_data, Core};
use crate::event::{AppEvent, RoomStateReason};
use crate::requests::Kind;
use crate::room::Phase;
use crate::view::RoomView;

impl Core {
    /// What the client has applied: the direct channel's seq and, per room it was in, the epoch
    /// and the seqs of its channels.
    pub(crate) fn ack(&self) -> Ack {
        let mut rooms: std::collections::BTreeMap<String, RoomAck> = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.phase().is_logging_in())
            .filter_map(|(id, r)| {
                r.epoch
                    .as_ref()
                    .map(|e| (id.clone(), RoomAck { epoch: e.clone(), room: r.seq_room, users: r.seq_users }))
            })
            .collect();
        // A room whose login went out but was not answered may be ours on the server: ack it
        // with an empty epoch, so that the server, if it has us there, answers with a snapshot
        // (which then serves as the login's answer), never a replay we have no base for.
        for p in self.requests.iter() {
            if let Some(room) = p.kind.login_room() {
                if p.wire.id().is_some() && self.rooms.get(room).is_some_and(|r| r.phase().is_logging_in()) {
                    rooms.entry(room.to_string()).or_default();
                }
            }
        }
        Ack { direct: self.direct_seq, rooms }
    }

    /// Whether the login (or switch) into `room` has gone out.
    fn login_sent(&self, room: &str) -> bool {
        self.requests.iter().any(|p| p.kind.login_room() == Some(room) && p.wire.id().is_some())
    }

    /// Whether a snapshot of `room` in `resumed` is the answer of its login: the login went out
    /// and nothing unanswered that leaves `room` went out before it. Behind such a switch or
    /// logout the server may have neither (and has us there from before, to be left by it) or
    /// both (and has us there by the login): the two go again with their ids, in order, and
    /// the login's own answer (fresh or repeated) says (sim seed 1019609).
    fn snapshot_answers_login(&self, room: &str) -> bool {
        let Some(login) = self.requests.iter().filter(|p| p.kind.login_room() == Some(room)).find_map(|p| p.wire.id())
        else {
            return false;
        };
        !self.requests.iter().any(|p| p.wire.id().is_some_and(|id| id < login) && p.leaves(room))
    }

    pub(crate) fn on_resumed(&mut self, now: u64, r: Resumed) {
        if self.conn.state != ConnState::Handshake {
            return;
        }
        let Some(s) = self.conn.session.as_mut() else {
            return;
        };
        s.id = r.session;
        s.resume_token = r.resume_token;
        self.conn.state = ConnState::Resuming;
        self.start_heartbeat(now, r.heartbeat_ms);
        let away = self.rooms_where(|p| p.is_away() && !p.is_relogining());
        // Rooms that are (re-)logging in: their login's answer may have been lost.
        for room in self.rooms_where(|p| p.is_logging_in()) {
            match r.rooms.get(&room) {
                // Only a login that went out can have been answered: a room whose login is still
                // held is on the server from before (left by a switch queued ahead of the login,
                // say), and its snapshot is not this login's answer.
                Some(ResumeOutcome::Snapshot) if self.snapshot_answers_login(&room) => {
                    if let Some(rm) = self.rooms.get_mut(&room) {
                        rm.answer_by_snapshot();
                    }
                }
                Some(ResumeOutcome::Kicked(code)) => {
                    self.remove_room(&room, RoomStateReason::KickOut, *code, no_data(), *code);
                }
                // Held, yet the server has us there: if the held login fails, leave the room.
                Some(ResumeOutcome::Replay | ResumeOutcome::Snapshot) if !self.login_sent(&room) => {
                    if let Some(rm) = self.rooms.get_mut(&room) {
                        rm.on_server = true;
                    }
                }
                // Not there (the login never arrived: it goes again), a replay (the repeated
                // login's `ok` answers it), a snapshot behind a leave of the room (see
                // `snapshot_answers_login`).
                Some(ResumeOutcome::Replay | ResumeOutcome::Snapshot) | None => {}
            }
        }
        for room in away {
            match r.rooms.get(&room) {
                None => {
                    let leaving =
                        self.requests.iter().any(|p| matches!(&p.kind, Kind::Logout { room: r } if *r == room));
                    if leaving {
                        // Our logout reached the server before the cut: its repeat gets the answer.
                        if let Some(rm) = self.rooms.get_mut(&room) {
                            rm.back();
                        }
                        self.report(&room, RoomStateReason::Reconnected, 0, no_data());
                    } else {
                        // The server no longer has us there (§9.3): log in again.
                        self.relogin(room);
                    }
                }
                Some(ResumeOutcome::Kicked(code)) => self.kicked_out(&room, *code, no_data()),
                Some(ResumeOutcome::Replay | ResumeOutcome::Snapshot) => {
                    if let Some(rm) = self.rooms.get_mut(&room) {
                        rm.resumed();
                    }
                    self.report(&room, RoomStateReason::Reconnected, 0, no_data());
                }
            }
        }
        // Rooms the server still has us in but the app gave up meanwhile: leave them.
        for (room, outcome) in &r.rooms {
            if !self.rooms.contains_key(room) && !matches!(outcome, ResumeOutcome::Kicked(_)) {
                self.abandon(room.clone());
            }
        }
        self.stop_window_if_back();
    }

    pub(crate) fn on_resume_done(&mut self) {
        if self.conn.state != ConnState::Resuming {
            return;
        }
        self.conn.state = ConnState::Ready;
        for room in self.rooms_where(|p| p == Phase::Replaying) {
            self.republish(&room);
        }
        self.flush();
    }

    pub(crate) fn on_snapshot(&mut self, s: Snapshot) {
        let me = self.me();
        let Some(r) = self.rooms.get(&s.room) else {
            return;
        };
        let phase = r.phase();
        if phase.is_logining() && phase.answered_by_snapshot() {
            // The login whose answer was lost: this snapshot is its answer.
            let handle = self
                .requests
                .take_first(|p| matches!(&p.kind, Kind::Login { room } | Kind::Switch { to: room } if *room == s.room))
                .and_then(|p| p.handle);
            self.logined(&s.room, &s.state, &s.seq, handle);
            return;
        }
        if phase.is_relogining() && phase.answered_by_snapshot() {
            self.requests.take_first(|p| matches!(&p.kind, Kind::Relogin { room } if *room == s.room));
            self.relogined(&s.room, &s.state, &s.seq);
            return;
        }
        if !phase.is_in() {
            return;
        }
        let view = RoomView::from_state(&s.state, &me);
        let Some(r) = self.rooms.get_mut(&s.room) else {
            return;
        };
        let old = r.at_state(&s.state, &s.seq, view.clone());
        self.report_diff(&s.room, &old, &view);
    }

    /// Tell the app what changed from `old` to `new`: the diff, then the online count. When
    /// `new` is a large room's (§9.10) whose `users` is only the first page of the list, a diff
    /// of users would report everyone past that page as gone: the users are not diffed, the app
    /// is told `roomUserListChanged` instead (the view's users are now that page).
    fn report_diff(&mut self, room: &str, old: &RoomView, new: &RoomView) {
        let me = self.me();
        let events = if new.users_partial {
            let mut ev = vec![AppEvent::RoomUserListChanged { room: room.to_string(), count: new.online }];
            ev.extend(old.diff_streams_and_extra_to(new, room, &me));
            ev
        } else {
            old.diff_to(new, room, &me)
        };
        for e in events {
            self.emit(e);
        }
        if old.online != new.online {
            self.emit(AppEvent::RoomOnlineUserCountUpdate { room: room.to_string(), count: new.online });
        }
    }

    /// Log in to a room that was in again (new session, or a resume that no longer has it);
    /// the room stays RECONNECTING until the answer.
    pub(crate) fn relogin(&mut self, room: String) {
        // One login per room at a time: a relogin of a previous session is replaced.
        self.requests.retain(|p| !matches!(&p.kind, Kind::Relogin { room: r } if *r == room));
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.relogining();
        let frame =
            ClientFrame::Login(Login { id: 0, room: room.clone(), config: r.config.clone(), token: r.token.clone() });
        self.request(frame, Kind::Relogin { room }, None, None);
    }

    /// A fresh login after a refused resume succeeded: RECONNECTED, then the diff.
    pub(crate) fn relogined(&mut self, room: &str, state: &RoomState, seq: &Seqs) {
        let me = self.me();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let view = RoomView::from_state(state, &me);
        let old = r.entered(state, seq, view.clone());
        self.report(room, RoomStateReason::Reconnected, 0, no_data());
        self.report_diff(room, &old, &view);
        self.stop_window_if_back();
        self.republish(room);
        self.flush();
    }

    /// Re-publish the app's streams that the server no longer has in `room` (and that no
    /// request in flight is already publishing or stopping).
    pub(crate) fn republish(&mut self, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.replay_done();
        let missing: Vec<(String, String)> = r
            .own
            .iter()
            .filter(|(s, _)| !r.view.streams.contains_key(*s))
            .map(|(s, e)| (s.clone(), e.clone()))
            .collect();
        for (stream, extra) in missing {
            if self.requests.iter().any(|p| p.kind.touches_stream(room, &stream)) {
                continue;
            }
            let frame = ClientFrame::Publish(Publish { id: 0, room: room.to_string(), stream: stream.clone(), extra });
            self.request(frame, Kind::Republish { room: room.to_string(), stream }, None, Some(room.to_string()));
        }
    }
}
