//! The admin API's bodies and answers, as the OpenAPI document describes them. The answers are
//! built from these types (not from the engine's), so that what is served is what the document
//! says.

use parlor_protocol::{RoomExtraItem, Stream, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::engine::RoomInfo;

/// A user: `{"id","name"}`. The server itself appears as `{"id":"$server","name":"server"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// The user id.
    pub id: String,
    /// The display name (empty: show the id).
    pub name: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView { id: u.id, name: u.name }
    }
}

/// A published stream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    /// The stream id.
    pub id: String,
    /// Its publisher.
    pub user: UserView,
    /// Its extra info.
    pub extra: String,
}

impl From<Stream> for StreamView {
    fn from(s: Stream) -> Self {
        StreamView { id: s.id, user: s.user.into(), extra: s.extra }
    }
}

/// One key of a room's extra info.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExtraView {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Who set it last.
    pub user: UserView,
    /// When, server time in ms.
    pub time_ms: u64,
}

impl From<RoomExtraItem> for ExtraView {
    fn from(i: RoomExtraItem) -> Self {
        ExtraView { key: i.key, value: i.value, user: i.user.into(), time_ms: i.time_ms }
    }
}

/// A room: its members, streams and extra info.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomView {
    /// The room id.
    pub room: String,
    /// The id of this life of the room (its epoch).
    pub room_session: String,
    /// Members, in the order they logged in.
    pub users: Vec<UserView>,
    /// Published streams, by id.
    pub streams: Vec<StreamView>,
    /// Extra info, by key.
    pub extra: Vec<ExtraView>,
}

impl From<RoomInfo> for RoomView {
    fn from(r: RoomInfo) -> Self {
        RoomView {
            room: r.room,
            room_session: r.room_session,
            users: r.users.into_iter().map(Into::into).collect(),
            streams: r.streams.into_iter().map(Into::into).collect(),
            extra: r.extra.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of rooms.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomList {
    /// The rooms of this page, by room id.
    pub rooms: Vec<RoomView>,
    /// The `cursor` of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The page of `GET …/rooms`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Most rooms in the page, 1 to 1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque); absent for the first page.
    #[param(pattern = "^([0-9a-fA-F]{2})+$")]
    pub cursor: Option<String>,
}

/// A page of a room's members (`GET …/rooms/{room}/members`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    /// The members of this page, in the order of user ids (bytes).
    pub users: Vec<UserView>,
    /// How many members the room has.
    pub count: u32,
    /// The `cursor` of the next page (the protocol's `next` of `members`, §9.9: a cursor of
    /// either works with the other); null on the last page.
    pub next_cursor: Option<String>,
}

/// The page of `GET …/rooms/{room}/members`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// Most members in the page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque); absent for the first page.
    pub cursor: Option<String>,
}

/// `kick`: who and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct KickBody {
    /// The user id to kick.
    pub user: String,
    /// Sent to the user in `kicked.extended_data.reason`.
    #[serde(default)]
    pub reason: String,
}

/// `close`: why.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CloseBody {
    /// Sent to every member in `kicked.extended_data.reason`.
    #[serde(default)]
    pub reason: String,
}

/// A broadcast or barrage from the server.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BroadcastBody {
    /// The text: 1 to 1024 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 1024)]
    pub message: String,
    /// A barrage rather than a broadcast.
    #[serde(default)]
    pub barrage: bool,
}

/// A barrage from the server.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BarrageBody {
    /// The text: 1 to 1024 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 1024)]
    pub message: String,
}

/// A custom command from the server.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CommandBody {
    /// The text: 1 to 1024 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 1024)]
    pub command: String,
    /// The members it is for (user ids); every member when empty. Unknown ids are ignored.
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub to: Vec<String>,
}

/// Room extra info set by the server.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ExtraBody {
    /// The key: 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub key: String,
    /// The value: at most 1024 bytes.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub value: String,
}

/// `kick` done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Kicked {
    /// The user kicked.
    pub kicked: String,
}

/// `close` done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Closed {
    /// The room closed.
    pub closed: String,
}

/// `connections/drop` done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Dropped {
    /// Connections this node closed (with Redis the other nodes close theirs too).
    pub dropped: usize,
}

/// A broadcast or barrage sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageSent {
    /// Its message id.
    pub message_id: String,
    /// Its event's seq on the room channel.
    pub seq: u64,
}

/// A command sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandSent {
    /// How many members it went to.
    pub recipients: usize,
}

/// An event on the room channel (room extra info set, stream deleted).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventSent {
    /// Its seq on the room channel.
    pub seq: u64,
}

/// A reconnect asked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reconnecting {
    /// The session whose connection was closed with 4010.
    pub session: String,
}

/// This node, in the stats.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Its id.
    pub id: String,
    /// `memory` or `redis`.
    pub engine: String,
    /// Sessions of the app with a connection on this node.
    pub connected: usize,
}

/// Counts of an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppStats {
    /// The app.
    pub app: u32,
    /// Its sessions, offline ones included (the whole deployment).
    pub sessions: usize,
    /// Its rooms.
    pub rooms: usize,
    /// Its published streams.
    pub streams: usize,
    /// The node that answered.
    pub node: NodeView,
}
