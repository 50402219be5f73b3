//! `manta-manager pki init DIR`: manta-tls's development PKI as a command, so that nobody
//! hand-writes openssl commands to try TLS and mTLS.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use manta_tls::{DevPki, DevPkiOptions, TlsError};

use super::io_err;
use crate::error::{Error, Result};

/// `pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Writes a development CA, a server pair and a client pair into DIR, under the seed's
    /// names (ca.crt, server.crt, server.key, client.crt, client.key) and the names the
    /// published SDK reads through MANTA_CERT_DIR (manta-ca-ENV.crt, manta-sdk-ENV.crt,
    /// manta-sdk-ENV.key). For development only.
    Init {
        /// The folder to write (created if missing).
        dir: PathBuf,
        /// Replaces existing files; without it nothing is written when one exists.
        #[arg(long)]
        force: bool,
        /// The SDK environment (`MANTA_ENV`) in the SDK file names and the CA's name.
        #[arg(long, default_value = "dev")]
        env: String,
        /// Another DNS name or IP address for the server certificate, besides localhost,
        /// 127.0.0.1 and ::1 (repeatable).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// The client certificate's common name (what the audit trail shows).
        #[arg(long, default_value = "manta-dev-client")]
        client_name: String,
    },
}

/// Runs a `pki` command; it touches no store.
pub(super) fn pki_command(cmd: PkiCommand, out: &mut dyn Write) -> Result<()> {
    let PkiCommand::Init {
        dir,
        force,
        env,
        server_names,
        client_name,
    } = cmd;
    let mut options = DevPkiOptions::default().env(&env).client_name(&client_name);
    for name in &server_names {
        options = options.extra_name(name);
    }
    let written = if force {
        create_replacing(&dir, &options)?
    } else {
        DevPki::create(&dir, &options).map_err(|e| match e {
            TlsError::AlreadyExists { path } => Error::PkiExists { path },
            other => Error::Tls(other),
        })?;
        files_of(&env)
    };
    for (name, secret) in written {
        let what = if secret {
            "private key, mode 0600"
        } else {
            "certificate"
        };
        writeln!(out, "wrote {} ({what})", dir.join(name).display()).map_err(io_err)?;
    }
    writeln!(
        out,
        "manager: [tls] cert_folder = {dir:?}; clients: cert_folder {dir:?}; \
         published SDK: MANTA_CERT_DIR={d} MANTA_ENV={env}",
        dir = dir.display().to_string(),
        d = dir.display(),
    )
    .map_err(io_err)
}

/// Issues a fresh PKI into a private folder inside `dir`, then renames every file over the
/// old one: each rename is atomic, so a reader (or the manager's reload watcher) sees either
/// the old file or the new one, never a half-written one, and a key keeps its 0600 mode.
fn create_replacing(dir: &Path, options: &DevPkiOptions) -> Result<Vec<(String, bool)>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let staging = dir.join(format!(".pki-init-{}", std::process::id()));
    let result = (|| {
        DevPki::create(&staging, options).map_err(Error::Tls)?;
        let files = files_of(&options.env);
        for (name, _) in &files {
            std::fs::rename(staging.join(name), dir.join(name)).map_err(|source| Error::Io {
                path: dir.join(name),
                source,
            })?;
        }
        Ok(files)
    })();
    // Whatever happened, the staging folder (and any key still in it) goes away.
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// The files [`DevPki::create`] writes, each with whether it is a private key.
fn files_of(env: &str) -> Vec<(String, bool)> {
    [
        ("ca.crt".to_owned(), false),
        ("ca.key".to_owned(), true),
        ("server.crt".to_owned(), false),
        ("server.key".to_owned(), true),
        ("client.crt".to_owned(), false),
        ("client.key".to_owned(), true),
        (format!("manta-ca-{env}.crt"), false),
        (format!("manta-sdk-{env}.crt"), false),
        (format!("manta-sdk-{env}.key"), true),
    ]
    .into()
}
