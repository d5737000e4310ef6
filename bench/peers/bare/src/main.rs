//! `parlor-bare-peer [ADDR]`: the bare broadcast server on ADDR (default 127.0.0.1:7800).

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7800".to_string());
    let addr =
        addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    tokio::runtime::Runtime::new()?.block_on(parlor_bare_peer::run(addr))
}
