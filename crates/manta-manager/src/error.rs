//! The manager's error type: every failure of the library, with a message that says what to do.

use std::path::PathBuf;

/// Everything that can go wrong in the manager library.
///
/// Messages are lower case, carry no secret and say what the operator can do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SQLite store failed; the source says why.
    #[error(
        "storage failed at {path}: {source}; check that the data directory is writable and not used by another version of the manager"
    )]
    Storage {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer manager than this one.
    #[error(
        "the database schema version {found} is newer than this manager supports ({supported}); upgrade manta-manager"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A file or directory could not be created or read.
    #[error("cannot use {path}: {source}; check the path and its permissions")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// An admin command found no store where it looked; admin commands never create one.
    #[error(
        "no manager store at {path} ({source_of_path}); point --data-dir at the running manager's data directory, e.g. `--data-dir ./.manta-dev` for `manta-manager dev`"
    )]
    NoStore {
        /// The database file that does not exist.
        path: PathBuf,
        /// Where the directory came from: the flag, the variable, the configuration or the
        /// default.
        source_of_path: String,
    },
    /// `pki init` found a file of a development PKI in its folder and was not told to
    /// replace it.
    #[error("{path} exists already; pass --force to replace the development PKI")]
    PkiExists {
        /// The first existing file.
        path: PathBuf,
    },
    /// A user name was already taken.
    #[error("user {0:?} already exists; pick another name or remove the old user first")]
    UserExists(String),
    /// No user matched the given name or id.
    #[error("no user {0:?}; list users with `manta-manager user list`")]
    UnknownUser(String),
    /// A user name, email or password did not pass validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which input was wrong.
        field: &'static str,
        /// Why it was refused and what is accepted.
        reason: String,
    },
    /// A scope string did not follow the grammar `resource:action`.
    #[error(
        "invalid scope {0:?}: use `resource:action` such as `user:read`, `cluster:*` or `admin:*`"
    )]
    InvalidScope(String),
    /// A requested scope is not covered by the scopes of the caller.
    #[error(
        "scope {0:?} is not covered by your own scopes; ask an administrator for it or request fewer scopes"
    )]
    ScopeNotHeld(String),
    /// No token with this id exists.
    #[error("no token with id {0:?}; list tokens with `manta-manager token list`")]
    UnknownToken(String),
    /// Hashing a password failed (out of memory or a corrupt stored hash).
    #[error(
        "password hashing failed: {0}; reset the password with `manta-manager user add --replace`"
    )]
    PasswordHash(String),
    /// Signing or parsing a key failed.
    #[error("signing key problem: {0}; run `manta-manager keys rotate` to create a fresh key")]
    Key(String),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A presented token was refused; the problem says which check failed.
    #[error("{}", .0.message())]
    Token(crate::keys::TokenProblem),
    /// SignIn with a wrong user name or password (which one is not revealed).
    #[error("wrong user name or password; check both and try again")]
    BadCredentials,
    /// Too many sign-in attempts.
    #[error("too many sign-in attempts {scope}; wait {retry_after_secs} seconds and try again")]
    Throttled {
        /// `for this user` or `from this address`.
        scope: &'static str,
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// A refresh token was refused.
    #[error("refresh token rejected: {0}")]
    Refresh(&'static str),
    /// The session reached its maximum lifetime.
    #[error("the session reached its maximum lifetime; sign in again")]
    SessionEnded,
    /// An API token cannot be refreshed.
    #[error("this token cannot be refreshed (api tokens have a fixed lifetime); create a new one")]
    NotRefreshable,
    /// TLS material could not be loaded.
    #[error("tls setup failed: {0}")]
    Tls(#[source] manta_tls::TlsError),
    /// A fixed node alias is held by another registered node that is online. The message is
    /// the published platform's text, which node agents match on.
    #[error("Node with alias '{0}' already exists")]
    AliasTaken(String),
    /// A platform resource does not exist or the caller may not see it (the same answer, so
    /// existence does not leak).
    #[error("no {kind} with id {id:?}; {hint}")]
    NotFound {
        /// `cluster`, `node`, `swarm` or `module`.
        kind: &'static str,
        /// The id asked for.
        id: String,
        /// Where to find valid ids.
        hint: &'static str,
    },
    /// No cluster has the id or name given to an admin command's `--cluster`.
    #[error("no cluster has the id or name {0:?}; list clusters with `manta-manager cluster list`")]
    UnknownCluster(String),
    /// Several clusters have the name given to an admin command's `--cluster`.
    #[error(
        "{} clusters are named {name:?} ({}); give the id of the one you mean instead",
        ids.len(),
        ids.join(", ")
    )]
    AmbiguousCluster {
        /// The name given.
        name: String,
        /// The ids of the clusters with that name.
        ids: Vec<String>,
    },
    /// The resource is in a state that does not allow the operation.
    #[error("{0}")]
    Conflict(String),
    /// A node-side token was refused; the text says why and what the node should do.
    #[error("{0}")]
    NodeRefused(&'static str),
    /// A valid token of the wrong kind for a node method (a user token, or a bootstrap token
    /// where a node identity token is needed).
    #[error("permission denied: {0}")]
    NodeForbidden(&'static str),
    /// The change would leave no user holding `admin:*`.
    #[error(
        "this is the last administrator (the only user holding `admin:*`); make another user an administrator first with `manta-manager user set-scopes NAME admin:*`"
    )]
    LastAdmin,
    /// The caller may not change or remove a user who holds scopes the caller does not hold.
    #[error(
        "user {user:?} holds scope {scope:?}, which you do not hold; ask an administrator who holds it to make this change"
    )]
    Outranked {
        /// The target user's name.
        user: String,
        /// A scope of the target that the caller lacks.
        scope: String,
    },
    /// Creating an API token needs a recent interactive sign-in (a password, not a refresh
    /// or another API token).
    #[error("{0}")]
    ReauthenticationRequired(String),
    /// A listening address of `serve` or `dev` could not be bound (busy, or not local).
    #[error("cannot listen on {addr}: {source}; stop what uses it or choose another with {flag}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The flag that sets it (`--user-listen` or `--node-listen`).
        flag: &'static str,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server could not start or stopped with an error.
    #[error("server failed: {0}; check that the address is free and reachable")]
    Server(String),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
