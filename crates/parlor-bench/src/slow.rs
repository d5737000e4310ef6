//! Slow consumer: W2's fan-out at one steady rate in a room of `members`, run twice on a fresh
//! server each — (a) every member reading, (b) one member, the *slow* one, that stops reading
//! its socket right after its login (TCP backs up, then the server's outbound queue).
//!
//! In (b) the server must cut the slow member with close code 4008 once its queue passes
//! `--outbound-limit` (the generator starts it with [`OUTBOUND_LIMIT`] to get there in seconds),
//! while the others' deliveries/s and latency stay those of (a). The generator watches the
//! server's `parlor_slow_consumer_total` to see the cut; the slow member then reads again
//! (what the transport held, then the close frame), resumes on a new connection with what it
//! has, and must end with every message of the run exactly once, in `seq` order — replayed
//! from the room log, which keeps every event younger than its `log_age` (5 min) and so covers
//! a run of these sizes; a snapshot with `missed_messages` instead is reported as a problem.
//!
//! The slow member's socket has a small receive buffer ([`SLOW_RCVBUF`]) — a phone on a bad
//! link rather than a server — so that the kernel holds little and the queue fills quickly.
//! In (a) the same member reads everything on an ordinary socket and is checked the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_ws, js, parse, source, Client, ParlorSession, SeqField, Ws};
use crate::report::Report;
use crate::target::{Kind, Limits, Target};
use crate::w2::{fan_out, FanOut, Seen, ROOM};
use crate::{now_ns, stopped, Ctx};

/// `--outbound-limit` of the servers this workload starts (the server's default is 1 MiB);
/// `--quick`: [`QUICK_OUTBOUND_LIMIT`].
pub const OUTBOUND_LIMIT: usize = 128 * 1024;
/// `--outbound-limit` with `--quick`.
pub const QUICK_OUTBOUND_LIMIT: usize = 32 * 1024;
/// `SO_RCVBUF` of the slow member's socket (the kernel doubles it).
pub const SLOW_RCVBUF: u32 = 16 * 1024;
/// How often the server's metrics are read to see the cut.
const POLL: Duration = Duration::from_millis(50);

/// What the extra member saw, shared with its task.
#[derive(Debug, Default)]
struct Member {
    /// Messages by index (the fan-out numbers them), with duplicates counted.
    seen: Seen,
    /// Room-channel events whose seq was not the next one (a gap or a step back).
    out_of_order: u64,
    /// Broadcasts read from the first connection, before the cut.
    before_cut: u64,
    /// Broadcasts between `resumed` and `resume_done`.
    replayed: u64,
    /// How the first connection ended: the close code, 0 for no close frame.
    close_code: Option<u16>,
    /// `resumed`'s outcome for the room.
    resume: Option<String>,
    /// A snapshot said messages were missed.
    missed_messages: bool,
    /// Send time of message 0 (ns on the generator's clock).
    first_sent_ns: Option<u64>,
    /// What went wrong.
    error: Option<String>,
}

impl Member {
    /// Apply a frame of the room (an event or a snapshot) read in `phase`.
    fn apply(&mut self, p: &mut ParlorSession, text: &str, phase: Phase) -> anyhow::Result<()> {
        let f = parse(text)?;
        match &*f.t {
            "event" if f.ch.as_deref() == Some("room") => {
                let Some(SeqField::One(seq)) = f.seq else { return Ok(()) };
                if seq != p.room_seq + 1 {
                    self.out_of_order += 1;
                }
                if seq <= p.room_seq {
                    return Ok(()); // a step back: not applied twice
                }
                p.room_seq = seq;
                if f.kind.as_deref() != Some("broadcast") {
                    return Ok(());
                }
                // "S:<step>:<send ns>:<index>"
                let Some(msg) = f.message else { return Ok(()) };
                let mut it = msg.split(':').skip(2);
                let (Some(Ok(sent)), Some(Ok(idx))) = (it.next().map(str::parse::<u64>), it.next().map(str::parse))
                else {
                    return Ok(());
                };
                if idx == 0 {
                    self.first_sent_ns = Some(sent);
                }
                self.seen.mark(idx);
                match phase {
                    Phase::BeforeCut => self.before_cut += 1,
                    Phase::Replay => self.replayed += 1,
                    Phase::Live => {}
                }
            }
            "snapshot" => {
                if let Some(SeqField::Channels { room, users, .. }) = f.seq {
                    p.room_seq = room.unwrap_or(p.room_seq);
                    p.users_seq = users.unwrap_or(p.users_seq);
                }
                if let Some(e) = f.room_session {
                    p.epoch = e;
                }
                self.missed_messages |= f.missed_messages == Some(true);
            }
            _ => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    BeforeCut,
    Replay,
    Live,
}

type Shared = Arc<Mutex<Member>>;

/// Run (a) and (b); one report each.
pub async fn run(ctx: &Ctx, members: usize) -> anyhow::Result<Vec<Report>> {
    if ctx.args.server_url.is_some() {
        bail!("slow starts its own servers (with a small --outbound-limit): --server-url does not apply");
    }
    if !ctx.args.target.contains(&Kind::Parlor) {
        bail!("slow runs against Parlor only (--target parlor)");
    }
    let members = members.max(3);
    let rate = ctx.args.rates.first().copied().unwrap_or(200.0);
    let secs = ctx.args.step_secs.unwrap_or(if ctx.args.quick { 8.0 } else { 30.0 });
    // One step of the fan-out at one rate: its table row is the others' delivery rate and latency.
    let mut one = ctx.clone();
    one.args.rates = vec![rate];
    one.args.step_secs = Some(secs);
    let mut reports = Vec::new();
    for stall in [false, true] {
        // Short: the labels head the comparison's columns.
        let label = if stall { "one stalled" } else { "all reading" };
        let rep = match once(&one, members, stall, label).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = Report::new("slow", label, members);
                r.problem(format!("{e:#}"));
                r
            }
        };
        reports.push(rep);
        tokio::time::sleep(Duration::from_millis(if ctx.args.quick { 100 } else { 2000 })).await;
    }
    Ok(reports)
}

/// One run on a fresh server: the fan-out to `members - 1` (sender included) plus the extra
/// member, reading or not.
async fn once(ctx: &Ctx, members: usize, stall: bool, label: &str) -> anyhow::Result<Report> {
    let limits =
        Limits { outbound_limit: OUTBOUND_LIMIT, server_bin: ctx.args.server_bin.clone(), ..Limits::default() };
    let target = Target::start(Kind::Parlor, &limits, &ctx.args.app).await?;
    let member: Shared = Arc::default();
    let (cut_tx, cut_rx) = watch::channel(None::<u64>);
    let (stop_tx, stop_rx) = watch::channel(false);
    // The extra member joins first, so that it is in the room before the first message.
    let c = join(ctx, &target, members, stall).await.context("the extra member's login")?;
    let task = tokio::spawn(extra_member(
        c,
        target.endpoint().addr,
        target.path.clone(),
        member.clone(),
        stall,
        cut_rx,
        stop_rx.clone(),
    ));
    let poller = tokio::spawn(watch_cuts(target.addr, cut_tx.clone(), stop_rx.clone()));

    let spec =
        FanOut { workload: "slow", label: label.to_string(), nodes: &[&target], also_cpu: None, exactly_once: true };
    let fanned = fan_out(ctx, &spec, members - 1).await;
    // The run is over: a member still waiting for its cut reads now.
    cut_tx.send_if_modified(|c| {
        if c.is_none() {
            *c = Some(0);
            true
        } else {
            false
        }
    });
    let mut rep = fanned?;
    rep.sessions = members;
    let sent = rep.get("messages sent").unwrap_or(0.0) as u64;
    // Wait for the extra member to have everything: up to 15 s, or 3 s without progress.
    let unique = || member.lock().seen.unique;
    let end = Instant::now() + Duration::from_secs(15);
    let (mut last, mut last_move) = (unique(), Instant::now());
    while last < sent && Instant::now() < end && last_move.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if unique() != last {
            (last, last_move) = (unique(), Instant::now());
        }
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
    let cuts = poller.await.unwrap_or(0);
    let cut_ns = *cut_tx.borrow();
    check(&mut rep, &member.lock(), sent, stall, cuts, cut_ns);
    Ok(rep)
}

/// The numbers and checks of the extra member.
fn check(rep: &mut Report, m: &Member, sent: u64, stall: bool, cuts: u64, cut_ns: Option<u64>) {
    let lost = sent.saturating_sub(m.seen.unique);
    rep.metric("connections cut with 4008 (server)", cuts as f64, "");
    if stall {
        let after = match (cut_ns, m.first_sent_ns) {
            (Some(c), Some(f)) if c > f => (c - f) as f64 / 1e9,
            _ => f64::NAN,
        };
        rep.metric("slow member: cut after (from the first message)", after, "s");
        rep.metric("slow member: close code it read", m.close_code.map(f64::from).unwrap_or(f64::NAN), "");
        rep.metric("slow member: messages read before the cut", m.before_cut as f64, "");
        rep.metric("slow member: messages replayed on resume", m.replayed as f64, "");
        rep.metric(
            "slow member: resumed by replay (1) / snapshot (0)",
            f64::from(u8::from(m.resume.as_deref() == Some("replay"))),
            "",
        );
        if cuts != 1 {
            rep.problem(format!("the server cut {cuts} connections with 4008, not one (the slow member's)"));
        }
        match m.close_code {
            Some(4008) => {}
            Some(0) => rep.problem("the slow member's connection ended without a close frame (not 4008)"),
            Some(c) => rep.problem(format!("the slow member's connection was closed with {c}, not 4008")),
            None => rep.problem("the slow member's first connection never ended"),
        }
        if m.resume.as_deref() != Some("replay") {
            rep.problem(format!("the slow member's resume gave {:?}, not a replay", m.resume));
        }
        if m.missed_messages {
            rep.problem(
                "the room log no longer covered the gap: a snapshot with missed_messages (shorter run or lower rate)",
            );
        }
    } else if cuts != 0 || m.close_code.is_some() {
        rep.problem(format!("with every member reading, the server cut {cuts} connections"));
    }
    let who = if stall { "slow member" } else { "extra member" };
    rep.metric(&format!("{who}: messages lost"), lost as f64, "");
    rep.metric(&format!("{who}: messages duplicated"), m.seen.dup as f64, "");
    rep.metric(&format!("{who}: events out of seq order"), m.out_of_order as f64, "");
    if lost > 0 {
        rep.problem(format!("the {who} is missing {lost} of {sent} messages"));
    }
    if m.seen.dup > 0 {
        rep.problem(format!("the {who} got {} messages twice", m.seen.dup));
    }
    if m.out_of_order > 0 {
        rep.problem(format!("the {who} saw {} room events out of seq order", m.out_of_order));
    }
    if let Some(e) = &m.error {
        rep.problem(format!("the {who}: {e}"));
    }
}

/// Log in the extra member; the slow one on a socket with a small receive buffer.
async fn join(ctx: &Ctx, target: &Target, i: usize, stall: bool) -> anyhow::Result<Client> {
    let src = source(i);
    let ws = if stall {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(SLOW_RCVBUF)?;
        socket.bind(SocketAddr::from((src, 0)))?;
        let stream = socket.connect(target.addr).await?;
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let url = format!("ws://{}{}", target.addr, target.path);
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?.0
    } else {
        connect_ws(target.addr, &target.path, src).await?
    };
    let mut c = Client { ws, kind: Kind::Parlor, parlor: ParlorSession::default(), next_id: 1 };
    c.parlor_hello(&ctx.app, "slow").await?;
    c.parlor_login(ROOM, false).await?;
    Ok(c)
}

/// The extra member: (stalled) nothing until the cut, then the first connection to its end;
/// a resume; then live until `stop`.
async fn extra_member(
    mut c: Client,
    addr: SocketAddr,
    path: String,
    m: Shared,
    stall: bool,
    mut cut: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let result = async {
        if stall {
            let _ = cut.wait_for(Option::is_some).await;
        }
        // The first connection until it ends (or `stop`, when nothing cuts it).
        let code = tokio::select! {
            code = first_end(&mut c, &m) => code?,
            _ = stopped(&mut stop) => return Ok(()),
        };
        m.lock().close_code = Some(code);
        resume(&mut c, addr, &path, &m).await?;
        live(&mut c, &m, &mut stop).await
    }
    .await;
    if let Err(e) = result {
        m.lock().error = Some(format!("{e:#}"));
    }
}

/// Read the first connection to its end; the close code (0: none).
async fn first_end(c: &mut Client, m: &Shared) -> anyhow::Result<u16> {
    loop {
        match c.ws.next().await {
            Some(Ok(Message::Text(t))) => m.lock().apply(&mut c.parlor, &t, Phase::BeforeCut)?,
            Some(Ok(Message::Close(f))) => return Ok(f.map(|f| u16::from(f.code)).unwrap_or(0)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Ok(0),
        }
    }
}

/// A new connection, `resume` with what the member has, the replay up to `resume_done`.
async fn resume(c: &mut Client, addr: SocketAddr, path: &str, m: &Shared) -> anyhow::Result<()> {
    c.ws = connect_ws(addr, path, source(0)).await?;
    let p = &c.parlor;
    let frame = format!(
        "{{\"t\":\"resume\",\"v\":1,\"session\":{},\"resume_token\":{},\"ack\":{}}}",
        js(&p.session),
        js(&p.resume_token),
        c.parlor_ack(ROOM)
    );
    c.ws.send(Message::text(frame)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut phase = None;
    loop {
        let t = match tokio::time::timeout_at(deadline, next_text(&mut c.ws)).await {
            Ok(t) => t?,
            Err(_) => bail!("no resume_done within 30 s"),
        };
        if phase.is_none() {
            let f = parse(&t)?;
            if f.t != "resumed" {
                bail!("resume answered with {t:.200}");
            }
            if let Some(tok) = f.resume_token {
                c.parlor.resume_token = tok;
            }
            m.lock().resume = f.rooms.as_ref().and_then(|r| r.get(ROOM)).cloned();
            phase = Some(Phase::Replay);
            continue;
        }
        if t.starts_with("{\"t\":\"resume_done\"") {
            return Ok(());
        }
        m.lock().apply(&mut c.parlor, &t, Phase::Replay)?;
    }
}

/// Live after the resume, with heartbeats, until `stop`.
async fn live(c: &mut Client, m: &Shared, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut hb = tokio::time::interval(c.parlor.heartbeat);
    loop {
        tokio::select! {
            _ = stopped(stop) => return Ok(()),
            _ = hb.tick() => c.heartbeat(ROOM).await?,
            t = next_text(&mut c.ws) => m.lock().apply(&mut c.parlor, &t?, Phase::Live)?,
        }
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(f))) => bail!("closed by the server: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("connection lost: {e}"),
            None => bail!("connection closed"),
        }
    }
}

/// Read `parlor_slow_consumer_total` every [`POLL`] until `stop`; the first time it is
/// non-zero, publish when (ns on the generator's clock). Returns its last value.
async fn watch_cuts(addr: SocketAddr, cut: watch::Sender<Option<u64>>, mut stop: watch::Receiver<bool>) -> u64 {
    let mut last = 0;
    loop {
        if let Ok(n) = slow_consumer_total(addr).await {
            last = n;
            if n > 0 {
                let at = now_ns();
                cut.send_if_modified(|c| {
                    if c.is_none() {
                        *c = Some(at);
                        true
                    } else {
                        false
                    }
                });
            }
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    // Once more after the end: a cut in the last moments counts too.
    slow_consumer_total(addr).await.unwrap_or(last)
}

/// The server's `parlor_slow_consumer_total` (0 before the first cut: no line yet).
async fn slow_consumer_total(addr: SocketAddr) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: parlor\r\nConnection: close\r\n\r\n").await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "/metrics answered {answer:.100}");
    Ok(metric_value(&answer, "parlor_slow_consumer_total").unwrap_or(0))
}

/// A counter's value in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            rest.strip_prefix(' ').or_else(|| rest.strip_prefix('{').and_then(|r| r.split_once("} ").map(|(_, v)| v)))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_counter_from_prometheus_text() {
        let text =
            "# TYPE parlor_slow_consumer_total counter\nparlor_slow_consumer_total 3\nparlor_slow_consumer_totals 9\n";
        assert_eq!(metric_value(text, "parlor_slow_consumer_total"), Some(3));
        assert_eq!(metric_value("x 1\n", "parlor_slow_consumer_total"), None);
        assert_eq!(metric_value("parlor_slow_consumer_total{node=\"a\"} 2\n", "parlor_slow_consumer_total"), Some(2));
    }

    #[test]
    fn a_member_counts_gaps_steps_back_and_duplicates() {
        let mut m = Member::default();
        let mut p = ParlorSession { room_seq: 4, ..ParlorSession::default() };
        let ev = |seq: u64, i: usize| {
            format!("{{\"t\":\"event\",\"room\":\"w2\",\"ch\":\"room\",\"seq\":{seq},\"kind\":\"broadcast\",\"message\":\"S:0:7:{i}\"}}")
        };
        m.apply(&mut p, &ev(5, 0), Phase::BeforeCut).unwrap();
        m.apply(&mut p, &ev(6, 1), Phase::Replay).unwrap();
        m.apply(&mut p, &ev(6, 1), Phase::Live).unwrap();
        m.apply(&mut p, &ev(8, 1), Phase::Live).unwrap();
        assert_eq!((m.seen.unique, m.seen.dup, m.out_of_order), (2, 1, 2));
        assert_eq!((m.before_cut, m.replayed, m.first_sent_ns), (1, 1, Some(7)));
    }
}
