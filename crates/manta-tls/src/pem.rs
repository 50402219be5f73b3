//! PEM parsing through `rustls-pki-types`' `PemObject`, and the checks every certificate and
//! key file passes before it is used: validity dates, CA flag, extended key usage, chain
//! order, key type, key/certificate match and key file permissions.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretBox};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroize;

use crate::error::TlsError;
use crate::identity::PeerIdentity;

/// The role a certificate plays, which decides the extended key usage it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage {
    /// A TLS server certificate (needs serverAuth when an EKU extension is present).
    Server,
    /// A TLS client certificate (needs clientAuth when an EKU extension is present).
    Client,
}

impl Usage {
    fn name(self) -> &'static str {
        match self {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
        }
    }
}

/// The crypto provider every configuration of this crate uses, chosen explicitly so no
/// process-wide default has to be installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses every `CERTIFICATE` block in `pem`.
///
/// This is the PEM entry point the fuzz target drives; `origin` only names the source in
/// errors. Any other PEM block (a key, for instance) is skipped, as openssl does.
pub fn parse_certificates(
    pem: &[u8],
    origin: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let not_pem = |detail: String| TlsError::NotPem {
        path: origin.to_path_buf(),
        what: "certificate",
        label: "CERTIFICATE",
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(e.to_string()))?;
    if certs.is_empty() {
        let detail = if pem.iter().all(u8::is_ascii_whitespace) {
            "the file is empty"
        } else {
            "no certificate block found"
        };
        return Err(not_pem(detail.to_owned()));
    }
    for cert in &certs {
        parse_x509(cert, origin)?;
    }
    Ok(certs)
}

/// Parses the private key in `pem` (PKCS#8, PKCS#1 or SEC1) and loads it with the crypto
/// provider, so an unsupported key type is reported here rather than at handshake time.
///
/// Parser details are not repeated in the error: they could quote parts of the key.
pub fn parse_private_key(
    pem: &SecretBox<[u8]>,
    origin: &Path,
) -> Result<Arc<dyn rustls::sign::SigningKey>, TlsError> {
    // Parsing is the one use of the key bytes besides handing them to the provider below.
    let mut der = PrivateKeyDer::from_pem_slice(pem.expose_secret()).map_err(|e| {
        let detail = match e {
            rustls_pki_types::pem::Error::NoItemsFound
                if pem.expose_secret().iter().all(u8::is_ascii_whitespace) =>
            {
                "the file is empty"
            }
            rustls_pki_types::pem::Error::NoItemsFound => "no private key block found",
            _ => "the private key block is malformed",
        };
        TlsError::NotPem {
            path: origin.to_path_buf(),
            what: "private key",
            label: "PRIVATE KEY",
            detail: detail.to_owned(),
        }
    })?;
    // The provider copies the key into its own (wiped-on-free) structure; our copy of the
    // DER is wiped here rather than left to a plain drop.
    let result = provider()
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|_| TlsError::UnsupportedKey {
            path: origin.to_path_buf(),
        });
    der.zeroize();
    result
}

/// Decodes one certificate with x509-parser, naming the file on failure.
pub(crate) fn parse_x509<'a>(
    cert: &'a CertificateDer<'_>,
    origin: &Path,
) -> Result<X509Certificate<'a>, TlsError> {
    X509Certificate::from_der(cert.as_ref())
        .map(|(_, c)| c)
        .map_err(|e| TlsError::BadCertificate {
            path: origin.to_path_buf(),
            detail: e.to_string(),
        })
}

/// Reads a file that must exist, mapping "not found" to [`TlsError::MissingFile`].
fn read_required(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::MissingFile {
                path: path.to_path_buf(),
                what,
            }
        } else {
            TlsError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Refuses a key file readable by group or others, before its content is read.
#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::MissingFile {
                path: path.to_path_buf(),
                what: "private key",
            }
        } else {
            TlsError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::InsecureKeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Windows has no mode bits; ACLs are the administrator's business there.
#[cfg(not(unix))]
fn check_key_permissions(_path: &Path) -> Result<(), TlsError> {
    Ok(())
}

/// Fails when the certificate is outside its validity period now.
pub(crate) fn check_validity(cert: &X509Certificate<'_>, path: &Path) -> Result<(), TlsError> {
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    let fmt = |t: x509_parser::time::ASN1Time| t.to_rfc2822().unwrap_or_else(|_| t.to_string());
    let not_before = fmt(validity.not_before);
    let not_after = fmt(validity.not_after);
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_path_buf(),
            not_before,
            not_after,
        });
    }
    if now > validity.not_after {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// Fails when an extended key usage extension is present and lacks the usage needed.
fn check_usage(cert: &X509Certificate<'_>, path: &Path, usage: Usage) -> Result<(), TlsError> {
    let eku = cert
        .extended_key_usage()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if let Some(eku) = eku {
        let ok = eku.value.any
            || match usage {
                Usage::Server => eku.value.server_auth,
                Usage::Client => eku.value.client_auth,
            };
        if !ok {
            return Err(TlsError::MissingUsage {
                path: path.to_path_buf(),
                usage: usage.name(),
            });
        }
    }
    Ok(())
}

/// Fails unless each certificate in the file is issued (by name) by the next one.
fn check_chain_order(certs: &[CertificateDer<'_>], path: &Path) -> Result<(), TlsError> {
    for (i, pair) in certs.windows(2).enumerate() {
        let child = parse_x509(&pair[0], path)?;
        let parent = parse_x509(&pair[1], path)?;
        if child.issuer() != parent.subject() {
            return Err(TlsError::BrokenChain {
                path: path.to_path_buf(),
                detail: format!(
                    "certificate {} is issued by \"{}\" but certificate {} is \"{}\"",
                    i + 1,
                    child.issuer(),
                    i + 2,
                    parent.subject()
                ),
            });
        }
    }
    Ok(())
}

/// Loads a CA bundle: every certificate must be a CA within its validity period.
pub(crate) fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_required(path, "CA certificate")?;
    let certs = parse_certificates(&pem, path)?;
    for cert in &certs {
        let parsed = parse_x509(cert, path)?;
        let is_ca = parsed
            .basic_constraints()
            .map_err(|e| TlsError::BadCertificate {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(TlsError::NotCa {
                path: path.to_path_buf(),
            });
        }
        check_validity(&parsed, path)?;
    }
    Ok(certs)
}

/// A certificate chain with its private key, checked and ready for rustls.
#[derive(Clone)]
pub(crate) struct LoadedPair {
    /// What rustls presents.
    pub(crate) certified: Arc<CertifiedKey>,
    /// Subject, SANs and fingerprint of the leaf, for logs and tests.
    pub(crate) identity: PeerIdentity,
}

impl std::fmt::Debug for LoadedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is deliberately absent.
        f.debug_struct("LoadedPair")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Loads and checks a certificate chain and its key for `usage`.
pub(crate) fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    usage: Usage,
) -> Result<LoadedPair, TlsError> {
    let (cert_what, key_what) = match usage {
        Usage::Server => ("server certificate", "server private key"),
        Usage::Client => ("client certificate", "client private key"),
    };
    let pem = read_required(cert_path, cert_what)?;
    // Both files must be present before any deeper complaint, so a half-copied folder is
    // reported as such.
    if !key_path.exists() {
        return Err(TlsError::MissingFile {
            path: key_path.to_path_buf(),
            what: key_what,
        });
    }
    let certs = parse_certificates(&pem, cert_path)?;
    let leaf = parse_x509(&certs[0], cert_path)?;
    check_validity(&leaf, cert_path)?;
    check_usage(&leaf, cert_path, usage)?;
    for intermediate in &certs[1..] {
        check_validity(&parse_x509(intermediate, cert_path)?, cert_path)?;
    }
    check_chain_order(&certs, cert_path)?;
    let identity = PeerIdentity::from_der(&certs[0]).ok_or_else(|| TlsError::BadCertificate {
        path: cert_path.to_path_buf(),
        detail: "cannot read subject".to_owned(),
    })?;

    check_key_permissions(key_path)?;
    let mut raw = read_required(key_path, key_what)?;
    // Copied into the secret box and the read buffer wiped, so no unzeroized copy of the
    // key file outlives this function.
    let key_pem = SecretBox::new(Box::from(raw.as_slice()));
    raw.zeroize();
    let key = parse_private_key(&key_pem, key_path)?;
    drop(key_pem);

    let certified = CertifiedKey::new(certs, key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
            });
        }
    }
    Ok(LoadedPair {
        certified: Arc::new(certified),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_certificate_files_are_not_pem() {
        let check = |input: &[u8], expected: &str| {
            let err = parse_certificates(input, Path::new("x.crt")).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, TlsError::NotPem { .. }), "{msg}");
            assert!(msg.contains(expected), "{msg} lacks {expected}");
            assert!(msg.contains("x.crt"), "{msg}");
        };
        check(b"", "the file is empty");
        check(b"  \n", "the file is empty");
        check(b"hello world", "no certificate block found");
        check(
            b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
            "base64",
        );
        check(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            "missing section end",
        );
    }

    #[test]
    fn certificate_block_that_is_not_x509_is_rejected() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
        let err = parse_certificates(pem, Path::new("bad.crt")).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn key_errors_never_quote_the_key() {
        let secret =
            "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL$$\n-----END PRIVATE KEY-----\n";
        let pem = SecretBox::new(secret.as_bytes().to_vec().into_boxed_slice());
        let err = parse_private_key(&pem, Path::new("k.key")).err().unwrap();
        let msg = err.to_string();
        assert!(!msg.contains("TOPSECRET"), "{msg}");
        assert!(matches!(err, TlsError::NotPem { .. }), "{msg}");
    }

    #[test]
    fn unknown_key_type_is_unsupported() {
        // A well-formed PEM block whose DER is not a key any provider understands.
        let pem = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
        let pem = SecretBox::new(pem.as_bytes().to_vec().into_boxed_slice());
        let err = parse_private_key(&pem, Path::new("k.key")).err().unwrap();
        assert!(matches!(err, TlsError::UnsupportedKey { .. }), "{err}");
        assert!(err.to_string().contains("PKCS#8"), "{err}");
    }
}
