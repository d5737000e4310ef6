//! Several `parlor serve --redis` nodes as real processes (issue 8): one Redis, three or four
//! nodes, HAProxy from `deploy/haproxy/parlor.cfg` in front where a test needs it. Clients are
//! raw protocol clients (`nodes_common::Peer`, which checks `seq` contiguity on every channel)
//! and the Rust SDK (`parlor_client::Engine`).
//!
//! Needs Debian's `redis-server` and `haproxy`, and the `parlor` binary
//! (`cargo build -p parlor --bins`). Real time; every wait is bounded; every process is killed
//! when its handle drops. Nodes run with heartbeat 1 s, session timeout 4 s, retention 60 s.

mod nodes_common;

use nodes_common::*;
use parlor_client::RoomStateReason;
use serde_json::{json, Value};
use tokio::time::Instant;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids(list: &Value) -> Vec<String> {
    sorted(list.as_array().into_iter().flatten().map(|u| u["id"].as_str().unwrap_or("?").to_string()).collect())
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn ch(kind: &str, id: &str) -> (String, String) {
    (kind.to_string(), id.to_string())
}

fn st(kind: &str, id: &str, reason: u64) -> (String, String, u64) {
    (kind.to_string(), id.to_string(), reason)
}

/// 3 nodes + HAProxy: clients on every node (and one through HAProxy) see each other's events in
/// order with contiguous seqs; duplicate login, admin kick and token expiry across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behind_haproxy_share_rooms() {
    let c = Cluster::start(3, true);
    let room = "r1";
    // a on n1, b on n2, c on n3, d through HAProxy.
    let urls = [c.nodes[0].ws_url(), c.nodes[1].ws_url(), c.nodes[2].ws_url(), c.lb().ws_url()];
    let names = ["a", "b", "c", "d"];
    let mut p = Vec::new();
    for (url, name) in urls.iter().zip(names) {
        p.push(Peer::connect(url, name).await);
    }
    for (i, peer) in p.iter_mut().enumerate() {
        let ok = peer.login(room).await;
        assert_eq!(ids(&ok["users"]), s(&names[..i]), "{}: login ok {ok}", names[i]);
        assert_eq!(ok["online"], i as u64 + 1, "{ok}");
    }
    // Everyone hears of the later logins.
    for (i, peer) in p.iter_mut().enumerate() {
        let want = 3 - i;
        peer.wait_until("the later user_adds", secs(5), |q| (q.user_changes(room).len() >= want).then_some(())).await;
    }
    p[0].ok(json!({"t":"publish","room":room,"stream":"a-cam","extra":"x"})).await;

    // Messages from every node, interleaved.
    const M: usize = 5;
    for i in 0..M {
        for peer in p.iter_mut() {
            let text = format!("{}-{i}", peer.user);
            let ok = peer.ok(json!({"t":"broadcast","room":room,"message":text})).await;
            assert!(ok["message_id"].is_string(), "{ok}");
        }
    }
    for peer in p.iter_mut() {
        let me = peer.user.clone();
        let want_stream = usize::from(me != "a");
        peer.wait_until("every other's messages", secs(10), |q| {
            let msgs: usize = names.iter().filter(|n| **n != me).map(|n| q.messages_from(room, n).len()).sum();
            (msgs >= 3 * M && q.stream_changes(room).len() >= want_stream).then_some(())
        })
        .await;
        for n in names.iter().filter(|n| **n != me) {
            let want: Vec<String> = (0..M).map(|i| format!("{n}-{i}")).collect();
            assert_eq!(peer.messages_from(room, n), want, "{me}: messages from {n}");
        }
        peer.assert_contiguous();
    }

    // Duplicate login: a again, on n2. The old session (n1) is kicked 1002050 and closed 4009;
    // the others see a-cam deleted with reason 3 and no user change.
    let mut a2 = Peer::connect(&c.nodes[1].ws_url(), "a").await;
    let ok = a2.login(room).await;
    assert_eq!(ids(&ok["users"]), s(&["b", "c", "d"]), "{ok}");
    assert_eq!(ok["online"], 4, "{ok}");
    let k = p[0].wait_for("kicked 1002050", secs(5), |f| f["t"] == "kicked", 0).await;
    assert_eq!((k["code"].as_u64(), k["room"].as_str()), (Some(1002050), Some(room)), "{k}");
    p[0].wait_until("the close after the kick", secs(5), |q| q.end).await;
    assert_eq!(p[0].end.unwrap().1, 4009, "close code after the only room's kick");
    for peer in p[1..].iter_mut() {
        peer.wait_until("stream_delete a-cam", secs(5), |q| (q.stream_changes(room).len() >= 2).then_some(())).await;
    }

    // Admin kick of a (now on n2) through n3's admin API.
    let (status, body) = http(
        c.nodes[2].addr(),
        "POST",
        &format!("/v1/admin/apps/{APP}/rooms/{room}/kick"),
        Some(&json!({"user":"a","reason":"bye now"})),
    )
    .await;
    assert_eq!(status, 200, "admin kick: {body}{}", c.logs());
    let k = a2.wait_for("kicked 1002055", secs(5), |f| f["t"] == "kicked", 0).await;
    assert_eq!(k["code"], 1002055, "{k}");
    assert_eq!(k["extended_data"]["reason"], "bye now", "{k}");
    for peer in p[1..].iter_mut() {
        peer.wait_until("user_delete a", secs(5), |q| {
            q.user_changes(room).contains(&ch("user_delete", "a")).then_some(())
        })
        .await;
    }
    let (status, _) = http(
        c.nodes[0].addr(),
        "POST",
        &format!("/v1/admin/apps/{APP}/rooms/{room}/kick"),
        Some(&json!({"user":"a","reason":"again"})),
    )
    .await;
    assert_eq!(status, 404, "kick of a user no longer in the room");

    // Token expiry: e on n1 with a token valid ~3 s. The warning comes at once (30 s before),
    // the kick 1002056 at expiry; the others (n2, n3, HAProxy) see e and e-cam go (reason 4).
    let mut e = Peer::connect_with(&c.nodes[0].ws_url(), "e", &token_for("e", 3)).await;
    let logged_in = Instant::now();
    e.login(room).await;
    e.ok(json!({"t":"publish","room":room,"stream":"e-cam","extra":""})).await;
    let w = e.wait_for("token_will_expire", secs(3), |f| f["t"] == "token_will_expire", 0).await;
    assert_eq!(w["room"], room, "{w}");
    assert!(w["remaining_s"].as_u64().is_some_and(|r| r <= 3), "{w}");
    let k = e.wait_for("kicked 1002056", secs(8), |f| f["t"] == "kicked", 0).await;
    assert_eq!(k["code"], 1002056, "{k}");
    assert!(logged_in.elapsed() < secs(7), "the expiry kick came {:?} after a 3 s token's login", logged_in.elapsed());
    for peer in p[1..].iter_mut() {
        peer.wait_until("user_delete e", secs(5), |q| {
            q.user_changes(room).contains(&ch("user_delete", "e")).then_some(())
        })
        .await;
        peer.wait_until("e-cam deleted", secs(5), |q| (q.stream_changes(room).len() >= 4).then_some(())).await;
    }

    // A last message as a barrier on the room channel, then the whole story per watcher.
    p[3].ok(json!({"t":"broadcast","room":room,"message":"end"})).await;
    for peer in p[1..3].iter_mut() {
        peer.wait_until("the last message", secs(5), |q| {
            q.messages_from(room, "d").last().map(|m| m == "end").filter(|b| *b)
        })
        .await;
    }
    let tail = [ch("user_delete", "a"), ch("user_add", "e"), ch("user_delete", "e")];
    let expect_users = |before: &[&str]| {
        let mut v: Vec<(String, String)> = before.iter().map(|u| ch("user_add", u)).collect();
        v.extend(tail.iter().cloned());
        v
    };
    assert_eq!(p[0].user_changes(room), vec![ch("user_add", "b"), ch("user_add", "c"), ch("user_add", "d")], "a");
    assert_eq!(p[1].user_changes(room), expect_users(&["c", "d"]), "b: the duplicate login is no user change");
    assert_eq!(p[2].user_changes(room), expect_users(&["d"]), "c");
    assert_eq!(p[3].user_changes(room), expect_users(&[]), "d");
    let streams = vec![
        st("stream_add", "a-cam", 0),
        st("stream_delete", "a-cam", 3),
        st("stream_add", "e-cam", 0),
        st("stream_delete", "e-cam", 4),
    ];
    for peer in &p[1..] {
        assert_eq!(peer.stream_changes(room), streams, "{}", peer.user);
    }
    for peer in p.iter().chain([&a2, &e]) {
        peer.assert_contiguous();
    }
    let view = admin_room(c.nodes[1].addr(), room).await.expect("the room");
    assert_eq!(admin_users(&view), s(&["b", "c", "d"]), "{view}");
    assert!(admin_streams(&view).is_empty(), "{view}");
}

/// A node SIGKILLed while its clients (Rust SDK through HAProxy) are in a room with clients on
/// the other nodes and messages flow: its clients resume elsewhere and nobody notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_invisible() {
    let mut c = Cluster::start(3, true);
    let room = "f";
    const N: usize = 6;
    const M: usize = 50;
    let users: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    let clients: Vec<Sdk> = users.iter().map(|u| Sdk::new(&c.lb().ws_url(), u)).collect();
    for cl in &clients {
        cl.login(room).await;
        within(secs(10), "publish", cl.engine.publish_stream(room, format!("cam-{}", cl.user.id), ""))
            .await
            .expect("publish");
    }
    for cl in &clients {
        let others: Vec<String> = users.iter().filter(|u| **u != cl.user.id).cloned().collect();
        let cams: Vec<String> = others.iter().map(|u| format!("cam-{u}")).collect();
        cl.wait_until("every other user and stream", secs(10), || {
            (cl.known_users() == others && cl.known_streams() == cams).then_some(())
        })
        .await;
    }
    // Where the clients are (HAProxy balances leastconn, so they are spread).
    let mut connected = Vec::new();
    for n in &c.nodes {
        connected.push(healthz(n.addr()).await["stats"]["connected"].as_u64().unwrap_or(0));
    }
    assert_eq!(connected.iter().sum::<u64>(), N as u64, "connections per node {connected:?}");
    let victim = (0..3).max_by_key(|i| connected[*i]).unwrap();
    assert!(connected[victim] >= 1);
    let marks: Vec<usize> = clients.iter().map(Sdk::len).collect();

    // Every client broadcasts M numbered messages, one every ~100 ms.
    let senders = broadcast_numbered(&clients, room, M);
    tokio::time::sleep(ms(1200)).await; // not an assertion: lets ~12 messages each flow first
    let killed_at = Instant::now();
    c.nodes[victim].kill9();

    for (i, t) in senders.into_iter().enumerate() {
        let results = within(secs(30), "the senders", t).await.expect("sender task");
        for (k, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "{}: broadcast {k} failed: {r:?}{}", users[i], c.logs());
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
    tokio::time::sleep_until(killed_at + SESSION_TIMEOUT + secs(2)).await;

    let mut moved = 0;
    for (i, cl) in clients.iter().enumerate() {
        let me = &cl.user.id;
        for u in users.iter().filter(|u| *u != me) {
            let want: Vec<String> = (0..M).map(|k| format!("{u}-{k}")).collect();
            assert_eq!(cl.messages_from(u), want, "{me}: the messages from {u} (each exactly once, in order)");
        }
        let states = cl.states_since(marks[i]);
        let changes = cl.changes_since(marks[i]);
        if states.is_empty() {
            assert!(changes.is_empty(), "{me} (not moved) saw user/stream changes: {changes:?}");
            continue;
        }
        moved += 1;
        let kinds: Vec<(RoomStateReason, u32)> = states.iter().map(|(_, r, c)| (*r, *c)).collect();
        assert!(
            kinds.chunks(2).all(|p| p == [(RoomStateReason::Reconnecting, 1002051), (RoomStateReason::Reconnected, 0)]),
            "{me}: states after the kill {kinds:?}"
        );
        let back = states[1].0;
        assert!(
            back.duration_since(killed_at) < SESSION_TIMEOUT,
            "{me}: RECONNECTED {:?} after the kill",
            back.duration_since(killed_at)
        );
        assert!(changes.is_empty(), "{me} (moved) saw user/stream changes after its resume: {changes:?}");
    }
    assert_eq!(
        moved as u64, connected[victim],
        "clients that reconnected vs. the killed node's connections {connected:?}"
    );
    let view = admin_room(c.nodes[(victim + 1) % 3].addr(), room).await.expect("the room");
    assert_eq!(admin_users(&view), sorted(users.clone()), "{view}");
    assert_eq!(admin_streams(&view).len(), N, "{view}");
}

/// A node SIGKILLed whose clients never return: the watchers on the 3 other nodes (3 reapers
/// racing) see exactly one user_delete per user and stream_delete reason 2, at the session
/// timeout after the last frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_visible() {
    let mut c = Cluster::start(4, false);
    let room = "v";
    let mut gone = Vec::new();
    for u in ["g1", "g2"] {
        let mut p = Peer::connect(&c.nodes[0].ws_url(), u).await;
        p.login(room).await;
        p.ok(json!({"t":"publish","room":room,"stream":format!("{u}-cam"),"extra":""})).await;
        gone.push(p);
    }
    let mut w = Vec::new();
    for i in 1..4 {
        let mut p = Peer::connect(&c.nodes[i].ws_url(), &format!("w{}", i + 1)).await;
        let ok = p.login(room).await;
        assert_eq!(admin_streams(&ok), s(&["g1-cam", "g2-cam"]), "{ok}");
        w.push(p);
    }
    // g1 and g2 keep pinging until their node dies.
    gone[0].idle(ms(500)).await;
    let killed_at = Instant::now();
    c.nodes[0].kill9();
    drop(gone);

    for p in w.iter_mut() {
        p.wait_until("user_delete of g1 and g2", secs(10), |q| {
            let d: Vec<_> = q.user_changes(room).into_iter().filter(|(k, _)| k == "user_delete").collect();
            (d.len() >= 2).then_some(())
        })
        .await;
    }
    // Grace: any duplicate delete would come now.
    let grace_end = Instant::now() + secs(2);
    for p in w.iter_mut() {
        p.idle(grace_end.saturating_duration_since(Instant::now())).await;
    }
    let lo = SESSION_TIMEOUT - ms(1500);
    let hi = SESSION_TIMEOUT + ms(2500);
    for p in &w {
        let deletes: Vec<(String, String)> =
            p.user_changes(room).into_iter().filter(|(k, _)| k == "user_delete").collect();
        assert_eq!(sorted(deletes.iter().map(|d| d.1.clone()).collect()), s(&["g1", "g2"]), "{}: user_deletes", p.user);
        let sd: Vec<_> = p.stream_changes(room).into_iter().filter(|(k, _, _)| k == "stream_delete").collect();
        let mut want = vec![st("stream_delete", "g1-cam", 2), st("stream_delete", "g2-cam", 2)];
        let mut got = sd.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}: stream_deletes", p.user);
        for (at, f) in &p.log {
            if f["t"] == "event" && f["kind"] == "user_delete" {
                let after = at.duration_since(killed_at);
                assert!(
                    after >= lo && after <= hi,
                    "{}: user_delete {:?} after the kill, outside [{lo:?}, {hi:?}]: {f}",
                    p.user,
                    after
                );
            }
        }
        assert!(p.end.is_none(), "{}: its connection ended {:?}", p.user, p.end);
        p.assert_contiguous();
    }
    let view = admin_room(c.nodes[1].addr(), room).await.expect("the room");
    assert_eq!(admin_users(&view), s(&["w2", "w3", "w4"]), "{view}");
    assert!(admin_streams(&view).is_empty(), "{view}");
}

/// `CLIENT KILL TYPE pubsub` while messages flow both ways across two nodes: every message
/// still arrives exactly once, in order (a seq jump is filled from the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_killed_gap_filled() {
    let c = Cluster::start(2, false);
    let room = "p";
    let mut a = Peer::connect(&c.nodes[0].ws_url(), "a").await;
    let mut b = Peer::connect(&c.nodes[1].ws_url(), "b").await;
    a.login(room).await;
    b.login(room).await;
    const M: usize = 80;
    let send = |mut p: Peer| {
        tokio::spawn(async move {
            for k in 0..M {
                let text = format!("{}-{k}", p.user);
                p.ok(json!({"t":"broadcast","room":room,"message":text})).await;
                tokio::time::sleep(ms(20)).await;
            }
            p
        })
    };
    let (ta, tb) = (send(a), send(b));
    let mut cut = 0;
    for _ in 0..2 {
        tokio::time::sleep(ms(500)).await; // not an assertion: cut while messages flow
        cut += c.redis.kill_pubsub_clients();
    }
    assert!(cut >= 2, "CLIENT KILL TYPE pubsub cut {cut} connections");
    let mut a = tokio::time::timeout(secs(30), ta).await.expect("a's sends").expect("a");
    let mut b = tokio::time::timeout(secs(30), tb).await.expect("b's sends").expect("b");
    for (p, other) in [(&mut a, "b"), (&mut b, "a")] {
        let r = p
            .wait_until("every message of the other", secs(10), |q| {
                (q.messages_from(room, other).len() >= M).then_some(())
            })
            .await;
        let _: () = r;
        let want: Vec<String> = (0..M).map(|k| format!("{other}-{k}")).collect();
        assert_eq!(p.messages_from(room, other), want, "{}: messages from {other}{}", p.user, c.logs());
        p.assert_contiguous();
    }
}

/// Redis stopped (SIGSTOP) for ~5 s: requests answered 1000004 within a couple of seconds,
/// connections stay open; after SIGCONT requests succeed and the room is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_paused_then_back() {
    let c = Cluster::start(2, false);
    let room = "q";
    let mut a = Peer::connect(&c.nodes[0].ws_url(), "a").await;
    let mut b = Peer::connect(&c.nodes[1].ws_url(), "b").await;
    a.login(room).await;
    b.login(room).await;
    a.ok(json!({"t":"publish","room":room,"stream":"qa-cam","extra":""})).await;
    b.ok(json!({"t":"broadcast","room":room,"message":"before"})).await;
    a.wait_until("b's message", secs(5), |q| (!q.messages_from(room, "b").is_empty()).then_some(())).await;

    c.redis.pause();
    let paused_at = Instant::now();
    let t = Instant::now();
    let e = a.request_within(json!({"t":"broadcast","room":room,"message":"during"}), secs(8)).await;
    let took_a = t.elapsed();
    let t = Instant::now();
    let e2 = b.request_within(json!({"t":"room_extra","room":room,"key":"k","value":"v"}), secs(8)).await;
    let took_b = t.elapsed();
    let resume_at = paused_at + secs(5);
    a.idle(resume_at.saturating_duration_since(Instant::now())).await;
    b.pump();
    c.redis.resume();
    assert_eq!((e["t"].as_str(), e["code"].as_u64()), (Some("error"), Some(1000004)), "a during the pause: {e}");
    assert_eq!((e2["t"].as_str(), e2["code"].as_u64()), (Some("error"), Some(1000004)), "b during the pause: {e2}");
    assert!(took_a < secs(4) && took_b < secs(4), "the 1000004 answers took {took_a:?} / {took_b:?}");
    assert!(a.end.is_none() && b.end.is_none(), "connections closed during the pause: {:?} {:?}", a.end, b.end);

    // Back: requests succeed again (a few may still see 1000004 while the nodes reconnect).
    let deadline = Instant::now() + secs(10);
    let mut k = 0;
    loop {
        let r = a.request(json!({"t":"broadcast","room":room,"message":format!("after-{k}")})).await;
        if r["t"] == "ok" {
            break;
        }
        assert_eq!(r["code"], 1000004, "after the resume: {r}{}", c.logs());
        assert!(Instant::now() < deadline, "requests still fail 10 s after Redis came back: {r}{}", c.logs());
        k += 1;
        tokio::time::sleep(ms(200)).await; // retry pacing, not an assertion
    }
    let last = format!("after-{k}");
    b.wait_until("a's message after the resume", secs(5), |q| q.messages_from(room, "a").contains(&last).then_some(()))
        .await;
    b.ok(json!({"t":"broadcast","room":room,"message":"after-b"})).await;
    a.wait_until("b's message after the resume", secs(5), |q| {
        q.messages_from(room, "b").contains(&"after-b".to_string()).then_some(())
    })
    .await;

    // State intact: nobody left, the stream is there, no user or stream changes seen.
    for n in &c.nodes {
        let view = admin_room(n.addr(), room).await.expect("the room");
        assert_eq!(admin_users(&view), s(&["a", "b"]), "{view}{}", c.logs());
        assert_eq!(admin_streams(&view), s(&["qa-cam"]), "{view}");
    }
    assert_eq!(a.user_changes(room), vec![ch("user_add", "b")], "a");
    assert!(b.user_changes(room).is_empty(), "b: {:?}", b.user_changes(room));
    assert_eq!(b.stream_changes(room), vec![st("stream_add", "qa-cam", 0)], "b");
    let from_a = b.messages_from(room, "a");
    assert!(from_a.iter().filter(|m| *m == "during").count() <= 1, "b got {from_a:?}");
    assert_eq!(from_a.last(), Some(&last), "b got {from_a:?}");
    // The contract of §6: an `error` answer means the request had no effect, so the next event
    // on the author's channel is the last seq it knows + 1.
    for p in [&a, &b] {
        assert!(
            p.violations.is_empty(),
            "{}: seq contract broken:\n{}\n(b got from a: {:?}; b's room channel: {:?}){}",
            p.user,
            p.violations.join("\n"),
            b.messages_from(room, "a"),
            b.channel_events()
                .iter()
                .filter(|f| f["ch"] == "room")
                .map(|f| (f["seq"].clone(), f["kind"].clone()))
                .collect::<Vec<_>>(),
            c.logs()
        );
    }
}

/// Redis killed and started again empty: the nodes close their connections with 4010, a resume
/// is refused (1002057), clients log in afresh (the SDK reports RECONNECTED) and the room views
/// are right again, under a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_empty() {
    let mut c = Cluster::start(2, false);
    let room = "e";
    let s1 = Sdk::new(&c.nodes[0].ws_url(), "s1");
    let s2 = Sdk::new(&c.nodes[1].ws_url(), "s2");
    s1.login(room).await;
    within(secs(10), "publish", s1.engine.publish_stream(room, "cam-s1", "")).await.expect("publish");
    s2.login(room).await;
    let mut raw = Vec::new();
    for (i, u) in ["r1", "r2"].iter().enumerate() {
        let mut p = Peer::connect(&c.nodes[i].ws_url(), u).await;
        p.login(room).await;
        raw.push(p);
    }
    let epoch = raw[0].log.iter().find(|(_, f)| f["t"] == "ok" && f.get("room_session").is_some()).unwrap().1
        ["room_session"]
        .clone();
    s2.wait_until("everyone", secs(5), || {
        (s2.known_users() == s(&["r1", "r2", "s1"]) && s2.known_streams() == s(&["cam-s1"])).then_some(())
    })
    .await;
    let marks = [s1.len(), s2.len()];

    let restarted_at = Instant::now();
    c.redis.restart_empty();
    for (i, p) in raw.iter_mut().enumerate() {
        let (at, code) = p.wait_until("the node closing the connection", secs(8), |q| q.end).await;
        assert_eq!(code, 4010, "{}: close code{}", p.user, c.logs());
        assert!(
            at.duration_since(restarted_at) < secs(6),
            "{}: closed {:?} after the restart",
            p.user,
            at - restarted_at
        );
        // A resume is refused (the session was lost with Redis); a hello on the same connection
        // starts afresh and the room has a new epoch.
        let mut q = Peer::open(&c.nodes[i].ws_url(), &p.user).await;
        let ack = json!({"direct":0,"rooms":{room:{"epoch":epoch,"room":p.seqs.get(&format!("{room}/room")).copied().unwrap_or(0),
            "users":p.seqs.get(&format!("{room}/users")).copied().unwrap_or(0)}}});
        q.send(json!({"t":"resume","v":1,"session":p.welcome["session"],"resume_token":p.welcome["resume_token"],"ack":ack}));
        let r = q.wait_for("the resume's answer", secs(5), |f| f["t"] == "error" || f["t"] == "resumed", 0).await;
        assert_eq!((r["t"].as_str(), r["code"].as_u64()), (Some("error"), Some(1002057)), "{}: {r}", p.user);
        q.hello(&token(&p.user)).await;
        let ok = q.login(room).await;
        assert_ne!(ok["room_session"], epoch, "a new epoch after Redis lost the room: {ok}");
        *p = q;
    }
    for (i, cl) in [&s1, &s2].into_iter().enumerate() {
        cl.wait_until("RECONNECTED", secs(15), || {
            cl.states_since(marks[i]).iter().any(|(_, r, _)| *r == RoomStateReason::Reconnected).then_some(())
        })
        .await;
        let states: Vec<(RoomStateReason, u32)> = cl.states_since(marks[i]).iter().map(|(_, r, c)| (*r, *c)).collect();
        assert_eq!(states.first(), Some(&(RoomStateReason::Reconnecting, 1002051)), "{}: {states:?}", cl.user.id);
        assert!(
            !states.iter().any(|(r, _)| matches!(r, RoomStateReason::ReconnectFailed | RoomStateReason::KickOut)),
            "{}: {states:?}",
            cl.user.id
        );
    }
    // The views: the admin API on both nodes, and what the SDK clients built from updates.
    let want_users = s(&["r1", "r2", "s1", "s2"]);
    for n in &c.nodes {
        let deadline = Instant::now() + secs(10);
        loop {
            let view = admin_room(n.addr(), room).await;
            let got = view.as_ref().map(|v| (admin_users(v), admin_streams(v)));
            if got == Some((want_users.clone(), s(&["cam-s1"]))) {
                assert_ne!(view.unwrap()["room_session"], epoch);
                break;
            }
            assert!(Instant::now() < deadline, "room view on {} after the restart: {view:?}{}", n.addr(), c.logs());
            tokio::time::sleep(ms(100)).await;
        }
    }
    for cl in [&s1, &s2] {
        let others: Vec<String> = want_users.iter().filter(|u| **u != cl.user.id).cloned().collect();
        let streams = if cl.user.id == "s1" { vec![] } else { s(&["cam-s1"]) };
        cl.wait_until("a correct view", secs(10), || {
            (cl.known_users() == others && cl.known_streams() == streams).then_some(())
        })
        .await;
    }
    for p in &raw {
        p.assert_contiguous();
    }
}
