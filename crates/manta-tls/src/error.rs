//! The one error type of this crate: every variant names the file or address involved and
//! says what to do next.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while loading certificates, building TLS configurations,
/// connecting or accepting connections.
///
/// Messages never contain key material: a private key file is named by its path only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate folder was given but does not exist or is not a directory.
    #[error(
        "certificate folder {path} does not exist or is not a directory: create it or fix the path"
    )]
    MissingFolder {
        /// The folder that was given.
        path: PathBuf,
    },

    /// A file the folder layout requires is not there. A folder given but incomplete is an
    /// error, never a silent fall back to plaintext.
    #[error(
        "{what} {path} is missing: put the PEM file there (see docs/tls.md for the folder layout)"
    )]
    MissingFile {
        /// The file that was expected.
        path: PathBuf,
        /// What the file should hold, e.g. "client certificate".
        what: &'static str,
    },

    /// A certificate folder holds none of the files of the client layout.
    #[error(
        "certificate folder {path} holds none of ca.crt, client.crt, client.key: put the manager's CA certificate there as ca.crt (and client.crt with client.key for mTLS)"
    )]
    NoCertificates {
        /// The folder that was given.
        path: PathBuf,
    },

    /// A client folder holds one half of the client certificate pair but not the other.
    #[error(
        "{} is missing: add it beside {present} for mTLS, or remove {present} to connect without a client certificate", missing.display()
    )]
    IncompletePair {
        /// The file that is not there.
        missing: PathBuf,
        /// The name of the half that is there (`client.crt` or `client.key`).
        present: &'static str,
    },

    /// The server requires a client certificate and this client has none: its folder
    /// holds only `ca.crt`.
    #[error("{address}{REFUSAL_TEXT}{}", folder.display())]
    ClientCertificateRequired {
        /// `host:port` of the server.
        address: String,
        /// The certificate folder that lacks the pair.
        folder: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}; check its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: io::Error,
    },

    /// A file is empty or holds no PEM block of the expected kind.
    #[error(
        "{path} holds no PEM {what} ({detail}): it must contain a `-----BEGIN {label}-----` block"
    )]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. "certificate".
        what: &'static str,
        /// The PEM label expected, e.g. "CERTIFICATE".
        label: &'static str,
        /// Why parsing failed (never key material).
        detail: String,
    },

    /// A PEM certificate block does not decode as an X.509 certificate.
    #[error("{path} holds a certificate that is not valid X.509 ({detail}): re-export it as PEM")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },

    /// The private key is of a type the crypto provider does not support, or is malformed.
    #[error(
        "private key in {path} is malformed or of an unsupported type: use an ECDSA P-256/P-384, Ed25519 or RSA (2048 bits or more) key in PKCS#8, PKCS#1 or SEC1 PEM"
    )]
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
    },

    /// The private key does not belong to the certificate.
    #[error(
        "private key {key} does not match certificate {cert}: install the key that was issued with this certificate"
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },

    /// A certificate is past its validity period.
    #[error("certificate {path} expired on {not_after} (valid from {not_before}): renew it")]
    Expired {
        /// The file.
        path: PathBuf,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },

    /// A certificate is not valid yet.
    #[error(
        "certificate {path} is not valid before {not_before} (until {not_after}): check the system clock or reissue it"
    )]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },

    /// A file meant to hold a certificate authority holds a certificate that is not a CA.
    #[error(
        "{path} is not a CA certificate (basicConstraints CA is not true): put the issuing CA's certificate there, not a leaf certificate"
    )]
    NotCa {
        /// The file.
        path: PathBuf,
    },

    /// A certificate's extended key usage does not allow the role it is used for.
    #[error("certificate {path} lacks the {usage} extended key usage: reissue it with {usage}")]
    MissingUsage {
        /// The file.
        path: PathBuf,
        /// The usage needed: "clientAuth" or "serverAuth".
        usage: &'static str,
    },

    /// The certificates in a chain file do not chain (each must be issued by the next).
    #[error(
        "certificate chain in {path} is broken ({detail}): list the leaf first, then each issuer in order"
    )]
    BrokenChain {
        /// The file.
        path: PathBuf,
        /// Which link is broken.
        detail: String,
    },

    /// A private key file is readable by group or others.
    #[error(
        "private key {path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`"
    )]
    InsecureKeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A server name (SNI and verification name) is not a valid DNS name or IP address.
    #[error("{name:?} is not a valid server name: give a DNS name or an IP address")]
    InvalidServerName {
        /// The rejected name.
        name: String,
    },

    /// An endpoint address cannot be used.
    #[error("invalid endpoint {uri:?} ({detail}): use http://host:port or https://host:port")]
    InvalidUri {
        /// The rejected address.
        uri: String,
        /// Why.
        detail: String,
    },

    /// No usable root certificates were found in the system store.
    #[error(
        "no system root certificates could be loaded ({detail}): install the ca-certificates package or give a ca.crt"
    )]
    SystemRoots {
        /// What the loader reported.
        detail: String,
    },

    /// rustls refused to build a configuration from the loaded material.
    #[error(
        "cannot build the TLS configuration for {context}: {detail}; check the certificate folder"
    )]
    Config {
        /// What was being built.
        context: String,
        /// What rustls reported.
        detail: String,
    },

    /// A connection or handshake to a server failed.
    #[error(
        "cannot connect to {uri}: {detail}; check the address, that the server runs and that its certificate is trusted"
    )]
    Connect {
        /// The endpoint.
        uri: String,
        /// What failed, with the underlying causes.
        detail: String,
    },

    /// A socket operation failed.
    #[error("{context}: {source}; check the address and that the port is free")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system error.
        #[source]
        source: io::Error,
    },

    /// Writing a file failed (development PKI).
    #[error("cannot write {path}: {source}; check that the folder is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: io::Error,
    },

    /// A development PKI file exists already; it is never overwritten.
    #[error("{path} exists already: remove the old development PKI or choose another folder")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },

    /// Certificate generation failed (development PKI).
    #[error("cannot generate {what}: {source}; check the names given")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
}

/// The fixed middle of [`TlsError::ClientCertificateRequired`]'s message, between the
/// address and the folder.
const REFUSAL_TEXT: &str = " requires a client certificate: add client.crt and client.key (issued by the manager's CA) to ";

impl TlsError {
    /// Finds, in `err` or its sources, the [`TlsError::ClientCertificateRequired`] a
    /// connector's stream reported, and returns it.
    ///
    /// The connector reports it as an `io::Error` on the connection, and h2 rebuilds I/O
    /// errors from their kind and text on the way up, so the typed value does not survive
    /// hyper and tonic: past a downcast, the error is recognised by its exact text.
    pub fn client_certificate_refusal_in(
        err: &(dyn std::error::Error + 'static),
    ) -> Option<TlsError> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            let typed = e.downcast_ref::<TlsError>().or_else(|| {
                e.downcast_ref::<io::Error>()
                    .and_then(io::Error::get_ref)
                    .and_then(|inner| inner.downcast_ref::<TlsError>())
            });
            if let Some(TlsError::ClientCertificateRequired { address, folder }) = typed {
                return Some(TlsError::ClientCertificateRequired {
                    address: address.clone(),
                    folder: folder.clone(),
                });
            }
            let text = e.to_string();
            if let Some((address, folder)) = text.split_once(REFUSAL_TEXT)
                && !address.is_empty()
                && !address.contains(char::is_whitespace)
            {
                return Some(TlsError::ClientCertificateRequired {
                    address: address.to_owned(),
                    folder: PathBuf::from(folder),
                });
            }
            cur = e.source();
        }
        None
    }
}

/// Joins an error and its sources into one line, so wrapped causes stay visible.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
