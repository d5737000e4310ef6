//! When the memory engine's tick must look at a session, so that a tick touches only the
//! sessions that are due instead of every session (19 800 idle sessions cost a scan of all of
//! them twice a second before).
//!
//! A session's deadlines are its session timeout (`last_frame` + `session_timeout`), the end of
//! its retention once offline (`last_frame` + `retention`), and per room its token's warning
//! (`exp_s` − `token_warning`) and expiry (`exp_s`). The queue is lazy: an entry says "nothing
//! of this session is due before this time". Most deadlines only move later by themselves (a
//! frame pushes the timeout back), so a due entry is checked exactly as the full scan checked
//! every session, and scheduled again at the session's next deadline as it is then. What can
//! bring a deadline earlier — a login or switch (a new token), a renewal, a resume — asks for a
//! check at the next tick with [`Deadlines::soon`]; any new way of adding a room membership or
//! changing a grant must do the same. A key may have stale entries (a `soon` beside its timeout
//! entry): each is checked once more when due and they merge into one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tokio::time::Instant;

use super::state::Session;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::SessionKey;

/// The sessions' next check times, earliest first.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, SessionKey)>>,
}

impl Deadlines {
    /// Check `key` at `at` (or at the first tick after it).
    pub fn at(&mut self, key: SessionKey, at: Instant) {
        self.heap.push(Reverse((at, key)));
    }

    /// Check `key` at the next tick.
    pub fn soon(&mut self, key: SessionKey, now: Instant) {
        self.at(key, now);
    }

    /// Take the sessions due at `now`, each once.
    pub fn due(&mut self, now: Instant) -> Vec<SessionKey> {
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            due.push(key);
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Entries queued (stale ones included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// The earliest time at which the tick's check of `s` can find something due (None: never).
pub(super) fn next_check(s: &Session, cfg: &ServerConfig, clock: &Clock) -> Option<Instant> {
    if s.offline {
        return s.last_frame.checked_add(cfg.retention);
    }
    let mut next = s.last_frame.checked_add(cfg.session_timeout);
    for (_, m) in &s.rooms {
        // The warning is due when `exp_s - now_s <= token_warning`, the kick when `now_s >= exp_s`.
        let wall = if m.warned { m.grant.exp_s } else { m.grant.exp_s.saturating_sub(cfg.token_warning.as_secs()) };
        if let Some(at) = clock.at_wall_s(wall) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_takes_what_is_due_each_once_and_leaves_the_rest() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.at(3, t0 + Duration::from_secs(3));
        d.at(1, t0 + Duration::from_secs(1));
        d.soon(1, t0);
        d.at(2, t0 + Duration::from_secs(2));
        assert_eq!(d.due(t0 + Duration::from_millis(500)), vec![1]);
        assert_eq!(d.due(t0 + Duration::from_secs(2)), vec![1, 2]);
        assert_eq!(d.len(), 1);
        assert!(d.due(t0 + Duration::from_millis(2500)).is_empty());
        assert_eq!(d.due(t0 + Duration::from_secs(3)), vec![3]);
        assert_eq!(d.len(), 0);
    }
}
