//! The error codes of protocol §8, as one enum.
//!
//! Codes follow the room error codes users of RTC room SDKs already know; the 1000xxx codes are
//! Parlor's own. [`ErrorCode::code`] is the number on the wire, [`ErrorCode::message`] a short
//! English text for people.

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $msg:literal;)*) => {
        /// Every error code of protocol §8 (0, success, is not an error and has no variant), and
        /// [`ErrorCode::Unlisted`] for a number the table does not have (a newer server's).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
            /// A code this version's table does not list (never 0, never a listed number): a
            /// client keeps it as it came, so that a newer server's codes reach the app.
            Unlisted(u32),
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The number sent on the wire.
            pub const fn code(self) -> u32 {
                match self { $(ErrorCode::$name => $code,)* ErrorCode::Unlisted(code) => code }
            }

            /// A short description for people.
            pub const fn message(self) -> &'static str {
                match self { $(ErrorCode::$name => $msg,)* ErrorCode::Unlisted(_) => "error" }
            }

            /// The variant for a wire number, if it is one of §8.
            pub const fn from_code(code: u32) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$name),)* _ => None }
            }

            /// The code a client reports for a wire number: None for 0 (success), the listed
            /// variant, else [`ErrorCode::Unlisted`].
            pub const fn from_wire(code: u32) -> Option<ErrorCode> {
                match code {
                    0 => None,
                    _ => match ErrorCode::from_code(code) {
                        Some(c) => Some(c),
                        None => Some(ErrorCode::Unlisted(code)),
                    },
                }
            }
        }
    };
}

codes! {
    /// The frame is not one JSON object with a string `t`.
    MalformedFrame = 1000001, "malformed frame";
    /// The `t` of a request is not known.
    UnknownRequest = 1000002, "unknown request type";
    /// A field is missing or invalid; the error's message says which.
    InvalidField = 1000003, "missing or invalid field";
    /// The server's shared state (the Redis engine) cannot be reached right now; nothing was
    /// done. Retry the same request (same id) after a short wait (§9.6).
    ServiceUnavailable = 1000004, "service temporarily unavailable";
    /// `hello` refused: the app already has the most sessions this server node admits
    /// (`--max-sessions-per-app`). Clients report LOGIN_FAILED with this code.
    TooManySessions = 1000005, "the app has reached its session limit on this server";
    /// Already in the maximum number of rooms, or already in this room.
    TooManyRooms = 1002001, "already in the maximum number of rooms, or already in this room";
    /// Logout of a room the session is not in.
    NotInRoomLogout = 1002002, "logout failed: not in this room";
    /// User id empty.
    UserIdEmpty = 1002005, "user id is empty";
    /// User id has characters outside the allowed set.
    UserIdInvalid = 1002006, "user id has invalid characters";
    /// User id over 64 bytes.
    UserIdTooLong = 1002007, "user id is too long";
    /// User name has control characters.
    UserNameInvalid = 1002009, "user name is invalid";
    /// User name over 256 bytes.
    UserNameTooLong = 1002010, "user name is too long";
    /// Room id empty.
    RoomIdEmpty = 1002011, "room id is empty";
    /// Room id has characters outside the allowed set.
    RoomIdInvalid = 1002012, "room id has invalid characters";
    /// Room id over 128 bytes.
    RoomIdTooLong = 1002013, "room id is too long";
    /// Room extra info key empty.
    RoomExtraKeyEmpty = 1002014, "room extra info key is empty";
    /// Room extra info key over 128 bytes.
    RoomExtraKeyTooLong = 1002015, "room extra info key is too long";
    /// Room extra info value over 1024 bytes.
    RoomExtraValueTooLong = 1002016, "room extra info value is too long";
    /// A room already holds 10 extra info keys.
    RoomExtraTooManyKeys = 1002017, "too many room extra info keys";
    /// Client side: could not connect.
    ConnectFailed = 1002030, "could not connect";
    /// Client side: login timed out.
    LoginTimeout = 1002031, "login timed out";
    /// Bad signature or malformed token.
    AuthFailed = 1002033, "authentication failed";
    /// The room is full (`max_members`).
    RoomFull = 1002034, "room is full";
    /// Kicked: the same user logged in to this room elsewhere.
    KickedDuplicateLogin = 1002050, "kicked: the same user logged in to this room elsewhere";
    /// Client side: connection lost, reconnecting.
    Reconnecting = 1002051, "connection lost, reconnecting";
    /// Client side: reconnection failed, the reconnect window has passed.
    ReconnectFailed = 1002053, "reconnection failed: the reconnect window has passed";
    /// Kicked by the server (admin kick or room closed).
    KickedByServer = 1002055, "kicked by the server";
    /// Kicked: token expired.
    KickedTokenExpired = 1002056, "kicked: token expired";
    /// The session cannot be resumed.
    ResumeFailed = 1002057, "session cannot be resumed";
    /// Room requests too frequent.
    RequestsTooFrequent = 1002072, "room requests too frequent";
    /// Messages too frequent.
    MessagesTooFrequent = 1002073, "messages too frequent";
    /// The token's app id does not match.
    TokenAppMismatch = 1002076, "token app id mismatch";
    /// The token's user id does not match.
    TokenUserMismatch = 1002077, "token user id mismatch";
    /// The token has expired.
    TokenExpired = 1002078, "token expired";
    /// The stream id is already published by another user.
    StreamIdTaken = 1003025, "stream id already published by another user";
    /// The token forbids publishing.
    NoPublishPrivilege = 1003026, "no publish privilege";
    /// Message empty.
    MessageEmpty = 1009001, "message empty";
    /// Message over 1024 bytes.
    MessageTooLong = 1009002, "message too long";
    /// Not in the room the request is for.
    NotInRoom = 1009005, "not in the room the message is for";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for ErrorCode {}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        ErrorCode::from_code(n).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert_eq!(ErrorCode::from_code(c.code()), Some(*c));
            assert!(!c.message().is_empty());
        }
        assert_eq!(ErrorCode::ALL.len(), 39);
        assert_eq!(ErrorCode::KickedDuplicateLogin.code(), 1002050);
        assert_eq!(ErrorCode::from_code(0), None);
        assert_eq!(ErrorCode::from_wire(0), None);
        assert_eq!(ErrorCode::from_wire(1002050), Some(ErrorCode::KickedDuplicateLogin));
        assert_eq!(ErrorCode::from_wire(4242), Some(ErrorCode::Unlisted(4242)));
        assert_eq!(ErrorCode::Unlisted(4242).code(), 4242);
    }
}
