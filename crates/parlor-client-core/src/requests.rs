//! The request queue: every request the app (or the core itself) made that is not answered yet,
//! with where it stands on the wire.
//!
//! A request is [`Wire::Held`] until it may go (its connection is ready and its room is in), and
//! gets its `id` only when it first goes out, so ids increase on the wire even when a held request
//! goes out after a later one (the server treats an id not above the last as a repeat, §9.1).
//! A cut turns every [`Wire::InFlight`] request into [`Wire::Unsent`]: it goes again after the
//! resume with the same id, and the server answers it from memory. A new session (a refused
//! resume) knows none of the old ids, so every request is held again and gets a new id.
//! A request answered `error` 1000004 is [`Wire::Waiting`]: nothing was done, and it goes again
//! with the same id when the retry wait ends (`retry.rs`); meanwhile no new request goes out, so
//! that the retry is not overtaken by a higher id.

use std::collections::BTreeMap;

use parlor_protocol::ClientFrame;

/// What a request is, for what its answer does.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// The app's `query_room_member_list`: its `ok` carries a page.
    Members,
    /// The app's `login_room`.
    Login {
        /// The room logged in to.
        room: String,
    },
    /// A fresh login for a room the client was in (a new session, or a resume without it).
    Relogin {
        /// The room logged in to again.
        room: String,
    },
    /// The app's `switch_room`.
    Switch {
        /// The room entered.
        to: String,
    },
    /// The app's `logout_room`.
    Logout {
        /// The room left.
        room: String,
    },
    /// The app's `publish_stream`.
    Publish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// The stream's extra info, as the others see it.
        extra: String,
    },
    /// Publishing again a stream of the app's that the server lost (no app handle).
    Republish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
    },
    /// The app's `unpublish`.
    Unpublish {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
    },
    /// The app's `set_stream_extra`.
    StreamExtra {
        /// The room.
        room: String,
        /// The stream id.
        stream: String,
        /// The new extra info.
        extra: String,
    },
    /// The app's `renew_token`.
    RenewToken {
        /// The new token, the session's once confirmed.
        token: String,
    },
    /// Logout of a room the app gave up on while its login was in flight.
    QuietLogout,
    /// A login (or switch) the app gave up on after it was sent: if the server answers `ok`,
    /// leave the room again (unless the app is entering it again meanwhile). Not sent again
    /// after a reconnection.
    Abandoned {
        /// The room the login was for.
        room: String,
    },
    /// The app's `set_room_extra`.
    RoomExtra {
        /// The room.
        room: String,
        /// The key set.
        key: String,
        /// The value it was set to.
        value: String,
    },
    /// Everything else (messages, commands): only a result to report.
    Plain,
    /// A message, command, extra info or stream call sent for a room the app has since left by a
    /// switch: the server executes it before the switch, in that life of the room, so its
    /// answer is only a result to report. It must not touch a later life of the room (a stream
    /// published there would stay in the core's view after the switch removed it on the server;
    /// its seqs may be of an earlier epoch; sim seed 1000979).
    Left,
}

impl Kind {
    /// The room a login, relogin or switch enters.
    pub(crate) fn login_room(&self) -> Option<&str> {
        match self {
            Kind::Login { room } | Kind::Relogin { room } | Kind::Switch { to: room } => Some(room),
            _ => None,
        }
    }

    /// Whether this request publishes, re-publishes or stops `stream` in `room`.
    pub(crate) fn touches_stream(&self, room: &str, stream: &str) -> bool {
        match self {
            Kind::Publish { room: r, stream: s, .. }
            | Kind::Republish { room: r, stream: s }
            | Kind::Unpublish { room: r, stream: s } => r == room && s == stream,
            _ => false,
        }
    }
}

/// Where a request stands on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Never sent: waits for its connection or room, and has no id yet.
    Held,
    /// Sent on the current connection with this id; its answer is awaited.
    InFlight(u64),
    /// Sent with this id on a connection since lost: goes again, with the same id, once the
    /// session is back.
    Unsent(u64),
    /// Answered 1000004 (nothing was done): goes again with this id when the retry wait ends.
    Waiting(u64),
}

impl Wire {
    /// The id the request went out with, if it ever did.
    pub(crate) fn id(self) -> Option<u64> {
        match self {
            Wire::Held => None,
            Wire::InFlight(id) | Wire::Unsent(id) | Wire::Waiting(id) => Some(id),
        }
    }
}

/// One request waiting for its answer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The frame to send (its `id` is written when it first goes out).
    pub(crate) frame: ClientFrame,
    /// What it is, for what its answer does.
    pub(crate) kind: Kind,
    /// The app call whose result it reports; None for the core's own requests.
    pub(crate) handle: Option<u64>,
    /// A room that must be in before the request may be sent.
    pub(crate) needs_room: Option<String>,
    /// Where it stands on the wire.
    pub(crate) wire: Wire,
    /// Once answered 1000004: until when it is retried (then it fails as its kind fails).
    pub(crate) retry_deadline: Option<u64>,
}

impl Pending {
    /// Whether this request takes the session out of `room` (a logout, or a switch from it).
    pub(crate) fn leaves(&self, room: &str) -> bool {
        match &self.frame {
            ClientFrame::Logout(f) => f.room == room,
            ClientFrame::Switch(f) => f.from == room,
            _ => false,
        }
    }
}

/// The waiting requests, in the order they were made.
#[derive(Debug)]
pub(crate) struct Requests {
    /// By key: the order in which the requests were made.
    pending: BTreeMap<u64, Pending>,
    /// The key of the next request made.
    next_key: u64,
    /// The wire id of the next request sent for the first time (never reused, across sessions).
    next_id: u64,
    /// Retry waits since the last answer other than 1000004 (the `n` of the retry backoff).
    retries: u32,
}

impl Default for Requests {
    fn default() -> Self {
        Requests { pending: BTreeMap::new(), next_key: 0, next_id: 1, retries: 0 }
    }
}

fn set_id(frame: &mut ClientFrame, id: u64) {
    match frame {
        ClientFrame::Login(f) => f.id = id,
        ClientFrame::Logout(f) => f.id = id,
        ClientFrame::Switch(f) => f.id = id,
        ClientFrame::Publish(f) => f.id = id,
        ClientFrame::Unpublish(f) => f.id = id,
        ClientFrame::StreamExtra(f) => f.id = id,
        ClientFrame::RoomExtra(f) => f.id = id,
        ClientFrame::Broadcast(f) | ClientFrame::Barrage(f) => f.id = id,
        ClientFrame::Command(f) => f.id = id,
        ClientFrame::RenewToken(f) => f.id = id,
        ClientFrame::Members(f) => f.id = id,
        ClientFrame::Hello(_) | ClientFrame::Resume(_) | ClientFrame::Ping(_) | ClientFrame::Bye(_) => {}
    }
}

impl Requests {
    /// A new request, held until [`Requests::flush`] sends it.
    pub(crate) fn push(&mut self, frame: ClientFrame, kind: Kind, handle: Option<u64>, needs_room: Option<String>) {
        self.next_key += 1;
        self.pending
            .insert(self.next_key, Pending { frame, kind, handle, needs_room, wire: Wire::Held, retry_deadline: None });
    }

    /// The frames to send now, in order: first the requests that were in flight at a cut, again,
    /// with their own ids, in id order; then the held ones that `may_send` allows, in the order
    /// they were made, each getting its id now — unless a request waits for its retry (its id
    /// must not be overtaken).
    pub(crate) fn flush(&mut self, may_send: impl Fn(&Pending) -> bool) -> Vec<ClientFrame> {
        let mut out = Vec::new();
        let mut again: Vec<(u64, u64)> = self
            .pending
            .iter()
            .filter_map(|(k, p)| match p.wire {
                Wire::Unsent(id) => Some((id, *k)),
                _ => None,
            })
            .collect();
        again.sort_unstable();
        for (id, key) in again {
            if let Some(p) = self.pending.get_mut(&key) {
                p.wire = Wire::InFlight(id);
                out.push(p.frame.clone());
            }
        }
        if self.pending.values().any(|p| matches!(p.wire, Wire::Waiting(_))) {
            return out;
        }
        let fresh: Vec<u64> =
            self.pending.iter().filter(|(_, p)| p.wire == Wire::Held && may_send(p)).map(|(k, _)| *k).collect();
        for key in fresh {
            if let Some(p) = self.pending.get_mut(&key) {
                let id = self.next_id;
                self.next_id += 1;
                p.wire = Wire::InFlight(id);
                set_id(&mut p.frame, id);
                out.push(p.frame.clone());
            }
        }
        out
    }

    /// Take the request in flight that wire id `id` answers.
    pub(crate) fn take_answered(&mut self, id: u64) -> Option<Pending> {
        let key = self.pending.iter().find(|(_, p)| p.wire == Wire::InFlight(id)).map(|(k, _)| *k)?;
        self.pending.remove(&key)
    }

    /// The request in flight with wire id `id`.
    pub(crate) fn in_flight(&self, id: u64) -> Option<&Pending> {
        self.pending.values().find(|p| p.wire == Wire::InFlight(id))
    }

    /// The request in flight with wire id `id` was answered 1000004: it waits for its retry,
    /// until `deadline`.
    pub(crate) fn wait(&mut self, id: u64, deadline: u64) {
        if let Some(p) = self.pending.values_mut().find(|p| p.wire == Wire::InFlight(id)) {
            p.wire = Wire::Waiting(id);
            p.retry_deadline = Some(deadline);
        }
    }

    /// The `n` of the next retry wait (and count it).
    pub(crate) fn next_retry(&mut self) -> u32 {
        let n = self.retries;
        self.retries = self.retries.saturating_add(1);
        n
    }

    /// An answer other than 1000004 came: the service is back, the retry backoff starts over.
    pub(crate) fn served(&mut self) {
        self.retries = 0;
    }

    /// The retry wait is over: take out the waiting requests whose deadline has come (in the
    /// order they were made); the others go again with their ids, like requests cut in flight.
    pub(crate) fn end_wait(&mut self, now: u64) -> Vec<Pending> {
        let expired =
            self.take_where(|p| matches!(p.wire, Wire::Waiting(_)) && p.retry_deadline.is_some_and(|d| d <= now));
        for p in self.pending.values_mut() {
            if let Wire::Waiting(id) = p.wire {
                p.wire = Wire::Unsent(id);
            }
        }
        expired.into_iter().map(|(_, p)| p).collect()
    }

    /// The connection is gone: what was in flight must go again; logins the app gave up on are
    /// forgotten (the resume tells whether the server has us in their rooms).
    pub(crate) fn cut(&mut self) {
        self.pending.retain(|_, p| !matches!(p.kind, Kind::Abandoned { .. }));
        self.unsend();
    }

    /// Everything in flight goes again with its id (the session is being resumed or refused).
    pub(crate) fn unsend(&mut self) {
        for p in self.pending.values_mut() {
            if let Wire::InFlight(id) = p.wire {
                p.wire = Wire::Unsent(id);
            }
        }
    }

    /// A new session: old ids mean nothing to it, so every request is held again.
    pub(crate) fn forget_ids(&mut self) {
        for p in self.pending.values_mut() {
            p.wire = Wire::Held;
        }
    }

    /// The waiting requests, in the order they were made.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// Whether the app waits for the result of any request.
    pub(crate) fn app_waits(&self) -> bool {
        self.pending.values().any(|p| p.handle.is_some())
    }

    /// Take out every request `pick` chooses, in the order they were made.
    pub(crate) fn take_where(&mut self, pick: impl Fn(&Pending) -> bool) -> Vec<(u64, Pending)> {
        let keys: Vec<u64> = self.pending.iter().filter(|(_, p)| pick(p)).map(|(k, _)| *k).collect();
        keys.into_iter().filter_map(|k| self.pending.remove(&k).map(|p| (k, p))).collect()
    }

    /// Take out the first request (in the order they were made) that `pick` chooses.
    pub(crate) fn take_first(&mut self, pick: impl Fn(&Pending) -> bool) -> Option<Pending> {
        let key = self.pending.iter().find(|(_, p)| pick(p)).map(|(k, _)| *k)?;
        self.pending.remove(&key)
    }

    /// Put back a request taken out with [`Requests::take_where`], at its place in the order.
    pub(crate) fn put_back(&mut self, key: u64, p: Pending) {
        self.pending.insert(key, p);
    }

    /// Keep only the requests `keep` chooses.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Pending) -> bool) {
        self.pending.retain(|_, p| keep(p));
    }

    /// Forget every request.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}
