//! Audience-scale rooms (protocol §9.10) on the Redis engine: two nodes on one Redis, in one
//! process, with `full_presence_up_to` = 3, so that a room of 4 is large. A batch is made once
//! for the deployment (members on both nodes see the same single `user_update`), is replayed
//! once on resume, hosts are told at once, the threshold is crossed both ways, and a large
//! room's `ok` and `snapshot` carry the first page of members with a cursor.
//!
//! Needs Debian's `redis-server`; real time (the batches are made by the nodes' ticks), bounded
//! waits.

mod common;

use std::time::Duration;

use common::*;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::RedisServer;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;

type Ws = tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>;

/// A node whose rooms are large above 3 members, with this presence interval.
async fn node(redis: &RedisServer, id: &str, interval: Duration) -> Server {
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.redis = vec![redis.url()];
    config.node_id = id.to_string();
    config.full_presence_up_to = 3;
    config.presence_interval = interval;
    Server::start(config).await.expect("a node on Redis")
}

async fn peer(s: &Server, user: &str) -> Peer<Ws> {
    let (ws, _) = connect_async(s.ws_url()).await.expect("connect");
    hello(ws, user).await.0
}

/// The next `online` count `p` is sent.
async fn next_online(p: &mut Peer<Ws>) -> u64 {
    loop {
        let f = p.recv().await;
        if f["t"] == "event" && f["kind"] == "online" {
            return f["count"].as_u64().expect("a count");
        }
    }
}

fn ids(users: &Value) -> Vec<String> {
    users.as_array().expect("a list").iter().map(|u| u["id"].as_str().expect("an id").to_string()).collect()
}

/// Log `p` in to `room` without the users channel.
async fn login_quiet(p: &mut Peer<Ws>, room: &str) -> Value {
    let ok = p.request(json!({"t":"login","room":room,"config":{"max_members":0,"user_status_notify":false}})).await;
    assert_eq!(code(&ok), 0, "{ok}");
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_made_once_for_the_deployment() {
    let redis = RedisServer::start();
    let interval = Duration::from_secs(2);
    let (a, b) = (node(&redis, "a", interval).await, node(&redis, "b", interval).await);
    let mut u1 = peer(&a, "u1").await;
    let mut u2 = peer(&b, "u2").await;
    let mut quiet = peer(&b, "u3").await;
    u1.login("live").await;
    u2.login("live").await;
    let ok = login_quiet(&mut quiet, "live").await;
    assert!(ok.get("users").is_none() && ok.get("users_next").is_none(), "{ok}");
    assert_eq!(kinds(&u1.next_events(2).await), ["users:2:user_add", "users:3:user_add"]);
    assert_eq!(kinds(&u2.next_events(1).await), ["users:3:user_add"]);
    // The fourth member makes the room large: its arrival is batched, its ok has a page.
    let mut u4 = peer(&b, "u4").await;
    let ok = u4.login("live").await;
    assert_eq!(ids(&ok["users"]), ["u1", "u2", "u3"], "{ok}");
    assert_eq!(ok["users_next"], "", "{ok}");
    assert_eq!((ok["online"].as_u64(), &ok["seq"]), (Some(4), &json!({"room":0,"users":3})), "{ok}");
    let first = json!({"added":[{"id":"u4","name":"u4 name"}],"deleted":[],"count":4});
    for p in [&mut u1, &mut u2, &mut u4] {
        let e = p.next_events(1).await;
        assert_eq!(kinds(&e), ["users:4:user_update"], "{}: {e:?}", p.user);
        assert_eq!(json!({"added":e[0]["added"],"deleted":e[0]["deleted"],"count":e[0]["count"]}), first);
    }
    // Within the next interval: u5 and u6 come, u5 goes again, u2 goes: one batch, net.
    let mut u5 = peer(&a, "u5").await;
    let mut u6 = peer(&b, "u6").await;
    u5.login("live").await;
    u6.login("live").await;
    assert_eq!(code(&u5.request(json!({"t":"logout","room":"live"})).await), 0);
    let ok = u2.request(json!({"t":"logout","room":"live"})).await;
    assert!(ok.get("seq").is_none(), "a batched departure produces no event of its own: {ok}");
    let second = json!({"added":[{"id":"u6","name":"u6 name"}],"deleted":[{"id":"u2","name":"u2 name"}],"count":4});
    for p in [&mut u1, &mut u4, &mut u6] {
        let e = p.next_events(1).await;
        assert_eq!(kinds(&e), ["users:5:user_update"], "{}: {e:?}", p.user);
        assert_eq!(json!({"added":e[0]["added"],"deleted":e[0]["deleted"],"count":e[0]["count"]}), second);
    }
    // Nothing more: the batch was made once, not once per node.
    for p in [&mut u1, &mut u4, &mut u6] {
        assert!(p.channel_events().await.is_empty(), "{}", p.user);
    }
    // A member without the users channel gets the exact count.
    let mut counts = Vec::new();
    while counts.last() != Some(&4) {
        counts.push(next_online(&mut quiet).await);
        assert!(counts.len() < 4, "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_a_batch_exactly_once() {
    let redis = RedisServer::start();
    let interval = Duration::from_millis(500);
    let (a, b) = (node(&redis, "a", interval).await, node(&redis, "b", interval).await);
    let (ws, _) = connect_async(a.ws_url()).await.unwrap();
    let (mut alice, welcome) = hello(ws, "alice").await;
    let ok = alice.login("live").await;
    let epoch = ok["room_session"].clone();
    let mut others = Vec::new();
    for u in ["u1", "u2", "u3"] {
        let mut p = peer(&b, u).await;
        p.login("live").await;
        others.push(p);
    }
    // u3's arrival made the room large: alice acks up to u2's user_add, then her connection is
    // gone (not her session); the batch is made meanwhile.
    assert_eq!(kinds(&alice.next_events(2).await), ["users:2:user_add", "users:3:user_add"]);
    let e = others[0].next_events(2).await;
    assert_eq!(kinds(&e), ["users:3:user_add", "users:4:user_update"], "{e:?}");
    drop(alice);
    let (ws, _) = connect_async(b.ws_url()).await.unwrap();
    let mut again = Peer::new(ws, "alice");
    again
        .send(json!({"t":"resume","v":1,"session":welcome["session"],"resume_token":welcome["resume_token"],
            "ack":{"direct":0,"rooms":{"live":{"epoch":epoch,"room":0,"users":3}}}}))
        .await;
    let resumed = again.recv().await;
    assert_eq!(resumed["rooms"]["live"], "replay", "{resumed}");
    let replay = again.recv().await;
    assert_eq!((replay["seq"].as_u64(), replay["kind"].as_str()), (Some(4), Some("user_update")), "{replay}");
    assert_eq!(ids(&replay["added"]), ["u3"], "{replay}");
    assert_eq!(again.recv().await["t"], "resume_done");
    // The next batch comes live, once, right after it.
    let mut u4 = peer(&a, "u4").await;
    u4.login("live").await;
    let e = again.next_events(1).await;
    assert_eq!(kinds(&e), ["users:5:user_update"], "{e:?}");
    assert_eq!(ids(&e[0]["added"]), ["u4"]);
    assert!(again.channel_events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_rooms_ok_and_snapshot_carry_the_first_page() {
    let redis = RedisServer::start();
    let a = node(&redis, "a", Duration::from_secs(1)).await;
    // A small room's ok has the whole list and no cursor.
    let mut x = peer(&a, "x").await;
    let mut y = peer(&a, "y").await;
    x.login("small").await;
    let ok = y.login("small").await;
    assert_eq!((ids(&ok["users"]), ok.get("users_next")), (vec!["x".to_string()], None), "{ok}");
    // 102 members, then one more.
    let mut members = Vec::new();
    let mut welcome50 = Value::Null;
    for i in 0..102 {
        let (ws, _) = connect_async(a.ws_url()).await.unwrap();
        let (mut p, w) = hello(ws, &format!("m{i:03}")).await;
        p.login("live").await;
        if i == 50 {
            welcome50 = w;
        }
        members.push(p);
    }
    let mut zz = peer(&a, "zz").await;
    let ok = zz.login("live").await;
    let page = ids(&ok["users"]);
    assert_eq!(page.len(), 100, "{ok}");
    assert_eq!((page[0].as_str(), page[99].as_str()), ("m000", "m099"));
    assert_eq!((ok["users_next"].as_str(), ok["online"].as_u64()), (Some("m099"), Some(103)), "{ok}");
    let rest = zz.request(json!({"t":"members","room":"live","cursor":"m099","limit":100})).await;
    assert_eq!(
        (ids(&rest["users"]), rest["next"].as_str()),
        (vec!["m100".into(), "m101".into(), "zz".into()], Some(""))
    );
    // A snapshot (nothing acknowledged) has the page of the others too.
    let (ws, _) = connect_async(a.ws_url()).await.unwrap();
    let mut again = Peer::new(ws, "m050");
    again
        .send(json!({"t":"resume","v":1,"session":welcome50["session"],"resume_token":welcome50["resume_token"],"ack":{}}))
        .await;
    let resumed = again.recv().await;
    assert_eq!(resumed["rooms"]["live"], "snapshot", "{resumed}");
    let snapshot = again.recv().await;
    let page = ids(&snapshot["users"]);
    assert_eq!(page.len(), 100, "{snapshot}");
    assert!(!page.contains(&"m050".to_string()), "{snapshot}");
    assert_eq!((page[99].as_str(), snapshot["users_next"].as_str()), ("m100", Some("m100")), "{snapshot}");
    // The first page is cached in Redis (`pg`); a change among its members shows at once: one
    // who sorts first arrives, one on the page leaves, one far behind it arrives (no change).
    let mut first = peer(&a, "a0").await;
    first.login("live").await;
    let gone = members.remove(1);
    let mut gone = gone;
    assert_eq!(gone.request(json!({"t":"logout","room":"live"})).await["t"], "ok");
    let mut late = peer(&a, "zzz").await;
    let ok = late.login("live").await;
    let page = ids(&ok["users"]);
    assert_eq!((page[0].as_str(), page[1].as_str(), page[2].as_str()), ("a0", "m000", "m002"), "{ok}");
    assert_eq!((page.len(), ok["users_next"].as_str()), (100, Some("m099")), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_told_at_once() {
    let redis = RedisServer::start();
    let interval = Duration::from_secs(2);
    let (a, b) = (node(&redis, "a", interval).await, node(&redis, "b", interval).await);
    let mut u1 = peer(&a, "u1").await;
    u1.login("live").await;
    for u in ["u2", "u3", "u4"] {
        peer(&b, u).await.login("live").await;
    }
    let e = u1.next_events(3).await;
    assert_eq!(kinds(&e), ["users:2:user_add", "users:3:user_add", "users:4:user_update"], "{e:?}");
    // Within the next interval, a host arrives and publishes: its arrival leaves the batch and
    // is told on its own, before its stream, to everyone (its own client skips itself).
    let mut host = peer(&b, "host").await;
    host.login("live").await;
    let ok = host.request(json!({"t":"publish","room":"live","stream":"cam","extra":""})).await;
    assert_eq!(ok["seq"], json!({"room":1}), "{ok}");
    assert_eq!(kinds(&host.channel_events().await), ["users:5:user_add"]);
    let e = u1.next_events(2).await;
    assert_eq!(kinds(&e), ["users:5:user_add", "room:1:stream_add"], "{e:?}");
    assert_eq!(ids(&e[0]["users"]), ["host"]);
    // u5 arrives (batched), the host leaves: the batch goes first, then its stream and its
    // user, at once.
    peer(&a, "u5").await.login("live").await;
    let ok = host.request(json!({"t":"logout","room":"live"})).await;
    assert_eq!(ok["seq"], json!({"room":2,"users":7}), "{ok}");
    let e = u1.next_events(3).await;
    assert_eq!(kinds(&e), ["users:6:user_update", "room:2:stream_delete", "users:7:user_delete"], "{e:?}");
    assert_eq!((ids(&e[0]["added"]), e[0]["count"].as_u64()), (vec!["u5".to_string()], Some(6)), "{e:?}");
    // A member who arrives later comes in the next batch, alone.
    peer(&a, "u6").await.login("live").await;
    let e = u1.next_events(1).await;
    assert_eq!((kinds(&e), ids(&e[0]["added"])), (vec!["users:8:user_update".to_string()], vec!["u6".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_is_crossed_both_ways() {
    let redis = RedisServer::start();
    let interval = Duration::from_secs(2);
    let (a, b) = (node(&redis, "a", interval).await, node(&redis, "b", interval).await);
    let mut u1 = peer(&a, "u1").await;
    u1.login("live").await;
    let mut ps = Vec::new();
    for u in ["u2", "u3", "u4"] {
        let mut p = peer(&b, u).await;
        p.login("live").await;
        ps.push(p);
    }
    let e = u1.next_events(3).await;
    assert_eq!(kinds(&e), ["users:2:user_add", "users:3:user_add", "users:4:user_update"], "{e:?}");
    // Back to the threshold: told at once.
    assert_eq!(code(&ps[2].request(json!({"t":"logout","room":"live"})).await), 0);
    assert_eq!(kinds(&u1.next_events(1).await), ["users:5:user_delete"]);
    // Large again (batched: u4 back), larger (u6), then back to the threshold in two
    // departures: the batch still pending is sent first, then the departure that made the
    // room small.
    ps[2].login("live").await;
    let e = u1.next_events(1).await;
    assert_eq!(kinds(&e), ["users:6:user_update"], "{e:?}");
    let mut u6 = peer(&a, "u6").await;
    u6.login("live").await;
    assert_eq!(code(&ps[2].request(json!({"t":"logout","room":"live"})).await), 0);
    let ok = u6.request(json!({"t":"logout","room":"live"})).await;
    assert_eq!(ok["seq"], json!({"users":8}), "{ok}");
    let e = u1.next_events(2).await;
    assert_eq!(kinds(&e), ["users:7:user_update", "users:8:user_delete"], "{e:?}");
    assert_eq!(e[0]["count"], 4, "made before u6 left: {e:?}");
    assert_eq!((ids(&e[0]["added"]), ids(&e[0]["deleted"])), (vec!["u6".to_string()], vec!["u4".to_string()]));
    assert_eq!(ids(&e[1]["users"]), ["u6"]);
    assert!(u1.channel_events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_threshold_wins() {
    let redis = RedisServer::start();
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.redis = vec![redis.url()];
    config.presence_interval = Duration::from_millis(500);
    let own = parlor_server::config::AppSettings { full_presence_up_to: Some(1), ..Default::default() };
    config.app_settings.insert(APP, own);
    let s = Server::start(config).await.expect("a node on Redis");
    let mut u1 = peer(&s, "u1").await;
    u1.login("live").await;
    let ok = peer(&s, "u2").await.login("live").await;
    assert_eq!((ids(&ok["users"]), ok["users_next"].as_str()), (vec!["u1".to_string()], Some("")), "{ok}");
    let e = u1.next_events(1).await;
    assert_eq!((kinds(&e), ids(&e[0]["added"])), (vec!["users:2:user_update".to_string()], vec!["u2".to_string()]));
}

/// The next `user_update` of `p` that `matches`, while `alive` ping (bounded: 60 rounds of at
/// most 300 ms).
async fn update_where(p: &mut Peer<Ws>, alive: &mut [Peer<Ws>], matches: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..60 {
        for k in alive.iter_mut() {
            k.send(json!({"t":"ping"})).await;
        }
        p.send(json!({"t":"ping"})).await;
        let round = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(f) = tokio::time::timeout_at(round, p.recv()).await {
            assert_ne!(f["kind"], "user_delete", "{f}");
            if f["kind"] == "user_update" && matches(&f) {
                return f;
            }
        }
    }
    panic!("{}: no such user_update", p.user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_offline_and_coming_back_are_batched() {
    let redis = RedisServer::start();
    let short = |id: &str| {
        let mut config = ServerConfig::for_tests(APP, SECRET);
        config.redis = vec![redis.url()];
        config.node_id = id.to_string();
        config.full_presence_up_to = 3;
        config.presence_interval = Duration::from_millis(500);
        config.session_timeout = Duration::from_secs(2);
        config
    };
    let a = Server::start(short("a")).await.unwrap();
    let b = Server::start(short("b")).await.unwrap();
    let mut u1 = peer(&a, "u1").await;
    u1.login("live").await;
    let mut alive = Vec::new();
    for u in ["k1", "k2", "k3"] {
        let mut p = peer(&b, u).await;
        p.login("live").await;
        alive.push(p);
    }
    let (ws, _) = connect_async(a.ws_url()).await.unwrap();
    let (mut x, welcome) = hello(ws, "x").await;
    x.login("live").await;
    let has = |list: &'static str| move |f: &Value| ids(&f[list]).contains(&"x".to_string());
    update_where(&mut u1, &mut alive, has("added")).await;
    // x falls silent: offline after the timeout, a departure of a large room (5 -> 4).
    let gone = update_where(&mut u1, &mut alive, has("deleted")).await;
    assert_eq!((ids(&gone["deleted"]), gone["count"].as_u64()), (vec!["x".to_string()], Some(4)), "{gone}");
    assert_eq!(x.recv_until_end().await.1, End::Close(1001));
    // Back within retention, on the other node: an arrival, batched too.
    let (ws, _) = connect_async(b.ws_url()).await.unwrap();
    let mut again = Peer::new(ws, "x");
    again
        .send(json!({"t":"resume","v":1,"session":welcome["session"],"resume_token":welcome["resume_token"],"ack":{}}))
        .await;
    assert_eq!(again.recv().await["rooms"]["live"], "snapshot");
    let back = update_where(&mut u1, &mut alive, has("added")).await;
    assert_eq!((ids(&back["added"]), back["count"].as_u64()), (vec!["x".to_string()], Some(5)), "{back}");
}

/// More than a page of net changes in one batch: `list_changed`, with empty lists. (Timing
/// assumption: the 110 logins after the first batch take less than the 5 s interval, as they
/// take well under one second.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_more_than_a_page_says_list_changed() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a", Duration::from_secs(5)).await, node(&redis, "b", Duration::from_secs(5)).await);
    let mut first = peer(&a, "a0").await;
    first.login("live").await;
    let mut members = Vec::new();
    for i in 1..=3 {
        let mut p = peer(&b, &format!("a{i}")).await;
        p.login("live").await;
        members.push(p);
    }
    let e = first.next_events(3).await;
    assert_eq!(e[2]["kind"], "user_update", "{e:?}");
    for i in 0..110 {
        let s = if i % 2 == 0 { &a } else { &b };
        let mut p = peer(s, &format!("m{i:03}")).await;
        p.login("live").await;
        members.push(p);
    }
    let e = first.next_events(1).await;
    assert_eq!(
        json!({"kind":e[0]["kind"],"added":e[0]["added"],"deleted":e[0]["deleted"],"count":e[0]["count"],"list_changed":e[0]["list_changed"]}),
        json!({"kind":"user_update","added":[],"deleted":[],"count":114,"list_changed":true}),
    );
}
