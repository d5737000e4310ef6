//! Hostile tokens (protocol §2, §9.1 "Tokens"): `alg` none and RS256, a `kid` header, a future
//! `iat`, absurd `exp`s, an integer `nonce`. Each is refused with 1002033 (in `hello`: then
//! close 1008; in `login`: the connection stays) or accepted, as documented, while a watcher in
//! the room receives a talker's every message once, in order; its latency is printed
//! (`cargo test -p parlor-server --test hostile_tokens -- --nocapture`).

mod common;

use base64::Engine;
use common::bystander::{config, connect, still_serving, Bystanders};
use common::{code, now_s, End, Peer, APP, SECRET};
use parlor_server::Server;
use serde_json::{json, Value};

/// A JWT with any header and claims, signed HS256 with the app's secret whatever the header
/// says, or unsigned.
fn forge(header: Value, claims: Value, signed: bool) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = if signed {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap()
    } else {
        String::new()
    };
    format!("{input}.{sig}")
}

struct Case {
    abuse: &'static str,
    header: Value,
    claims: fn(&mut Value, u64),
    signed: bool,
    /// 0: accepted.
    code: u64,
}

fn cases() -> Vec<Case> {
    let hs = || json!({"alg":"HS256","typ":"JWT"});
    vec![
        Case {
            abuse: "alg none, unsigned",
            header: json!({"alg":"none"}),
            claims: |_, _| {},
            signed: false,
            code: 1002033,
        },
        Case {
            abuse: "alg RS256 (HMAC-signed)",
            header: json!({"alg":"RS256"}),
            claims: |_, _| {},
            signed: true,
            code: 1002033,
        },
        Case {
            abuse: "kid header",
            header: json!({"alg":"HS256","kid":"../../etc/passwd"}),
            claims: |_, _| {},
            signed: true,
            code: 0,
        },
        Case {
            abuse: "iat 1 h in the future",
            header: hs(),
            claims: |c, now| c["iat"] = json!(now + 3600),
            signed: true,
            code: 1002033,
        },
        Case {
            abuse: "iat 10 s in the future",
            header: hs(),
            claims: |c, now| c["iat"] = json!(now + 10),
            signed: true,
            code: 0,
        },
        Case { abuse: "exp u64::MAX", header: hs(), claims: |c, _| c["exp"] = json!(u64::MAX), signed: true, code: 0 },
        Case { abuse: "exp 1e300", header: hs(), claims: |c, _| c["exp"] = json!(1e300), signed: true, code: 0 },
        Case { abuse: "exp negative", header: hs(), claims: |c, _| c["exp"] = json!(-1), signed: true, code: 1002033 },
        Case {
            abuse: "exp a float",
            header: hs(),
            claims: |c, now| c["exp"] = json!(now as f64 + 3600.5),
            signed: true,
            code: 0,
        },
        Case {
            abuse: "exp a string",
            header: hs(),
            claims: |c, _| c["exp"] = json!("never"),
            signed: true,
            code: 1002033,
        },
        Case {
            abuse: "nonce an integer",
            header: hs(),
            claims: |c, _| c["nonce"] = json!(8_207_519_311_u64),
            signed: true,
            code: 0,
        },
    ]
}

fn token(case: &Case, user: &str, room: Option<&str>) -> String {
    let now = now_s();
    let mut claims = json!({"app_id":APP,"user_id":user,"iat":now,"exp":now + 3600,"nonce":"n"});
    if let Some(room) = room {
        claims["room_id"] = json!(room);
    }
    (case.claims)(&mut claims, now);
    forge(case.header.clone(), claims, case.signed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_get_their_documented_codes() {
    let s = Server::start(config()).await.expect("server starts");
    let url = s.ws_url();
    for (n, case) in cases().iter().enumerate() {
        let room = format!("tokens{n}");
        let talk = Bystanders::start(&url, &room).await;
        for round in 0..20 {
            // In `hello`: refused with its code and closed with 1008, or welcomed.
            let user = format!("a{n}x{round}");
            let ws = tokio_tungstenite::connect_async(&url).await.expect("connect").0;
            let mut p = Peer::new(ws, &user);
            p.send(
                json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user,"name":""},"token":token(case, &user, None)}),
            )
            .await;
            let first = p.recv().await;
            if case.code == 0 {
                assert_eq!(first["t"], "welcome", "{}: {first}", case.abuse);
                // The session's token serves a login, and a renewal.
                p.login(&room).await;
                let ok = p.request(json!({"t":"renew_token","token":token(case, &user, None)})).await;
                assert_eq!(code(&ok), 0, "{}: renew {ok}", case.abuse);
            } else {
                assert_eq!((first["t"].as_str(), code(&first)), (Some("error"), case.code), "{}", case.abuse);
                let (rest, end) = p.recv_until_end().await;
                assert!(rest.is_empty(), "{rest:?}");
                assert_eq!(end, End::Close(1008), "{}", case.abuse);
            }
            // In `login` (a token of its own, for that room): the same verdict, the connection open.
            let mut p = connect(&url, &format!("b{n}x{round}")).await;
            let ok = p
                .request(json!({"t":"login","room":room,"config":{"max_members":0,"user_status_notify":true},
                    "token":token(case, &p.user.clone(), Some(&room))}))
                .await;
            assert_eq!(code(&ok), case.code, "{}: login {ok}", case.abuse);
            p.barrier().await;
        }
        let outcome =
            if case.code == 0 { "accepted".to_string() } else { format!("{}, close 1008 after hello", case.code) };
        talk.finish(&format!("token: {} (40 uses)", case.abuse), &outcome).await;
    }
    still_serving(&url, "tokens0").await;
}
