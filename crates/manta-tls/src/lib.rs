//! Certificate folders, rustls client and server configurations, and mTLS for tonic.
//!
//! This crate is the only one that parses PEM or builds rustls configurations. It must not
//! read configuration files or know about tokens.
//!
//! - Clients: [`ClientTls::from_folder`] (`ca.crt`, `client.crt`, `client.key`), then
//!   [`connect`] / [`connect_lazy`] / [`endpoint`] for a tonic `Channel`.
//! - Servers: [`ServerTls::from_folder`] (`server.crt`, `server.key`, `ca.crt`), then
//!   [`TlsIncoming`] for `Server::serve_with_incoming`; handlers read [`PeerInfo`].
//! - Hot reload: [`ServerTls::watch`] / [`ClientTls::watch`].
//! - Development certificates: [`DevPki::create`].
//!
//! See [`docs/tls.md`](https://github.com/mantatech/manta-rs/blob/main/docs/tls.md) for the folder layouts and rules.
//!
//! # Features
//!
//! None.

mod accept;
mod client;
mod conn;
mod connect;
mod devpki;
mod error;
mod identity;
mod pem;
mod reload;
mod server;
mod shared;

pub use accept::{ServerStream, TlsIncoming};
pub use client::{CLIENT_CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, ClientTls};
pub use conn::{
    AcceptOptions, ConnectionLimiter, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, StreamGuard,
    StreamTracker,
};
pub use connect::{ClientStream, TlsConnector, connect, connect_lazy, endpoint};
pub use devpki::{DevPki, DevPkiOptions};
pub use error::TlsError;
pub use identity::{PeerIdentity, PeerInfo};
pub use pem::{parse_certificates, parse_private_key};
pub use reload::ReloadWatcher;
pub use server::{ClientAuth, SERVER_CA_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, ServerTls};

/// Re-exported so callers name the same rustls types (configs, `pki_types`) this crate builds.
pub use rustls;

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
