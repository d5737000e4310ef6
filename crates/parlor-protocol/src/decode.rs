//! Reading frames from the wire, with the error code protocol §1 asks for.
//!
//! A frame is decoded in two steps so that each failure gets its own code: first it must be one
//! JSON object with a string `t` (else [`DecodeError::Malformed`], 1000001, and the server closes
//! with 1007), then `t` must be known ([`DecodeError::UnknownType`], 1000002, the connection stays
//! open), then the fields must fit the type ([`DecodeError::InvalidField`], 1000003, answered
//! with the request's `id` when one could be read).

use serde_json::Value;

use crate::{bounds, ClientFrame, ErrorCode, ServerFrame, CLIENT_FRAME_TYPES};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not one JSON object with a string `t`.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// `t` is not a known type.
    #[error("unknown type {t:?}")]
    UnknownType {
        /// The type received.
        t: String,
        /// The request id, if one could be read.
        id: Option<u64>,
    },
    /// A field is missing or has the wrong type.
    #[error("invalid {t}: {message}")]
    InvalidField {
        /// The frame's type.
        t: String,
        /// The request id, if one could be read.
        id: Option<u64>,
        /// What is wrong.
        message: String,
    },
}

impl DecodeError {
    /// The protocol code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed(_) => ErrorCode::MalformedFrame,
            DecodeError::UnknownType { .. } => ErrorCode::UnknownRequest,
            DecodeError::InvalidField { .. } => ErrorCode::InvalidField,
        }
    }

    /// The request id the error answers, if any.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            DecodeError::Malformed(_) => None,
            DecodeError::UnknownType { id, .. } | DecodeError::InvalidField { id, .. } => *id,
        }
    }
}

fn object_with_type(text: &str) -> Result<(Value, String, Option<u64>), DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let obj = value.as_object().ok_or_else(|| DecodeError::Malformed("not a JSON object".into()))?;
    let t = match obj.get("t") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(DecodeError::Malformed("field t is not a string".into())),
        None => return Err(DecodeError::Malformed("no field t".into())),
    };
    let id = obj.get("id").and_then(Value::as_u64);
    Ok((value, t, id))
}

/// Decode a text frame sent by a client.
///
/// A well-formed frame is parsed once, straight into its type: the two steps above build a
/// `Value` tree first (a map and a `String` per key), which was 12 % of an idle server's CPU
/// (W3: 19 800 sessions pinging, docs/benchmarks.md). Only a frame that fails that is parsed
/// again, as a tree, to tell which code its failure gets; what succeeds either way is the same
/// frame.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, DecodeError> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => Ok(frame),
        Err(_) => decode_client_frame_in_steps(text),
    }
}

/// [`decode_client_frame`] the slow way: every step on its own, each failure with its code.
fn decode_client_frame_in_steps(text: &str) -> Result<ClientFrame, DecodeError> {
    let (value, t, id) = object_with_type(text)?;
    if !CLIENT_FRAME_TYPES.contains(&t.as_str()) {
        return Err(DecodeError::UnknownType { t, id });
    }
    serde_json::from_value(value).map_err(|e| DecodeError::InvalidField { t, id, message: e.to_string() })
}

/// Decode a text frame sent by the server. An unknown `t` is [`DecodeError::UnknownType`]:
/// clients ignore such frames, so that servers can add types.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, DecodeError> {
    let (value, t, id) = object_with_type(text)?;
    const KNOWN: &[&str] = &[
        "welcome",
        "resumed",
        "pong",
        "ok",
        "error",
        "kicked",
        "event",
        "snapshot",
        "resume_done",
        "token_will_expire",
    ];
    if !KNOWN.contains(&t.as_str()) {
        return Err(DecodeError::UnknownType { t, id });
    }
    if t == "event" {
        // An event of a kind added later is ignored by the same rule as an unknown `t`.
        if let Some(kind) = value.get("kind").and_then(Value::as_str) {
            const KINDS: &[&str] = &[
                "user_add",
                "user_delete",
                "user_update",
                "stream_add",
                "stream_delete",
                "stream_extra",
                "room_extra",
                "broadcast",
                "barrage",
                "command",
                "online",
            ];
            if !KINDS.contains(&kind) {
                return Err(DecodeError::UnknownType { t: format!("event/{kind}"), id });
            }
        }
    }
    let frame: ServerFrame =
        serde_json::from_value(value).map_err(|e| DecodeError::InvalidField { t, id, message: e.to_string() })?;
    Ok(clamp_durations(frame))
}

/// Server-sent durations into the ranges of [`crate::bounds`], so no client arms a timer of 0 ms
/// or one that overflows.
fn clamp_durations(frame: ServerFrame) -> ServerFrame {
    match frame {
        ServerFrame::Welcome(mut w) => {
            w.heartbeat_ms = bounds::heartbeat_ms(w.heartbeat_ms);
            w.session_timeout_ms = bounds::session_timeout_ms(w.session_timeout_ms);
            w.retention_ms = bounds::retention_ms(w.retention_ms);
            ServerFrame::Welcome(w)
        }
        ServerFrame::Resumed(mut r) => {
            r.heartbeat_ms = r.heartbeat_ms.map(bounds::heartbeat_ms);
            ServerFrame::Resumed(r)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn decodes_the_examples_of_the_protocol() {
        let f = decode_client_frame(r#"{"t":"hello","v":1,"app_id":1,"user":{"id":"u1","name":"Alice"},"token":"x"}"#)
            .unwrap();
        assert!(matches!(f, ClientFrame::Hello(Hello { app_id: 1, .. })));
        let f = decode_client_frame(
            r#"{"t":"login","id":1,"room":"r1","config":{"max_members":0,"user_status_notify":true}}"#,
        )
        .unwrap();
        assert_eq!(f.request_id(), Some(1));
        let f =
            decode_client_frame(r#"{"t":"ping","ack":{"direct":3,"rooms":{"r1":{"epoch":"e","room":18,"users":10}}}}"#)
                .unwrap();
        match f {
            ClientFrame::Ping(Ping { ack: Some(a) }) => {
                assert_eq!(a.direct, 3);
                assert_eq!(a.rooms["r1"].room, 18);
            }
            other => panic!("{other:?}"),
        }
        let f = decode_client_frame(
            r#"{"t":"command","id":10,"room":"r1","to":["u2","u3"],"command":"go","extra_field":1}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Command(SendCommand { id: 10, .. })));
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(decode_client_frame("{").unwrap_err().code(), ErrorCode::MalformedFrame);
        assert_eq!(decode_client_frame("[1]").unwrap_err().code(), ErrorCode::MalformedFrame);
        assert_eq!(decode_client_frame(r#"{"id":1}"#).unwrap_err().code(), ErrorCode::MalformedFrame);
        let e = decode_client_frame(r#"{"t":"dance","id":4}"#).unwrap_err();
        assert_eq!((e.code(), e.request_id()), (ErrorCode::UnknownRequest, Some(4)));
        let e = decode_client_frame(r#"{"t":"login","id":5}"#).unwrap_err();
        assert_eq!((e.code(), e.request_id()), (ErrorCode::InvalidField, Some(5)));
    }

    /// The one-pass decode gives what the steps give, on frames that pass and on ones that do
    /// not (where it falls back to the steps).
    #[test]
    fn one_pass_and_steps_agree() {
        let frames = [
            r#"{"t":"hello","v":1,"app_id":1,"user":{"id":"u1","name":"Alice"},"token":"x"}"#,
            r#"{"t":"ping"}"#,
            r#"{"t":"ping","ack":{"direct":3,"rooms":{"r1":{"epoch":"e","room":18,"users":10}}}}"#,
            r#"{"ack":{"direct":1},"t":"ping"}"#,
            r#"{"t":"login","id":1,"room":"r\u00e9","config":{"max_members":0,"user_status_notify":true}}"#,
            r#"{"t":"broadcast","id":2,"room":"r1","message":"hi \"there\"","extra":[1,{"a":null}]}"#,
            r#"{"t":"ping","t":"ping"}"#,
            r#"{"t":"login","id":1.0,"room":"r1"}"#,
            r#"{"t":"login","id":-1,"room":"r1"}"#,
            r#"{"t":"bye"} "#,
            r#"{"t":"bye"} x"#,
            r#"{"t":"bye","id":18446744073709551616}"#,
        ];
        for text in frames {
            assert_eq!(decode_client_frame(text), decode_client_frame_in_steps(text), "{text}");
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = vec![
            ServerFrame::Event(Event {
                room: "r1".into(),
                ch: Some(Channel::Room),
                seq: Some(18),
                body: EventBody::StreamDelete {
                    streams: vec![Stream {
                        id: "s".into(),
                        user: User { id: "u".into(), name: "".into() },
                        extra: "".into(),
                    }],
                    reason: 2,
                },
            }),
            ServerFrame::Event(Event { room: "r1".into(), ch: None, seq: None, body: EventBody::Online { count: 3 } }),
            ServerFrame::Ok(OkFrame::with_state(
                1,
                "r1".into(),
                RoomState {
                    users: None,
                    users_next: None,
                    streams: vec![],
                    extra: vec![],
                    online: 1,
                    room_session: "e1".into(),
                },
                Seqs { room: Some(0), users: Some(1), direct: None },
            )),
            ServerFrame::error(Some(3), ErrorCode::RoomFull),
            ServerFrame::Snapshot(Snapshot {
                room: "r".into(),
                state: RoomState::default(),
                seq: Seqs::default(),
                missed_messages: true,
            }),
            ServerFrame::ResumeDone(ResumeDone {}),
        ];
        for f in frames {
            let text = f.to_json();
            assert_eq!(decode_server_frame(&text).unwrap(), f, "{text}");
        }
        let ev = ServerFrame::Event(Event {
            room: "r1".into(),
            ch: Some(Channel::Users),
            seq: Some(10),
            body: EventBody::UserAdd { users: vec![] },
        })
        .to_json();
        assert!(
            ev.contains(r#""t":"event""#) && ev.contains(r#""kind":"user_add""#) && ev.contains(r#""ch":"users""#),
            "{ev}"
        );
        assert!(matches!(
            decode_server_frame(r#"{"t":"event","room":"r","kind":"future"}"#),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn resumed_outcomes_keep_their_wire_form() {
        let text = r#"{"t":"resumed","session":"S","resume_token":"R","rooms":{"a":"replay","b":"snapshot","c":"kicked:1002050"}}"#;
        let f = decode_server_frame(text).unwrap();
        let ServerFrame::Resumed(r) = &f else { panic!("{f:?}") };
        assert_eq!(r.rooms["a"], ResumeOutcome::Replay);
        assert_eq!(r.rooms["b"], ResumeOutcome::Snapshot);
        assert_eq!(r.rooms["c"], ResumeOutcome::Kicked(1002050));
        assert_eq!(f.to_json(), text);
        for bad in ["kicked:", "kicked:x", "kicked: 5", "Replay", "gone", "kicked:-1", "kicked:99999999999"] {
            let text = format!(r#"{{"t":"resumed","session":"S","resume_token":"R","rooms":{{"a":"{bad}"}}}}"#);
            assert!(matches!(decode_server_frame(&text), Err(DecodeError::InvalidField { .. })), "{bad}");
        }
    }

    #[test]
    fn server_durations_are_clamped() {
        let f = decode_server_frame(
            r#"{"t":"welcome","session":"S","resume_token":"R","heartbeat_ms":18446744073709551615,"session_timeout_ms":0,"retention_ms":18446744073709551615,"server_time_ms":0}"#,
        )
        .unwrap();
        let ServerFrame::Welcome(w) = f else { panic!() };
        assert_eq!((w.heartbeat_ms, w.session_timeout_ms, w.retention_ms), (300_000, 1_000, 86_400_000));
        let f = decode_server_frame(r#"{"t":"resumed","session":"S","resume_token":"R","heartbeat_ms":0}"#).unwrap();
        let ServerFrame::Resumed(r) = f else { panic!() };
        assert_eq!(r.heartbeat_ms, Some(1_000));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode_client_frame(&text);
            let _ = decode_server_frame(&text);
        }

        #[test]
        fn json_shaped_input_never_panics(t in "(hello|login|ping|resume|publish|command|x)", id in proptest::prelude::any::<i64>(), body in "[ -~]{0,64}") {
            let text = format!(r#"{{"t":"{t}","id":{id},"room":{body:?},"x":{body}}}"#);
            proptest::prop_assert_eq!(decode_client_frame(&text), decode_client_frame_in_steps(&text));
        }
    }
}
