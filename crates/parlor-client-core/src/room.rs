//! One room the client is in or logging in to: its phase, as an enum whose variants say
//! everything the core must know about it, and every phase change in one place.
//!
//! - `login_room` / `switch_room` → [`Phase::Logining`]; its `ok` (or, after a cut, the snapshot
//!   `resumed` promised) → [`Phase::Active`].
//! - A loss: [`Phase::Active`] / [`Phase::Replaying`] → [`Phase::Reconnecting`] (a room still
//!   logging in stays [`Phase::Logining`]).
//! - `resumed` with `replay` / `snapshot` → [`Phase::Replaying`], and at `resume_done` →
//!   [`Phase::Active`]; `resumed` without the room, or a new session → [`Phase::Relogining`],
//!   whose `ok` (or snapshot) → [`Phase::Active`].
//!
//! Leaving (logout, kick, failure, window end) removes the room from the core altogether.

use std::collections::BTreeMap;

use parlor_protocol::{RoomConfig, RoomExtraItem, RoomState, Seqs};

use crate::view::RoomView;

/// What will answer a login that is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginAnswer {
    /// Its own `ok` (or `error`).
    Ok,
    /// The connection was lost before the `ok` arrived and `resumed` said the server has the
    /// session in the room (`"snapshot"`): the `snapshot` that follows is the login's answer.
    Snapshot,
}

/// Where a room stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The app asked to enter (login or switch); the login is sent or waits for a connection,
    /// its deadline is [`crate::timer::Timer::Login`]. The room has no epoch yet.
    Logining {
        /// What will answer the login.
        answer: LoginAnswer,
    },
    /// In the room (reported LOGINED or RECONNECTED): events are applied, requests go out.
    Active,
    /// Back in the room by a resume (reported RECONNECTED); the replay or snapshot is being
    /// applied, and at `resume_done` the app's streams the server no longer has are published
    /// again. Behaves as [`Phase::Active`] otherwise.
    Replaying,
    /// The connection was lost while in the room (reported RECONNECTING); waiting for a resume.
    Reconnecting,
    /// Still away (RECONNECTING): the server no longer has us there (a new session, or
    /// `resumed` left the room out), and a fresh login for it is in flight.
    Relogining {
        /// What will answer the login.
        answer: LoginAnswer,
    },
}

impl Phase {
    /// In the room: events are applied and requests for the room may go out.
    pub(crate) fn is_in(self) -> bool {
        matches!(self, Phase::Active | Phase::Replaying)
    }

    /// Entering for the app: LOGINING was reported and LOGINED or LOGIN_FAILED will be.
    pub(crate) fn is_logining(self) -> bool {
        matches!(self, Phase::Logining { .. })
    }

    /// Away: RECONNECTING was reported and RECONNECTED or RECONNECT_FAILED will be.
    pub(crate) fn is_away(self) -> bool {
        matches!(self, Phase::Reconnecting | Phase::Relogining { .. })
    }

    /// A login for the room is (or is to be) in flight: the app's own, or a fresh one while away.
    pub(crate) fn is_logging_in(self) -> bool {
        matches!(self, Phase::Logining { .. } | Phase::Relogining { .. })
    }

    /// Away, with a fresh login in flight.
    pub(crate) fn is_relogining(self) -> bool {
        matches!(self, Phase::Relogining { .. })
    }

    /// Whether `resumed` said the room's snapshot answers its login.
    pub(crate) fn answered_by_snapshot(self) -> bool {
        matches!(
            self,
            Phase::Logining { answer: LoginAnswer::Snapshot } | Phase::Relogining { answer: LoginAnswer::Snapshot }
        )
    }
}

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    /// Where the room stands; changed only by the methods below.
    phase: Phase,
    /// The login settings, sent again with every fresh login.
    pub(crate) config: RoomConfig,
    /// The token for this room's logins (the app's, or the session's after `renew_token`).
    pub(crate) token: Option<String>,
    /// The server's room session (`room_session` of the login `ok` or snapshot), acked in
    /// `resume` so the server can tell whether a replay can follow; None until logged in.
    pub(crate) epoch: Option<String>,
    /// The last applied seq of the room channel.
    pub(crate) seq_room: u64,
    /// The last applied seq of the users channel.
    pub(crate) seq_users: u64,
    /// What the client knows of the room (the others, every stream, extra info).
    pub(crate) view: RoomView,
    /// The room-channel seq of the change each key of `view.extra` last took, for the keys
    /// changed since the view's snapshot; a key not here was last changed at or before
    /// `extra_floor`, the room seq of that snapshot. Tells whether the `ok` of the app's own
    /// set is older than what the view holds ([`Room::own_extra_set`]).
    pub(crate) extra_seq: BTreeMap<String, u64>,
    /// See `extra_seq`.
    extra_floor: u64,
    /// Streams the app publishes here (id → extra), as it last asked and the server confirmed:
    /// what is published again when the server lost them.
    pub(crate) own: BTreeMap<String, String>,
    /// `resumed` named the room while its login was still held: the server has us there from
    /// before (a login given up on a stalled path that got through later, say). If that held
    /// login never lands (it fails, times out, or the app logs out first), the core leaves the
    /// room quietly, as for any room the server has and the app gave up.
    pub(crate) on_server: bool,
}

impl Room {
    /// A room the app just asked to enter (login or switch).
    pub(crate) fn logining(config: RoomConfig, token: Option<String>) -> Room {
        Room {
            phase: Phase::Logining { answer: LoginAnswer::Ok },
            config,
            token,
            epoch: None,
            seq_room: 0,
            seq_users: 0,
            view: RoomView::default(),
            extra_seq: BTreeMap::new(),
            extra_floor: 0,
            own: BTreeMap::new(),
            on_server: false,
        }
    }

    /// Where the room stands.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The login (or fresh login) was answered with the room's state: the room is in, at the
    /// state's epoch and seqs; returns the view it replaces.
    pub(crate) fn entered(&mut self, state: &RoomState, seq: &Seqs, view: RoomView) -> RoomView {
        self.phase = Phase::Active;
        self.on_server = false;
        self.at_state(state, seq, view)
    }

    /// A snapshot replaced what the client knew: new epoch, seqs and view; returns the old view.
    pub(crate) fn at_state(&mut self, state: &RoomState, seq: &Seqs, view: RoomView) -> RoomView {
        self.epoch = Some(state.room_session.clone());
        self.seq_room = seq.room.unwrap_or(0);
        self.seq_users = seq.users.unwrap_or(0);
        self.extra_seq.clear();
        self.extra_floor = self.seq_room;
        std::mem::replace(&mut self.view, view)
    }

    /// The connection was lost: a room that was in is now away. Returns whether it was in (and
    /// so must be reported RECONNECTING).
    pub(crate) fn connection_lost(&mut self) -> bool {
        if self.phase.is_in() {
            self.phase = Phase::Reconnecting;
            return true;
        }
        false
    }

    /// `resumed` kept the room (replay or snapshot): back in, streams checked at `resume_done`.
    pub(crate) fn resumed(&mut self) {
        self.phase = Phase::Replaying;
    }

    /// Back in without a replay to wait for (our own logout reached the server before the cut).
    pub(crate) fn back(&mut self) {
        self.phase = Phase::Active;
    }

    /// The replay is over (`resume_done`) or the room is back by a fresh login: nothing left to
    /// check. Returns whether the room was replaying.
    pub(crate) fn replay_done(&mut self) -> bool {
        if self.phase == Phase::Replaying {
            self.phase = Phase::Active;
            return true;
        }
        false
    }

    /// A fresh login for the away room goes out.
    pub(crate) fn relogining(&mut self) {
        self.phase = Phase::Relogining { answer: LoginAnswer::Ok };
    }

    /// `resumed` said the server has the session in this room whose login was not answered.
    pub(crate) fn answer_by_snapshot(&mut self) {
        self.phase = match self.phase {
            Phase::Logining { .. } => Phase::Logining { answer: LoginAnswer::Snapshot },
            Phase::Relogining { .. } => Phase::Relogining { answer: LoginAnswer::Snapshot },
            other => other,
        };
    }

    /// The `ok` of the app's own room extra set (`item`, made the room channel's event `seq`):
    /// when a later change of the key is already in the view (the `ok` came after the replay
    /// that carried it), returns the view's item if it differs, for the app to be told;
    /// otherwise the set is the key's latest change and goes into the view. (The server never
    /// echoes a client's own change live, so without this the view would keep the old value.)
    /// `item.time_ms` is unknown here (0): a later snapshot reports the key again with its time.
    pub(crate) fn own_extra_set(&mut self, item: RoomExtraItem, seq: Option<u64>) -> Option<RoomExtraItem> {
        let seq = seq?;
        let last = self.extra_seq.get(&item.key).copied().unwrap_or(self.extra_floor);
        if last > seq {
            return self.view.extra.get(&item.key).filter(|now| now.value != item.value).cloned();
        }
        if last < seq {
            // (At `last == seq` the view holds this very change, from a replay, with its time.)
            self.extra_seq.insert(item.key.clone(), seq);
            self.view.extra.insert(item.key.clone(), item);
        }
        None
    }

    /// Raise the channel positions to those an `ok` names (never lower them). Not for a room
    /// still logging in: its seqs come with its login's answer.
    pub(crate) fn saw_seqs(&mut self, seq: &Seqs) {
        if self.phase.is_logining() {
            return;
        }
        if let Some(n) = seq.room {
            self.seq_room = self.seq_room.max(n);
        }
        if let Some(n) = seq.users {
            self.seq_users = self.seq_users.max(n);
        }
    }
}
