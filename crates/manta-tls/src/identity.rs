//! The verified identity of a TLS peer (subject, SANs, SHA-256 fingerprint) and the
//! per-connection information tonic puts into every request's extensions.

use std::net::{IpAddr, SocketAddr};

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::conn::StreamTracker;

/// Who a certificate names: what an audit log records about a verified peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    subject: String,
    sans: Vec<String>,
    fingerprint: [u8; 32],
}

impl PeerIdentity {
    /// Reads the identity of a DER certificate; `None` when it is not valid X.509.
    pub fn from_der(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let sans = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.iter().filter_map(san).collect())
            .unwrap_or_default();
        Some(Self {
            subject: parsed.subject().to_string(),
            sans,
            fingerprint: Sha256::digest(cert.as_ref()).into(),
        })
    }

    /// The subject distinguished name, e.g. `CN=node-7, O=Manta`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject alternative names, each prefixed with its kind: `DNS:`, `IP:`, `URI:`
    /// or `email:`.
    pub fn sans(&self) -> &[String] {
        &self.sans
    }

    /// The SHA-256 digest of the DER certificate.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The SHA-256 fingerprint as lower-case hex, as `openssl x509 -fingerprint -sha256`
    /// prints it without colons.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (sha256 {})", self.subject, self.fingerprint_hex())
    }
}

fn san(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
        GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
        GeneralName::URI(u) => Some(format!("URI:{u}")),
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                _ => return None,
            };
            Some(format!("IP:{ip}"))
        }
        _ => None,
    }
}

/// What the server knows about the connection a request came in on.
///
/// [`crate::TlsIncoming`] yields streams whose `tonic::transport::server::Connected`
/// info is this type, so tonic inserts it into every request's extensions. Read it with
/// [`PeerInfo::from_request`] or `request.extensions().get::<PeerInfo>()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) tls: bool,
    pub(crate) identity: Option<PeerIdentity>,
    pub(crate) streams: Option<StreamTracker>,
}

impl PeerInfo {
    /// The connection info of a tonic request, when it came through [`crate::TlsIncoming`].
    pub fn from_request<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
        request.extensions().get::<PeerInfo>()
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The address the client connected to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether the connection is TLS (false for plaintext h2c).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The client certificate's identity, present only when the client presented a
    /// certificate that the server's CA verified during the handshake.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        self.identity.as_ref()
    }

    /// The connection's call count: the server holds a [`crate::StreamGuard`] per call so
    /// the idle timeout spares connections with calls open.
    pub fn streams(&self) -> Option<&StreamTracker> {
        self.streams.as_ref()
    }
}
