//! `--webhook URL` and an app's `webhooks = [...]` in `--config` reach the real binary: a user
//! logging in to `parlor serve` is told, signed with the app's secret, to the flag's URL and to
//! the app's own URL (the webhook contract itself is tested in parlor-server's tests/webhooks.rs).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use parlor_protocol::token::{self, Claims};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "hook-secret";

/// A receiver on loopback: every request's path, signature header and body.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, String, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let app = axum::Router::new().route(
        "/{hook}",
        axum::routing::post(
            move |axum::extract::Path(hook): axum::extract::Path<String>, headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = headers.get("parlor-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                    let verified = parlor_server::webhook::verify(SECRET, &sig, &body, now_s, 300).is_ok();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let _ = tx.send((hook, if verified { "verified".into() } else { sig }, v));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn the_flag_and_the_config_files_app_webhooks_are_both_sent() {
    let (base, mut hooks) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("parlor.toml");
    std::fs::write(&file, format!("[[app]]\nid = 7\nsecret = \"{SECRET}\"\nwebhooks = [\"{base}/app\"]\n")).unwrap();
    let hook = format!("{base}/all");
    let args =
        ["--listen", "127.0.0.1:0", "--drain-time", "0s", "--config", file.to_str().unwrap(), "--webhook", &hook];
    let (mut child, addr) = common::serve(args);

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws")).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let tok = token::mint(SECRET.as_bytes(), &Claims::new(7, "u1", now, 3600, "n"));
    for frame in [
        json!({"t":"hello","v":1,"app_id":7,"user":{"id":"u1","name":"U"},"token":tok}),
        json!({"t":"login","id":1,"room":"r1","config":{"max_members":0,"user_status_notify":true}}),
    ] {
        ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    // Wait for the login's answer, then for both URLs' room_created and user_login.
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        if m.to_text().unwrap().contains(r#""t":"ok""#) {
            break;
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let (hook, sig, body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv()).await.unwrap().unwrap();
        assert_eq!(sig, "verified", "the signature of {body}");
        assert_eq!(body["app_id"], 7, "{body}");
        assert_eq!(body["room"], "r1", "{body}");
        seen.push(format!("{hook}:{}", body["event"].as_str().unwrap()));
    }
    seen.sort();
    assert_eq!(seen, ["all:room_created", "all:user_login", "app:room_created", "app:user_login"]);
    let _ = child.kill();
    let _ = child.wait();
}
