//! Logs as an operator gets them in a file: `parlor serve` with stderr redirected to a file
//! writes no ANSI escape sequences in `text` mode and one JSON object per line in `json` mode;
//! SIGTERM drains it and it exits with code 0 (its drain logged); a second SIGTERM during a long
//! drain stops it at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `serve` with `args` until it listens, SIGTERM it, wait (at most 15 s) for it to exit;
/// its exit code and its stderr.
fn serve_and_stop(args: &[&str]) -> (Option<i32>, String) {
    serve_and_signal(&["--drain-time", "0s"], args, |_| {}, 1)
}

/// `serve` with `args`; once it listens, `before(addr)`, then `signals` SIGTERMs (one when the
/// drain has begun, as the log says, before the next); its exit code (None: not within 15 s)
/// and its stderr.
fn serve_and_signal(base: &[&str], args: &[&str], before: impl FnOnce(&str), signals: usize) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(base)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("parlor listening on http://127.0.0.1:"), "{line:?}");
    let addr = line["parlor listening on http://".len()..].split_whitespace().next().unwrap().to_string();
    before(&addr);
    for i in 0..signals {
        if i > 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::fs::read_to_string(&log).unwrap().contains("draining") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert_eq!(sigterm(child.id()), 0);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.and_then(|s| s.code()), std::fs::read_to_string(&log).unwrap())
}

/// `kill -TERM PID` (the crate has no libc; the test suite runs on Linux).
fn sigterm(pid: u32) -> i32 {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().map_or(-1, |s| s.code().unwrap_or(-1))
}

#[test]
fn text_logs_to_a_file_have_no_colour_codes() {
    let (code, log) = serve_and_stop(&[]);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("\x1b["), "escape sequences in a log file:\n{log}");
    assert!(log.contains("INFO") && log.contains("parlor serving"), "{log}");
    assert!(log.contains("draining") && log.contains("stopped"), "the drain is logged:\n{log}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (code, log) = serve_and_stop(&["--log-format", "json"]);
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{log}")))
        .collect();
    assert!(lines.len() >= 4, "{log}");
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
    let serving = lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("parlor serving")));
    assert_eq!(serving.map(|l| l["engine"].clone()), Some("memory".into()), "{log}");
    assert!(lines.iter().any(|l| l["message"] == "stopped" && l["left"] == 0), "{log}");
}

#[test]
fn a_second_signal_stops_a_long_drain_at_once() {
    let mut conns = Vec::new();
    let (code, log) = serve_and_signal(
        &["--drain-time", "60s"],
        &[],
        |addr| {
            // Three upgraded connections keep a 60 s drain busy (one closed per 20 s).
            for _ in 0..3 {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(
                    b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                      Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                )
                .unwrap();
                let mut buf = [0u8; 12];
                s.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"HTTP/1.1 101");
                conns.push(s);
            }
        },
        2,
    );
    assert_eq!(code, Some(0), "not stopped within 15 s of a 60 s drain:\n{log}");
    assert!(log.contains("draining connections=3"), "{log}");
    assert!(log.contains("second signal: stopping at once"), "{log}");
}
