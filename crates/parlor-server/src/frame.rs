//! [`Frame`]: one encoded server frame, shared by every recipient and by the channel logs.
//!
//! The engines produce frames and never see a connection; the hub hands them to outboxes. A
//! frame is reference-counted text, so a room event encoded once goes to a thousand queues and
//! a log without a copy. It wraps the WebSocket library's UTF-8 byte type only so that handing
//! it to the writer costs nothing; nothing outside [`crate::hub`] and [`crate::outbox`] looks
//! inside.

use parlor_protocol::{Channel, Event, EventBody, ServerFrame};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One encoded server frame (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Utf8Bytes);

impl Frame {
    /// Encode `frame`.
    pub fn encode(frame: &ServerFrame) -> Frame {
        Frame(Utf8Bytes::from(frame.to_json()))
    }

    /// The `event` frame of a room channel (or of `online`, with no channel and no seq).
    pub fn event(room: &str, ch: Option<Channel>, seq: Option<u64>, body: EventBody) -> Frame {
        Frame::encode(&ServerFrame::Event(Event { room: room.to_string(), ch, seq, body }))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty frame (never produced by the encoders).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes for the writer.
    pub fn into_ws(self) -> Utf8Bytes {
        self.0
    }
}

impl From<String> for Frame {
    fn from(s: String) -> Frame {
        Frame(Utf8Bytes::from(s))
    }
}
