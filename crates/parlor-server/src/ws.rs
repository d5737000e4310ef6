//! One WebSocket connection, served by one task.
//!
//! [`serve`] waits for `hello` or `resume` within `hello_timeout`, then decodes every frame and
//! hands it to the [`Node`]; the same task writes the connection's [`Outbox`] and closes the
//! socket. It is one state machine polled on every wake-up (the socket's, or the outbox's
//! `AtomicWaker` when a frame lands in an empty queue or a close is asked for), in this order:
//! feed the socket what is queued, stop on a close, read the next frame, else flush and wait.
//! Frames are handled one at a time, in order: while a frame's future is pending (a Redis call),
//! the task goes on writing the queue (fan-out to this connection does not wait for it) but reads
//! no further frame. An idle connection is one task that a ping wakes once, and the `pong` is
//! written on that same turn; there is no writer task and no split of the socket.
//!
//! Every failure a peer can cause ends in an `error` frame and/or a close code (§1), never a
//! panic, and never touches another session.
//!
//! [`serve`] works on any `WebSocketStream<S>`: the HTTP upgrade of a real socket, or an
//! in-memory `tokio::io::duplex` pipe in tests, where tokio's paused clock then drives every
//! timeout of a whole client–server exchange without a real socket or a sleep.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::{Sink, StreamExt};
use parlor_protocol::{decode_client_frame, ClientFrame, DecodeError, ErrorCode, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::engine::SessionKey;
use crate::limits::AppSlot;
use crate::node::Node;
use crate::outbox::{close_code, Out, Outbox, OutboxReader};
use crate::rules::SessionCtx;
use crate::telemetry::FanoutClock;

/// How long a closing connection may take to send what is queued and its close frame. A peer
/// that reads nothing (its TCP window shut) would otherwise keep its socket, its queue and the
/// writer's buffer on the server forever; after this the socket is dropped without a close
/// frame, and the client sees a lost connection instead of the code (it resumes either way).
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The WebSocket settings for `max_frame`: tungstenite reads a little more than the limit, so
/// that the server, not the library, decides and answers with close code 1009.
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    // Small buffers: an idle connection should cost a few KiB, not tungstenite's default
    // 128 KiB read buffer (which is zero-filled, hence resident). 256 B holds a ping with the
    // acks of a room or two; for a larger frame the buffer is grown to its length once its
    // header is read (one read more, not one per 256 B). The write buffer is only a threshold
    // (it grows when used): frames are gathered up to 64 KiB and written with one syscall by
    // the connection task's flush.
    WebSocketConfig::default()
        .max_frame_size(Some(max_frame + 1024))
        .max_message_size(Some(max_frame + 1024))
        .read_buffer_size(256)
        .write_buffer_size(64 * 1024)
}

/// Serve one connection until it closes.
///
/// Not an `async fn`: its arguments would be stored in the task twice (as arguments and as the
/// locals they are moved into), and the socket is most of a connection's task. The socket goes
/// into its [`Conn`] here, and the future works on that in place.
pub fn serve<S>(node: Arc<Node>, socket: WebSocketStream<S>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_id = node.hub.next_conn_id();
    let (outbox, reader) = Outbox::new(node.config.outbound_limit, conn_id);
    let mut conn = Conn::new(socket, reader);
    async move {
        // Counted until this future ends: a drain waits for it.
        let _tracked = node.hub.tasks.token();
        node.hub.register(outbox.clone());
        metrics::gauge!("parlor_connections").increment(1.0);

        let mut session: Option<(SessionKey, SessionCtx)> = None;
        // The session's count against its app's limit, held as long as this connection serves it.
        let mut app_slot: Option<AppSlot> = None;
        // Boxed and dropped once a session starts: an idle connection does not carry a timer.
        let mut hello_deadline = Some(Box::pin(tokio::time::sleep(node.config.hello_timeout)));
        let no_hello = || {
            send_error(&outbox, None, ErrorCode::InvalidField, "no hello within the hello timeout");
            outbox.close(close_code::POLICY, "no hello");
        };
        loop {
            // Feed what is queued, then: a close asked for, else a frame that has arrived, else
            // (flushed what was fed: the answers to frames read in one go leave in one write) the
            // hello deadline. A frame that has arrived comes before the hello deadline: a node too
            // busy to poll this task until after the deadline must still serve the `hello` /
            // `resume` the client sent in time (under a storm, refusing a resume this way ends its
            // session).
            let next = poll_fn(|cx| {
                let _ = conn.poll_write(cx, false);
                if outbox.is_closed() {
                    return conn.ready(Next::Closed);
                }
                if let Poll::Ready(next) = conn.socket.poll_next_unpin(cx) {
                    return conn.ready(Next::Read(next));
                }
                let _ = conn.poll_write(cx, true);
                if let Some(deadline) = &mut hello_deadline {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return conn.ready(Next::NoHello);
                    }
                }
                Poll::Pending
            })
            .await;
            // What was read, checked and decoded in a block: what it binds ends with it, and is
            // not kept in the task across the awaits below (what a task holds across an await is
            // its size, for the connection's whole life).
            let (now, decoded) = {
                let next = match next {
                    Next::Closed => break,
                    Next::NoHello => {
                        no_hello();
                        break;
                    }
                    Next::Read(next) => next,
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
                let past_deadline = hello_deadline.as_ref().is_some_and(|d| now >= d.deadline());
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        outbox.close(close_code::UNSUPPORTED, "binary frames are not supported");
                        break;
                    }
                    Message::Close(_) => break,
                    // Control frames do not hold a connection open without a hello.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) if past_deadline => {
                        no_hello();
                        break;
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                if text.len() > node.config.max_frame {
                    outbox.abort(close_code::TOO_BIG, "frame too big");
                    break;
                }
                let decoded = match decode_client_frame(text.as_str()) {
                    Ok(f) => Ok(f),
                    Err(e @ DecodeError::Malformed(_)) => {
                        send_error(&outbox, None, e.code(), &e.to_string());
                        outbox.close(close_code::INVALID_DATA, "malformed frame");
                        break;
                    }
                    Err(e) => Err((e.request_id(), e.code(), e.to_string())),
                };
                (now, decoded)
            };
            let frame = match decoded {
                Ok(f) => f,
                Err((id, code, message)) => {
                    match &mut session {
                        Some((key, ctx)) => conn.run(Box::pin(node.bad_frame(*key, ctx, id, code, message, now))).await,
                        None => send_error(&outbox, id, code, &message),
                    }
                    continue;
                }
            };
            // One frame at a time: while its future is pending, the queue is still written (fan-out
            // to this connection does not wait for its own requests), but no further frame is read.
            // Every frame's future boxed (a ping's too): the task holds its largest state for the
            // connection's whole life, and a ping's inline was most of it.
            if let Some((key, ctx)) = &mut session {
                match frame {
                    ClientFrame::Ping(p) => conn.run(Box::pin(node.ping(*key, ctx, p, now))).await,
                    frame => conn.run(Box::pin(node.frame(*key, ctx, frame, now))).await,
                }
                continue;
            }
            match frame {
                ClientFrame::Hello(h) => {
                    let Some(slot) = node.limits.admit_session(h.app_id) else {
                        let code = ErrorCode::TooManySessions;
                        crate::telemetry::hello_refused(code.code());
                        send_error(&outbox, None, code, code.message());
                        outbox.close(close_code::POLICY, "too many sessions");
                        break;
                    };
                    match conn.run(Box::pin(node.hello(h, conn_id, now))).await {
                        Ok(s) => {
                            session = Some(s);
                            app_slot = Some(slot);
                            hello_deadline = None;
                        }
                        Err((code, message)) => {
                            crate::telemetry::hello_refused(code.code());
                            send_error(&outbox, None, code, &message);
                            outbox.close(close_code::POLICY, "bad hello");
                            break;
                        }
                    }
                }
                ClientFrame::Resume(r) => match conn.run(Box::pin(node.resume(r, conn_id, now))).await {
                    Ok(s) => {
                        app_slot = Some(node.limits.resumed_session(s.1.app));
                        session = Some(s);
                        hello_deadline = None;
                    }
                    // The connection stays open: the client may go on with `hello` (§6 fallback).
                    Err((code, message)) => send_error(&outbox, None, code, &message),
                },
                other => {
                    let message = format!("the first frame must be hello or resume, not {}", other.type_name());
                    send_error(&outbox, other.request_id(), ErrorCode::InvalidField, &message);
                    outbox.close(close_code::POLICY, "hello first");
                    break;
                }
            }
        }
        drop(hello_deadline);
        let key = session.map(|(key, _)| key);
        if key.is_some() {
            tracing::info!(session = key, "connection closed");
        }
        node.hub.detach(key, conn_id);
        drop(app_slot);
        // Send what is queued (an error frame, a close), then stop; a peer that does not read gets
        // CLOSE_GRACE for it, from here or from the close if that came first.
        outbox.close(close_code::GOING_AWAY, "");
        conn.arm_grace();
        poll_fn(|cx| conn.poll_write(cx, true)).await;
        drop(conn);
        metrics::gauge!("parlor_connections").decrement(1.0);
    }
}

fn send_error(outbox: &Outbox, id: Option<u64>, code: ErrorCode, message: &str) {
    outbox.send(ServerFrame::error_with(id, code, message).to_json().into());
}

/// What woke the reading half of a connection.
enum Next {
    /// A close was asked for (by this task or another).
    Closed,
    /// The hello deadline passed with no frame waiting.
    NoHello,
    /// What the socket gave.
    Read(Option<Result<Message, WsError>>),
}

/// Where the writing half of a connection is.
#[derive(Debug)]
enum Write {
    /// Taking frames from the queue and feeding them to the socket.
    Open,
    /// A burst fed: flushing it (one write for all of it) before taking more.
    Flush,
    /// The close frame, waiting for the socket to take it.
    Close(u16, String),
    /// The close frame taken: flushing it.
    CloseFlush,
    /// Ending the WebSocket (and the socket's write side).
    Closing,
    /// Nothing more is written: closed, failed, or out of grace.
    Done,
}

/// A connection's socket and the writing half of its state machine: what the writer task
/// did before, polled by the connection's one task beside the reading and the requests.
struct Conn<S> {
    socket: WebSocketStream<S>,
    reader: OutboxReader,
    write: Write,
    /// Frames were fed since the last flush.
    fed: bool,
    /// A frame taken from the queue that the socket could not take yet.
    held: Option<Utf8Bytes>,
    /// The fan-out clocks of the frames fed since the last flush: let go of once written.
    written: Vec<Arc<FanoutClock>>,
    /// When a closing connection lets go of its socket (see [`CLOSE_GRACE`]).
    grace: Option<Pin<Box<Sleep>>>,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn new(socket: WebSocketStream<S>, reader: OutboxReader) -> Self {
        Conn { socket, reader, write: Write::Open, fed: false, held: None, written: Vec::new(), grace: None }
    }

    /// Return `v` from a poll of the task: first stop the queue's wake-ups, since what the task
    /// runs next may queue frames itself (a `pong`), and it writes them on its next turn anyway.
    fn ready<T>(&self, v: T) -> Poll<T> {
        self.reader.unregister();
        Poll::Ready(v)
    }

    /// Run one frame's future to its end, writing the queue meanwhile.
    async fn run<F: Future + Unpin>(&mut self, mut fut: F) -> F::Output {
        poll_fn(|cx| {
            self.reader.unregister();
            if let Poll::Ready(v) = Pin::new(&mut fut).poll(cx) {
                return Poll::Ready(v);
            }
            let _ = self.poll_write(cx, true);
            Poll::Pending
        })
        .await
    }

    /// Let go of the socket CLOSE_GRACE from now at the latest.
    fn arm_grace(&mut self) {
        let end = Instant::now() + CLOSE_GRACE;
        match &mut self.grace {
            Some(sleep) if sleep.deadline() <= end => {}
            Some(sleep) => sleep.as_mut().reset(end),
            None => self.grace = Some(Box::pin(tokio::time::sleep_until(end))),
        }
    }

    fn start_close(&mut self, code: u16, reason: String) {
        self.held = None;
        self.arm_grace();
        self.write = Write::Close(code, reason);
    }

    /// Write what can be written now: Ready once nothing more will be. Registers the task for
    /// the queue's wake-ups; the socket registers it for its own. Without `flush`, a drained
    /// queue leaves what was fed in the WebSocket's buffer (the caller flushes it before it
    /// waits).
    ///
    /// Everything queued goes out with one flush: under fan-out a busy connection has many
    /// frames waiting, and writing them with one syscall instead of one each is most of the
    /// cost. A write that waits on the socket gives way to an abort (a slow consumer's cut):
    /// what is queued is dropped then, and the close frame gets CLOSE_GRACE behind what the
    /// socket holds.
    fn poll_write(&mut self, cx: &mut Context<'_>, flush: bool) -> Poll<()> {
        self.reader.register(cx.waker());
        loop {
            if let Some(grace) = &mut self.grace {
                if grace.as_mut().poll(cx).is_ready() {
                    self.write = Write::Done;
                }
            }
            let socket = Pin::new(&mut self.socket);
            match &mut self.write {
                Write::Done => {
                    self.held = None;
                    return Poll::Ready(());
                }
                Write::Open | Write::Flush if self.reader.is_aborted() => match self.reader.try_next() {
                    Some(Out::Close(code, reason)) => self.start_close(code, reason),
                    _ => self.write = Write::Done,
                },
                Write::Flush => match ready!(socket.poll_flush(cx)) {
                    Ok(()) => {
                        self.write = Write::Open;
                        self.written.clear();
                        // A burst's worth of room is not kept for an idle connection.
                        if self.written.capacity() > 64 {
                            self.written = Vec::new();
                        }
                    }
                    Err(_) => self.write = Write::Done,
                },
                Write::Open => {
                    let text = match self.held.take() {
                        Some(t) => t,
                        None => match self.reader.try_next() {
                            Some(Out::Text(t, clock)) => {
                                self.written.extend(clock);
                                t
                            }
                            Some(Out::Replay(t)) => t,
                            Some(Out::Close(code, reason)) => {
                                self.start_close(code, reason);
                                continue;
                            }
                            None if self.fed && flush => {
                                self.fed = false;
                                self.write = Write::Flush;
                                continue;
                            }
                            None => return Poll::Pending,
                        },
                    };
                    match socket.poll_ready(cx) {
                        Poll::Pending => {
                            self.held = Some(text);
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(())) => match Pin::new(&mut self.socket).start_send(Message::Text(text)) {
                            Ok(()) => self.fed = true,
                            Err(_) => self.write = Write::Done,
                        },
                        Poll::Ready(Err(_)) => self.write = Write::Done,
                    }
                }
                // Errors while closing only skip to the next step, as `send` and `close` did.
                Write::Close(code, reason) => {
                    let sent = match ready!(socket.poll_ready(cx)) {
                        Ok(()) => {
                            let frame =
                                CloseFrame { code: CloseCode::from(*code), reason: std::mem::take(reason).into() };
                            Pin::new(&mut self.socket).start_send(Message::Close(Some(frame))).is_ok()
                        }
                        Err(_) => false,
                    };
                    self.write = if sent { Write::CloseFlush } else { Write::Closing };
                }
                Write::CloseFlush => {
                    let _ = ready!(socket.poll_flush(cx));
                    self.write = Write::Closing;
                }
                Write::Closing => {
                    let _ = ready!(socket.poll_close(cx));
                    self.write = Write::Done;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;
    use parlor_protocol::token::{mint, Claims};
    use serde_json::{json, Value};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::config::ServerConfig;

    /// An idle connection holds its task's future for its whole life (a task cell is as large as
    /// its future's largest state), so its size is per-session memory: a request's future (the
    /// Redis engine's is large) must not be inline in the connection task's.
    #[tokio::test]
    async fn the_connection_task_does_not_hold_a_request_future_inline() {
        let node = Arc::new(Node::memory(ServerConfig::default()));
        let claims = parlor_protocol::token::Claims::new(1, "u", 0, 60, "n");
        let mut ctx = SessionCtx::new(1, "u".into(), claims, 0);
        let frame = node.frame(1, &mut ctx, ClientFrame::Ping(Default::default()), Instant::now());
        let frame_size = std::mem::size_of_val(&frame);
        drop(frame);
        let (end, _other) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(end, Role::Server, Some(ws_config(1024))).await;
        let conn = serve(node, socket);
        let r = std::mem::size_of_val(&conn);
        eprintln!("connection task future {r} B (a frame's {frame_size} B)");
        assert!(r < frame_size, "the connection task's future ({r} B) holds a frame's ({frame_size} B) inline");
    }

    const APP: u32 = 7;
    const SECRET: &str = "s";

    /// A client on an in-memory pipe, its connection served on one spawned task.
    async fn connect(node: &Arc<Node>) -> WebSocketStream<DuplexStream> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let config = Some(ws_config(node.config.max_frame));
        let socket = WebSocketStream::from_raw_socket(server, Role::Server, config).await;
        tokio::spawn(serve(node.clone(), socket));
        WebSocketStream::from_raw_socket(client, Role::Client, None).await
    }

    async fn send(ws: &mut WebSocketStream<DuplexStream>, v: Value) {
        ws.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    async fn recv(ws: &mut WebSocketStream<DuplexStream>) -> Value {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("json"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    async fn hello(node: &Arc<Node>, user: &str) -> WebSocketStream<DuplexStream> {
        let mut ws = connect(node).await;
        let wall_s = node.clock.wall_s(Instant::now());
        let token = mint(SECRET.as_bytes(), &Claims::new(APP, user, wall_s, 3600, "n"));
        send(&mut ws, json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user},"token":token})).await;
        assert_eq!(recv(&mut ws).await["t"], "welcome");
        ws
    }

    /// Send a ping and skip everything up to its pong: what was queued before is read.
    async fn barrier(ws: &mut WebSocketStream<DuplexStream>) {
        send(ws, json!({"t":"ping"})).await;
        while recv(ws).await["t"] != "pong" {}
    }

    /// Log in and wait for the answer (other frames before it are skipped).
    async fn login(ws: &mut WebSocketStream<DuplexStream>, id: u64, room: &str) {
        send(ws, json!({"t":"login","id":id,"room":room,"config":{"max_members":0}})).await;
        loop {
            let f = recv(ws).await;
            if f["id"] == json!(id) {
                assert_eq!(f["t"], "ok", "{f}");
                return;
            }
        }
    }

    /// One task per connection, and it still writes while a request of its own is pending: a
    /// login held for a batch window (memory engine, a room of `users_batch_from` members) does
    /// not hold back a message of another room to the same connection; pings are answered by
    /// the same task (no task is started per connection but its own).
    #[tokio::test(start_paused = true)]
    async fn a_pending_request_does_not_hold_back_fan_out_and_one_task_serves_a_connection() {
        let config = ServerConfig {
            users_batch_from: 2,
            users_batch_window: Duration::from_secs(30),
            ..ServerConfig::for_tests(APP, SECRET)
        };
        let node = Arc::new(Node::memory(config));
        let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let before = tasks();
        let mut a = hello(&node, "a").await;
        assert_eq!(tasks(), before + 1, "one task for a connection");
        let mut b = hello(&node, "b").await;
        let (mut c, mut d) = (hello(&node, "c").await, hello(&node, "d").await);
        assert_eq!(tasks(), before + 4, "one task per connection");
        login(&mut a, 1, "chat").await;
        login(&mut b, 1, "chat").await;
        login(&mut c, 1, "big").await;
        login(&mut d, 1, "big").await;
        barrier(&mut a).await;
        // A's login to "big" (two members already) is held for the window.
        let held_at = Instant::now();
        send(&mut a, json!({"t":"login","id":2,"room":"big","config":{"max_members":0}})).await;
        send(&mut b, json!({"t":"broadcast","id":2,"room":"chat","message":"hi"})).await;
        let first = recv(&mut a).await;
        assert_eq!((&first["t"], &first["message"]), (&json!("event"), &json!("hi")), "{first}");
        assert!(Instant::now() < held_at + Duration::from_secs(30), "the message waited for the login");
        // The login is still pending: a ping is read only after it, and answered then.
        send(&mut a, json!({"t":"ping"})).await;
        let mut after = Vec::new();
        while after.last().is_none_or(|f: &Value| f["t"] != "pong") {
            after.push(recv(&mut a).await);
        }
        assert!(Instant::now() >= held_at + Duration::from_secs(30), "the login was held for its window");
        let ok = after.iter().position(|f| f["t"] == "ok" && f["id"] == 2).expect("the login is answered");
        assert!(ok < after.len() - 1, "the ping is answered after the login: {after:?}");
        assert_eq!(tasks(), before + 4, "and still one task per connection");
    }
}
