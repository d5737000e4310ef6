//! A transcript harness for scripted protocol runs: raw peers over real WebSockets whose every
//! received frame is recorded, normalized, per peer, in order — so that two runs (two engines)
//! can be compared frame by frame, and against a golden file.
//!
//! Determinism comes from the script, not from timing: every step waits for *all* the frames it
//! causes on every peer (the script says how many, from the protocol) before the next step is
//! sent, so each peer's sequence of frames is fixed. Every wait is bounded ([`FRAME_WAIT`]); the
//! only "nothing more came" check ([`Harness::quiet`]) waits [`QUIET_WAIT`].
//!
//! Besides recording, every peer tracks what it has applied, like a client does (§6): each
//! channel's last `seq` per room and its `direct` channel. Every event with a `seq` and every
//! `ok` with a `seq` must be exactly the last known + 1, which checks the protocol's
//! contiguity promise on every frame of the run; a peer's state is also what it acks on resume.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The longest wait for one expected frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);
/// How long [`Harness::quiet`] listens for frames that should not come.
pub const QUIET_WAIT: Duration = Duration::from_millis(200);

/// Fields whose values are random: replaced by a label numbered in order of first appearance, so
/// the transcript still shows which values are the same (a `resumed.session` is the welcome's,
/// a recreated room has a new `room_session`). `epoch` is a `room_session` by another name.
const LABELLED: [(&str, &str); 4] = [
    ("session", "session"),
    ("resume_token", "resume_token"),
    ("room_session", "room_session"),
    ("epoch", "room_session"),
];
/// Fields that are wall-clock times: replaced by `"<ms>"` (they must still be numbers).
const TIMES: [&str; 2] = ["time_ms", "server_time_ms"];

/// Replaces random and time-based values, consistently over one run.
#[derive(Debug, Default)]
pub struct Normalizer {
    labels: HashMap<(&'static str, String), String>,
    counts: HashMap<&'static str, usize>,
}

impl Normalizer {
    /// `v` with every random or time-based value replaced.
    pub fn normalize(&mut self, v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let nx = if let Some((_, kind)) = LABELLED.iter().find(|(f, _)| f == k) {
                        match x.as_str() {
                            Some(s) => Value::String(self.label(kind, s)),
                            None => self.normalize(x),
                        }
                    } else if TIMES.contains(&k.as_str()) {
                        match x {
                            Value::Number(_) => json!("<ms>"),
                            other => json!(format!("<not a number: {other}>")),
                        }
                    } else {
                        self.normalize(x)
                    };
                    out.insert(k.clone(), nx);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.normalize(x)).collect()),
            other => other.clone(),
        }
    }

    fn label(&mut self, kind: &'static str, raw: &str) -> String {
        if let Some(l) = self.labels.get(&(kind, raw.to_string())) {
            return l.clone();
        }
        let n = self.counts.entry(kind).or_default();
        *n += 1;
        let l = format!("<{kind} {n}>");
        self.labels.insert((kind, raw.to_string()), l.clone());
        l
    }
}

/// What a peer has applied, as a client tracks it: per room (epoch, last `room` seq, last
/// `users` seq), and the last `direct` seq.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Last direct seq.
    pub direct: u64,
    /// Room → (epoch, room seq, users seq).
    pub rooms: BTreeMap<String, (String, u64, u64)>,
}

impl Tracker {
    /// The `ack` a client with this state sends.
    pub fn ack(&self) -> Value {
        let rooms: Map<String, Value> =
            self.rooms.iter().map(|(k, (e, r, u))| (k.clone(), json!({"epoch":e,"room":r,"users":u}))).collect();
        json!({"direct":self.direct,"rooms":rooms})
    }

    fn set_room(&mut self, f: &Value) {
        if let (Some(room), Some(epoch)) = (f["room"].as_str(), f["room_session"].as_str()) {
            let seq = &f["seq"];
            self.rooms.insert(
                room.to_string(),
                (epoch.to_string(), seq["room"].as_u64().unwrap_or(0), seq["users"].as_u64().unwrap_or(0)),
            );
        }
    }

    /// Apply a received frame; panics (naming `who`) on a gap or a repeat in any channel.
    fn apply(&mut self, who: &str, f: &Value) {
        match f["t"].as_str() {
            Some("ok") | Some("snapshot") if f.get("room_session").is_some() => self.set_room(f),
            Some("ok") => {
                let Some(room) = f["room"].as_str() else { return };
                let Some(known) = self.rooms.get_mut(room) else { return };
                for (ch, last) in [("room", &mut known.1), ("users", &mut known.2)] {
                    if let Some(n) = f["seq"][ch].as_u64() {
                        assert_eq!(n, *last + 1, "{who}: the ok's {ch} seq is not the next one (knew {last}): {f}");
                        *last = n;
                    }
                }
            }
            Some("event") => {
                let Some(seq) = f["seq"].as_u64() else { return };
                if f["ch"] == "direct" {
                    assert_eq!(seq, self.direct + 1, "{who}: direct channel not contiguous: {f}");
                    self.direct = seq;
                    return;
                }
                let room = f["room"].as_str().unwrap_or_default();
                let Some(known) = self.rooms.get_mut(room) else {
                    panic!("{who}: an event of a room it is not in: {f}");
                };
                let last = if f["ch"] == "room" { &mut known.1 } else { &mut known.2 };
                assert_eq!(seq, *last + 1, "{who}: {} channel of {room} not contiguous: {f}", f["ch"]);
                *last = seq;
            }
            Some("kicked") => {
                self.rooms.remove(f["room"].as_str().unwrap_or_default());
            }
            Some("resumed") => {
                if let Some(rooms) = f["rooms"].as_object() {
                    for (room, how) in rooms {
                        if how.as_str().is_some_and(|h| h.starts_with("kicked")) {
                            self.rooms.remove(room);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// One connection of the script.
pub struct Conn {
    /// Its name in the transcript.
    pub name: String,
    ws: Option<Ws>,
    next_id: u64,
    /// What it has applied.
    pub tracker: Tracker,
}

/// A recorded run: for each peer (in the order the script opened them), its frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// (peer, frames).
    pub peers: Vec<(String, Vec<Value>)>,
}

impl Transcript {
    fn push(&mut self, peer: &str, frame: Value) {
        match self.peers.iter_mut().find(|(p, _)| p == peer) {
            Some((_, frames)) => frames.push(frame),
            None => self.peers.push((peer.to_string(), vec![frame])),
        }
    }

    /// The golden-file text: a JSON object, one peer per key, one frame per line (so that a
    /// `git diff` of a re-blessed golden file reads frame by frame).
    pub fn to_golden(&self) -> String {
        let mut out = String::from("{\n");
        for (i, (peer, frames)) in self.peers.iter().enumerate() {
            let _ = write!(out, "  {}: [", Value::String(peer.clone()));
            for (j, f) in frames.iter().enumerate() {
                let _ = write!(out, "\n    {f}{}", if j + 1 < frames.len() { "," } else { "" });
            }
            let close = if frames.is_empty() { "" } else { "\n  " };
            let _ = writeln!(out, "{close}]{}", if i + 1 < self.peers.len() { "," } else { "" });
        }
        out.push_str("}\n");
        out
    }

    /// Parse a golden file written by [`Transcript::to_golden`] (peer order is not kept by
    /// `serde_json`; it does not matter for comparing).
    pub fn from_golden(text: &str) -> Result<Transcript, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("the golden file is not JSON: {e}"))?;
        let obj = v.as_object().ok_or("the golden file is not a JSON object")?;
        let mut peers = Vec::new();
        for (peer, frames) in obj {
            let frames = frames.as_array().ok_or_else(|| format!("golden peer {peer} is not an array"))?;
            peers.push((peer.clone(), frames.clone()));
        }
        Ok(Transcript { peers })
    }

    /// A readable account of how `self` (actual) differs from `golden`: for each peer the first
    /// differing frame with both values, and peers missing on either side. Empty when equal.
    pub fn diff(&self, golden: &Transcript) -> String {
        let mut out = String::new();
        let find = |t: &Transcript, p: &str| t.peers.iter().find(|(q, _)| q == p).map(|(_, f)| f.clone());
        for (peer, actual) in &self.peers {
            let Some(expected) = find(golden, peer) else {
                let _ = writeln!(out, "peer {peer}: not in the golden transcript ({} frames here)", actual.len());
                continue;
            };
            let first = (0..actual.len().max(expected.len())).find(|&i| actual.get(i) != expected.get(i));
            if let Some(i) = first {
                let show = |f: Option<&Value>| f.map_or("(no frame)".to_string(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "peer {peer}: frame #{i} differs ({} frames here, {} golden)\n  golden: {}\n  actual: {}",
                    actual.len(),
                    expected.len(),
                    show(expected.get(i)),
                    show(actual.get(i)),
                );
            }
        }
        for (peer, frames) in &golden.peers {
            if find(self, peer).is_none() {
                let _ = writeln!(out, "peer {peer}: in the golden transcript ({} frames) but not here", frames.len());
            }
        }
        out
    }
}

/// Compare `actual` with the golden file at `path`; with `PARLOR_BLESS=1` (and `bless` true),
/// write it instead. Panics with [`Transcript::diff`] on a mismatch.
pub fn check_golden(actual: &Transcript, path: &Path, bless: bool, what: &str) {
    if bless && std::env::var("PARLOR_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create the golden dir");
        std::fs::write(path, actual.to_golden()).expect("write the golden file");
        eprintln!("blessed {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read the golden transcript {} ({e}); run with PARLOR_BLESS=1 to create it", path.display())
    });
    let golden = Transcript::from_golden(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let diff = actual.diff(&golden);
    assert!(
        diff.is_empty(),
        "{what}: the transcript differs from {}:\n{diff}\n(if the change is intended, re-bless with PARLOR_BLESS=1 \
         and review the golden file's git diff)",
        path.display()
    );
}

/// Peers driven one step at a time, and the transcript of what they received.
pub struct Harness {
    url: String,
    conns: Vec<Conn>,
    norm: Normalizer,
    /// What was recorded so far.
    pub transcript: Transcript,
    /// Set: `online` events are not recorded but kept aside (the last count per peer): a large
    /// room's count comes at a tick of its own (§9.10), whose order with other events is not
    /// the same on every engine.
    pub online_aside: Option<std::collections::HashMap<String, u64>>,
}

impl Harness {
    /// A harness for the server at `url` (`ws://…/v1/ws`).
    pub fn new(url: String) -> Harness {
        Harness {
            url,
            conns: Vec::new(),
            norm: Normalizer::default(),
            transcript: Transcript::default(),
            online_aside: None,
        }
    }

    fn conn(&mut self, name: &str) -> &mut Conn {
        self.conns.iter_mut().find(|c| c.name == name).unwrap_or_else(|| panic!("no peer named {name}"))
    }

    /// Open a connection named `name` (a new transcript entry) whose client state starts as
    /// `tracker` (a fresh one, or the state a resuming client had).
    pub async fn connect(&mut self, name: &str, tracker: Tracker) {
        assert!(self.conns.iter().all(|c| c.name != name), "peer name {name} used twice");
        let (ws, _) = tokio::time::timeout(FRAME_WAIT, tokio_tungstenite::connect_async(&self.url))
            .await
            .unwrap_or_else(|_| panic!("{name}: connecting timed out"))
            .unwrap_or_else(|e| panic!("{name}: cannot connect: {e}"));
        self.conns.push(Conn { name: name.to_string(), ws: Some(ws), next_id: 0, tracker });
        self.transcript.peers.push((name.to_string(), Vec::new()));
    }

    /// Send a frame as is.
    pub async fn send(&mut self, name: &str, v: Value) {
        let c = self.conn(name);
        let ws = c.ws.as_mut().unwrap_or_else(|| panic!("{name}: send on a closed connection: {v}"));
        ws.send(Message::Text(v.to_string().into())).await.unwrap_or_else(|e| panic!("{name}: send failed: {e}"));
    }

    /// The next frame of `name` (raw), recorded normalized. A close is the frame
    /// `{"t":"<close>","code":N}`.
    pub async fn recv(&mut self, name: &str) -> Value {
        // The fields apart: `online_aside` is written while the connection is borrowed.
        let c = self.conns.iter_mut().find(|c| c.name == name).unwrap_or_else(|| panic!("no peer named {name}"));
        let ws = c.ws.as_mut().unwrap_or_else(|| panic!("{name}: a frame was expected but the connection is closed"));
        let frame = loop {
            let m = tokio::time::timeout(FRAME_WAIT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("{name}: no frame within {FRAME_WAIT:?} where one was expected"));
            match m {
                Some(Ok(Message::Text(t))) => {
                    let v = serde_json::from_str::<Value>(t.as_str())
                        .unwrap_or_else(|e| panic!("{name}: the server sent a frame that is not JSON ({e}): {t}"));
                    if let (Some(aside), "online") = (self.online_aside.as_mut(), v["kind"].as_str().unwrap_or("")) {
                        aside.insert(name.to_string(), v["count"].as_u64().unwrap_or(0));
                        continue;
                    }
                    break v;
                }
                Some(Ok(Message::Close(cf))) => {
                    c.ws = None;
                    break json!({"t":"<close>","code":cf.map(|cf| u16::from(cf.code)).unwrap_or(1005)});
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{name}: connection failed while a frame was expected: {e}"),
                None => {
                    c.ws = None;
                    break json!({"t":"<gone>"});
                }
            }
        };
        c.tracker.apply(name, &frame);
        let n = self.norm.normalize(&frame);
        self.transcript.push(name, n);
        frame
    }

    /// The next `n` frames of `name`.
    pub async fn expect(&mut self, name: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.recv(name).await);
        }
        out
    }

    /// Frames of `name` until (and including) its connection's close; at most `max` frames.
    pub async fn until_close(&mut self, name: &str, max: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..max {
            let f = self.recv(name).await;
            let end = f["t"] == "<close>" || f["t"] == "<gone>";
            out.push(f);
            if end {
                return out;
            }
        }
        panic!("{name}: more than {max} frames and no close: {out:?}");
    }

    /// Send request `v` with the peer's next id and return its answer, which must be the very
    /// next frame the peer receives (the script is sequential: nothing else is under way).
    pub async fn req(&mut self, name: &str, v: Value) -> Value {
        let c = self.conn(name);
        c.next_id += 1;
        let id = c.next_id;
        self.req_id(name, id, v).await
    }

    /// [`Harness::req`] with an explicit id (repeats), which the peer's next ids do not follow.
    pub async fn req_id(&mut self, name: &str, id: u64, mut v: Value) -> Value {
        v["id"] = json!(id);
        self.send(name, v.clone()).await;
        let a = self.recv(name).await;
        assert!(
            (a["t"] == "ok" || a["t"] == "error") && a["id"] == json!(id),
            "{name}: expected the answer to {v}, got {a}"
        );
        // What the answer means for the client's state beyond what the frame says.
        let tracker = &mut self.conn(name).tracker;
        match v["t"].as_str() {
            Some("logout") if a["t"] == "ok" => {
                tracker.rooms.remove(v["room"].as_str().unwrap_or_default());
            }
            Some("switch") if a["t"] == "ok" || a["code"] != json!(1002002) => {
                tracker.rooms.remove(v["from"].as_str().unwrap_or_default());
            }
            _ => {}
        }
        a
    }

    /// The id the peer's last request carried.
    pub fn last_id(&mut self, name: &str) -> u64 {
        self.conn(name).next_id
    }

    /// What the peer has applied (to ack it, or to resume with it on another connection).
    pub fn tracker(&mut self, name: &str) -> Tracker {
        self.conn(name).tracker.clone()
    }

    /// Record a value that is not a frame (an admin API answer) under pseudo-peer `name`.
    pub fn record(&mut self, name: &str, v: Value) {
        let n = self.norm.normalize(&v);
        self.transcript.push(name, n);
    }

    /// Assert that none of `names` (all open peers when empty) receives anything within
    /// [`QUIET_WAIT`]; they are listened to at the same time.
    pub async fn quiet(&mut self, names: &[&str]) {
        let waits = self
            .conns
            .iter_mut()
            .filter(|c| c.ws.is_some() && (names.is_empty() || names.contains(&c.name.as_str())))
            .map(|c| async move {
                let ws = c.ws.as_mut().expect("open");
                match tokio::time::timeout(QUIET_WAIT, ws.next()).await {
                    Err(_) => None,
                    Ok(m) => Some(format!("{}: {m:?}", c.name)),
                }
            });
        let got: Vec<String> = futures_util::future::join_all(waits).await.into_iter().flatten().collect();
        assert!(got.is_empty(), "frames arrived where none was expected:\n{}", got.join("\n"));
    }

    /// Wait (bounded) until `name` has been sent an `online` of `count` (with
    /// [`Harness::online_aside`] set; any other frame meanwhile is a failure).
    pub async fn await_online(&mut self, name: &str, count: u64) {
        for _ in 0..20 {
            if self.online_aside.as_ref().and_then(|a| a.get(name)) == Some(&count) {
                return;
            }
            let c = self.conns.iter_mut().find(|c| c.name == name).unwrap_or_else(|| panic!("no peer named {name}"));
            let ws = c.ws.as_mut().unwrap_or_else(|| panic!("{name}: closed while an online count was awaited"));
            let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(FRAME_WAIT, ws.next()).await else {
                panic!("{name}: no online count {count} within the wait");
            };
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
            assert_eq!(v["kind"], "online", "{name}: a frame where only an online count was expected: {v}");
            if let Some(aside) = self.online_aside.as_mut() {
                aside.insert(name.to_string(), v["count"].as_u64().unwrap_or(0));
            }
        }
        panic!("{name}: never an online count of {count}");
    }

    /// Names of the peers whose connection is still open.
    pub fn open(&self) -> Vec<String> {
        self.conns.iter().filter(|c| c.ws.is_some()).map(|c| c.name.clone()).collect()
    }
}
