//! The server under test: a child process the generator starts (and always stops), or an
//! external one given by URL and PID.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::sys;

/// Which server the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Parlor (`parlor serve`).
    Parlor,
    /// The Socket.IO 4 rooms server in `bench/peers/socketio`.
    Socketio,
    /// The bare tokio-tungstenite broadcaster in `bench/peers/bare`.
    Bare,
    /// The same rooms server as `socketio`, in Rust on socketioxide (`bench/peers/socketioxide`,
    /// binary `parlor-peer-socketioxide`).
    Socketioxide,
}

impl Kind {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Parlor => "parlor",
            Kind::Socketio => "socketio",
            Kind::Bare => "bare",
            Kind::Socketioxide => "socketioxide",
        }
    }

    /// Speaks Socket.IO v5 over Engine.IO v4 (the Node peer and socketioxide).
    pub fn is_socketio(self) -> bool {
        matches!(self, Kind::Socketio | Kind::Socketioxide)
    }
}

/// Where clients connect: cheap to clone into every session task.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// What it is.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The WebSocket URL path (with query).
    pub path: String,
}

/// A running server.
#[derive(Debug)]
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The WebSocket URL path clients use (with query).
    pub path: String,
    /// Its process, for CPU and RSS.
    pub pid: Option<u32>,
    child: Option<Child>,
}

/// Settings for a server the generator starts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Parlor `--room-message-rate`, `--user-message-rate`, `--request-rate`.
    pub message_rate: u32,
    /// Parlor `--outbound-limit` in bytes.
    pub outbound_limit: usize,
    /// The `parlor` binary to run as the Parlor server (default: this executable; `--server-bin`).
    pub server_bin: Option<PathBuf>,
    /// More arguments for `parlor serve` (W5: `--redis URL --node-id ID`), or after the port for
    /// the Socket.IO peer (its Redis adapter's URL).
    pub extra_args: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { message_rate: 1_000_000, outbound_limit: 64 * 1024 * 1024, server_bin: None, extra_args: Vec::new() }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: another process may take it meanwhile).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `bench/peers/socketio` in the source tree (or `$PARLOR_SOCKETIO_PEER`).
pub fn socketio_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PARLOR_SOCKETIO_PEER") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from("bench/peers/socketio");
    if here.join("server.js").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/socketio")
}

fn path_for(kind: Kind) -> String {
    match kind {
        Kind::Parlor => "/v1/ws".into(),
        Kind::Socketio | Kind::Socketioxide => "/socket.io/?EIO=4&transport=websocket".into(),
        Kind::Bare => "/".into(),
    }
}

/// The socketioxide peer's binary: `$PARLOR_SOCKETIOXIDE_PEER`, else `parlor-peer-socketioxide`
/// next to this executable (cargo puts every binary of the workspace in one directory).
pub fn socketioxide_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("PARLOR_SOCKETIOXIDE_PEER") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find the parlor binary")?;
    let bin = exe.with_file_name("parlor-peer-socketioxide");
    if !bin.exists() {
        bail!(
            "{}: not built; run `cargo build -p parlor-peer-socketioxide` (with --release for a release \
             generator), or point PARLOR_SOCKETIOXIDE_PEER at the binary",
            bin.display()
        );
    }
    Ok(bin)
}

/// Make the child die with us, whatever happens to us (Linux `PR_SET_PDEATHSIG`).
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

impl Target {
    /// Start `kind` as a child process on a free loopback port and wait until it accepts.
    pub async fn start(kind: Kind, limits: &Limits, app: &str) -> anyhow::Result<Target> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let exe = std::env::current_exe().context("cannot find the parlor binary")?;
        let mut cmd = match kind {
            Kind::Parlor => {
                let mut c = Command::new(limits.server_bin.as_ref().unwrap_or(&exe));
                let rate = limits.message_rate.to_string();
                c.arg("serve").arg("--listen").arg(addr.to_string()).arg("--app").arg(app);
                c.args(["--room-message-rate", &rate, "--user-message-rate", &rate, "--request-rate", &rate]);
                c.args(["--outbound-limit", &limits.outbound_limit.to_string()]);
                // The door's limits far above any workload (all its connections come from
                // 127.0.0.1, W1 logs in 10 000 in ~3 s), yet on: their counting is part of what
                // a connection costs in production, so it is part of what is measured.
                c.args(["--max-connections-per-ip", "1000000", "--connection-rate", "1000000"]);
                c.args(["--max-sessions-per-app", "1000000", "--max-offline-sessions", "1000000"]);
                // A drain keeps the door shut for its whole drain time; the bench's stop (SIGTERM,
                // SIGKILL after 3 s) wants the exit at once, when not asked otherwise.
                if !limits.extra_args.iter().any(|a| a.starts_with("--drain-time")) {
                    c.args(["--drain-time", "0s"]);
                }
                c.args(&limits.extra_args);
                c.env("RUST_LOG", "warn");
                c
            }
            Kind::Bare => {
                let mut c = Command::new(&exe);
                c.arg("bare-peer").arg("--listen").arg(addr.to_string());
                c
            }
            Kind::Socketioxide => {
                let mut c = Command::new(socketioxide_bin()?);
                c.arg("--listen").arg(addr.to_string());
                c
            }
            Kind::Socketio => {
                let dir = socketio_dir();
                if !dir.join("node_modules/socket.io").exists()
                    || (!limits.extra_args.is_empty() && !dir.join("node_modules/@socket.io/redis-adapter").exists())
                {
                    bail!("{}: run `npm ci` there first (the Socket.IO peer needs its node_modules)", dir.display());
                }
                let mut c = Command::new("node");
                // 100 000 sockets need more than V8's default old-space limit.
                c.arg("--max-old-space-size=8192").arg("server.js").arg(port.to_string()).current_dir(dir);
                c.args(&limits.extra_args);
                c
            }
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("cannot start the {} server", kind.name()))?;
        let pid = child.id();
        let mut target = Target { kind, addr, path: path_for(kind), pid: Some(pid), child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Some(c) = target.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("the {} server exited at start: {status}", kind.name());
                }
            }
            if Instant::now() > deadline {
                bail!("the {} server did not listen on {addr} within 15 s", kind.name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(target)
    }

    /// An external server at `url` (`ws://host:port/...`), optionally with its PID.
    pub fn external(kind: Kind, url: &str, pid: Option<u32>) -> anyhow::Result<Target> {
        let rest = url.strip_prefix("ws://").context("--server-url must start with ws://")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, path_for(kind)),
        };
        let addr: SocketAddr = hostport.parse().with_context(|| format!("{hostport}: need IP:PORT"))?;
        let path = if path == "/" && kind != Kind::Bare { path_for(kind) } else { path };
        Ok(Target { kind, addr, path, pid, child: None })
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { kind: self.kind, addr: self.addr, path: self.path.clone() }
    }

    /// CPU time used so far, if the PID is known.
    pub fn cpu(&self) -> Option<Duration> {
        self.pid.and_then(sys::cpu_time)
    }

    /// Resident memory now, if the PID is known.
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(sys::rss_bytes)
    }

    /// SIGKILL a child server and reap it, as a crash would (W6); no-op for an external one.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop a child server (no-op for an external one).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stop a child process we started: SIGTERM first so Node, Parlor and Redis exit cleanly, then
/// SIGKILL after 3 s.
pub fn stop_child(mut c: Child) {
    // SAFETY: kill with the pid of our own child, not yet reaped.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
