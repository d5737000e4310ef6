//! One simulated client: the real [`Core`] driven the way the Rust SDK's driver drives it (one
//! WebSocket at a time, deadlines on `tokio::time`), over a [`Link`] of the in-memory server,
//! with seeded jitter. Everything it reports, and every server frame it receives, is recorded
//! for the checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use parlor_client_core::{AppEvent, Command, Config, Core, Output, RoomStateReason, RoomView};
use parlor_protocol::{decode_server_frame, ClientFrame, ServerFrame};
use parlor_server::memory::Link;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use RoomStateReason::*;

use crate::wire::Wire;

/// What a client did and saw, for the checks.
#[derive(Debug, Default)]
pub struct Record {
    /// Every app event (results included), with the ms of simulated time it came at.
    pub events: Vec<(u64, AppEvent)>,
    /// The sequence check of every received server frame.
    pub wire: Wire,
    /// Things that must never happen in the driver's view (a connect with no room alive).
    pub violations: Vec<String>,
    /// When the client started a new session (`hello`) while its previous one was never ended
    /// with `bye` nor refused: its last room went while its path was down, so it could not say
    /// `bye`, and the server keeps that session (with any room a stalled frame of it still put it
    /// in) until the session timeout.
    pub orphaned: Vec<u64>,
}

/// A room as the core holds it when asked.
#[derive(Debug, Clone)]
pub struct RoomNow {
    /// The room.
    pub room: String,
    /// Its last reported state.
    pub state: RoomStateReason,
    /// What the core knows of it.
    pub view: Option<RoomView>,
}

enum Msg {
    Command(u64, Command),
    Inspect(oneshot::Sender<Vec<RoomNow>>),
}

enum Conn {
    Opened(u64, mpsc::UnboundedSender<String>),
    Frame(u64, String),
    Closed(u64),
}

/// A client running in its own task.
pub struct SimClient {
    tx: mpsc::UnboundedSender<Msg>,
    /// What it did and saw.
    pub record: Arc<Mutex<Record>>,
    /// Its path to the server.
    pub link: Link,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimClient {
    /// Start a client of `app` on `link`, its jitter drawn from `seed`; `t0` is the simulation's
    /// time zero.
    pub fn start(app: u32, link: Link, seed: u64, t0: Instant) -> SimClient {
        let record = Arc::new(Mutex::new(Record::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(app, link.clone(), seed, t0, rx, record.clone()));
        SimClient { tx, record, link, task }
    }

    /// Make an app call; its outcome arrives as a [`AppEvent::Result`] with `handle`.
    pub fn command(&self, handle: u64, cmd: Command) {
        let _ = self.tx.send(Msg::Command(handle, cmd));
    }

    /// The rooms the core holds and the state it last reported for each.
    pub async fn inspect(&self) -> Vec<RoomNow> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Inspect(tx));
        rx.await.unwrap_or_default()
    }
}

async fn run(
    app: u32,
    link: Link,
    seed: u64,
    t0: Instant,
    mut commands: mpsc::UnboundedReceiver<Msg>,
    record: Arc<Mutex<Record>>,
) {
    let ms = move || t0.elapsed().as_millis() as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let config = Config { app_id: app, ..Config::default() };
    let mut core = Core::new(config, Box::new(move || rng.random::<f64>()));
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<Conn>();
    let mut generation = 0u64;
    let (mut last_fired, mut spins) = (u64::MAX, 0u32);
    // The states reported so far, as the app knows them.
    let mut states: BTreeMap<String, RoomStateReason> = BTreeMap::new();
    let mut current: Option<(u64, Option<mpsc::UnboundedSender<String>>, tokio::task::JoinHandle<()>)> = None;
    // A session (`welcome` / `resumed`) not ended since by `bye` or a refused resume.
    let mut session_live = false;
    loop {
        while let Some(o) = core.poll_output() {
            match o {
                Output::Connect => {
                    if !states.values().any(|s| matches!(s, Logining | Logined | Reconnecting | Reconnected)) {
                        record.lock().violations.push(format!("{} ms: connect with no room alive", ms()));
                    }
                    generation += 1;
                    let task = tokio::spawn(connection(generation, link.clone(), conn_tx.clone()));
                    if let Some((_, _, old)) = current.replace((generation, None, task)) {
                        old.abort();
                    }
                }
                Output::Disconnect => {
                    // Dropping the writer lets the connection send what is queued (a `bye`)
                    // and close; an attempt not open yet is abandoned.
                    if let Some((_, writer, task)) = current.take() {
                        if writer.is_none() {
                            task.abort();
                        }
                    }
                }
                Output::Send(frame) => {
                    match &frame {
                        ClientFrame::Hello(_) if session_live => record.lock().orphaned.push(ms()),
                        ClientFrame::Bye(_) => session_live = false,
                        _ => {}
                    }
                    record.lock().wire.sent(&frame);
                    if let Some(w) = current.as_ref().and_then(|c| c.1.as_ref()) {
                        let _ = w.send(frame.to_json());
                    }
                }
                Output::Event(e) => {
                    if let AppEvent::RoomStateChanged { room, reason, .. } = &e {
                        states.insert(room.clone(), *reason);
                    }
                    record.lock().events.push((ms(), e));
                }
            }
        }
        let deadline = core.poll_timeout().map(|at| t0 + std::time::Duration::from_millis(at));
        tokio::select! {
            msg = commands.recv() => match msg {
                Some(Msg::Command(handle, cmd)) => core.handle_command(ms(), handle, cmd),
                Some(Msg::Inspect(reply)) => {
                    let rooms = core
                        .rooms()
                        .map(|r| RoomNow { room: r.to_string(), state: core.room_state(r), view: core.room_view(r).cloned() })
                        .collect();
                    let _ = reply.send(rooms);
                }
                None => return,
            },
            ev = conn_rx.recv() => {
                let Some(ev) = ev else { return };
                let gen_now = current.as_ref().map(|c| c.0);
                match ev {
                    Conn::Opened(g, writer) if Some(g) == gen_now => {
                        if let Some(c) = current.as_mut() {
                            c.1 = Some(writer);
                        }
                        record.lock().wire.opened();
                        core.handle_opened(ms());
                    }
                    Conn::Frame(g, text) if Some(g) == gen_now => {
                        record.lock().wire.frame(ms(), &text);
                        match decode_server_frame(&text) {
                            Ok(ServerFrame::Welcome(_) | ServerFrame::Resumed(_)) => session_live = true,
                            Ok(ServerFrame::Error(e)) if e.id.is_none() => session_live = false,
                            _ => {}
                        }
                        let _ = core.handle_text(ms(), &text);
                    }
                    Conn::Closed(g) if Some(g) == gen_now => {
                        current = None;
                        core.handle_closed(ms());
                    }
                    _ => {}
                }
            }
            _ = sleep_until(deadline) => {
                // A deadline that stays due after it fired would spin here without simulated
                // time passing: the core's timers must settle.
                let now = ms();
                spins = if now == last_fired { spins + 1 } else { 0 };
                last_fired = now;
                if spins > 1_000 {
                    record.lock().violations.push(format!("{now} ms: timers never settle"));
                    return;
                }
                core.handle_timeout(now);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One connection: the HTTP upgrade over the link, then frames both ways until either ends.
async fn connection(generation: u64, link: Link, events: mpsc::UnboundedSender<Conn>) {
    let io = link.connect_io();
    let Ok((ws, _)) = tokio_tungstenite::client_async("ws://parlor.sim/v1/ws", io).await else {
        let _ = events.send(Conn::Closed(generation));
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (writer, mut to_send) = mpsc::unbounded_channel::<String>();
    if events.send(Conn::Opened(generation, writer)).is_err() {
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
                    if events.send(Conn::Frame(generation, t.to_string())).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sink.close()).await;
    let _ = events.send(Conn::Closed(generation));
}
