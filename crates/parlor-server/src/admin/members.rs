//! Members and sessions: a room's members in pages, kick, force a reconnect, drop every
//! connection; and the app's counts.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use tokio::time::Instant;

use super::authorize;
use super::error::{ApiError, Refusals};
use super::types::{AppStats, Dropped, KickBody, Kicked, MemberList, MemberQuery, NodeView, Reconnecting};
use crate::engine::admin::{AdminRefusal, SessionRef};
use crate::node::Node;

/// A room's members, a page at a time, in the order of user ids: the pages of the protocol's
/// `members` (§9.9), with the same cursors. A member who stays through a whole walk is on
/// exactly one page, whoever comes and goes meanwhile.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{app}/rooms/{room}/members",
    tag = "users",
    params(
        ("app" = u32, Path, description = "The app id"),
        ("room" = String, Path, description = "The room id"),
        MemberQuery
    ),
    responses((status = 200, description = "A page of members", body = MemberList), Refusals),
    security(("bearer" = []))
)]
pub async fn room_members(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    Query(q): Query<MemberQuery>,
    headers: HeaderMap,
) -> Result<Json<MemberList>, ApiError> {
    authorize(&node, app, &headers)?;
    let limit = q.limit.unwrap_or(parlor_protocol::DEFAULT_MEMBERS_PAGE);
    if !(1..=parlor_protocol::MAX_MEMBERS_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {}", parlor_protocol::MAX_MEMBERS_PAGE)));
    }
    let cursor = q.cursor.unwrap_or_default();
    match node.engine.members(app, None, &room, &cursor, limit as usize).await? {
        Some(page) => Ok(Json(MemberList {
            users: page.users.into_iter().map(Into::into).collect(),
            count: page.count,
            next_cursor: (!page.next.is_empty()).then_some(page.next),
        })),
        None => Err(AdminRefusal::NoSuchRoom.into()),
    }
}

/// Kick a user out of a room with 1002055 and the reason: the others get `stream_delete`
/// reason 4 for its streams and `user_delete`.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/kick",
    tag = "users",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body = KickBody,
    responses((status = 200, description = "Kicked", body = Kicked), Refusals),
    security(("bearer" = []))
)]
pub async fn kick(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
    Json(body): Json<KickBody>,
) -> Result<Json<Kicked>, ApiError> {
    authorize(&node, app, &headers)?;
    if node.admin_kick(app, &room, &body.user, &body.reason, Instant::now()).await? {
        Ok(Json(Kicked { kicked: body.user }))
    } else {
        Err(AdminRefusal::NoSuchUser.into())
    }
}

async fn reconnect(node: &Node, app: u32, who: SessionRef) -> Result<Json<Reconnecting>, ApiError> {
    let session = node.engine.reconnect(app, &who, Instant::now()).await??;
    Ok(Json(Reconnecting { session }))
}

/// Force the session of a user in a room to reconnect: its connection is closed with 4010,
/// the session stays, and the client resumes (invisible to the others).
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/users/{user}/reconnect",
    tag = "users",
    params(
        ("app" = u32, Path, description = "The app id"),
        ("room" = String, Path, description = "The room id"),
        ("user" = String, Path, description = "The user id")
    ),
    responses((status = 200, description = "Its connection is closed with 4010", body = Reconnecting), Refusals),
    security(("bearer" = []))
)]
pub async fn reconnect_member(
    State(node): State<Arc<Node>>,
    Path((app, room, user)): Path<(u32, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Reconnecting>, ApiError> {
    authorize(&node, app, &headers)?;
    reconnect(&node, app, SessionRef::Member { room, user }).await
}

/// Force a session, by its id (`welcome.session`), to reconnect: as for a user in a room.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/sessions/{session}/reconnect",
    tag = "users",
    params(("app" = u32, Path, description = "The app id"), ("session" = String, Path, description = "The session id")),
    responses((status = 200, description = "Its connection is closed with 4010", body = Reconnecting), Refusals),
    security(("bearer" = []))
)]
pub async fn reconnect_session(
    State(node): State<Arc<Node>>,
    Path((app, session)): Path<(u32, String)>,
    headers: HeaderMap,
) -> Result<Json<Reconnecting>, ApiError> {
    authorize(&node, app, &headers)?;
    reconnect(&node, app, SessionRef::Id(session)).await
}

/// Close every connection of the app at once with 4010; the sessions stay and their clients
/// resume.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/connections/drop",
    tag = "users",
    params(("app" = u32, Path, description = "The app id")),
    responses((status = 200, description = "Dropped", body = Dropped), Refusals),
    security(("bearer" = []))
)]
pub async fn drop_connections(
    State(node): State<Arc<Node>>,
    Path(app): Path<u32>,
    headers: HeaderMap,
) -> Result<Json<Dropped>, ApiError> {
    authorize(&node, app, &headers)?;
    Ok(Json(Dropped { dropped: node.admin_drop_connections(app).await? }))
}

/// The app's sessions, rooms and streams (the whole deployment) and the answering node.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{app}/stats",
    tag = "server",
    params(("app" = u32, Path, description = "The app id")),
    responses((status = 200, description = "Counts", body = AppStats), Refusals),
    security(("bearer" = []))
)]
pub async fn stats(
    State(node): State<Arc<Node>>,
    Path(app): Path<u32>,
    headers: HeaderMap,
) -> Result<Json<AppStats>, ApiError> {
    authorize(&node, app, &headers)?;
    let s = node.engine.app_stats(app).await?;
    let here = NodeView {
        id: node.config.node_id.clone(),
        engine: node.engine.kind().into(),
        connected: node.hub.connected_of(app),
    };
    Ok(Json(AppStats { app, sessions: s.sessions, rooms: s.rooms, streams: s.streams, node: here }))
}
