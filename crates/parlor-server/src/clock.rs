//! One clock for the whole server.
//!
//! Liveness runs on `tokio::time::Instant` so that tests can use tokio's paused clock. Wall
//! times (`time_ms`, token expiry) are derived from the same instant — the wall time at start
//! plus the elapsed tokio time — so that on a paused clock tokens expire as simulated time
//! passes, and the two never disagree.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The server's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall_ms: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Clock { start: Instant::now(), start_wall_ms: wall }
    }

    /// A clock starting now at the wall time `wall_ms` (a simulation's, so that token expiry
    /// falls at the same simulated instant in every replay).
    pub fn starting_at(wall_ms: u64) -> Clock {
        Clock { start: Instant::now(), start_wall_ms: wall_ms }
    }

    /// Wall time in ms since the Unix epoch for `at`.
    pub fn wall_ms(&self, at: Instant) -> u64 {
        self.start_wall_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Wall time in seconds since the Unix epoch for `at`.
    pub fn wall_s(&self, at: Instant) -> u64 {
        self.wall_ms(at) / 1000
    }

    /// The first instant whose [`Clock::wall_s`] is at least `wall_s` (None: beyond what an
    /// `Instant` holds). Before the clock's start it is the start.
    pub fn at_wall_s(&self, wall_s: u64) -> Option<Instant> {
        let ms = wall_s.saturating_mul(1000).saturating_sub(self.start_wall_ms);
        self.start.checked_add(std::time::Duration::from_millis(ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_wall_s_is_the_first_instant_of_that_second() {
        let c = Clock { start: Instant::now(), start_wall_ms: 1_000_700 };
        let at = c.at_wall_s(1_005).unwrap();
        assert_eq!(c.wall_s(at), 1_005);
        assert_eq!(c.wall_s(at - std::time::Duration::from_millis(1)), 1_004);
        assert_eq!(c.at_wall_s(10), Some(c.start));
        // A far expiry (a token's `exp` is the peer's number) does not overflow.
        assert!(c.at_wall_s(u64::MAX).is_none_or(|a| a > at));
    }
}
