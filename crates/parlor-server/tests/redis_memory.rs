//! What the Redis engine costs Redis: memory per session and per room, measured with
//! `INFO memory` around 400 sessions in 40 rooms (printed; `docs/operations.md` quotes a run).
//! The bounds asserted are generous: they catch a leak or a layout mistake (a copy of every
//! event per member, say), not a few bytes.

mod common;

use common::*;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::RedisServer;
use tokio_tungstenite::connect_async;

fn used_memory(redis: &RedisServer) -> i64 {
    let info = redis.cmd(&["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_per_session_and_per_room() {
    const SESSIONS: usize = 400;
    const ROOMS: usize = 40;
    let redis = RedisServer::start();
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.redis = vec![redis.url()];
    let s = Server::start(config).await.unwrap();
    let base = used_memory(&redis);
    let mut peers = Vec::new();
    for i in 0..SESSIONS {
        let (ws, _) = connect_async(s.ws_url()).await.unwrap();
        peers.push(hello(ws, &format!("user{i}")).await.0);
    }
    let after_sessions = used_memory(&redis);
    for (i, p) in peers.iter_mut().enumerate() {
        p.login(&format!("room{}", i % ROOMS)).await;
    }
    let after_rooms = used_memory(&redis);
    let per_session = (after_sessions - base) / SESSIONS as i64;
    // A membership is a session in a room: its records in the room and in the session, and the
    // room's share (meta, logs with the members' `user_add`).
    let per_member = (after_rooms - after_sessions) / SESSIONS as i64;
    let per_room_of_10 = (after_rooms - after_sessions) / ROOMS as i64;
    println!("Redis memory: {per_session} B per session (no room), {per_member} B per session in a room of 10, {per_room_of_10} B per room of 10 members");
    assert!(per_session < 4 * 1024, "{per_session} B per idle session");
    assert!(per_member < 8 * 1024, "{per_member} B per membership");
    assert_eq!(s.node.stats().await.expect("reachable").rooms, ROOMS);
}
