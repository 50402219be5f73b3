//! Development PKI: a private CA, a server certificate for local names and a client
//! certificate, written in our folder layout and under the file names the published Python
//! SDK looks for in `MANTA_CERT_DIR`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use secrecy::{ExposeSecret, SecretString};

use crate::error::TlsError;

/// What [`DevPki::create`] issues.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DevPkiOptions {
    /// The SDK environment name (`MANTA_ENV`, default `dev`), used in the SDK file names and
    /// in the CA's common name (the SDK warns when the CA's CN lacks it).
    pub env: String,
    /// Names added to the server certificate besides `localhost`, `127.0.0.1` and `::1`;
    /// an entry that parses as an IP address becomes an IP SAN.
    pub extra_names: Vec<String>,
    /// The common name of the client certificate (what the manager's audit log shows).
    pub client_name: String,
    /// How many days the certificates are valid.
    pub validity_days: u32,
}

impl Default for DevPkiOptions {
    fn default() -> Self {
        Self {
            env: "dev".to_owned(),
            extra_names: Vec::new(),
            client_name: "manta-dev-client".to_owned(),
            validity_days: 365,
        }
    }
}

impl DevPkiOptions {
    /// Sets [`DevPkiOptions::env`].
    pub fn env(mut self, env: &str) -> Self {
        env.clone_into(&mut self.env);
        self
    }

    /// Adds a server name (DNS name or IP address).
    pub fn extra_name(mut self, name: &str) -> Self {
        self.extra_names.push(name.to_owned());
        self
    }

    /// Sets the client certificate's common name.
    pub fn client_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.client_name);
        self
    }

    /// Sets the validity in days.
    pub fn validity_days(mut self, days: u32) -> Self {
        self.validity_days = days;
        self
    }
}

/// A development PKI written to one folder.
///
/// The folder is at once a client folder (`ca.crt`, `client.crt`, `client.key`), a server
/// folder (`ca.crt`, `server.crt`, `server.key`) and an SDK `MANTA_CERT_DIR`
/// (`manta-ca-<env>.crt`, `manta-sdk-<env>.crt`, `manta-sdk-<env>.key`). It also holds
/// `ca.key`; keys are written with mode 0600. For development only.
#[derive(Clone, Debug)]
pub struct DevPki {
    dir: PathBuf,
    env: String,
}

impl DevPki {
    /// Creates the CA and certificates in `dir` (created if missing). Existing files are
    /// never overwritten: the call fails before writing anything if one exists.
    pub fn create(dir: impl AsRef<Path>, options: &DevPkiOptions) -> Result<Self, TlsError> {
        let dir = dir.as_ref().to_path_buf();
        let env = options.env.clone();
        // rcgen takes any IA5 string as a DNS name; a name no client could ever verify is
        // refused here instead of producing a certificate that fails at every handshake.
        for name in &options.extra_names {
            if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(TlsError::InvalidServerName { name: name.clone() });
            }
        }
        let names = file_names(&env);
        for name in &names {
            let path = dir.join(name);
            if path.exists() {
                return Err(TlsError::AlreadyExists { path });
            }
        }
        std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
            path: dir.clone(),
            source,
        })?;

        let gen_err = |what: &str| {
            let what = what.to_owned();
            move |source| TlsError::Generate { what, source }
        };
        let now = x509_parser::time::ASN1Time::now().to_datetime();
        // Backdated an hour so a client whose clock runs slightly behind accepts it.
        let not_before = now - std::time::Duration::from_secs(3600);
        let not_after =
            now + std::time::Duration::from_secs(86_400 * u64::from(options.validity_days));

        let ca_key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("Manta development CA ({env})"));
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "Manta");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(gen_err("the CA certificate"))?;
        let issuer = Issuer::new(ca_params, &ca_key);

        let mut server_names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        server_names.extend(options.extra_names.iter().cloned());
        let server_key = KeyPair::generate().map_err(gen_err("the server key"))?;
        let mut server_params = CertificateParams::new(server_names)
            .map_err(gen_err("the server certificate names"))?;
        server_params.distinguished_name = rcgen::DistinguishedName::new();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "manta-manager");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.not_before = not_before;
        server_params.not_after = not_after;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(gen_err("the server certificate"))?;

        let client_key = KeyPair::generate().map_err(gen_err("the client key"))?;
        let mut client_params = CertificateParams::default();
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::CommonName, options.client_name.clone());
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.not_before = not_before;
        client_params.not_after = not_after;
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .map_err(gen_err("the client certificate"))?;

        let ca_pem = ca_cert.pem();
        let ca_key_pem = SecretString::from(ca_key.serialize_pem());
        let server_key_pem = SecretString::from(server_key.serialize_pem());
        let client_key_pem = SecretString::from(client_key.serialize_pem());
        let [
            ca_crt,
            ca_key_f,
            server_crt,
            server_key_f,
            client_crt,
            client_key_f,
            sdk_ca,
            sdk_crt,
            sdk_key,
        ] = names;

        write_public(&dir.join(ca_crt), &ca_pem)?;
        write_public(&dir.join(server_crt), &server_cert.pem())?;
        write_public(&dir.join(client_crt), &client_cert.pem())?;
        write_public(&dir.join(sdk_ca), &ca_pem)?;
        write_public(&dir.join(sdk_crt), &client_cert.pem())?;
        write_secret(&dir.join(ca_key_f), &ca_key_pem)?;
        write_secret(&dir.join(server_key_f), &server_key_pem)?;
        write_secret(&dir.join(client_key_f), &client_key_pem)?;
        write_secret(&dir.join(sdk_key), &client_key_pem)?;
        Ok(Self { dir, env })
    }

    /// The folder holding everything.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (`ca.crt`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server certificate (`server.crt`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server key (`server.key`).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client certificate (`client.crt`).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client key (`client.key`).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The SDK environment the SDK file names use.
    pub fn env(&self) -> &str {
        &self.env
    }
}

fn file_names(env: &str) -> [String; 9] {
    [
        "ca.crt".to_owned(),
        "ca.key".to_owned(),
        "server.crt".to_owned(),
        "server.key".to_owned(),
        "client.crt".to_owned(),
        "client.key".to_owned(),
        format!("manta-ca-{env}.crt"),
        format!("manta-sdk-{env}.crt"),
        format!("manta-sdk-{env}.key"),
    ]
}

fn write_public(path: &Path, pem: &str) -> Result<(), TlsError> {
    write_atomic(path, pem.as_bytes(), 0o644)
}

fn write_secret(path: &Path, pem: &SecretString) -> Result<(), TlsError> {
    write_atomic(path, pem.expose_secret().as_bytes(), 0o600)
}

/// Writes through a temporary file in the same folder, fsyncs it, then renames it into
/// place, so a reader (or a hot-reload watcher) never sees a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file with its mode already set (so a secret is never readable by
    // others, even briefly) and removes it if anything fails before `persist`.
    let mut builder = tempfile::Builder::new();
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = builder.tempfile_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    result.map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientAuth, ClientTls, ServerTls};

    #[test]
    fn creates_loadable_folders_and_sdk_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(
            dir.path(),
            &DevPkiOptions::default()
                .env("stage")
                .extra_name("manager.internal"),
        )
        .unwrap();
        for name in file_names("stage") {
            assert!(dir.path().join(&name).is_file(), "{name} missing");
        }
        #[cfg(unix)]
        for name in ["ca.key", "server.key", "client.key", "manta-sdk-stage.key"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let server = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap();
        let sans = server.identity().sans().to_vec();
        for san in [
            "DNS:localhost",
            "IP:127.0.0.1",
            "IP:::1",
            "DNS:manager.internal",
        ] {
            assert!(sans.iter().any(|s| s == san), "{san} not in {sans:?}");
        }
        let client = ClientTls::from_folder(pki.dir()).unwrap();
        assert!(
            client
                .identity()
                .unwrap()
                .subject()
                .contains("manta-dev-client")
        );
        // The SDK's files are the same certificate and CA.
        assert_eq!(
            std::fs::read(dir.path().join("manta-sdk-stage.crt")).unwrap(),
            std::fs::read(pki.client_cert()).unwrap()
        );
        let ca = std::fs::read_to_string(dir.path().join("manta-ca-stage.crt")).unwrap();
        let ca = crate::pem::parse_certificates(ca.as_bytes(), Path::new("ca")).unwrap();
        let subject = crate::PeerIdentity::from_der(&ca[0]).unwrap();
        assert!(subject.subject().contains("stage"), "{}", subject.subject());
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        DevPki::create(dir.path(), &DevPkiOptions::default()).unwrap();
        let before = std::fs::read(dir.path().join("ca.key")).unwrap();
        let err = DevPki::create(dir.path(), &DevPkiOptions::default()).unwrap_err();
        assert!(matches!(err, TlsError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert_eq!(before, std::fs::read(dir.path().join("ca.key")).unwrap());
    }

    #[test]
    fn invalid_extra_name_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = DevPki::create(
            dir.path(),
            &DevPkiOptions::default().extra_name("bad name!"),
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::InvalidServerName { .. }), "{err}");
        assert!(err.to_string().contains("\"bad name!\""), "{err}");
        assert!(!dir.path().join("ca.crt").exists());
    }
}
