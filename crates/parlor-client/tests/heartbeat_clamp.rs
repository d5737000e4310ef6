//! A server that sends an absurd `heartbeat_ms` (0, 1, 2^63, u64::MAX): the SDK pings at the
//! clamped interval (`parlor_protocol::bounds`: 1 s to 5 min), with no overflow and no spinning
//! timer. A scripted server on an in-memory pipe, on tokio's paused clock, so that five
//! intervals of five minutes take no time and every ping's instant is exact.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_client::{Connector, Engine, EngineConfig, RoomConfig, User};
use parlor_protocol::bounds;
use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const PINGS: usize = 6;

async fn next(ws: &mut WebSocketStream<DuplexStream>) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("client sends JSON"),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn send_text(ws: &mut WebSocketStream<DuplexStream>, text: String) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// Welcome with `heartbeat_ms` written as `hb` (raw JSON digits), answer the login, then answer
/// every ping with a pong and return the instants of the first [`PINGS`] pings. Any other frame
/// from the client fails the test.
async fn scripted(mut pipes: mpsc::UnboundedReceiver<DuplexStream>, hb: &'static str) -> Vec<Instant> {
    let io = pipes.recv().await.expect("the client connects");
    let mut ws = tokio_tungstenite::accept_async(io).await.expect("upgrade");
    assert_eq!(next(&mut ws).await["t"], "hello");
    let welcome = format!(
        r#"{{"t":"welcome","session":"S1","resume_token":"R1","heartbeat_ms":{hb},"session_timeout_ms":90000,"retention_ms":1200000,"server_time_ms":0}}"#
    );
    send_text(&mut ws, welcome).await;
    let login = next(&mut ws).await;
    assert_eq!(login["t"], "login");
    let ok = json!({"t":"ok","id":login["id"],"room":"r1","users":[],"streams":[],"extra":[],"online":1,
        "seq":{"room":0,"users":1},"room_session":"rs1"});
    send_text(&mut ws, ok.to_string()).await;
    let mut pings = Vec::new();
    while pings.len() < PINGS {
        let f = next(&mut ws).await;
        assert_eq!(f["t"], "ping", "only pings once logged in: {f}");
        pings.push(Instant::now());
        send_text(&mut ws, json!({"t":"pong","server_time_ms":0}).to_string()).await;
    }
    pings
}

async fn pings_at(hb: &'static str) -> Vec<Duration> {
    let (tx, rx) = mpsc::unbounded_channel();
    let connector = Connector::new(move || {
        let tx = tx.clone();
        async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tx.send(server).map_err(|_| std::io::Error::other("script gone"))?;
            Ok(client)
        }
    });
    let config = EngineConfig { connector: Some(connector), ..EngineConfig::default() };
    let engine = Engine::with_config(7, "ws://parlor.test/v1/ws", config);
    let server = tokio::spawn(scripted(rx, hb));
    engine
        .login_room("r1", User { id: "u1".into(), name: "A".into() }, "t", RoomConfig::default())
        .await
        .expect("login");
    let pings = server.await.expect("script");
    pings.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn an_absurd_heartbeat_is_clamped_and_pings_go_at_the_bound() {
    let floor = Duration::from_millis(bounds::HEARTBEAT_MIN_MS);
    let ceiling = Duration::from_millis(bounds::HEARTBEAT_MAX_MS);
    for (hb, want) in [("0", floor), ("1", floor), ("9223372036854775808", ceiling), ("18446744073709551615", ceiling)]
    {
        let gaps = pings_at(hb).await;
        assert_eq!(gaps, vec![want; PINGS - 1], "heartbeat_ms {hb}");
    }
}
