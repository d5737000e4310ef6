//! The webhook signature: `Parlor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" keyed with the app's server secret>`.
//!
//! The timestamp is signed with the body, so a receiver that refuses timestamps outside a window
//! (default [`REPLAY_WINDOW_S`], 5 minutes) refuses a captured request replayed later; within the
//! window it dedupes by the body's `id`. The comparison is in constant time.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "Parlor-Signature";

/// The default replay window of [`verify`]: 5 minutes either way (clock skew included).
pub const REPLAY_WINDOW_S: u64 = 300;

type HmacSha256 = hmac::Hmac<Sha256>;

fn mac(secret: &str, t: u64, body: &[u8]) -> HmacSha256 {
    // An HMAC takes a key of any length: this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The header value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body).finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<hex>`.
    #[error("malformed Parlor-Signature header")]
    Malformed,
    /// The timestamp is further than the window from now (a replay, or a wrong clock).
    #[error("signature timestamp outside the replay window")]
    Expired,
    /// No `v1` matches the body (a wrong secret, or a changed body or timestamp).
    #[error("signature does not match")]
    Mismatch,
}

/// Check a `Parlor-Signature` header against the raw `body` bytes received, with the app's
/// `secret`, at `now_s` (unix seconds), accepting timestamps at most `window_s` away. Several
/// `v1=` entries are allowed (any may match), so that a secret rotation can sign with both.
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: u64, window_s: u64) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<u64>().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", v)) => sigs.push(unhex(v).ok_or(VerifyError::Malformed)?),
            // Unknown schemes are ignored (a future v2 next to v1).
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if t.abs_diff(now_s) > window_s {
        return Err(VerifyError::Expired);
    }
    let expected = mac(secret, t, body);
    if sigs.iter().any(|s| expected.clone().verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_changes_are_refused() {
        let h = sign("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="), "{h}");
        assert_eq!(verify("s3cret", &h, b"{\"a\":1}", 1_700_000_010, REPLAY_WINDOW_S), Ok(()));
        assert_eq!(verify("s3cret", &h, b"{\"a\":2}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("other", &h, b"{\"a\":1}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("s3cret", &h, b"{\"a\":1}", 1_700_000_301, 300), Err(VerifyError::Expired));
        assert_eq!(verify("s3cret", "t=x,v1=00", b"", 0, 300), Err(VerifyError::Malformed));
        assert_eq!(verify("s3cret", "t=1", b"", 1, 300), Err(VerifyError::Malformed));
        assert_eq!(verify("s3cret", "v1=zz", b"", 1, 300), Err(VerifyError::Malformed));
        let moved = h.replace("t=1700000000", "t=1700000001");
        assert_eq!(verify("s3cret", &moved, b"{\"a\":1}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.body"), computed with Python's hmac module.
        let h = sign("key", 1, b"body");
        assert_eq!(h, format!("t=1,v1={}", "91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"));
    }
}
