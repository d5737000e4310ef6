//! Tests of the multi-process helpers against the real programs: Debian's `redis-server` and
//! `redis-cli`.
//!
//! A missing program makes these tests fail, never pass: the multi-node tests built on these
//! helpers must not silently stop running. `scripts/test.sh` installs the programs.
//!
//! Waits are bounded polls; no test sleeps to let something happen.

use std::io;
use std::time::Duration;

use parlor_testkit::procs::resp::{Conn, Reply};
use parlor_testkit::{RedisCluster, RedisServer};

const IO: Duration = Duration::from_secs(5);

#[test]
fn redis_answers_set_and_get() {
    let redis = RedisServer::start();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.cmd(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(redis.cmd(&["GET", "greeting"]), "hello world");
    assert_eq!(redis.cmd(&["GET", "missing"]), "(nil)");
    assert_eq!(redis.cmd(&["INCR", "n"]), "1");
    // Nothing is persisted: the RDB snapshots are off.
    assert_eq!(redis.cmd(&["CONFIG", "GET", "save"]), "save\n");
    assert_eq!(redis.cmd(&["CONFIG", "GET", "appendonly"]), "appendonly\nno");
    redis.flushall();
    assert_eq!(redis.cmd(&["DBSIZE"]), "0");
}

#[test]
fn a_paused_redis_does_not_answer_until_resumed() {
    let redis = RedisServer::start();
    redis.pause();
    let err = redis.try_cmd(&["PING"], Duration::from_millis(300)).expect_err("a SIGSTOPped redis answered PING");
    assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err:?}");
    redis.resume();
    assert_eq!(redis.cmd(&["PING"]), "PONG");
}

#[test]
fn restart_empty_loses_the_data_and_keeps_the_port() {
    let mut redis = RedisServer::start();
    let (port, pid) = (redis.port(), redis.pid());
    redis.cmd(&["SET", "k", "v"]);
    redis.restart_empty();
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid(), pid, "a new process");
    assert_eq!(redis.cmd(&["GET", "k"]), "(nil)");
    assert_eq!(redis.cmd(&["DBSIZE"]), "0");
}

#[test]
fn kill_pubsub_clients_cuts_the_subscribers_only() {
    let redis = RedisServer::start();
    let mut sub = Conn::connect(redis.addr(), IO).unwrap();
    let confirm = sub.call(&["SUBSCRIBE", "room:1"]).unwrap();
    assert_eq!(confirm.to_string(), "subscribe\nroom:1\n1");
    let mut plain = Conn::connect(redis.addr(), IO).unwrap();
    assert_eq!(plain.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    assert_eq!(redis.kill_pubsub_clients(), 1);
    assert!(sub.read().is_err(), "the subscriber's connection is closed");
    assert_eq!(plain.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()), "a plain client stays");
    assert_eq!(redis.kill_pubsub_clients(), 0);
}

#[test]
fn stop_kills_redis() {
    let mut redis = RedisServer::start();
    redis.stop();
    assert!(redis.try_cmd(&["PING"], Duration::from_millis(500)).is_err());
}

#[test]
fn a_redis_cluster_of_three_masters_comes_up() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.urls().len(), 3);
    for node in cluster.nodes() {
        let info = node.cmd(&["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{}: {info}", node.addr());
        assert!(info.contains("cluster_known_nodes:3"), "{}: {info}", node.addr());
    }
    // One room's keys share a hash tag, so they share a slot (and a node).
    let slot_a = cluster.cmd(&["CLUSTER", "KEYSLOT", "{room1}a"]);
    assert_eq!(slot_a, cluster.cmd(&["CLUSTER", "KEYSLOT", "{room1}b"]));
    assert_ne!(slot_a, cluster.cmd(&["CLUSTER", "KEYSLOT", "room1a"]));
    // Keys on every node: following MOVED reaches each one.
    for i in 0..20 {
        let key = format!("{{room{i}}}members");
        assert_eq!(cluster.cmd(&["SET", &key, &i.to_string()]), "OK");
        assert_eq!(cluster.cmd(&["GET", &key]), i.to_string());
    }
    let held: Vec<i64> = cluster.nodes().iter().map(|n| n.cmd(&["DBSIZE"]).parse().unwrap()).collect();
    assert_eq!(held.iter().sum::<i64>(), 20, "{held:?}");
    assert!(held.iter().filter(|&&n| n > 0).count() >= 2, "keys spread over the nodes: {held:?}");
}
