//! The REST API's listener: plain TCP, or TLS when `restapi.certfile` is set (read per
//! connection, so a reload's new certificate serves the next client). Handshakes run in their
//! own tasks, so a slow or silent client does not hold up the others; a refused handshake (no
//! client certificate under `verify_client: required`, a certificate of another CA) is logged
//! and never reaches the router.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::security::SharedSecurity;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection (axum's connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The client showed a certificate that the `cafile` CA signed.
    pub client_cert: bool,
}

impl Connected<IncomingStream<'_, RestListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, RestListener>) -> Peer {
        *stream.remote_addr()
    }
}

/// One accepted connection.
pub enum RestIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct RestListener {
    incoming: mpsc::Receiver<(RestIo, Peer)>,
    local: SocketAddr,
}

impl RestListener {
    pub fn new(tcp: TcpListener, security: SharedSecurity) -> std::io::Result<RestListener> {
        let local = tcp.local_addr()?;
        let (ready, incoming) = mpsc::channel(64);
        tokio::spawn(accept(tcp, security, ready));
        Ok(RestListener { incoming, local })
    }
}

impl axum::serve::Listener for RestListener {
    type Io = RestIo;
    type Addr = Peer;

    async fn accept(&mut self) -> (RestIo, Peer) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer {
            addr: self.local,
            tls: false,
            client_cert: false,
        })
    }
}

async fn accept(tcp: TcpListener, security: SharedSecurity, ready: mpsc::Sender<(RestIo, Peer)>) {
    loop {
        let (stream, addr) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("REST API: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = ready.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = security.current().tls.clone() else {
            let peer = Peer {
                addr,
                tls: false,
                client_cert: false,
            };
            if ready.send((RestIo::Plain(stream), peer)).await.is_err() {
                return;
            }
            continue;
        };
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(tls).accept(stream)).await {
                Ok(Ok(stream)) => {
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let peer = Peer {
                        addr,
                        tls: true,
                        client_cert,
                    };
                    let _ = ready.send((RestIo::Tls(Box::new(stream)), peer)).await;
                }
                Ok(Err(e)) => tracing::info!("REST API: TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::info!("REST API: {addr} did not complete the TLS handshake in time"),
            }
        });
    }
}

impl AsyncRead for RestIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RestIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            RestIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RestIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            RestIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            RestIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RestIo::Plain(s) => Pin::new(s).poll_flush(cx),
            RestIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RestIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            RestIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            RestIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            RestIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            RestIo::Plain(s) => s.is_write_vectored(),
            RestIo::Tls(s) => s.is_write_vectored(),
        }
    }
}
