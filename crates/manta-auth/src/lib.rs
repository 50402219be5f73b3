//! JWT verification and issuing, permission scopes, token lifecycle and refresh.
//!
//! This crate is the one place where Manta tokens are understood: claims, token kinds,
//! signature and claim validation, scopes, and the refresh engine. It must not open sockets,
//! read configuration files or parse PEM; transports plug in through traits.
//!
//! - [`Verifier`] checks a token for an expected [`TokenKind`] against a [`KeySet`];
//!   [`CachingVerifier`] adds a bounded, revocation-aware cache in front of it.
//! - [`Issuer`] signs tokens with a [`SigningKey`] and rotates keys.
//! - [`Scope`] and [`ScopeSet`] implement the grammar of [`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md) and the mapping to
//!   the published `UserPermission` enum.
//! - [`inspect`] reads a token without verifying it (to schedule refreshes).
//! - [`TokenSource`] holds the current token and refreshes it through a [`Refresher`].
//! - [`Backoff`] is the jittered exponential backoff every retry loop of the workspace uses.
//!
//! # Features
//!
//! - `proto` (default): the mapping between scopes and the published `UserPermission` enum
//!   (`ScopeSet::to_user_permissions`, `ScopeSet::from_user_permissions`,
//!   `scope_for_permission`, `permissions_for_scope`, `all_user_permissions`), through
//!   `manta-proto`. Without it (`default-features = false`) the crate builds without
//!   `manta-proto`, tonic or tokio.

mod backoff;
mod cache;
mod claims;
mod clock;
mod error;
mod inspect;
mod issue;
mod jws;
mod keys;
mod refresh;
mod scope;
mod scope_input;
mod verify;

pub use backoff::Backoff;
pub use cache::CachingVerifier;
pub use claims::{Audience, Claims, MAX_TIME_CLAIM, TokenKind};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system as system_clock};
pub use error::{Error, KindName, RefreshError};
pub use inspect::{Inspected, inspect};
pub use issue::{IssuedToken, Issuer, Lifetimes, TokenRequest};
pub use jws::{Algorithm, DEFAULT_MAX_TOKEN_LEN, Header};
pub use keys::{KeySet, SigningKey, VerifiedJws, VerifyingKey};
pub use refresh::{RefreshConfig, RefreshFuture, Refresher, TokenSource};
#[cfg(feature = "proto")]
pub use scope::permission::{all_user_permissions, permissions_for_scope, scope_for_permission};
pub use scope::{Explanation, MAX_SCOPE_LEN, MAX_SCOPES, Scope, ScopeSet};
pub use scope_input::{HalfScope, check_typed_scopes};
pub use verify::{DenyList, MAX_LEEWAY, RevocationCheck, VerifiedToken, Verifier, VerifierConfig};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
