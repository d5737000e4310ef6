//! The app's calls: [`Command`] and what the core does with each.

use parlor_protocol::{
    ClientFrame, ErrorCode, Login, Logout, Members, Publish, RenewToken, RoomConfig, SendCommand, SendMessage,
    SetRoomExtra, StreamExtra, Switch, Unpublish, User,
};

use crate::connection::ConnState;
use crate::core::{no_data, Core};
use crate::event::RoomStateReason;
use crate::requests::Kind;
use crate::room::Room;

/// A call of the app. Every command is made with a `handle` of the app's choosing, and its
/// outcome is reported as [`crate::AppEvent::Result`] with that handle.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Log in to a room. The first login of a session also names the user and the session token.
    LoginRoom {
        /// The room to enter.
        room: String,
        /// Who logs in (the session's user; another user fails with 1002077).
        user: User,
        /// The token, sent in `hello` (first login) and in this room's `login`.
        token: String,
        /// `max_members` and whether to get the room's user updates.
        config: RoomConfig,
    },
    /// Log out of a room.
    LogoutRoom {
        /// The room to leave.
        room: String,
    },
    /// Leave `from` and enter `to` in one step.
    SwitchRoom {
        /// The room to leave (reported LOGOUT at once).
        from: String,
        /// The room to enter (reported LOGINING, then LOGINED or LOGIN_FAILED).
        to: String,
        /// A token for `to`; without one, `from`'s is used.
        token: Option<String>,
        /// `max_members` and whether to get `to`'s user updates.
        config: RoomConfig,
    },
    /// Publish a stream.
    Publish {
        /// The room to publish in.
        room: String,
        /// The stream id, unique in the app while published.
        stream: String,
        /// The extra info the others see with it.
        extra: String,
    },
    /// Stop publishing a stream.
    Unpublish {
        /// The room it is published in.
        room: String,
        /// The stream id.
        stream: String,
    },
    /// Set a published stream's extra info.
    SetStreamExtra {
        /// The room it is published in.
        room: String,
        /// The stream id.
        stream: String,
        /// The new extra info.
        extra: String,
    },
    /// Set one key of the room's extra info.
    SetRoomExtra {
        /// The room.
        room: String,
        /// The key (at most 128 bytes).
        key: String,
        /// The value (at most 1024 bytes).
        value: String,
    },
    /// Send a broadcast message.
    Broadcast {
        /// The room to send it to.
        room: String,
        /// The text (at most 1024 bytes).
        message: String,
    },
    /// Send a barrage message.
    Barrage {
        /// The room to send it to.
        room: String,
        /// The text (at most 1024 bytes).
        message: String,
    },
    /// Send a custom command.
    CustomCommand {
        /// The room the recipients are in.
        room: String,
        /// Recipients' user ids; empty means everyone else in the room.
        to: Vec<String>,
        /// The command text.
        command: String,
    },
    /// Replace the session's token (and every room's).
    RenewToken {
        /// The new token.
        token: String,
    },
    /// One page of a room's member list (protocol §9.9), reported in the call's
    /// [`crate::AppEvent::Result`] (`members`).
    QueryRoomMemberList {
        /// The room (the client must be in it).
        room: String,
        /// "" for the first page, else the previous page's `next_flag`.
        next_flag: String,
        /// At most this many members (1 to 500).
        count: u32,
    },
}

impl Core {
    /// The app calls something; its outcome is reported later as [`crate::AppEvent::Result`]
    /// with `handle`.
    pub fn handle_command(&mut self, now: u64, handle: u64, cmd: Command) {
        match cmd {
            Command::LoginRoom { room, user, token, config } => self.login_room(now, handle, room, user, token, config),
            Command::LogoutRoom { room } => self.logout_room(handle, room),
            Command::SwitchRoom { from, to, token, config } => self.switch_room(now, handle, from, to, token, config),
            Command::Publish { room, stream, extra } => {
                self.stream_rooms.insert(stream.clone(), room.clone());
                self.room_request(
                    handle,
                    &room,
                    ClientFrame::Publish(Publish {
                        id: 0,
                        room: room.clone(),
                        stream: stream.clone(),
                        extra: extra.clone(),
                    }),
                    Kind::Publish { room: room.clone(), stream, extra },
                )
            }
            Command::Unpublish { room, stream } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    // The app's intent: never re-publish it, whatever happens to the request.
                    r.own.remove(&stream);
                }
                self.stream_rooms.remove(&stream);
                self.room_request(
                    handle,
                    &room,
                    ClientFrame::Unpublish(Unpublish { id: 0, room: room.clone(), stream: stream.clone() }),
                    Kind::Unpublish { room: room.clone(), stream },
                )
            }
            Command::SetStreamExtra { room, stream, extra } => self.room_request(
                handle,
                &room,
                ClientFrame::StreamExtra(StreamExtra {
                    id: 0,
                    room: room.clone(),
                    stream: stream.clone(),
                    extra: extra.clone(),
                }),
                Kind::StreamExtra { room: room.clone(), stream, extra },
            ),
            Command::SetRoomExtra { room, key, value } => self.room_request(
                handle,
                &room,
                ClientFrame::RoomExtra(SetRoomExtra {
                    id: 0,
                    room: room.clone(),
                    key: key.clone(),
                    value: value.clone(),
                }),
                Kind::RoomExtra { room: room.clone(), key, value },
            ),
            Command::Broadcast { room, message } => self.room_request(
                handle,
                &room,
                ClientFrame::Broadcast(SendMessage { id: 0, room: room.clone(), message }),
                Kind::Plain,
            ),
            Command::Barrage { room, message } => self.room_request(
                handle,
                &room,
                ClientFrame::Barrage(SendMessage { id: 0, room: room.clone(), message }),
                Kind::Plain,
            ),
            Command::CustomCommand { room, to, command } => self.room_request(
                handle,
                &room,
                ClientFrame::Command(SendCommand { id: 0, room: room.clone(), to, command }),
                Kind::Plain,
            ),
            Command::QueryRoomMemberList { room, next_flag, count } => self.room_request(
                handle,
                &room,
                ClientFrame::Members(Members { id: 0, room: room.clone(), cursor: next_flag, limit: count }),
                Kind::Members,
            ),
            Command::RenewToken { token } => {
                if self.conn.session.is_none() && self.conn.state == ConnState::Idle {
                    self.token = token;
                    self.result(Some(handle), 0, None);
                    return;
                }
                self.request(
                    ClientFrame::RenewToken(RenewToken { id: 0, token: token.clone() }),
                    Kind::RenewToken { token },
                    Some(handle),
                    None,
                );
            }
        }
        self.maybe_end();
    }

    /// A request about a room: only for a room the client is in (or entering, or away from).
    fn room_request(&mut self, handle: u64, room: &str, frame: ClientFrame, kind: Kind) {
        if !self.rooms.contains_key(room) {
            self.result(Some(handle), ErrorCode::NotInRoom.code(), None);
            return;
        }
        self.request(frame, kind, Some(handle), Some(room.to_string()));
    }

    fn login_room(&mut self, now: u64, handle: u64, room: String, user: User, token: String, config: RoomConfig) {
        if self.rooms.contains_key(&room) {
            self.result(Some(handle), ErrorCode::TooManyRooms.code(), None);
            return;
        }
        match &self.user {
            Some(u) if self.conn.session.is_some() || self.conn.state != ConnState::Idle => {
                if u.id != user.id {
                    // One session is one user: a second user needs a second engine.
                    self.report(&room, RoomStateReason::Logining, 0, no_data());
                    self.report(&room, RoomStateReason::LoginFailed, ErrorCode::TokenUserMismatch.code(), no_data());
                    self.result(Some(handle), ErrorCode::TokenUserMismatch.code(), None);
                    return;
                }
            }
            _ => {
                self.user = Some(user);
                self.token = token.clone();
            }
        }
        self.add_logining_room(now, &room, Room::logining(config.clone(), Some(token.clone())));
        self.report(&room, RoomStateReason::Logining, 0, no_data());
        self.want_connection(now);
        self.request(
            ClientFrame::Login(Login { id: 0, room: room.clone(), config, token: Some(token) }),
            Kind::Login { room },
            Some(handle),
            None,
        );
    }

    fn logout_room(&mut self, handle: u64, room: String) {
        let Some(r) = self.rooms.get(&room) else {
            let code = ErrorCode::NotInRoomLogout.code();
            self.report(&room, RoomStateReason::LogoutFailed, code, no_data());
            self.result(Some(handle), code, None);
            return;
        };
        if r.phase().is_logining() {
            // Give up the login; a login already sent is answered with a logout later.
            let old = self.forget_room(&room);
            self.fail_room_requests(&room, ErrorCode::NotInRoom.code());
            self.report(&room, RoomStateReason::Logout, 0, no_data());
            self.result(Some(handle), 0, None);
            self.leave_if_on_server(&room, old);
            return;
        }
        self.request(
            ClientFrame::Logout(Logout { id: 0, room: room.clone() }),
            Kind::Logout { room: room.clone() },
            Some(handle),
            Some(room),
        );
    }

    fn switch_room(
        &mut self,
        now: u64,
        handle: u64,
        from: String,
        to: String,
        token: Option<String>,
        config: RoomConfig,
    ) {
        if !self.rooms.contains_key(&from) {
            let code = ErrorCode::NotInRoomLogout.code();
            self.report(&from, RoomStateReason::LogoutFailed, code, no_data());
            self.result(Some(handle), code, None);
            return;
        }
        if self.rooms.contains_key(&to) {
            self.result(Some(handle), ErrorCode::TooManyRooms.code(), None);
            return;
        }
        // Leaving `from` is reported at once: the server does it in the same step, and from now
        // on nothing about `from` reaches the app.
        let old = self.forget_room(&from);
        self.leave_room_requests(&from);
        self.report(&from, RoomStateReason::Logout, 0, no_data());
        let own_token = token.clone().or_else(|| old.and_then(|o| o.token));
        self.add_logining_room(now, &to, Room::logining(config.clone(), own_token));
        self.report(&to, RoomStateReason::Logining, 0, no_data());
        self.want_connection(now);
        self.request(
            ClientFrame::Switch(Switch { id: 0, from, to: to.clone(), config, token }),
            Kind::Switch { to },
            Some(handle),
            None,
        );
    }
}
