//! The fault proxy by hand: forward a port to a Parlor server and break the path on command.
//!
//! ```sh
//! cargo run -p parlor-testkit --example fault-proxy -- 127.0.0.1:7701 127.0.0.1:7700
//! ```
//! then type, one per line: `cut`, `blackhole`, `delay 300ms`, `refuse`, `heal`, `count`, `quit`.

use std::net::SocketAddr;
use std::time::Duration;

use parlor_testkit::FaultProxy;
use tokio::io::{AsyncBufReadExt, BufReader};

fn parse_ms(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs.parse::<f64>().ok().map(Duration::from_secs_f64);
    }
    s.parse().ok().map(Duration::from_millis)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fault-proxy LISTEN_ADDR UPSTREAM_ADDR   (e.g. 127.0.0.1:7701 127.0.0.1:7700)";
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(listen), Ok(upstream)) = (listen.parse::<SocketAddr>(), upstream.parse::<SocketAddr>()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let proxy = FaultProxy::start_on(listen, upstream)?;
    println!("fault proxy {} -> {}", proxy.addr(), upstream);
    println!("commands: cut | blackhole | delay <ms> | refuse | heal | count | quit");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("cut"), _) => proxy.cut(),
            (Some("blackhole"), _) => proxy.black_hole(),
            (Some("delay"), Some(d)) => match parse_ms(d) {
                Some(d) => proxy.set_delay(d),
                None => println!("delay takes a duration like 300ms or 1.5s"),
            },
            (Some("refuse"), _) => proxy.refuse(true),
            (Some("heal"), _) => proxy.heal(),
            (Some("count"), _) => {}
            (Some("quit"), _) => break,
            (None, _) => continue,
            (Some(other), _) => {
                println!("unknown command {other:?}");
                continue;
            }
        }
        println!("ok ({} connections)", proxy.connection_count());
    }
    proxy.stop();
    Ok(())
}
