//! A node drained (SIGTERM to its process) under load: two `parlor serve --redis` nodes behind
//! HAProxy (`deploy/haproxy/parlor.cfg`), Rust SDK clients in one room sending messages. The
//! drained node's `/readyz` answers 503, its connections are closed with 4010 over its drain
//! time, its clients resume on the other node: nobody sees RECONNECT_FAILED or a `user_delete`,
//! every message is received exactly once, in order, by every member, and the node exits 0.
//!
//! Needs Debian's `redis-server` and `haproxy`, and the `parlor` binary
//! (`cargo build -p parlor --bins`). Real time; every wait is bounded. ~15 s.

mod nodes_common;

use nodes_common::*;
use parlor_client::RoomStateReason;
use parlor_testkit::{bin_path, Haproxy, Node, RedisServer};
use tokio::time::Instant;

/// The drained node's `--drain-time`.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_drained_under_load_loses_nothing() {
    let redis = RedisServer::start();
    let args = |id: &str| {
        let mut a = node_args(&redis, id);
        a.extend(["--drain-time".to_string(), "2s".to_string()]);
        a
    };
    let mut nodes: Vec<Node> = ["n1", "n2"].iter().map(|id| Node::start(&bin_path(), &args(id))).collect();
    let lb = Haproxy::start(&nodes.iter().map(Node::addr).collect::<Vec<_>>());
    let logs = |nodes: &[Node]| {
        let mut out = String::new();
        for n in nodes {
            out.push_str(&format!("\n--- node {} log tail ---\n{}\n", n.addr(), n.log_tail()));
        }
        out + &format!("\n--- haproxy log tail ---\n{}\n", lb.log_tail())
    };

    let room = "d";
    const N: usize = 8;
    const M: usize = 40;
    let users: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    let clients: Vec<Sdk> = users.iter().map(|u| Sdk::new(&lb.ws_url(), u)).collect();
    for cl in &clients {
        cl.login(room).await;
    }
    for cl in &clients {
        let others: Vec<String> = users.iter().filter(|u| **u != cl.user.id).cloned().collect();
        cl.wait_until("every other user", secs(10), || (cl.known_users() == others).then_some(())).await;
    }
    let mut connected = Vec::new();
    for n in &nodes {
        connected.push(healthz(n.addr()).await["stats"]["connected"].as_u64().unwrap_or(0));
    }
    assert_eq!(connected.iter().sum::<u64>(), N as u64, "connections per node {connected:?}");
    let victim = (0..2).max_by_key(|i| connected[*i]).unwrap();
    let other = 1 - victim;
    assert!(connected[victim] >= 2, "leastconn spreads them: {connected:?}");
    assert_eq!(http(nodes[victim].addr(), "GET", "/readyz", None).await, (200, serde_json::json!({"status":"ready"})));
    let marks: Vec<usize> = clients.iter().map(Sdk::len).collect();

    // Every client broadcasts M numbered messages, one every ~100 ms.
    let senders = broadcast_numbered(&clients, room, M);
    tokio::time::sleep(ms(1000)).await; // not an assertion: lets ~10 messages each flow first
    let drained_at = Instant::now();
    nodes[victim].sigterm();
    // Readiness flips at once (polled: the signal is handled asynchronously), liveness stays.
    let victim_addr = nodes[victim].addr();
    let mut ready = 0;
    for _ in 0..50 {
        ready = http(victim_addr, "GET", "/readyz", None).await.0;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(ready, 503, "/readyz of the draining node{}", logs(&nodes));
    assert_eq!(http(victim_addr, "GET", "/healthz", None).await.0, 200, "liveness during the drain");
    let exit = tokio::task::block_in_place(|| nodes[victim].wait_exit(DRAIN_TIME + secs(10)));
    assert!(exit.is_some_and(|s| s.success()), "the drained node's exit: {exit:?}{}", logs(&nodes));
    assert!(nodes[victim].log_tail().contains("stopped"), "{}", logs(&nodes));

    for (i, t) in senders.into_iter().enumerate() {
        let results = within(secs(30), "the senders", t).await.expect("sender task");
        for (k, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "{}: broadcast {k} failed: {r:?}{}", users[i], logs(&nodes));
        }
        assert_eq!(results.len(), M);
    }
    for cl in &clients {
        cl.wait_until("every other's messages", secs(15), || {
            users.iter().filter(|u| **u != cl.user.id).all(|u| cl.messages_from(u).len() >= M).then_some(())
        })
        .await;
    }
    // A session whose resume failed would be reaped at the session timeout after its last
    // frame: look at the views only once that has passed.
    tokio::time::sleep_until(drained_at + DRAIN_TIME + SESSION_TIMEOUT + secs(1)).await;

    let mut moved = 0;
    for (i, cl) in clients.iter().enumerate() {
        let me = &cl.user.id;
        for u in users.iter().filter(|u| *u != me) {
            let want: Vec<String> = (0..M).map(|k| format!("{u}-{k}")).collect();
            assert_eq!(cl.messages_from(u), want, "{me}: the messages from {u} (each exactly once, in order)");
        }
        let states = cl.states_since(marks[i]);
        let changes = cl.changes_since(marks[i]);
        assert!(changes.is_empty(), "{me} saw user/stream changes during the drain: {changes:?}");
        let kinds: Vec<RoomStateReason> = states.iter().map(|(_, r, _)| *r).collect();
        assert!(!kinds.contains(&RoomStateReason::ReconnectFailed), "{me}: {states:?}");
        if kinds.is_empty() {
            continue;
        }
        moved += 1;
        assert!(
            kinds.chunks(2).all(|p| p == [RoomStateReason::Reconnecting, RoomStateReason::Reconnected]),
            "{me}: states during the drain {states:?}"
        );
    }
    assert_eq!(moved as u64, connected[victim], "clients that reconnected vs. the drained node's {connected:?}");
    let view = admin_room(nodes[other].addr(), room).await.expect("the room");
    let mut users_now = admin_users(&view);
    users_now.sort();
    assert_eq!(users_now, users, "{view}");
    assert_eq!(healthz(nodes[other].addr()).await["stats"]["connected"], N as u64);
}
