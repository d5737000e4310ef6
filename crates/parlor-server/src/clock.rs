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

    /// Wall time in ms since the Unix epoch for `at`.
    pub fn wall_ms(&self, at: Instant) -> u64 {
        self.start_wall_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Wall time in seconds since the Unix epoch for `at`.
    pub fn wall_s(&self, at: Instant) -> u64 {
        self.wall_ms(at) / 1000
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
