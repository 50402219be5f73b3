//! The identity engine: users, sign-in, sessions with rotating refresh tokens, API tokens,
//! revocation and token authentication. Transport-free: the gRPC handlers and the admin CLI
//! both call it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::audit::AuditSink;
use crate::error::{Error, Result};
use crate::keys::{Authority, TokenProblem};
use crate::password::{check_new_password, hash_password, verify_password};
use crate::ratelimit::{SignInLimiter, SignInLimits, Throttled};
use crate::scopes;
use crate::store::{
    DataVersion, NewUser, RefreshOutcome, SessionRecord, Store, TokenKind, TokenRecord, UserRecord,
    new_id,
};

/// Token lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access tokens from SignIn, CreateSession and refreshes.
    pub access: Duration,
    /// One refresh token (each rotation issues a new one).
    pub refresh: Duration,
    /// A session's hard limit: RefreshUserToken and RefreshSession never go past it.
    pub session_max: Duration,
    /// API tokens without an explicit lifetime.
    pub api_default: Duration,
    /// The longest API token lifetime allowed.
    pub api_max: Duration,
    /// How recent a password sign-in must be for its session to create API tokens (the
    /// "sudo mode" of GitHub): a stolen access token, or a session kept alive by refreshes,
    /// cannot turn itself into a long-lived credential.
    pub recent_auth: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            access: Duration::from_secs(3600),
            refresh: Duration::from_secs(7 * 86_400),
            session_max: Duration::from_secs(30 * 86_400),
            api_default: Duration::from_secs(90 * 86_400),
            api_max: Duration::from_secs(365 * 86_400),
            recent_auth: Duration::from_secs(15 * 60),
        }
    }
}

/// An authenticated caller, put into request extensions by the authorization layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id (token subject).
    pub user_id: String,
    /// The token's `jti`.
    pub token_id: String,
    /// Access or API token.
    pub kind: TokenKind,
    /// Effective scopes: the token's, limited to what the user holds now.
    pub scopes: Vec<String>,
    /// The session of an access token.
    pub session_id: Option<String>,
    /// The token's expiry (unix seconds).
    pub expires_at: i64,
    /// The user generation the token was issued under ([`UserRecord::generation`]).
    pub generation: i64,
}

impl Caller {
    /// Whether the caller holds a scope.
    pub fn has(&self, scope: &str) -> bool {
        scopes::any_covers(&self.scopes, scope)
    }
}

/// A new session: the access token and the refresh token are shown to the client once.
pub struct NewSession {
    /// The user signed in.
    pub user: UserRecord,
    /// The access token.
    pub access_token: SecretString,
    /// When it expires (unix seconds).
    pub access_expires_at: i64,
    /// The refresh token, usable once.
    pub refresh_token: SecretString,
    /// When it expires (unix seconds).
    pub refresh_expires_at: i64,
    /// The session id.
    pub session_id: String,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("user", &self.user.username)
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// A newly issued token and its record; the token is shown once.
pub struct IssuedToken {
    /// The JWT.
    pub token: SecretString,
    /// Its stored metadata.
    pub record: TokenRecord,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[REDACTED]")
            .field("record", &self.record)
            .finish()
    }
}

/// The identity engine. Share it behind an `Arc`.
pub struct Core {
    store: Arc<dyn Store>,
    authority: Arc<Authority>,
    lifetimes: Lifetimes,
    limiter: SignInLimiter,
    audit: AuditSink,
    /// Authenticated callers by SHA-256 of their token, valid while the store's data version
    /// is the one they were read under.
    callers: Mutex<HashMap<[u8; 32], CachedCaller>>,
    /// Clusters, swarms, modules and the node registry (manager part 2).
    platform: crate::platform::Platform,
    /// The MQTT node transport, when `[mqtt]` names a broker.
    mqtt: Option<Arc<crate::mqtt::Mqtt>>,
}

/// What a token to issue records besides what signing decides (`jti`, `iat`, `exp`).
struct Draft {
    kind: TokenKind,
    user_id: String,
    name: Option<String>,
    scopes: Vec<String>,
    session_id: Option<String>,
    generation: i64,
}

/// How many authenticated callers [`Core::authenticate`] keeps.
const CALLER_CACHE: usize = 16_384;

struct CachedCaller {
    version: DataVersion,
    /// The key set's [`Authority::generation`] when the token verified.
    keys: u64,
    caller: Arc<Caller>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("authority", &self.authority)
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

fn digest(secret: &SecretString) -> String {
    hex::encode(Sha256::digest(secret.expose_secret().as_bytes()))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_`, `-` or `@`.
pub fn check_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "user name",
            reason: "use 1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        })
    }
}

impl Core {
    /// Builds the engine over a store and key authority.
    pub fn new(
        store: Arc<dyn Store>,
        authority: Arc<Authority>,
        lifetimes: Lifetimes,
        limits: SignInLimits,
        audit: AuditSink,
    ) -> Self {
        let platform = crate::platform::Platform::new(
            Arc::clone(&store),
            Arc::clone(&authority),
            crate::registry::NodeSettings::default(),
        );
        Core {
            store,
            authority,
            lifetimes,
            limiter: SignInLimiter::new(limits),
            audit,
            callers: Mutex::new(HashMap::new()),
            platform,
            mqtt: None,
        }
    }

    /// Serves the published node transport over the broker in `settings` too: nodes are
    /// told the broker at registration and `server::serve` connects to it.
    #[must_use]
    pub fn with_mqtt(mut self, settings: crate::mqtt::MqttSettings) -> Self {
        self.mqtt = Some(Arc::new(crate::mqtt::Mqtt::new(settings)));
        self
    }

    /// The MQTT node transport, when configured.
    pub fn mqtt(&self) -> Option<&Arc<crate::mqtt::Mqtt>> {
        self.mqtt.as_ref()
    }

    /// Replaces the default node settings (heartbeat interval, node token lifetimes).
    #[must_use]
    pub fn with_node_settings(mut self, settings: crate::registry::NodeSettings) -> Self {
        self.platform = crate::platform::Platform::new(
            Arc::clone(&self.store),
            Arc::clone(&self.authority),
            settings,
        );
        self
    }

    /// The manager's one clock (the key authority's): every timestamp, expiry and window.
    pub fn clock(&self) -> &manta_auth::SharedClock {
        self.authority.clock()
    }

    /// [`Core::clock`]'s time in unix seconds.
    pub(crate) fn now_secs(&self) -> i64 {
        self.authority.now_secs()
    }

    /// Clusters, swarms, modules and the node registry.
    pub fn platform(&self) -> &crate::platform::Platform {
        &self.platform
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key authority.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// The audit sink.
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// The configured lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Creates a user; the password (if any) is hashed with argon2id.
    pub fn add_user(
        &self,
        username: &str,
        email: &str,
        password: Option<&SecretString>,
        user_scopes: Vec<String>,
    ) -> Result<UserRecord> {
        check_username(username)?;
        for s in &user_scopes {
            scopes::validate(s)?;
        }
        let password_hash = match password {
            Some(p) => {
                check_new_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        self.store.create_user(
            NewUser {
                username: username.to_owned(),
                email: email.to_owned(),
                password_hash,
                scopes: user_scopes,
            },
            self.now_secs(),
        )
    }

    /// Finds a user by name or id.
    pub fn find_user(&self, name_or_id: &str) -> Result<UserRecord> {
        if let Some((user, _)) = self.store.credentials(name_or_id)? {
            return Ok(user);
        }
        self.store
            .user_by_id(name_or_id)?
            .ok_or_else(|| Error::UnknownUser(name_or_id.to_owned()))
    }

    /// Replaces a user's scopes. With `actor` (the scopes of a caller of the API), the
    /// caller must hold every scope the user holds now and every scope given; the last
    /// administrator keeps `admin:*` whoever asks. Removed scopes stop working in live tokens
    /// at once (each call limits a token to its user's current scopes) and refreshes mint
    /// only current scopes; sessions go on.
    pub fn set_user_scopes(
        &self,
        actor: Option<&[String]>,
        user_id: &str,
        next: &[String],
    ) -> Result<()> {
        for s in next {
            scopes::validate(s)?;
        }
        if let Some(held) = actor {
            if let Some(s) = next.iter().find(|s| !scopes::any_covers(held, s)) {
                return Err(Error::ScopeNotHeld(s.clone()));
            }
            self.check_outranks(held, user_id)?;
        }
        if self.store.set_scopes(user_id, next, self.now_secs())? {
            Ok(())
        } else {
            Err(Error::UnknownUser(user_id.to_owned()))
        }
    }

    /// Deletes a user with its sessions and tokens, under the same rules as
    /// [`Core::set_user_scopes`]. False when there was no such user.
    pub fn delete_user(&self, actor: Option<&[String]>, user_id: &str) -> Result<bool> {
        if let Some(held) = actor {
            match self.check_outranks(held, user_id) {
                Err(Error::UnknownUser(_)) => return Ok(false),
                other => other?,
            }
        }
        self.store.delete_user(user_id)
    }

    /// Nobody changes a user who holds a scope the caller does not hold: a `user:update`
    /// holder cannot strip an administrator, nor a `user:delete` holder remove one.
    fn check_outranks(&self, held: &[String], user_id: &str) -> Result<()> {
        let target = self
            .store
            .user_by_id(user_id)?
            .ok_or_else(|| Error::UnknownUser(user_id.to_owned()))?;
        match target.scopes.iter().find(|s| !scopes::any_covers(held, s)) {
            Some(scope) => Err(Error::Outranked {
                user: target.username,
                scope: scope.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Replaces a user's password and ends every session and token issued before.
    pub fn set_password(&self, user_id: &str, password: &SecretString) -> Result<()> {
        check_new_password(password)?;
        let hash = hash_password(password)?;
        if self.store.set_password(user_id, &hash, self.now_secs())? {
            Ok(())
        } else {
            Err(Error::UnknownUser(user_id.to_owned()))
        }
    }

    /// Verifies a presented token and its store state; the basis of every authorization.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Caller>> {
        // Read the data version before anything else: whatever is cached under it was read
        // no earlier than this, so a commit after this read changes the version the next
        // call sees, and that call reads the database again.
        let version = self.store.data_version();
        // Likewise the signing keys: a reload may have dropped the key a token was signed with.
        let keys = self.authority.generation();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(version) = version {
            let cache = self.callers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&key).filter(|c| {
                c.version == version && c.keys == keys && c.caller.expires_at > self.now_secs()
            }) {
                return Ok(Arc::clone(&hit.caller));
            }
        }
        let caller = Arc::new(self.authenticate_uncached(token)?);
        if let Some(version) = version {
            let mut cache = self.callers.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CALLER_CACHE {
                cache.retain(|_, c| c.version == version && c.keys == keys);
                if cache.len() >= CALLER_CACHE {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                CachedCaller {
                    version,
                    keys,
                    caller: Arc::clone(&caller),
                },
            );
        }
        Ok(caller)
    }

    /// Verifies a token and reads its state from the store: revocation of the token, its
    /// session or its subject, and the user's current scopes.
    fn authenticate_uncached(&self, token: &str) -> Result<Caller> {
        let claims = self.authority.verify(token).map_err(Error::Token)?;
        let state = self
            .store
            .token_state(&claims.jti)?
            .ok_or(Error::Token(TokenProblem::NotIssued))?;
        // The record of a `jti` must be the record of this token: a holder of a shared
        // HS256 secret who saw one token must not re-sign its `jti` under another subject,
        // kind or lifetime.
        if state.user_id != claims.sub
            || state.kind != claims.kind
            || state.expires_at != claims.exp
        {
            return Err(Error::Token(TokenProblem::NotIssued));
        }
        if state.session_revoked {
            return Err(Error::Token(TokenProblem::SessionRevoked));
        }
        if state.revoked {
            return Err(Error::Token(TokenProblem::Revoked));
        }
        if state.generation < state.user_generation {
            return Err(Error::Token(TokenProblem::SubjectRevoked));
        }
        let effective = claims
            .scopes
            .into_iter()
            .filter(|s| scopes::any_covers(&state.user_scopes, s))
            .collect();
        Ok(Caller {
            user_id: claims.sub,
            token_id: claims.jti,
            kind: claims.kind,
            scopes: effective,
            session_id: state.session_id,
            expires_at: claims.exp,
            generation: state.generation,
        })
    }

    /// Checks a password with the brute-force limits of [`crate::ratelimit`]: the attempt
    /// reserves its place before argon2 runs, and argon2 runs in a bounded number of slots.
    pub fn check_credentials(
        &self,
        username: &str,
        password: &SecretString,
        peer: &str,
    ) -> Result<UserRecord> {
        let throttled = |t: Throttled| match t {
            Throttled::Peer(d) => Error::Throttled {
                scope: "from this address",
                retry_after_secs: d.as_secs().max(1),
            },
            Throttled::User(d) => Error::Throttled {
                scope: "for this user from this address",
                retry_after_secs: d.as_secs().max(1),
            },
            Throttled::Slowed(d) => Error::Throttled {
                scope: "for this user",
                retry_after_secs: d.as_secs().max(1),
            },
            Throttled::Busy => Error::Throttled {
                scope: "on this manager right now",
                retry_after_secs: 1,
            },
        };
        let attempt = self
            .limiter
            .begin(peer, username, self.clock().elapsed())
            .map_err(throttled)?;
        // A store failure drops the attempt, which releases it without counting a failure.
        let found = self.store.credentials(username)?;
        let stored = found.as_ref().and_then(|(_, hash)| hash.as_deref());
        // The checker threads need their own copies; both are dropped right after the check.
        let (password, stored) = (password.clone(), stored.map(str::to_owned));
        let ok = self
            .limiter
            .evaluate(attempt.trusted(), move || {
                verify_password(&password, stored.as_deref())
            })
            .map_err(throttled)?;
        if !ok {
            attempt.failed(self.clock().elapsed());
            return Err(Error::BadCredentials);
        }
        attempt.succeeded(self.clock().elapsed());
        // verify_password only succeeds with a stored hash, so the user exists here.
        let (user, _) = found.ok_or(Error::BadCredentials)?;
        Ok(user)
    }

    /// The sign-in limiter, for its figures (argon2 evaluations, table sizes).
    pub fn sign_in_limiter(&self) -> &SignInLimiter {
        &self.limiter
    }

    /// Signs in: checks the password and starts a session.
    pub fn sign_in(
        &self,
        username: &str,
        password: &SecretString,
        peer: &str,
    ) -> Result<NewSession> {
        let user = self.check_credentials(username, password, peer)?;
        let session = self.start_session(&user)?;
        self.store.record_login(&user.id, self.now_secs())?;
        Ok(session)
    }

    /// Starts a session for a user: one access token and the first refresh token.
    pub fn start_session(&self, user: &UserRecord) -> Result<NewSession> {
        let now = self.now_secs();
        let session = SessionRecord {
            id: new_id(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + secs(self.lifetimes.session_max),
            revoked_at: None,
            // The generation the password was checked under: a password change that
            // commits between the check and this session voids it.
            generation: user.generation,
        };
        let refresh =
            SecretString::from(format!("mrt_{}", hex::encode(rand::random::<[u8; 32]>())));
        let refresh_expires_at = (now + secs(self.lifetimes.refresh)).min(session.expires_at);
        self.store
            .create_session(&session, &digest(&refresh), refresh_expires_at)?;
        let access = self.issue_access(user, &session, now)?;
        Ok(NewSession {
            user: user.clone(),
            access_expires_at: access.record.expires_at,
            access_token: access.token,
            refresh_token: refresh,
            refresh_expires_at,
            session_id: session.id,
        })
    }

    fn issue_access(
        &self,
        user: &UserRecord,
        session: &SessionRecord,
        now: i64,
    ) -> Result<IssuedToken> {
        let end = (now + secs(self.lifetimes.access)).min(session.expires_at);
        let lifetime = Duration::from_secs(u64::try_from(end - now).unwrap_or(0).max(1));
        self.issue(
            Draft {
                kind: TokenKind::Access,
                user_id: user.id.clone(),
                name: None,
                scopes: user.scopes.clone(),
                session_id: Some(session.id.clone()),
                generation: session.generation,
            },
            lifetime,
        )
    }

    /// Signs a token, then records it durably before anyone sees it: a token is never handed
    /// out unrecorded, so a crash cannot leave a valid token the store does not know.
    fn issue(&self, draft: Draft, lifetime: Duration) -> Result<IssuedToken> {
        let signed = self
            .authority
            .sign(draft.kind, &draft.user_id, &draft.scopes, lifetime)?;
        let record = TokenRecord {
            jti: signed.jti,
            user_id: draft.user_id,
            kind: draft.kind,
            name: draft.name,
            scopes: draft.scopes,
            session_id: draft.session_id,
            issued_at: signed.iat,
            expires_at: signed.exp,
            last_used_at: None,
            revoked_at: None,
            generation: draft.generation,
        };
        self.store.record_token(&record)?;
        Ok(IssuedToken {
            token: signed.token,
            record,
        })
    }

    /// RefreshUserToken: a new access token in the caller's session, never past its end.
    pub fn refresh_access(&self, caller: &Caller) -> Result<IssuedToken> {
        let Some(session_id) = caller.session_id.as_deref() else {
            return Err(Error::NotRefreshable);
        };
        let now = self.now_secs();
        let session = self
            .store
            .session(session_id)?
            .ok_or(Error::Token(TokenProblem::SessionRevoked))?;
        if session.revoked_at.is_some() {
            return Err(Error::Token(TokenProblem::SessionRevoked));
        }
        if session.expires_at <= now {
            return Err(Error::SessionEnded);
        }
        let user = self
            .store
            .user_by_id(&caller.user_id)?
            .ok_or(Error::Token(TokenProblem::SubjectRevoked))?;
        if session.generation < user.generation {
            // Ended with the user's credentials; the token would be void anyway.
            return Err(Error::Token(TokenProblem::SessionRevoked));
        }
        self.issue_access(&user, &session, now)
    }

    /// RefreshSession: rotates the refresh token; reuse revokes the whole session.
    pub fn refresh_session(&self, refresh: &SecretString) -> Result<NewSession> {
        let now = self.now_secs();
        let next = SecretString::from(format!("mrt_{}", hex::encode(rand::random::<[u8; 32]>())));
        let next_expires = now + secs(self.lifetimes.refresh);
        let outcome =
            self.store
                .rotate_refresh(&digest(refresh), &digest(&next), next_expires, now)?;
        let session = match outcome {
            RefreshOutcome::Rotated(s) => s,
            RefreshOutcome::Reused => {
                tracing::warn!("refresh token reuse detected; the session was revoked");
                return Err(Error::Refresh(
                    "it was already used, so its session is now revoked; sign in again",
                ));
            }
            RefreshOutcome::Unknown => {
                return Err(Error::Refresh("unknown refresh token; sign in again"));
            }
            RefreshOutcome::Expired => {
                return Err(Error::Refresh("the refresh token expired; sign in again"));
            }
            RefreshOutcome::Revoked => {
                return Err(Error::Refresh("the session was revoked; sign in again"));
            }
        };
        let user = self
            .store
            .user_by_id(&session.user_id)?
            .ok_or(Error::Refresh("the user no longer exists"))?;
        let access = self.issue_access(&user, &session, now)?;
        Ok(NewSession {
            user,
            access_expires_at: access.record.expires_at,
            access_token: access.token,
            refresh_token: next,
            refresh_expires_at: next_expires.min(session.expires_at),
            session_id: session.id,
        })
    }

    /// RevokeSession: ends the session a refresh token belongs to.
    pub fn revoke_session_by_refresh(&self, refresh: &SecretString) -> Result<()> {
        let session = self
            .store
            .session_of_refresh(&digest(refresh))?
            .ok_or(Error::Refresh("unknown refresh token; nothing to revoke"))?;
        self.store.revoke_session(&session.id, self.now_secs())?;
        Ok(())
    }

    /// Logout: revokes the caller's session (or the token itself when it has none).
    pub fn logout(&self, caller: &Caller) -> Result<()> {
        let now = self.now_secs();
        match caller.session_id.as_deref() {
            Some(sid) => self.store.revoke_session(sid, now)?,
            None => self.store.revoke_token(&caller.token_id, now)?,
        };
        self.store.record_logout(&caller.user_id, now)
    }

    /// Creates an API token for `user` whose scopes must all be covered by `granter_scopes`:
    /// the operator's path (the admin CLI, the test harness), which needs no sign-in.
    pub fn create_api_token(
        &self,
        user: &UserRecord,
        name: &str,
        requested: Vec<String>,
        ttl: Option<Duration>,
        granter_scopes: &[String],
    ) -> Result<IssuedToken> {
        self.api_token(user, user.generation, name, requested, ttl, granter_scopes)
    }

    /// CreateApiToken: a caller creates an API token for itself. Only a session whose
    /// password sign-in is recent may ([`Lifetimes::recent_auth`]); an API token may not, so
    /// a stolen token of any kind cannot mint itself a year of persistence. The new token
    /// belongs to the caller's generation: it ends with the caller's other credentials.
    pub fn create_own_api_token(
        &self,
        caller: &Caller,
        name: &str,
        requested: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<IssuedToken> {
        let Some(session_id) = caller.session_id.as_deref() else {
            return Err(Error::ReauthenticationRequired(
                "an API token cannot create API tokens; sign in with your password \
                 (`manta login`) and create it from that session"
                    .into(),
            ));
        };
        let session = self
            .store
            .session(session_id)?
            .ok_or(Error::Token(TokenProblem::SessionRevoked))?;
        let age = self.now_secs().saturating_sub(session.created_at);
        let limit = secs(self.lifetimes.recent_auth);
        if age > limit {
            return Err(Error::ReauthenticationRequired(format!(
                "creating an API token needs a recent sign-in: this session signed in {} \
                 minutes ago, more than {} allowed; sign in again (`manta login`) and retry",
                age / 60,
                (limit + 59) / 60
            )));
        }
        let user = self.find_user(&caller.user_id)?;
        self.api_token(
            &user,
            caller.generation,
            name,
            requested,
            ttl,
            &caller.scopes,
        )
    }

    fn api_token(
        &self,
        user: &UserRecord,
        generation: i64,
        name: &str,
        requested: Vec<String>,
        ttl: Option<Duration>,
        granter_scopes: &[String],
    ) -> Result<IssuedToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::Invalid {
                field: "token name",
                reason: "give the token a name of 1 to 100 characters".into(),
            });
        }
        for s in &requested {
            scopes::validate(s)?;
            if !scopes::any_covers(granter_scopes, s) {
                return Err(Error::ScopeNotHeld(s.clone()));
            }
        }
        let ttl = ttl.unwrap_or(self.lifetimes.api_default);
        if ttl.is_zero() || ttl > self.lifetimes.api_max {
            return Err(Error::Invalid {
                field: "lifetime",
                reason: format!(
                    "choose between 1 second and {} days",
                    self.lifetimes.api_max.as_secs() / 86_400
                ),
            });
        }
        self.issue(
            Draft {
                kind: TokenKind::Api,
                user_id: user.id.clone(),
                name: Some(name.to_owned()),
                scopes: requested,
                session_id: None,
                generation,
            },
            ttl,
        )
    }

    /// Revokes a token by id, limited to one owner when `owner` is given (other owners' tokens
    /// look absent, so their existence does not leak).
    pub fn revoke_token(&self, jti: &str, owner: Option<&str>) -> Result<()> {
        let found = self.store.token(jti)?;
        match found {
            Some(t) if owner.is_none_or(|o| o == t.user_id) => {
                self.store.revoke_token(jti, self.now_secs())?;
                Ok(())
            }
            _ => Err(Error::UnknownToken(jti.to_owned())),
        }
    }

    /// Ends every session, refresh token and token of a user issued up to now, exactly: a
    /// token issued a millisecond later still works.
    pub fn revoke_all_of(&self, user_id: &str) -> Result<()> {
        if self
            .store
            .revoke_user_credentials(user_id, self.now_secs())?
        {
            Ok(())
        } else {
            Err(Error::UnknownUser(user_id.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningMode;
    use crate::store::SqliteStore;

    fn now_secs() -> i64 {
        crate::store::secs_of(&manta_auth::SystemClock)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        core: Core,
        _writer: crate::audit::AuditWriter,
    }

    fn fixture() -> Fixture {
        fixture_with(SigningMode::EdDsa)
    }

    fn fixture_with(mode: SigningMode) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let authority = Arc::new(Authority::open(Arc::clone(&store), mode, "t", 86_400).unwrap());
        let (sink, writer) = crate::audit::start(Arc::clone(&store));
        let limits = SignInLimits {
            per_peer: 100,
            failures_per_user: 3,
            window: Duration::from_secs(60),
            ..SignInLimits::default()
        };
        let core = Core::new(store, authority, Lifetimes::default(), limits, sink);
        Fixture {
            _dir: dir,
            core,
            _writer: writer,
        }
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn sign_in_issues_a_working_token_and_logout_kills_it() {
        let f = fixture();
        f.core
            .add_user(
                "alice",
                "a@x",
                Some(&pw("password1")),
                vec!["user:read".into()],
            )
            .unwrap();
        let s = f.core.sign_in("alice", &pw("password1"), "p").unwrap();
        let caller = f.core.authenticate(s.access_token.expose_secret()).unwrap();
        assert_eq!(caller.scopes, ["user:read"]);
        assert!(caller.has("user:read") && !caller.has("user:list"));
        f.core.logout(&caller).unwrap();
        let err = f
            .core
            .authenticate(s.access_token.expose_secret())
            .unwrap_err();
        assert!(
            matches!(err, Error::Token(TokenProblem::SessionRevoked)),
            "{err}"
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same_then_throttle() {
        let f = fixture();
        f.core
            .add_user("bob", "", Some(&pw("password1")), vec![])
            .unwrap();
        let a = f.core.sign_in("bob", &pw("wrong-one"), "p").unwrap_err();
        let b = f.core.sign_in("nobody", &pw("wrong-one"), "p").unwrap_err();
        assert_eq!(a.to_string(), b.to_string());
        f.core.sign_in("bob", &pw("wrong-two"), "p").unwrap_err();
        f.core.sign_in("bob", &pw("wrong-three"), "p").unwrap_err();
        let err = f.core.sign_in("bob", &pw("password1"), "p").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("too many sign-in attempts for this user"),
            "{err}"
        );
    }

    #[test]
    fn refresh_access_stays_in_session_and_api_tokens_cannot_refresh() {
        let f = fixture();
        let u = f
            .core
            .add_user("carl", "", Some(&pw("password1")), vec!["user:*".into()])
            .unwrap();
        let s = f.core.sign_in("carl", &pw("password1"), "p").unwrap();
        let caller = f.core.authenticate(s.access_token.expose_secret()).unwrap();
        let next = f.core.refresh_access(&caller).unwrap();
        let c2 = f.core.authenticate(next.token.expose_secret()).unwrap();
        assert_eq!(c2.session_id, caller.session_id);
        assert_ne!(c2.token_id, caller.token_id);

        let api = f
            .core
            .create_api_token(&u, "ci", vec!["user:read".into()], None, &u.scopes)
            .unwrap();
        let api_caller = f.core.authenticate(api.token.expose_secret()).unwrap();
        assert!(matches!(
            f.core.refresh_access(&api_caller),
            Err(Error::NotRefreshable)
        ));
    }

    #[test]
    fn api_tokens_never_exceed_the_granter() {
        let f = fixture();
        let u = f
            .core
            .add_user("dana", "", None, vec!["user:read".into()])
            .unwrap();
        let err = f
            .core
            .create_api_token(&u, "x", vec!["user:delete".into()], None, &u.scopes)
            .unwrap_err();
        assert!(
            matches!(err, Error::ScopeNotHeld(ref s) if s == "user:delete"),
            "{err}"
        );
        let err = f
            .core
            .create_api_token(&u, " ", vec![], None, &u.scopes)
            .unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let err = f
            .core
            .create_api_token(
                &u,
                "x",
                vec![],
                Some(Duration::from_secs(400 * 86_400)),
                &u.scopes,
            )
            .unwrap_err();
        assert!(err.to_string().contains("365 days"), "{err}");
    }

    /// A user holding `user:read` and `user:list`, with an API token carrying both.
    fn reader_with_token(f: &Fixture, name: &str) -> (UserRecord, IssuedToken) {
        let u = f
            .core
            .add_user(name, "", None, vec!["user:read".into(), "user:list".into()])
            .unwrap();
        let t = f
            .core
            .create_api_token(&u, "t", u.scopes.clone(), None, &u.scopes)
            .unwrap();
        (u, t)
    }

    #[test]
    fn changes_committed_by_another_process_reach_cached_callers_at_once() {
        let f = fixture();
        let (u, t) = reader_with_token(&f, "kim");
        let token = t.token.expose_secret();
        // A second store on the same file stands for another process, such as the admin CLI.
        let other = SqliteStore::open(&f._dir.path().join("m.db")).unwrap();
        let first = f.core.authenticate(token).unwrap();
        let again = f.core.authenticate(token).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged store serves from the cache"
        );
        assert_eq!(f.core.store().data_version(), f.core.store().data_version());

        other
            .set_scopes(&u.id, &["user:read".into()], now_secs())
            .unwrap();
        let demoted = f.core.authenticate(token).unwrap();
        assert_eq!(
            demoted.scopes,
            ["user:read"],
            "a scope change is seen at once"
        );

        f.core.authority().reload().unwrap();
        let reloaded = f.core.authenticate(token).unwrap();
        assert!(
            !Arc::ptr_eq(&demoted, &reloaded),
            "after a key reload the token is verified again"
        );

        other.revoke_token(&t.record.jti, now_secs()).unwrap();
        let err = f.core.authenticate(token).unwrap_err();
        assert!(
            matches!(err, Error::Token(TokenProblem::Revoked)),
            "a revocation by another process is seen at once: {err:?}"
        );
    }

    #[test]
    fn demoting_a_user_shrinks_live_tokens_and_revoke_all_kills_them() {
        let f = fixture();
        let (u, t) = reader_with_token(&f, "eve");
        f.core
            .store()
            .set_scopes(&u.id, &["user:read".into()], now_secs())
            .unwrap();
        assert_eq!(
            f.core.authenticate(t.token.expose_secret()).unwrap().scopes,
            ["user:read"]
        );
        f.core.revoke_all_of(&u.id).unwrap();
        let err = f.core.authenticate(t.token.expose_secret()).unwrap_err();
        assert!(
            matches!(err, Error::Token(TokenProblem::SubjectRevoked)),
            "{err}"
        );
    }

    #[test]
    fn revoking_someone_elses_token_looks_like_it_does_not_exist() {
        let f = fixture();
        let a = f.core.add_user("fred", "", None, vec![]).unwrap();
        let t = f.core.create_api_token(&a, "t", vec![], None, &[]).unwrap();
        let err = f
            .core
            .revoke_token(&t.record.jti, Some("someone-else"))
            .unwrap_err();
        assert!(matches!(err, Error::UnknownToken(_)));
        f.core.revoke_token(&t.record.jti, Some(&a.id)).unwrap();
        let err = f.core.authenticate(t.token.expose_secret()).unwrap_err();
        assert!(matches!(err, Error::Token(TokenProblem::Revoked)), "{err}");
    }

    #[test]
    fn refresh_session_rotates_and_reuse_revokes() {
        let f = fixture();
        f.core
            .add_user("gail", "", Some(&pw("password1")), vec![])
            .unwrap();
        let s1 = f.core.sign_in("gail", &pw("password1"), "p").unwrap();
        let s2 = f.core.refresh_session(&s1.refresh_token).unwrap();
        assert_eq!(s2.session_id, s1.session_id);
        f.core
            .authenticate(s2.access_token.expose_secret())
            .unwrap();
        let err = f.core.refresh_session(&s1.refresh_token).unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
        let err = f
            .core
            .authenticate(s2.access_token.expose_secret())
            .unwrap_err();
        assert!(
            matches!(err, Error::Token(TokenProblem::SessionRevoked)),
            "{err}"
        );
        let err = f.core.refresh_session(&s2.refresh_token).unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    #[test]
    fn user_names_are_validated() {
        let f = fixture();
        for bad in ["", "has space", "x".repeat(65).as_str(), "semi;colon"] {
            let err = f.core.add_user(bad, "", None, vec![]).unwrap_err();
            assert!(err.to_string().contains("user name"), "{bad}: {err}");
        }
        let err = f
            .core
            .add_user("ok", "", None, vec!["Bad:Scope".into()])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidScope(_)));
    }

    /// A user with a password and scopes, signed in once.
    fn signed_in(f: &Fixture, name: &str, scopes: &[&str]) -> (UserRecord, NewSession) {
        let u = f
            .core
            .add_user(
                name,
                "",
                Some(&pw("password1")),
                scopes.iter().map(|s| (*s).to_owned()).collect(),
            )
            .unwrap();
        let s = f.core.sign_in(name, &pw("password1"), "p").unwrap();
        (u, s)
    }

    fn refused_as(f: &Fixture, token: &SecretString, problem: TokenProblem) {
        let err = f.core.authenticate(token.expose_secret()).unwrap_err();
        assert!(
            matches!(err, Error::Token(ref p) if *p == problem),
            "{problem:?} expected: {err}"
        );
    }

    #[test]
    fn a_password_change_ends_every_session_refresh_token_and_token_issued_before() {
        let f = fixture();
        let (u, s) = signed_in(&f, "ivy", &["user:read"]);
        let api = f
            .core
            .create_api_token(&u, "ci", vec![], None, &u.scopes)
            .unwrap();
        f.core.set_password(&u.id, &pw("password2")).unwrap();
        // The refresh token would otherwise mint access tokens for 30 days.
        let err = f.core.refresh_session(&s.refresh_token).unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        refused_as(&f, &s.access_token, TokenProblem::SessionRevoked);
        refused_as(&f, &api.token, TokenProblem::SubjectRevoked);
        // Within the same second, what comes after the change works: the cutoff is exact.
        let after = f.core.sign_in("ivy", &pw("password2"), "p").unwrap();
        f.core
            .authenticate(after.access_token.expose_secret())
            .unwrap();
        f.core.refresh_session(&after.refresh_token).unwrap();
    }

    #[test]
    fn revoking_everything_of_a_user_is_exact_and_ends_refreshes() {
        let f = fixture();
        let (u, s) = signed_in(&f, "jay", &["user:read"]);
        let caller = f.core.authenticate(s.access_token.expose_secret()).unwrap();
        f.core.revoke_all_of(&u.id).unwrap();
        assert!(f.core.refresh_session(&s.refresh_token).is_err());
        // RefreshUserToken with an access token that authenticated just before the
        // revocation finds its session ended.
        let err = f.core.refresh_access(&caller).unwrap_err();
        assert!(
            matches!(err, Error::Token(TokenProblem::SessionRevoked)),
            "{err}"
        );
        // A token created a moment later, in the same second, works.
        let u = f.core.find_user(&u.id).unwrap();
        let fresh = f
            .core
            .create_api_token(&u, "after", vec![], None, &u.scopes)
            .unwrap();
        f.core.authenticate(fresh.token.expose_secret()).unwrap();
    }

    #[test]
    fn a_token_authenticated_before_a_password_change_cannot_outlive_it() {
        let f = fixture();
        let (_u, s) = signed_in(&f, "kat", &["user:read"]);
        let caller = f.core.authenticate(s.access_token.expose_secret()).unwrap();
        // The change commits between the authentication and the handler's work.
        f.core
            .set_password(&caller.user_id, &pw("password2"))
            .unwrap();
        let api = f
            .core
            .create_own_api_token(&caller, "late", vec![], None)
            .unwrap();
        refused_as(&f, &api.token, TokenProblem::SubjectRevoked);
    }

    #[test]
    fn deleting_a_user_ends_its_refresh_tokens() {
        let f = fixture();
        let (u, s) = signed_in(&f, "lee", &[]);
        assert!(f.core.delete_user(None, &u.id).unwrap());
        assert!(f.core.refresh_session(&s.refresh_token).is_err());
        refused_as(&f, &s.access_token, TokenProblem::NotIssued);
        assert!(!f.core.delete_user(None, &u.id).unwrap());
    }

    #[test]
    fn a_refresh_after_a_scope_removal_mints_only_current_scopes() {
        let f = fixture();
        let (u, s) = signed_in(&f, "max", &["user:read", "user:list"]);
        f.core
            .set_user_scopes(None, &u.id, &["user:read".into()])
            .unwrap();
        let next = f.core.refresh_session(&s.refresh_token).unwrap();
        let claims = manta_auth::inspect(next.access_token.expose_secret()).unwrap();
        let carried = claims.scopes().unwrap().to_strings();
        assert_eq!(carried, ["user:read"]);
        assert_eq!(
            f.core
                .authenticate(s.access_token.expose_secret())
                .unwrap()
                .scopes,
            ["user:read"],
            "a live token loses the scope at once"
        );
    }

    #[test]
    fn api_tokens_need_a_recent_password_sign_in() {
        let f = fixture();
        let (u, s) = signed_in(&f, "ned", &["user:read"]);
        let caller = f.core.authenticate(s.access_token.expose_secret()).unwrap();
        f.core
            .create_own_api_token(&caller, "fresh", vec!["user:read".into()], None)
            .unwrap();

        // An API token cannot create another one.
        let api = f
            .core
            .create_api_token(&u, "ci", vec!["user:read".into()], None, &u.scopes)
            .unwrap();
        let api_caller = f.core.authenticate(api.token.expose_secret()).unwrap();
        let err = f
            .core
            .create_own_api_token(&api_caller, "child", vec![], None)
            .unwrap_err();
        assert!(
            matches!(err, Error::ReauthenticationRequired(_))
                && err.to_string().contains("manta login"),
            "{err}"
        );

        // A session that signed in longer ago than `recent_auth` (refreshes do not count).
        let now = now_secs();
        let old = SessionRecord {
            id: new_id(),
            user_id: u.id.clone(),
            created_at: now - 16 * 60,
            expires_at: now + 3600,
            revoked_at: None,
            generation: u.generation,
        };
        f.core
            .store()
            .create_session(&old, "d-old", now + 60)
            .unwrap();
        let access = f.core.issue_access(&u, &old, now).unwrap();
        let old_caller = f.core.authenticate(access.token.expose_secret()).unwrap();
        let err = f
            .core
            .create_own_api_token(&old_caller, "late", vec![], None)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("16 minutes ago") && text.contains("more than 15"),
            "{text}"
        );
    }

    #[test]
    fn a_jti_re_signed_under_another_subject_or_expiry_is_refused() {
        use aws_lc_rs::hmac;
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let secret = "0123456789abcdef0123456789abcdef";
        let f = fixture_with(SigningMode::Hs256(SecretString::from(secret)));
        let (_alice, s) = signed_in(&f, "alice", &["user:read"]);
        let root = f
            .core
            .add_user("root", "", None, vec![scopes::ADMIN.into()])
            .unwrap();
        // What a holder of the shared secret can do with one of alice's tokens.
        let forge = |edit: &dyn Fn(&mut serde_json::Value)| {
            let token = s.access_token.expose_secret();
            let mut parts = token.split('.');
            let header = parts.next().unwrap();
            let mut claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                    .unwrap();
            edit(&mut claims);
            let body = format!(
                "{header}.{}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
            );
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
            let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&key, body.as_bytes()));
            SecretString::from(format!("{body}.{sig}"))
        };
        // The forger's tool works: an unchanged re-signature is accepted.
        let same = forge(&|_| {});
        f.core.authenticate(same.expose_secret()).unwrap();
        let as_root = forge(&|c| c["sub"] = root.id.clone().into());
        refused_as(&f, &as_root, TokenProblem::NotIssued);
        let longer = forge(&|c| c["exp"] = (c["exp"].as_i64().unwrap() + 3600).into());
        refused_as(&f, &longer, TokenProblem::NotIssued);
    }

    #[test]
    fn nobody_changes_or_removes_a_user_who_holds_more_than_they_do() {
        let f = fixture();
        let root = f
            .core
            .add_user("root", "", None, vec![scopes::ADMIN.into()])
            .unwrap();
        let helpdesk: Vec<String> = vec!["user:update".into(), "user:delete".into()];
        let err = f
            .core
            .set_user_scopes(Some(&helpdesk), &root.id, &[])
            .unwrap_err();
        assert!(
            matches!(err, Error::Outranked { ref user, ref scope } if user == "root" && scope == "admin:*"),
            "{err}"
        );
        let err = f.core.delete_user(Some(&helpdesk), &root.id).unwrap_err();
        assert!(matches!(err, Error::Outranked { .. }), "{err}");
        assert_eq!(f.core.find_user("root").unwrap().scopes, ["admin:*"]);
        // Granting what one does not hold is refused too.
        let plain = f.core.add_user("plain", "", None, vec![]).unwrap();
        let err = f
            .core
            .set_user_scopes(Some(&helpdesk), &plain.id, &["cluster:*".into()])
            .unwrap_err();
        assert!(matches!(err, Error::ScopeNotHeld(_)), "{err}");
        f.core
            .set_user_scopes(Some(&helpdesk), &plain.id, &["user:update".into()])
            .unwrap();
        // The root itself, the last administrator, cannot step down.
        let admin = vec![scopes::ADMIN.to_owned()];
        let err = f
            .core
            .set_user_scopes(Some(&admin), &root.id, &["user:read".into()])
            .unwrap_err();
        assert!(matches!(err, Error::LastAdmin), "{err}");
        assert!(matches!(
            f.core.delete_user(None, &root.id),
            Err(Error::LastAdmin)
        ));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let f = fixture();
        f.core
            .add_user("hal", "", Some(&pw("password1")), vec![])
            .unwrap();
        let s = f.core.sign_in("hal", &pw("password1"), "p").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(s.access_token.expose_secret()));
        assert!(!shown.contains(s.refresh_token.expose_secret()));
        assert!(shown.contains("[REDACTED]"));
    }
}
