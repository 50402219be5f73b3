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
    #[error("permission denied for {operation}: {}; ask an administrator for {}", scope.as_ref().map_or_else(|| message.clone(), |s| format!("it needs the scope `{s}`")), scope.as_ref().map_or("the scope", |_| "it"))]
    PermissionDenied {
        /// The operation that was refused.
        operation: &'static str,
        /// The scope the manager said is missing, when it said so.
        scope: Option<String>,
        /// The manager's explanation.
        message: String,
    },
    /// The resource does not exist, or the caller may not see it.
    #[error("not found: {message}; check the id with the matching `manta ... list` command")]
    NotFound {
        /// The manager's explanation.
        message: String,
    },
    /// No cluster the caller can see has the id or name given to `--cluster` (or to a
    /// cluster command).
    #[error("no cluster has the id or name `{given}`; list clusters with `manta cluster list`")]
    UnknownCluster {
        /// What was given.
        given: String,
    },
    /// Several clusters the caller can see have the name given where one cluster is meant.
    #[error(
        "{} clusters are named `{name}` ({}); give the id of the one you mean instead",
        ids.len(),
        ids.join(", ")
    )]
    AmbiguousCluster {
        /// The name given.
        name: String,
        /// The ids of the clusters with that name.
        ids: Vec<String>,
    },
    /// The request was refused as malformed (bad name, bad scope, bad id).
    #[error("invalid argument: {message}; fix the value and try again")]
    InvalidArgument {
        /// The manager's or the client's explanation.
        message: String,
    },
    /// A command was used in a way that cannot work; the message names what to do instead.
    #[error("{message}")]
    Usage {
        /// What was wrong, and what to do instead.
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
    /// The port answers with the node API, not the user API.
    #[error(
        "{address} is the node API of a Manta manager, not the user API; use the user API port instead (usually 50052)"
    )]
    WrongService {
        /// `host:port` that was called.
        address: String,
    },
    /// The token is well formed but was signed by another manager (its key is unknown here).
    #[error(
        "the token was not issued by the manager at {address}{}; sign in to this manager (`manta login{}`) or use one of its tokens", profile.as_ref().map(|p| format!(" (profile `{p}`)")).unwrap_or_default(), profile.as_ref().map(|p| format!(" --profile {p}")).unwrap_or_default()
    )]
    ForeignToken {
        /// `host:port` of the manager that refused it.
        address: String,
        /// The profile in use, when the caller named one.
        profile: Option<String>,
    },
    /// One side speaks TLS and the other plaintext.
    #[error("TLS and plaintext do not match: {}", if *client_tls {
        format!("{address} answers in plaintext but this client uses TLS; remove `--cert-folder` (or `cert_folder` in the profile)")
    } else {
        format!("{address} expects TLS but this client sends plaintext; add `--cert-folder DIR` (a folder with the manager's ca.crt)")
    })]
    TlsMismatch {
        /// `host:port` that was called.
        address: String,
        /// Whether this client used TLS.
        client_tls: bool,
    },
    /// The TLS handshake failed on the manager's certificate (unknown CA, wrong name,
    /// expired).
    #[error("TLS handshake with {address} failed: {reason}; {}", if reason.contains("NotValidForName") {
        "connect with a host name that the manager's certificate names"
    } else {
        "check that ca.crt in the cert folder is the CA that signed the manager's certificate"
    })]
    TlsHandshake {
        /// `host:port` that was called.
        address: String,
        /// What rustls reported (e.g. `invalid peer certificate: UnknownIssuer`).
        reason: String,
    },
    /// The manager throttled the caller.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The manager's explanation, ending with how long to wait.
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
    #[error(
        "no answer from {address} to {operation} within {after:?}; if the manager is only slow, raise the timeout (`--timeout SECS`)"
    )]
    Timeout {
        /// `host:port` of the manager (filled in by the API; empty inside the mapping).
        address: String,
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
    // A connection refused because the manager requires the client certificate a
    // ca.crt-only folder lacks: say which files to add, not "unavailable".
    if let Some(refusal) = std::error::Error::source(status)
        .and_then(manta_tls::TlsError::client_certificate_refusal_in)
    {
        return Error::Tls(refusal);
    }
    let full = redact_tokens(status.message());
    // The manager's texts end with a next step for any client; ours names the `manta`
    // command instead, so only the manager's cause is kept (one cause, one next step).
    let message = server_cause(&full).to_owned();
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
        // The manager's own next step says how long to wait, which the client cannot know.
        Code::ResourceExhausted if full.contains("; ") => Error::RateLimited { message: full },
        Code::ResourceExhausted => Error::RateLimited {
            message: format!("{message}; wait a little and try again"),
        },
        Code::Unavailable => Error::Unavailable {
            message: transport_detail(status, &message),
        },
        // tonic's own per-request deadline ("Timeout expired") ends the call locally.
        Code::Cancelled if message.contains("Timeout expired") => Error::Timeout {
            address: String::new(),
            operation,
            after: timeout,
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
            address: String::new(),
            operation,
            after: timeout,
        },
        other => Error::Server {
            code: format!("{other:?}"),
            message,
        },
    }
}

/// How the manager's texts begin their next step, after "; " or ": ".
const SERVER_HINTS: [&str; 6] = [
    "sign in again",
    "refresh it",
    "ask an administrator",
    "list your",
    "list users",
    "list tokens",
];

/// The cause part of a manager's text: everything before its next step ("cause; next
/// step", or "cause: sign in again ...").
fn server_cause(message: &str) -> &str {
    let cause = message.split_once("; ").map_or(message, |(cause, _)| cause);
    SERVER_HINTS
        .iter()
        .filter_map(|hint| cause.find(&format!(": {hint}")))
        .min()
        .map_or(cause, |i| &cause[..i])
}

/// The most specific text of a transport failure: tonic wraps connector errors in
/// "transport error" with the cause in its source chain, and the connector's own text
/// repeats its cause and adds a next step. Each cause is kept once, without next steps, so
/// the message ends with the client's single next step.
fn transport_detail(status: &tonic::Status, message: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |text: &str| {
        let text = server_cause(text).trim_start_matches("transport error: ");
        if text.is_empty() || text == "transport error" || parts.iter().any(|p| p.contains(text)) {
            return;
        }
        parts.retain(|p| !text.contains(p.as_str()));
        parts.push(text.to_owned());
    };
    push(message);
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        push(&redact_tokens(&e.to_string()));
        cur = e.source();
    }
    parts.join(": ")
}

/// Whether an UNAUTHENTICATED message says the token's key is unknown here: signed by
/// another manager (or by a key rotated out long ago, which looks the same to the client).
pub(crate) fn says_foreign(message: &str) -> bool {
    message.contains("unknown key") || message.contains("signed by another manager")
}

/// Recognises, in the text of a transport failure, the connection errors that have a more
/// precise meaning than "unavailable": a TLS/plaintext mismatch or a refused certificate.
pub(crate) fn classify_transport(message: &str, address: &str, client_tls: bool) -> Option<Error> {
    // rustls reading an HTTP/2 preface where a TLS record should be.
    if client_tls && message.contains("InvalidContentType") {
        return Some(Error::TlsMismatch {
            address: address.to_owned(),
            client_tls,
        });
    }
    // h2 reading a TLS alert as a frame header, or the TLS server hanging up on the preface.
    if !client_tls
        && (message.contains("frame with invalid size")
            || message.to_ascii_lowercase().contains("broken pipe"))
    {
        return Some(Error::TlsMismatch {
            address: address.to_owned(),
            client_tls,
        });
    }
    if client_tls && let Some(i) = message.find("invalid peer certificate") {
        let reason = message[i..]
            .split(": transport error")
            .next()
            .unwrap_or(&message[i..]);
        return Some(Error::TlsHandshake {
            address: address.to_owned(),
            reason: reason.to_owned(),
        });
    }
    None
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
        assert_eq!(
            e.to_string(),
            "permission denied for get_user: it needs the scope `cluster:create`; ask an administrator for it"
        );
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
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        let e = map(Code::Cancelled, "Timeout expired");
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    }

    #[test]
    fn the_managers_next_step_gives_way_to_the_clients() {
        let check = |server: &str, cause: &str| assert_eq!(server_cause(server), cause);
        check(
            "revoked token: sign in again or create a new token",
            "revoked token",
        );
        check(
            "expired token: refresh it or sign in again",
            "expired token",
        );
        check(
            "unknown token: this manager has no record of it; sign in again",
            "unknown token: this manager has no record of it",
        );
        check(
            "no cluster with id \"x\"; list your clusters with ListClusterIds",
            "no cluster with id \"x\"",
        );
        check("wrong user name or password", "wrong user name or password");
        let e = map(Code::Unauthenticated, "revoked token: sign in again");
        assert_eq!(e.to_string().matches("sign in again").count(), 1, "{e}");
        // The wait the manager names is kept: the client cannot know it.
        let e = map(
            Code::ResourceExhausted,
            "too many sign-in attempts for this user; wait 30 seconds and try again",
        );
        assert_eq!(
            e.to_string(),
            "rate limited: too many sign-in attempts for this user; wait 30 seconds and try again"
        );
    }

    #[test]
    fn transport_failures_with_a_precise_meaning_are_recognised() {
        let check = |message: &str, tls: bool| classify_transport(message, "h:1", tls);
        assert!(matches!(
            check("h2 protocol error: frame with invalid size", false),
            Some(Error::TlsMismatch {
                client_tls: false,
                ..
            })
        ));
        assert!(matches!(
            check(
                "error writing a body to connection: Broken pipe (os error 32)",
                false
            ),
            Some(Error::TlsMismatch {
                client_tls: false,
                ..
            })
        ));
        assert!(matches!(
            check("received corrupt message of type InvalidContentType", true),
            Some(Error::TlsMismatch {
                client_tls: true,
                ..
            })
        ));
        let e = check(
            "TLS handshake failed: invalid peer certificate: NotValidForName",
            true,
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "TLS handshake with h:1 failed: invalid peer certificate: NotValidForName; connect with a host name that the manager's certificate names"
        );
        assert!(check("Connection refused (os error 111)", true).is_none());
        assert!(check("Connection refused (os error 111)", false).is_none());
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
