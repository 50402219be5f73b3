//! The Manta User API for Rust (`UserApi`), and the library behind the `manta` command.
//!
//! It sits on top of the auth, config and TLS crates and talks to a manager over gRPC. It must
//! not leak `tonic::Status` or any token through its public API.
//!
//! - [`UserApi`] (async) and [`blocking::UserApi`]: the seed's `UserAPI(token, host, port)`,
//!   with [`UserApiBuilder`] for mTLS (`cert_folder`), timeouts, refresh and retry policy.
//! - [`Error`]: one error enum (`Authentication`, `TokenExpired`, `PermissionDenied`, ...).
//! - [`audit`]: the opt-in audit trail (`audit::init_file("manta_api_audit.log")`).
//! - [`cli`]: the `manta` command, runnable in-process.
//!
//! See [`docs/client.md`](https://github.com/mantatech/manta-rs/blob/main/docs/client.md) and [`docs/cli.md`](https://github.com/mantatech/manta-rs/blob/main/docs/cli.md).
//!
//! # Features
//!
//! - `cli` (default): the `manta` binary and the [`cli`] module (clap, completions, the log
//!   filter, the password prompt); implies `keyring`. Turn default features off for the
//!   library alone.
//! - `keyring` (default, through `cli`): the OS keyring as the last step of the token chain
//!   in [`UserApi::from_env`] and [`UserApi::from_profile`].

mod api;
pub mod audit;
pub mod blocking;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod redact;
mod refresh;
mod tokens;
mod types;

pub use api::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Resolved, RetryPolicy, UserApi, UserApiBuilder,
};
pub use error::{Error, Result};
pub use manta_auth::RefreshConfig;
pub use redact::redact_tokens;
pub use types::{
    ApiTokenInfo, Cluster, CreatedApiToken, ModuleSpec, Quotas, ResultRecord, Swarm, SwarmSpec,
    TaskSpec, User,
};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
