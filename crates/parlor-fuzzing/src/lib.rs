//! The bodies of Parlor's fuzz targets, one function per target: `fuzz/fuzz_targets/*.rs` call
//! them, and `tests/corpus.rs` replays the regression corpus `fuzz/corpus/<target>/` through
//! them under a plain `cargo test`.
//!
//! Every function takes any bytes and panics only when it finds a bug: a panic in the code
//! under test, or a broken invariant checked here (each target's docs say which).
//!
//! | target | parser a peer reaches |
//! | --- | --- |
//! | [`client_frame`] | what the server decodes from a client |
//! | [`server_frame`] | what a client decodes from the server |
//! | [`token_verify`] | a login token (`hello`, `login`, `renew_token`) |
//! | [`resume_ack`] | a `resume` frame and its `ack`, through the memory engine's replay |
//! | [`admin_api`] | an admin HTTP request (path, secret, body) to the real router |
//! | [`client_core`] | a hostile server and an arbitrary app driving the client state machine |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod core_model;
mod input;
mod resume;
mod runtime;

pub use admin::admin_api;
pub use core_model::client_core;
pub use resume::resume_ack;

/// The names of the targets, as in `fuzz/Cargo.toml` and `fuzz/corpus/`.
pub const TARGETS: [&str; 6] =
    ["client_frame", "server_frame", "token_verify", "resume_ack", "admin_api", "client_core"];

/// Run the target called `name` on `data`; false when no target has that name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "client_frame" => client_frame(data),
        "server_frame" => server_frame(data),
        "token_verify" => token_verify(data),
        "resume_ack" => resume_ack(data),
        "admin_api" => admin_api(data),
        "client_core" => client_core(data),
        _ => return false,
    }
    true
}

/// What the server decodes from every client: any bytes give a frame or an error, never a
/// panic; a decoded frame encodes again and decodes to itself.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = parlor_protocol::decode_client_frame(text) {
        let again = parlor_protocol::decode_client_frame(&frame.to_json()).expect("an encoded client frame decodes");
        assert_eq!(again, frame, "a client frame survives encode + decode");
    }
}

/// What a client decodes from the server: any bytes give a frame or an error, never a panic; a
/// decoded frame encodes again and decodes to itself.
pub fn server_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = parlor_protocol::decode_server_frame(text) {
        let again = parlor_protocol::decode_server_frame(&frame.to_json()).expect("an encoded server frame decodes");
        assert_eq!(again, frame, "a server frame survives encode + decode");
    }
}

/// A token as `hello` / `login` / `renew_token` carry it, checked by
/// [`parlor_protocol::token::verify`]: never a panic, and whatever it accepts is signed by the
/// secret, for the app and user asked, not expired, and for the room asked.
///
/// Input: one byte choosing the clock and the room, then the token text. Half the inputs are
/// the token text as is; the other half are re-signed with the right secret (the bytes after
/// the selector are then the claims JSON), so that the claims parser is reached past the
/// signature check.
pub fn token_verify(data: &[u8]) {
    use parlor_protocol::token::{verify, LEEWAY_S};
    const SECRET: &[u8] = b"fuzz-secret";
    const NOW: u64 = 1_764_374_400;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let token = if sel & 1 == 0 { text.to_string() } else { input::sign_hs256(SECRET, text) };
    let now = match (sel >> 1) & 3 {
        0 => NOW,
        1 => 0,
        2 => u64::MAX,
        _ => NOW + 3600,
    };
    let room = if sel & 8 == 0 { None } else { Some("r1") };
    if let Ok(claims) = verify(SECRET, &token, 7, "u1", room, now) {
        assert_eq!((claims.app_id, claims.user_id.as_str()), (7, "u1"), "accepted for the app and user asked");
        assert!(claims.exp.saturating_add(LEEWAY_S) >= now, "accepted before its expiry");
        if let (Some(want), Some(room)) = (claims.room_id.as_deref(), room) {
            assert_eq!(want, room, "accepted for the room asked");
        }
        assert!(verify(b"another secret", &token, 7, "u1", room, now).is_err(), "accepted only with its secret");
    }
}
