//! Storage behind a trait: what the handlers need from a database, and the SQLite backend.
//!
//! Handlers only see `dyn Store`, so a PostgreSQL backend can be added by implementing this
//! trait; nothing above it changes. Methods are synchronous: durable writes wait for an fsync,
//! so async callers run them on tokio's blocking pool.

mod platform;
mod sqlite;

use secrecy::SecretBox;

pub use platform::{ClusterRecord, ModuleRecord, NodeRecord, PlatformStore, SwarmRecord};
pub use sqlite::SqliteStore;

use crate::error::Result;

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// 32 lower-case hex characters, as the published platform uses.
    pub id: String,
    /// The unique sign-in name.
    pub username: String,
    /// The email address; may be empty.
    pub email: String,
    /// Granted scopes such as `user:read` or `admin:*`.
    pub scopes: Vec<String>,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// Unix seconds of the last successful sign-in.
    pub last_login: Option<i64>,
    /// Unix seconds of the last logout.
    pub last_logout: Option<i64>,
    /// Unix seconds of the last password change.
    pub password_changed_at: Option<i64>,
    /// Unix seconds of the last scope change.
    pub scopes_updated_at: i64,
    /// When everything issued to this user was last ended (unix seconds), for display; the
    /// check itself is [`UserRecord::generation`].
    pub tokens_not_before: Option<i64>,
    /// The user's credential generation. Every session and token records the generation it
    /// was issued under; a password change, `token revoke --user U --all` or a deletion
    /// increments it inside the same transaction, which ends everything issued before,
    /// exactly, whatever the clock says.
    pub generation: i64,
}

/// A user to create.
#[derive(Debug)]
pub struct NewUser {
    /// The unique sign-in name.
    pub username: String,
    /// The email address; may be empty.
    pub email: String,
    /// The argon2id PHC string, or `None` for a user that can only use issued tokens.
    pub password_hash: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// What a token is for; stored with every issued token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A session access token from SignIn, CreateSession or a refresh.
    Access,
    /// A named API token created by a user or an administrator.
    Api,
}

impl TokenKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Api => "api",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "api" {
            TokenKind::Api
        } else {
            TokenKind::Access
        }
    }
}

/// An issued token's metadata; the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// The token's `jti`.
    pub jti: String,
    /// The subject (user id).
    pub user_id: String,
    /// Access or API token.
    pub kind: TokenKind,
    /// The API token's name; `None` for access tokens.
    pub name: Option<String>,
    /// The scopes the token carries.
    pub scopes: Vec<String>,
    /// The session an access token belongs to.
    pub session_id: Option<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds of the last authenticated call with it.
    pub last_used_at: Option<i64>,
    /// Unix seconds of revocation.
    pub revoked_at: Option<i64>,
    /// The user's [`UserRecord::generation`] the token was issued under.
    pub generation: i64,
}

/// What the authorization layer needs to know about a presented token, in one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// The subject the token was recorded for; a token whose `sub` differs was not issued
    /// as presented.
    pub user_id: String,
    /// Access or API token, as recorded.
    pub kind: TokenKind,
    /// The expiry recorded at issue (unix seconds); it must equal the token's `exp`.
    pub expires_at: i64,
    /// The token was revoked by id.
    pub revoked: bool,
    /// Its session was revoked (logout, reuse detection).
    pub session_revoked: bool,
    /// When the token was issued (unix seconds).
    pub issued_at: i64,
    /// The user generation the token was issued under.
    pub generation: i64,
    /// The user's current generation: the token is void when it is newer than the token's.
    pub user_generation: i64,
    /// The subject's current scopes: a token never grants more than its user holds now.
    pub user_scopes: Vec<String>,
    /// The session of an access token.
    pub session_id: Option<String>,
}

/// A sign-in session: a family of rotating refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Random 32-hex identifier.
    pub id: String,
    /// The signed-in user.
    pub user_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The session's hard end (maximum lifetime); no token outlives it.
    pub expires_at: i64,
    /// Unix seconds of revocation.
    pub revoked_at: Option<i64>,
    /// The user's [`UserRecord::generation`] at sign-in; a newer user generation ends the
    /// session, its refresh tokens and its access tokens.
    pub generation: i64,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and its successor is stored.
    Rotated(SessionRecord),
    /// The token had been used before: the whole session is now revoked.
    Reused,
    /// No such token.
    Unknown,
    /// The token or its session expired.
    Expired,
    /// The session was revoked earlier, or ended with its user's credentials (a password
    /// change, a revocation of everything of the user).
    Revoked,
}

/// A token signing key as stored.
#[derive(Debug)]
pub struct SigningKeyRecord {
    /// Key id, the JWT header `kid`.
    pub kid: String,
    /// `EdDSA` or `HS256`.
    pub alg: String,
    /// PKCS#8 DER for EdDSA; empty for HS256 (the shared secret comes from configuration).
    pub private_der: SecretBox<Vec<u8>>,
    /// The raw public key for EdDSA; empty for HS256.
    pub public: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stopped signing; it still verifies until its last token expires.
    pub retired_at: Option<i64>,
}

/// One authorization decision, or a run of identical ones.
///
/// Decisions that are the same in every field but time (same subject, token, method,
/// resource, outcome, reason, peer address and client certificate) and fall within one
/// write window of the audit writer are stored as one row: `count` says how many there were,
/// `at_ms` and `last_at_ms` when the first and the last one happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    /// Unix milliseconds of the (first) decision.
    pub at_ms: i64,
    /// Unix milliseconds of the last decision of the run; equal to `at_ms` when `count` is 1.
    pub last_at_ms: i64,
    /// How many identical decisions this row stands for (at least 1).
    pub count: u64,
    /// The caller's user id, when a token was verified.
    pub subject: Option<String>,
    /// The token's `jti`, when a token was verified.
    pub token_id: Option<String>,
    /// The gRPC path, such as `/core.user_services.UserManagement/GetUser`.
    pub method: String,
    /// The resource acted on, when the method names one.
    pub resource: Option<String>,
    /// Allowed or denied.
    pub allowed: bool,
    /// Why: the scope that granted or was missing, or the token problem.
    pub reason: String,
    /// The peer address.
    pub peer: Option<String>,
    /// The client certificate identity under mTLS.
    pub client_identity: Option<String>,
}

/// A filter for [`Store::query_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events at or after this instant (unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only events of this subject.
    pub subject: Option<String>,
    /// Only events whose method contains this text.
    pub method: Option<String>,
    /// Only denials.
    pub denied_only: bool,
    /// At most this many, newest first.
    pub limit: u32,
}

/// An opaque marker of the stored data: it changes whenever anything is committed, by this
/// process or another one. Equal markers read at two instants mean nothing was committed in
/// between, so data read in between is still current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataVersion(pub [u8; 48]);

/// Everything the manager persists.
pub trait Store: PlatformStore + Send + Sync + 'static {
    /// The current [`DataVersion`], read without a transaction; `None` when this backend
    /// cannot tell, in which case callers must not cache what they read.
    fn data_version(&self) -> Option<DataVersion> {
        None
    }

    /// Creates a user with a fresh 32-hex id.
    fn create_user(&self, user: NewUser, now: i64) -> Result<UserRecord>;
    /// Finds a user by id.
    fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>>;
    /// Finds a user by name, with the password hash.
    fn credentials(&self, username: &str) -> Result<Option<(UserRecord, Option<String>)>>;
    /// All users, by name.
    fn list_users(&self) -> Result<Vec<UserRecord>>;
    /// Deletes a user with its tokens and sessions; false when there was none. Refuses with
    /// [`crate::Error::LastAdmin`] to delete the last holder of `admin:*`, atomically.
    fn delete_user(&self, id: &str) -> Result<bool>;
    /// Replaces a user's scopes; false when there is no such user. Refuses with
    /// [`crate::Error::LastAdmin`] to take `admin:*` from its last holder, atomically.
    fn set_scopes(&self, id: &str, scopes: &[String], now: i64) -> Result<bool>;
    /// Replaces a user's password hash and, in the same transaction, ends every session and
    /// token of the user issued before (see [`UserRecord::generation`]).
    fn set_password(&self, id: &str, hash: &str, now: i64) -> Result<bool>;
    /// Records a successful sign-in.
    fn record_login(&self, id: &str, now: i64) -> Result<()>;
    /// Records a logout.
    fn record_logout(&self, id: &str, now: i64) -> Result<()>;

    /// Durably records an issued token before it is handed out.
    fn record_token(&self, token: &TokenRecord) -> Result<()>;
    /// Looks up a presented token; `None` when this manager never issued it.
    fn token_state(&self, jti: &str) -> Result<Option<TokenState>>;
    /// One token's metadata.
    fn token(&self, jti: &str) -> Result<Option<TokenRecord>>;
    /// Tokens, optionally of one user and kind, newest first.
    fn list_tokens(
        &self,
        user_id: Option<&str>,
        kind: Option<TokenKind>,
        include_inactive: bool,
        now: i64,
    ) -> Result<Vec<TokenRecord>>;
    /// Durably revokes a token by id; false when there is no such token.
    fn revoke_token(&self, jti: &str, now: i64) -> Result<bool>;
    /// Durably ends every session and token of a user issued so far (the user's generation
    /// moves on); false when there is no such user.
    fn revoke_user_credentials(&self, user_id: &str, now: i64) -> Result<bool>;
    /// Records last use of tokens, in bulk (not durable: a crash loses a few seconds).
    fn touch_tokens(&self, uses: &[(String, i64)]) -> Result<()>;

    /// Creates a session with its first refresh token (stored as a SHA-256 digest).
    fn create_session(
        &self,
        session: &SessionRecord,
        refresh_digest: &str,
        refresh_expires_at: i64,
    ) -> Result<()>;
    /// Presents a refresh token: rotates it, or detects reuse and revokes the family. A
    /// session of an older user generation is revoked and reported as such.
    fn rotate_refresh(
        &self,
        digest: &str,
        next_digest: &str,
        next_expires_at: i64,
        now: i64,
    ) -> Result<RefreshOutcome>;
    /// The session a refresh token belongs to.
    fn session_of_refresh(&self, digest: &str) -> Result<Option<SessionRecord>>;
    /// A session by id.
    fn session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Durably revokes a session and every token issued in it.
    fn revoke_session(&self, id: &str, now: i64) -> Result<bool>;

    /// Every signing key, newest first.
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Adds a signing key and retires the current ones at `now`.
    fn add_signing_key(&self, key: &SigningKeyRecord, now: i64) -> Result<()>;

    /// Appends audit events.
    fn append_audit(&self, events: &[AuditEvent]) -> Result<()>;
    /// Queries the audit trail, newest first.
    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>>;
    /// Deletes audit rows that began before `older_than_ms` (unix milliseconds) and all but
    /// the newest `keep_rows`; returns how many rows were deleted.
    fn prune_audit(&self, older_than_ms: Option<i64>, keep_rows: Option<u64>) -> Result<u64>;
}

/// `clock`'s time in unix seconds. Every time the manager records comes from its one clock
/// ([`crate::keys::Authority::clock`]), never from the system directly.
pub(crate) fn secs_of(clock: &dyn manta_auth::Clock) -> i64 {
    i64::try_from(clock.unix_now()).unwrap_or(i64::MAX)
}

/// `clock`'s time in unix milliseconds.
pub(crate) fn millis_of(clock: &dyn manta_auth::Clock) -> i64 {
    i64::try_from(clock.unix_millis()).unwrap_or(i64::MAX)
}

/// A fresh random identifier: 128 bits as 32 lower-case hex characters.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
