//! A schedule: everything that happens in one simulated run, drawn from one `u64` seed.
//!
//! Clients `c0…` (one of them a twin: a second client of `c0`'s user, for duplicate logins) in
//! rooms `r0…r2` call every app command, while their links are cut, black-holed, delayed and
//! refused, the admin kicks people and the server restarts. Faults come with their heal: a
//! short one (≤ 45 s) never makes a session go offline; a long one (≥ 100 s) always does, so
//! the presence check knows which removals are legitimate. After a fault the link stays healthy
//! for at least 25 s (two backoff caps and a connect), so outages never join up by accident.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The rooms of every schedule.
pub const ROOMS: [&str; 3] = ["r0", "r1", "r2"];

/// One thing that happens. `c` is a client's index, `room` (`from`, `to`) an index in
/// [`ROOMS`].
#[allow(missing_docs)] // the fields are named for what they are, as above
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Client `c` logs in to a room; `ttl_s` is its token's lifetime (short ones expire).
    Login { c: usize, room: usize, ttl_s: u64 },
    /// Client `c` logs out of a room.
    Logout { c: usize, room: usize },
    /// Client `c` switches rooms.
    Switch { c: usize, from: usize, to: usize },
    /// Client `c` publishes a new stream in a room.
    Publish { c: usize, room: usize },
    /// Client `c` stops the `k`-th of its published streams (modulo how many).
    Unpublish { c: usize, k: usize },
    /// Client `c` sets the extra info of the `k`-th of its streams.
    StreamExtra { c: usize, k: usize },
    /// Client `c` sets a room extra info key.
    RoomExtra { c: usize, room: usize, key: usize },
    /// Client `c` broadcasts (or sends a barrage) in a room.
    Message { c: usize, room: usize, barrage: bool },
    /// Client `c` sends a custom command to one client's user, or (None) to everyone.
    Command { c: usize, room: usize, to: Option<usize> },
    /// Client `c` renews its token (a long one).
    Renew { c: usize },
    /// The admin kicks client `c`'s user out of a room.
    Kick { c: usize, room: usize },
    /// Client `c`'s connections are cut (new ones open at once).
    Cut { c: usize },
    /// Client `c`'s path goes silent until its heal.
    BlackHole { c: usize },
    /// Client `c` loses the network (cut, new connections refused) until its heal.
    Refuse { c: usize },
    /// Client `c`'s path gets slow until its heal.
    Delay { c: usize, ms: u64 },
    /// Client `c`'s path is healthy again.
    Heal { c: usize },
    /// The server restarts and forgets everything (memory engine).
    Restart,
    /// Redis engine: node `n`'s path to Redis gets slow (every chunk `ms` later) until its heal.
    RedisDelay { n: usize, ms: u64 },
    /// Redis engine: node `n`'s path to Redis goes silent (calls stall, then time out) until
    /// its heal, which delivers what was held back.
    RedisStall { n: usize },
    /// Redis engine: node `n`'s connections to Redis are reset (it reconnects at once).
    RedisCut { n: usize },
    /// Redis engine: node `n`'s path to Redis is healthy again.
    RedisHeal { n: usize },
    /// Redis engine: node `n` dies (its connections end, its Redis connections are reset) and a
    /// new node takes its clients (they resume there).
    Kill { n: usize },
}

/// When a fault of one client began and ended (ms of simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The client.
    pub c: usize,
    /// From…
    pub from_ms: u64,
    /// …to (its heal).
    pub to_ms: u64,
}

/// Everything one seed says.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed it came from.
    pub seed: u64,
    /// How many clients; the last one is the twin of client 0 (same user).
    pub clients: usize,
    /// How many server nodes (1 on the memory engine); client `c` is served by node
    /// `c % nodes`.
    pub nodes: usize,
    /// Steps at ms of simulated time, in time order.
    pub steps: Vec<(u64, Action)>,
    /// Black holes and lost networks (the faults during which nothing flows).
    pub outages: Vec<Outage>,
    /// When the last step happens.
    pub end_ms: u64,
}

impl Schedule {
    /// The user id of client `c` (the twin shares client 0's).
    pub fn user(&self, c: usize) -> String {
        if c == self.clients - 1 {
            "u0".to_string()
        } else {
            format!("u{c}")
        }
    }

    /// Draw the schedule of `seed` for the memory engine; `restarts` allows server restarts.
    pub fn generate(seed: u64, restarts: bool) -> Schedule {
        Schedule::draw(seed, restarts, None)
    }

    /// Draw the schedule of `seed` for the Redis engine: 2–3 nodes sharing one Redis, fewer
    /// steps (each simulated second costs real time there), Redis faults of each node's path
    /// and node kills instead of restarts.
    pub fn generate_redis(seed: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_4ed1);
        let nodes = rng.random_range(2..=3);
        Schedule::draw(seed, false, Some((nodes, rng)))
    }

    fn draw(seed: u64, restarts: bool, redis: Option<(usize, StdRng)>) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let clients = rng.random_range(3..=4) + 1;
        let n_steps = rng.random_range(20..45);
        // The Redis schedules: their own draws, so that the memory engine's schedules stay
        // what they were for every seed.
        let nodes = redis.as_ref().map_or(1, |r| r.0);
        let (gap_ms, long_p) = if redis.is_some() { (2_000, 0.08) } else { (5_000, 0.15) };
        let mut redis_rng = redis.map(|r| r.1);
        let mut node_healthy_from = vec![0u64; nodes];
        let mut steps = Vec::new();
        let mut outages = Vec::new();
        let mut healthy_from = vec![0u64; clients];
        let mut t = 0u64;
        // Everyone starts in some room, so that there is someone to talk to.
        for c in 0..clients - 1 {
            let room = rng.random_range(0..ROOMS.len());
            steps.push((t, Action::Login { c, room, ttl_s: 3600 }));
            t += rng.random_range(0..300);
        }
        for _ in 0..n_steps {
            t += rng.random_range(0..gap_ms);
            if let Some(r) = redis_rng.as_mut() {
                if r.random_bool(0.25) {
                    let n = r.random_range(0..nodes);
                    if t < node_healthy_from[n] {
                        continue;
                    }
                    let action = match r.random_range(0..100) {
                        0..=29 => Action::RedisDelay { n, ms: r.random_range(5..300) },
                        30..=64 => Action::RedisStall { n },
                        65..=79 => Action::RedisCut { n },
                        _ => Action::Kill { n },
                    };
                    let lasting = match action {
                        Action::RedisDelay { .. } => r.random_range(1_000..20_000),
                        Action::RedisStall { .. } => r.random_range(200..6_000),
                        _ => 0,
                    };
                    if lasting > 0 {
                        steps.push((t + lasting, Action::RedisHeal { n }));
                    }
                    node_healthy_from[n] = t + lasting + 5_000;
                    steps.push((t, action));
                    continue;
                }
            }
            let c = rng.random_range(0..clients);
            let room = rng.random_range(0..ROOMS.len());
            let action = match rng.random_range(0..100) {
                0..=11 => {
                    let ttl_s = if rng.random_bool(0.15) { rng.random_range(35..90) } else { 3600 };
                    Action::Login { c, room, ttl_s }
                }
                12..=16 => Action::Logout { c, room },
                17..=20 => Action::Switch { c, from: room, to: rng.random_range(0..ROOMS.len()) },
                21..=28 => Action::Publish { c, room },
                29..=32 => Action::Unpublish { c, k: rng.random_range(0..4) },
                33..=36 => Action::StreamExtra { c, k: rng.random_range(0..4) },
                37..=42 => Action::RoomExtra { c, room, key: rng.random_range(0..3) },
                43..=57 => Action::Message { c, room, barrage: rng.random_bool(0.3) },
                58..=64 => {
                    let to = if rng.random_bool(0.5) { Some(rng.random_range(0..clients)) } else { None };
                    Action::Command { c, room, to }
                }
                65..=67 => Action::Renew { c },
                68..=70 => Action::Kick { c, room },
                71..=74 => Action::Cut { c },
                75..=97 => {
                    if t < healthy_from[c] {
                        continue;
                    }
                    let long = rng.random_bool(long_p);
                    let lasting =
                        if long { rng.random_range(100_000..115_000) } else { rng.random_range(1_000..45_000) };
                    let action = match rng.random_range(0..3) {
                        0 => Action::BlackHole { c },
                        1 => Action::Refuse { c },
                        _ => Action::Delay { c, ms: rng.random_range(20..1_500) },
                    };
                    if !matches!(action, Action::Delay { .. }) {
                        outages.push(Outage { c, from_ms: t, to_ms: t + lasting });
                    }
                    steps.push((t + lasting, Action::Heal { c }));
                    healthy_from[c] = t + lasting + 25_000;
                    action
                }
                _ => {
                    if !restarts {
                        continue;
                    }
                    Action::Restart
                }
            };
            steps.push((t, action));
        }
        steps.sort_by_key(|(at, _)| *at);
        let end_ms = steps.last().map_or(0, |(at, _)| *at);
        Schedule { seed, clients, nodes, steps, outages, end_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_schedule() {
        let a = Schedule::generate(7, true);
        let b = Schedule::generate(7, true);
        assert_eq!(a.steps, b.steps);
        assert_ne!(a.steps, Schedule::generate(8, true).steps);
    }

    #[test]
    fn every_fault_is_healed() {
        for seed in 0..200 {
            let s = Schedule::generate(seed, true);
            for c in 0..s.clients {
                let faults = s.steps.iter().filter(|(_, a)| is_fault_of(a, c)).count();
                let heals = s.steps.iter().filter(|(_, a)| *a == Action::Heal { c }).count();
                assert_eq!(faults, heals, "seed {seed} client {c}");
            }
        }
    }

    #[test]
    fn redis_schedules_heal_every_redis_fault_and_keep_the_memory_ones() {
        for seed in 0..200 {
            let s = Schedule::generate_redis(seed);
            assert!((2..=3).contains(&s.nodes), "seed {seed}");
            for n in 0..s.nodes {
                let faults = s
                    .steps
                    .iter()
                    .filter(
                        |(_, a)| matches!(a, Action::RedisDelay { n: x, .. } | Action::RedisStall { n: x } if *x == n),
                    )
                    .count();
                let heals = s.steps.iter().filter(|(_, a)| *a == Action::RedisHeal { n }).count();
                assert_eq!(faults, heals, "seed {seed} node {n}");
            }
            let m = Schedule::generate(seed, true);
            assert!(m.nodes == 1 && !m.steps.iter().any(|(_, a)| matches!(a, Action::Kill { .. })));
        }
    }

    fn is_fault_of(a: &Action, c: usize) -> bool {
        matches!(a, Action::BlackHole { c: x } | Action::Refuse { c: x } | Action::Delay { c: x, .. } if *x == c)
    }
}
