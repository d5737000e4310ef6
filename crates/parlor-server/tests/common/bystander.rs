//! The well-behaved clients of the hostile-input tests: while an abuser does its worst, a
//! talker broadcasts into a room at a steady rate and a watcher in the same room receives it.
//! [`Bystanders::finish`] checks that the watcher got every message exactly once, in order, with
//! the room's channels contiguous, and returns its event latency (printed, never asserted on:
//! speed is measured, not tested).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::MaybeTlsStream;

use super::{hello, Peer};

/// A peer on a real loopback socket.
pub type Tcp = Peer<MaybeTlsStream<TcpStream>>;

/// The talker's pace: 40 broadcasts a second stays under the default request rate (50/s).
const EVERY: Duration = Duration::from_millis(25);
/// The talker sends at least this many, so that every abuse has a latency to show.
const MIN_SENT: u64 = 60;

/// Connect to `url` and `hello` as `user`.
pub async fn connect(url: &str, user: &str) -> Tcp {
    let ws = tokio_tungstenite::connect_async(url).await.expect("connect").0;
    hello(ws, user).await.0
}

/// A server's settings for these tests: message rates high enough for the talker (one
/// broadcast each 25 ms), everything else as shipped.
pub fn config() -> parlor_server::ServerConfig {
    let mut c = parlor_server::ServerConfig::for_tests(super::APP, super::SECRET);
    c.room_message_rate = 1000;
    c.user_message_rate = 100;
    c
}

/// The watcher's event latency during an abuse.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Talker messages received.
    pub n: usize,
    /// Milliseconds.
    pub p50: f64,
    /// Milliseconds.
    pub p99: f64,
    /// Milliseconds.
    pub max: f64,
}

/// The talker and the watcher, running.
pub struct Bystanders {
    stop: watch::Sender<bool>,
    talker: JoinHandle<u64>,
    watcher: JoinHandle<Vec<Duration>>,
}

impl Bystanders {
    /// Log a watcher and a talker in to `room` on `url` and start the talk.
    pub async fn start(url: &str, room: &str) -> Bystanders {
        let mut watcher = connect(url, "watcher").await;
        watcher.login(room).await;
        let mut talker = connect(url, "talker").await;
        talker.login(room).await;
        let base = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let room = room.to_string();
        let talker = tokio::spawn(talk(talker, room.clone(), base, stopped));
        let watcher = tokio::spawn(watch_room(watcher, room, base));
        Bystanders { stop, talker, watcher }
    }

    /// Stop the talk; check the watcher got all of it; its latency, printed under `abuse`.
    pub async fn finish(self, abuse: &str, outcome: &str) -> Latency {
        let _ = self.stop.send(true);
        let sent = self.talker.await.expect("the talker ran");
        let mut got = self.watcher.await.expect("the watcher got every message, in order, once");
        assert_eq!(got.len() as u64, sent, "{abuse}: the watcher missed messages");
        got.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| ms(got[((got.len() - 1) as f64 * q).round() as usize]);
        let l = Latency { n: got.len(), p50: at(0.5), p99: at(0.99), max: ms(*got.last().unwrap()) };
        println!(
            "hostile | {abuse} | {outcome} | n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
            l.n, l.p50, l.p99, l.max
        );
        l
    }
}

/// Broadcast "<i> <µs since base>" every [`EVERY`] until stopped (and at least [`MIN_SENT`]
/// times), then "end". Returns how many numbered messages went out.
async fn talk(mut p: Tcp, room: String, base: Instant, stopped: watch::Receiver<bool>) -> u64 {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0;
    while i < MIN_SENT || !*stopped.borrow() {
        tick.tick().await;
        let message = format!("{i} {}", base.elapsed().as_micros());
        let ok = p.request(json!({"t":"broadcast","room":room,"message":message})).await;
        assert_eq!(ok["t"], "ok", "talker broadcast {i}: {ok}");
        i += 1;
    }
    let ok = p.request(json!({"t":"broadcast","room":room,"message":"end"})).await;
    assert_eq!(ok["t"], "ok", "talker end: {ok}");
    i
}

/// Receive until the talker's "end": each talker message's latency, checking the messages come
/// 0, 1, 2 … and every channel's `seq` goes up by one.
async fn watch_room(mut p: Tcp, room: String, base: Instant) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut last_seq = std::collections::HashMap::<String, u64>::new();
    loop {
        let f: Value = p.recv().await;
        if f["t"] != "event" || f["room"] != room.as_str() {
            continue;
        }
        if let (Some(ch), Some(seq)) = (f["ch"].as_str(), f["seq"].as_u64()) {
            let last = last_seq.entry(ch.to_string()).or_insert(seq - 1);
            assert_eq!(seq, *last + 1, "watcher: channel {ch} not contiguous: {f}");
            *last = seq;
        }
        if f["kind"] != "broadcast" || f["from"]["id"] != "talker" {
            continue;
        }
        let message = f["message"].as_str().expect("a message");
        if message == "end" {
            return latencies;
        }
        let (i, sent) = message.split_once(' ').expect("<i> <µs>");
        assert_eq!(i.parse::<usize>().unwrap(), latencies.len(), "watcher: message out of order or repeated");
        let sent = Duration::from_micros(sent.parse().unwrap());
        latencies.push(base.elapsed().saturating_sub(sent));
    }
}

/// A new client can still `hello` and log in: the server keeps serving.
pub async fn still_serving(url: &str, room: &str) {
    let mut p = connect(url, "latecomer").await;
    p.login(room).await;
    let ok = p.request(json!({"t":"logout","room":room})).await;
    assert_eq!(ok["t"], "ok", "{ok}");
}
