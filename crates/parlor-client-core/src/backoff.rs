//! Full-jitter backoff (protocol §7): attempt `n` (counted from 0) waits a random time in
//! `[0, min(10 s, 0.5 s × 2^n)]`, so that thousands of clients cut at once do not come back at
//! once. The random draw is injected so that tests fix it.
//!
//! A request answered `error` 1000004 (service temporarily unavailable, `docs/protocol.md` §9.6)
//! is sent again after a shorter full-jitter wait: retry `n` (from 0) waits a random time in
//! `[0, min(2 s, 100 ms × 2^n)]` ([`retry_delay_ms`]).

/// Upper bound of any wait, ms.
pub const MAX_WAIT_MS: u64 = 10_000;
/// The base of the exponential, ms.
pub const BASE_WAIT_MS: u64 = 500;

/// The cap of attempt `n`: `min(10 000, 500 × 2^n)` ms.
pub fn cap_ms(attempt: u32) -> u64 {
    let shift = attempt.min(20);
    (BASE_WAIT_MS << shift).min(MAX_WAIT_MS)
}

/// The wait before attempt `n`, for a random draw `r` in `[0, 1)` (clamped into it).
pub fn delay_ms(attempt: u32, r: f64) -> u64 {
    let r = if r.is_finite() { r.clamp(0.0, 1.0) } else { 0.0 };
    (r * cap_ms(attempt) as f64).floor() as u64
}

/// The most of a refusal's `Retry-After` a client honours, ms: a server cannot park a client
/// longer (its reconnect window still runs).
pub const RETRY_AFTER_MAX_MS: u64 = 60_000;
/// The jitter added to a `Retry-After`, ms: a server hands out slots in whole seconds, and the
/// clients of one second spread over it.
pub const RETRY_AFTER_JITTER_MS: u64 = 1_000;

/// The wait before the next attempt after an upgrade refused with `Retry-After: retry_after_ms`
/// (protocol §9.7), for a random draw `r` in `[0, 1)`: at least the server's slot, at most a
/// second after it.
pub fn retry_after_delay_ms(retry_after_ms: u64, r: f64) -> u64 {
    let r = if r.is_finite() { r.clamp(0.0, 1.0) } else { 0.0 };
    retry_after_ms.min(RETRY_AFTER_MAX_MS) + (r * RETRY_AFTER_JITTER_MS as f64).floor() as u64
}

/// Upper bound of the wait before a request answered 1000004 goes again, ms.
pub const RETRY_MAX_WAIT_MS: u64 = 2_000;
/// The base of the retries' exponential, ms.
pub const RETRY_BASE_WAIT_MS: u64 = 100;

/// The cap of retry `n`: `min(2 000, 100 × 2^n)` ms.
pub fn retry_cap_ms(retry: u32) -> u64 {
    (RETRY_BASE_WAIT_MS << retry.min(20)).min(RETRY_MAX_WAIT_MS)
}

/// The wait before retry `n` of requests answered 1000004, for a random draw `r` in `[0, 1)`.
pub fn retry_delay_ms(retry: u32, r: f64) -> u64 {
    let r = if r.is_finite() { r.clamp(0.0, 1.0) } else { 0.0 };
    (r * retry_cap_ms(retry) as f64).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_grow_and_stop_at_ten_seconds() {
        let caps: Vec<u64> = (0..7).map(cap_ms).collect();
        assert_eq!(caps, vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(cap_ms(u32::MAX), 10_000);
    }

    #[test]
    fn a_retry_after_is_waited_with_up_to_a_second_more_and_capped() {
        assert_eq!(retry_after_delay_ms(7_000, 0.0), 7_000);
        assert_eq!(retry_after_delay_ms(7_000, 0.5), 7_500);
        assert_eq!(retry_after_delay_ms(u64::MAX, 0.0), RETRY_AFTER_MAX_MS);
        assert_eq!(retry_after_delay_ms(1_000, f64::NAN), 1_000);
    }

    #[test]
    fn delay_is_the_draw_times_the_cap() {
        assert_eq!(delay_ms(0, 0.5), 250);
        assert_eq!(delay_ms(3, 0.25), 1000);
        assert_eq!(delay_ms(9, 0.0), 0);
        assert_eq!(delay_ms(1, f64::NAN), 0);
        assert_eq!(delay_ms(1, 7.0), 1000);
    }

    #[test]
    fn retry_caps_grow_and_stop_at_two_seconds() {
        let caps: Vec<u64> = (0..7).map(retry_cap_ms).collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(retry_cap_ms(u32::MAX), 2000);
        assert_eq!(retry_delay_ms(0, 0.5), 50);
        assert_eq!(retry_delay_ms(2, f64::NAN), 0);
    }
}
