//! A fixed one-second rate window, for the rate limits of §8 (1002072, 1002073).

use std::time::Duration;

use tokio::time::Instant;

/// Counts events in the current one-second window.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    fn roll(&mut self, now: Instant) {
        match self.start {
            Some(s) if now.saturating_duration_since(s) < Duration::from_secs(1) => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
            }
        }
    }

    /// Count one more; false (and not counted) when `limit` per second is reached.
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        self.roll(now);
        if self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }

    /// Whether one more would exceed `limit` per second (nothing is counted).
    pub fn full(&mut self, now: Instant, limit: u32) -> bool {
        self.roll(now);
        self.count >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_limit_per_second() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert!(w.allow(t0, 2) && w.allow(t0, 2));
        assert!(w.full(t0, 2) && !w.allow(t0, 2));
        assert!(!w.full(t0 + Duration::from_secs(1), 2));
        assert!(w.allow(t0 + Duration::from_secs(1), 2));
    }
}
