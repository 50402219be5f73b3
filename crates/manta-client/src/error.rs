//! The crate's single error type, and the mapping from gRPC statuses to it.
//!
//! Variant names follow the seed's `AuthenticationError` / `TokenExpiredError`. A
//! `tonic::Status` never leaves this crate, and no message ever contains a token: server
//! messages pass through [`crate::redact::redact_tokens`] before they are stored.

use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;

use crate::redact::redact_tokens;

/// Everything a [`crate::UserApi`] call or the `manta` command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manager refused the token (missing, malformed, revoked, unknown) or the
    /// credentials (sign-in).
    #[error("authentication failed: {message}; sign in again (`manta login`) or use another token")]
    Authentication {
        /// The manager's explanation (tokens redacted).
        message: String,
    },
    /// The token has expired and could not be refreshed.
    #[error(
        "token expired: {message}; refresh it (`manta token refresh`) or sign in again (`manta login`)"
    )]
    TokenExpired {
        /// The manager's or the refresh engine's explanation.
        message: String,
    },
    /// The stored session cannot be renewed any more (it was revoked, its refresh token
    /// was already used, or it reached its maximum lifetime).
    #[error("the session ended: {message}; run `manta login` again")]
    SessionEnded {
        /// Why, and what happened to the stored refresh token.
        message: String,
    },
    /// The `manta` command found no token for the profile: no variable is set and nothing
    /// usable is stored for it (nothing stored, or stored for another manager address).
    #[error(
        "not signed in for profile {profile} (looked at: {tried}); run `{login}` or export {variable}"
    )]
    NotSignedIn {
        /// The profile.
        profile: String,
        /// The places consulted, in order (never a token).
        tried: String,
        /// The command that signs in to this profile.
        login: String,
        /// The variable the profile reads first.
        variable: String,
    },
    /// The session was renewed but the new tokens could not be stored. The old refresh
    /// token works only once, so the stored session is lost.
    #[error(
        "the session was renewed but the new tokens could not be stored in {place}: {source}; the stored refresh token no longer works, so fix that and run `manta login` again"
    )]
    SessionNotStored {
        /// Where the tokens should have gone (keyring entry or file).
        place: String,
        /// Why storing failed.
        #[source]
        source: Box<Error>,
    },
    /// The token is valid but lacks the scope the operation needs.
    #[error("permission denied for {operation}{}: {message}; ask an administrator for the scope", scope.as_ref().map(|s| format!(" (needs `{s}`)")).unwrap_or_default())]
    PermissionDenied {
        /// The operation that was refused.
        operation: &'static str,
        /// The scope the manager said is missing, when it said so.
        scope: Option<String>,
        /// The manager's explanation.
        message: String,
    },
    /// The resource does not exist, or the caller may not see it.
    #[error("not found: {message}; check the id (list them with the matching `list` call)")]
    NotFound {
        /// The manager's explanation.
        message: String,
    },
    /// The request was refused as malformed (bad name, bad scope, bad id).
    #[error("invalid argument: {message}; fix the value and try again")]
    InvalidArgument {
        /// The manager's or the client's explanation.
        message: String,
    },
    /// The resource already exists.
    #[error("already exists: {message}; choose another name")]
    AlreadyExists {
        /// The manager's explanation.
        message: String,
    },
    /// The resource is not in a state that allows the operation (e.g. the token kind
    /// cannot be refreshed, the cluster is not running).
    #[error("refused: {message}; check the resource's state and try again")]
    FailedPrecondition {
        /// The manager's explanation.
        message: String,
    },
    /// The manager does not serve this call yet.
    #[error("the manager does not implement {method}; upgrade the manager or use another one")]
    Unimplemented {
        /// The gRPC method (`Service/Method`).
        method: &'static str,
    },
    /// The manager throttled the caller.
    #[error("rate limited: {message}; wait a little and try again")]
    RateLimited {
        /// The manager's explanation.
        message: String,
    },
    /// The manager could not be reached or is temporarily unavailable.
    #[error(
        "manager unavailable: {message}; check the host and port, that the manager runs, and the network"
    )]
    Unavailable {
        /// What failed (connection refused, TLS handshake, storage unavailable).
        message: String,
    },
    /// The call did not finish within its timeout.
    #[error("{operation} timed out after {after:?}; check the network or raise the timeout")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The manager failed internally or answered with an unexpected status.
    #[error("manager error ({code}): {message}; the manager's log has the details")]
    Server {
        /// The gRPC status name.
        code: String,
        /// The manager's explanation.
        message: String,
    },
    /// The manager's answer cannot be used (e.g. sign-in without a token).
    #[error(
        "unexpected answer from the manager: {message}; check that host and port point at a Manta manager"
    )]
    InvalidResponse {
        /// What was wrong.
        message: String,
    },
    /// TLS settings or certificate files are wrong.
    #[error("TLS: {0}")]
    Tls(#[source] manta_tls::TlsError),
    /// Configuration (profiles, token chain, credentials file) is wrong.
    #[error("configuration: {0}")]
    Config(#[source] manta_config::ConfigError),
    /// A client-side setting or argument is wrong.
    #[error("invalid setting: {message}")]
    Setting {
        /// Which setting and what to do.
        message: String,
    },
    /// A token could not be read (e.g. `manta token inspect` on something that is not a JWT).
    #[error("cannot read the token: {0}")]
    Token(#[source] manta_auth::Error),
    /// A local file could not be read or written.
    #[error("cannot access {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<manta_tls::TlsError> for Error {
    fn from(e: manta_tls::TlsError) -> Self {
        Error::Tls(e)
    }
}

impl From<manta_config::ConfigError> for Error {
    fn from(e: manta_config::ConfigError) -> Self {
        Error::Config(e)
    }
}

/// Extracts the scope from the manager's PERMISSION_DENIED texts ("needs scope `x`",
/// "does not grant `x`", "scope `x`").
fn scope_in(message: &str) -> Option<String> {
    let (start, close) = [("scope `", '`'), ("grant `", '`'), ("scope \"", '"')]
        .iter()
        .find_map(|(open, close)| message.find(open).map(|i| (i + open.len(), *close)))?;
    let rest = &message[start..];
    let end = rest.find(close)?;
    let scope = &rest[..end];
    (!scope.is_empty() && scope.len() <= 128).then(|| scope.to_owned())
}

/// Whether an UNAUTHENTICATED message says the token expired (our manager's text, or the
/// published platform's `TokenExpired`).
pub(crate) fn says_expired(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("expired")
}

/// Maps a gRPC status from `method` (used by `operation`, sent with deadline `timeout`)
/// to the client error.
pub(crate) fn from_status(
    operation: &'static str,
    method: &'static str,
    timeout: Duration,
    status: &tonic::Status,
) -> Error {
    let message = redact_tokens(status.message());
    match status.code() {
        Code::Unauthenticated if says_expired(&message) => Error::TokenExpired { message },
        Code::Unauthenticated => Error::Authentication { message },
        Code::PermissionDenied => Error::PermissionDenied {
            operation,
            scope: scope_in(&message),
            message,
        },
        Code::NotFound => Error::NotFound { message },
        Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument { message },
        Code::AlreadyExists => Error::AlreadyExists { message },
        Code::FailedPrecondition => Error::FailedPrecondition { message },
        Code::Unimplemented => Error::Unimplemented { method },
        Code::ResourceExhausted => Error::RateLimited { message },
        Code::Unavailable => Error::Unavailable {
            message: transport_detail(status, &message),
        },
        // A status built locally from a broken connection (e.g. plaintext against a TLS
        // port) carries the transport error as its source; a server's status never does.
        Code::Unknown | Code::Internal | Code::Cancelled
            if std::error::Error::source(status).is_some() =>
        {
            Error::Unavailable {
                message: transport_detail(status, &message),
            }
        }
        Code::DeadlineExceeded => Error::Timeout {
            operation,
            after: timeout,
        },
        other => Error::Server {
            code: format!("{other:?}"),
            message,
        },
    }
}

/// The most specific text of a transport failure: tonic wraps connector errors in
/// "transport error" with the cause in its source chain.
fn transport_detail(status: &tonic::Status, message: &str) -> String {
    let mut parts = vec![message.to_owned()];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        let text = redact_tokens(&e.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

impl Error {
    /// Whether retrying the same request later may succeed (transport failures and
    /// temporary unavailability).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Whether this is an authentication failure (bad, expired or refused credentials).
    #[must_use]
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Authentication { .. }
                | Error::TokenExpired { .. }
                | Error::SessionEnded { .. }
                | Error::NotSignedIn { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(code: Code, msg: &str) -> Error {
        from_status(
            "get_user",
            "UserManagement/GetUser",
            Duration::from_secs(45),
            &tonic::Status::new(code, msg),
        )
    }

    #[test]
    fn statuses_map_to_the_seed_names_with_actionable_text() {
        let e = map(
            Code::Unauthenticated,
            "expired token: refresh it or sign in again",
        );
        assert!(matches!(e, Error::TokenExpired { .. }), "{e:?}");
        assert!(e.to_string().contains("manta token refresh"), "{e}");
        let e = map(Code::Unauthenticated, "revoked token: sign in again");
        assert!(
            matches!(e, Error::Authentication { .. }) && e.is_auth(),
            "{e:?}"
        );
        let e = map(
            Code::PermissionDenied,
            "permission denied: /x needs scope `cluster:create`, which your token lacks",
        );
        match &e {
            Error::PermissionDenied { scope, .. } => {
                assert_eq!(scope.as_deref(), Some("cluster:create"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("needs `cluster:create`"), "{e}");
        let e = map(
            Code::PermissionDenied,
            "scope \"swarm:deploy\" is not covered by your own scopes",
        );
        assert!(matches!(e, Error::PermissionDenied { scope: Some(s), .. } if s == "swarm:deploy"));
        let e = map(Code::Unimplemented, "not served");
        assert_eq!(
            e.to_string(),
            "the manager does not implement UserManagement/GetUser; upgrade the manager or use another one"
        );
        assert!(matches!(map(Code::NotFound, "x"), Error::NotFound { .. }));
        assert!(matches!(
            map(Code::InvalidArgument, "x"),
            Error::InvalidArgument { .. }
        ));
        assert!(map(Code::Unavailable, "down").is_transient());
        assert!(!map(Code::Internal, "boom").is_transient());
        assert!(matches!(map(Code::Internal, "boom"), Error::Server { .. }));
        let e = map(Code::DeadlineExceeded, "deadline");
        assert_eq!(
            e.to_string(),
            "get_user timed out after 45s; check the network or raise the timeout"
        );
    }

    #[test]
    fn session_errors_say_to_sign_in_again() {
        let ended = Error::SessionEnded {
            message: "the session was revoked".into(),
        };
        assert!(ended.is_auth());
        assert!(
            ended.to_string().ends_with("run `manta login` again"),
            "{ended}"
        );
        let lost = Error::SessionNotStored {
            place: "/h/credentials.ini".into(),
            source: Box::new(Error::Setting {
                message: "disk full".into(),
            }),
        };
        let text = lost.to_string();
        assert!(
            text.contains("/h/credentials.ini")
                && text.contains("disk full")
                && text.contains("run `manta login` again"),
            "{text}"
        );
    }

    #[test]
    fn a_token_echoed_by_a_server_never_reaches_the_message() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU";
        let e = map(Code::Unauthenticated, &format!("bad token {jwt} here"));
        let text = format!("{e} {e:?}");
        assert!(!text.contains(jwt) && text.contains("[REDACTED]"), "{text}");
    }

    #[test]
    fn every_message_is_lower_case_without_final_period() {
        let samples = [
            map(Code::Unauthenticated, "x"),
            map(Code::PermissionDenied, "x"),
            map(Code::AlreadyExists, "x"),
            map(Code::FailedPrecondition, "x"),
            map(Code::ResourceExhausted, "x"),
            map(Code::DeadlineExceeded, "x"),
            Error::Setting {
                message: "x".into(),
            },
            Error::SessionEnded {
                message: "x".into(),
            },
        ];
        for e in samples {
            let s = e.to_string();
            assert!(s.chars().next().is_some_and(|c| !c.is_uppercase()), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }
}
