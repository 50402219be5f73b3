//! The tonic connector: plaintext h2c or TLS through tokio-rustls with our (hot-reloadable)
//! rustls configuration, for `Endpoint::connect_with_connector`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::client::ClientTls;
use crate::error::{TlsError, chain};

/// Connects TCP and, when TLS is on, runs the rustls handshake. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    tls: Option<(ClientTls, Option<ServerName<'static>>)>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("tls", &self.tls.is_some())
            .field("server_name", &self.tls.as_ref().and_then(|t| t.1.as_ref()))
            .finish()
    }
}

impl TlsConnector {
    /// Plaintext h2c with prior knowledge, as the published platform uses off port 443.
    pub fn plaintext() -> Self {
        Self { tls: None }
    }

    /// TLS with `tls`'s trust, client certificate and server-name override.
    pub fn new(tls: &ClientTls) -> Self {
        Self {
            tls: Some((tls.clone(), tls.server_name().cloned())),
        }
    }

    /// Whether this connector speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The stream a [`TlsConnector`] yields: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum ClientStream {
    /// Plaintext h2c.
    Plain(TcpStream),
    /// TLS; boxed because the rustls state is large.
    Tls(Box<TlsLink>),
}

/// A TLS connection, and what to report if the server turns out to require the client
/// certificate this client does not have.
#[derive(Debug)]
pub struct TlsLink {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// Set while the server asked for a client certificate, none was sent, and no byte has
    /// come back yet: the server's verdict is still out. With TLS 1.3 a server that
    /// requires a certificate refuses only after the client's handshake finished, with an
    /// alert (or a reset, when it hangs up before the alert is read), so the first read
    /// decides. The error it turns into names the folder to complete.
    pending_refusal: Option<(ClientTls, String)>,
}

impl TlsLink {
    /// The failure to report instead of `err` while the server's verdict is pending.
    fn refused(&mut self, err: Option<io::Error>) -> io::Error {
        match self.pending_refusal.take() {
            Some((client, address)) => {
                client.note_refusal(Some(&address));
                let refusal = TlsError::ClientCertificateRequired {
                    address,
                    folder: client.trust_folder(),
                };
                io::Error::new(io::ErrorKind::PermissionDenied, refusal)
            }
            None => err.unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// The server sent data, so it accepted the connection without a certificate.
    fn accepted(&mut self) {
        if let Some((client, _)) = self.pending_refusal.take() {
            client.note_refusal(None);
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(link) => {
                let before = buf.filled().len();
                let polled = Pin::new(&mut link.stream).poll_read(cx, buf);
                if link.pending_refusal.is_none() {
                    return polled;
                }
                match polled {
                    Poll::Ready(Ok(())) if buf.filled().len() > before => {
                        link.accepted();
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Ok(())) => Poll::Ready(Err(link.refused(None))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(link.refused(Some(e)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(link) => match Pin::new(&mut link.stream).poll_write(cx, buf) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(link.refused(Some(e)))),
                other => other,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(link) => match Pin::new(&mut link.stream).poll_flush(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(link.refused(Some(e)))),
                other => other,
            },
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(link) => Pin::new(&mut link.stream).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(link) => {
                match Pin::new(&mut link.stream).poll_write_vectored(cx, bufs) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(link.refused(Some(e)))),
                    other => other,
                }
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(link) => link.stream.is_write_vectored(),
        }
    }
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<ClientStream>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TlsError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TlsError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| TlsError::InvalidUri {
                    uri: uri.to_string(),
                    detail: "no host".to_owned(),
                })?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri
                .port_u16()
                .unwrap_or(if tls.is_some() { 443 } else { 80 });
            let connect_err = |detail: String| TlsError::Connect {
                uri: format!("{host}:{port}"),
                detail,
            };
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| connect_err(chain(&e)))?;
            // gRPC sends many small frames; Nagle's delay would add latency to each.
            tcp.set_nodelay(true).map_err(|e| connect_err(chain(&e)))?;
            let Some((client, name_override)) = tls else {
                return Ok(TokioIo::new(ClientStream::Plain(tcp)));
            };
            let name = match name_override {
                Some(name) => name,
                None => ServerName::try_from(host.clone())
                    .map_err(|_| TlsError::InvalidServerName { name: host.clone() })?,
            };
            let (config, asked) = client.connection_config();
            let refusal = || TlsError::ClientCertificateRequired {
                address: format!("{host}:{port}"),
                folder: client.trust_folder(),
            };
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    // TLS 1.2 refuses a missing certificate inside the handshake.
                    let detail = chain(&e);
                    if detail.contains("CertificateRequired") && asked.is_some() {
                        client.note_refusal(Some(&format!("{host}:{port}")));
                        refusal()
                    } else {
                        connect_err(format!("TLS handshake failed: {detail}"))
                    }
                })?;
            let asked = asked.filter(|a| {
                let asked = a.load(std::sync::atomic::Ordering::Relaxed);
                if !asked {
                    // This server does not want a certificate: nothing to refuse.
                    client.note_refusal(None);
                }
                asked
            });
            let pending_refusal = asked.map(|_| (client.clone(), format!("{host}:{port}")));
            Ok(TokioIo::new(ClientStream::Tls(Box::new(TlsLink {
                stream,
                pending_refusal,
            }))))
        })
    }
}

/// Decides plaintext or TLS for `uri` and returns the endpoint and connector to use.
///
/// TLS is on when `tls` is given, when the scheme is `https`, or when the port is 443 (the
/// published platform's rule); with no `tls` the system roots are trusted then. Otherwise
/// the connection is plaintext h2c. `uri` may omit the scheme (`host:port`).
///
/// The endpoint dials an `http://` address and carries the real scheme in its origin:
/// tonic refuses `https://` addresses given to a custom connector whenever one of its own
/// TLS features is compiled in anywhere in the build, while the `:scheme` sent must still
/// say `https`. Tune the endpoint (timeouts, keepalive) and pass both to
/// `Endpoint::connect_with_connector`, or use [`connect`].
pub fn endpoint(uri: &str, tls: Option<&ClientTls>) -> Result<(Endpoint, TlsConnector), TlsError> {
    let invalid = |detail: &str| TlsError::InvalidUri {
        uri: uri.to_owned(),
        detail: detail.to_owned(),
    };
    let with_scheme = if uri.contains("://") {
        uri.to_owned()
    } else {
        format!("http://{uri}")
    };
    let parsed: Uri = with_scheme.parse().map_err(|_| invalid("not a URI"))?;
    let https = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("the scheme must be http or https")),
    };
    let host = parsed.host().ok_or_else(|| invalid("no host"))?;
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let use_tls = tls.is_some() || https || port == 443;
    let connector = match (tls, use_tls) {
        (Some(tls), _) => TlsConnector::new(tls),
        (None, true) => TlsConnector::new(&ClientTls::system_roots()?),
        (None, false) => TlsConnector::plaintext(),
    };
    let authority = format!("{host}:{port}");
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| invalid(&e.to_string()))?;
    let scheme = if use_tls { "https" } else { "http" };
    let origin: Uri = format!("{scheme}://{authority}")
        .parse()
        .map_err(|_| invalid("not a URI"))?;
    Ok((endpoint.origin(origin), connector))
}

/// Connects now (see [`endpoint`] for when TLS is used) and returns a tonic channel.
pub async fn connect(uri: &str, tls: Option<&ClientTls>) -> Result<Channel, TlsError> {
    let (endpoint, connector) = endpoint(uri, tls)?;
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| TlsError::Connect {
            uri: uri.to_owned(),
            detail: connector_detail(&e).unwrap_or_else(|| chain(&e)),
        })
}

/// The detail of our own connector's error inside tonic's wrapper, so the message says
/// what failed once instead of repeating the advice at every layer.
fn connector_detail(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(TlsError::Connect { detail, .. }) = e.downcast_ref::<TlsError>() {
            return Some(detail.clone());
        }
        if let Some(inner) = e.downcast_ref::<TlsError>() {
            return Some(inner.to_string());
        }
        cur = e.source();
    }
    None
}

/// Returns a channel that connects on first use (and reconnects as needed).
pub fn connect_lazy(uri: &str, tls: Option<&ClientTls>) -> Result<Channel, TlsError> {
    let (endpoint, connector) = endpoint(uri, tls)?;
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_chosen_by_scheme_port_or_folder() {
        // The dialled address is always http:// (see `endpoint`); TLS is the connector's.
        let check = |uri: &str, tls: bool, dialled: &str| {
            let (ep, conn) = endpoint(uri, None).unwrap();
            assert_eq!(conn.is_tls(), tls, "{uri}");
            assert_eq!(ep.uri().to_string(), dialled, "{uri}");
        };
        check("http://127.0.0.1:50052", false, "http://127.0.0.1:50052/");
        check("localhost:50051", false, "http://localhost:50051/");
        check("platform.example:443", true, "http://platform.example:443/");
        check(
            "https://platform.example",
            true,
            "http://platform.example:443/",
        );
        check("https://[::1]:8443", true, "http://[::1]:8443/");
    }

    #[test]
    fn bad_endpoints_say_what_to_use() {
        for uri in ["ftp://host:1", "http://", "not a uri"] {
            let err = endpoint(uri, None).unwrap_err();
            assert!(matches!(err, TlsError::InvalidUri { .. }), "{uri}: {err}");
            assert!(err.to_string().contains("http://host:port"), "{err}");
        }
    }
}
