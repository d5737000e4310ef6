//! `parlor rooms|users|send` against a running server (in this process, on a free loopback
//! port): the built binary's table and `--json` output, that each action happened (raw
//! WebSocket members see it), and the errors for a wrong secret, an unknown room and a server
//! that is not there. The examples of docs/operations.md "Admin API and CLI" are these runs.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_protocol::token::{self, Claims};
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const APP: u32 = 7;
const SECRET: &str = "cli-secret";
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Member {
    ws: Ws,
    next_id: u64,
}

impl Member {
    async fn join(s: &Server, user: &str, name: &str, room: &str) -> Member {
        let ws = tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect").0;
        let mut m = Member { ws, next_id: 0 };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let token = token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now, 3600, "n"));
        m.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user,"name":name},"token":token})).await;
        assert_eq!(m.next(|_| true).await["t"], "welcome");
        let ok = m.request(json!({"t":"login","room":room,"config":{"max_members":0,"user_status_notify":true}})).await;
        assert_eq!(ok["t"], "ok", "{ok}");
        m
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    async fn request(&mut self, mut v: Value) -> Value {
        self.next_id += 1;
        v["id"] = json!(self.next_id);
        self.send(v).await;
        let id = self.next_id;
        self.next(|f| f["id"] == json!(id)).await
    }

    /// The next frame that `pick` takes (others skipped).
    async fn next(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if pick(&v) {
                        return v;
                    }
                }
                Some(Ok(Message::Close(c))) => return json!({"t":"<close>","code":c.map(|c| u16::from(c.code))}),
                Some(Ok(_)) => {}
                other => return json!({"t":"<gone>","why":format!("{other:?}")}),
            }
        }
    }
}

/// Run the built `parlor` with these args against `url`; (exit ok, stdout, stderr).
async fn parlor(url: &str, app: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .env("PARLOR_URL", url)
        .env("PARLOR_APP", app)
        .env_remove("PARLOR_CA")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("parlor runs");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8");
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test]
async fn the_cli_lists_shows_sends_kicks_and_closes() {
    let s = Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts");
    let url = format!("http://{}", s.addr);
    let app = format!("{APP}:{SECRET}");
    let mut alice = Member::join(&s, "alice", "Alice", "lobby").await;
    let mut bob = Member::join(&s, "bob", "Bob", "lobby").await;
    assert_eq!(bob.request(json!({"t":"publish","room":"lobby","stream":"bob-cam","extra":"720p"})).await["t"], "ok");
    let _ = Member::join(&s, "carol", "Carol", "quiet").await;

    let (ok, out, err) = parlor(&url, &app, &["rooms", "list"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "ROOM   USERS  STREAMS  EXTRA\nlobby  2      1        0\nquiet  1      0        0\n");
    let (ok, out, _) = parlor(&url, &app, &["rooms", "list", "--limit", "1"]).await;
    assert!(ok);
    assert_eq!(out, "ROOM   USERS  STREAMS  EXTRA\nlobby  2      1        0\nmore: --cursor 6c6f626279\n");
    let (ok, out, _) = parlor(&url, &app, &["rooms", "list", "--limit", "1", "--cursor", "6c6f626279"]).await;
    assert!(ok);
    assert_eq!(out, "ROOM   USERS  STREAMS  EXTRA\nquiet  1      0        0\n");
    let (ok, out, _) = parlor(&url, &app, &["rooms", "list", "--json"]).await;
    assert!(ok);
    let page: Value = serde_json::from_str(&out).expect("--json prints the API's JSON");
    assert_eq!((page["rooms"][0]["room"].as_str(), &page["next_cursor"]), (Some("lobby"), &Value::Null));
    assert_eq!(page["rooms"][0]["users"], json!([{"id":"alice","name":"Alice"},{"id":"bob","name":"Bob"}]));

    let (ok, out, _) = parlor(&url, &app, &["rooms", "show", "lobby"]).await;
    assert!(ok);
    let epoch = page["rooms"][0]["room_session"].as_str().unwrap();
    let expected = format!(
        "room          lobby\nroom_session  {epoch}\nusers (2)\n  ID     NAME\n  alice  Alice\n  bob    Bob\n\
         streams (1)\n  ID       USER  EXTRA\n  bob-cam  bob   720p\nextra (0)\n  KEY  VALUE  BY\n"
    );
    assert_eq!(out, expected);

    let (ok, out, err) = parlor(&url, &app, &["send", "broadcast", "--room", "lobby", "hello everyone"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "sent broadcast 2 to lobby (seq 2)\n");
    for m in [&mut alice, &mut bob] {
        let ev = m.next(|f| f["kind"] == "broadcast").await;
        assert_eq!((&ev["from"], &ev["message"]), (&json!({"id":"$server","name":"server"}), &json!("hello everyone")));
    }
    let (ok, out, _) =
        parlor(&url, &app, &["send", "broadcast", "--room", "lobby", "wow", "--barrage", "--json"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"message_id":"3","seq":3}));
    assert_eq!(bob.next(|f| f["kind"] == "barrage").await["message"], "wow");

    let (ok, out, _) = parlor(&url, &app, &["send", "command", "--room", "lobby", "mute", "--to", "bob"]).await;
    assert!(ok);
    assert_eq!(out, "sent command to 1 member(s) of lobby\n");
    let ev = bob.next(|f| f["kind"] == "command").await;
    assert_eq!((ev["ch"].as_str(), ev["command"].as_str()), (Some("direct"), Some("mute")));

    let (ok, out, _) = parlor(&url, &app, &["users", "reconnect", "--room", "lobby", "bob"]).await;
    assert!(ok);
    assert!(out.starts_with("reconnecting bob (session "), "{out}");
    assert_eq!(bob.next(|f| f["t"] == "<close>").await["code"], 4010);
    let mut bob = Member::join(&s, "bob", "Bob", "lobby").await;

    let (ok, out, _) = parlor(&url, &app, &["users", "kick", "--room", "lobby", "bob", "--reason", "spam"]).await;
    assert!(ok);
    assert_eq!(out, "kicked bob from lobby\n");
    let kicked = bob.next(|f| f["t"] == "kicked").await;
    assert_eq!(kicked, json!({"t":"kicked","room":"lobby","code":1002055,"extended_data":{"reason":"spam"}}));

    let (ok, out, _) = parlor(&url, &app, &["rooms", "close", "lobby", "--reason", "closing time"]).await;
    assert!(ok);
    assert_eq!(out, "closed lobby\n");
    let kicked = alice.next(|f| f["t"] == "kicked").await;
    assert_eq!(kicked["extended_data"], json!({"reason":"closing time"}));
    let (_, out, _) = parlor(&url, &app, &["rooms", "list"]).await;
    assert_eq!(out, "ROOM   USERS  STREAMS  EXTRA\nquiet  1      0        0\n");
}

#[tokio::test]
async fn the_cli_says_what_went_wrong_and_exits_non_zero() {
    let s = Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts");
    let url = format!("http://{}", s.addr);
    let (ok, out, err) = parlor(&url, "7:wrong", &["rooms", "list"]).await;
    assert!(!ok && out.is_empty());
    assert!(err.contains("the server refused the secret of app 7 (401 unauthorized)"), "{err}");
    let (ok, _, err) = parlor(&url, "8:x", &["rooms", "list"]).await;
    assert!(!ok);
    assert!(err.contains("the server has no app 8 (404 unknown_app)"), "{err}");
    let (ok, _, err) = parlor(&url, &format!("{APP}:{SECRET}"), &["rooms", "show", "nope"]).await;
    assert!(!ok);
    assert!(err.contains("404 no_such_room: no such room"), "{err}");
    let (ok, _, err) = parlor(&url, &format!("{APP}:{SECRET}"), &["send", "broadcast", "--room", "x", ""]).await;
    assert!(!ok);
    assert!(err.contains("400 invalid_field"), "{err}");
    // A port nobody listens on: the server's, after it stopped.
    s.shutdown().await;
    let (ok, _, err) = parlor(&url, &format!("{APP}:{SECRET}"), &["rooms", "list"]).await;
    assert!(!ok);
    assert!(err.contains(&format!("cannot reach the Parlor server at {url}")), "{err}");
    let (ok, _, err) = parlor(&url, "", &["rooms", "list"]).await;
    assert!(!ok);
    assert!(err.contains("ID:SECRET"), "{err}");
}

/// The room and the user (or text) may also be given as positionals or as flags:
/// `users kick ROOM USER`, `users kick --room R --user U`, `send broadcast ROOM TEXT`,
/// `send command --room R --command TEXT --to a,b`, `rooms show --room R`; a missing or an extra
/// argument is a clear error.
#[tokio::test]
async fn the_cli_takes_the_room_as_a_flag_or_a_positional() {
    let s = Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts");
    let url = format!("http://{}", s.addr);
    let app = format!("{APP}:{SECRET}");
    let mut alice = Member::join(&s, "alice", "Alice", "lobby").await;
    let mut bob = Member::join(&s, "bob", "Bob", "lobby").await;

    let (ok, out, err) = parlor(&url, &app, &["send", "broadcast", "lobby", "positional"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("sent broadcast"), "{out}");
    assert_eq!(alice.next(|f| f["kind"] == "broadcast").await["message"], "positional");
    let (ok, _, err) =
        parlor(&url, &app, &["send", "command", "--room", "lobby", "--command", "go", "--to", "bob,alice"]).await;
    assert!(ok, "{err}");
    assert_eq!(bob.next(|f| f["kind"] == "command").await["command"], "go");
    let (ok, out, _) = parlor(&url, &app, &["rooms", "show", "--room", "lobby", "--json"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["room"], "lobby");

    let (ok, _, err) = parlor(&url, &app, &["users", "kick", "lobby"]).await;
    assert!(!ok);
    assert!(err.contains("give the room and the user"), "{err}");
    let (ok, _, err) = parlor(&url, &app, &["users", "kick", "--room", "lobby", "--user", "bob", "extra"]).await;
    assert!(!ok);
    assert!(err.contains("unexpected argument"), "{err}");

    let (ok, out, err) = parlor(&url, &app, &["users", "kick", "lobby", "bob"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "kicked bob from lobby\n");
    assert_eq!(bob.next(|f| f["t"] == "kicked").await["code"], 1002055);
    let (ok, out, err) = parlor(&url, &app, &["users", "kick", "--room", "lobby", "--user", "alice"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "kicked alice from lobby\n");
}
