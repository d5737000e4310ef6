//! TLS for the one listener (`--tls-cert` / `--tls-key`): rustls through tokio-rustls, on the
//! ring provider. With a certificate the listener speaks only TLS — `wss://`, and `https://` for
//! the admin API, `/metrics` and the demo page; there is no plain-text port beside it.
//!
//! [`TlsListener`] is an axum listener: an accept task takes TCP connections and runs each
//! handshake in its own task (bounded by [`HANDSHAKE_TIMEOUT`]), so that a slow or silent peer
//! never holds up the next one's accept.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::TlsFiles;

/// The server side of one TLS connection.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// How long a peer has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls settings for `files`: the chain and key read from PEM, ALPN `http/1.1` (the
/// WebSocket upgrade is HTTP/1.1). Every failure names the file and what is wrong with it.
pub fn server_config(files: &TlsFiles) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad =
        |path: &Path, what: String| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {what}", path.display()));
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(&files.cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "no certificate in the file (PEM `BEGIN CERTIFICATE` expected)".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener whose connections have finished their TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream, SocketAddr)>,
    local: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl TlsListener {
    /// Accept on `listener`, handshaking with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        // A short queue: accepted, handshaken connections wait here for axum, which takes
        // them as fast as it can; the deep queue is the kernel's accept backlog.
        let (tx, ready) = mpsc::channel(256);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of files and the like: wait a little rather than spin (as axum does).
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // No Nagle delay: frames are small and latency matters.
                let _ = tcp.set_nodelay(true);
                crate::limit_unsent(&tcp);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, accept_task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsStream, SocketAddr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
