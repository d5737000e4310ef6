//! When a refused upgrade is told to come back (`Retry-After` of an HTTP 503, protocol §9.7).
//!
//! Why not a constant: under a storm of 100 000 resumes on six nodes, every refused client came
//! back within its backoff (at most 10 s), so the shut door was knocked on 10 000 times a
//! second: 1.79 M refusals in 150 s, each an accept, a header parse and an answer, on the cores
//! the queue needed (docs/benchmarks.md). A node knows how fast it admits: it hands each refused
//! client the next free slot at that rate, like tickets at a counter, so the clients that honour
//! `Retry-After` come back spread at the rate the node serves, not all within 10 s.
//!
//! A ticket is at most [`MAX_WAIT`] ahead: a session kept waiting past its heartbeat timeout
//! (90 s) would be timed out, and the others would see it leave.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The furthest a ticket is ahead of now: a third of the default session timeout, so that the
/// client's own backoff on top still brings it back in time.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Slots handed to refused clients at one rate.
#[derive(Debug, Default)]
pub struct Tickets {
    /// The next free slot.
    next: Mutex<Option<Instant>>,
}

impl Tickets {
    /// A slot for one refused client: the next free one at `per_s` admissions a second, not
    /// before `now + earliest`; in whole seconds from `now` (at least 1, at most [`MAX_WAIT`]).
    pub fn give(&self, now: Instant, per_s: f64, earliest: Duration) -> u64 {
        let per_s = if per_s.is_finite() && per_s > 0.0 { per_s } else { 1.0 };
        let step = Duration::from_secs_f64(1.0 / per_s);
        let mut next = self.next.lock();
        let floor = now + earliest.min(MAX_WAIT);
        let slot = next.map_or(floor, |n| n.max(floor)).min(now + MAX_WAIT);
        *next = Some(slot + step);
        let secs = (slot - now).as_secs_f64().ceil() as u64;
        secs.clamp(1, MAX_WAIT.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tickets_spread_the_refused_at_the_rate_and_stop_at_the_cap() {
        let t = Tickets::default();
        let now = Instant::now();
        // 10 a second, none before 2 s: the first ten get 2 s (slots 2.0 … 2.9 s, rounded up to
        // whole seconds: 2, then 3), the next ten 3 or 4 s.
        let first: Vec<u64> = (0..20).map(|_| t.give(now, 10.0, Duration::from_secs(2))).collect();
        assert_eq!(first[0], 2);
        assert!(first.windows(2).all(|w| w[0] <= w[1]), "{first:?}");
        assert_eq!(first.iter().filter(|&&s| s <= 3).count(), 11, "{first:?}");
        assert_eq!(first[19], 4);
        // Never further than the cap, however many wait.
        let last = (0..10_000).map(|_| t.give(now, 10.0, Duration::ZERO)).last();
        assert_eq!(last, Some(MAX_WAIT.as_secs()));
        // Once time has passed the queue of slots, the next ticket is near again.
        tokio::time::advance(MAX_WAIT * 2).await;
        assert_eq!(t.give(Instant::now(), 10.0, Duration::ZERO), 1);
    }

    #[test]
    fn a_rate_that_is_no_rate_still_gives_a_ticket() {
        let t = Tickets::default();
        let now = Instant::now();
        assert_eq!(t.give(now, 0.0, Duration::ZERO), 1);
        assert_eq!(t.give(now, f64::NAN, Duration::from_secs(3600)), MAX_WAIT.as_secs());
    }
}
