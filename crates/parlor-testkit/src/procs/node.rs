//! [`Node`]: one `parlor serve` child process on a free loopback port.
//!
//! Why a process and not an in-process `parlor_server::Server`: a multi-node test has to kill a
//! node the way production loses one — SIGKILL, no shutdown code running, its sockets reset by
//! the kernel, its Redis connections dropped — and to check the real binary's flags and
//! graceful exit on SIGTERM. Neither can be done to a server living in the test's own process.
//!
//! The node is given `serve --listen 127.0.0.1:PORT` followed by the caller's arguments,
//! unchanged (`--heartbeat 1s`, `--redis URL`, `--node-id ID`, …), so new server flags need no
//! change here. Its stdout and stderr go to a log file whose path is exposed for debugging and
//! whose tail is in every error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, http, kill_and_reap, log_stdio, log_tail, poll_until, signal, wait_child};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `parlor serve`; killed (SIGKILL) and reaped on drop, its log dir removed.
pub struct Node {
    addr: SocketAddr,
    child: Child,
    exit: Option<ExitStatus>,
    dir: tempfile::TempDir,
}

impl Node {
    /// Run `BIN serve --listen 127.0.0.1:PORT ARGS…` on a free port and wait (at most 15 s)
    /// until `GET /healthz` answers 200. Panics, with the tail of its log, if it does not.
    pub fn start(bin: &Path, args: &[String]) -> Node {
        Self::try_start(bin, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Node::start`] returning the error instead of panicking.
    pub fn try_start(bin: &Path, args: &[String]) -> Result<Node, String> {
        if !bin.is_file() {
            return Err(format!(
                "the parlor binary {} does not exist: build it with `cargo build -p parlor --bins` \
                 (or set PARLOR_BIN)",
                bin.display()
            ));
        }
        let mut last = String::new();
        // A free port can be taken before the node binds it: try a few.
        for _ in 0..3 {
            match Self::start_on(bin, free_port(), args) {
                Ok(n) => return Ok(n),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_on(bin: &Path, port: u16, args: &[String]) -> Result<Node, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::Builder::new()
            .prefix(&format!("parlor-node-{port}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for the node: {e}"))?;
        let log = dir.path().join("node.log");
        let (out, err) = log_stdio(&log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut node = Node { addr, child, exit: None, dir };
        let mut exited = None;
        let child = &mut node.child;
        let up = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            http::get(addr, "/healthz", Duration::from_millis(500)).is_ok_and(|r| r.status == 200).then_some(true)
        });
        let why = match (up, exited) {
            (Some(true), _) => return Ok(node),
            (_, Some(status)) => {
                node.exit = Some(status);
                format!("exited ({status}) before /healthz answered")
            }
            _ => format!("did not answer GET /healthz with 200 within {START_TIMEOUT:?}"),
        };
        Err(format!(
            "parlor node `{} serve --listen {addr} {}` {why}; tail of {}:\n{}",
            bin.display(),
            args.join(" "),
            node.log_path().display(),
            node.log_tail()
        ))
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/v1/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file with the node's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// The last 40 lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 40)
    }

    /// SIGKILL the node and reap it: a crash, with no shutdown code run. Idempotent.
    pub fn kill9(&mut self) {
        if self.exit.is_none() {
            kill_and_reap(&mut self.child);
            self.exit = self.child.try_wait().ok().flatten();
        }
    }

    /// Send SIGTERM (a graceful stop); see [`Node::wait_exit`]. Panics if the node already
    /// exited and was reaped.
    pub fn sigterm(&mut self) {
        if self.exit.is_some() {
            panic!("sigterm: the node on {} has already exited ({:?})", self.addr, self.exit);
        }
        signal(&self.child, libc::SIGTERM).unwrap_or_else(|e| panic!("SIGTERM to node {}: {e}", self.child.id()));
    }

    /// Wait up to `timeout` for the node to exit; `Some(status)` if it has (now or before).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = wait_child(&mut self.child, timeout);
        }
        self.exit
    }

    /// `Some(status)` if the node has exited (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.wait_exit(Duration::ZERO)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("addr", &self.addr).field("pid", &self.child.id()).finish()
    }
}
