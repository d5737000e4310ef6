//! Messages from the server: a broadcast or barrage to a room, a custom command to its members.
//! The server is the sender `{"id":"$server","name":"server"}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use parlor_protocol::validate;
use tokio::time::Instant;

use super::authorize;
use super::error::{ApiError, Refusals};
use super::types::{BarrageBody, BroadcastBody, CommandBody, CommandSent, MessageSent};
use crate::node::Node;

/// Most recipients a command may name (what a maximum frame of the protocol could carry).
const MAX_TO: usize = 10_000;

/// Send a broadcast (or barrage) from the server to everyone in the room. Not counted toward
/// the room's message rate.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/broadcast",
    tag = "send",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body = BroadcastBody,
    responses((status = 200, description = "Sent", body = MessageSent), Refusals),
    security(("bearer" = []))
)]
pub async fn broadcast(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
    Json(body): Json<BroadcastBody>,
) -> Result<Json<MessageSent>, ApiError> {
    authorize(&node, app, &headers)?;
    validate::message(&body.message).map_err(|c| ApiError::invalid(c.message()))?;
    let now = Instant::now();
    let time_ms = node.clock.wall_ms(now);
    let sent = node.engine.server_message(app, &room, body.barrage, &body.message, time_ms, now).await??;
    Ok(Json(MessageSent { message_id: sent.message_id, seq: sent.seq }))
}

/// Send a barrage from the server to everyone in the room: `broadcast` with `barrage` true,
/// under its own name. Not counted toward the room's message rate.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/barrage",
    tag = "send",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body = BarrageBody,
    responses((status = 200, description = "Sent", body = MessageSent), Refusals),
    security(("bearer" = []))
)]
pub async fn barrage(
    state: State<Arc<Node>>,
    path: Path<(u32, String)>,
    headers: HeaderMap,
    Json(body): Json<BarrageBody>,
) -> Result<Json<MessageSent>, ApiError> {
    broadcast(state, path, headers, Json(BroadcastBody { message: body.message, barrage: true })).await
}

/// Send a custom command from the server on the `direct` channel of the room's members named
/// in `to` (every member when empty).
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/command",
    tag = "send",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body = CommandBody,
    responses((status = 200, description = "Sent", body = CommandSent), Refusals),
    security(("bearer" = []))
)]
pub async fn command(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
    Json(body): Json<CommandBody>,
) -> Result<Json<CommandSent>, ApiError> {
    authorize(&node, app, &headers)?;
    validate::message(&body.command).map_err(|c| ApiError::invalid(c.message()))?;
    if body.to.len() > MAX_TO {
        return Err(ApiError::invalid(format!("to names at most {MAX_TO} users")));
    }
    let now = Instant::now();
    let time_ms = node.clock.wall_ms(now);
    let recipients = node.engine.server_command(app, &room, &body.to, &body.command, time_ms, now).await??;
    Ok(Json(CommandSent { recipients }))
}
