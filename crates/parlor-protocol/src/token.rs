//! The login token of protocol §2: a JWT signed with HS256 by the app's server secret.
//!
//! [`mint`] makes one, [`verify`] checks one. The clock is a parameter: `now_s` is seconds since
//! the Unix epoch, so that servers on a simulated clock and tests agree on what "expired" means.
//!
//! Token producers differ (protocol §2 and §9.1 "Tokens"): `nonce` may be a string or an integer,
//! and `iat` / `exp` are RFC 7519 NumericDates, so a non-integer is accepted (rounded down). A
//! negative or non-numeric date, any `alg` but HS256, and an `iat` more than [`LEEWAY_S`] in the
//! future are refused with 1002033. A `kid` header is ignored: an app has one secret, and the
//! signature must verify with it whatever the header says. An `exp` as large as `u64::MAX` is
//! accepted (a token that never expires is the app's choice) and nothing adds to it unchecked.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Clock leeway allowed on `exp` (past) and `iat` (future), in seconds.
pub const LEEWAY_S: u64 = 30;

/// The claims of a Parlor token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The app.
    pub app_id: u32,
    /// The user.
    pub user_id: String,
    /// Issued at, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// A value that makes every token unique. Minted as a string; an integer (as some token
    /// producers mint it) is read as its decimal digits.
    #[serde(default, deserialize_with = "string_or_integer")]
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

/// An RFC 7519 NumericDate: a non-negative number of seconds, an integer or not (rounded down;
/// beyond `u64::MAX` it saturates).
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    match serde_json::Number::deserialize(d)? {
        n if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or_default()),
        n => match n.as_f64() {
            Some(f) if f >= 0.0 && f.is_finite() => Ok(f as u64),
            _ => Err(D::Error::custom("a date must be a non-negative number of seconds")),
        },
    }
}

/// A string, or an integer read as its decimal digits.
fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nonce {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(match Nonce::deserialize(d)? {
        Nonce::S(s) => s,
        Nonce::I(i) => i.to_string(),
        Nonce::U(u) => u.to_string(),
    })
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
/// Codes: 1002033 for a bad signature, a malformed token, an `alg` other than HS256, an `iat`
/// more than [`LEEWAY_S`] ahead of `now_s` or a token for another room; 1002076, 1002077,
/// 1002078 for app, user and expiry.
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
    if expired(&claims, now_s) {
        return Err(ErrorCode::TokenExpired);
    }
    if claims.iat > now_s.saturating_add(LEEWAY_S) {
        return Err(ErrorCode::AuthFailed);
    }
    if let (Some(want), Some(room)) = (claims.room_id.as_deref(), room) {
        if want != room {
            return Err(ErrorCode::AuthFailed);
        }
    }
    Ok(claims)
}

/// Whether `claims` has expired at `now_s`, with [`LEEWAY_S`] (no overflow at any `exp`).
pub fn expired(claims: &Claims, now_s: u64) -> bool {
    claims.exp.saturating_add(LEEWAY_S) < now_s
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

    /// A JWT with any header and claims, signed HS256 with `secret` whatever the header says
    /// (or unsigned when `secret` is None).
    fn forge(header: serde_json::Value, claims: serde_json::Value, secret: Option<&[u8]>) -> String {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let sig = match secret {
            Some(s) => {
                jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(s).unwrap(), Algorithm::HS256)
                    .unwrap()
            }
            None => String::new(),
        };
        format!("{input}.{sig}")
    }

    fn claims_json(f: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
        let mut c = serde_json::json!({"app_id":1,"user_id":"u","iat":NOW,"exp":NOW + 60,"nonce":"n"});
        f(&mut c);
        c
    }

    fn check(header: serde_json::Value, f: impl FnOnce(&mut serde_json::Value)) -> Result<Claims, ErrorCode> {
        verify(b"s", &forge(header, claims_json(f), Some(b"s")), 1, "u", None, NOW)
    }

    #[test]
    fn a_numeric_nonce_is_accepted_as_its_digits() {
        let hs = serde_json::json!({"alg":"HS256","typ":"JWT"});
        assert_eq!(check(hs.clone(), |c| c["nonce"] = 1234567890123u64.into()).unwrap().nonce, "1234567890123");
        assert_eq!(check(hs.clone(), |c| c["nonce"] = (-5).into()).unwrap().nonce, "-5");
        assert_eq!(check(hs.clone(), |c| c["nonce"] = u64::MAX.into()).unwrap().nonce, u64::MAX.to_string());
        assert_eq!(check(hs.clone(), |c| drop(c.as_object_mut().unwrap().remove("nonce"))).unwrap().nonce, "");
        assert_eq!(check(hs.clone(), |c| c["nonce"] = 1.5.into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs, |c| c["nonce"] = serde_json::json!({})), Err(ErrorCode::AuthFailed));
        // Minted tokens keep a string nonce.
        let t = mint(b"s", &Claims::new(1, "u", NOW, 60, "n7"));
        let payload = t.split('.').nth(1).unwrap();
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&raw).unwrap()["nonce"], "n7");
    }

    #[test]
    fn only_hs256_is_accepted_and_a_kid_is_ignored() {
        let ok = |_: &mut serde_json::Value| {};
        assert!(check(serde_json::json!({"alg":"HS256","kid":"k-2025"}), ok).is_ok());
        assert_eq!(check(serde_json::json!({"alg":"RS256","typ":"JWT"}), ok), Err(ErrorCode::AuthFailed));
        assert_eq!(check(serde_json::json!({"alg":"HS512"}), ok), Err(ErrorCode::AuthFailed));
        assert_eq!(check(serde_json::json!({"alg":"none"}), ok), Err(ErrorCode::AuthFailed));
        assert_eq!(check(serde_json::json!({"typ":"JWT"}), ok), Err(ErrorCode::AuthFailed));
        let none = forge(serde_json::json!({"alg":"none"}), claims_json(ok), None);
        assert_eq!(verify(b"s", &none, 1, "u", None, NOW), Err(ErrorCode::AuthFailed));
        let unsigned_hs = forge(serde_json::json!({"alg":"HS256"}), claims_json(ok), None);
        assert_eq!(verify(b"s", &unsigned_hs, 1, "u", None, NOW), Err(ErrorCode::AuthFailed));
    }

    #[test]
    fn iat_in_the_future_beyond_the_leeway_is_refused() {
        let hs = || serde_json::json!({"alg":"HS256"});
        assert!(check(hs(), |c| c["iat"] = (NOW + LEEWAY_S).into()).is_ok());
        assert_eq!(check(hs(), |c| c["iat"] = (NOW + LEEWAY_S + 1).into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs(), |c| c["iat"] = u64::MAX.into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs(), |c| c["iat"] = (-1).into()), Err(ErrorCode::AuthFailed));
        assert!(check(hs(), |c| c["iat"] = 0.into()).is_ok());
    }

    #[test]
    fn absurd_exp_never_overflows() {
        let hs = || serde_json::json!({"alg":"HS256"});
        let c = check(hs(), |c| c["exp"] = u64::MAX.into()).unwrap();
        assert_eq!(c.exp, u64::MAX);
        assert!(!expired(&c, u64::MAX));
        assert_eq!(check(hs(), |c| c["exp"] = (-1).into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs(), |c| c["exp"] = i64::MIN.into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs(), |c| c["exp"] = "soon".into()), Err(ErrorCode::AuthFailed));
        assert_eq!(check(hs(), |c| c["exp"] = serde_json::Value::Null), Err(ErrorCode::AuthFailed));
        // A NumericDate may be a non-integer (RFC 7519 §2): rounded down.
        assert_eq!(check(hs(), |c| c["exp"] = (NOW as f64 + 60.9).into()).unwrap().exp, NOW + 60);
        assert_eq!(check(hs(), |c| c["exp"] = 1e300.into()).unwrap().exp, u64::MAX);
        assert_eq!(check(hs(), |c| c["exp"] = (NOW as f64 - 31.5).into()), Err(ErrorCode::TokenExpired));
        assert_eq!(check(hs(), |c| c["exp"] = 0.into()), Err(ErrorCode::TokenExpired));
    }
}
