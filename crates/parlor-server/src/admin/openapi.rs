//! The OpenAPI 3 document of the admin API, generated (utoipa) from the handlers' annotations
//! and the types of their bodies and answers; served at `GET /v1/admin/openapi.json`.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;

use super::error::ErrorBody;

/// The parts of the document that are not a route: title, security scheme, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parlor admin API",
        description = "Look at and act on an app's rooms. Authenticated per app with \
            `Authorization: Bearer <the app's server secret>`. Every refusal is \
            `{\"error\",\"code\"}`. See docs/protocol.md §9.4.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "rooms", description = "Rooms, their extra info and streams"),
        (name = "users", description = "Members and sessions"),
        (name = "send", description = "Messages from the server"),
        (name = "server", description = "Counts and this document")
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer)
)]
struct Base;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some("The app's server secret".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The document without its paths (the router adds them).
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/admin/openapi.json",
    tag = "server",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn document(Extension(doc): Extension<Served>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.as_str().to_owned())
}

/// The document as served: its JSON text, made once when the router is built.
#[derive(Debug, Clone)]
pub struct Served(pub Arc<String>);
