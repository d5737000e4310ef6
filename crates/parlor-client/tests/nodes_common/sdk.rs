//! A Rust SDK client that records what it reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use parlor_client::{Engine, Event, RoomConfig, RoomStateReason, UpdateType, User};
use parlor_protocol::ErrorCode;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;

/// A Rust SDK engine and everything it reported, with when (collected by a task).
pub struct Sdk {
    pub engine: Arc<Engine>,
    pub user: User,
    pub log: Arc<Mutex<Vec<(Instant, Event)>>>,
    task: JoinHandle<()>,
}

impl Sdk {
    pub fn new(url: &str, user: &str) -> Sdk {
        let engine = Arc::new(Engine::new(APP, url));
        let mut events = engine.events().expect("first call");
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                l.lock().unwrap().push((Instant::now(), e));
            }
        });
        Sdk { engine, user: User { id: user.into(), name: format!("{user} name") }, log, task }
    }

    pub async fn login(&self, room: &str) {
        tokio::time::timeout(
            secs(10),
            self.engine.login_room(room, self.user.clone(), token(&self.user.id), RoomConfig::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: login {room} timed out", self.user.id))
        .unwrap_or_else(|e| panic!("{}: login {room}: {e}", self.user.id));
    }

    pub fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Poll (every 20 ms, up to `limit`) until `f` over the log says yes.
    pub async fn wait_until<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        // `f` looks through this client's methods: the log is not locked while it runs.
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                let log = self.log.lock().unwrap();
                let tail: Vec<_> = log.iter().rev().take(15).rev().map(|(_, e)| e).collect();
                panic!("{}: no {what} within {limit:?}; last events: {tail:#?}", self.user.id);
            }
            tokio::time::sleep(ms(20)).await;
        }
    }

    /// The room states reported from index `from`, with when.
    pub fn states_since(&self, from: usize) -> Vec<(Instant, RoomStateReason, u32)> {
        self.log.lock().unwrap()[from..]
            .iter()
            .filter_map(|(t, e)| match e {
                Event::RoomStateChanged { reason, error_code, .. } => {
                    Some((*t, *reason, error_code.map_or(0, ErrorCode::code)))
                }
                _ => None,
            })
            .collect()
    }

    /// User and stream updates from index `from`, as text.
    pub fn changes_since(&self, from: usize) -> Vec<String> {
        self.log.lock().unwrap()[from..].iter().filter_map(|(_, e)| changes::describe(e)).collect()
    }

    /// The users this client knows in a room, built from its updates alone (as an app would).
    pub fn known_users(&self) -> Vec<String> {
        let mut set = std::collections::BTreeSet::new();
        for (_, e) in self.log.lock().unwrap().iter() {
            if let Event::RoomUserUpdate { update_type, users, .. } = e {
                for u in users {
                    match update_type {
                        UpdateType::Add => set.insert(u.id.clone()),
                        UpdateType::Delete => set.remove(&u.id),
                    };
                }
            }
        }
        set.into_iter().collect()
    }

    /// The streams this client knows, built from its updates alone.
    pub fn known_streams(&self) -> Vec<String> {
        let mut set = std::collections::BTreeSet::new();
        for (_, e) in self.log.lock().unwrap().iter() {
            if let Event::RoomStreamUpdate { update_type, streams, .. } = e {
                for s in streams {
                    match update_type {
                        UpdateType::Add => set.insert(s.id.clone()),
                        UpdateType::Delete => set.remove(&s.id),
                    };
                }
            }
        }
        set.into_iter().collect()
    }

    /// The broadcast texts received from `user`, in order.
    pub fn messages_from(&self, user: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::BroadcastMessage { from, message, .. } if from.id == user => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every client broadcasts `m` numbered messages (`<user>-<k>`), one every ~100 ms, each
/// answered within 20 s or its sender stops; each task returns every send's outcome (the
/// message id, or why not).
pub fn broadcast_numbered(
    clients: &[Sdk],
    room: &'static str,
    m: usize,
) -> Vec<JoinHandle<Vec<Result<String, String>>>> {
    let mut senders = Vec::new();
    for cl in clients {
        let engine = Arc::clone(&cl.engine);
        let me = cl.user.id.clone();
        senders.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for k in 0..m {
                let next = Instant::now() + ms(100);
                let sent =
                    tokio::time::timeout(secs(20), engine.send_broadcast_message(room, format!("{me}-{k}"))).await;
                let timed_out = sent.is_err();
                results.push(
                    sent.map_err(|_| "no answer within 20 s".to_string()).and_then(|r| r.map_err(|e| e.to_string())),
                );
                if timed_out {
                    break;
                }
                tokio::time::sleep_until(next).await;
            }
            results
        }));
    }
    senders
}
