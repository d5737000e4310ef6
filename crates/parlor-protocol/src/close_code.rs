//! The WebSocket close codes the server closes a connection with (protocol §1, §3).
//!
//! The server uses these (re-exported as `parlor_server::outbox::close_code`). A client treats every one of
//! them, and any other, as a lost connection (it reconnects while it has rooms); they exist here
//! so that both ends name them alike and tests can say which one they expect.

/// Normal, after `bye`.
pub const NORMAL: u16 = 1000;
/// The session went offline or its connection was replaced by a resume.
pub const GOING_AWAY: u16 = 1001;
/// A binary frame arrived: the protocol is text only.
pub const UNSUPPORTED: u16 = 1003;
/// A malformed frame (not one JSON object with a string `t`, error 1000001).
pub const INVALID_DATA: u16 = 1007;
/// Policy: a bad `hello` or `resume`, or failed authentication.
pub const POLICY: u16 = 1008;
/// A frame over the server's `--max-frame` size.
pub const TOO_BIG: u16 = 1009;
/// The client did not read its frames fast enough (its outbox overflowed).
pub const SLOW_CONSUMER: u16 = 4008;
/// The session was kicked out of every room it was in.
pub const KICKED: u16 = 4009;
/// The server is shutting down.
pub const SHUTDOWN: u16 = 4010;
