//! The limits of a public server at its door (see `docs/operations.md`, "Limits"):
//! connections per IP address and new upgrades per second, both decided before the WebSocket
//! upgrade ([`crate::http`]: HTTP 429 and 503), and sessions per app, decided at `hello`
//! ([`crate::ws`]: `error` 1000005). The offline-session cap lives in the memory engine, which
//! owns the sessions.
//!
//! Each count is held by a guard that gives it back when dropped, so that no path out of a
//! connection (a refused upgrade, a panic-free early return, the end of the socket) can leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::retry_after::Tickets;

/// The door's counters of one node.
#[derive(Debug)]
pub struct Limits {
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    rate: u32,
    bucket: Mutex<Bucket>,
    max_per_app: usize,
    /// Per-app overrides of `max_per_app` (the config file's `[[app]] max_sessions`).
    app_max: HashMap<u32, usize>,
    per_app: Mutex<HashMap<u32, usize>>,
    /// Set by a drain: every upgrade is refused from then on.
    draining: AtomicBool,
    /// The queue in front of Redis (Redis engine only): a saturated node sheds upgrades.
    gate: std::sync::OnceLock<Arc<crate::engine::redis::gate::Gate>>,
    /// When clients refused for a saturated node, and for the rate, come back.
    saturated_tickets: Tickets,
    rate_tickets: Tickets,
}

/// Redis calls a node makes per admitted upgrade under a storm: a resume's ~2.1 measured
/// (`bench w4`, docs/benchmarks.md) and the ticks' share.
const CALLS_PER_ADMISSION: f64 = 3.0;

/// A token bucket of `rate` upgrades per second holding at most one second's worth.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

/// Why an upgrade is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections_per_ip` reached (HTTP 429).
    PerIp,
    /// `connection_rate` exceeded (HTTP 503).
    Rate,
    /// The node is draining (HTTP 503 with `Retry-After`; see [`crate::drain`]).
    Draining,
    /// The node's queue in front of Redis is saturated (HTTP 503 with `Retry-After`; see
    /// [`crate::engine::redis::gate`]).
    Saturated,
}

/// One connection counted against its IP address.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

/// One session counted against its app on this node.
#[derive(Debug)]
pub struct AppSlot {
    limits: Arc<Limits>,
    app: u32,
}

impl Limits {
    /// The limits `config` sets.
    pub fn new(config: &ServerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            max_per_ip: config.max_connections_per_ip,
            per_ip: Mutex::default(),
            rate: config.connection_rate,
            bucket: Mutex::new(Bucket { tokens: f64::from(config.connection_rate), at: None }),
            max_per_app: config.max_sessions_per_app,
            app_max: config.app_settings.iter().filter_map(|(app, s)| s.max_sessions.map(|max| (*app, max))).collect(),
            per_app: Mutex::default(),
            draining: AtomicBool::new(false),
            gate: std::sync::OnceLock::new(),
            saturated_tickets: Tickets::default(),
            rate_tickets: Tickets::default(),
        })
    }

    /// The `Retry-After` (whole seconds) of an upgrade refused for `why` (None: the answer
    /// carries none). A saturated node hands out slots at the pace its Redis work drains, none
    /// before its queue has drained; the rate, slots at the rate ([`crate::retry_after`]).
    pub fn retry_after_s(&self, why: Refused, now: Instant) -> Option<u64> {
        match why {
            Refused::PerIp => None,
            Refused::Draining => Some(1),
            Refused::Rate => Some(self.rate_tickets.give(now, f64::from(self.rate), std::time::Duration::ZERO)),
            Refused::Saturated => Some(match self.gate.get() {
                Some(g) => {
                    let per_s = (g.calls_per_s() / CALLS_PER_ADMISSION).max(1.0);
                    self.saturated_tickets.give(now, per_s, g.drain_time())
                }
                None => 1,
            }),
        }
    }

    /// Shed upgrades while `gate` is saturated.
    pub fn watch(&self, gate: Arc<crate::engine::redis::gate::Gate>) {
        let _ = self.gate.set(gate);
    }

    /// Close the door for good: `/readyz` answers 503 and every upgrade is refused.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once [`Limits::set_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Admit one WebSocket upgrade from `ip` (None: the address is not known, e.g. an in-memory
    /// transport; only the rate applies). The per-IP check comes first, so that an address over
    /// its limit does not spend the node's rate.
    pub fn admit_upgrade(self: &Arc<Self>, ip: Option<IpAddr>, now: Instant) -> Result<IpSlot, Refused> {
        if self.is_draining() {
            return Err(Refused::Draining);
        }
        // Before any work, and before the rate spends a token: the storm drains at the rate
        // Redis serves (clients back off on 503, §9.7).
        if self.gate.get().is_some_and(|g| g.saturated()) {
            return Err(Refused::Saturated);
        }
        let slot = match ip {
            Some(ip) if self.max_per_ip > 0 => {
                let mut per_ip = self.per_ip.lock();
                let n = per_ip.entry(ip).or_insert(0);
                if *n >= self.max_per_ip {
                    return Err(Refused::PerIp);
                }
                *n += 1;
                IpSlot { limits: self.clone(), ip: Some(ip) }
            }
            _ => IpSlot { limits: self.clone(), ip: None },
        };
        if self.rate > 0 && !self.take_token(now) {
            return Err(Refused::Rate); // `slot` drops here and gives its count back
        }
        Ok(slot)
    }

    fn take_token(&self, now: Instant) -> bool {
        let rate = f64::from(self.rate);
        let mut b = self.bucket.lock();
        if let Some(at) = b.at {
            b.tokens = (b.tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(rate);
        }
        b.at = Some(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Count a new session of `app` (a `hello`); None when the app is at its limit (its own
    /// `max_sessions` when the config file sets one, else `max_sessions_per_app`; 0: none).
    pub fn admit_session(self: &Arc<Self>, app: u32) -> Option<AppSlot> {
        let mut per_app = self.per_app.lock();
        let n = per_app.entry(app).or_insert(0);
        let max = self.app_max.get(&app).copied().unwrap_or(self.max_per_app);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(AppSlot { limits: self.clone(), app })
    }

    /// Count a resumed session of `app`: an existing session is never refused for the limit (a
    /// reconnection storm must not turn into lost sessions), but it counts.
    pub fn resumed_session(self: &Arc<Self>, app: u32) -> AppSlot {
        *self.per_app.lock().entry(app).or_insert(0) += 1;
        AppSlot { limits: self.clone(), app }
    }

    /// Connections open from `ip` (for tests and diagnostics).
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip.lock().get(&ip).copied().unwrap_or(0)
    }

    /// Sessions of `app` connected to this node.
    pub fn sessions_of(&self, app: u32) -> usize {
        self.per_app.lock().get(&app).copied().unwrap_or(0)
    }
}

fn give_back<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, usize>>, key: &K) {
    let mut map = map.lock();
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            give_back(&self.limits.per_ip, &ip);
        }
    }
}

impl Drop for AppSlot {
    fn drop(&mut self) {
        give_back(&self.limits.per_app, &self.app);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(per_ip: usize, rate: u32, per_app: usize) -> Arc<Limits> {
        let config = ServerConfig {
            max_connections_per_ip: per_ip,
            connection_rate: rate,
            max_sessions_per_app: per_app,
            ..ServerConfig::for_tests(1, "s")
        };
        Limits::new(&config)
    }

    #[test]
    fn per_ip_counts_open_connections_and_gives_them_back() {
        let l = limits(2, 0, 0);
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let now = Instant::now();
        let s1 = l.admit_upgrade(Some(a), now).unwrap();
        let _s2 = l.admit_upgrade(Some(a), now).unwrap();
        assert_eq!(l.admit_upgrade(Some(a), now).unwrap_err(), Refused::PerIp);
        assert!(l.admit_upgrade(Some(b), now).is_ok(), "another address has its own count");
        drop(s1);
        assert!(l.admit_upgrade(Some(a), now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_allows_one_second_of_burst_then_refills() {
        let l = limits(0, 5, 0);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(l.admit_upgrade(None, now).is_ok());
        }
        assert_eq!(l.admit_upgrade(None, now).unwrap_err(), Refused::Rate);
        let later = now + Duration::from_millis(400);
        assert!(l.admit_upgrade(None, later).is_ok(), "2 tokens back after 400 ms");
        assert!(l.admit_upgrade(None, later).is_ok());
        assert_eq!(l.admit_upgrade(None, later).unwrap_err(), Refused::Rate);
        let much_later = later + Duration::from_secs(3600);
        let admitted = (0..10).filter(|_| l.admit_upgrade(None, much_later).is_ok()).count();
        assert_eq!(admitted, 5, "the bucket holds one second's worth, no more");
    }

    #[test]
    fn a_refused_rate_gives_the_ip_count_back() {
        let l = limits(10, 1, 0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let now = Instant::now();
        let _s = l.admit_upgrade(Some(ip), now).unwrap();
        assert_eq!(l.admit_upgrade(Some(ip), now).unwrap_err(), Refused::Rate);
        assert_eq!(l.connections_from(ip), 1);
    }

    #[test]
    fn sessions_per_app() {
        let l = limits(0, 0, 1);
        let s = l.admit_session(7).unwrap();
        assert!(l.admit_session(7).is_none());
        assert!(l.admit_session(8).is_some(), "apps are counted apart");
        let r = l.resumed_session(7);
        assert_eq!(l.sessions_of(7), 2, "a resume is never refused, but counts");
        drop((s, r));
        assert_eq!(l.sessions_of(7), 0);
        assert!(l.admit_session(7).is_some());
    }

    #[test]
    fn an_apps_own_max_sessions_overrides_the_node_wide_one() {
        let mut config = ServerConfig { max_sessions_per_app: 1, ..ServerConfig::for_tests(1, "s") };
        config.app_settings.insert(7, crate::config::AppSettings { max_sessions: Some(3), ..Default::default() });
        config.app_settings.insert(8, crate::config::AppSettings { max_sessions: Some(0), ..Default::default() });
        let l = Limits::new(&config);
        let seven: Vec<_> = (0..3).map(|_| l.admit_session(7).expect("app 7 may have 3")).collect();
        assert!(l.admit_session(7).is_none());
        let _one = l.admit_session(9).expect("others have the node-wide 1");
        assert!(l.admit_session(9).is_none());
        let eight: Vec<_> = (0..5).map(|_| l.admit_session(8).expect("0: no limit for app 8")).collect();
        drop((seven, eight));
    }

    #[test]
    fn a_draining_node_refuses_every_upgrade() {
        let l = limits(0, 0, 0);
        assert!(l.admit_upgrade(None, Instant::now()).is_ok());
        l.set_draining();
        assert!(l.is_draining());
        assert_eq!(l.admit_upgrade(None, Instant::now()).unwrap_err(), Refused::Draining);
    }
}
