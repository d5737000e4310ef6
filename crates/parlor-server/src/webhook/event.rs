//! The webhook events and their JSON bodies (`docs/operations.md` "Webhooks", protocol §9.8).
//!
//! Every body is one JSON object: `{"id","event","app_id","time_ms","room","room_session",…}`
//! and the event's own fields. `id` is unique per event (a receiver dedupes by it);
//! `room_session` is the room's life (a room closed and created again has a new one). The
//! Redis engine's scripts (`engine/redis/lua/lib.lua`, `hook_*`) write the same bodies.

use parlor_protocol::{stream_delete_reason as sdr, ErrorCode, RoomExtraItem, Stream, User};
use serde_json::{json, Value};

/// Why a user left a room (`user_logout`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutReason {
    /// `logout`, the `from` of a `switch`, or `bye`.
    Logout,
    /// Offline: silent for the session timeout (the session may still resume, and then logs in
    /// again: a new `user_login`).
    Timeout,
    /// The same user logged in to the room from another session (1002050); a `user_login` of
    /// the new session follows at once.
    DuplicateLogin,
    /// Kicked by the admin API (1002055).
    AdminKick,
    /// The room was closed by the admin API (1002055).
    RoomClosed,
    /// The token's `exp` passed (1002056).
    TokenExpired,
}

impl LogoutReason {
    /// The `reason` text.
    pub fn name(self) -> &'static str {
        match self {
            LogoutReason::Logout => "logout",
            LogoutReason::Timeout => "timeout",
            LogoutReason::DuplicateLogin => "duplicate_login",
            LogoutReason::AdminKick => "admin_kick",
            LogoutReason::RoomClosed => "room_closed",
            LogoutReason::TokenExpired => "token_expired",
        }
    }

    /// The `kicked` code the session got, for a kick.
    pub fn code(self) -> Option<u32> {
        match self {
            LogoutReason::Logout | LogoutReason::Timeout => None,
            LogoutReason::DuplicateLogin => Some(ErrorCode::KickedDuplicateLogin.code()),
            LogoutReason::AdminKick | LogoutReason::RoomClosed => Some(ErrorCode::KickedByServer.code()),
            LogoutReason::TokenExpired => Some(ErrorCode::KickedTokenExpired.code()),
        }
    }
}

/// The name of a `stream_delete` reason of §5 (`stream_deleted`'s `reason_name`).
pub fn stream_reason_name(reason: u32) -> &'static str {
    match reason {
        sdr::STOPPED => "stopped",
        sdr::HEARTBEAT_TIMEOUT => "timeout",
        sdr::DUPLICATE_LOGIN => "duplicate_login",
        sdr::KICKED => "kicked",
        sdr::LOGGED_OUT => "logout",
        _ => "unknown",
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The room's first member entered (a new `room_session`).
    RoomCreated,
    /// The room's last member left; its state and logs are gone.
    RoomClosed,
    /// A session of `user` entered the room.
    UserLogin {
        /// The user.
        user: User,
        /// The session's public id.
        session: String,
    },
    /// A session of `user` left the room.
    UserLogout {
        /// The user.
        user: User,
        /// The session's public id.
        session: String,
        /// Why.
        reason: LogoutReason,
    },
    /// A stream was published.
    StreamAdded {
        /// The stream.
        stream: Stream,
    },
    /// A stream ended, with the reason number of §5.
    StreamDeleted {
        /// The stream.
        stream: Stream,
        /// 1 stopped, 2 timeout, 3 duplicate login, 4 kicked, 5 logged out.
        reason: u32,
    },
    /// A room extra info key was set.
    RoomExtraUpdated {
        /// The item as the room now has it.
        extra: RoomExtraItem,
    },
}

impl Event {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RoomCreated => "room_created",
            Event::RoomClosed => "room_closed",
            Event::UserLogin { .. } => "user_login",
            Event::UserLogout { .. } => "user_logout",
            Event::StreamAdded { .. } => "stream_added",
            Event::StreamDeleted { .. } => "stream_deleted",
            Event::RoomExtraUpdated { .. } => "room_extra_updated",
        }
    }
}

/// One event of one room, as an engine emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    /// The room id.
    pub room: String,
    /// The room's life (its epoch).
    pub room_session: String,
    /// What happened.
    pub event: Event,
}

impl HookEvent {
    /// The JSON body.
    pub fn body(&self, id: &str, app: u32, time_ms: u64) -> String {
        let mut v = json!({
            "id": id,
            "event": self.event.name(),
            "app_id": app,
            "time_ms": time_ms,
            "room": self.room,
            "room_session": self.room_session,
        });
        let put = |v: &mut Value, k: &str, x: Value| v[k] = x;
        match &self.event {
            Event::RoomCreated | Event::RoomClosed => {}
            Event::UserLogin { user, session } => {
                put(&mut v, "user", json!(user));
                put(&mut v, "session", json!(session));
            }
            Event::UserLogout { user, session, reason } => {
                put(&mut v, "user", json!(user));
                put(&mut v, "session", json!(session));
                put(&mut v, "reason", json!(reason.name()));
                if let Some(code) = reason.code() {
                    put(&mut v, "code", json!(code));
                }
            }
            Event::StreamAdded { stream } => put(&mut v, "stream", json!(stream)),
            Event::StreamDeleted { stream, reason } => {
                put(&mut v, "stream", json!(stream));
                put(&mut v, "reason", json!(reason));
                put(&mut v, "reason_name", json!(stream_reason_name(*reason)));
            }
            Event::RoomExtraUpdated { extra } => put(&mut v, "extra", json!(extra)),
        }
        v.to_string()
    }
}
