//! `parlor-peer-socketioxide [--listen] ADDR`: the socketioxide rooms server `parlor bench
//! --target socketioxide` starts (default 127.0.0.1:7901).
//!
//! The same events as the Node peer (`bench/peers/socketio/server.js`), on the default namespace,
//! WebSocket transport only, default settings otherwise (25 s Engine.IO ping, as on Node):
//! - `join(room, ack)`      → the socket joins `room`, then `ack()`;
//! - `bcast(room, message)` → every *other* member of `room` gets `msg(message)`.
//!
//! It is its own binary, not a `parlor` subcommand like the bare peer, so that the Parlor
//! server does not carry socketioxide. The system allocator and tokio's default runtime (one
//! worker per core): what a Rust team gets out of the box.

#![forbid(unsafe_code)]

use std::convert::Infallible;

use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, TransportType};

/// Registers the events. It runs as a connect *middleware*, which socketioxide awaits before it
/// sends the CONNECT answer: the connect handler itself is spawned after that answer, so a
/// client that emits `join` as soon as it is connected (as the generator does) could reach the
/// socket before the handler registered `join`, and the event would be dropped unanswered.
async fn register(socket: SocketRef) -> Result<(), Infallible> {
    socket.on("join", async |s: SocketRef, Data::<String>(room), ack: AckSender| {
        s.join(room);
        let _ = ack.send(&());
    });
    socket.on("bcast", async |s: SocketRef, Data::<(String, String)>((room, message))| {
        // `to` leaves the sender out, like Node's `socket.to(room)`.
        let _ = s.to(room).emit("msg", &message).await;
    });
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--listen");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7901".to_string());
    let (layer, io) = SocketIo::builder().transports([TransportType::Websocket]).build_layer();
    io.ns("/", (async |_: SocketRef| {}).with(register));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("socketioxide peer listening on ws://{addr}/socket.io/");
    axum::serve(listener, app).await
}
