//! The tokio task around the core: one WebSocket at a time, `tokio::time` for deadlines.
//!
//! Each connection runs in its own task tagged with a generation number; the driver ignores
//! reports from a connection it has already dropped (the core never hears of a connection it
//! asked to close, see [`parlor_client_core::Output::Disconnect`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use parlor_client_core::{AppEvent, Command, Config, Core, Output, RoomStateReason};
use parlor_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::engine::Connector;
use crate::event::Event;

/// The outcome of one call.
#[derive(Debug)]
pub(crate) struct Reply {
    /// None on success, else why the call failed.
    pub(crate) error_code: Option<ErrorCode>,
    /// For broadcast / barrage: the message id the server assigned.
    pub(crate) message_id: Option<String>,
    /// For query_room_member_list: the page.
    pub(crate) members: Option<parlor_client_core::MemberPage>,
}

/// A message from the [`crate::Engine`] to its task.
pub(crate) enum Msg {
    Command { handle: u64, cmd: Command, reply: oneshot::Sender<Reply> },
}

/// What a connection task reports.
enum ConnEvent {
    Opened(u64, mpsc::UnboundedSender<String>),
    Frame(u64, String),
    Closed(u64),
    /// The upgrade was refused with HTTP 503 and `Retry-After` (ms).
    Refused(u64, u64),
}

/// The `Retry-After` (ms) of an upgrade refused with HTTP 503 (protocol §9.7), if `e` is one
/// (also read by `parlor bench`'s generator, which honours it as this SDK does).
pub fn retry_after_ms(e: &tokio_tungstenite::tungstenite::Error) -> Option<u64> {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(res) if res.status().as_u16() == 503 => {
            let secs: u64 = res.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
            Some(secs.saturating_mul(1000))
        }
        _ => None,
    }
}

/// What a failed connect attempt tells the engine: refused with a `Retry-After`, or closed.
fn failed(generation: u64, e: Option<&tokio_tungstenite::tungstenite::Error>) -> ConnEvent {
    match e.and_then(retry_after_ms) {
        Some(ms) => ConnEvent::Refused(generation, ms),
        None => ConnEvent::Closed(generation),
    }
}

struct Conn {
    generation: u64,
    task: Option<JoinHandle<()>>,
    writer: Option<mpsc::UnboundedSender<String>>,
}

impl Conn {
    /// Close gracefully: frames already queued (a `bye`) go out, then the socket closes. A
    /// connection that is not open yet is simply abandoned.
    fn close(mut self) -> Option<JoinHandle<()>> {
        if self.writer.take().is_some() {
            // The writer's end closing makes the connection task send a close frame and end.
            self.task.take()
        } else {
            None
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Let a closing connection finish, but not forever.
fn reap(task: Option<JoinHandle<()>>) {
    if let Some(task) = task {
        tokio::spawn(async move {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(1), task).await.is_err() {
                abort.abort();
            }
        });
    }
}

/// One connection: connect (an HTTP 503 with `Retry-After` is `Refused`, any other failure
/// `Closed`), then pump frames both ways until either side ends. With a [`Connector`] the byte
/// stream comes from it and the WebSocket upgrade runs over it; without one, a TCP connection to
/// the URL's host.
async fn connection(
    generation: u64,
    url: String,
    connector: Option<Connector>,
    events: mpsc::UnboundedSender<ConnEvent>,
) {
    match connector {
        None => match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _response)) => pump(generation, ws, events).await,
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                let _ = events.send(failed(generation, Some(&e)));
            }
        },
        Some(connector) => match connector.connect().await {
            Ok(io) => match tokio_tungstenite::client_async(url.as_str(), io).await {
                Ok((ws, _response)) => pump(generation, ws, events).await,
                Err(e) => {
                    tracing::debug!(error = %e, "connect failed");
                    let _ = events.send(failed(generation, Some(&e)));
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                let _ = events.send(failed(generation, None));
            }
        },
    }
}

/// Pump frames both ways on an open WebSocket until either side ends.
async fn pump<S>(generation: u64, ws: WebSocketStream<S>, events: mpsc::UnboundedSender<ConnEvent>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (writer, mut to_send) = mpsc::unbounded_channel::<String>();
    if events.send(ConnEvent::Opened(generation, writer)).is_err() {
        return;
    }
    loop {
        tokio::select! {
            out = to_send.recv() => {
                let Some(text) = out else { break };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if events.send(ConnEvent::Frame(generation, t.to_string())).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    tracing::debug!(?frame, "server closed");
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "connection error");
                    break;
                }
                None => break,
            }
        }
    }
    let _ = sink.close().await;
    let _ = events.send(ConnEvent::Closed(generation));
}

/// The engine's task: runs until the [`crate::Engine`] is dropped.
pub(crate) async fn run(
    config: Config,
    url: String,
    connector: Option<Connector>,
    mut commands: mpsc::UnboundedReceiver<Msg>,
    events: mpsc::UnboundedSender<Event>,
    states: Arc<Mutex<HashMap<String, RoomStateReason>>>,
) {
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;
    let mut core = Core::new(config, Box::new(rand::random::<f64>));
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ConnEvent>();
    let mut conn: Option<Conn> = None;
    let mut generation = 0u64;
    let mut replies: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();

    loop {
        // Carry out everything the core asked for.
        while let Some(o) = core.poll_output() {
            match o {
                Output::Connect => {
                    generation += 1;
                    let task = tokio::spawn(connection(generation, url.clone(), connector.clone(), conn_tx.clone()));
                    conn = Some(Conn { generation, task: Some(task), writer: None });
                }
                Output::Disconnect => {
                    if let Some(c) = conn.take() {
                        reap(c.close());
                    }
                }
                Output::Send(frame) => {
                    if let Some(w) = conn.as_ref().and_then(|c| c.writer.as_ref()) {
                        let _ = w.send(frame.to_json());
                    }
                }
                Output::Event(AppEvent::Result { handle, error_code, message_id, members }) => {
                    if let Some(r) = replies.remove(&handle) {
                        let _ = r.send(Reply { error_code, message_id, members });
                    }
                }
                Output::Event(e) => {
                    if let AppEvent::RoomStateChanged { room, reason, .. } = &e {
                        if let Ok(mut s) = states.lock() {
                            s.insert(room.clone(), *reason);
                        }
                    }
                    if let Some(ev) = Event::from_app(e) {
                        let _ = events.send(ev);
                    }
                }
            }
        }

        let deadline = core.poll_timeout().map(|ms| start + std::time::Duration::from_millis(ms));
        tokio::select! {
            msg = commands.recv() => match msg {
                Some(Msg::Command { handle, cmd, reply }) => {
                    replies.insert(handle, reply);
                    core.handle_command(now_ms(), handle, cmd);
                }
                None => break,
            },
            ev = conn_rx.recv() => {
                let Some(ev) = ev else { break };
                let current = conn.as_ref().map(|c| c.generation);
                match ev {
                    ConnEvent::Opened(g, writer) if Some(g) == current => {
                        if let Some(c) = conn.as_mut() {
                            c.writer = Some(writer);
                        }
                        core.handle_opened(now_ms());
                    }
                    ConnEvent::Frame(g, text) if Some(g) == current => {
                        if let Err(e) = core.handle_text(now_ms(), &text) {
                            tracing::debug!(error = %e, "frame ignored");
                        }
                    }
                    ConnEvent::Closed(g) if Some(g) == current => {
                        conn = None;
                        core.handle_closed(now_ms());
                    }
                    ConnEvent::Refused(g, ms) if Some(g) == current => {
                        conn = None;
                        core.handle_refused(now_ms(), ms);
                    }
                    _ => {}
                }
            }
            _ = sleep_until(deadline) => {
                core.handle_timeout(now_ms());
            }
        }
    }
    // The engine was dropped: end the session as the core does, with `bye` only when the session
    // is up on this connection (nothing goes out between a `resume` and its answer, protocol §9.3).
    core.shutdown(now_ms());
    while let Some(o) = core.poll_output() {
        if let Output::Send(frame) = o {
            if let Some(w) = conn.as_ref().and_then(|c| c.writer.as_ref()) {
                let _ = w.send(frame.to_json());
            }
        }
    }
    if let Some(task) = conn.take().and_then(Conn::close) {
        let abort = task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(1), task).await.is_err() {
            abort.abort();
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http::Response;
    use tokio_tungstenite::tungstenite::Error;

    fn refusal(status: u16, retry_after: Option<&str>) -> Error {
        let mut res = Response::builder().status(status);
        if let Some(v) = retry_after {
            res = res.header("retry-after", v);
        }
        Error::Http(Box::new(res.body(None).expect("a response")))
    }

    #[test]
    fn a_503_with_retry_after_is_a_refusal_with_its_slot_and_anything_else_a_close() {
        assert!(matches!(failed(3, Some(&refusal(503, Some("7")))), ConnEvent::Refused(3, 7000)));
        assert!(matches!(failed(3, Some(&refusal(503, None))), ConnEvent::Closed(3)));
        assert!(matches!(failed(3, Some(&refusal(503, Some("soon")))), ConnEvent::Closed(3)));
        assert!(matches!(failed(3, Some(&refusal(429, Some("7")))), ConnEvent::Closed(3)));
        assert!(matches!(failed(3, None), ConnEvent::Closed(3)));
    }
}
