//! A reference Manta manager that serves the published gRPC protocol.
//!
//! It sits on top of the auth, config and TLS crates and owns storage, authorization and
//! audit. Its binary stays thin: everything testable lives in this library.
//!
//! # Features
//!
//! - `cli` (default): the `manta-manager` binary and the [`cli`] module (clap, completions,
//!   logging setup).
//! - `testing` (off by default): the [`testing`] module, [`testing::TestManager`], the
//!   manager in-process on 127.0.0.1:0 over a temporary store, for tests and benches.
//!
//! Guide: [`docs/manager.md`](https://github.com/mantatech/manta-rs/blob/main/docs/manager.md).

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
pub mod mqtt;
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

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
