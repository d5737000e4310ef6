//! The memory engine's webhook sink: a bounded queue per app and one delivery task per app that
//! sends its events one after the other, in the order the engine emitted them.
//!
//! Emitting is a `try_send` under the engine's lock: it never waits. A full queue drops the event
//! and counts it (`parlor_webhook_dead_letters_total{why="queue_full"}`): a slow or dead receiver
//! costs memory up to the bound, never a room's time. The body is built by the delivery task,
//! not under the lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::deliver::{endpoints, Endpoint, Sender};
use super::{Counters, HookEvent, Hooks, NoHooks};
use crate::clock::Clock;
use crate::config::ServerConfig;

struct Queued {
    id: String,
    time_ms: u64,
    event: HookEvent,
}

struct AppQueue {
    tx: mpsc::Sender<Queued>,
    len: Arc<AtomicUsize>,
}

/// The in-process webhook queues.
pub struct Queues {
    clock: Clock,
    counters: Arc<Counters>,
    apps: HashMap<u32, AppQueue>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").field("apps", &self.apps.len()).finish()
    }
}

fn gauge(app: u32, len: usize) {
    metrics::gauge!("parlor_webhook_queue", "app" => app.to_string()).set(len as f64);
}

/// The sink for `config`: [`NoHooks`] when no app has a webhook URL (or there is no runtime to
/// deliver on), else a queue and a delivery task per app with URLs.
pub fn start(config: &ServerConfig, clock: Clock, counters: Arc<Counters>) -> Arc<dyn Hooks> {
    let eps = endpoints(config);
    if eps.is_empty() {
        return Arc::new(NoHooks);
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::error!("webhooks configured but no runtime to deliver them on: they are off");
        return Arc::new(NoHooks);
    };
    let sender = match Sender::new(&config.webhook, counters.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client: webhooks are off");
            return Arc::new(NoHooks);
        }
    };
    let mut apps = HashMap::new();
    for (app, ep) in eps {
        let (tx, rx) = mpsc::channel(config.webhook.queue.max(1));
        let len = Arc::new(AtomicUsize::new(0));
        gauge(app, 0);
        rt.spawn(run(app, ep, sender.clone(), rx, len.clone()));
        apps.insert(app, AppQueue { tx, len });
    }
    Arc::new(Queues { clock, counters, apps })
}

/// One app's delivery task: until the sink is dropped.
async fn run(app: u32, ep: Endpoint, sender: Sender, mut rx: mpsc::Receiver<Queued>, len: Arc<AtomicUsize>) {
    while let Some(q) = rx.recv().await {
        gauge(app, len.fetch_sub(1, Ordering::Relaxed).saturating_sub(1));
        let body = q.event.body(&q.id, app, q.time_ms);
        sender.send(app, &ep, &body).await;
    }
}

impl Hooks for Queues {
    fn wants(&self, app: u32) -> bool {
        self.apps.contains_key(&app)
    }

    fn emit(&self, app: u32, now: Instant, event: HookEvent) {
        let Some(q) = self.apps.get(&app) else {
            return;
        };
        let queued = Queued { id: super::event_id(), time_ms: self.clock.wall_ms(now), event };
        // Counted before the push, so that the task's decrement never comes first.
        let len = q.len.fetch_add(1, Ordering::Relaxed) + 1;
        match q.tx.try_send(queued) {
            Ok(()) => gauge(app, len),
            Err(e) => {
                q.len.fetch_sub(1, Ordering::Relaxed);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "queue_full",
                    mpsc::error::TrySendError::Closed(_) => "stopped",
                };
                metrics::counter!("parlor_webhook_dead_letters_total", "app" => app.to_string(), "why" => why)
                    .increment(1);
                Counters::add(&self.counters.dropped);
                tracing::warn!(app, why, "webhook event dropped (dead letter)");
            }
        }
    }
}
