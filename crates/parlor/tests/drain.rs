//! `parlor serve` drained by SIGTERM keeps its door shut (`/readyz` 503, upgrades refused with
//! 503) for its whole `--drain-time` though it has no connection at all, then exits with code 0.
//! Real time, every wait bounded (~2 s).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const DRAIN_TIME: Duration = Duration::from_secs(2);

/// `GET path` (with the upgrade headers when `upgrade`); the status line and body, or None when
/// nothing answers.
fn get(addr: &str, path: &str, upgrade: bool) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra = if upgrade {
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        "Connection: close\r\n"
    };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes()).ok()?;
    // An upgrade's answer keeps the connection open: its status line is enough.
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
        if upgrade && out.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_drained_node_refuses_for_its_whole_drain_time_then_exits() {
    let (mut child, addr) = common::serve(["--listen", "127.0.0.1:0", "--drain-time", "2s"]);
    assert!(get(&addr, "/readyz", false).is_some_and(|r| r.starts_with("HTTP/1.1 200")));

    let signalled = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    // Probes every 200 ms: once the signal is handled, every answer until the exit is 503.
    let mut probes = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(signalled.elapsed() < DRAIN_TIME + Duration::from_secs(10), "no exit within 12 s");
        let ready = get(&addr, "/readyz", false);
        let upgrade = get(&addr, "/v1/ws", true);
        if let (Some(ready), Some(upgrade)) = (ready, upgrade) {
            let at = signalled.elapsed();
            if ready.starts_with("HTTP/1.1 503") {
                assert!(ready.contains(r#"{"status":"draining"}"#), "{ready}");
                assert!(upgrade.starts_with("HTTP/1.1 503"), "an upgrade {at:?} into the drain: {upgrade}");
                probes += 1;
            } else {
                assert!(probes == 0 && at < Duration::from_secs(1), "{at:?} into the drain: {ready}");
            }
        }
        std::thread::sleep(Duration::from_millis(200)); // the probe interval
    };
    let lived = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(lived >= DRAIN_TIME, "exited {lived:?} after SIGTERM, before its {DRAIN_TIME:?} drain time");
    assert!(probes >= 5, "only {probes} probes answered 503 during a {DRAIN_TIME:?} drain");
}
