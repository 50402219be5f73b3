//! The crate's single error type: every way a token, key or scope can be refused.
//!
//! Messages never contain the token, a key or a claim value that came from an untrusted
//! token (except the expected issuer/audience names, which are configuration).

use std::time::{Duration, SystemTime};

use crate::claims::TokenKind;

/// Everything that can go wrong while parsing, verifying or issuing tokens, handling keys,
/// parsing scopes or refreshing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not a well-formed compact JWS/JWT; `reason` says which rule failed.
    #[error("malformed token: {reason}; obtain a fresh token (sign in again or ask the issuer)")]
    Malformed {
        /// What is wrong, without echoing any part of the token.
        reason: &'static str,
    },
    /// The token is longer than the configured cap.
    #[error(
        "token is {len} bytes, above the {max}-byte limit; tokens this large are refused, \
         ask the issuer for a smaller token"
    )]
    TooLarge {
        /// Length of the rejected token in bytes.
        len: usize,
        /// The configured limit in bytes.
        max: usize,
    },
    /// The header names an algorithm this verifier does not accept (including `none`).
    #[error(
        "token algorithm {alg} is not accepted; the issuer must sign with one of the keys' \
         algorithms (EdDSA, ES256, RS256 or HS256)"
    )]
    AlgorithmNotAllowed {
        /// The algorithm named in the header (a fixed name, or `unknown`).
        alg: &'static str,
    },
    /// The header carries something this verifier refuses to act on (`crit`, `jwk`, `jku`,
    /// `x5u`, `x5c`).
    #[error("token header parameter `{param}` is not accepted; ask the issuer to remove it")]
    ForbiddenHeader {
        /// The header parameter name.
        param: &'static str,
    },
    /// No key with the token's `kid` is known.
    #[error(
        "no verification key for this token's key id; refresh the key set (JWKS) or sign in again"
    )]
    UnknownKey,
    /// The signature does not verify with the selected key.
    #[error("token signature is invalid; the token was altered or signed by another issuer")]
    BadSignature,
    /// The token expired at `expired_at` (beyond the allowed leeway).
    #[error("token expired at {} (unix time); refresh the token or sign in again", unix(*.expired_at))]
    Expired {
        /// When the token expired.
        expired_at: SystemTime,
    },
    /// The token's `nbf` lies in the future (beyond the allowed leeway).
    #[error("token is not valid before {} (unix time); check the clocks of issuer and verifier", unix(*.not_before))]
    NotYetValid {
        /// The token's `nbf`.
        not_before: SystemTime,
    },
    /// The `iss` claim is missing or not the expected issuer.
    #[error("token issuer is not `{expected}`; use a token issued by this manager")]
    WrongIssuer {
        /// The issuer this verifier expects.
        expected: String,
    },
    /// The `aud` claim is missing or does not contain the expected audience.
    #[error("token audience does not include `{expected}`; use a token issued for this service")]
    WrongAudience {
        /// The audience this verifier expects.
        expected: String,
    },
    /// A required claim is absent or has the wrong JSON type.
    #[error(
        "token claim `{claim}` is {problem}; ask the issuer for a token with a valid `{claim}`"
    )]
    BadClaim {
        /// The claim name.
        claim: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The token is of another kind than the one expected here (RFC 8725 §3.11).
    #[error(
        "expected a {expected} token but got a {found} token; use the right kind of token here"
    )]
    WrongKind {
        /// The kind the caller asked for.
        expected: TokenKind,
        /// The kind the token declares (`None` when it declares an unknown one).
        found: KindName,
    },
    /// The token was revoked (its `jti`, or all tokens of its subject before a time).
    #[error("token has been revoked; sign in again to get a new token")]
    Revoked,
    /// The token is valid but does not grant the scope needed.
    #[error(
        "permission denied: the token does not grant `{required}`; ask an administrator for it"
    )]
    InsufficientScope {
        /// The scope that was required.
        required: String,
    },
    /// A scope string does not follow the grammar in [`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md).
    #[error("invalid scope: {reason}; scopes look like `resource:action`, `resource:*` or `word`")]
    InvalidScope {
        /// What is wrong with the scope (the scope itself is quoted only when short and
        /// printable, since scopes are not secrets).
        reason: String,
    },
    /// A key could not be used (wrong length, wrong format, wrong use, unsupported curve).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with the key and what to supply instead.
        reason: String,
    },
    /// A verifier, issuer or refresh setting is out of its allowed range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// Which setting is wrong and what range is allowed.
        reason: String,
    },
    /// Signing failed inside the crypto library.
    #[error("signing failed: {reason}; check that the signing key is valid")]
    Signing {
        /// The library's description (never key material).
        reason: String,
    },
    /// The refresh engine could not obtain a usable token.
    #[error("token refresh failed: {0}")]
    Refresh(#[from] RefreshError),
}

/// The declared kind of a token, as found in it, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindName {
    /// A known kind.
    Known(TokenKind),
    /// No `kind` claim, or one this crate does not know.
    Unknown,
}

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(kind) => kind.fmt(f),
            Self::Unknown => f.write_str("unknown-kind"),
        }
    }
}

/// Why a refresh did not produce a token. Returned by [`crate::Refresher`] implementations
/// and by [`crate::TokenSource`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The server refused the current credential (gRPC UNAUTHENTICATED or equivalent);
    /// retrying with the same token will not help.
    #[error(
        "the server rejected the current token; get a new one (sign in again, e.g. `manta login`)"
    )]
    Rejected,
    /// The transport failed or the server was unavailable; retrying later may help.
    #[error("could not reach the token service: {0}; check the manager address and network")]
    Unavailable(String),
    /// The server answered with something that is not a usable token.
    #[error("the token service returned an unusable token: {0}; report this to the operator")]
    InvalidResponse(String),
    /// The current token expired and no new one could be obtained.
    #[error("the token expired and could not be refreshed; sign in again")]
    Expired,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
