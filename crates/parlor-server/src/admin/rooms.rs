//! Rooms: list (paginated), show, close, set extra info, delete a stream.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use parlor_protocol::validate;
use tokio::time::Instant;

use super::authorize;
use super::error::{ApiError, Refusals};
use super::types::{CloseBody, Closed, EventSent, ExtraBody, PageQuery, RoomList, RoomView};
use crate::node::Node;

/// Rooms per page at most, and without `limit`: a deployment of up to this many rooms per app
/// gets them all in one answer, as before pagination.
pub const MAX_PAGE: u32 = 1000;

/// The cursor after room `id`: its bytes in hex, so that it needs no escaping in a URL.
fn cursor_of(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The position a cursor stands for: the room id it was made from. Any hex is a position
/// (bytes that are no UTF-8 are read lossily: still a place in the order of room ids).
fn room_of(cursor: &str) -> Option<String> {
    // from_str_radix alone would take a sign ("+1").
    if !cursor.len().is_multiple_of(2) || cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// List the app's rooms, by room id, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{app}/rooms",
    tag = "rooms",
    params(("app" = u32, Path, description = "The app id"), PageQuery),
    responses((status = 200, description = "A page of rooms", body = RoomList), Refusals),
    security(("bearer" = []))
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    Path(app): Path<u32>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Json<RoomList>, ApiError> {
    authorize(&node, app, &headers)?;
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(room_of(c).ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_cursor", "not a cursor this API gave")
        })?),
    };
    let page = node.engine.room_page(app, after.as_deref(), limit as usize).await?;
    Ok(Json(RoomList {
        rooms: page.rooms.into_iter().map(Into::into).collect(),
        next_cursor: page.more_after.as_deref().map(cursor_of),
    }))
}

/// One room with its members, streams and extra info.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{app}/rooms/{room}",
    tag = "rooms",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    responses((status = 200, description = "The room", body = RoomView), Refusals),
    security(("bearer" = []))
)]
pub async fn show(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
) -> Result<Json<RoomView>, ApiError> {
    authorize(&node, app, &headers)?;
    match node.admin_room(app, &room).await? {
        Some(info) => Ok(Json(info.into())),
        None => Err(crate::engine::admin::AdminRefusal::NoSuchRoom.into()),
    }
}

/// Close a room: every member is kicked with 1002055 and the reason.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/close",
    tag = "rooms",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body(content = Option<CloseBody>, description = "Optional: the reason"),
    responses((status = 200, description = "Closed", body = Closed), Refusals),
    security(("bearer" = []))
)]
pub async fn close(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
    // No body, `null` and `{}` all close without a reason (schemathesis found `null` refused).
    body: Option<Json<Option<CloseBody>>>,
) -> Result<Json<Closed>, ApiError> {
    authorize(&node, app, &headers)?;
    let reason = body.and_then(|b| b.0).map(|b| b.reason).unwrap_or_default();
    if node.admin_close_room(app, &room, &reason, Instant::now()).await? {
        Ok(Json(Closed { closed: room }))
    } else {
        Err(crate::engine::admin::AdminRefusal::NoSuchRoom.into())
    }
}

/// Set one key of the room's extra info as the server: the members get `room_extra` with the
/// server (`$server`) as `user`.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{app}/rooms/{room}/extra",
    tag = "rooms",
    params(("app" = u32, Path, description = "The app id"), ("room" = String, Path, description = "The room id")),
    request_body = ExtraBody,
    responses((status = 200, description = "Set", body = EventSent), Refusals),
    security(("bearer" = []))
)]
pub async fn set_extra(
    State(node): State<Arc<Node>>,
    Path((app, room)): Path<(u32, String)>,
    headers: HeaderMap,
    Json(body): Json<ExtraBody>,
) -> Result<Json<EventSent>, ApiError> {
    authorize(&node, app, &headers)?;
    validate::room_extra(&body.key, &body.value).map_err(|c| ApiError::invalid(c.message()))?;
    let now = Instant::now();
    let time_ms = node.clock.wall_ms(now);
    let seq = node.engine.server_room_extra(app, &room, &body.key, &body.value, time_ms, now).await??;
    Ok(Json(EventSent { seq }))
}

/// Delete a published stream: every member, its publisher included, gets `stream_delete` with
/// reason 4.
#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{app}/rooms/{room}/streams/{stream}",
    tag = "rooms",
    params(
        ("app" = u32, Path, description = "The app id"),
        ("room" = String, Path, description = "The room id"),
        ("stream" = String, Path, description = "The stream id")
    ),
    responses((status = 200, description = "Deleted", body = EventSent), Refusals),
    security(("bearer" = []))
)]
pub async fn delete_stream(
    State(node): State<Arc<Node>>,
    Path((app, room, stream)): Path<(u32, String, String)>,
    headers: HeaderMap,
) -> Result<Json<EventSent>, ApiError> {
    authorize(&node, app, &headers)?;
    let seq = node.engine.delete_stream(app, &room, &stream, Instant::now()).await??;
    Ok(Json(EventSent { seq }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_stands_for_its_room_and_nothing_else_parses() {
        for id in ["r1", "a/b&c=d", "~!@#$%^&*()_+=-`;',.<>/"] {
            assert_eq!(room_of(&cursor_of(id)).as_deref(), Some(id));
        }
        assert_eq!(room_of("ff").as_deref(), Some("\u{fffd}"), "any hex is a position");
        for bad in ["", "7", "zz", "c3x", "+1"] {
            assert_eq!(room_of(bad), None, "{bad}");
        }
    }
}
