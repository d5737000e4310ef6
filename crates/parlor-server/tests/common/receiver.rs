//! A webhook receiver on loopback (axum on 127.0.0.1:0) for the webhook tests, and the backend
//! model that rebuilds who is in which room from the webhooks alone.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// 200, after answering 500 to the first `n` requests.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    /// The `Parlor-Signature` header.
    pub signature: String,
    /// The raw body.
    pub body: String,
    /// The body as JSON.
    pub json: Value,
    /// Whether it was answered 200.
    pub accepted: bool,
}

struct St {
    got: Mutex<Vec<Got>>,
    notify: Notify,
    fail: AtomicUsize,
    mode: Mode,
}

/// A receiver.
pub struct Receiver {
    pub url: String,
    st: Arc<St>,
    _task: tokio::task::JoinHandle<()>,
}

async fn hook(axum::extract::State(st): axum::extract::State<Arc<St>>, headers: HeaderMap, body: String) -> StatusCode {
    let signature = headers.get("parlor-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    let accepted = match st.mode {
        Mode::Hang => {
            st.got.lock().push(Got { signature, body, json, accepted: false });
            st.notify.notify_waiters();
            std::future::pending::<()>().await;
            unreachable!()
        }
        Mode::FailFirst(_) => st.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err(),
    };
    st.got.lock().push(Got { signature, body, json, accepted });
    st.notify.notify_waiters();
    if accepted {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let fail = match mode {
            Mode::FailFirst(n) => n,
            Mode::Hang => 0,
        };
        let st =
            Arc::new(St { got: Mutex::new(Vec::new()), notify: Notify::new(), fail: AtomicUsize::new(fail), mode });
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, st, _task: task }
    }

    /// Every request so far, in arrival order.
    pub fn got(&self) -> Vec<Got> {
        self.st.got.lock().clone()
    }

    /// The bodies accepted, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.got().into_iter().filter(|g| g.accepted).map(|g| g.json).collect()
    }

    /// Wait (at most 30 s) until `done` holds for the requests so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Got]) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.st.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if done(&self.st.got.lock()) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        if waited.is_err() {
            let got: Vec<String> = self.got().iter().map(|g| g.body.clone()).collect();
            panic!("the receiver did not get {what} within 30 s; it got {got:#?}");
        }
    }

    /// Wait until an accepted `event` whose `user.id` is `user` arrived.
    pub async fn wait_for_user_event(&self, event: &str, user: &str) {
        self.wait_until(&format!("{event} of {user}"), |got| {
            got.iter().any(|g| g.accepted && g.json["event"] == event && g.json["user"]["id"] == user)
        })
        .await;
    }
}

/// The picture a backend keeps: room → its users, from the webhooks alone (deduped by `id`).
pub fn rebuild(bodies: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut seen = HashSet::new();
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in bodies {
        if !seen.insert(b["id"].as_str().expect("an id").to_string()) {
            continue;
        }
        let room = b["room"].as_str().expect("a room").to_string();
        let user = b["user"]["id"].as_str().map(str::to_string);
        match b["event"].as_str().expect("an event") {
            "room_created" => assert!(rooms.insert(room, BTreeSet::new()).is_none(), "created twice: {b}"),
            "room_closed" => {
                let users = rooms.remove(&room).unwrap_or_else(|| panic!("closed, never created: {b}"));
                assert!(users.is_empty(), "closed with users {users:?}: {b}");
            }
            "user_login" => {
                let users = rooms.get_mut(&room).unwrap_or_else(|| panic!("login before room_created: {b}"));
                users.insert(user.expect("a user"));
            }
            "user_logout" => {
                let users = rooms.get_mut(&room).unwrap_or_else(|| panic!("logout in no room: {b}"));
                assert!(users.remove(&user.expect("a user")), "logout of a user not in the room: {b}");
            }
            _ => {}
        }
    }
    rooms
}

/// What `GET /v1/admin/apps/{app}/rooms` answers, as room → user ids.
pub async fn admin_picture(addr: std::net::SocketAddr, app: u32, secret: &str) -> BTreeMap<String, BTreeSet<String>> {
    let url = format!("http://{addr}/v1/admin/apps/{app}/rooms");
    let client = parlor_server::http_client::client(Duration::from_secs(10), &[]).expect("a client");
    let v: Value =
        client.get(url).bearer_auth(secret).send().await.expect("admin API").json().await.expect("admin JSON");
    let mut out = BTreeMap::new();
    for r in v["rooms"].as_array().expect("rooms") {
        let users = r["users"].as_array().expect("users").iter().map(|u| u["id"].as_str().unwrap().to_string());
        out.insert(r["room"].as_str().unwrap().to_string(), users.collect());
    }
    out
}

/// A peer over TCP, as the webhook tests use them.
pub type TcpPeer = super::Peer<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `hello` as `user` on `s`.
pub async fn peer(s: &parlor_server::Server, user: &str) -> TcpPeer {
    let (ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect");
    super::hello(ws, user).await.0
}

/// The end of the rebuild tests' script, on servers whose session timeout is a few seconds: erin
/// (on `on`) logs in to r3 and goes silent, gina (on `other`) stays there, frank (on `on`)
/// logs in with a token that expires in 2 s; wait (pinging `alive` and gina) until the webhooks
/// tell erin's timeout and frank's expiry; then zed logs in to r4 (on `on`), a last event after
/// which everything before has arrived (one app's events go in order). Returns gina and zed.
pub async fn timeout_and_expiry(
    rx: &Receiver,
    on: &parlor_server::Server,
    other: &parlor_server::Server,
    alive: &mut TcpPeer,
) -> (TcpPeer, TcpPeer) {
    let mut erin = peer(on, "erin").await;
    erin.login("r3").await;
    let mut gina = peer(other, "gina").await;
    gina.login("r3").await;
    let frank_token = super::token_with(|c| {
        c.user_id = "frank".into();
        c.exp = super::now_s() + 2;
    });
    let (ws, _) = tokio_tungstenite::connect_async(on.ws_url()).await.unwrap();
    let mut frank = super::Peer::new(ws, "frank");
    frank
        .send(serde_json::json!({"t":"hello","v":1,"app_id":super::APP,"user":{"id":"frank","name":""},"token":frank_token}))
        .await;
    assert_eq!(frank.recv().await["t"], "welcome");
    frank.login("r3").await;
    drop(erin);
    let left = |bodies: &[Value], u: &str, why: &str| {
        bodies.iter().any(|b| b["event"] == "user_logout" && b["user"]["id"] == u && b["reason"] == why)
    };
    for round in 0.. {
        assert!(round < 100, "no timeout and token expiry within 20 s: {:#?}", rx.accepted());
        alive.barrier().await;
        gina.barrier().await;
        let bodies = rx.accepted();
        if left(&bodies, "erin", "timeout") && left(&bodies, "frank", "token_expired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut zed = peer(on, "zed").await;
    zed.login("r4").await;
    rx.wait_for_user_event("user_login", "zed").await;
    (gina, zed)
}
