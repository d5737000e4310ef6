//! [`Haproxy`]: HAProxy in front of Parlor nodes, configured from the committed
//! `deploy/haproxy/parlor.cfg`.
//!
//! Why the committed template and not a config made up here: the multi-node tests should
//! exercise the configuration a deployment uses — health checks on `/healthz`, no stickiness,
//! dead nodes out within about a second, WebSocket tunnels — so a change to that file is tested
//! by the suite. This helper only fills its two placeholders: `${PARLOR_LISTEN}` with a free
//! loopback port and `${PARLOR_SERVERS}` with one `server` line per backend.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kill_and_reap, log_stdio, log_tail, poll_until, require_program};

/// `deploy/haproxy/parlor.cfg`, as committed.
pub const TEMPLATE: &str = include_str!("../../../../deploy/haproxy/parlor.cfg");

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A foreground `haproxy -db` process; killed and reaped on drop, its files removed.
pub struct Haproxy {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// The template with its placeholders filled: the frontend on `listen`, one server
    /// `node1`, `node2`, … per backend (health-checked as the template's `default-server` says).
    pub fn render(listen: SocketAddr, backends: &[SocketAddr]) -> String {
        let mut out = String::with_capacity(TEMPLATE.len() + 64 * backends.len());
        for line in TEMPLATE.lines() {
            // Comments mention the placeholders too; only configuration lines are filled.
            if line.trim_start().starts_with('#') {
                out.push_str(line);
                out.push('\n');
            } else if let Some((indent, _)) = line.split_once("${PARLOR_SERVERS}") {
                for (i, addr) in backends.iter().enumerate() {
                    out.push_str(&format!("{indent}server node{} {addr}\n", i + 1));
                }
            } else {
                out.push_str(&line.replace("${PARLOR_LISTEN}", &listen.to_string()));
                out.push('\n');
            }
        }
        out
    }

    /// Start HAProxy on a free loopback port in front of `backends` and wait (at most 10 s)
    /// until its frontend accepts connections. Panics, with its log, if it does not, or if
    /// `haproxy` is not installed.
    ///
    /// Accepting does not mean the backends are marked up yet; HAProxy considers servers up
    /// until their first checks fail, so requests go through at once when they are healthy.
    pub fn start(backends: &[SocketAddr]) -> Haproxy {
        Self::try_start(backends).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Haproxy::start`] returning the error instead of panicking.
    pub fn try_start(backends: &[SocketAddr]) -> Result<Haproxy, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::start_on(free_port(), backends) {
                Ok(h) => return Ok(h),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_on(port: u16, backends: &[SocketAddr]) -> Result<Haproxy, String> {
        let bin = require_program("haproxy");
        let dir = tempfile::Builder::new()
            .prefix("parlor-haproxy-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for haproxy: {e}"))?;
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let config = dir.path().join("parlor.cfg");
        std::fs::write(&config, Self::render(listen, backends))
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let log = dir.path().join("haproxy.log");
        let (out, err) = log_stdio(&log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let child = Command::new(&bin)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut h = Haproxy { port, child: Some(child), dir };
        let child = h.child.as_mut().expect("spawned");
        let mut exited = None;
        let up = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok().then_some(true)
        });
        let why = match (up, exited) {
            (Some(true), _) => return Ok(h),
            (_, Some(status)) => format!("exited ({status})"),
            _ => format!("did not accept connections within {START_TIMEOUT:?}"),
        };
        Err(format!("haproxy on {listen} {why}; tail of {}:\n{}", h.log_path().display(), h.log_tail()))
    }

    /// The frontend's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The frontend's address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `ws://127.0.0.1:PORT/v1/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr())
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The config file HAProxy runs with (the rendered template).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("parlor.cfg")
    }

    /// HAProxy's log: its own messages and one line per request/connection.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.log")
    }

    /// The last 30 lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 30)
    }

    /// Its working directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill (SIGKILL) and reap it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Haproxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Haproxy").field("port", &self.port).finish()
    }
}
