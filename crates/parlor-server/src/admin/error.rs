//! Every refusal of the admin API: a 4xx (or 503) with `{"error": "<for people>", "code":
//! "<stable, for programs>"}`.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::{IntoResponses, ToSchema};

use crate::engine::admin::AdminRefusal;
use crate::engine::Unavailable;

/// The body of every refusal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: `unauthorized`, `unknown_app`, `no_such_room`,
    /// `no_such_user`, `no_such_stream`, `no_such_session`, `no_such_endpoint`,
    /// `invalid_field`, `invalid_cursor`, `too_many_extra_keys`, `bad_request`,
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`, `unprocessable`,
    /// `unavailable`.
    pub code: String,
}

/// A refusal.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    error: String,
}

impl ApiError {
    /// A refusal with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, error: impl Into<String>) -> ApiError {
        ApiError { status, code, error: error.into() }
    }

    /// 400 `invalid_field`.
    pub fn invalid(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", error)
    }

    /// 503 `unavailable`: the engine call the route needs failed (Redis unreachable). Never a
    /// 404 or an empty answer: the API could not ask, which is not "there is none".
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service temporarily unavailable: the shared state (Redis) could not be reached; try again",
        )
    }
}

/// The engine call a route needs failed: 503, never "not found" or an empty answer.
impl From<Unavailable> for ApiError {
    fn from(_: Unavailable) -> Self {
        ApiError::unavailable()
    }
}

impl From<AdminRefusal> for ApiError {
    fn from(r: AdminRefusal) -> Self {
        let nf = |code, error: &str| ApiError::new(StatusCode::NOT_FOUND, code, error);
        match r {
            AdminRefusal::NoSuchRoom => nf("no_such_room", "no such room"),
            AdminRefusal::NoSuchUser => nf("no_such_user", "no such user in that room"),
            AdminRefusal::NoSuchStream => nf("no_such_stream", "no such stream in that room"),
            AdminRefusal::NoSuchSession => nf("no_such_session", "no such session"),
            AdminRefusal::TooManyExtraKeys => ApiError::new(
                StatusCode::CONFLICT,
                "too_many_extra_keys",
                "the room has the most extra info keys (10); only existing keys can be set",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.error, "code": self.code }))).into_response()
    }
}

/// The refusals of every admin endpoint (the document lists them on each).
#[derive(IntoResponses)]
#[allow(dead_code)] // only read by the document
pub enum Refusals {
    /// A path, query or body that does not parse, or a field out of its bounds.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// A missing or wrong bearer secret.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// An unknown app, room, user, stream or session.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A room extra info key beyond the tenth.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// A body over the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A body without `Content-Type: application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A JSON body of the wrong shape.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// `unavailable`: the engine call the operation needs failed (the shared state, Redis, could
    /// not be reached); whether it was done is not known. Never a 404 or an empty answer for
    /// "could not ask". Retry later.
    #[response(
        status = 503,
        example = json!({"error": "service temporarily unavailable: the shared state (Redis) could not be reached; try again", "code": "unavailable"})
    )]
    Unavailable(ErrorBody),
}

/// axum's own refusals (a path segment or query that does not parse, a body that is no JSON or
/// lacks its content type, a wrong method) are plain text or empty: an admin client gets them as
/// `{"error": "<axum's text>", "code": "<from the status>"}` with the same status and headers,
/// like every other refusal.
pub async fn json_errors(res: Response) -> Response {
    let is_json =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !res.status().is_client_error() {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Rejection texts are a line; anything longer is cut, not an error of its own.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => parts.status.canonical_reason().unwrap_or("refused").to_lowercase(),
    };
    let code = match parts.status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::NOT_FOUND => "no_such_endpoint",
        _ => "bad_request",
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json!({ "error": text, "code": code }).to_string()))
}
