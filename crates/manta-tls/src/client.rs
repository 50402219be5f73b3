//! Client side: loading a client certificate folder, the rustls `ClientConfig` built on
//! reloadable trust and identity, and the one switch that turns verification off.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::identity::PeerIdentity;
use crate::pem::{LoadedPair, Usage, load_ca, load_pair, provider};
use crate::reload::{ReloadWatcher, Reloadable};
use crate::shared::Shared;

/// File names inside a client certificate folder (the seed's `cert_folder`).
pub const CLIENT_CA_FILE: &str = "ca.crt";
/// The client certificate (chain) inside a client folder.
pub const CLIENT_CERT_FILE: &str = "client.crt";
/// The client private key inside a client folder; must be mode 0600.
pub const CLIENT_KEY_FILE: &str = "client.key";

/// Where the client's trust comes from.
#[derive(Clone, Debug)]
enum Trust {
    /// A CA bundle file (`ca.crt`).
    File(PathBuf),
    /// The operating system's root store, for public servers on port 443.
    System,
}

/// Client TLS settings: whom to trust, which certificate to present, and the name to verify.
///
/// Clones share the loaded material, so a [`ClientTls::watch`] or [`ClientTls::reload`]
/// on one is seen by every clone and by every connector built from it. Each new handshake
/// uses the current material; established connections keep theirs.
#[derive(Clone)]
pub struct ClientTls {
    inner: Arc<ClientInner>,
    server_name: Option<ServerName<'static>>,
}

struct ClientInner {
    trust: Trust,
    identity_files: Option<(PathBuf, PathBuf)>,
    verifier: Arc<Shared<dyn ServerCertVerifier>>,
    pair: Option<Arc<Shared<LoadedPair>>>,
    config: Arc<ClientConfig>,
    danger: bool,
    /// The address of the last server that refused a connection for want of a client
    /// certificate, until a connection is accepted again (see
    /// [`ClientTls::client_certificate_refusal`]).
    refused_by: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Paths and the certificate's identity only: never the key.
        f.debug_struct("ClientTls")
            .field("trust", &self.inner.trust)
            .field("identity", &self.identity())
            .field("server_name", &self.server_name)
            .field("danger_accept_invalid_certs", &self.inner.danger)
            .finish()
    }
}

impl ClientTls {
    /// Loads a client certificate folder (the seed's `cert_folder`).
    ///
    /// - `ca.crt`, `client.crt` and `client.key`: mTLS, the server verified against
    ///   `ca.crt` and the client certificate presented.
    /// - `ca.crt` alone: server-authenticated TLS with a private CA, no client certificate.
    /// - one of `client.crt`/`client.key` without the other, no `ca.crt`, none of the files
    ///   or no folder at all: an error naming what is missing, never a fall back to
    ///   plaintext or to another mode than the files say.
    pub fn from_folder(folder: impl AsRef<Path>) -> Result<Self, TlsError> {
        let folder = folder.as_ref();
        if !folder.is_dir() {
            return Err(TlsError::MissingFolder {
                path: folder.to_path_buf(),
            });
        }
        let ca = folder.join(CLIENT_CA_FILE);
        let cert = folder.join(CLIENT_CERT_FILE);
        let key = folder.join(CLIENT_KEY_FILE);
        // `exists` follows symlinks, so a Kubernetes secret volume's links count as files.
        match (ca.exists(), cert.exists(), key.exists()) {
            (false, false, false) => Err(TlsError::NoCertificates {
                path: folder.to_path_buf(),
            }),
            (false, _, _) => Err(TlsError::MissingFile {
                path: ca,
                what: "CA certificate",
            }),
            (true, true, false) => Err(TlsError::IncompletePair {
                missing: key,
                present: CLIENT_CERT_FILE,
            }),
            (true, false, true) => Err(TlsError::IncompletePair {
                missing: cert,
                present: CLIENT_KEY_FILE,
            }),
            (true, false, false) => Self::from_files(Some(&ca), None),
            (true, true, true) => Self::from_files(Some(&ca), Some((&cert, &key))),
        }
    }

    /// Builds client TLS from explicit files: `ca` (None: the system roots) and an optional
    /// client certificate and key.
    pub fn from_files(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        let trust = match ca {
            Some(path) => Trust::File(path.to_path_buf()),
            None => Trust::System,
        };
        let identity_files = identity.map(|(c, k)| (c.to_path_buf(), k.to_path_buf()));
        Self::build(trust, identity_files, false)
    }

    /// Server-only TLS trusting the operating system's roots: what port 443 uses when no
    /// certificate folder is configured.
    pub fn system_roots() -> Result<Self, TlsError> {
        Self::build(Trust::System, None, false)
    }

    /// Verifies the server under `name` (and sends it as SNI) instead of the host of the
    /// address connected to, e.g. when connecting by IP to a certificate issued for a name.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        let parsed = ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|_| TlsError::InvalidServerName {
                name: name.to_owned(),
            })?;
        self.server_name = Some(parsed.to_owned());
        Ok(self)
    }

    /// Accepts any server certificate: no chain, name or date check (handshake signatures
    /// are still checked). For local experiments only; it logs a warning once per process.
    ///
    /// The connection stays encrypted but anyone on the path can impersonate the server
    /// and read the bearer token.
    pub fn danger_accept_invalid_certs(self) -> Result<Self, TlsError> {
        static WARN: Once = Once::new();
        WARN.call_once(|| {
            tracing::warn!(
                "TLS server certificate verification is OFF (danger_accept_invalid_certs): any server can impersonate the manager"
            );
        });
        let server_name = self.server_name.clone();
        let mut out = Self::build(
            self.inner.trust.clone(),
            self.inner.identity_files.clone(),
            true,
        )?;
        out.server_name = server_name;
        Ok(out)
    }

    /// The rustls configuration (ALPN `h2`), shared by every connection made with it.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.inner.config)
    }

    /// The same rustls configuration without ALPN, for protocols other than gRPC (MQTT over
    /// TLS): brokers do not speak `h2` and some refuse a handshake that offers only it. The
    /// certificate verifier and client certificate are shared, so reloads still apply.
    pub fn client_config_without_alpn(&self) -> Arc<ClientConfig> {
        let mut config = (*self.inner.config).clone();
        config.alpn_protocols.clear();
        Arc::new(config)
    }

    /// The server-name override, if one was set.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// The identity of the client certificate currently presented, if any.
    pub fn identity(&self) -> Option<PeerIdentity> {
        self.inner.pair.as_ref().map(|p| p.get().identity.clone())
    }

    /// A configuration for one new connection, and the flag its handshake sets when the
    /// server asks for a client certificate this client does not have (`None` when it
    /// presents one). Per connection, so a refusal is told apart from other failures
    /// without guessing from another connection's handshake.
    pub(crate) fn connection_config(&self) -> (Arc<ClientConfig>, Option<Arc<AtomicBool>>) {
        if self.inner.pair.is_some() {
            return (Arc::clone(&self.inner.config), None);
        }
        let asked = Arc::new(AtomicBool::new(false));
        let mut config = (*self.inner.config).clone();
        config.client_auth_cert_resolver = Arc::new(NoClientCert {
            asked: Arc::clone(&asked),
        });
        (Arc::new(config), Some(asked))
    }

    /// The refusal of the last connection made with this client (or a clone), when a server
    /// refused it because it requires a client certificate this client does not have;
    /// `None` once a connection is accepted again.
    ///
    /// hyper fails the calls waiting on a connection that closes with "operation was
    /// canceled" and drops the connection's own error, so a caller that sees a transport
    /// failure asks here whether that is its cause.
    pub fn client_certificate_refusal(&self) -> Option<TlsError> {
        let address = self
            .inner
            .refused_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        Some(TlsError::ClientCertificateRequired {
            address,
            folder: self.trust_folder(),
        })
    }

    /// Records the outcome of a connection that sent no certificate when asked for one:
    /// refused by `address`, or accepted (`None`).
    pub(crate) fn note_refusal(&self, address: Option<&str>) {
        *self
            .inner
            .refused_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = address.map(str::to_owned);
    }

    /// The folder to name when a server requires a client certificate this client lacks:
    /// the one holding its `ca.crt`.
    pub(crate) fn trust_folder(&self) -> PathBuf {
        match &self.inner.trust {
            Trust::File(ca) => ca
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            Trust::System => PathBuf::from("the certificate folder"),
        }
    }

    /// Re-reads the files now. The new trust and identity are validated completely before
    /// anything is swapped; on error the previous material stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.inner.reload()
    }

    /// Polls the files every `every` (inode, size and times, following symlinks, so atomic
    /// `mv` and Kubernetes `..data` swaps are seen) and reloads on change. Must be called
    /// within a tokio runtime; watching stops when the returned watcher is dropped.
    pub fn watch(&self, every: std::time::Duration) -> ReloadWatcher {
        ReloadWatcher::spawn(Arc::clone(&self.inner) as Arc<dyn Reloadable>, every)
    }

    fn build(
        trust: Trust,
        identity_files: Option<(PathBuf, PathBuf)>,
        danger: bool,
    ) -> Result<Self, TlsError> {
        let provider = provider();
        // The verifier and the resolver read the same slots the inner struct swaps on
        // reload, so rustls picks up new material without a new `ClientConfig`.
        let verifier = Arc::new(Shared::new(build_verifier(&trust, &provider, danger)?));
        let pair = match &identity_files {
            Some((cert, key)) => Some(Arc::new(Shared::new(Arc::new(load_pair(
                cert,
                key,
                Usage::Client,
            )?)))),
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                context: "the client".to_owned(),
                detail: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ReloadingServerVerifier {
                current: Arc::clone(&verifier),
            }));
        let mut config = match &pair {
            Some(slot) => builder.with_client_cert_resolver(Arc::new(ClientResolver {
                current: Arc::clone(slot),
            })),
            None => builder.with_client_cert_resolver(Arc::new(NoClientCert {
                asked: Arc::new(AtomicBool::new(false)),
            })),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            inner: Arc::new(ClientInner {
                trust,
                identity_files,
                verifier,
                pair,
                config: Arc::new(config),
                danger,
                refused_by: std::sync::Mutex::new(None),
            }),
            server_name: None,
        })
    }
}

impl Reloadable for ClientInner {
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Trust::File(ca) = &self.trust {
            files.push(ca.clone());
        }
        if let Some((cert, key)) = &self.identity_files {
            files.push(cert.clone());
            files.push(key.clone());
        }
        files
    }

    fn reload(&self) -> Result<(), TlsError> {
        // Load everything first: a failure anywhere leaves all current material in place.
        let verifier = build_verifier(&self.trust, &provider(), self.danger)?;
        let pair = match &self.identity_files {
            Some((cert, key)) => Some(load_pair(cert, key, Usage::Client)?),
            None => None,
        };
        self.verifier.set(verifier);
        if let (Some(slot), Some(pair)) = (&self.pair, pair) {
            tracing::info!(certificate = %pair.identity, "client certificate reloaded");
            slot.set(Arc::new(pair));
        }
        Ok(())
    }
}

/// Loads the root store for `trust`.
fn load_roots(trust: &Trust) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::File(path) => {
            for cert in load_ca(path)? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
                return Err(TlsError::SystemRoots { detail });
            }
        }
    }
    Ok(roots)
}

fn build_verifier(
    trust: &Trust,
    provider: &Arc<CryptoProvider>,
    danger: bool,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if danger {
        return Ok(Arc::new(AcceptAnyServerCert {
            provider: Arc::clone(provider),
        }));
    }
    let roots = load_roots(trust)?;
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .build()
            .map_err(|e| TlsError::Config {
                context: "server verification".to_owned(),
                detail: e.to_string(),
            })?;
    Ok(verifier)
}

/// Delegates to whichever verifier the last successful reload installed.
#[derive(Debug)]
struct ReloadingServerVerifier {
    current: Arc<Shared<dyn ServerCertVerifier>>,
}

impl ServerCertVerifier for ReloadingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current.get().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
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

/// Presents whichever client certificate the last successful reload installed.
#[derive(Debug)]
struct ClientResolver {
    current: Arc<Shared<LoadedPair>>,
}

impl ResolvesClientCert for ClientResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.get().certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The resolver of a client without a certificate: it sends none (an empty Certificate
/// message, which a server with optional client auth accepts) and records that it was
/// asked, so a refused connection can be explained as "the server requires a certificate"
/// (see `ClientStream`).
#[derive(Debug)]
struct NoClientCert {
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The verifier behind [`ClientTls::danger_accept_invalid_certs`]: it skips the chain,
/// name and date checks but still checks handshake signatures, so the peer must at least
/// hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
