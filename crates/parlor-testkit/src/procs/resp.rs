//! A tiny RESP2 client over `std::net::TcpStream`: enough to drive Redis from a test.
//!
//! Why not `redis-cli`: its output format changes with the terminal and the version, and a
//! process per command is slow. Why not the `redis` crate: the testkit should not pull an async
//! client into every test build, and a test needs odd things a client library hides (a read
//! that times out while Redis is SIGSTOPped, a subscriber connection that is cut).

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …` (the text after the `-`, e.g. `MOVED 866 127.0.0.1:7001`).
    Error(String),
    /// `:42`
    Int(i64),
    /// `$5\r\nhello`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*2\r\n…`
    Array(Vec<Reply>),
}

/// Text as a test compares it: simple strings and bulk strings as their text, integers in
/// decimal, nil as `(nil)`, errors as `(error) TEXT`, arrays one element per line.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) => f.write_str(s),
            Reply::Error(s) => write!(f, "(error) {s}"),
            Reply::Int(n) => write!(f, "{n}"),
            Reply::Bulk(b) => f.write_str(&String::from_utf8_lossy(b)),
            Reply::Nil => f.write_str("(nil)"),
            Reply::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// One connection to a Redis server. Every read and write has the timeout given at connect, so
/// a stopped server shows as an `io::ErrorKind::WouldBlock`/`TimedOut` error, never a hang.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connect with `timeout` for the connect and for each later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(stream) })
    }

    /// Send one command without reading its reply (e.g. `SUBSCRIBE`, then [`Conn::read`]).
    pub fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.reader.get_mut().write_all(&encode(args))
    }

    /// Read one reply.
    pub fn read(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// Send one command and read its reply.
    pub fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        self.send(args)?;
        self.read()
    }
}

/// Run one command on a fresh connection to `addr`.
pub fn call(addr: SocketAddr, args: &[&str], timeout: Duration) -> io::Result<Reply> {
    Conn::connect(addr, timeout)?.call(args)
}

/// A command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Read one reply from a buffered stream.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(1);
    let number = || rest.parse::<i64>().map_err(|_| bad(format!("bad length/integer in {line:?}")));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Int(number()?)),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else { return Ok(Reply::Nil) };
            let mut buf = vec![0; len + 2];
            r.read_exact(&mut buf)?;
            if !buf.ends_with(b"\r\n") {
                return Err(bad("bulk string not ended by CRLF".into()));
            }
            buf.truncate(len);
            Ok(Reply::Bulk(buf))
        }
        "*" => {
            let Ok(len) = usize::try_from(number()?) else { return Ok(Reply::Nil) };
            (0..len).map(|_| read_reply(r)).collect::<io::Result<_>>().map(Reply::Array)
        }
        _ => Err(bad(format!("not a RESP2 reply: {line:?}"))),
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "Redis closed the connection"));
    }
    match line.strip_suffix("\r\n") {
        Some(l) if !l.is_empty() => Ok(l.to_string()),
        _ => Err(bad(format!("not a RESP line: {line:?}"))),
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(encode(&["SET", "k", ""]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec());
        let wire = b"*4\r\n+OK\r\n:-3\r\n$-1\r\n$2\r\nhi\r\n-MOVED 1 a:2\r\n";
        let mut r = &wire[..];
        let reply = read_reply(&mut r).unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![Reply::Simple("OK".into()), Reply::Int(-3), Reply::Nil, Reply::Bulk(b"hi".to_vec())])
        );
        assert_eq!(reply.to_string(), "OK\n-3\n(nil)\nhi");
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("MOVED 1 a:2".into()));
        assert_eq!(read_reply(&mut r).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
