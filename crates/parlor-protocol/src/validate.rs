//! The id and size rules of protocol §2, each failing with its §8 code.

use crate::ErrorCode;

/// Longest user id, in bytes.
pub const MAX_USER_ID: usize = 64;
/// Longest user name, in bytes.
pub const MAX_USER_NAME: usize = 256;
/// Longest room id, in bytes.
pub const MAX_ROOM_ID: usize = 128;
/// Longest stream id, in bytes.
pub const MAX_STREAM_ID: usize = 256;
/// Longest extra info, message or command, in bytes.
pub const MAX_TEXT: usize = 1024;
/// Longest room extra info key, in bytes.
pub const MAX_ROOM_EXTRA_KEY: usize = 128;
/// Most room extra info keys per room.
pub const MAX_ROOM_EXTRA_KEYS: usize = 10;

const ID_PUNCT: &[u8] = b"~!@#$%^&*()_+=-`;',.<>/";

fn id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || ID_PUNCT.contains(&b)
}

/// A user id: 1–64 bytes of letters, digits and ``~!@#$%^&*()_+=-`;',.<>/``.
pub fn user_id(id: &str) -> Result<(), ErrorCode> {
    if id.is_empty() {
        Err(ErrorCode::UserIdEmpty)
    } else if id.len() > MAX_USER_ID {
        Err(ErrorCode::UserIdTooLong)
    } else if !id.bytes().all(id_char) {
        Err(ErrorCode::UserIdInvalid)
    } else {
        Ok(())
    }
}

/// A user name: 0–256 bytes of UTF-8 without control characters.
pub fn user_name(name: &str) -> Result<(), ErrorCode> {
    if name.len() > MAX_USER_NAME {
        Err(ErrorCode::UserNameTooLong)
    } else if name.chars().any(char::is_control) {
        Err(ErrorCode::UserNameInvalid)
    } else {
        Ok(())
    }
}

/// A room id: 1–128 bytes, the same characters as a user id.
pub fn room_id(id: &str) -> Result<(), ErrorCode> {
    if id.is_empty() {
        Err(ErrorCode::RoomIdEmpty)
    } else if id.len() > MAX_ROOM_ID {
        Err(ErrorCode::RoomIdTooLong)
    } else if !id.bytes().all(id_char) {
        Err(ErrorCode::RoomIdInvalid)
    } else {
        Ok(())
    }
}

/// A stream id: 1–256 bytes of `A-Z a-z 0-9 _ -`. §8 has no code of its own for it, so a bad
/// stream id is [`ErrorCode::InvalidField`].
pub fn stream_id(id: &str) -> Result<(), ErrorCode> {
    let ok = !id.is_empty()
        && id.len() <= MAX_STREAM_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ErrorCode::InvalidField)
    }
}

/// Stream extra info: at most 1024 bytes ([`ErrorCode::InvalidField`] beyond).
pub fn stream_extra(extra: &str) -> Result<(), ErrorCode> {
    if extra.len() > MAX_TEXT {
        Err(ErrorCode::InvalidField)
    } else {
        Ok(())
    }
}

/// A broadcast, barrage or command text: 1–1024 bytes.
pub fn message(text: &str) -> Result<(), ErrorCode> {
    if text.is_empty() {
        Err(ErrorCode::MessageEmpty)
    } else if text.len() > MAX_TEXT {
        Err(ErrorCode::MessageTooLong)
    } else {
        Ok(())
    }
}

/// A room extra info key and value.
pub fn room_extra(key: &str, value: &str) -> Result<(), ErrorCode> {
    if key.is_empty() {
        Err(ErrorCode::RoomExtraKeyEmpty)
    } else if key.len() > MAX_ROOM_EXTRA_KEY {
        Err(ErrorCode::RoomExtraKeyTooLong)
    } else if value.len() > MAX_TEXT {
        Err(ErrorCode::RoomExtraValueTooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(user_id(""), Err(ErrorCode::UserIdEmpty));
        assert_eq!(user_id("a b"), Err(ErrorCode::UserIdInvalid));
        assert_eq!(user_id(&"a".repeat(65)), Err(ErrorCode::UserIdTooLong));
        assert_eq!(user_id("u1~!@#$%^&*()_+=-`;',.<>/"), Ok(()));
        assert_eq!(room_id(""), Err(ErrorCode::RoomIdEmpty));
        assert_eq!(room_id("r\u{e9}"), Err(ErrorCode::RoomIdInvalid));
        assert_eq!(room_id(&"r".repeat(129)), Err(ErrorCode::RoomIdTooLong));
        assert_eq!(room_id(&"r".repeat(128)), Ok(()));
        assert_eq!(stream_id("s-1_a"), Ok(()));
        assert_eq!(stream_id("s.1"), Err(ErrorCode::InvalidField));
    }

    #[test]
    fn names_and_texts() {
        assert_eq!(user_name(""), Ok(()));
        assert_eq!(user_name("Zoë 🎉"), Ok(()));
        assert_eq!(user_name("a\nb"), Err(ErrorCode::UserNameInvalid));
        assert_eq!(user_name(&"n".repeat(257)), Err(ErrorCode::UserNameTooLong));
        assert_eq!(message(""), Err(ErrorCode::MessageEmpty));
        assert_eq!(message(&"m".repeat(1025)), Err(ErrorCode::MessageTooLong));
        assert_eq!(message(&"m".repeat(1024)), Ok(()));
        assert_eq!(room_extra("", "v"), Err(ErrorCode::RoomExtraKeyEmpty));
        assert_eq!(room_extra(&"k".repeat(129), "v"), Err(ErrorCode::RoomExtraKeyTooLong));
        assert_eq!(room_extra("k", &"v".repeat(1025)), Err(ErrorCode::RoomExtraValueTooLong));
    }
}
