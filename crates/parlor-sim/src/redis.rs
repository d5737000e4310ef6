//! The Redis engine under seeded faults: a real `redis-server` (loopback, free port, `--save ""`)
//! shared by two or three in-process nodes (`Node` + `RedisEngine`, as `parlor serve --redis`
//! builds them), each reaching Redis through its own [`FaultProxy`], which the schedule delays,
//! stalls (black-holes, then heals: what was held back is delivered) and cuts. A killed node's
//! connections end with no close frame, its Redis connections are reset mid-call, and a new node
//! takes its clients' links (they resume there, on the state in Redis).
//!
//! **Time.** A real Redis answers in real time, so tokio's paused clock cannot auto-advance
//! (it would jump past every Redis call's 1 s timeout while the answer is on its way). The run
//! is on the paused clock with auto-advance held off (a blocking task inhibits it), and a pacer
//! moves simulated time by [`STEP`] every [`REAL_PER_STEP`] of real time: the whole simulation
//! runs [`SPEED`]× faster than real time, and a Redis call of a few real milliseconds looks
//! [`SPEED`]× as long to the nodes (still far below their 1 s timeout). A busy box slows the
//! pacer with everything else. The timing of Redis answers is real, so a replay runs the same
//! schedule but not always the same interleaving.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parlor_server::clock::Clock;
use parlor_server::memory::{Link, MemoryServer};
use parlor_server::{Node, ServerConfig};
use parlor_testkit::{FaultProxy, RedisServer};
use tokio::time::Instant;

use crate::schedule::Action;

/// Simulated time moved per pacer beat.
pub const STEP: Duration = Duration::from_millis(20);
/// Real time between pacer beats.
pub const REAL_PER_STEP: Duration = Duration::from_micros(500);
/// How much faster than real time the simulation runs.
pub const SPEED: u32 = 40;

/// Run `f` on a current-thread runtime whose paused clock moves only by the pacer (see the
/// module docs), with I/O enabled.
pub fn run_paced<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("a runtime");
    rt.block_on(async {
        // While a blocking task exists, tokio's paused clock does not auto-advance.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let inhibitor = tokio::task::spawn_blocking(move || {
            let _ = held.recv();
        });
        let beat = Arc::new(tokio::sync::Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let pacer = {
            let (beat, stop) = (beat.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(REAL_PER_STEP);
                    // One stored permit at most: a runtime that falls behind slows the clock.
                    beat.notify_one();
                }
            })
        };
        let clock = tokio::spawn(async move {
            loop {
                beat.notified().await;
                tokio::time::advance(STEP).await;
            }
        });
        let out = f.await;
        clock.abort();
        stop.store(true, Ordering::Relaxed);
        drop(hold);
        let _ = inhibitor.await;
        let _ = pacer.join();
        out
    })
}

/// One node: its front door (links served as by the memory server) and its path to Redis.
struct SimNode {
    door: MemoryServer,
    proxy: FaultProxy,
    /// Killed and replaced this many times.
    generation: u32,
    /// Its path to Redis is faulty now.
    faulty: bool,
}

/// The nodes of one run and their Redis.
pub struct Cluster {
    redis: RedisServer,
    config: ServerConfig,
    /// The instant the shared wall clock reads `wall_ms` at.
    wall: (Instant, u64),
    nodes: Vec<SimNode>,
}

impl Cluster {
    /// Start `redis` (already running) behind `n` nodes of `config`, their wall clock reading
    /// `wall_ms` now.
    pub async fn start(redis: RedisServer, config: ServerConfig, n: usize, wall_ms: u64) -> Cluster {
        let mut c = Cluster { redis, config, wall: (Instant::now(), wall_ms), nodes: Vec::new() };
        for i in 0..n {
            let (node, proxy) = c.new_node(i, 0).await;
            c.nodes.push(SimNode { door: MemoryServer::serving(node), proxy, generation: 0, faulty: false });
        }
        c
    }

    async fn new_node(&self, i: usize, generation: u32) -> (Arc<Node>, FaultProxy) {
        let proxy = FaultProxy::start(self.redis.addr()).expect("a fault proxy");
        let config = ServerConfig {
            redis: vec![format!("redis://{}", proxy.addr())],
            node_id: format!("n{i}.{generation}"),
            ..self.config.clone()
        };
        let clock = Clock::starting_at(self.wall.1 + self.wall.0.elapsed().as_millis() as u64);
        let node = Node::redis_with_clock(config, clock).await.unwrap_or_else(|e| panic!("a Redis node: {e}"));
        (Arc::new(node), proxy)
    }

    /// A new path to node `i`.
    pub fn link(&self, i: usize) -> Link {
        self.nodes[i].door.link()
    }

    /// The nodes to ask for the shared state, those with a healthy path to Redis first.
    pub fn admin_nodes(&self) -> Vec<Arc<Node>> {
        let mut order: Vec<&SimNode> = self.nodes.iter().collect();
        order.sort_by_key(|n| n.faulty);
        order.into_iter().map(|n| n.door.node()).collect()
    }

    /// The node to make an admin call through (one with a healthy path to Redis, if any), and
    /// its index.
    pub fn admin_node(&self) -> (usize, Arc<Node>) {
        let i = self.nodes.iter().position(|n| !n.faulty).unwrap_or(0);
        (i, self.nodes[i].door.node())
    }

    /// Apply a Redis fault, heal or kill of the schedule.
    pub async fn apply(&mut self, action: &Action) {
        match *action {
            Action::RedisDelay { n, ms } => {
                self.nodes[n].proxy.set_delay(Duration::from_millis(ms));
                self.nodes[n].faulty = true;
            }
            Action::RedisStall { n } => {
                self.nodes[n].proxy.black_hole();
                self.nodes[n].faulty = true;
            }
            Action::RedisCut { n } => self.nodes[n].proxy.cut(),
            Action::RedisHeal { n } => {
                self.nodes[n].proxy.heal();
                self.nodes[n].faulty = false;
            }
            Action::Kill { n } => {
                // The process dies: its Redis connections reset (a script sent may have run),
                // its clients' connections end; then a new node serves their links.
                self.nodes[n].proxy.stop();
                let generation = self.nodes[n].generation + 1;
                let (node, proxy) = self.new_node(n, generation).await;
                let old = std::mem::replace(&mut self.nodes[n].proxy, proxy);
                drop(old);
                self.nodes[n].door.replace(node);
                self.nodes[n].generation = generation;
                self.nodes[n].faulty = false;
            }
            _ => {}
        }
    }

    /// Every path to Redis healthy.
    pub fn heal_all(&mut self) {
        for n in &mut self.nodes {
            n.proxy.heal();
            n.faulty = false;
        }
    }
}
