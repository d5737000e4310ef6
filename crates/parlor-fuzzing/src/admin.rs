//! The `admin_api` target: any admin HTTP request — method, path, secret, content type, body —
//! through the real axum router (`parlor_server::http::router`) in-process, on a memory node
//! where user `a` is in room `r1`.
//!
//! Input: a selector byte (method, authorization, content type), the path up to the first
//! `\n` (appended to `/v1/admin/apps/`), then the body.
//!
//! Checked: the router never panics and never answers 5xx; every answer under `/v1/admin/` is
//! a JSON object, and a 4xx one says what was wrong in a string `error`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request};
use http_body_util::BodyExt;
use parlor_server::{Node, ServerConfig};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::input::Input;
use crate::resume::Session;

const SECRET: &str = "fuzz-secret";

/// See the module docs.
pub fn admin_api(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.byte();
    let rest = input.rest();
    let (path, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let uri = format!("/v1/admin/apps/{path}");
    let method = [Method::GET, Method::POST, Method::PUT, Method::DELETE][usize::from(sel & 3)].clone();
    let mut req = Request::builder().method(method).uri(uri.as_str());
    req = match (sel >> 2) & 3 {
        0 => req.header(header::AUTHORIZATION, format!("Bearer {SECRET}")),
        1 => req.header(header::AUTHORIZATION, "Bearer wrong"),
        2 => req.header(header::AUTHORIZATION, SECRET),
        _ => req,
    };
    if sel & 16 == 0 {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    // A path that is no URI is refused by the HTTP parser before any router sees it.
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    crate::runtime::block_on(async move {
        let node = Arc::new(Node::memory(ServerConfig::for_tests(1, SECRET)));
        let (mut a, _) = Session::hello(&node, "a", Instant::now()).await;
        a.send(&node, r#"{"t":"login","id":1,"room":"r1"}"#, Instant::now()).await;
        let res = parlor_server::http::router(node).oneshot(req).await.expect("the router is infallible");
        let status = res.status();
        assert!(!status.is_server_error(), "{uri}: answered {status}");
        let bytes = res.into_body().collect().await.expect("a body in memory").to_bytes();
        let json: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                panic!("{uri}: {status} with a body that is no JSON ({e}): {:?}", String::from_utf8_lossy(&bytes))
            }
        };
        assert!(json.is_object(), "{uri}: {status} {json}");
        if status.is_client_error() {
            assert!(json["error"].is_string(), "{uri}: {status} without a string error: {json}");
        }
    });
}
