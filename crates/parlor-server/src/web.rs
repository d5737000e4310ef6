//! What the server serves to browsers: the demo page at `/`, the Web SDK at `/sdk/parlor.js`
//! (both embedded in the binary), and, for the dev app only, a token endpoint for the demo page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parlor_protocol::token::{self, Claims};
use parlor_protocol::validate;
use serde::Deserialize;
use serde_json::json;

use crate::config::DEV_APP_ID;
use crate::node::Node;

/// The demo page.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The Web SDK, built from `sdk/web` (`npm run build` there; the test suite checks it is fresh).
pub const SDK_JS: &str = include_str!("../../../sdk/web/dist/parlor.js");
/// The Web SDK's type declarations.
pub const SDK_DTS: &str = include_str!("../../../sdk/web/dist/parlor.d.ts");

/// `GET /`.
pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX_HTML)
        .into_response()
}

/// `GET /sdk/parlor.js`.
pub async fn sdk_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SDK_JS)
        .into_response()
}

/// `GET /sdk/parlor.d.ts`.
pub async fn sdk_dts() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], SDK_DTS).into_response()
}

/// The body of `POST /v1/dev/token`.
#[derive(Debug, Deserialize)]
pub struct DevTokenRequest {
    /// The user.
    pub user: String,
    /// Restrict the token to this room.
    #[serde(default)]
    pub room: Option<String>,
    /// Validity in seconds (default one hour, at most a day).
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

/// `POST /v1/dev/token` `{"user":"u1"}` → `{"app_id":1,"token":"..."}`: only while the server
/// runs with the dev app alone (no `--app`), so that the demo page works out of the box. With
/// real apps it does not exist (404): tokens come from the app's own backend.
pub async fn dev_token(State(node): State<Arc<Node>>, Json(req): Json<DevTokenRequest>) -> Response {
    if !node.config.dev_mode {
        return (StatusCode::NOT_FOUND, Json(json!({"error":"only with the dev app"}))).into_response();
    }
    let Some(secret) = node.config.apps.get(&DEV_APP_ID) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error":"only with the dev app"}))).into_response();
    };
    if let Err(code) = validate::user_id(&req.user) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": code.message(), "code": code.code()}))).into_response();
    }
    if let Some(Err(code)) = req.room.as_deref().map(validate::room_id) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": code.message(), "code": code.code()}))).into_response();
    }
    let now_s = node.clock.wall_s(tokio::time::Instant::now());
    let ttl = req.ttl_s.unwrap_or(3600).clamp(1, 86_400);
    let mut claims = Claims::new(DEV_APP_ID, req.user, now_s, ttl, format!("{:016x}", rand::random::<u64>()));
    claims.room_id = req.room;
    Json(json!({"app_id": DEV_APP_ID, "token": token::mint(secret.as_bytes(), &claims)})).into_response()
}
