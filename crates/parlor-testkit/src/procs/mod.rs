//! Real processes on loopback for multi-process tests: Redis, a Redis Cluster, Redis Sentinel,
//! HAProxy and `parlor serve` nodes.
//!
//! Why this exists: a single in-process server cannot show what happens when several Parlor
//! nodes share Redis behind a load balancer — a node dying mid-session (SIGKILL, no goodbye),
//! Redis stalling (SIGSTOP) or losing its data, pub/sub connections being cut, the balancer
//! taking a dead node out. Those are properties of *processes*, so the tests need real ones:
//! Debian's `redis-server`, `redis-cli` and `haproxy`, and the `parlor` binary itself.
//!
//! Rules every helper here keeps, so that tests built on them are not flaky:
//!
//! - **Loopback and free ports only.** Every process binds `127.0.0.1` on a port from
//!   [`free_port`]; nothing collides with another test or another engineer's run.
//! - **Every wait is bounded.** Starting polls until the thing answers (PING, `/healthz`, a TCP
//!   accept) with a deadline; on timeout the panic/error names what did not come up and shows
//!   the tail of its log. There are no sleeps standing in for "it must be ready by now".
//! - **Nothing outlives the test.** Each handle kills and reaps its process on `Drop`, and its
//!   files live in a [`tempfile::TempDir`] removed with it.
//! - **A missing tool fails loudly.** If `redis-server` or `haproxy` is not installed the helper
//!   panics saying so (`scripts/test.sh` installs them); a multi-node test must never pass by
//!   not running.
//!
//! Talking to the processes needs no extra client crates: [`resp`] is a tiny RESP2 client over
//! `std::net::TcpStream` (so tests do not depend on `redis-cli`'s output format) and [`http`]
//! does the few plain HTTP/1.1 requests (health checks, a hand-written WebSocket upgrade).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

mod cluster;
mod haproxy;
pub mod http;
mod node;
mod redis;
pub mod resp;
mod sentinel;

pub use cluster::RedisCluster;
pub use haproxy::Haproxy;
pub use node::Node;
pub use redis::RedisServer;
pub use sentinel::RedisSentinel;

/// A loopback TCP port that was free a moment ago: bind `127.0.0.1:0`, read the port, drop.
///
/// Another process may take it before the caller binds it; the helpers that use it retry with a
/// new port when their process fails to start.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr of a bound listener").port()
}

/// The `parlor` binary the multi-process tests run: `$PARLOR_BIN` if set, else
/// `<workspace>/target/debug/parlor` (the workspace found from this crate's manifest directory
/// at compile time). Build it with `cargo build -p parlor --bins`; `cargo test` alone does not.
pub fn bin_path() -> PathBuf {
    match std::env::var_os("PARLOR_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/parlor"),
    }
}

/// Find an external program by name on `$PATH`, then in `/usr/sbin` and `/usr/bin` (Debian puts
/// `haproxy` in `/usr/sbin`, which is not on a normal user's `$PATH`).
///
/// Panics with an install hint when it is missing: a test that needs it must fail, not pass.
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    let package = match name {
        "redis-cli" => "redis-tools",
        other => other,
    };
    panic!(
        "`{name}` is not installed (not on $PATH, /usr/sbin or /usr/bin); this test needs it. \
         Install it with `apt-get install -y {package}` — scripts/test.sh does that on Debian"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Call `probe` every `every` until it returns `Some`, or give up at `timeout` with `None`.
/// The probe runs at least once, even with a zero timeout.
pub fn poll_until<T>(timeout: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The last `lines` lines of a log file, for error messages (`<no log: …>` if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.is_empty() {
                "<empty log>".to_string()
            } else {
                tail
            }
        }
        Err(e) => format!("<no log at {}: {e}>", path.display()),
    }
}

/// Send `signal` to a child process; `Err` if it is already reaped or the kernel refuses.
/// Through the `kill` program, so that this crate needs no `unsafe`.
pub(crate) fn signal(child: &Child, signal: libc::c_int) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -{signal} {} failed", child.id())))
    }
}

/// SIGKILL and reap a child, ignoring "already gone". Used by every `Drop`.
pub(crate) fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// `Some(status)` once the child has exited, polling until `timeout`.
pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    poll_until(timeout, Duration::from_millis(10), || child.try_wait().ok().flatten())
}

/// A log file opened for a child's stdout and stderr (both into the same file, in order).
pub(crate) fn log_stdio(path: &Path) -> std::io::Result<(std::process::Stdio, std::process::Stdio)> {
    let file = fs::OpenOptions::new().create(true).append(true).open(path)?;
    let err = file.try_clone()?;
    Ok((file.into(), err.into()))
}
