//! The admin API over HTTP against a real server on a free loopback port: every route of the
//! router is in the OpenAPI document, each endpoint acts (the clients see what it did) and
//! refuses with a status and a stable `code`.

mod common;

use std::collections::BTreeSet;

use common::*;
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

type P = Peer<MaybeTlsStream<TcpStream>>;

async fn server() -> Server {
    Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts")
}

async fn user(s: &Server, id: &str) -> (P, Value) {
    hello(tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect").0, id).await
}

/// One admin request; (status, JSON body).
async fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(s, method, path, body, Some(SECRET)).await
}

async fn call_as(s: &Server, method: &str, path: &str, body: Option<Value>, secret: Option<&str>) -> (u16, Value) {
    let client = parlor_server::http_client::client(std::time::Duration::from_secs(10), &[]).expect("client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("http://{}{path}", s.addr));
    if let Some(secret) = secret {
        req = req.bearer_auth(secret);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the server answers");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: a JSON answer, got {text:?}")))
}

/// Every operation of the router, as (method, path template). The router and the document come
/// from the same registrations (`admin::api`); this list makes a dropped or renamed route fail.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/v1/admin/apps/{app}/rooms"),
    ("get", "/v1/admin/apps/{app}/rooms/{room}"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/close"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/extra"),
    ("delete", "/v1/admin/apps/{app}/rooms/{room}/streams/{stream}"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/kick"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/users/{user}/reconnect"),
    ("post", "/v1/admin/apps/{app}/sessions/{session}/reconnect"),
    ("post", "/v1/admin/apps/{app}/connections/drop"),
    ("get", "/v1/admin/apps/{app}/stats"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/broadcast"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/barrage"),
    ("post", "/v1/admin/apps/{app}/rooms/{room}/command"),
    ("get", "/v1/admin/apps/{app}/rooms/{room}/members"),
    ("get", "/v1/admin/openapi.json"),
];

#[tokio::test]
async fn every_route_of_the_router_is_in_the_document_and_every_documented_one_is_served() {
    let s = server().await;
    let (status, doc) = call_as(&s, "GET", "/v1/admin/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            documented.insert((method.clone(), path.clone()));
            let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
            assert!(statuses.iter().any(|s| s.starts_with('2')), "{method} {path}: a 2xx answer");
            if path != "/v1/admin/openapi.json" {
                assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}: the bearer secret");
                for refusal in ["400", "401", "404", "503"] {
                    assert!(statuses.iter().any(|s| *s == refusal), "{method} {path}: {refusal} documented");
                }
                let unavailable = &op["responses"]["503"]["content"]["application/json"];
                assert_eq!(unavailable["example"]["code"], "unavailable", "{method} {path}: {unavailable}");
            }
        }
    }
    let expected: BTreeSet<(String, String)> = OPERATIONS.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "the document lists exactly the router's operations");
    // Each documented operation reaches its handler (not the catch-all, not 405), and each other
    // method on its path is 405: the router serves what the document says, and no more there.
    for (method, path) in &documented {
        let concrete = path
            .replace("{app}", &APP.to_string())
            .replace("{room}", "nope")
            .replace("{stream}", "s")
            .replace("{user}", "u")
            .replace("{session}", "x");
        let (status, body) = call(&s, &method.to_uppercase(), &concrete, Some(json!({}))).await;
        assert_ne!(status, 405, "{method} {concrete}: {body}");
        assert_ne!(body["code"], "no_such_endpoint", "{method} {concrete}: {body}");
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if documented.contains(&(other.to_lowercase(), path.clone())) {
                continue;
            }
            let (status, body) = call(&s, other, &concrete, None).await;
            assert_eq!((status, body["code"].as_str()), (405, Some("method_not_allowed")), "{other} {concrete}");
        }
    }
    let (status, body) = call(&s, "GET", "/v1/admin/nothing/here", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_such_endpoint")));
}

#[tokio::test]
async fn rooms_are_listed_a_page_at_a_time() {
    let s = server().await;
    let (mut a, _) = user(&s, "a").await;
    for r in ["r3", "r1", "r2"] {
        a.login(r).await;
    }
    let (status, all) = call(&s, "GET", "/v1/admin/apps/7/rooms", None).await;
    assert_eq!(status, 200);
    let ids = |page: &Value| -> Vec<String> {
        page["rooms"].as_array().unwrap().iter().map(|r| r["room"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&all), ["r1", "r2", "r3"]);
    assert_eq!(all["next_cursor"], Value::Null);
    let (_, first) = call(&s, "GET", "/v1/admin/apps/7/rooms?limit=2", None).await;
    assert_eq!(ids(&first), ["r1", "r2"]);
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_string();
    let (_, second) = call(&s, "GET", &format!("/v1/admin/apps/7/rooms?limit=2&cursor={cursor}"), None).await;
    assert_eq!(ids(&second), ["r3"]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(first["rooms"][0]["users"], json!([{"id":"a","name":"a name"}]));
    for (query, code) in [
        ("limit=0", "invalid_field"),
        ("limit=1001", "invalid_field"),
        ("cursor=zz", "invalid_cursor"),
        ("cursor=%2B1", "invalid_cursor"),
        ("limit=x", "bad_request"),
    ] {
        let (status, body) = call(&s, "GET", &format!("/v1/admin/apps/7/rooms?{query}"), None).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{query}: {body}");
    }
}

/// A room's members in pages, with the cursors of the protocol's `members` (§9.9).
#[tokio::test]
async fn members_are_listed_a_page_at_a_time_with_the_protocols_cursors() {
    let s = server().await;
    let mut peers = Vec::new();
    for u in ["c", "a", "b"] {
        let (mut p, _) = user(&s, u).await;
        p.login("r").await;
        peers.push(p);
    }
    let ids = |page: &Value| -> Vec<String> {
        page["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
    };
    let (status, first) = call(&s, "GET", "/v1/admin/apps/7/rooms/r/members?limit=2", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (ids(&first), &first["count"], &first["next_cursor"]),
        (vec!["a".into(), "b".into()], &json!(3), &json!("b"))
    );
    // The protocol's `next` works here, and this cursor there.
    let ws = peers[0].request(json!({"t":"members","room":"r","limit":1})).await;
    assert_eq!(ws["next"], "a", "{ws}");
    let (_, rest) = call(&s, "GET", "/v1/admin/apps/7/rooms/r/members?cursor=a", None).await;
    assert_eq!((ids(&rest), &rest["next_cursor"]), (vec!["b".into(), "c".into()], &Value::Null));
    let ws = peers[0].request(json!({"t":"members","room":"r","cursor":first["next_cursor"]})).await;
    assert_eq!(ids(&ws), ["c"], "{ws}");
    let (status, body) = call(&s, "GET", "/v1/admin/apps/7/rooms/nope/members", None).await;
    assert_eq!(status, 404, "{body}");
    for query in ["limit=0", "limit=501"] {
        let (status, body) = call(&s, "GET", &format!("/v1/admin/apps/7/rooms/r/members?{query}"), None).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_field")), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_server_sends_as_dollar_server_and_its_events_reach_every_member() {
    let s = server().await;
    let (mut a, _) = user(&s, "a").await;
    let (mut b, _) = user(&s, "b").await;
    a.login("r").await;
    b.login("r").await;
    assert_eq!(b.request(json!({"t":"publish","room":"r","stream":"s1","extra":""})).await["t"], "ok");
    let _ = (a.drain().await, b.drain().await);
    let server_user = json!({"id":"$server","name":"server"});

    let (status, sent) =
        call(&s, "POST", "/v1/admin/apps/7/rooms/r/broadcast", Some(json!({"message":"hi all"}))).await;
    assert_eq!(status, 200, "{sent}");
    let (_, barrage) =
        call(&s, "POST", "/v1/admin/apps/7/rooms/r/broadcast", Some(json!({"message":"wow","barrage":true}))).await;
    // The same as `/barrage`.
    let (_, barrage2) = call(&s, "POST", "/v1/admin/apps/7/rooms/r/barrage", Some(json!({"message":"wow2"}))).await;
    let (_, extra) =
        call(&s, "POST", "/v1/admin/apps/7/rooms/r/extra", Some(json!({"key":"topic","value":"news"}))).await;
    let (_, cmd) = call(&s, "POST", "/v1/admin/apps/7/rooms/r/command", Some(json!({"command":"go","to":["b"]}))).await;
    assert_eq!(cmd, json!({"recipients": 1}));
    let (status, deleted) = call(&s, "DELETE", "/v1/admin/apps/7/rooms/r/streams/s1", None).await;
    assert_eq!(status, 200, "{deleted}");
    let mut direct_of_b = Vec::new();
    for (who, p) in [("a", &mut a), ("b", &mut b)] {
        let all = p.events().await;
        if who == "b" {
            direct_of_b = all.iter().filter(|e| e["ch"] == "direct").cloned().collect();
        }
        let ev: Vec<Value> = all.into_iter().filter(|e| e["ch"] == "room").collect();
        let want =
            ["room:2:broadcast", "room:3:barrage", "room:4:barrage", "room:5:room_extra", "room:6:stream_delete"];
        assert_eq!(kinds(&ev), want);
        assert_eq!((&ev[2]["message_id"], &ev[2]["message"]), (&barrage2["message_id"], &json!("wow2")));
        assert_eq!(ev[0]["from"], server_user);
        assert_eq!(ev[0]["message_id"], sent["message_id"]);
        assert_eq!(ev[0]["message"], "hi all");
        assert_eq!(ev[1]["message_id"], barrage["message_id"]);
        assert_eq!(ev[3]["user"], server_user);
        assert_eq!(ev[3]["seq"], extra["seq"]);
        assert_eq!(ev[4]["reason"], 4, "the publisher is told too");
        assert_eq!(ev[4]["seq"], deleted["seq"]);
    }
    assert_eq!(sent["seq"], 2);
    let (_, room) = call(&s, "GET", "/v1/admin/apps/7/rooms/r", None).await;
    assert_eq!(room["streams"], json!([]));
    assert_eq!(room["extra"][0]["user"], server_user);
    // The command went to b only, on its direct channel.
    let _ = call(&s, "POST", "/v1/admin/apps/7/rooms/r/command", Some(json!({"command":"all"}))).await;
    let direct = |evs: Vec<Value>| -> Vec<Value> { evs.into_iter().filter(|e| e["ch"] == "direct").collect() };
    let (da, mut db) = (direct(a.events().await), direct_of_b);
    db.extend(direct(b.events().await));
    assert_eq!(da.iter().map(|e| e["command"].clone()).collect::<Vec<_>>(), [json!("all")]);
    assert_eq!(db.iter().map(|e| e["command"].clone()).collect::<Vec<_>>(), [json!("go"), json!("all")]);
    assert_eq!(db[0]["from"], server_user);

    // Nobody can be $server.
    let mut p = Peer::new(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, "$server");
    p.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"$server","name":"x"},"token":token("$server")})).await;
    let refused = p.recv().await;
    assert_eq!((refused["t"].as_str(), refused["code"].as_u64()), (Some("error"), Some(1002006)), "{refused}");
}

#[tokio::test]
async fn a_forced_reconnect_closes_with_4010_and_the_session_resumes() {
    let s = server().await;
    let (mut a, wa) = user(&s, "a").await;
    let (mut b, _) = user(&s, "b").await;
    a.login("r").await;
    b.login("r").await;
    let _ = a.drain().await;
    let (status, body) = call(&s, "POST", "/v1/admin/apps/7/rooms/r/users/a/reconnect", None).await;
    assert_eq!((status, body["session"].clone()), (200, wa["session"].clone()));
    assert_eq!(a.recv_until_end().await.1, End::Close(4010));
    // The session is still there: a resume puts it back without the others seeing anything.
    let ws = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0;
    let mut a = Peer::new(ws, "a");
    a.send(json!({"t":"resume","v":1,"session":wa["session"],"resume_token":wa["resume_token"],"ack":{"rooms":{}}}))
        .await;
    let resumed = a.recv().await;
    assert_eq!(resumed["t"], "resumed", "{resumed}");
    let (status, body) =
        call(&s, "POST", &format!("/v1/admin/apps/7/sessions/{}/reconnect", wa["session"].as_str().unwrap()), None)
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.recv_until_end().await.1, End::Close(4010));
    assert_eq!(b.events().await.iter().filter(|e| e["ch"] == "users").count(), 0, "b saw nothing");
    let (_, stats) = call(&s, "GET", "/v1/admin/apps/7/stats", None).await;
    assert_eq!(
        (stats["app"].as_u64(), stats["sessions"].as_u64(), stats["rooms"].as_u64()),
        (Some(7), Some(2), Some(1))
    );
    assert_eq!(stats["node"]["engine"], "memory");
}

/// Method, path, body, secret, expected status and code.
type Case = (&'static str, &'static str, Option<Value>, Option<&'static str>, u16, &'static str);

#[tokio::test]
async fn refusals_have_a_status_and_a_stable_code() {
    let s = server().await;
    let (mut a, _) = user(&s, "a").await;
    a.login("r").await;
    let cases: Vec<Case> = vec![
        ("GET", "/v1/admin/apps/7/rooms", None, None, 401, "unauthorized"),
        ("GET", "/v1/admin/apps/7/rooms", None, Some("wrong"), 401, "unauthorized"),
        ("GET", "/v1/admin/apps/8/rooms", None, Some(SECRET), 404, "unknown_app"),
        ("GET", "/v1/admin/apps/x/rooms", None, Some(SECRET), 400, "bad_request"),
        ("GET", "/v1/admin/apps/7/rooms/none", None, Some(SECRET), 404, "no_such_room"),
        ("POST", "/v1/admin/apps/7/rooms/r/kick", Some(json!({"user":"zed"})), Some(SECRET), 404, "no_such_user"),
        ("POST", "/v1/admin/apps/7/rooms/r/kick", Some(json!({"who":"a"})), Some(SECRET), 422, "unprocessable"),
        (
            "POST",
            "/v1/admin/apps/7/rooms/none/broadcast",
            Some(json!({"message":"x"})),
            Some(SECRET),
            404,
            "no_such_room",
        ),
        ("POST", "/v1/admin/apps/7/rooms/r/broadcast", Some(json!({"message":""})), Some(SECRET), 400, "invalid_field"),
        (
            "POST",
            "/v1/admin/apps/7/rooms/r/command",
            Some(json!({"command":"x".repeat(1025)})),
            Some(SECRET),
            400,
            "invalid_field",
        ),
        ("POST", "/v1/admin/apps/7/rooms/r/extra", Some(json!({"key":""})), Some(SECRET), 400, "invalid_field"),
        ("DELETE", "/v1/admin/apps/7/rooms/r/streams/s9", None, Some(SECRET), 404, "no_such_stream"),
        ("POST", "/v1/admin/apps/7/sessions/nope/reconnect", None, Some(SECRET), 404, "no_such_session"),
        ("POST", "/v1/admin/apps/7/rooms/r/users/zed/reconnect", None, Some(SECRET), 404, "no_such_user"),
    ];
    for (method, path, body, secret, status, code) in cases {
        let got = call_as(&s, method, path, body.clone(), secret).await;
        assert_eq!((got.0, got.1["code"].as_str()), (status, Some(code)), "{method} {path} {body:?}: {}", got.1);
        assert!(got.1["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: error text");
    }
    for i in 0..10 {
        let (status, _) =
            call(&s, "POST", "/v1/admin/apps/7/rooms/r/extra", Some(json!({"key":format!("k{i}")}))).await;
        assert_eq!(status, 200);
    }
    let (status, body) = call(&s, "POST", "/v1/admin/apps/7/rooms/r/extra", Some(json!({"key":"k10"}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("too_many_extra_keys")));
    let (status, _) = call(&s, "POST", "/v1/admin/apps/7/rooms/r/extra", Some(json!({"key":"k3","value":"v"}))).await;
    assert_eq!(status, 200, "an existing key can still be set");
}
