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
use crate::{hold, join_retry, now_ns, wait_until, Counts, Ctx};

const ROOM: &str = "w2";

/// What a delivery costs depends on its size, so every target delivers frames of the same size:
/// a Parlor broadcast `event` carries about 150 bytes of fields around the message text
/// (`{"t":"event","room":"w2","ch":"room","seq":…,"kind":"broadcast","message_id":"…",
/// "from":{…},"message":"…","time_ms":…}`); the other targets' messages are padded to match
/// (Socket.IO wraps the text in 12 bytes of its own, the bare server in none).
fn padding(kind: Kind) -> &'static str {
    const PAD: &str = ":pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";
    match kind {
        Kind::Parlor => "",
        Kind::Socketio => &PAD[..138],
        Kind::Bare => &PAD[..150],
    }
}
const MAX_STEPS: usize = 32;

/// Latency samples of one receiver: (step, ns).
type Samples = Arc<Mutex<Vec<(u32, u64)>>>;

/// Run W2.
pub async fn run(ctx: &Ctx, target: &Target, members: usize) -> anyhow::Result<Report> {
    let members = members.max(2);
    let receivers = members - 1;
    let mut rep = Report::new("w2", target.kind.name(), members);
    let rates: Vec<f64> = if !ctx.args.rates.is_empty() {
        ctx.args.rates.clone()
    } else if ctx.args.quick {
        vec![20.0, 50.0, 100.0]
    } else {
        vec![2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0]
    };
    let step_dur = Duration::from_secs_f64(ctx.args.step_secs.unwrap_or(if ctx.args.quick { 1.5 } else { 5.0 }));

    // The receivers.
    let pb = ctx.bar(receivers as u64, "members");
    let counts = Arc::new(Counts::default());
    let per_step: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_STEPS).map(|_| AtomicU64::new(0)).collect());
    let last_recv: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_STEPS).map(|_| AtomicU64::new(0)).collect());
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut all_samples: Vec<Samples> = Vec::with_capacity(receivers);
    let mut tasks = Vec::with_capacity(receivers);
    let kind = target.kind;
    for i in 0..receivers {
        let samples: Samples = Arc::default();
        all_samples.push(samples.clone());
        let (ctx2, counts, sem, stop, pb, ep) =
            (ctx.clone(), counts.clone(), sem.clone(), stop_rx.clone(), pb.clone(), target.endpoint());
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
                // "S:<step>:<send ns>"
                let mut it = msg.split(':').skip(1);
                let (Some(step), Some(sent)) = (it.next(), it.next()) else { return };
                let (Ok(step), Ok(sent)) = (step.parse::<u32>(), sent.parse::<u64>()) else { return };
                if (step as usize) < MAX_STEPS {
                    samples.lock().push((step, now.saturating_sub(sent)));
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
    let mut sender = join_retry(ctx, &target.endpoint(), 0, "sender", ROOM, false).await?;
    let mut refused = 0u64;
    let mut best = 0.0f64;
    let steps_pb = ctx.bar(rates.len().min(MAX_STEPS) as u64, "steps");
    for (k, &rate) in rates.iter().enumerate().take(MAX_STEPS) {
        steps_pb.set_message(format!("{rate} msg/s × {receivers}"));
        let total = (rate * step_dur.as_secs_f64()).round().max(1.0) as u64;
        let cpu0 = target.cpu();
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
                        let text = format!("S:{k}:{}{}", now_ns(), padding(kind));
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
        let cpu1 = target.cpu();
        let mut lats: Vec<u64> = Vec::with_capacity(expected as usize);
        for s in &all_samples {
            let mut s = s.lock();
            lats.extend(s.iter().filter(|(st, _)| *st == k as u32).map(|(_, l)| *l));
            s.retain(|(st, _)| *st > k as u32);
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
    if let Some(peak) = rep.steps.iter().max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s)).cloned() {
        rep.metric("receivers", receivers as f64, "");
        rep.metric("peak deliveries/s", peak.delivered_per_s, "1/s");
        rep.metric("offered at peak", peak.offered_msgs_per_s, "msg/s");
        rep.metric("p50 at peak", peak.p50_ms, "ms");
        rep.metric("p99 at peak", peak.p99_ms, "ms");
        rep.metric("server CPU per M deliveries at peak", peak.cpu_s_per_m, "s");
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
