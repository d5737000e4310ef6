//! [`RedisServer`]: Debian's `redis-server` as a child process on a free loopback port.
//!
//! It runs with no persistence (`--save "" --appendonly no`, a fresh `--dir` and a unique
//! `--dbfilename`), so every start is empty and nothing is left on disk, and it can be made to
//! misbehave the ways a production Redis does: stall ([`RedisServer::pause`], SIGSTOP — the
//! TCP connections stay open but nothing answers), drop its pub/sub clients
//! ([`RedisServer::kill_pubsub_clients`]) or come back empty after a crash
//! ([`RedisServer::restart_empty`]).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::resp::{self, Reply};
use super::{free_port, kill_and_reap, log_stdio, log_tail, poll_until, require_program, signal};

/// How long a start may take before it is an error.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(5);

/// A `redis-server` child process; killed and reaped on drop, its directory removed.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    starts: u32,
}

impl RedisServer {
    /// Start a server on a free port and wait (at most 10 s) until it answers `PING`.
    ///
    /// Panics, with the tail of its log, if it does not come up or `redis-server` is missing.
    pub fn start() -> RedisServer {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`RedisServer::start`] returning the error instead of panicking (a missing
    /// `redis-server` still panics).
    pub fn try_start() -> Result<RedisServer, String> {
        let mut last = String::new();
        // A free port can be taken between `free_port` and redis binding it: try a few.
        for _ in 0..3 {
            match Self::start_on(free_port(), Vec::new()) {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Start on `port` with `extra_args` after the standard ones (the cluster adds its flags).
    pub(crate) fn start_on(port: u16, extra_args: Vec<String>) -> Result<RedisServer, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("parlor-redis-{port}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for redis-server: {e}"))?;
        let mut server = RedisServer { port, child: None, dir, extra_args, starts: 0 };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let bin = require_program("redis-server");
        self.starts += 1;
        let log = self.log_path();
        let (out, err) = log_stdio(&log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let port = self.port.to_string();
        let dbfilename = format!("dump-{}-{}.rdb", self.port, self.starts);
        let child = Command::new(&bin)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--dbfilename", &dbfilename, "--daemonize", "no", "--loglevel", "notice"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let mut exited = None;
        let child = self.child.as_mut().expect("spawned");
        let up = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            matches!(resp::call(addr, &["PING"], Duration::from_millis(500)), Ok(Reply::Simple(s)) if s == "PONG")
                .then_some(true)
        });
        let why = match (up, exited) {
            (Some(true), _) => return Ok(()),
            (_, Some(status)) => format!("exited ({status}) before answering PING"),
            _ => format!("did not answer PING within {START_TIMEOUT:?}"),
        };
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
        Err(format!("redis-server on {addr} {why}; tail of {}:\n{}", self.log_path().display(), self.log_tail()))
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The pid of the running process (`None` after [`RedisServer::stop`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log file (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last 30 lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 30)
    }

    /// Its working directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run one command on a new connection and return the reply as text (see
    /// [`Reply`]'s `Display`: `OK`, `PONG`, the value, `(nil)`, an integer…).
    ///
    /// Panics if Redis does not answer within 5 s or answers with an error.
    pub fn cmd(&self, args: &[&str]) -> String {
        match self.try_cmd(args, CMD_TIMEOUT) {
            Ok(Reply::Error(e)) => panic!("redis {args:?} on {} answered an error: {e}", self.addr()),
            Ok(reply) => reply.to_string(),
            Err(e) => panic!("redis {args:?} on {}: {e}; log tail:\n{}", self.addr(), self.log_tail()),
        }
    }

    /// Run one command on a new connection, with `timeout` for the connect and each read/write.
    /// While the server is paused this is an `Err` of kind `WouldBlock` or `TimedOut`.
    pub fn try_cmd(&self, args: &[&str], timeout: Duration) -> io::Result<Reply> {
        resp::call(self.addr(), args, timeout)
    }

    /// SIGSTOP the process: it keeps its sockets, but nothing answers until
    /// [`RedisServer::resume`] — what a Redis stuck in a long command or a swapped-out VM looks
    /// like to its clients.
    pub fn pause(&self) {
        self.send_signal(libc::SIGSTOP, "SIGSTOP");
    }

    /// SIGCONT the process after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.send_signal(libc::SIGCONT, "SIGCONT");
    }

    fn send_signal(&self, sig: libc::c_int, name: &str) {
        let child = self.child.as_ref().unwrap_or_else(|| panic!("{name}: redis-server on {} is stopped", self.addr()));
        signal(child, sig).unwrap_or_else(|e| panic!("{name} to redis-server {}: {e}", child.id()));
    }

    /// `CLIENT KILL TYPE pubsub`: cut every connection that is subscribed to something, as a
    /// Redis failover or a proxy restart would. Returns how many were cut.
    pub fn kill_pubsub_clients(&self) -> i64 {
        match self.try_cmd(&["CLIENT", "KILL", "TYPE", "pubsub"], CMD_TIMEOUT) {
            Ok(Reply::Int(n)) => n,
            other => panic!("CLIENT KILL TYPE pubsub on {}: {other:?}", self.addr()),
        }
    }

    /// `FLUSHALL`: drop every key of every database.
    pub fn flushall(&self) {
        let reply = self.cmd(&["FLUSHALL"]);
        assert_eq!(reply, "OK", "FLUSHALL on {}", self.addr());
    }

    /// Kill the process (SIGKILL, as a crash would) and start a new one on the same port with no
    /// data; returns once it answers `PING`. Clients see their connections reset and a Redis
    /// that has forgotten every key, subscription and script.
    pub fn restart_empty(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("restart_empty: {e}");
        }
    }

    /// Kill the process (SIGKILL) and reap it. Idempotent; [`RedisServer::restart_empty`]
    /// starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("port", &self.port).field("pid", &self.pid()).finish()
    }
}
