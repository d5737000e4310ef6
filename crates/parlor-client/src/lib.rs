//! The Parlor Rust SDK: rooms, users, streams and messages over one WebSocket, with automatic
//! reconnection.
//!
//! [`Engine`] is a thin tokio driver around the sans-IO state machine of
//! [`parlor_client_core`]: it owns the WebSocket (tokio-tungstenite) and the timers
//! (`tokio::time`, so tests can run it on tokio's paused clock), converts instants into the
//! core's milliseconds, and turns the core's outputs into frames on the wire, [`Event`]s on the
//! event stream and answers to the async calls. Every decision about rooms, reconnection,
//! resume and exactly-once delivery lives in the core (see its crate docs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), parlor_client::Error> {
//! use parlor_client::{Engine, RoomConfig, User};
//! let engine = Engine::new(1, "ws://127.0.0.1:7700/v1/ws");
//! let mut events = engine.events().expect("first call");
//! let me = User { id: "u1".into(), name: "Alice".into() };
//! engine.login_room("r1", me, "<token>", RoomConfig::default()).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod engine;
mod event;
mod tls;

pub use driver::retry_after_ms;
pub use engine::{Connector, Engine, EngineConfig, Error, Io};
pub use event::Event;
pub use parlor_client_core::backoff::retry_after_delay_ms;
pub use parlor_client_core::{ExtraInfo, MemberPage, RoomStateReason, UpdateType};
pub use parlor_protocol::{ErrorCode, RoomConfig, Stream, User};
