//! A connection's bounded outbound queue.
//!
//! Frames are pushed by whoever produces them (the room fan-out, under the hub's lock) without
//! waiting; the connection's writer task drains the queue. When the bytes waiting exceed the
//! limit, the connection is cut with close code 4008 at once (ahead of the queue), so that one
//! slow reader never slows the room: it resumes and catches up from the logs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Close codes the server uses (§1), from the protocol crate.
pub use parlor_protocol::close_code;

/// What the writer does next.
#[derive(Debug)]
pub enum Out {
    /// Send a text frame.
    Text(Utf8Bytes),
    /// Send a close frame, then stop.
    Close(u16, String),
}

#[derive(Debug)]
struct Shared {
    queued: AtomicUsize,
    closed: AtomicBool,
    /// An abort is waiting in `abort` (checked per frame without taking the lock).
    aborted: AtomicBool,
    abort: Mutex<Option<(u16, String)>>,
    notify: Notify,
}

/// The producer side, cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    shared: Arc<Shared>,
    limit: usize,
    id: u64,
}

/// The writer side.
#[derive(Debug)]
pub struct OutboxReader {
    rx: mpsc::UnboundedReceiver<Out>,
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue holding at most `limit` bytes; `id` tells connections apart.
    pub fn new(limit: usize, id: u64) -> (Outbox, OutboxReader) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            abort: Mutex::new(None),
            notify: Notify::new(),
        });
        (Outbox { tx, shared: shared.clone(), limit, id }, OutboxReader { rx, shared })
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queue a frame. Returns false when the connection is closing (the frame is dropped: the
    /// logs still hold it for a resume).
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        if self.is_closed() {
            return false;
        }
        let len = frame.as_str().len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit {
            metrics::counter!("parlor_slow_consumer_total").increment(1);
            self.abort(close_code::SLOW_CONSUMER, "slow consumer");
            return false;
        }
        self.tx.send(Out::Text(frame)).is_ok()
    }

    /// Send a close frame after what is queued.
    pub fn close(&self, code: u16, reason: &str) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Out::Close(code, reason.to_string()));
            self.shared.notify.notify_waiters();
        }
    }

    /// Close at once, ahead of what is queued.
    pub fn abort(&self, code: u16, reason: &str) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            *self.shared.abort.lock() = Some((code, reason.to_string()));
            self.shared.aborted.store(true, Ordering::Release);
            self.shared.notify.notify_waiters();
            // Wake a writer waiting on an empty queue.
            let _ = self.tx.send(Out::Close(code, reason.to_string()));
        }
    }

    /// True once a close was asked for.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Wait until a close is asked for.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl OutboxReader {
    fn take_abort(&self) -> Option<Out> {
        if !self.shared.aborted.load(Ordering::Acquire) {
            return None;
        }
        self.shared.abort.lock().take().map(|(code, reason)| Out::Close(code, reason))
    }

    /// What is ready now without waiting: an abort first, else the next queued frame.
    pub fn try_next(&mut self) -> Option<Out> {
        if let Some(close) = self.take_abort() {
            return Some(close);
        }
        let out = self.rx.try_recv().ok()?;
        if let Out::Text(t) = &out {
            self.shared.queued.fetch_sub(t.as_str().len(), Ordering::AcqRel);
        }
        Some(out)
    }

    /// The next thing to do: an abort first, else the queue in order.
    pub async fn next(&mut self) -> Option<Out> {
        if let Some(close) = self.take_abort() {
            return Some(close);
        }
        let out = self.rx.recv().await?;
        if let Some(close) = self.take_abort() {
            return Some(close);
        }
        if let Out::Text(t) = &out {
            self.shared.queued.fetch_sub(t.as_str().len(), Ordering::AcqRel);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_aborts_ahead_of_the_queue() {
        let (out, mut rd) = Outbox::new(10, 1);
        assert!(out.send(Utf8Bytes::from("12345".to_string())));
        assert!(!out.send(Utf8Bytes::from("1234567".to_string())));
        assert!(out.is_closed());
        match rd.next().await {
            Some(Out::Close(code, _)) => assert_eq!(code, close_code::SLOW_CONSUMER),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_orderly_close_comes_after_the_queue() {
        let (out, mut rd) = Outbox::new(100, 1);
        assert!(out.send(Utf8Bytes::from("a".to_string())));
        out.close(close_code::POLICY, "bad hello");
        assert!(!out.send(Utf8Bytes::from("b".to_string())));
        assert!(matches!(rd.next().await, Some(Out::Text(t)) if t.as_str() == "a"));
        assert!(matches!(rd.next().await, Some(Out::Close(1008, _))));
    }
}
