//! A graceful drain on tokio's paused clock, in-process: `/readyz` flips to 503 at once, new
//! upgrades are refused with 503 + `Retry-After` while `/healthz` still answers, and the open
//! connections are closed with 4010 in batches spread over the drain time, all of them before
//! it ends. (Under load across real Redis nodes: `parlor-client`'s `tests/drain.rs`.)

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use tokio::time::Instant;
use tower::ServiceExt;

const DRAIN_TIME: Duration = Duration::from_secs(10);

async fn get(router: &axum::Router, path: &str, upgrade: bool) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get(path);
    if upgrade {
        req = req
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
    }
    let res = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let retry = res.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, retry, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(start_paused = true)]
async fn a_drain_spreads_the_closes_and_shuts_the_door_at_once() {
    const N: usize = 40;
    let config = ServerConfig { drain_time: DRAIN_TIME, ..ServerConfig::for_tests(APP, SECRET) };
    let server = MemoryServer::start(config);
    let node = server.node();
    let router = parlor_server::http::router(node.clone());
    assert_eq!(get(&router, "/readyz", false).await.0, StatusCode::OK);
    assert_eq!(get(&router, "/readyz", false).await.2, r#"{"status":"ready"}"#);
    let mut peers = Vec::new();
    for i in 0..N {
        peers.push(hello(server.connect().await, &format!("u{i}")).await.0);
    }

    let start = Instant::now();
    let drain = parlor_server::drain::drain(&node);
    tokio::pin!(drain);
    // One poll: the door closes before the drain's first wait.
    tokio::select! {
        biased;
        _ = &mut drain => panic!("a drain of {N} connections over {DRAIN_TIME:?} ended at once"),
        _ = std::future::ready(()) => {}
    }
    let (status, _, body) = get(&router, "/readyz", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#));
    let (status, retry, body) = get(&router, "/v1/ws", true).await;
    assert_eq!((status, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("1")), "{body}");
    assert_eq!(get(&router, "/healthz", false).await.0, StatusCode::OK, "liveness stays");
    assert_eq!(get(&router, "/metrics", false).await.0, StatusCode::OK);

    let closes = futures_util::future::join_all(peers.iter_mut().map(|p| async move {
        let (_, end) = p.recv_until_end().await;
        (end, Instant::now().duration_since(start))
    }));
    let (report, closes) = tokio::join!(drain, closes);
    assert_eq!(report.closed, N, "{report:?}");
    assert_eq!(report.left, 0, "every connection task ended: {report:?}");
    assert!(closes.iter().all(|(end, _)| *end == End::Close(4010)), "{closes:?}");
    let mut times: Vec<Duration> = closes.iter().map(|(_, t)| *t).collect();
    times.sort();
    let first = times.iter().filter(|t| **t == times[0]).count();
    assert!(first < N / 4, "{first} of {N} closed in the first batch: {times:?}");
    assert!(*times.last().unwrap() <= DRAIN_TIME, "the last close after the drain time: {times:?}");
    let late = times.iter().filter(|t| **t >= DRAIN_TIME / 2).count();
    assert!(late >= N / 4, "only {late} of {N} closed in the second half: {times:?}");
    times.dedup();
    assert!(times.len() >= N / 2, "{} distinct close times for {N} connections: {times:?}", times.len());
    assert!(Instant::now().duration_since(start) <= DRAIN_TIME + parlor_server::drain::DRAIN_GRACE);
}

#[tokio::test(start_paused = true)]
async fn a_drain_time_of_zero_closes_everything_at_once() {
    let config = ServerConfig { drain_time: Duration::ZERO, ..ServerConfig::for_tests(APP, SECRET) };
    let server = MemoryServer::start(config);
    let mut peers = Vec::new();
    for i in 0..5 {
        peers.push(hello(server.connect().await, &format!("u{i}")).await.0);
    }
    let node = server.node();
    let start = Instant::now();
    let closes = futures_util::future::join_all(peers.iter_mut().map(|p| async move {
        let (_, end) = p.recv_until_end().await;
        (end, Instant::now().duration_since(start))
    }));
    let (report, closes) = tokio::join!(parlor_server::drain::drain(&node), closes);
    assert_eq!((report.closed, report.batches, report.left), (5, 1, 0), "{report:?}");
    assert!(closes.iter().all(|c| *c == (End::Close(4010), Duration::ZERO)), "{closes:?}");
}

/// The door stays shut for the whole drain time, even when the last connection ended long
/// before: a balancer probing `/readyz` every second sees 503 on every probe until the drain
/// ends, and only then does the drain return (and the process exit).
#[tokio::test(start_paused = true)]
async fn the_door_stays_shut_for_the_whole_drain_time_after_the_last_connection() {
    let config = ServerConfig { drain_time: DRAIN_TIME, ..ServerConfig::for_tests(APP, SECRET) };
    let server = MemoryServer::start(config);
    let node = server.node();
    let router = parlor_server::http::router(node.clone());
    let mut peer = hello(server.connect().await, "u1").await.0;
    let start = Instant::now();
    let drain = tokio::spawn({
        let node = node.clone();
        async move {
            let report = parlor_server::drain::drain(&node).await;
            (report, Instant::now())
        }
    });
    // One connection: closed in the first batch, at once.
    let (_, end) = peer.recv_until_end().await;
    assert_eq!(end, End::Close(4010));
    assert!(Instant::now().duration_since(start) < DRAIN_TIME / 10, "closed at {:?}", start.elapsed());
    for probe in 1..DRAIN_TIME.as_secs() {
        tokio::time::sleep_until(start + Duration::from_secs(probe)).await;
        assert!(!drain.is_finished(), "the drain ended {probe} s into a {DRAIN_TIME:?} drain");
        let (status, _, body) = get(&router, "/readyz", false).await;
        assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#), "{probe} s");
        let (status, retry, body) = get(&router, "/v1/ws", true).await;
        assert_eq!((status, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("1")), "{probe} s: {body}");
    }
    let (report, ended) = drain.await.expect("the drain task");
    assert_eq!((report.closed, report.left), (1, 0), "{report:?}");
    let took = ended.duration_since(start);
    assert!(took >= DRAIN_TIME && took <= DRAIN_TIME + parlor_server::drain::DRAIN_GRACE, "the drain took {took:?}");
}

/// A node without a single connection drains for its whole drain time too.
#[tokio::test(start_paused = true)]
async fn an_idle_node_drains_for_its_drain_time() {
    let config = ServerConfig { drain_time: DRAIN_TIME, ..ServerConfig::for_tests(APP, SECRET) };
    let server = MemoryServer::start(config);
    let start = Instant::now();
    let report = parlor_server::drain::drain(&server.node()).await;
    assert_eq!((report.closed, report.left), (0, 0), "{report:?}");
    assert_eq!(Instant::now().duration_since(start), DRAIN_TIME);
}
