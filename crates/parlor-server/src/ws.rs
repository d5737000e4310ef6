//! One WebSocket connection.
//!
//! The reader (this task) waits for `hello` or `resume` within `hello_timeout`, then decodes
//! every frame and hands it to the [`Node`]. A writer task drains the connection's [`Outbox`].
//! Every failure a peer can cause ends in an `error` frame and/or a close code (§1), never a
//! panic, and never touches another session.
//!
//! [`serve`] works on any `WebSocketStream<S>`: the HTTP upgrade of a real socket, or an
//! in-memory `tokio::io::duplex` pipe in tests, where tokio's paused clock then drives every
//! timeout of a whole client–server exchange without a real socket or a sleep.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_protocol::{decode_client_frame, ClientFrame, DecodeError, ErrorCode, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::engine::SessionKey;
use crate::limits::AppSlot;
use crate::node::Node;
use crate::outbox::{close_code, Out, Outbox, OutboxReader};
use crate::rules::SessionCtx;

/// How long a closing connection may take to send what is queued and its close frame. A peer
/// that reads nothing (its TCP window shut) would otherwise keep its socket, its queue and the
/// writer's buffer on the server forever; after this the socket is dropped without a close
/// frame, and the client sees a lost connection instead of the code (it resumes either way).
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The WebSocket settings for `max_frame`: tungstenite reads a little more than the limit, so
/// that the server, not the library, decides and answers with close code 1009.
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    // Small buffers: an idle connection should cost a few KiB, not tungstenite's default
    // 128 KiB read buffer (which is zero-filled, hence resident). 1 KiB holds a ping with its
    // acks; a larger frame makes the buffer grow for it. The write buffer is only a threshold (it grows when used): frames are
    // gathered up to 64 KiB and written with one syscall by the writer task's flush.
    WebSocketConfig::default()
        .max_frame_size(Some(max_frame + 1024))
        .max_message_size(Some(max_frame + 1024))
        .read_buffer_size(1024)
        .write_buffer_size(64 * 1024)
}

/// Serve one connection until it closes.
pub async fn serve<S>(node: Arc<Node>, socket: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Counted until this function returns: a drain waits for it.
    let _tracked = node.hub.tasks.token();
    let (sink, mut stream) = socket.split();
    let conn_id = node.hub.next_conn_id();
    let (outbox, reader) = Outbox::new(node.config.outbound_limit, conn_id);
    node.hub.register(outbox.clone());
    let writer = tokio::spawn(write_loop(sink, reader));
    metrics::gauge!("parlor_connections").increment(1.0);

    let mut session: Option<(SessionKey, SessionCtx)> = None;
    // The session's count against its app's limit, held as long as this connection serves it.
    let mut app_slot: Option<AppSlot> = None;
    let hello_deadline = Instant::now() + node.config.hello_timeout;
    let no_hello = || {
        send_error(&outbox, None, ErrorCode::InvalidField, "no hello within the hello timeout");
        outbox.close(close_code::POLICY, "no hello");
    };
    loop {
        // A frame that has arrived comes before the hello deadline: a node too busy to poll this
        // task until after the deadline must still serve the `hello` / `resume` the client sent
        // in time (under a storm, refusing a resume this way ends its session).
        let next = tokio::select! {
            biased;
            _ = outbox.closed() => break,
            next = stream.next() => next,
            _ = tokio::time::sleep_until(hello_deadline), if session.is_none() => {
                no_hello();
                break;
            }
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                outbox.abort(close_code::TOO_BIG, "frame too big");
                break;
            }
            Some(Err(_)) => break,
            None => break,
        };
        let now = Instant::now();
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                outbox.close(close_code::UNSUPPORTED, "binary frames are not supported");
                break;
            }
            Message::Close(_) => break,
            // Control frames do not hold a connection open without a hello.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) if session.is_none() && now >= hello_deadline => {
                no_hello();
                break;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if text.len() > node.config.max_frame {
            outbox.abort(close_code::TOO_BIG, "frame too big");
            break;
        }
        let frame = match decode_client_frame(text.as_str()) {
            Ok(f) => f,
            Err(e @ DecodeError::Malformed(_)) => {
                send_error(&outbox, None, e.code(), &e.to_string());
                outbox.close(close_code::INVALID_DATA, "malformed frame");
                break;
            }
            Err(e) => {
                match &mut session {
                    Some((key, ctx)) => {
                        Box::pin(node.bad_frame(*key, ctx, e.request_id(), e.code(), e.to_string(), now)).await
                    }
                    None => send_error(&outbox, e.request_id(), e.code(), &e.to_string()),
                }
                continue;
            }
        };
        match (&mut session, frame) {
            // Pings inline; every other future boxed (a request's, a hello's): the task holds its
            // largest state for the connection's whole life, and idle connections only ping.
            (Some((key, ctx)), ClientFrame::Ping(p)) => node.ping(*key, ctx, p, now).await,
            (Some((key, ctx)), frame) => Box::pin(node.frame(*key, ctx, frame, now)).await,
            (None, ClientFrame::Hello(h)) => {
                let Some(slot) = node.limits.admit_session(h.app_id) else {
                    let code = ErrorCode::TooManySessions;
                    crate::telemetry::hello_refused(code.code());
                    send_error(&outbox, None, code, code.message());
                    outbox.close(close_code::POLICY, "too many sessions");
                    break;
                };
                match Box::pin(node.hello(h, conn_id, now)).await {
                    Ok(s) => {
                        session = Some(s);
                        app_slot = Some(slot);
                    }
                    Err((code, message)) => {
                        crate::telemetry::hello_refused(code.code());
                        send_error(&outbox, None, code, &message);
                        outbox.close(close_code::POLICY, "bad hello");
                        break;
                    }
                }
            }
            (None, ClientFrame::Resume(r)) => match Box::pin(node.resume(r, conn_id, now)).await {
                Ok(s) => {
                    app_slot = Some(node.limits.resumed_session(s.1.app));
                    session = Some(s);
                }
                // The connection stays open: the client may go on with `hello` (§6 fallback).
                Err((code, message)) => send_error(&outbox, None, code, &message),
            },
            (None, other) => {
                let message = format!("the first frame must be hello or resume, not {}", other.type_name());
                send_error(&outbox, other.request_id(), ErrorCode::InvalidField, &message);
                outbox.close(close_code::POLICY, "hello first");
                break;
            }
        }
    }
    let key = session.map(|(key, _)| key);
    if key.is_some() {
        tracing::info!(session = key, "connection closed");
    }
    node.hub.detach(key, conn_id);
    drop(app_slot);
    // Let the writer flush what is queued (an error frame, a close), then stop; a peer that
    // does not read gets CLOSE_GRACE for it.
    outbox.close(close_code::GOING_AWAY, "");
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
    metrics::gauge!("parlor_connections").decrement(1.0);
}

fn send_error(outbox: &Outbox, id: Option<u64>, code: ErrorCode, message: &str) {
    outbox.send(ServerFrame::error_with(id, code, message).to_json().into());
}

async fn write_loop<S>(mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>, mut reader: OutboxReader)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Everything queued goes out with one flush: under fan-out a busy connection has many frames
    // waiting, and writing them with one syscall instead of one each is most of the cost.
    // A write that waits on the socket gives way to an abort (a slow consumer's cut): what is
    // queued is dropped then, and the close frame gets CLOSE_GRACE behind what the socket holds.
    // The fan-out clocks of the frames fed since the last flush: let go of once written.
    let mut written = Vec::new();
    while let Some(mut out) = reader.next().await {
        loop {
            match out {
                Out::Text(t, clock) => {
                    written.extend(clock);
                    tokio::select! {
                        biased;
                        _ = reader.aborted() => break,
                        sent = sink.feed(Message::Text(t)) => if sent.is_err() { return },
                    }
                }
                Out::Replay(t) => {
                    tokio::select! {
                        biased;
                        _ = reader.aborted() => break,
                        sent = sink.feed(Message::Text(t)) => if sent.is_err() { return },
                    }
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        let _ = sink.close().await;
                    })
                    .await;
                    return;
                }
            }
            match reader.try_next() {
                Some(next) => out = next,
                None => break,
            }
        }
        tokio::select! {
            biased;
            // The next `reader.next()` returns the abort's close.
            _ = reader.aborted() => {}
            flushed = sink.flush() => if flushed.is_err() { return },
        }
        written.clear();
        // A burst's worth of room is not kept for an idle connection.
        if written.capacity() > 64 {
            written = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::config::ServerConfig;

    /// An idle connection holds its two tasks' futures for its whole life (a task cell is as
    /// large as its future's largest state), so their size is per-session memory: a request's
    /// future (the Redis engine's is large) must not be inline in the connection task's.
    #[tokio::test]
    async fn the_connection_task_does_not_hold_a_request_future_inline() {
        let node = Arc::new(Node::memory(ServerConfig::default()));
        let (end, _other) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(end, Role::Server, Some(ws_config(1024))).await;
        let (sink, _stream) = socket.split();
        let (_outbox, reader) = Outbox::new(1024, 1);
        let writer = write_loop(sink, reader);
        let claims = parlor_protocol::token::Claims::new(1, "u", 0, 60, "n");
        let mut ctx = SessionCtx::new(1, "u".into(), claims, 0);
        let frame = node.frame(1, &mut ctx, ClientFrame::Ping(Default::default()), Instant::now());
        let frame_size = std::mem::size_of_val(&frame);
        drop(frame);
        let (end, _other) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(end, Role::Server, Some(ws_config(1024))).await;
        let conn = serve(node, socket);
        let (r, w) = (std::mem::size_of_val(&conn), std::mem::size_of_val(&writer));
        eprintln!("connection task future {r} B (a frame's {frame_size} B), writer task future {w} B");
        assert!(r < frame_size, "the connection task's future ({r} B) holds a frame's ({frame_size} B) inline");
    }
}
