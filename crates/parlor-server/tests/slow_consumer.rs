//! A slow consumer (§1, close code 4008): a member that reads nothing is cut at the outbound
//! limit while the room's fan-out goes on for the others; once it reads again it catches up by
//! resume with every event exactly once, in `seq` order; and a member that never reads again
//! does not hold its connection on the server. In-memory server, tokio's paused clock.

mod common;

use std::time::Duration;

use common::*;
use parlor_protocol::close_code;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type P = Peer<DuplexStream>;

/// The outbound limit of these tests: far below what the pipes and the writer's buffer hold,
/// so that the queue, not the transport, is what fills.
const LIMIT: usize = 32 * 1024;
/// Broadcasts sent: about 1.2 MB to each member, more than the pipes (~0.5 MB), the writer's
/// buffer and the queue together.
const N: usize = 1200;

fn server() -> MemoryServer {
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.user_message_rate = 1_000_000;
    c.room_message_rate = 1_000_000;
    c.request_rate = 1_000_000;
    c.outbound_limit = LIMIT;
    MemoryServer::start(c)
}

/// Message `i`: ~1 000 bytes (the protocol's limit is 1 024), numbered.
fn message(i: usize) -> String {
    format!("{i:05}:{}", "x".repeat(994))
}

/// The room-channel broadcasts among `frames`, as (seq, message number).
fn broadcasts(frames: &[Value]) -> Vec<(u64, usize)> {
    frames
        .iter()
        .filter(|f| f["t"] == "event" && f["ch"] == "room" && f["kind"] == "broadcast")
        .map(|f| {
            let n = f["message"].as_str().unwrap()[..5].parse().unwrap();
            (f["seq"].as_u64().unwrap(), n)
        })
        .collect()
}

/// A member that reads in its own task until it has `n` broadcasts; returns them (and the
/// member, whose connection stays open).
fn reader(mut p: P, n: usize) -> tokio::task::JoinHandle<(Vec<(u64, usize)>, P)> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < n {
            let f = p.recv().await;
            got.extend(broadcasts(std::slice::from_ref(&f)));
        }
        (got, p)
    })
}

/// Exactly messages 0..n, once each, on contiguous seqs after `from`.
fn assert_all_once_in_order(who: &str, got: &[(u64, usize)], from: u64, n: usize) {
    assert_eq!(got.len(), n, "{who}: {} broadcasts, not {n}", got.len());
    for (k, &(seq, i)) in got.iter().enumerate() {
        assert_eq!((seq, i), (from + 1 + k as u64, k), "{who}: broadcast {k} out of order or missing");
    }
}

/// Wait (on the paused clock, bounded) until the node serves `n` connected sessions.
async fn until_connected(s: &MemoryServer, n: usize) {
    timeout(Duration::from_secs(10), async {
        while s.node().hub.connected() != n {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server still serves {} sessions, not {n}", s.node().hub.connected()));
}

#[tokio::test(start_paused = true)]
async fn a_member_that_reads_nothing_is_cut_and_catches_up_by_resume() {
    let s = server();
    let (mut sender, _) = hello(s.connect().await, "s").await;
    let (mut a, _) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    let (mut z, wz) = hello(s.connect().await, "z").await;
    sender.login("r").await;
    a.login("r").await;
    b.login("r").await;
    let ok = z.login("r").await;
    let (epoch, from) = (ok["room_session"].clone(), ok["seq"]["room"].as_u64().unwrap());
    let users = ok["seq"]["users"].as_u64().unwrap();
    let (a, b) = (reader(a, N), reader(b, N));

    // z reads nothing from here on: its pipe fills, then its queue, and the server cuts it.
    for i in 0..N {
        let ok = sender.request(json!({"t":"broadcast","room":"r","message":message(i)})).await;
        assert_eq!(ok["t"], "ok", "broadcast {i}: {ok}");
    }
    // The others got everything while z was stuck: the fan-out never waited for it.
    let (got_a, _a) = a.await.unwrap();
    let (got_b, _b) = b.await.unwrap();
    assert_all_once_in_order("a", &got_a, from, N);
    assert_all_once_in_order("b", &got_b, from, N);
    // z was cut while it still read nothing: at the limit, not when it came back.
    until_connected(&s, 3).await;

    // z reads again: what the transport held, then the close with 4008.
    let (frames, end) = z.recv_until_end().await;
    assert_eq!(end, End::Close(close_code::SLOW_CONSUMER), "z's connection ended with {end:?}");
    let before = broadcasts(&frames);
    assert!(!before.is_empty() && before.len() < N, "z got {} of {N} before the cut", before.len());
    let last = before.last().unwrap().0;
    let users_seq = frames
        .iter()
        .filter(|f| f["t"] == "event" && f["ch"] == "users")
        .filter_map(|f| f["seq"].as_u64())
        .fold(users, u64::max);

    // It resumes with what it has; the rest is replayed from the room log.
    let (mut z, _old) = z.on(s.connect().await);
    let ack = json!({"direct":0,"rooms":{"r":{"epoch":epoch,"room":last,"users":users_seq}}});
    z.send(json!({"t":"resume","v":1,"session":wz["session"],"resume_token":wz["resume_token"],"ack":ack})).await;
    let resumed = z.recv().await;
    assert_eq!(resumed["t"], "resumed", "{resumed}");
    assert_eq!(resumed["rooms"], json!({"r":"replay"}), "the log covers what z missed");
    let mut replay = Vec::new();
    loop {
        let f = z.recv().await;
        if f["t"] == "resume_done" {
            break;
        }
        replay.push(f);
    }
    let mut all = before;
    all.extend(broadcasts(&replay));
    assert_all_once_in_order("z", &all, from, N);
    until_connected(&s, 4).await;
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_reads_again_does_not_hold_its_connection() {
    let s = server();
    let (mut sender, _) = hello(s.connect().await, "s").await;
    sender.login("r").await;
    // z's connection is served straight on a small pipe, so that the test sees its serve task end.
    let (client, server_end) = tokio::io::duplex(8 * 1024);
    let node = s.node();
    let config = parlor_server::ws::ws_config(node.config.max_frame);
    let served = tokio::spawn(async move {
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, Some(config)).await;
        parlor_server::ws::serve(node, ws).await;
    });
    let ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    let (mut z, _) = hello(ws, "z").await;
    z.login("r").await;
    for i in 0..200 {
        let ok = sender.request(json!({"t":"broadcast","room":"r","message":message(i)})).await;
        assert_eq!(ok["t"], "ok", "broadcast {i}: {ok}");
    }
    until_connected(&s, 1).await;
    // z never reads again and keeps its end open: the server still lets the connection go
    // (its socket, its queue and the writer's buffer) within a bounded time.
    timeout(Duration::from_secs(60), served)
        .await
        .expect("the server still holds the connection of a member that reads nothing")
        .unwrap();
    drop(z);
}

/// On a real socket the kernel's send buffer of a peer that reads nothing is capped
/// (`NOTSENT_LOWAT`): the queue fills and the cut comes after about the limit plus the small
/// buffers on the way, not after the megabytes a send buffer grows to on its own.
#[tokio::test]
async fn on_a_real_socket_a_stalled_peer_is_cut_after_little_more_than_the_limit() {
    let mut c = ServerConfig::for_tests(APP, SECRET);
    c.user_message_rate = 1_000_000;
    c.room_message_rate = 1_000_000;
    c.request_rate = 1_000_000;
    c.outbound_limit = LIMIT;
    let server = parlor_server::Server::start(c).await.unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
    let (mut sender, _) = hello(ws, "s").await;
    sender.login("r").await;
    // z: a small receive buffer, as a phone on a bad link.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await.unwrap();
    let (mut z, _) = hello(ws, "z").await;
    z.login("r").await;
    // 4 MB to z, which reads nothing; the sender waits for each `ok`, so nothing is rushed.
    let mut i = 0;
    while server.node.hub.connected() == 2 && i < 4000 {
        let ok = sender.request(json!({"t":"broadcast","room":"r","message":message(i)})).await;
        assert_eq!(ok["t"], "ok", "broadcast {i}: {ok}");
        i += 1;
    }
    timeout(Duration::from_secs(10), async {
        while server.node.hub.connected() != 1 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("4 MB later the peer that reads nothing is still connected");
    let (frames, end) = z.recv_until_end().await;
    assert_eq!(end, End::Close(close_code::SLOW_CONSUMER));
    let got: usize = frames.iter().map(|f| f.to_string().len()).sum();
    assert!(got < 512 * 1024, "the transport held {got} bytes for a peer that read nothing (limit {LIMIT})");
    server.shutdown().await;
}
