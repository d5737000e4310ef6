//! `/metrics` answers the questions `docs/operations.md` lists: a scripted mix of logins,
//! messages, a rate refusal, a duplicate login, resumes (replayed and refused) and a bad hello
//! moves every counter it should, and every metric the Grafana dashboard
//! (`docs/grafana/parlor.json`) queries is exported.
//!
//! Its own test binary: the Prometheus recorder is process-wide.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{hello, Peer, APP, SECRET};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Tcp = Peer<MaybeTlsStream<TcpStream>>;

async fn ws(server: &Server) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    tokio_tungstenite::connect_async(server.ws_url()).await.expect("connect").0
}

async fn scrape(server: &Server) -> String {
    let client = parlor_server::http_client::client(Duration::from_secs(10), b"").unwrap();
    let url = format!("http://{}/metrics", server.addr);
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels as written, e.g. `outcome="ok"`), summed over
/// every series that has them.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && rest.contains(labels)
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Every metric name in the text (histogram series under their base name).
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .map(|n| {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = n.strip_suffix(suffix) {
                    return base.to_string();
                }
            }
            n
        })
        .collect()
}

#[tokio::test]
async fn metrics_follow_what_happens() {
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.user_message_rate = 2;
    let server = Server::start(config).await.unwrap();

    let (mut a, wa): (Tcp, Value) = hello(ws(&server).await, "a").await;
    let (mut b, _) = hello(ws(&server).await, "b").await;
    let ok = a.login("r").await;
    b.login("r").await;
    // Two broadcasts pass, the third in the same second is over the user rate (1002073).
    for i in 0..3 {
        a.request(json!({"t":"broadcast","room":"r","message":format!("m{i}")})).await;
    }
    // b logs in again elsewhere: the first b is kicked with 1002050.
    let (mut b2, _) = hello(ws(&server).await, "b").await;
    b2.login("r").await;
    let kicked = loop {
        let f = b.recv().await;
        if f["t"] == "kicked" {
            break f;
        }
    };
    assert_eq!(kicked["code"], 1002050, "{kicked}");

    // A resume with a wrong token is refused; with the right one it replays (the ack is what a
    // had at its login: everything since is in the log).
    let mut ack = json!({"direct":0,"rooms":{}});
    ack["rooms"]["r"] = json!({"epoch": ok["room_session"], "room": ok["seq"]["room"], "users": ok["seq"]["users"]});
    let mut other = Peer::new(ws(&server).await, "a");
    other.send(json!({"t":"resume","v":1,"session":wa["session"],"resume_token":"wrong","ack":ack.clone()})).await;
    let refused = other.recv().await;
    assert_eq!(refused["code"], 1002057, "{refused}");
    drop(a);
    let mut again = Peer::new(ws(&server).await, "a");
    again.send(json!({"t":"resume","v":1,"session":wa["session"],"resume_token":wa["resume_token"],"ack":ack})).await;
    assert_eq!(again.recv().await["t"], "resumed");

    // A hello with a bad token.
    let mut bad = Peer::new(ws(&server).await, "c");
    bad.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"c","name":"c"},"token":"nope"})).await;
    assert_eq!(bad.recv().await["t"], "error");

    again.barrier().await;
    // The gauges are set every 10th tick.
    for _ in 0..10 {
        server.node.tick(tokio::time::Instant::now()).await;
    }
    let text = scrape(&server).await;

    assert!(sample(&text, "parlor_logins_total", r#"outcome="ok""#) >= 3.0, "{text}");
    assert!(sample(&text, "parlor_login_seconds_count", "") >= 3.0, "{text}");
    assert!(sample(&text, "parlor_fanout_seconds_count", "") >= 2.0, "{text}");
    assert!(sample(&text, "parlor_rate_limited_total", r#"code="1002073""#) >= 1.0, "{text}");
    assert!(sample(&text, "parlor_kicks_total", r#"code="1002050""#) >= 1.0, "{text}");
    assert!(sample(&text, "parlor_resumes_total", r#"outcome="refused""#) >= 1.0, "{text}");
    assert!(sample(&text, "parlor_resumes_total", r#"outcome="replay""#) >= 1.0, "{text}");
    assert!(sample(&text, "parlor_hellos_refused_total", r#"code="1002033""#) >= 1.0, "{text}");
    assert!(sample(&text, "parlor_events_total", "") >= 4.0, "{text}");
    assert!(sample(&text, "parlor_deliveries_total", "") >= 2.0, "{text}");
    assert_eq!(sample(&text, "parlor_rooms", ""), 1.0, "{text}");
    assert!(sample(&text, "parlor_sessions", "") >= 3.0, "{text}");
    assert!(sample(&text, "parlor_sessions_connected", "") >= 2.0, "{text}");
    // Histograms have buckets, so that a dashboard can take quantiles over nodes.
    assert!(text.contains("parlor_login_seconds_bucket{le="), "{text}");

    // Every metric the dashboard queries exists, except those that only a feature not used
    // here exports (Redis; webhooks; the door's and the offline reaper's counters, which
    // appear with their first count).
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../docs/grafana/parlor.json")).expect("the dashboard is JSON");
    let exported = names(&text);
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("parlor_") {
                    queried.insert(names(&format!("{word} 0")).into_iter().next().unwrap());
                }
            }
        }
    }
    let only_when_used = [
        "parlor_redis_",
        "parlor_webhook_",
        "parlor_upgrades_refused",
        "parlor_slow_consumer",
        "parlor_sessions_offline",
        "parlor_sessions_expired",
        "parlor_offline_sessions_dropped",
    ];
    let missing: Vec<&String> =
        queried.iter().filter(|q| !exported.contains(*q) && !only_when_used.iter().any(|p| q.starts_with(p))).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics /metrics lacks: {missing:?}\n{text}");
    assert!(queried.len() >= 20, "the dashboard queries {} metrics", queried.len());
    // Every metric the dashboard queries is described (has # HELP), used or not yet.
    for q in &queried {
        assert!(
            text.contains(&format!("# HELP {q} ")) || only_when_used.iter().any(|p| q.starts_with(p)),
            "{q} has no description"
        );
    }
}
