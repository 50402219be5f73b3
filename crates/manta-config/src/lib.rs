//! TOML configuration with `${VAR}` environment substitution for nodes and clients.
//!
//! This crate is the only one that reads configuration files and environment variables for
//! configuration. It never opens sockets, never parses PEM and never puts a secret in an
//! error message. See [`docs/configuration.md`](https://github.com/mantatech/manta-rs/blob/main/docs/configuration.md) for the file formats and the substitution
//! grammar.
//!
//! - [`load_file`] / [`load_str`]: the generic loader for any `serde` type (substitution,
//!   located errors, "did you mean" for unknown keys, permission check for secret files).
//! - [`Env`]: the environment, injectable so tests never touch the process environment.
//! - [`NodeConfig`]: the node agent's file, with [`NodeConfig::validate`] giving the
//!   published texts and hints as [`Problem`]s.
//! - [`ConfigDocument`], [`NodeTemplate`], [`import_node_config`]: writing files back with
//!   `${VAR}` references and comments kept, atomically and with mode 0600.
//! - [`MantaHome`], [`NodeConfigRef`]: where files live (`MANTA_HOME`, `~/.manta`).
//! - [`ClientConfig`], [`TokenLookup`]: client profiles and the token lookup chain.
//! - [`save_credential`], [`CredentialSlot`]: the credential `manta login` stores for each
//!   profile, bound to the manager address it came from.
//!
//! # Features
//!
//! - `keyring` (off by default): [`OsKeyring`], the OS keyring (Linux kernel keyutils, no
//!   system library) as the last step of the client token chain.

mod client;
mod credentials;
mod edit;
mod env;
mod error;
mod fsutil;
mod load;
mod locations;
mod node;
mod subst;

#[cfg(feature = "keyring")]
pub use client::OsKeyring;
pub use client::{
    ClientConfig, KEYRING_ENTRY, KEYRING_REFRESH_ENTRY, KEYRING_SERVICE, MANTA_ENV, MANTA_TOKEN,
    MemoryStore, Profile, ResolvedToken, SecretStore, SelectedProfile, TokenLookup, TokenSource,
    read_credentials_refresh_token, read_credentials_token, remove_credentials_refresh_token,
    remove_credentials_token, save_credentials_refresh_token, save_credentials_session,
    save_credentials_token,
};
pub use credentials::{
    CredentialSlot, CredentialStore, DEFAULT_PROFILE, KEYRING_ADDRESS_ENTRY, StoredCredential,
    manager_address, place_name, probe_keyring, read_file_credential, read_keyring_credential,
    remove_file_credential, remove_keyring_credential, save_credential,
};
pub use edit::{ConfigDocument, NodeTemplate, SecretWrite, TemplateToken, import_node_config};
pub use env::Env;
pub use error::{ConfigError, Location, Problem, Severity, SubstitutionErrorKind};
pub use fsutil::{Durability, write_private_file};
pub use load::{LoadOptions, Loaded, load_file, load_str};
pub use locations::{MantaHome, NodeConfigRef};
pub use node::{
    ALIAS_WARN_LEN, IdentityConfig, LoggingConfig, MSG_TOKEN_INVALID, MSG_TOKEN_REQUIRED,
    MetadataConfig, NetworkConfig, NodeConfig, SECURED_TOKEN_KEY, SecurityConfig, ValidationReport,
    jwt_expiry, node_load_options,
};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
