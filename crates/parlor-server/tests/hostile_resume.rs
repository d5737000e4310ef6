//! Hostile resumes (protocol §6, §9.3 "A resume can be retried"): a forged, a replayed (used,
//! and the client has since shown it holds the new one) and an old (of a session that has
//! ended) resume token each get `error` 1002057 and the connection stays open for a `hello`;
//! the newest token still works, and a resume whose answer was lost is retried with the same
//! token to the same outcome. On the memory and the
//! Redis engine, while a watcher in the room receives a talker's every message once, in order;
//! its latency is printed (`cargo test -p parlor-server --test hostile_resume -- --nocapture`).

mod common;

use common::bystander::{config, still_serving, Bystanders, Tcp};
use common::{code, hello, Peer};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};

const ROOM: &str = "lobby";

async fn raw(url: &str, user: &str) -> Tcp {
    Peer::new(tokio_tungstenite::connect_async(url).await.expect("connect").0, user)
}

/// `resume` with `session` and `token` on a new connection: the first frame back.
async fn resume(url: &str, session: &Value, token: &Value) -> (Tcp, Value) {
    let mut p = raw(url, "resumer").await;
    p.send(json!({"t":"resume","v":1,"session":session,"resume_token":token,"ack":{"direct":0,"rooms":{}}})).await;
    let first = p.recv().await;
    (p, first)
}

/// Refused with 1002057, and the same connection then takes a `hello` (§9.1).
async fn refused(url: &str, session: &Value, token: &Value, what: &str) {
    let (p, first) = resume(url, session, token).await;
    assert_eq!((first["t"].as_str(), code(&first)), (Some("error"), 1002057), "{what}: {first}");
    let (mut p, _welcome) = hello(p.ws, "fallback").await;
    p.barrier().await;
}

/// A session in the room: its welcome.
async fn session(url: &str, user: &str) -> Value {
    let ws = tokio_tungstenite::connect_async(url).await.expect("connect").0;
    let (mut p, welcome) = hello(ws, user).await;
    p.login(ROOM).await;
    // The connection drops without `bye`: the session stays, resumable.
    drop(p);
    welcome
}

async fn run(c: ServerConfig, engine: &str) {
    let s = Server::start(c).await.expect("server starts");
    let url = s.ws_url();
    let talk = Bystanders::start(&url, ROOM).await;
    for round in 0..10 {
        let w = session(&url, &format!("victim{round}")).await;
        let (sid, rt0) = (&w["session"], &w["resume_token"]);
        // Forged: the right session, a guessed token of the same shape (and a wrong length).
        let forged = json!(format!("{:032x}", rand::random::<u128>()));
        refused(&url, sid, &forged, "forged").await;
        refused(&url, sid, &json!(""), "empty").await;
        refused(&url, sid, &json!(format!("{}0", rt0.as_str().unwrap())), "longer").await;
        // The real one works: `resumed` hands out a new one.
        let (p, first) = resume(&url, sid, rt0).await;
        assert_eq!(first["t"], "resumed", "{first}");
        let rt1 = first["resume_token"].clone();
        assert_ne!(&rt1, rt0);
        // Its answer is lost with the connection: the retry with the same token gets the same
        // session and the same new token.
        drop(p);
        let (mut p, first) = resume(&url, sid, rt0).await;
        assert_eq!((&first["t"], &first["resume_token"]), (&json!("resumed"), &rt1), "a retried resume: {first}");
        // A frame on the resumed connection shows the client holds rt1: rt0 is void from now on.
        p.barrier().await;
        drop(p);
        // Replayed: the used token is void, whether the session is connected or not.
        refused(&url, sid, rt0, "replayed").await;
        // Another session's token does not open this one.
        let other = session(&url, &format!("other{round}")).await;
        refused(&url, sid, &other["resume_token"], "another session's").await;
        // The newest still works (a refused attempt burns nothing), and is then used up too.
        let (mut p, first) = resume(&url, sid, &rt1).await;
        assert_eq!(first["t"], "resumed", "{first}");
        let rt2 = first["resume_token"].clone();
        p.barrier().await;
        refused(&url, sid, &rt1, "replayed after a newer resume").await;
        refused(&url, sid, rt0, "replayed, two resumes old").await;
        // Old: of a session that has ended with `bye`.
        p.send(json!({"t":"bye"})).await;
        let _ = p.recv_until_end().await;
        refused(&url, sid, &rt2, "of an ended session").await;
    }
    talk.finish(
        &format!("resume tokens, {engine} engine: forged, replayed, old, another session's (80 refused, 10 retried)"),
        "error 1002057, connection open",
    )
    .await;
    still_serving(&url, ROOM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_resume_tokens_memory_engine() {
    run(config(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_resume_tokens_redis_engine() {
    let redis = parlor_testkit::RedisServer::start();
    let mut c = config();
    c.redis = vec![redis.url()];
    run(c, "Redis").await;
}
