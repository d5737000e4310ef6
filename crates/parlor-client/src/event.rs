//! The events an [`crate::Engine`] reports to the app.

use parlor_client_core::{AppEvent, ExtraInfo, RoomStateReason, UpdateType};
use parlor_protocol::{ErrorCode, Stream, User};

/// Something the app should know about. The names follow the Web SDK's events
/// (`roomStateChanged`, `roomUserUpdate`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A room's state changed (protocol §7).
    RoomStateChanged {
        /// The room.
        room_id: String,
        /// The new state.
        reason: RoomStateReason,
        /// None for a change that is no error (LOGINING, LOGINED, RECONNECTED, LOGOUT), else its
        /// code (e.g. [`ErrorCode::Reconnecting`], 1002051, for RECONNECTING).
        error_code: Option<ErrorCode>,
        /// `{"room_session_id": ...}` for LOGINED, the kick's data for KICK_OUT, else `{}`.
        extended_data: serde_json::Value,
    },
    /// Other users entered or left a room.
    RoomUserUpdate {
        /// The room.
        room_id: String,
        /// Whether they were added or deleted.
        update_type: UpdateType,
        /// The users concerned, each `{id, name}`.
        users: Vec<User>,
    },
    /// Other users' streams were published or stopped.
    RoomStreamUpdate {
        /// The room.
        room_id: String,
        /// Whether they were added or deleted.
        update_type: UpdateType,
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// Other users' streams' extra info changed.
    RoomStreamExtraInfoUpdate {
        /// The room.
        room_id: String,
        /// The streams concerned, each with its publisher and extra info.
        streams: Vec<Stream>,
    },
    /// Room extra info changed.
    RoomExtraInfoUpdate {
        /// The room.
        room_id: String,
        /// The stream's extra info, as the others see it.
        extra: Vec<ExtraInfo>,
    },
    /// A large room's member list changed more than a batch lists, or a snapshot gave only its
    /// first page (protocol §9.10): page it again with
    /// [`crate::Engine::query_room_member_list`] if the app shows it.
    RoomUserListChanged {
        /// The room.
        room_id: String,
        /// Everyone in the room, this client too.
        count: u32,
    },
    /// The number of people in a room changed.
    RoomOnlineUserCountUpdate {
        /// The room.
        room_id: String,
        /// Everyone in the room, this client too.
        count: u32,
    },
    /// The token a room relies on expires soon; call [`crate::Engine::renew_token`].
    RoomTokenWillExpire {
        /// The room.
        room_id: String,
        /// Seconds until the token expires.
        remaining_s: u64,
    },
    /// A broadcast message from another user.
    BroadcastMessage {
        /// The room.
        room_id: String,
        /// The sender.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// The server's message id.
        message_id: String,
        /// Server time in ms.
        time_ms: u64,
    },
    /// A barrage message from another user.
    BarrageMessage {
        /// The room.
        room_id: String,
        /// The sender.
        from: User,
        /// The message text (at most 1024 bytes).
        message: String,
        /// The server's message id.
        message_id: String,
        /// Server time in ms.
        time_ms: u64,
    },
    /// A custom command sent to this user.
    CustomCommand {
        /// The room.
        room_id: String,
        /// The sender.
        from: User,
        /// The command text (at most 1024 bytes).
        command: String,
        /// Server time in ms.
        time_ms: u64,
    },
}

impl Event {
    /// The app event of the core as an SDK event (`None` for call results, which answer the
    /// async calls instead).
    pub(crate) fn from_app(e: AppEvent) -> Option<Event> {
        Some(match e {
            AppEvent::RoomStateChanged { room, reason, error_code, extended_data } => {
                Event::RoomStateChanged { room_id: room, reason, error_code, extended_data }
            }
            AppEvent::RoomUserUpdate { room, update_type, users } => {
                Event::RoomUserUpdate { room_id: room, update_type, users }
            }
            AppEvent::RoomStreamUpdate { room, update_type, streams } => {
                Event::RoomStreamUpdate { room_id: room, update_type, streams }
            }
            AppEvent::RoomStreamExtraInfoUpdate { room, streams } => {
                Event::RoomStreamExtraInfoUpdate { room_id: room, streams }
            }
            AppEvent::RoomExtraInfoUpdate { room, extra } => Event::RoomExtraInfoUpdate { room_id: room, extra },
            AppEvent::RoomUserListChanged { room, count } => Event::RoomUserListChanged { room_id: room, count },
            AppEvent::RoomOnlineUserCountUpdate { room, count } => {
                Event::RoomOnlineUserCountUpdate { room_id: room, count }
            }
            AppEvent::RoomTokenWillExpire { room, remaining_s } => {
                Event::RoomTokenWillExpire { room_id: room, remaining_s }
            }
            AppEvent::BroadcastMessage { room, from, message, message_id, time_ms } => {
                Event::BroadcastMessage { room_id: room, from, message, message_id, time_ms }
            }
            AppEvent::BarrageMessage { room, from, message, message_id, time_ms } => {
                Event::BarrageMessage { room_id: room, from, message, message_id, time_ms }
            }
            AppEvent::CustomCommand { room, from, command, time_ms } => {
                Event::CustomCommand { room_id: room, from, command, time_ms }
            }
            AppEvent::Result { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_not_events_and_states_keep_their_fields() {
        assert_eq!(
            Event::from_app(AppEvent::Result { handle: 1, error_code: None, message_id: None, members: None }),
            None
        );
        let e = Event::from_app(AppEvent::RoomStateChanged {
            room: "r1".into(),
            reason: RoomStateReason::Reconnecting,
            error_code: Some(ErrorCode::Reconnecting),
            extended_data: serde_json::json!({}),
        });
        assert_eq!(
            e,
            Some(Event::RoomStateChanged {
                room_id: "r1".into(),
                reason: RoomStateReason::Reconnecting,
                error_code: Some(ErrorCode::Reconnecting),
                extended_data: serde_json::json!({}),
            })
        );
    }
}
