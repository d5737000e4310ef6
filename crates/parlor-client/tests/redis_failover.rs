//! Redis may fail over (issue 19): three `parlor serve` nodes behind HAProxy on a Redis
//! Sentinel deployment (a primary, a replica, three sentinels) or on a Redis Cluster with
//! replicas; Rust SDK clients in two rooms broadcast numbered messages; the primary (of the
//! app's slot) is SIGKILLed. The nodes follow the promotion; requests meanwhile are answered
//! 1000004 and retried by the SDK until `ok`; no session is lost, nobody sees a false
//! `user_delete`, and every member gets every acknowledged broadcast exactly once (a room whose
//! writes the failover lost would instead get a snapshot with `missed_messages`: the check
//! allows it only for a room the nodes logged as rewound). Prints the time from the kill to the
//! first `ok` after it.
//!
//! Needs Debian's `redis-server`, `redis-sentinel`, `redis-cli` and `haproxy`, and the `parlor`
//! binary (`cargo build -p parlor --bins`). Real time, every wait bounded (≤ ~60 s each).

mod nodes_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nodes_common::failover::*;
use nodes_common::*;
use parlor_testkit::RedisSentinel;
use tokio::time::Instant;

/// The rooms a node logged as damaged by the failover (their members resumed to a snapshot).
fn damaged_rooms(d: &Deployment) -> Vec<&'static str> {
    let logs: String = d.nodes.iter().map(|n| std::fs::read_to_string(n.log_path()).unwrap_or_default()).collect();
    ROOMS
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| logs.contains("by a failover") && logs.contains(&format!("room={r}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_primary_killed() {
    let mut redis = RedisSentinel::start();
    let d = Deployment::start(&redis.url());
    let members = members(&d).await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders = broadcast_until(&members, 20, stop.clone());
    // Some traffic first: every member has heard from the others.
    for (room, c) in &members {
        let users = ROOMS.iter().find(|(r, _)| r == room).unwrap().1;
        c.wait_until("the first broadcasts", secs(10), || {
            users.iter().filter(|u| **u != c.user.id).all(|u| !c.messages_from(u).is_empty()).then_some(())
        })
        .await;
    }
    tokio::time::sleep(ms(1000)).await; // traffic before the kill, not an assertion
    let old = redis.master_addr().expect("the sentinels name a master");
    redis.servers_mut()[0].stop();
    let killed = Instant::now();
    let promoted = tokio::task::block_in_place(|| redis.wait_promoted(old, secs(30)))
        .unwrap_or_else(|| panic!("no replica promoted within 30 s{}{}", redis.logs(), d.logs()));
    let promoted_after = killed.elapsed();
    // Traffic after the promotion too, then stop.
    tokio::time::sleep(ms(3000)).await; // traffic after the promotion, not an assertion
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for s in senders {
        sent.push(within(secs(30), "the senders", s).await.expect("sender task"));
    }
    // Let the last broadcasts arrive everywhere (bounded, checked by `check`).
    let total: usize = sent.iter().map(Vec::len).sum();
    let want_each = |c: &Sdk, room: &str| -> usize {
        members
            .iter()
            .enumerate()
            .filter(|(_, (r, o))| *r == room && o.user.id != c.user.id)
            .map(|(j, _)| sent[j].len())
            .sum()
    };
    let lossy = damaged_rooms(&d);
    for (room, c) in &members {
        if lossy.contains(room) {
            continue;
        }
        let want = want_each(c, room);
        c.wait_until("every broadcast of its room", secs(10), || {
            let got: usize =
                ROOMS.iter().find(|(r, _)| r == room).unwrap().1.iter().map(|u| c.messages_from(u).len()).sum();
            (got >= want).then_some(())
        })
        .await;
    }
    let logs = format!("{}{}", redis.logs(), d.logs());
    let first_ok = check(&members, &sent, killed, &lossy, &logs);
    println!(
        "sentinel failover: {total} broadcasts, promoted {} ms after the kill (master {old} -> {promoted}), \
         first ok {} ms after the kill, rooms rewound {lossy:?}",
        promoted_after.as_millis(),
        first_ok.as_millis()
    );
    for n in &d.nodes {
        let log = std::fs::read_to_string(n.log_path()).unwrap_or_default();
        assert!(log.contains("Redis master changed"), "node {} did not follow the promotion{logs}", n.addr());
        let h = healthz(n.addr()).await;
        assert_eq!(h["redis"]["reachable"], true, "{h}{logs}");
    }
}
