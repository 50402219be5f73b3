//! Server side: loading a server certificate folder, client-certificate policy, and the
//! rustls `ServerConfig` whose certificate resolver and client verifier reload in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::error::TlsError;
use crate::identity::PeerIdentity;
use crate::pem::{LoadedPair, Usage, load_ca, load_pair, provider};
use crate::reload::{ReloadWatcher, Reloadable};
use crate::shared::Shared;

/// The CA that verifies client certificates, inside a server folder.
pub const SERVER_CA_FILE: &str = "ca.crt";
/// The server certificate (chain) inside a server folder.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The server private key inside a server folder; must be mode 0600.
pub const SERVER_KEY_FILE: &str = "server.key";

/// Whether the server asks clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Plain TLS: no client certificate is requested; no `ca.crt` is needed.
    None,
    /// A certificate is requested and verified when sent; clients without one are let in
    /// (their [`crate::PeerInfo::identity`] is `None`).
    Optional,
    /// Mutual TLS: a handshake without a certificate from `ca.crt` fails.
    Required,
}

/// Server TLS settings: the certificate presented and the client-certificate policy.
///
/// Clones share the loaded material; see [`ServerTls::watch`] for hot reload.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    client_auth: ClientAuth,
    pair: Arc<Shared<LoadedPair>>,
    verifier: Option<Arc<Shared<dyn ClientCertVerifier>>>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.inner.cert)
            .field("key", &"[REDACTED]")
            .field("ca", &self.inner.ca)
            .field("client_auth", &self.inner.client_auth)
            .field("identity", &self.identity())
            .finish()
    }
}

impl ServerTls {
    /// Loads a server folder: `server.crt` and `server.key`, plus `ca.crt` unless
    /// `client_auth` is [`ClientAuth::None`]. Every required file must be present.
    pub fn from_folder(
        folder: impl AsRef<Path>,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsError> {
        let folder = folder.as_ref();
        if !folder.is_dir() {
            return Err(TlsError::MissingFolder {
                path: folder.to_path_buf(),
            });
        }
        let ca = (client_auth != ClientAuth::None).then(|| folder.join(SERVER_CA_FILE));
        Self::from_files(
            &folder.join(SERVER_CERT_FILE),
            &folder.join(SERVER_KEY_FILE),
            ca.as_deref(),
            client_auth,
        )
    }

    /// Builds server TLS from explicit files. `ca` is required unless `client_auth` is
    /// [`ClientAuth::None`] (and ignored then).
    pub fn from_files(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsError> {
        let ca = match (client_auth, ca) {
            (ClientAuth::None, _) => None,
            (_, Some(ca)) => Some(ca.to_path_buf()),
            (_, None) => {
                return Err(TlsError::MissingFile {
                    path: cert.with_file_name(SERVER_CA_FILE),
                    what: "client CA certificate",
                });
            }
        };
        let provider = provider();
        let pair = Arc::new(Shared::new(Arc::new(load_pair(cert, key, Usage::Server)?)));
        let verifier = match &ca {
            Some(ca) => Some(Arc::new(Shared::new(build_client_verifier(
                ca,
                client_auth,
                &provider,
            )?))),
            None => None,
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                context: "the server".to_owned(),
                detail: e.to_string(),
            })?;
        let builder = match &verifier {
            Some(slot) => builder.with_client_cert_verifier(Arc::new(ReloadingClientVerifier {
                current: Arc::clone(slot),
                mandatory: client_auth == ClientAuth::Required,
            })),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(ServerResolver {
            current: Arc::clone(&pair),
        }));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            inner: Arc::new(ServerInner {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                ca,
                client_auth,
                pair,
                verifier,
                config: Arc::new(config),
            }),
        })
    }

    /// The rustls configuration (ALPN `h2`).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.inner.config)
    }

    /// The client-certificate policy.
    pub fn client_auth(&self) -> ClientAuth {
        self.inner.client_auth
    }

    /// The identity of the certificate new handshakes present.
    pub fn identity(&self) -> PeerIdentity {
        self.inner.pair.get().identity.clone()
    }

    /// Re-reads the files now. The new pair and CA are validated completely before they are
    /// swapped; on error the previous ones stay in use. Existing connections are untouched.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.inner.reload()
    }

    /// Polls the files every `every` and reloads on change (see [`ClientTls::watch`]).
    /// Must be called within a tokio runtime; dropping the watcher stops it.
    ///
    /// [`ClientTls::watch`]: crate::ClientTls::watch
    pub fn watch(&self, every: std::time::Duration) -> ReloadWatcher {
        ReloadWatcher::spawn(Arc::clone(&self.inner) as Arc<dyn Reloadable>, every)
    }
}

impl Reloadable for ServerInner {
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert.clone(), self.key.clone()];
        files.extend(self.ca.clone());
        files
    }

    fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key, Usage::Server)?;
        let verifier = match &self.ca {
            Some(ca) => Some(build_client_verifier(ca, self.client_auth, &provider())?),
            None => None,
        };
        tracing::info!(certificate = %pair.identity, "server certificate reloaded");
        self.pair.set(Arc::new(pair));
        if let (Some(slot), Some(verifier)) = (&self.verifier, verifier) {
            slot.set(verifier);
        }
        Ok(())
    }
}

fn build_client_verifier(
    ca: &Path,
    client_auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_ca(ca)? {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: ca.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = if client_auth == ClientAuth::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|e| TlsError::Config {
        context: format!("client verification with {}", ca.display()),
        detail: e.to_string(),
    })
}

/// Presents whichever certificate the last successful reload installed.
#[derive(Debug)]
struct ServerResolver {
    current: Arc<Shared<LoadedPair>>,
}

impl ResolvesServerCert for ServerResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.get().certified))
    }
}

/// Delegates client verification to the verifier of the last successful reload.
#[derive(Debug)]
struct ReloadingClientVerifier {
    current: Arc<Shared<dyn ClientCertVerifier>>,
    mandatory: bool,
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would have to borrow from a verifier that a reload may replace; clients
        // pick their one configured certificate anyway, so none are sent.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current
            .get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .get()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .get()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.get().supported_verify_schemes()
    }
}
