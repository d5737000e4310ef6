//! Plain HTTP/1.1 over `std::net::TcpStream`, for health checks and a hand-written WebSocket
//! upgrade — what the multi-process tests need from HTTP, without an HTTP client dependency.
//!
//! Each request uses its own connection with `Connection: close`, so what a test sees is one
//! request, one response, one backend choice by the load balancer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status code, the head (status line and headers) as text, and the body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The status line and headers, CRLF-separated, without the blank line.
    pub head: String,
    /// Everything after the head (the connection is read to its end).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on `addr`; `timeout` bounds the connect and each read and write.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Response> {
    let mut stream = connect(addr, timeout)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = find_head_end(&raw).ok_or_else(|| bad(format!("no complete HTTP head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = parse_status(&head)?;
    Ok(Response { status, head, body: raw[end + 4..].to_vec() })
}

/// The answer to a WebSocket upgrade: status and head, and the open connection (after a `101`
/// it speaks WebSocket frames).
#[derive(Debug)]
pub struct Upgrade {
    /// The status code: `101` when the upgrade was accepted.
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The connection, still open.
    pub stream: TcpStream,
}

/// Send a WebSocket upgrade request (RFC 6455 §4.1) for `path` by hand and read the response
/// head. Does not check `Sec-WebSocket-Accept`; the caller asserts what it needs.
pub fn ws_upgrade(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Upgrade> {
    let mut stream = connect(addr, timeout)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so that nothing after the head (a first WebSocket frame) is consumed.
    while find_head_end(&raw).is_none() {
        if stream.read(&mut byte)? == 0 {
            return Err(bad(format!("connection closed after {} bytes of the upgrade response", raw.len())));
        }
        raw.push(byte[0]);
        if raw.len() > 64 * 1024 {
            return Err(bad("upgrade response head over 64 KiB".into()));
        }
    }
    let head = String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    let status = parse_status(&head)?;
    Ok(Upgrade { status, head, stream })
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn find_head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_status(head: &str) -> io::Result<u16> {
    let line = head.lines().next().unwrap_or_default();
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| bad(format!("bad status line {line:?}")))
        }
        _ => Err(bad(format!("not an HTTP/1.x status line: {line:?}"))),
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
