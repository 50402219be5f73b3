//! A reference Manta manager that serves the published gRPC protocol.
//!
//! It sits on top of the auth, config and TLS crates and owns storage, authorization and
//! audit. Its binary stays thin: everything testable lives in this library.

pub mod audit;
pub mod authz;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod password;
pub mod platform;
pub mod ratelimit;
pub mod registry;
pub mod scopes;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
