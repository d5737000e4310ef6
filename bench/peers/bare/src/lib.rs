//! A bare WebSocket broadcast server: no rooms, no protocol, no state but the list of
//! connections. Every text frame a client sends goes to every *other* connected client. It does
//! the minimum work Parlor's fan-out does on the wire (one decode, N writes), so it is the
//! physical limit of the machine for the same traffic.
//!
//! Each connection has a reader (this task) and a writer task draining an unbounded queue, like
//! Parlor's outbox; a broadcast clones one reference-counted frame into every queue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Utf8Bytes>>>>;

/// Serve on `listener` forever.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let peers: Peers = Arc::default();
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(socket, id, peers.clone()));
    }
}

/// Bind `addr` and serve forever.
pub async fn run(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("bare peer listening on ws://{}/", listener.local_addr()?);
    serve(listener).await
}

async fn connection(socket: TcpStream, id: u64, peers: Peers) {
    let _ = socket.set_nodelay(true);
    // A small read buffer: tungstenite's default (128 KiB) is zero-filled on the first read, so
    // it is resident for every connection; frames here are small.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(64 * 1024);
    let ws = match tokio_tungstenite::accept_async_with_config(socket, Some(config)).await {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    peers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
    // The writer gathers whatever is queued and writes it with one flush, as Parlor does: the
    // limit of the box is measured with the best writing strategy, not a naive one.
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.feed(Message::Text(text)).await.is_err() {
                break;
            }
            while let Ok(text) = rx.try_recv() {
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(text) => {
                let peers = peers.lock().unwrap_or_else(|e| e.into_inner());
                for (other, tx) in peers.iter() {
                    if *other != id {
                        let _ = tx.send(text.clone());
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    peers.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    writer.abort();
}
