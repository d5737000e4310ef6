//! W2, fan-out: one room of `members` sessions; one of them broadcasts at a fixed offered rate,
//! stepped up until saturation (the delivered rate stops growing by 10 % or p99 > 1 s). Each
//! message carries its send time (ns on the generator's one clock), so every delivery gives a
//! latency. Per step: deliveries/s, latency p50/p95/p99/max and the server's CPU seconds per
//! million deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{delivered, parse, Client};
use crate::report::{percentile, Report, Step};
use crate::target::{Kind, Target};
use crate::{hold, join_retry, now_ns, srv_hist, sys, wait_until, Counts, Ctx};

/// The room of the fan-out.
pub(crate) const ROOM: &str = "w2";

/// What a delivery costs depends on its size, so every target delivers frames of the same size:
/// a Parlor broadcast `event` carries about 150 bytes of fields around the message text
/// (`{"t":"event","room":"w2","ch":"room","seq":…,"kind":"broadcast","message_id":"…",
/// "from":{…},"message":"…","time_ms":…}`); the other targets' messages are padded to match
/// (Socket.IO wraps the text in 12 bytes of its own, the bare server in none).
fn padding(kind: Kind) -> &'static str {
    const PAD: &str = ":pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";
    match kind {
        Kind::Parlor => "",
        Kind::Socketio | Kind::Socketioxide => &PAD[..138],
        Kind::Bare => &PAD[..150],
    }
}
const MAX_STEPS: usize = 32;

/// What one receiver saw: latency samples `(step, ns)` and, when exactly-once is checked, the
/// messages it got (a bit per message index) and how many it got twice.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    samples: Vec<(u32, u64)>,
    got: Vec<u64>,
    pub(crate) unique: u64,
    pub(crate) dup: u64,
}

impl Seen {
    /// Mark message `i`; false when it was already marked.
    pub(crate) fn mark(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if self.got.len() <= w {
            self.got.resize(w + 1, 0);
        }
        let fresh = self.got[w] & b == 0;
        self.got[w] |= b;
        if fresh {
            self.unique += 1;
        } else {
            self.dup += 1;
        }
        fresh
    }
}

type Samples = Arc<Mutex<Seen>>;

/// One fan-out run: which servers the members connect to and what is checked.
#[derive(Debug)]
pub struct FanOut<'a> {
    /// The report's workload name (`w2`, `w5`).
    pub workload: &'static str,
    /// The report's target name.
    pub label: String,
    /// The servers; member `j` (the sender is member 0, receiver `i` is member `i + 1`)
    /// connects to `nodes[j % nodes.len()]`.
    pub nodes: &'a [&'a Target],
    /// Processes whose CPU counts as the server's besides the nodes (W5: Redis), with a name
    /// for their own headline.
    pub also_cpu: Option<(&'static str, u32)>,
    /// Number every message and check that each receiver gets each exactly once (after the last
    /// step, a drain of up to 10 s); lost or duplicated deliveries are problems.
    pub exactly_once: bool,
}

/// Run W2.
pub async fn run(ctx: &Ctx, target: &Target, members: usize) -> anyhow::Result<Report> {
    let nodes = [target];
    let spec = FanOut {
        workload: "w2",
        label: target.kind.name().to_string(),
        nodes: &nodes,
        also_cpu: None,
        exactly_once: false,
    };
    fan_out(ctx, &spec, members).await
}

/// Server CPU so far: every node plus `also_cpu`; None when a PID is unknown.
fn cpu_of(spec: &FanOut<'_>) -> (Option<Duration>, Option<Duration>) {
    let nodes = spec.nodes.iter().map(|t| t.cpu()).sum::<Option<Duration>>();
    let extra = spec.also_cpu.and_then(|(_, pid)| sys::cpu_time(pid));
    match spec.also_cpu {
        Some(_) => (nodes.zip(extra).map(|(a, b)| a + b), extra),
        None => (nodes, None),
    }
}

/// The servers' `parlor_fanout_seconds` summed over the nodes (None for a peer, which has no
/// such histogram, or when a scrape fails).
async fn server_fanout(spec: &FanOut<'_>) -> Option<srv_hist::Hist> {
    let mut sum = srv_hist::Hist::default();
    for t in spec.nodes {
        if t.kind != Kind::Parlor {
            return None;
        }
        sum = sum.add(&srv_hist::scrape(t.addr, srv_hist::FANOUT).await.ok()?);
    }
    Some(sum)
}

/// The fan-out: one room, one sender, stepped rates (W2; W5 over several nodes).
pub async fn fan_out(ctx: &Ctx, spec: &FanOut<'_>, members: usize) -> anyhow::Result<Report> {
    let members = members.max(2);
    let receivers = members - 1;
    let mut rep = Report::new(spec.workload, &spec.label, members);
    let rates: Vec<f64> = if !ctx.args.rates.is_empty() {
        ctx.args.rates.clone()
    } else if ctx.args.quick {
        vec![20.0, 50.0, 100.0]
    } else {
        vec![2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0]
    };
    let step_dur = Duration::from_secs_f64(ctx.args.step_secs.unwrap_or(if ctx.args.quick { 1.5 } else { 5.0 }));
    let kind = spec.nodes[0].kind;
    let node_of = |j: usize| spec.nodes[j % spec.nodes.len()];
    let exactly_once = spec.exactly_once;

    // The receivers.
    let pb = ctx.bar(receivers as u64, "members");
    let counts = Arc::new(Counts::default());
    let per_step: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_STEPS).map(|_| AtomicU64::new(0)).collect());
    let last_recv: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_STEPS).map(|_| AtomicU64::new(0)).collect());
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut all_samples: Vec<Samples> = Vec::with_capacity(receivers);
    let mut tasks = Vec::with_capacity(receivers);
    for i in 0..receivers {
        let samples: Samples = Arc::default();
        all_samples.push(samples.clone());
        let (ctx2, counts, sem, stop, pb, ep) =
            (ctx.clone(), counts.clone(), sem.clone(), stop_rx.clone(), pb.clone(), node_of(i + 1).endpoint());
        let (per_step, last_recv) = (per_step.clone(), last_recv.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(permit) = sem.acquire_owned().await else { return };
            let joined = join_retry(&ctx2, &ep, i + 1, &format!("m{i}"), ROOM, false).await;
            drop(permit);
            let c = match joined {
                Ok(c) => c,
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    counts.error(&e);
                    return;
                }
            };
            counts.joined.fetch_add(1, Ordering::Relaxed);
            pb.inc(1);
            let on_text = |text: &str| {
                let Some(msg) = delivered(kind, text) else { return };
                let now = now_ns();
                // "S:<step>:<send ns>" (exactly-once: "S:<step>:<send ns>:<message index>")
                let mut it = msg.split(':').skip(1);
                let (Some(step), Some(sent)) = (it.next(), it.next()) else { return };
                let (Ok(step), Ok(sent)) = (step.parse::<u32>(), sent.parse::<u64>()) else { return };
                if (step as usize) < MAX_STEPS {
                    let mut seen = samples.lock();
                    if exactly_once {
                        let Some(Ok(idx)) = it.next().map(str::parse::<usize>) else { return };
                        seen.mark(idx);
                    }
                    seen.samples.push((step, now.saturating_sub(sent)));
                    drop(seen);
                    per_step[step as usize].fetch_add(1, Ordering::Relaxed);
                    last_recv[step as usize].fetch_max(now, Ordering::Relaxed);
                }
            };
            if let Err(e) = hold(c, ROOM.to_string(), stop, on_text).await {
                counts.broken.fetch_add(1, Ordering::Relaxed);
                counts.error(&e);
            }
        }));
    }
    let ok = wait_until(ctx.deadline(), || {
        counts.joined.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) >= receivers
    })
    .await;
    pb.finish();
    let joined = counts.joined.load(Ordering::Relaxed);
    if !ok || joined != receivers {
        rep.problem(format!(
            "{joined} of {receivers} receivers joined{}",
            counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
        let _ = stop_tx.send(true);
        return Ok(rep);
    }

    // The sender.
    let mut sender = join_retry(ctx, &node_of(0).endpoint(), 0, "sender", ROOM, false).await?;
    let mut refused = 0u64;
    let mut index = 0u64;
    let mut also_cpu_per_m: Vec<f64> = Vec::new();
    let mut best = 0.0f64;
    let steps_pb = ctx.bar(rates.len().min(MAX_STEPS) as u64, "steps");
    for (k, &rate) in rates.iter().enumerate().take(MAX_STEPS) {
        steps_pb.set_message(format!("{rate} msg/s × {receivers}"));
        let total = (rate * step_dur.as_secs_f64()).round().max(1.0) as u64;
        let (cpu0, extra0) = cpu_of(spec);
        let srv0 = server_fanout(spec).await;
        let first_send = now_ns();
        let t0 = Instant::now();
        let mut sent = 0u64;
        let refused0 = refused;
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        while sent < total {
            tokio::select! {
                _ = tick.tick() => {
                    let due = ((rate * t0.elapsed().as_secs_f64()).floor() as u64 + 1).min(total);
                    while sent < due {
                        let text = if exactly_once {
                            format!("S:{k}:{}:{index}{}", now_ns(), padding(kind))
                        } else {
                            format!("S:{k}:{}{}", now_ns(), padding(kind))
                        };
                        index += 1;
                        let frame = sender.broadcast_frame(ROOM, &text);
                        sender.ws.feed(Message::text(frame)).await?;
                        sent += 1;
                    }
                    sender.ws.flush().await?;
                }
                m = sender.ws.next() => refused += sender_frame(&mut sender, m).await?,
            }
        }
        // Drain: until every delivery arrived, or nothing moved for a second, or 10 s.
        let expected = sent * receivers as u64;
        let drain_end = Instant::now() + Duration::from_secs(10);
        let mut last_count = 0;
        let mut last_move = Instant::now();
        loop {
            let got = per_step[k].load(Ordering::Relaxed);
            if got >= expected || Instant::now() > drain_end || last_move.elapsed() > Duration::from_secs(1) {
                break;
            }
            if got != last_count {
                last_count = got;
                last_move = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                m = sender.ws.next() => refused += sender_frame(&mut sender, m).await?,
            }
        }
        let (cpu1, extra1) = cpu_of(spec);
        let srv = srv0.zip(server_fanout(spec).await).map(|(a, b)| b.since(&a));
        let mut lats: Vec<u64> = Vec::with_capacity(expected as usize);
        for s in &all_samples {
            let mut s = s.lock();
            lats.extend(s.samples.iter().filter(|(st, _)| *st == k as u32).map(|(_, l)| *l));
            s.samples.retain(|(st, _)| *st > k as u32);
        }
        lats.sort_unstable();
        let delivered = lats.len() as u64;
        let span = last_recv[k].load(Ordering::Relaxed).saturating_sub(first_send).max(1);
        let per_s = delivered as f64 / (span as f64 / 1e9);
        let ms = |ns: u64| ns as f64 / 1e6;
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) if delivered > 0 => (b - a).as_secs_f64() / (delivered as f64 / 1e6),
            _ => f64::NAN,
        };
        also_cpu_per_m.push(match (extra0, extra1) {
            (Some(a), Some(b)) if delivered > 0 => (b - a).as_secs_f64() / (delivered as f64 / 1e6),
            _ => f64::NAN,
        });
        let step = Step {
            offered_msgs_per_s: rate,
            sent,
            expected,
            delivered,
            delivered_per_s: per_s,
            p50_ms: ms(percentile(&lats, 50.0)),
            p95_ms: ms(percentile(&lats, 95.0)),
            p99_ms: ms(percentile(&lats, 99.0)),
            max_ms: ms(lats.last().copied().unwrap_or(0)),
            cpu_s_per_m: cpu,
            refused: refused - refused0,
            srv_p50_ms: srv.as_ref().and_then(|h| h.quantile_ms(0.5)),
            srv_p99_ms: srv.as_ref().and_then(|h| h.quantile_ms(0.99)),
        };
        steps_pb.inc(1);
        let saturated = step.p99_ms > 1000.0 || (k > 0 && per_s < best * 1.1) || delivered < expected;
        if k == 0 && delivered != expected {
            rep.problem(format!("at the lowest rate {delivered} of {expected} deliveries arrived"));
        }
        if step.refused > 0 {
            rep.problem(format!("the server refused {} broadcasts (rate limits)", step.refused));
        }
        best = best.max(per_s);
        rep.steps.push(step);
        if saturated {
            break;
        }
    }
    steps_pb.finish();
    if exactly_once {
        // Every message to every receiver, once: wait for stragglers (up to 10 s, or 2 s without
        // progress), then count.
        let expected = index * receivers as u64;
        let unique = || all_samples.iter().map(|s| s.lock().unique).sum::<u64>();
        let end = Instant::now() + Duration::from_secs(10);
        let (mut last, mut last_move) = (unique(), Instant::now());
        while last < expected && Instant::now() < end && last_move.elapsed() < Duration::from_secs(2) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                m = sender.ws.next() => {
                    if sender_frame(&mut sender, m).await? > 0 {
                        rep.problem("the server refused a broadcast (rate limits)");
                    }
                }
            }
            let now = unique();
            if now != last {
                (last, last_move) = (now, Instant::now());
            }
        }
        let dup: u64 = all_samples.iter().map(|s| s.lock().dup).sum();
        let lost = expected.saturating_sub(last);
        rep.metric("messages sent", index as f64, "");
        rep.metric("deliveries expected", expected as f64, "");
        rep.metric("deliveries lost", lost as f64, "");
        rep.metric("deliveries duplicated", dup as f64, "");
        if lost > 0 {
            rep.problem(format!("{lost} of {expected} deliveries never arrived"));
        }
        if dup > 0 {
            rep.problem(format!("{dup} deliveries arrived twice"));
        }
    }
    let _ = stop_tx.send(true);
    let _ = sender.ws.close(None).await;
    for t in tasks {
        let _ = t.await;
    }
    let broken = counts.broken.load(Ordering::Relaxed);
    if broken > 0 {
        rep.problem(format!(
            "{broken} receivers lost their connection{}",
            counts.first_error.lock().as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    // Headlines: the step with the most deliveries per second.
    let peak_at =
        rep.steps.iter().enumerate().max_by(|a, b| a.1.delivered_per_s.total_cmp(&b.1.delivered_per_s)).map(|(i, _)| i);
    if let Some(peak) = peak_at.map(|i| rep.steps[i].clone()) {
        rep.metric("receivers", receivers as f64, "");
        rep.metric("peak deliveries/s", peak.delivered_per_s, "1/s");
        rep.metric("offered at peak", peak.offered_msgs_per_s, "msg/s");
        rep.metric("p50 at peak", peak.p50_ms, "ms");
        rep.metric("p99 at peak", peak.p99_ms, "ms");
        rep.metric("server CPU per M deliveries at peak", peak.cpu_s_per_m, "s");
        if let (Some((name, _)), Some(i)) = (spec.also_cpu, peak_at) {
            rep.metric(&format!("{name} CPU per M deliveries at peak (in the server's)"), also_cpu_per_m[i], "s");
        }
    }
    Ok(rep)
}

/// Handle a frame the sender received; returns 1 for a refused broadcast.
async fn sender_frame(
    c: &mut Client,
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> anyhow::Result<u64> {
    match m {
        Some(Ok(Message::Text(t))) => {
            if c.keepalive(&t).await? {
                return Ok(0);
            }
            if c.kind == Kind::Parlor && t.starts_with("{\"t\":\"error\"") {
                return Ok(1);
            }
            if c.kind == Kind::Parlor && t.contains("\"error\"") {
                let f = parse(&t)?;
                return Ok(u64::from(f.t == "error"));
            }
            Ok(0)
        }
        Some(Ok(_)) => Ok(0),
        Some(Err(e)) => Err(anyhow::anyhow!("the sender lost its connection: {e}")),
        None => Err(anyhow::anyhow!("the sender's connection closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_seen_twice_is_a_duplicate() {
        let mut s = Seen::default();
        assert!(s.mark(0));
        assert!(s.mark(200));
        assert!(!s.mark(200));
        assert!(s.mark(63));
        assert_eq!((s.unique, s.dup), (3, 1));
    }
}
