//! The tonic acceptor: a stream of accepted connections (plaintext, or TLS after a
//! completed handshake) for `Server::serve_with_incoming`, each carrying the peer's
//! verified identity as tonic connect info.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tonic::transport::server::Connected;

use crate::conn::{AcceptOptions, ConnectionPermit, Watch};
use crate::error::{TlsError, chain};
use crate::identity::{PeerIdentity, PeerInfo};
use crate::server::ServerTls;

/// Handshakes in progress at once; further connections wait in the listen backlog, so a
/// flood of slow clients costs bounded memory.
const MAX_CONCURRENT_HANDSHAKES: usize = 512;

/// Accepted connections, ready for `tonic::transport::Server::serve_with_incoming`.
///
/// Accepting and handshaking run in a background task, one task per handshake, so a slow
/// or hostile client never delays others. Failed handshakes are logged at debug level with
/// the peer address and dropped; they never end the stream. Dropping this stops accepting.
///
/// [`AcceptOptions`] bound what clients that never authenticate can hold: a connection
/// over the limiter's caps is closed at once, one that has not sent the HTTP/2 preface
/// within the handshake timeout (TLS handshake included) is closed, and so is one with no
/// open call for the idle timeout.
#[derive(Debug)]
pub struct TlsIncoming {
    rx: mpsc::Receiver<ServerStream>,
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Serves `listener`: TLS with `tls`, or plaintext h2c when `tls` is `None`, with the
    /// default [`AcceptOptions`] (no connection caps). Must be called within a tokio runtime.
    pub fn new(listener: TcpListener, tls: Option<&ServerTls>) -> Result<Self, TlsError> {
        Self::with_options(listener, tls, AcceptOptions::default())
    }

    /// Like [`TlsIncoming::new`] with chosen timeouts and caps.
    pub fn with_options(
        listener: TcpListener,
        tls: Option<&ServerTls>,
        options: AcceptOptions,
    ) -> Result<Self, TlsError> {
        let local_addr = listener.local_addr().map_err(|source| TlsError::Io {
            context: "cannot read the listening address".to_owned(),
            source,
        })?;
        // A small queue: tonic takes connections as fast as they come, and back-pressure
        // here slows accepting rather than buffering sockets without bound.
        let (tx, rx) = mpsc::channel(32);
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
        let task = tokio::spawn(accept_loop(listener, acceptor, tx, options));
        Ok(Self {
            rx,
            local_addr,
            task,
        })
    }

    /// Binds `addr` (use port 0 for any free port) and serves it.
    pub async fn bind(addr: SocketAddr, tls: Option<&ServerTls>) -> Result<Self, TlsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Io {
                context: format!("cannot listen on {addr}"),
                source,
            })?;
        Self::new(listener, tls)
    }

    /// The address being listened on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = Result<ServerStream, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|s| s.map(Ok))
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<ServerStream>,
    options: AcceptOptions,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    loop {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (tcp, remote) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Usually out of file descriptors: pause instead of spinning, keep serving.
                tracing::warn!(error = %err, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let accepted = Instant::now();
        // Over a cap: dropping the socket closes it at once, so the client learns now
        // instead of waiting for a timeout, and the descriptor is free again.
        let Ok(slot) = options.limiter.try_acquire(remote.ip()) else {
            drop(tcp);
            continue;
        };
        // Best effort: gRPC frames are small and Nagle's delay would add latency; a socket
        // that refuses the option still works.
        let _ = tcp.set_nodelay(true);
        if let Some(time) = options.tcp_keepalive {
            // Best effort too: without it a vanished peer is found by HTTP/2 pings instead.
            let keepalive = socket2::TcpKeepalive::new().with_time(time);
            let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        }
        let local = tcp.local_addr().ok();
        let watch = Watch::new(accepted, &options);
        let Some(acceptor) = acceptor.clone() else {
            let info = PeerInfo {
                remote_addr: Some(remote),
                local_addr: local,
                tls: false,
                identity: None,
                streams: Some(watch.tracker()),
            };
            if tx
                .send(ServerStream {
                    inner: Inner::Plain(tcp),
                    info,
                    watch,
                    _slot: slot,
                })
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let deadline = accepted + options.handshake_timeout;
        tokio::spawn(async move {
            let handshake = tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await;
            drop(permit);
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(peer = %remote, error = %chain(&err), "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %remote, "TLS handshake timed out");
                    return;
                }
            };
            // rustls only reports peer certificates that passed the client verifier.
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(PeerIdentity::from_der);
            let info = PeerInfo {
                remote_addr: Some(remote),
                local_addr: local,
                tls: true,
                identity,
                streams: Some(watch.tracker()),
            };
            let _ = tx
                .send(ServerStream {
                    inner: Inner::Tls(Box::new(stream)),
                    info,
                    watch,
                    _slot: slot,
                })
                .await;
        });
    }
}

/// One accepted connection; tonic reads its [`PeerInfo`] through [`Connected`].
#[derive(Debug)]
pub struct ServerStream {
    inner: Inner,
    info: PeerInfo,
    watch: Watch,
    /// Holds this connection's place under the caps until the socket is dropped.
    _slot: ConnectionPermit,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerStream {
    /// What is known about the peer.
    pub fn peer_info(&self) -> &PeerInfo {
        &self.info
    }
}

impl Connected for ServerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.watch.expired(cx) {
            // End of stream: hyper closes the connection. No call is open (or none ever
            // started), so nothing is cut short.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = match &mut this.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if polled.is_ready() {
            this.watch.read(buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }
}
