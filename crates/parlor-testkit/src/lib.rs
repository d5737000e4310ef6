//! Test helpers for Parlor.
//!
//! Everything here runs on loopback and is meant for tests and benchmarks, never for production:
//!
//! - [`FaultProxy`] sits between clients and a server and breaks the network on command
//!   (cut, black-hole, delay, refuse), so reconnection and resume can be tested without a real
//!   bad network. It keeps time with `tokio::time`, so it also works under tokio's paused clock.
//! - [`server`] is the reserved place for a helper that starts a Parlor server on port 0.
//! - [`procs`] runs real processes for multi-process tests — [`RedisServer`], [`RedisCluster`]
//!   (optionally with replicas), [`RedisSentinel`], [`Haproxy`] (from `deploy/haproxy/parlor.cfg`)
//!   and `parlor serve` [`Node`]s — each on a free loopback port, waited for with a deadline and
//!   killed on drop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fault_proxy;
pub mod procs;
pub mod server;
pub mod tls;

pub use fault_proxy::FaultProxy;
pub use procs::{bin_path, free_port, Haproxy, Node, RedisCluster, RedisSentinel, RedisServer};
