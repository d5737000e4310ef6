//! Full-jitter backoff (protocol §7): attempt `n` (counted from 0) waits a random time in
//! `[0, min(10 s, 0.5 s × 2^n)]`, so that thousands of clients cut at once do not come back at
//! once. The random draw is injected so that tests fix it.

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
    fn delay_is_the_draw_times_the_cap() {
        assert_eq!(delay_ms(0, 0.5), 250);
        assert_eq!(delay_ms(3, 0.25), 1000);
        assert_eq!(delay_ms(9, 0.0), 0);
        assert_eq!(delay_ms(1, f64::NAN), 0);
        assert_eq!(delay_ms(1, 7.0), 1000);
    }
}
