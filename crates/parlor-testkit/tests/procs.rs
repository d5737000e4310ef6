//! Tests of the multi-process helpers against the real programs: Debian's `redis-server`,
//! `redis-cli` and `haproxy`, and the `parlor` binary (`cargo build -p parlor --bins` first, or
//! set `PARLOR_BIN`).
//!
//! A missing program makes these tests fail, never pass: the multi-node tests built on these
//! helpers must not silently stop running. `scripts/test.sh` installs the programs.
//!
//! Waits are bounded polls; no test sleeps to let something happen.

use std::io;
use std::time::Duration;

use parlor_testkit::procs::resp::{Conn, Reply};
use parlor_testkit::procs::{http, poll_until};
use parlor_testkit::{bin_path, Haproxy, Node, RedisCluster, RedisServer};

/// The WebSocket key of RFC 6455 §1.3 and the accept value it must produce.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const IO: Duration = Duration::from_secs(5);

fn node() -> Node {
    Node::start(&bin_path(), &["--heartbeat".to_string(), "1s".to_string()])
}

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

#[test]
fn the_haproxy_template_is_a_valid_config() {
    let listen = "127.0.0.1:7700".parse().unwrap();
    let backends = ["127.0.0.1:7701".parse().unwrap(), "127.0.0.1:7702".parse().unwrap()];
    let config = Haproxy::render(listen, &backends);
    assert!(!config.lines().any(|l| l.contains("${") && !l.trim_start().starts_with('#')), "unfilled:\n{config}");
    for needed in [
        "bind 127.0.0.1:7700",
        "server node1 127.0.0.1:7701",
        "server node2 127.0.0.1:7702",
        "mode http",
        "timeout tunnel 1h",
        "timeout client-fin",
        "option httpchk GET /healthz",
        "http-check expect status 200",
        "inter 500ms fall 2 rise 1",
        "on-marked-down shutdown-sessions",
    ] {
        assert!(config.contains(needed), "`{needed}` missing from:\n{config}");
    }
    let settings: Vec<&str> = config.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(
        !settings.iter().any(|l| l.contains("cookie") || l.contains("stick") || l.contains("balance source")),
        "no sticky sessions:\n{config}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.cfg");
    std::fs::write(&path, &config).unwrap();
    let check = std::process::Command::new(parlor_testkit::procs::require_program("haproxy"))
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c rejects the config:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_node_serves_health_and_websocket_and_stops_on_sigterm() {
    // A drain keeps the node up for its whole drain time (10 s unless told).
    let mut node = Node::start(&bin_path(), &["--heartbeat", "1s", "--drain-time", "1s"].map(String::from));
    let health = http::get(node.addr(), "/healthz", IO).unwrap();
    assert_eq!(health.status, 200, "{}", health.head);
    assert!(health.text().contains("\"status\":\"ok\""), "{}", health.text());
    let up = http::ws_upgrade(node.addr(), "/v1/ws", IO).unwrap();
    assert_eq!(up.status, 101, "{}", up.head);
    assert!(up.head.contains(ACCEPT), "{}", up.head);
    assert_eq!(node.ws_url(), format!("ws://{}/v1/ws", node.addr()));

    node.sigterm();
    let status = node.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "the node did not exit within 10 s of SIGTERM; log:\n{}", node.log_tail());
    assert!(std::fs::metadata(node.log_path()).is_ok(), "its log is kept until drop");
}

#[test]
fn a_node_that_cannot_start_says_why() {
    let err = Node::try_start(&bin_path(), &["--no-such-flag".to_string()]).unwrap_err();
    assert!(err.contains("exited") && err.contains("--no-such-flag"), "{err}");
    let err = Node::try_start(std::path::Path::new("/nonexistent/parlor"), &[]).unwrap_err();
    assert!(err.contains("cargo build -p parlor --bins"), "{err}");
}

#[test]
fn haproxy_balances_two_nodes_and_routes_around_a_killed_one() {
    let mut first = node();
    let second = node();
    let lb = Haproxy::start(&[first.addr(), second.addr()]);
    assert_eq!(lb.ws_url(), format!("ws://127.0.0.1:{}/v1/ws", lb.port()));

    let health = http::get(lb.addr(), "/healthz", IO).unwrap();
    assert_eq!(health.status, 200, "{}\nhaproxy log:\n{}", health.head, lb.log_tail());
    let up = http::ws_upgrade(lb.addr(), "/v1/ws", IO).unwrap();
    assert_eq!(up.status, 101, "{}\nhaproxy log:\n{}", up.head, lb.log_tail());
    assert!(up.head.contains(ACCEPT), "{}", up.head);

    first.kill9();
    assert!(first.exit_status().is_some());
    // Within a bounded time every request goes to the live node: ten 200s in a row.
    let mut in_a_row = 0;
    let steady = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let ok = http::get(lb.addr(), "/healthz", IO).is_ok_and(|r| r.status == 200);
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        (in_a_row >= 10).then_some(())
    });
    assert!(steady.is_some(), "HAProxy did not answer through the live node; its log:\n{}", lb.log_tail());
    // The health checks take the dead node out (inter 500ms, fall 2).
    let down = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        std::fs::read_to_string(lb.log_path()).ok().filter(|l| l.contains("node1 is DOWN")).map(|_| ())
    });
    assert!(down.is_some(), "HAProxy never marked node1 down; its log:\n{}", lb.log_tail());
    let up = http::ws_upgrade(lb.addr(), "/v1/ws", IO).unwrap();
    assert_eq!(up.status, 101, "{}", up.head);
}
