//! The admin API (`/v1/admin/…`): what an app's backend and the `parlor` CLI use to look at
//! and act on rooms. Documented in `docs/protocol.md` §9.4 and by the OpenAPI document served at
//! `GET /v1/admin/openapi.json`, which is generated from these handlers ([`openapi`]).
//!
//! Authenticated per app: `Authorization: Bearer <the app's server secret>`. Every answer is a
//! JSON object; every refusal is a 4xx (503 when Redis is unreachable) with `{"error", "code"}`
//! ([`error`]).
//!
//! With several nodes on Redis any node answers for the whole deployment: every operation is an
//! engine operation on the shared state ([`crate::engine::admin`]).

pub mod error;
pub mod openapi;
pub mod types;

mod members;
mod rooms;
mod send;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::any;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ApiError;
use crate::node::Node;

/// The admin routes and their document, from the same registrations (so that the document
/// lists every route the router serves).
fn api() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(rooms::list))
        .routes(routes!(rooms::show))
        .routes(routes!(rooms::close))
        .routes(routes!(rooms::set_extra))
        .routes(routes!(rooms::delete_stream))
        .routes(routes!(members::room_members))
        .routes(routes!(members::kick))
        .routes(routes!(members::reconnect_member))
        .routes(routes!(members::reconnect_session))
        .routes(routes!(members::drop_connections))
        .routes(routes!(members::stats))
        .routes(routes!(send::broadcast))
        .routes(routes!(send::barrage))
        .routes(routes!(send::command))
        .routes(routes!(openapi::document))
}

/// The OpenAPI document of the admin API.
pub fn document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The admin router, to be merged into the server's (its paths are absolute).
pub fn router() -> Router<Arc<Node>> {
    let (router, doc) = api().split_for_parts();
    let text = serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into());
    router
        .layer(axum::Extension(openapi::Served(Arc::new(text))))
        .route("/v1/admin", any(no_such_endpoint))
        .route("/v1/admin/{*rest}", any(no_such_endpoint))
        .layer(axum::middleware::map_response(error::json_errors))
}

async fn no_such_endpoint() -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "no_such_endpoint", "no such admin endpoint")
}

/// Ok when the request carries the app's secret.
pub(crate) fn authorize(node: &Node, app: u32, headers: &HeaderMap) -> Result<(), ApiError> {
    use axum::http::StatusCode;
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match (node.config.apps.get(&app), given) {
        (Some(secret), Some(given)) if crate::secret::same_secret(secret, given) => Ok(()),
        (None, _) => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_app", "unknown app")),
        _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "bad or missing bearer secret")),
    }
}
