//! The HTTP side: `/v1/ws` (the protocol), `/v1/admin/…` (admin API), `/metrics` (Prometheus),
//! `/healthz` (liveness), `/readyz` (readiness: 503 while draining).
//!
//! The admin API is [`crate::admin`]; this module composes it with the rest.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::time::Instant;

use crate::limits::Refused;
use crate::node::Node;

/// The process-wide Prometheus recorder (installed once, on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms with buckets (not summaries), so that dashboards can aggregate nodes.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), crate::telemetry::SECONDS_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding app's): then ours only renders
        // what it has, which is nothing, and that is the embedding app's choice.
        if metrics::set_global_recorder(recorder).is_ok() {
            crate::telemetry::describe();
        }
        handle
    })
}

/// The router of a Parlor server.
pub fn router(node: Arc<Node>) -> Router {
    prometheus();
    Router::new()
        .route("/", get(crate::web::index))
        .route("/sdk/parlor.js", get(crate::web::sdk_js))
        .route("/sdk/parlor.d.ts", get(crate::web::sdk_dts))
        .route("/v1/dev/token", post(crate::web::dev_token))
        .route("/v1/ws", get(ws_upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(crate::admin::router())
        .with_state(node)
}

/// The WebSocket upgrade (RFC 6455 §4.2), done here rather than by axum's `ws` feature so that
/// the connection is a plain `tokio_tungstenite::WebSocketStream`, the same type the in-memory
/// test transport gives.
async fn ws_upgrade(State(node): State<Arc<Node>>, mut req: Request) -> Response {
    // The door (`crate::limits`), before any work for the upgrade: a refused client has cost a
    // header parse. The address is absent only when the router is served without connect info.
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let now = Instant::now();
    let slot = match node.limits.admit_upgrade(ip, now) {
        Ok(slot) => slot,
        Err(why) => {
            let (status, label, text) = match why {
                Refused::PerIp => (StatusCode::TOO_MANY_REQUESTS, "per_ip", "too many connections from this address"),
                Refused::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining", "this node is draining"),
                Refused::Saturated => (StatusCode::SERVICE_UNAVAILABLE, "saturated", "this node is busy: try again"),
                Refused::Rate => (StatusCode::SERVICE_UNAVAILABLE, "rate", "too many new connections"),
            };
            metrics::counter!("parlor_upgrades_refused_total", "why" => label).increment(1);
            let mut res = (status, text).into_response();
            if let Some(secs) = node.limits.retry_after_s(why, now) {
                res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            return res;
        }
    };
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, true, true, Some(key)) =
        (has_token(header::CONNECTION, "upgrade"), has_token(header::UPGRADE, "websocket"), version_ok, key)
    else {
        return (StatusCode::BAD_REQUEST, "a WebSocket upgrade is expected here (RFC 6455, version 13)")
            .into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The connection counts against its address until the socket ends.
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => serve_upgraded(node, upgraded).await,
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

async fn healthz(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(node.health().await)
}

/// Readiness for a balancer: 200 `{"status":"ready"}` while serving, 503
/// `{"status":"draining"}` from the first moment of a drain (`crate::drain`). `/healthz` stays
/// the liveness check.
async fn readyz(State(node): State<Arc<Node>>) -> Response {
    if node.limits.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" }))).into_response()
    } else {
        Json(json!({ "status": "ready" })).into_response()
    }
}

async fn metrics_text() -> String {
    prometheus().render()
}

/// Serve the WebSocket over the upgraded connection: over the plain TCP stream when it is one
/// (hyper-util's `auto` server wraps it, so its own `downcast` is needed). This task lives as
/// long as the connection, and a task is as large as its future's largest state: the TLS and
/// the fallback paths are boxed, because a TLS stream's state (several KiB) inline would size
/// every plain connection's task too (7 KiB of an idle session, by heaptrack).
async fn serve_upgraded(node: Arc<Node>, upgraded: hyper::upgrade::Upgraded) {
    use hyper_util::rt::TokioIo;
    use hyper_util::server::conn::auto::upgrade::downcast;
    let config = crate::ws::ws_config(node.config.max_frame);
    let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
    match downcast::<TokioIo<tokio::net::TcpStream>>(upgraded) {
        Ok(parts) => {
            let tcp = parts.io.into_inner();
            // Copied out and let go of now: the `Bytes` holds hyper's whole read buffer
            // (16 KiB), and a binding would keep it for the connection's life.
            let read = parts.read_buf.to_vec();
            drop(parts.read_buf);
            let socket = tokio_tungstenite::WebSocketStream::from_partially_read(tcp, read, role, Some(config)).await;
            crate::ws::serve(node, socket).await;
        }
        Err(upgraded) => Box::pin(serve_other(node, upgraded, config)).await,
    }
}

/// The TLS stream, or hyper's `Upgraded` itself when neither downcast works. (The TLS branch
/// repeats the plain one on purpose: one generic function for both measured ~0.3 KiB more per
/// idle plain connection in W3.)
async fn serve_other(
    node: Arc<Node>,
    upgraded: hyper::upgrade::Upgraded,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
) {
    use hyper_util::rt::TokioIo;
    let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
    match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<crate::tls::TlsStream>>(upgraded) {
        Ok(parts) => {
            let tls = parts.io.into_inner();
            let read = parts.read_buf.to_vec();
            drop(parts.read_buf);
            let socket = tokio_tungstenite::WebSocketStream::from_partially_read(tls, read, role, Some(config)).await;
            crate::ws::serve(node, socket).await;
        }
        Err(upgraded) => {
            let socket =
                tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), role, Some(config)).await;
            crate::ws::serve(node, socket).await;
        }
    }
}
