//! The login token of protocol §2: a JWT signed with HS256 by the app's server secret.
//!
//! [`mint`] makes one, [`verify`] checks one. The clock is a parameter: `now_s` is seconds since
//! the Unix epoch, so that servers on a simulated clock and tests agree on what "expired" means.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Clock leeway allowed on `exp`, in seconds.
pub const LEEWAY_S: u64 = 30;

/// The claims of a Parlor token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The app.
    pub app_id: u32,
    /// The user.
    pub user_id: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// A value that makes every token unique.
    #[serde(default)]
    pub nonce: String,
    /// When present, the token is valid for this room only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    /// When false, the token forbids `publish` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
}

impl Claims {
    /// Claims for `user_id` in `app_id`, valid from `now_s` for `ttl_s` seconds.
    pub fn new(app_id: u32, user_id: impl Into<String>, now_s: u64, ttl_s: u64, nonce: impl Into<String>) -> Claims {
        Claims {
            app_id,
            user_id: user_id.into(),
            iat: now_s,
            exp: now_s + ttl_s,
            nonce: nonce.into(),
            room_id: None,
            publish: None,
        }
    }

    /// Whether the token allows publishing.
    pub fn may_publish(&self) -> bool {
        self.publish.unwrap_or(true)
    }
}

/// Sign `claims` with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let key = EncodingKey::from_secret(secret).expect("any byte string is an HS256 secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .expect("HS256 signing of plain claims cannot fail")
}

/// Check a token: signature, `app_id`, `user_id`, `exp` (with [`LEEWAY_S`]) and, where the token
/// names one, the room. `room` is the room the token is used for (None for the `hello` token).
///
/// Codes: 1002033 for a bad signature, a malformed token or a token for another room; 1002076,
/// 1002077, 1002078 for app, user and expiry.
pub fn verify(
    secret: &[u8],
    token: &str,
    app_id: u32,
    user_id: &str,
    room: Option<&str>,
    now_s: u64,
) -> Result<Claims, ErrorCode> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the caller's clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let key = DecodingKey::from_secret(secret).map_err(|_| ErrorCode::AuthFailed)?;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|_| ErrorCode::AuthFailed)?;
    let claims = data.claims;
    if claims.app_id != app_id {
        return Err(ErrorCode::TokenAppMismatch);
    }
    if claims.user_id != user_id {
        return Err(ErrorCode::TokenUserMismatch);
    }
    // An `exp` so large that the leeway overflows is refused as expired (what release builds
    // did by wrapping), not a panic.
    if claims.exp.checked_add(LEEWAY_S).is_none_or(|exp| exp < now_s) {
        return Err(ErrorCode::TokenExpired);
    }
    if let (Some(want), Some(room)) = (claims.room_id.as_deref(), room) {
        if want != room {
            return Err(ErrorCode::AuthFailed);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_374_400;

    #[test]
    fn mint_then_verify() {
        let c = Claims::new(7, "u1", NOW, 3600, "n1");
        let t = mint(b"secret", &c);
        assert_eq!(verify(b"secret", &t, 7, "u1", Some("r1"), NOW + 10), Ok(c.clone()));
        assert_eq!(verify(b"other", &t, 7, "u1", None, NOW), Err(ErrorCode::AuthFailed));
        assert_eq!(verify(b"secret", "not.a.jwt", 7, "u1", None, NOW), Err(ErrorCode::AuthFailed));
        assert_eq!(verify(b"secret", &t, 8, "u1", None, NOW), Err(ErrorCode::TokenAppMismatch));
        assert_eq!(verify(b"secret", &t, 7, "u2", None, NOW), Err(ErrorCode::TokenUserMismatch));
        assert_eq!(verify(b"secret", &t, 7, "u1", None, NOW + 3600 + 30), Ok(c));
        assert_eq!(verify(b"secret", &t, 7, "u1", None, NOW + 3600 + 31), Err(ErrorCode::TokenExpired));
    }

    #[test]
    fn room_and_publish_claims() {
        let mut c = Claims::new(1, "u", NOW, 60, "n");
        c.room_id = Some("r1".into());
        c.publish = Some(false);
        let t = mint(b"s", &c);
        assert!(verify(b"s", &t, 1, "u", Some("r1"), NOW).is_ok());
        assert_eq!(verify(b"s", &t, 1, "u", Some("r2"), NOW), Err(ErrorCode::AuthFailed));
        assert!(!verify(b"s", &t, 1, "u", None, NOW).unwrap().may_publish());
    }
}
