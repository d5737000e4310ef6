//! Logs as an operator gets them in a file: `parlor serve` with stderr redirected to a file
//! writes no ANSI escape sequences in `text` mode and one JSON object per line in `json` mode;
//! SIGTERM drains it and it exits with code 0 (its drain logged).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `serve` with `args` until it listens, SIGTERM it, wait (at most 15 s) for it to exit;
/// its exit code and its stderr.
fn serve_and_stop(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--drain-time", "0s"])
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
    assert_eq!(sigterm(child.id()), 0);
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
