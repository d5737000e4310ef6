//! The Parlor wire protocol, version 1 (see `docs/protocol.md`).
//!
//! This crate holds everything both ends of a Parlor connection must agree on, and nothing else:
//! - [`frames`]: every frame as a typed serde value ([`ClientFrame`], [`ServerFrame`]);
//! - [`decode`]: turning a received text frame into a typed frame, with the error code §1 asks for;
//! - [`codes`]: the error-code table of §8 as one enum;
//! - [`close_code`]: the WebSocket close codes the server uses;
//! - [`bounds`]: the ranges server-sent durations are clamped into on decoding;
//! - [`validate`]: the id and size rules of §2;
//! - [`token`]: minting and verifying the HS256 token of §2.
//!
//! No IO, no async, no clock: whoever needs "now" passes it in.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bounds;
pub mod close_code;
pub mod codes;
pub mod decode;
pub mod frames;
pub mod token;
pub mod validate;

pub use codes::ErrorCode;
pub use decode::{decode_client_frame, decode_server_frame, DecodeError};
pub use frames::*;

/// The protocol version carried in `hello` and `resume`.
pub const PROTOCOL_VERSION: u32 = 1;
