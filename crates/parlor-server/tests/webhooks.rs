//! Webhooks on the memory engine, against a real HTTP receiver on loopback: every event with its
//! body, the signature, retries after 500s, order, the queue's bound with a receiver that never
//! answers (the room is not delayed), and a backend that rebuilds who is in which room from the
//! webhooks alone and finds what the admin API says.
//!
//! Real time (an HTTP exchange cannot run on a paused clock: the clock would jump over the
//! attempt's timeout while the receiver answers); short settings.

mod common;

use std::time::Duration;

use common::receiver::{admin_picture, peer, rebuild, timeout_and_expiry, Mode, Receiver};
use common::*;
use parlor_server::webhook::{verify, VerifyError};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};

fn config(url: &str) -> ServerConfig {
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.webhooks = vec![url.to_string()];
    c.webhook.retry_base = Duration::from_millis(20);
    c.webhook.timeout = Duration::from_secs(5);
    c.request_rate = 1000;
    c.room_message_rate = 1000;
    c.user_message_rate = 1000;
    c
}

fn names(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            let mut n = b["event"].as_str().unwrap().to_string();
            if let Some(u) = b["user"]["id"].as_str() {
                n = format!("{n}:{u}");
            }
            if let Some(r) = b["reason"].as_str() {
                n = format!("{n}:{r}");
            }
            if let Some(s) = b["stream"]["id"].as_str() {
                n = format!("{n}:{s}:{}", b["reason_name"].as_str().unwrap_or(""));
            }
            n
        })
        .collect()
}

async fn admin_kick(s: &Server, room: &str, user: &str) {
    assert!(s.node.admin_kick(APP, room, user, "test", tokio::time::Instant::now()).await.expect("reachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_and_in_order() {
    let rx = Receiver::start(Mode::FailFirst(0)).await;
    let s = Server::start(config(&rx.url)).await.unwrap();
    let mut a = peer(&s, "a").await;
    let mut b = peer(&s, "b").await;
    a.login("r").await;
    b.login("r").await;
    assert_eq!(code(&a.request(json!({"t":"publish","room":"r","stream":"s1","extra":"cam"})).await), 0);
    assert_eq!(code(&a.request(json!({"t":"room_extra","room":"r","key":"topic","value":"rust"})).await), 0);
    assert_eq!(code(&a.request(json!({"t":"unpublish","room":"r","stream":"s1"})).await), 0);
    assert_eq!(code(&b.request(json!({"t":"publish","room":"r","stream":"s2"})).await), 0);
    let mut a2 = peer(&s, "a").await;
    a2.login("r").await; // the first session of `a` is kicked with 1002050
    assert_eq!(code(&b.request(json!({"t":"logout","room":"r"})).await), 0);
    assert_eq!(code(&a2.request(json!({"t":"publish","room":"r","stream":"s3"})).await), 0);
    admin_kick(&s, "r", "a").await;
    let expected = [
        "room_created",
        "user_login:a",
        "user_login:b",
        "stream_added:s1:",
        "room_extra_updated",
        "stream_deleted:s1:stopped",
        "stream_added:s2:",
        "user_logout:a:duplicate_login",
        "user_login:a",
        "stream_deleted:s2:logout",
        "user_logout:b:logout",
        "stream_added:s3:",
        "stream_deleted:s3:kicked",
        "user_logout:a:admin_kick",
        "room_closed",
    ];
    rx.wait_until("every event", |g| g.len() >= expected.len()).await;
    let got = rx.got();
    let bodies: Vec<Value> = got.iter().map(|g| g.json.clone()).collect();
    assert_eq!(names(&bodies), expected, "{bodies:#?}");

    // The common fields.
    let epoch = bodies[0]["room_session"].as_str().unwrap().to_string();
    let mut ids = std::collections::HashSet::new();
    let mut last_time = 0;
    for b in &bodies {
        assert_eq!(b["app_id"], APP, "{b}");
        assert_eq!(b["room"], "r", "{b}");
        assert_eq!(b["room_session"], epoch.as_str(), "one life of the room: {b}");
        assert!(ids.insert(b["id"].as_str().unwrap().to_string()), "ids are unique: {b}");
        let t = b["time_ms"].as_u64().unwrap();
        assert!(t >= last_time && t / 1000 <= now_s(), "{b}");
        last_time = t;
    }
    // The event fields.
    assert_eq!(bodies[1]["user"], json!({"id":"a","name":"a name"}));
    assert!(bodies[1]["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_ne!(bodies[1]["session"], bodies[8]["session"], "the duplicate login is another session");
    assert_eq!(bodies[7]["session"], bodies[1]["session"], "the first session is the one that left");
    assert_eq!(bodies[3]["stream"], json!({"id":"s1","user":{"id":"a","name":"a name"},"extra":"cam"}));
    let extra = &bodies[4]["extra"];
    assert_eq!((&extra["key"], &extra["value"], &extra["user"]["id"]), (&json!("topic"), &json!("rust"), &json!("a")));
    assert_eq!(bodies[5]["reason"], 1);
    assert_eq!(bodies[9]["reason"], 5);
    assert_eq!(bodies[12]["reason"], 4);
    assert_eq!(bodies[10].get("code"), None, "a logout is no kick");
    assert_eq!(bodies[7]["code"], 1002050);
    assert_eq!(bodies[13]["code"], 1002055);

    // Signatures: each verifies against its raw body; a changed body or an old timestamp not.
    for g in &got {
        assert_eq!(verify(SECRET, &g.signature, g.body.as_bytes(), now_s(), 300), Ok(()), "{}", g.signature);
    }
    let g = &got[0];
    let tampered = g.body.replace("room_created", "room_closed");
    assert_eq!(verify(SECRET, &g.signature, tampered.as_bytes(), now_s(), 300), Err(VerifyError::Mismatch));
    assert_eq!(verify("wrong", &g.signature, g.body.as_bytes(), now_s(), 300), Err(VerifyError::Mismatch));
    assert_eq!(verify(SECRET, &g.signature, g.body.as_bytes(), now_s() + 301, 300), Err(VerifyError::Expired));
    assert_eq!(s.node.webhooks.dead_letters(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt() {
    let rx = Receiver::start(Mode::FailFirst(2)).await;
    let s = Server::start(config(&rx.url)).await.unwrap();
    let mut a = peer(&s, "a").await;
    a.login("r").await;
    rx.wait_until("the user_login", |g| g.iter().filter(|g| g.accepted).count() == 2).await;
    let got = rx.got();
    assert_eq!(got.len(), 4, "three attempts of room_created, then user_login: {got:#?}");
    assert_eq!(got.iter().map(|g| g.accepted).collect::<Vec<_>>(), [false, false, true, true]);
    assert!(got[..3].iter().all(|g| g.body == got[0].body), "the same event, the same id");
    assert_eq!(names(&rx.accepted()), ["room_created", "user_login:a"], "still in order");
    let c = &s.node.webhooks;
    use std::sync::atomic::Ordering::Relaxed;
    // Both failures are counted before the third attempt goes (the last success may still be
    // on its way back).
    assert_eq!((c.failures.load(Relaxed), c.dead_letters()), (2, 0));
    assert!(c.sent.load(Relaxed) >= 1);
    // And in the metrics (process-wide: other tests of this binary count there too).
    let client = parlor_server::http_client::client(Duration::from_secs(10), &[]).unwrap();
    let text = client.get(format!("http://{}/metrics", s.addr)).send().await.unwrap().text().await.unwrap();
    let failures = text
        .lines()
        .find(|l| l.starts_with(r#"parlor_webhook_failures_total{app="7"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(failures.is_some_and(|n| n >= 2.0), "{text}");
    assert!(text.contains("parlor_webhook_sent_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_costs_the_room_nothing_beyond_the_queue() {
    let rx = Receiver::start(Mode::Hang).await;
    let mut cfg = config(&rx.url);
    cfg.webhook.queue = 10;
    cfg.webhook.timeout = Duration::from_secs(600);
    let s = Server::start(cfg).await.unwrap();
    let mut a = peer(&s, "a").await;
    let mut b = peer(&s, "b").await;
    a.login("r").await;
    b.login("r").await; // 3 events so far: room_created (in flight, hanging), 2 queued
    rx.wait_until("the first attempt", |g| !g.is_empty()).await;
    // 40 more events, each with a broadcast the other member must get while the receiver hangs.
    for i in 0..40 {
        let v = json!({"t":"room_extra","room":"r","key":"k","value":format!("v{i}")});
        assert_eq!(code(&a.request(v).await), 0);
        let ok = a.request(json!({"t":"broadcast","room":"r","message":format!("m{i}")})).await;
        assert_eq!(code(&ok), 0, "{ok}");
    }
    let got: Vec<Value> = {
        let mut out = Vec::new();
        while out.len() < 80 {
            out.extend(b.channel_events().await);
        }
        out
    };
    let broadcasts = got.iter().filter(|e| e["kind"] == "broadcast").count();
    assert_eq!(broadcasts, 40, "the room's traffic is delivered while the receiver hangs");
    // One in flight, ten queued, the rest (3 + 40 - 11) dropped and counted.
    let dropped = s.node.webhooks.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 43 - 11, "dead letters of a full queue");
    assert_eq!(rx.got().len(), 1, "one attempt under way, nothing else sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_rebuilds_the_rooms_from_webhooks_alone() {
    let rx = Receiver::start(Mode::FailFirst(3)).await; // some retries on the way, too
    let mut cfg = config(&rx.url);
    cfg.session_timeout = Duration::from_secs(4);
    cfg.token_warning = Duration::from_secs(0);
    let s = Server::start(cfg).await.unwrap();
    let (mut alice, mut bob, mut carol, mut dave) =
        (peer(&s, "alice").await, peer(&s, "bob").await, peer(&s, "carol").await, peer(&s, "dave").await);
    for p in [&mut alice, &mut bob, &mut carol] {
        p.login("r1").await;
    }
    dave.login("r2").await;
    bob.login("r2").await;
    assert_eq!(code(&bob.request(json!({"t":"logout","room":"r1"})).await), 0);
    let mut alice2 = peer(&s, "alice").await;
    alice2.login("r1").await; // duplicate login: the old session is kicked, alice stays
    admin_kick(&s, "r1", "carol").await;
    assert!(s.node.admin_close_room(APP, "r2", "done", tokio::time::Instant::now()).await.expect("reachable"));
    // erin times out, frank's token expires, zed logs in last (common/receiver.rs).
    let (_gina, mut zed) = timeout_and_expiry(&rx, &s, &s, &mut alice2).await;
    let bodies = rx.accepted();
    let mut reasons: Vec<String> = bodies
        .iter()
        .filter(|b| b["event"] == "user_logout")
        .map(|b| {
            format!(
                "{}:{}:{}",
                b["room"].as_str().unwrap(),
                b["user"]["id"].as_str().unwrap(),
                b["reason"].as_str().unwrap()
            )
        })
        .collect();
    reasons.sort();
    let expected = [
        "r1:alice:duplicate_login",
        "r1:bob:logout",
        "r1:carol:admin_kick",
        "r2:bob:room_closed",
        "r2:dave:room_closed",
        "r3:erin:timeout",
        "r3:frank:token_expired",
    ];
    assert_eq!(reasons, expected, "{bodies:#?}");
    let picture = rebuild(&bodies);
    assert_eq!(picture, admin_picture(s.addr, APP, SECRET).await);
    let r = |users: &[&str]| users.iter().map(|u| u.to_string()).collect::<std::collections::BTreeSet<_>>();
    let expected = [("r1".to_string(), r(&["alice"])), ("r3".into(), r(&["gina"])), ("r4".into(), r(&["zed"]))];
    assert_eq!(picture, expected.into_iter().collect(), "and it is what the script made");
    zed.barrier().await;
}
