//! Sane bounds for the durations a server sends (`welcome`, `resumed`).
//!
//! A client arms timers with these values, so a value out of all reason (a heartbeat of 0 ms,
//! or of 2^64 ms, which overflows a deadline) must not reach it. [`crate::decode_server_frame`]
//! clamps every such field into its range here, and the Web SDK's decoder (`sdk/web/src/decode.ts`)
//! uses the same numbers; the shared scenario `clamped_durations.json` pins them.

/// The shortest heartbeat interval a client accepts: 1 s.
pub const HEARTBEAT_MIN_MS: u64 = 1_000;
/// The longest heartbeat interval a client accepts: 5 min.
pub const HEARTBEAT_MAX_MS: u64 = 300_000;
/// The shortest session timeout a client accepts: 1 s.
pub const SESSION_TIMEOUT_MIN_MS: u64 = 1_000;
/// The longest session timeout a client accepts: 1 h.
pub const SESSION_TIMEOUT_MAX_MS: u64 = 3_600_000;
/// The shortest retention a client accepts: 0 (an offline session cannot resume at all).
pub const RETENTION_MIN_MS: u64 = 0;
/// The longest retention a client accepts: 24 h.
pub const RETENTION_MAX_MS: u64 = 86_400_000;

/// `heartbeat_ms` clamped into [`HEARTBEAT_MIN_MS`, `HEARTBEAT_MAX_MS`].
pub fn heartbeat_ms(ms: u64) -> u64 {
    ms.clamp(HEARTBEAT_MIN_MS, HEARTBEAT_MAX_MS)
}

/// `session_timeout_ms` clamped into [`SESSION_TIMEOUT_MIN_MS`, `SESSION_TIMEOUT_MAX_MS`].
pub fn session_timeout_ms(ms: u64) -> u64 {
    ms.clamp(SESSION_TIMEOUT_MIN_MS, SESSION_TIMEOUT_MAX_MS)
}

/// `retention_ms` clamped into [`RETENTION_MIN_MS`, `RETENTION_MAX_MS`].
pub fn retention_ms(ms: u64) -> u64 {
    ms.clamp(RETENTION_MIN_MS, RETENTION_MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_values_land_on_the_bounds() {
        assert_eq!(heartbeat_ms(0), 1_000);
        assert_eq!(heartbeat_ms(u64::MAX), 300_000);
        assert_eq!(heartbeat_ms(10_000), 10_000);
        assert_eq!(session_timeout_ms(0), 1_000);
        assert_eq!(session_timeout_ms(u64::MAX), 3_600_000);
        assert_eq!(retention_ms(1), 1);
        assert_eq!(retention_ms(u64::MAX), 86_400_000);
    }
}
