//! Logins in batches: each room entered by a batch of logins gets ONE `user_add` listing every
//! user they added (§5: "several users may be batched").
//!
//! Why: in a big room each login tells everyone already there, so a storm of `n` logins costs
//! n²/2 deliveries and as many wake-ups of the members' writers. Batched, it costs one delivery
//! per member per batch.
//!
//! How batches form:
//! - **Queued behind the lock** (flat combining): a login is queued, then whoever can take the
//!   lock applies the whole queue; whoever releases the lock looks at the queue again
//!   ([`Guard`]). Nobody waits for this: an uncontended login is applied at once by its task.
//! - **Held in a big room** (`users_batch_from` members or more): the announcement waits up to
//!   `users_batch_window` (default 50 ms) for more logins to the same room. The first login's
//!   task is the timer. Small rooms are announced when their batch ends.
//!
//! What each session sees is what it would see one login at a time, with the login taking
//! effect when it is announced: its `ok` lists every other member (the batch's included) and
//! carries the batch's `user_add` seq as its own; the members from before get the `user_add`;
//! the new ones are not sent it. Until then a new member gets nothing of the room (its `ok`'s
//! seqs and state cover what happened meanwhile). Anything that could send such a member a
//! frame, take it out, or list the room's users for someone else (every operation but a ping,
//! `hello`, a login, and a message, stream or extra info request) announces every held batch
//! first ([`MemoryEngine::lock`]); so do a repeated login and a second login of a user whose
//! first one is held.

use parking_lot::MutexGuard;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::pending::{Answer, Held};
use super::room::RoomKey;
use super::state::State;
use super::MemoryEngine;
use crate::engine::{Done, Joining, Op, Outcome, Reply, Req, SessionKey};

/// A queued login.
pub(super) struct Job {
    pub req: Req,
    pub op: Op,
    pub now: Instant,
    pub answer: Answer,
    pub done: oneshot::Sender<Outcome>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("req", &self.req).finish_non_exhaustive()
    }
}

/// The engine's state, locked; when dropped it applies the logins queued meanwhile.
pub(super) struct Guard<'a> {
    engine: &'a MemoryEngine,
    state: Option<MutexGuard<'a, State>>,
}

impl std::ops::Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.state.as_mut().expect("held until dropped")
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        drop(self.state.take());
        self.engine.run_queued();
    }
}

/// Whether a queued login must wait for what is held to be announced.
fn must_announce(st: &State, job: &Job) -> bool {
    let Op::Login { room, .. } = &job.op else {
        return true;
    };
    let repeat = st.sessions.get(&job.req.key).is_some_and(|s| job.req.id <= s.last_request);
    repeat || st.pending_user(job.req.key, room)
}

impl MemoryEngine {
    /// Lock the state, every held batch announced: for any operation that is not known to
    /// leave them alone (see the module's docs).
    pub(super) fn lock(&self) -> Guard<'_> {
        let mut g = self.lock_keeping();
        if !g.pending.is_empty() {
            g.announce(None);
        }
        g
    }

    /// Lock the state, held batches left held. Every lock of the engine goes through here, so
    /// that every release looks at the queue.
    pub(super) fn lock_keeping(&self) -> Guard<'_> {
        Guard { engine: self, state: Some(self.state.lock()) }
    }

    /// Queue a login and apply the queue if the lock is free; the outcome comes when some
    /// thread has applied and announced it. Its task announces its batch when it is due.
    pub(super) async fn login(&self, req: Req, op: Op, now: Instant, answer: Answer) -> Outcome {
        let (done, mut outcome) = oneshot::channel();
        self.queue.lock().push(Job { req, op, now, answer, done });
        self.run_queued();
        // Applied and announced at once (a small room, the lock free): no timer needed.
        if let Ok(o) = outcome.try_recv() {
            return o;
        }
        tokio::select! {
            biased;
            o = &mut outcome => return o.unwrap_or(Outcome::Answered),
            _ = tokio::time::sleep_until(now + self.config.users_batch_window) => {}
        }
        self.lock_keeping().announce(Some(Instant::now()));
        outcome.await.unwrap_or(Outcome::Answered)
    }

    /// Apply everything queued, as long as the lock can be had without waiting (a holder
    /// applies the queue when it releases the lock).
    pub(super) fn run_queued(&self) {
        loop {
            if self.queue.lock().is_empty() {
                return;
            }
            let Some(mut st) = self.state.try_lock() else {
                return;
            };
            let jobs = std::mem::take(&mut *self.queue.lock());
            self.apply_batch(&mut st, jobs);
        }
    }

    fn apply_batch(&self, st: &mut State, jobs: Vec<Job>) {
        let Some(now) = jobs.last().map(|j| j.now) else {
            return;
        };
        for job in jobs {
            if must_announce(st, &job) {
                st.announce(None);
            }
            let Job { req, op, now, answer, done } = job;
            let room = match &op {
                Op::Login { room, .. } => Some(room.clone()),
                _ => None,
            };
            st.batching = true;
            let reply = Self::request_locked(st, &self.config, req, op, now);
            st.batching = false;
            let applied = matches!(reply, Reply::Fresh(Ok(_)));
            if applied {
                // A login brings a token's deadlines: checked at the next tick (under the lock,
                // so that no tick comes between).
                self.deadlines.lock().soon(req.key, now);
            }
            let pending = match room {
                Some(room) if applied => st.pending.iter_mut().find(|p| p.room.0 == req.app && p.room.1 == room),
                _ => None,
            };
            match pending {
                Some(p) => p.held.push(Held { req, answer, done, reply }),
                None => {
                    st.deliver.to_session(req.key, answer(reply));
                    let _ = done.send(if applied { Outcome::Applied } else { Outcome::Answered });
                }
            }
        }
        // Small rooms now; big ones when due.
        let (from, deadline) = (self.config.users_batch_from, now + self.config.users_batch_window);
        for p in &mut st.pending {
            if p.deadline.is_none() {
                let big = from > 0 && st.rooms.get(&p.room).is_some_and(|r| r.members.len() >= from);
                p.deadline = Some(if big { deadline } else { now });
            }
        }
        st.announce(Some(now));
    }
}

/// Every member of a room and its user as JSON, encoded once for a batch's `ok`s: one buffer,
/// no allocation per member.
#[derive(Debug, Default)]
struct Entries {
    json: String,
    /// Each member and where its user is in `json`, in the room's order.
    at: Vec<(SessionKey, std::ops::Range<usize>)>,
}

impl Entries {
    /// A JSON array of the entries but `key`'s.
    fn list_without(&self, key: SessionKey) -> String {
        let mut out = String::with_capacity(self.json.len() + self.at.len() + 2);
        out.push('[');
        for (k, at) in &self.at {
            if *k != key {
                if out.len() > 1 {
                    out.push(',');
                }
                out.push_str(&self.json[at.clone()]);
            }
        }
        out.push(']');
        out
    }
}

impl State {
    /// Each member of room `rk` and its user as JSON, in the room's order.
    fn user_entries(&self, rk: &RoomKey) -> Entries {
        let Some(room) = self.rooms.get(rk) else {
            return Entries::default();
        };
        let (mut buf, mut at) = (Vec::new(), Vec::with_capacity(room.members.len()));
        for k in room.members.keys() {
            if let Some(s) = self.sessions.get(k) {
                let start = buf.len();
                if serde_json::to_writer(&mut buf, &s.user).is_ok() {
                    at.push((*k, start..buf.len()));
                } else {
                    buf.truncate(start);
                }
            }
        }
        // serde_json writes UTF-8 only.
        Entries { json: String::from_utf8(buf).unwrap_or_default(), at }
    }

    /// Announce the held batches due by `due` (all with None): each room's ONE `user_add`
    /// (the new members are not yet the deliverer's, so none is sent its own), the new members
    /// handed to the deliverer at that seq, then their `ok`s made from the room as it now is.
    pub(super) fn announce(&mut self, due: Option<Instant>) {
        let now = due.unwrap_or_else(Instant::now);
        let (ready, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| due.is_none() || p.deadline.is_some_and(|d| d <= now));
        self.pending = held;
        for p in ready {
            // A large room's arrivals go into its presence batch (§9.10).
            self.announce_added(&p.room, p.users, None, now);
            for (key, notify) in p.joiners {
                if let Some(seqs) = self.seqs_of(&p.room, key) {
                    self.deliver.joined(p.room.0, &p.room.1, key, notify, seqs, Joining::default());
                }
            }
            // Every member encoded once; each `ok` is the list without its own entry. A large
            // room's `ok` is a page (§9.10), made by the room state itself.
            let large = self.is_large(&p.room);
            let entries = if large { Entries::default() } else { self.user_entries(&p.room) };
            for h in p.held {
                let mut reply = h.reply;
                if let Reply::Fresh(Ok(done)) = &mut reply {
                    // Nothing takes a held member out before this, so the room state is there.
                    if let Some((state, seq)) = self.room_state_listing(&p.room, h.req.key, large) {
                        let users_json = (state.users.is_some() && !large).then(|| entries.list_without(h.req.key));
                        *done = Done { seq, message_id: None, state: Some(state), users_json };
                    }
                }
                self.deliver.to_session(h.req.key, (h.answer)(reply));
                let _ = h.done.send(Outcome::Applied);
            }
        }
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
