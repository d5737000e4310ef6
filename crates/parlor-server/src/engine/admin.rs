//! The engine's operations for the admin API (`crate::admin`): what the server itself does to a
//! room, as opposed to what a session asks for ([`Op`](super::Op)).
//!
//! Each is one atomic step on every engine (in Redis one script run), like a session's
//! operation, and works for the whole deployment from any node: a room, stream or session on
//! another node is found in the shared state, and what must happen on that node (a close) goes
//! through its control channel. Events the server causes have no author: every member gets
//! them, and the server appears as the sender [`server_user`] (`{"id":"$server","name":"server"}`),
//! a user id that no session can claim (`hello` refuses it, `docs/protocol.md` §9.4).

use std::future::Future;

use parlor_protocol::User;
use tokio::time::Instant;

use super::{RoomInfo, Stats, Unavailable};

/// The user id the server sends as. `hello` refuses it, so no token can claim it.
pub const SERVER_USER_ID: &str = "$server";

/// The user the server appears as in the events it causes (`from` of a broadcast, barrage or
/// command, `user` of room extra info).
pub fn server_user() -> User {
    User { id: SERVER_USER_ID.to_string(), name: "server".to_string() }
}

/// Why an admin operation did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// The room does not exist (has no members).
    NoSuchRoom,
    /// No such user in the room.
    NoSuchUser,
    /// No such stream in the room.
    NoSuchStream,
    /// No such session in the app.
    NoSuchSession,
    /// The room has the most extra info keys (§9.2) and this is a new key.
    TooManyExtraKeys,
}

/// The session a reconnect is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRef {
    /// By its public id (`welcome.session`).
    Id(String),
    /// The session of `user` in `room`.
    Member {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
}

/// A page of rooms: by room id, those after a cursor.
#[derive(Debug, Clone)]
pub struct RoomPage {
    /// The rooms, by room id.
    pub rooms: Vec<RoomInfo>,
    /// The id of the last room when more follow.
    pub more_after: Option<String>,
}

/// The result of an admin operation: Redis may be unreachable, the target may not exist.
pub type AdminResult<T> = Result<Result<T, AdminRefusal>, Unavailable>;

/// What a server broadcast or barrage produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The event's `seq` on the room channel.
    pub seq: u64,
    /// Its message id (the seq as a decimal string, §9.2).
    pub message_id: String,
}

/// The admin operations of an engine. See the module docs.
pub trait AdminEngine: Send + Sync + 'static {
    /// Up to `limit` rooms of `app` whose ids sort after `after`, by id.
    fn room_page(
        &self,
        app: u32,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<RoomPage, Unavailable>> + Send;

    /// A broadcast (or barrage) from the server to everyone in `room`. Not counted toward the
    /// room's message rate: the app's backend is trusted.
    fn server_message(
        &self,
        app: u32,
        room: &str,
        barrage: bool,
        message: &str,
        time_ms: u64,
        now: Instant,
    ) -> impl Future<Output = AdminResult<Sent>> + Send;

    /// A custom command from the server on the `direct` channel of the members of `room` named
    /// in `to` (every member when empty; unknown ids ignored). Answers how many got it.
    fn server_command(
        &self,
        app: u32,
        room: &str,
        to: &[String],
        command: &str,
        time_ms: u64,
        now: Instant,
    ) -> impl Future<Output = AdminResult<usize>> + Send;

    /// Set room extra info `key` as the server: `room_extra` with the server as `user`. Answers
    /// the event's seq.
    fn server_room_extra(
        &self,
        app: u32,
        room: &str,
        key: &str,
        value: &str,
        time_ms: u64,
        now: Instant,
    ) -> impl Future<Output = AdminResult<u64>> + Send;

    /// Delete a stream of `room`: `stream_delete` with reason 4 to every member, its publisher
    /// included. Answers the event's seq.
    fn delete_stream(
        &self,
        app: u32,
        room: &str,
        stream: &str,
        now: Instant,
    ) -> impl Future<Output = AdminResult<u64>> + Send;

    /// Close the connection of a session with 4010, wherever it is served: the session stays and
    /// its client resumes. Answers the session's public id (a session without a connection has
    /// nothing to close and is answered the same).
    fn reconnect(&self, app: u32, who: &SessionRef, now: Instant) -> impl Future<Output = AdminResult<String>> + Send;

    /// Counts of `app` alone.
    fn app_stats(&self, app: u32) -> impl Future<Output = Result<Stats, Unavailable>> + Send;

    /// Ask every other node to close its connections of `app` with 4010 (the admin API's drop;
    /// the node asked closes its own). Nothing to ask on one node.
    fn drop_elsewhere(&self, app: u32) -> impl Future<Output = Result<(), Unavailable>> + Send;
}
