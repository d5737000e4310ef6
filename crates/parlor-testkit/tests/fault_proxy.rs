//! Tests of `FaultProxy` against a tiny echo server, on loopback.
//!
//! Most run on tokio's paused clock: a `timeout` that must elapse (black hole) costs no real
//! time, and delays are measured exactly with `tokio::time::Instant`. No test sleeps in real time.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use parlor_testkit::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Generous bound for things that must happen (virtual time on the paused clock).
const SOON: Duration = Duration::from_secs(5);

/// What the echo server saw, one event per connection start and end.
#[derive(Debug, PartialEq)]
enum Seen {
    Accepted,
    /// The connection ended: `Ok` on a clean EOF, `Err` on a reset or other error.
    Closed(Result<(), io::ErrorKind>),
}

/// Starts an echo server on `127.0.0.1:0`; returns its address and its event stream.
async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            let _ = tx.send(Seen::Accepted);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let end = loop {
                    match sock.read(&mut buf).await {
                        Ok(0) => break sock.shutdown().await.map_err(|e| e.kind()),
                        Ok(n) => {
                            if let Err(e) = sock.write_all(&buf[..n]).await {
                                break Err(e.kind());
                            }
                        }
                        Err(e) => break Err(e.kind()),
                    }
                };
                let _ = tx.send(Seen::Closed(end));
            });
        }
    });
    (addr, rx)
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(SOON, events.recv()).await.expect("echo server event in time").expect("echo server alive")
}

/// Writes `msg` and reads back exactly as many bytes, which must equal it.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    timeout(SOON, stream.read_exact(&mut back)).await.expect("echo in time").expect("read echo");
    assert_eq!(back, msg);
}

/// The peer must have closed the stream: a read gives EOF or an error (reset), in time.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match timeout(SOON, stream.read(&mut buf)).await {
        Err(_) => panic!("stream still open"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected a closed stream, read {n} bytes"),
    }
}

/// A read must *not* complete within `wait`: no data, no EOF, no reset.
async fn assert_silent(stream: &mut TcpStream, wait: Duration) {
    let mut buf = [0u8; 64];
    if let Ok(read) = timeout(wait, stream.read(&mut buf)).await {
        panic!("expected silence, got {read:?}");
    }
}

async fn wait_connections(proxy: &FaultProxy, n: usize) {
    timeout(SOON, proxy.wait_for_connections(n))
        .await
        .unwrap_or_else(|_| panic!("expected {n} connections, have {}", proxy.connection_count()));
}

/// Real time: bytes go both ways, big writes arrive intact, EOF is forwarded both ways.
#[tokio::test]
async fn forwards_both_ways_in_real_time() {
    let (server, mut events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    assert_ne!(proxy.addr(), server);
    assert_eq!(proxy.upstream(), server);

    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut client, b"hello").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
    assert_eq!(proxy.connection_count(), 1);

    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = client.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&big).await.expect("write big");
        wr.shutdown().await.expect("shutdown");
        big
    });
    let mut back = Vec::new();
    timeout(SOON, rd.read_to_end(&mut back)).await.expect("echo of 1 MB and EOF in time").expect("read to end");
    let big = writer.await.expect("writer task");
    assert_eq!(back.len(), big.len());
    assert!(back == big, "payload corrupted");

    assert_eq!(next_event(&mut events).await, Seen::Closed(Ok(())));
    wait_connections(&proxy, 0).await;
}

#[tokio::test(start_paused = true)]
async fn cut_closes_both_sides_and_accepts_new_connections() {
    let (server, mut events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");

    let mut a = TcpStream::connect(proxy.addr()).await.expect("connect a");
    let mut b = TcpStream::connect(proxy.addr()).await.expect("connect b");
    round_trip(&mut a, b"a").await;
    round_trip(&mut b, b"b").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
    wait_connections(&proxy, 2).await;

    proxy.cut();
    assert_closed(&mut a).await;
    assert_closed(&mut b).await;
    // The server side of both connections ended too.
    for _ in 0..2 {
        assert!(matches!(next_event(&mut events).await, Seen::Closed(_)));
    }
    wait_connections(&proxy, 0).await;

    let mut c = TcpStream::connect(proxy.addr()).await.expect("connect c");
    round_trip(&mut c, b"after the cut").await;
    assert_eq!(proxy.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn black_hole_stops_data_but_keeps_sockets_open() {
    let (server, mut events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut old = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut old, b"before").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);

    proxy.black_hole();
    old.write_all(b"into the void").await.expect("write");
    let start = Instant::now();
    assert_silent(&mut old, Duration::from_secs(30)).await;
    assert!(start.elapsed() >= Duration::from_secs(30));

    // A new connection is accepted, but nothing reaches the server.
    let mut new = TcpStream::connect(proxy.addr()).await.expect("connect during black hole");
    new.write_all(b"hello?").await.expect("write");
    assert_silent(&mut new, Duration::from_secs(30)).await;
    wait_connections(&proxy, 2).await;
    assert!(events.try_recv().is_err(), "server saw something");

    // The path comes back: held bytes are delivered in order on both connections.
    proxy.heal();
    let mut back = [0u8; 13];
    timeout(SOON, old.read_exact(&mut back)).await.expect("held bytes in time").expect("read");
    assert_eq!(&back, b"into the void");
    let mut back = [0u8; 6];
    timeout(SOON, new.read_exact(&mut back)).await.expect("held bytes in time").expect("read");
    assert_eq!(&back, b"hello?");
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
    round_trip(&mut old, b"alive").await;
}

#[tokio::test(start_paused = true)]
async fn delay_adds_latency_each_way_and_keeps_order() {
    let (server, _events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut client, b"warm up").await;

    // Undelayed, a round trip takes no virtual time at all.
    let start = Instant::now();
    round_trip(&mut client, b"fast").await;
    assert_eq!(start.elapsed(), Duration::ZERO);

    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    let start = Instant::now();
    round_trip(&mut client, b"slow").await;
    let rtt = start.elapsed();
    assert!(rtt >= 2 * delay, "round trip {rtt:?} shorter than 2 × {delay:?}");
    assert!(rtt < 2 * delay + Duration::from_millis(50), "round trip {rtt:?}");

    // A later chunk with a shorter delay does not overtake an earlier one.
    proxy.set_delay(Duration::from_secs(1));
    let start = Instant::now();
    client.write_all(b"first,").await.expect("write");
    tokio::time::sleep(Duration::from_millis(10)).await; // let the proxy read it alone
    proxy.set_delay(Duration::ZERO);
    client.write_all(b"second").await.expect("write");
    let mut back = [0u8; 12];
    timeout(SOON, client.read_exact(&mut back)).await.expect("echo in time").expect("read");
    assert_eq!(&back, b"first,second");
    assert!(start.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn refuse_resets_new_connections_only() {
    let (server, mut events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut old = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut old, b"before").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);

    proxy.refuse(true);
    for _ in 0..3 {
        // The kernel completes the handshake; the proxy then closes at once.
        let mut refused = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_closed(&mut refused).await;
    }
    assert!(events.try_recv().is_err(), "server saw a refused connection");
    assert_eq!(proxy.connection_count(), 1);
    round_trip(&mut old, b"still here").await;

    proxy.refuse(false);
    let mut new = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut new, b"welcome back").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
}

#[tokio::test(start_paused = true)]
async fn heal_clears_faults_but_does_not_resurrect_cut_connections() {
    let (server, _events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut cut = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut cut, b"x").await;
    wait_connections(&proxy, 1).await;
    proxy.cut();
    assert_closed(&mut cut).await;

    proxy.black_hole();
    proxy.set_delay(Duration::from_secs(2));
    proxy.refuse(true);
    proxy.heal();

    // Not refused, not black-holed, not delayed.
    let mut fresh = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    round_trip(&mut fresh, b"healed").await;
    assert_eq!(start.elapsed(), Duration::ZERO);

    // The cut connection stays dead.
    assert_closed(&mut cut).await;
    wait_connections(&proxy, 1).await;
}

#[tokio::test(start_paused = true)]
async fn stop_and_drop_close_everything() {
    let (server, mut events) = echo_server().await;
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut client, b"x").await;
    assert_eq!(next_event(&mut events).await, Seen::Accepted);
    let addr = proxy.addr();

    proxy.stop();
    assert_closed(&mut client).await;
    assert!(matches!(next_event(&mut events).await, Seen::Closed(_)));
    wait_connections(&proxy, 0).await;
    // The listener is gone: connecting is refused (the accept task may need a moment).
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // virtual time
    }
    assert!(refused, "listener still accepting after stop");

    // Dropping a running proxy does the same.
    let proxy = FaultProxy::start(server).expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    round_trip(&mut client, b"y").await;
    drop(proxy);
    assert_closed(&mut client).await;
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let err = FaultProxy::start(addr).expect_err("no runtime");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
