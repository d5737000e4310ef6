//! A TCP fault proxy for tests and benchmarks.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every accepted connection to one
//! upstream address. While it runs, a test can break the path between client and server the way
//! real networks break, and then heal it:
//!
//! | control          | what the peers see                                                        |
//! |------------------|---------------------------------------------------------------------------|
//! | [`cut`]          | every current connection is reset (both sides get a reset or EOF)        |
//! | [`black_hole`]   | sockets stay open but no byte moves, on current and new connections      |
//! | [`set_delay`]    | every chunk arrives `delay` later, in order (one way; the RTT grows 2×)  |
//! | [`refuse`]       | new connections are accepted and reset at once: the server is unreachable |
//! | [`heal`]         | black hole, delay and refuse are cleared (cut connections stay dead)     |
//!
//! # How it works
//!
//! The controls write one small [`State`] into a `tokio::sync::watch` channel; each connection
//! task reads it when it needs to (before every read and write, and to learn it was cut), so a
//! control call is cheap, synchronous and takes effect on connections that already exist.
//! Each direction of a connection is a reader and a writer joined by a bounded queue of chunks;
//! a chunk carries the instant it is due (read time + delay), so a delay keeps the order of
//! bytes and of the final EOF. A black hole *pauses* the path rather than dropping bytes: a TCP
//! stream cannot lose bytes in the middle, and a real path that comes back delivers what the
//! sender's TCP was retransmitting. After [`heal`] everything held back is delivered.
//!
//! All timing goes through `tokio::time`, so the proxy works under
//! `#[tokio::test(start_paused = true)]` as well as in real time. IO errors never panic: they
//! close the affected connection (with a reset) and are logged at `debug` level.
//!
//! [`cut`]: FaultProxy::cut
//! [`black_hole`]: FaultProxy::black_hole
//! [`set_delay`]: FaultProxy::set_delay
//! [`refuse`]: FaultProxy::refuse
//! [`heal`]: FaultProxy::heal

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Largest chunk read from a socket in one go.
const CHUNK: usize = 16 * 1024;
/// Chunks queued per direction before the reader stops reading (back-pressure): up to 1 MiB in
/// flight per direction, enough for a delayed path not to starve a benchmark.
const QUEUE: usize = 64;

/// The faults currently applied; written by [`FaultProxy`] controls, read by connection tasks.
#[derive(Debug, Clone, Default)]
struct State {
    black_hole: bool,
    delay: Duration,
    refuse: bool,
    /// Bumped by every [`FaultProxy::cut`]; a connection dies when it differs from the value
    /// it was accepted under.
    cut_epoch: u64,
    stopped: bool,
}

/// A TCP proxy on loopback that forwards to one upstream address and injects faults on command.
///
/// Start it with [`FaultProxy::start`], point clients at [`FaultProxy::addr`], and call the
/// controls from any task. Every control is synchronous, cheap and takes `&self`. Dropping the
/// proxy (or calling [`FaultProxy::stop`]) stops the listener and resets every connection.
///
/// ```no_run
/// # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
/// use parlor_testkit::FaultProxy;
/// let proxy = FaultProxy::start(server)?;
/// let client = tokio::net::TcpStream::connect(proxy.addr()).await?;
/// proxy.wait_for_connections(1).await;
/// proxy.black_hole(); // the path goes dead, the socket stays open
/// proxy.heal();       // held-back bytes are delivered
/// proxy.cut();        // the client sees a reset
/// # drop(client); Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    control: watch::Sender<State>,
    connections: Arc<watch::Sender<usize>>,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts forwarding every accepted connection to `upstream`.
    ///
    /// Must be called from inside a tokio runtime (the proxy's tasks are spawned on it); outside
    /// one it returns an error instead of panicking. The upstream is connected per accepted
    /// connection, so it need not be up yet; if connecting fails, that client is reset.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        FaultProxy::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream)
    }

    /// Like [`FaultProxy::start`], listening on `listen` (for a proxy run by hand on a known
    /// port; tests use [`FaultProxy::start`]).
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<FaultProxy> {
        let handle =
            Handle::try_current().map_err(|e| io::Error::other(format!("FaultProxy needs a tokio runtime: {e}")))?;
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _guard = handle.enter();
            TcpListener::from_std(listener)?
        };
        let (control, ctl_rx) = watch::channel(State::default());
        let connections = Arc::new(watch::Sender::new(0usize));
        handle.spawn(accept_loop(listener, upstream, ctl_rx, connections.clone()));
        Ok(FaultProxy { addr, upstream, control, connections })
    }

    /// The address clients should connect to (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Closes every current connection abruptly: both the client and the upstream side are
    /// reset (they see a connection-reset error or EOF). New connections are still accepted.
    ///
    /// Only connections the proxy has already accepted are cut; one still in the listen backlog
    /// survives. Use [`FaultProxy::wait_for_connections`] first to be sure.
    pub fn cut(&self) {
        self.control.send_modify(|s| s.cut_epoch = s.cut_epoch.wrapping_add(1));
    }

    /// Stops forwarding bytes in both directions, on current and new connections, without
    /// closing anything: like a dead network path. New connections are accepted by the proxy but
    /// not connected upstream until the path heals. Nothing is lost: after
    /// [`FaultProxy::heal`] the held-back bytes are delivered in order.
    pub fn black_hole(&self) {
        self.control.send_modify(|s| s.black_hole = true);
    }

    /// Adds `delay` of one-way latency to every chunk in both directions, keeping the order
    /// (a request/response round trip therefore takes `2 × delay` more). Applies to chunks read
    /// from now on; `Duration::ZERO` removes the delay.
    pub fn set_delay(&self, delay: Duration) {
        self.control.send_modify(|s| s.delay = delay);
    }

    /// While `true`, new connections are accepted and immediately reset, as if the server were
    /// unreachable. Current connections are not affected.
    pub fn refuse(&self, refuse: bool) {
        self.control.send_modify(|s| s.refuse = refuse);
    }

    /// Clears black hole, delay and refuse. Connections that were cut stay closed.
    pub fn heal(&self) {
        self.control.send_modify(|s| {
            s.black_hole = false;
            s.delay = Duration::ZERO;
            s.refuse = false;
        });
    }

    /// The number of connections currently open through the proxy (accepted and not refused,
    /// including ones still waiting for a black hole to clear before connecting upstream).
    pub fn connection_count(&self) -> usize {
        *self.connections.borrow()
    }

    /// Waits until exactly `n` connections are open through the proxy (see
    /// [`FaultProxy::connection_count`]). Wrap it in `tokio::time::timeout` in tests.
    pub async fn wait_for_connections(&self, n: usize) {
        let mut rx = self.connections.subscribe();
        // The sender lives in `self`, so this cannot fail while we borrow `self`.
        let _ = rx.wait_for(|count| *count == n).await;
    }

    /// Stops the proxy: the listener closes and every connection is reset. The proxy's tasks
    /// notice on their next poll, so the effect is immediate in a test's terms but not
    /// synchronous. Idempotent; dropping the proxy does the same.
    pub fn stop(&self) {
        self.control.send_modify(|s| s.stopped = true);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `pred` holds for the control state. Returns `false` if the proxy is gone.
async fn wait_state(ctl: &mut watch::Receiver<State>, pred: impl FnMut(&State) -> bool) -> bool {
    // `wait_for` returns a read guard; drop it at once, holding it would block the controls.
    ctl.wait_for(pred).await.is_ok()
}

/// Resolves when the connection accepted under `epoch` must die (cut, stop or proxy dropped).
async fn killed(mut ctl: watch::Receiver<State>, epoch: u64) {
    wait_state(&mut ctl, |s| s.stopped || s.cut_epoch != epoch).await;
}

/// Resets a socket: zero linger turns the close into an RST. Best effort.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    ctl: watch::Receiver<State>,
    connections: Arc<watch::Sender<usize>>,
) {
    let mut stop_rx = ctl.clone();
    loop {
        let accepted = tokio::select! {
            _ = wait_state(&mut stop_rx, |s| s.stopped) => break,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                // E.g. out of file descriptors: back off a little instead of spinning.
                tracing::debug!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (refuse, epoch) = {
            let s = ctl.borrow();
            (s.refuse, s.cut_epoch)
        };
        if refuse {
            reset(client);
            continue;
        }
        let guard = CountGuard::new(connections.clone());
        tokio::spawn(connection(client, upstream, ctl.clone(), epoch, guard));
    }
    tracing::debug!("fault proxy: stopped");
}

/// Keeps [`FaultProxy::connection_count`] right, however the connection task ends.
struct CountGuard(Arc<watch::Sender<usize>>);

impl CountGuard {
    fn new(count: Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        CountGuard(count)
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One proxied connection: connect upstream when the path is up, then pump both ways until
/// both sides have closed gracefully, an IO error happens, or the connection is killed.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    ctl: watch::Receiver<State>,
    epoch: u64,
    _guard: CountGuard,
) {
    let _ = client.set_nodelay(true);
    let killed = killed(ctl.clone(), epoch);
    tokio::pin!(killed);

    let mut path = ctl.clone();
    let connect = async {
        if !wait_state(&mut path, |s| !s.black_hole).await {
            return Err(io::Error::other("proxy stopped"));
        }
        TcpStream::connect(upstream).await
    };
    let mut server = tokio::select! {
        _ = &mut killed => return reset(client),
        connected = connect => match connected {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(error = %e, %upstream, "fault proxy: upstream connect failed");
                return reset(client);
            }
        },
    };
    let _ = server.set_nodelay(true);

    let result = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let up = pump(client_r, server_w, ctl.clone());
        let down = pump(server_r, client_w, ctl.clone());
        tokio::select! {
            _ = &mut killed => Err(io::Error::other("cut")),
            result = async { tokio::try_join!(up, down) } => result.map(|_| ()),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "fault proxy: connection closed");
        reset(client);
        reset(server);
    }
}

/// One queued chunk; `None` data is the EOF, forwarded as a write shutdown.
struct Chunk {
    due: Instant,
    data: Option<Vec<u8>>,
}

/// Forwards one direction: reads chunks, stamps them with their due time, and writes them in
/// order once due and while the path is not black-holed. Ends after forwarding EOF.
async fn pump<R, W>(mut from: R, mut to: W, ctl: watch::Receiver<State>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE);
    let mut read_ctl = ctl.clone();
    let mut write_ctl = ctl;
    let gone = || io::Error::other("proxy stopped");

    let reader = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if !wait_state(&mut read_ctl, |s| !s.black_hole).await {
                return Err(gone());
            }
            let n = from.read(&mut buf).await?;
            let due = Instant::now() + read_ctl.borrow().delay;
            let data = (n > 0).then(|| buf[..n].to_vec());
            let eof = data.is_none();
            if tx.send(Chunk { due, data }).await.is_err() {
                return Ok(()); // the writer ended with an error, reported by it
            }
            if eof {
                return Ok(());
            }
        }
    };
    let writer = async {
        while let Some(chunk) = rx.recv().await {
            if chunk.due > Instant::now() {
                tokio::time::sleep_until(chunk.due).await;
            }
            if !wait_state(&mut write_ctl, |s| !s.black_hole).await {
                return Err(gone());
            }
            match chunk.data {
                Some(data) => to.write_all(&data).await?,
                None => {
                    to.shutdown().await?;
                    return Ok(());
                }
            }
        }
        Ok(()) // the reader ended with an error, reported by it
    };
    tokio::try_join!(reader, writer).map(|_| ())
}
