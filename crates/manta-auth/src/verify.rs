//! Token verification: signature with a key bound to one algorithm, then kind, issuer,
//! audience, time claims with separate bounded leeways, and the revocation hook.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::claims::{Claims, MAX_TIME_CLAIM, TokenKind};
use crate::clock::{self, SharedClock};
use crate::error::{Error, KindName};
use crate::jws::{self, Algorithm, Header};
use crate::keys::KeySet;
use crate::scope::{Explanation, ScopeSet};

/// Largest leeway accepted for `exp` or `nbf`: more than this hides real clock problems.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// What a [`Verifier`] requires of every token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// The required `iss`.
    pub issuer: String,
    /// An audience the token's `aud` must contain.
    pub audience: String,
    /// How long after `exp` a token is still accepted (at most [`MAX_LEEWAY`]).
    pub exp_leeway: Duration,
    /// How long before `nbf` a token is already accepted (at most [`MAX_LEEWAY`]).
    pub nbf_leeway: Duration,
    /// Hard cap on the token length in bytes.
    pub max_token_len: usize,
    /// Algorithms accepted at all; each key additionally accepts only its own.
    pub algorithms: Vec<Algorithm>,
}

impl VerifierConfig {
    /// Defaults: 30 s leeways, 8 KiB cap, EdDSA/ES256/RS256/HS256.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            exp_leeway: Duration::from_secs(30),
            nbf_leeway: Duration::from_secs(30),
            max_token_len: jws::DEFAULT_MAX_TOKEN_LEN,
            algorithms: Algorithm::MANTA_DEFAULT.to_vec(),
        }
    }
}

/// Decides whether a correctly signed token has been revoked. Implemented by the manager's
/// store; [`DenyList`] is an in-memory implementation.
pub trait RevocationCheck: Send + Sync {
    /// Whether the token with these (already verified) claims is revoked.
    fn is_revoked(&self, claims: &Claims) -> bool;
}

/// In-memory revocation: denied `jti`s (kept until the token would expire anyway) and
/// "every token of this subject issued before T".
#[derive(Debug, Default)]
pub struct DenyList {
    jtis: RwLock<HashMap<String, u64>>,
    subjects: RwLock<HashMap<String, u64>>,
}

impl DenyList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes one token by `jti`; `exp` (unix seconds) lets [`DenyList::prune`] forget it
    /// once the token could no longer verify.
    pub fn revoke_jti(&self, jti: impl Into<String>, exp: u64) {
        write(&self.jtis).insert(jti.into(), exp);
    }

    /// Revokes every token of `subject` whose `iat` is before `before` (unix seconds), e.g.
    /// on password change or logout-everywhere. Tokens without `iat` are revoked too.
    pub fn revoke_subject_before(&self, subject: impl Into<String>, before: u64) {
        let mut map = write(&self.subjects);
        let e = map.entry(subject.into()).or_insert(0);
        *e = (*e).max(before);
    }

    /// Forgets denied `jti`s whose token expired before `now` (unix seconds).
    pub fn prune(&self, now: u64) {
        write(&self.jtis).retain(|_, exp| *exp >= now);
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of a plain map; the map
    // itself is still valid, so keep going rather than failing every later verification.
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RevocationCheck for DenyList {
    fn is_revoked(&self, claims: &Claims) -> bool {
        if let Some(jti) = &claims.jti
            && read(&self.jtis).contains_key(jti)
        {
            return true;
        }
        if let Some(sub) = &claims.sub
            && let Some(before) = read(&self.subjects).get(sub)
        {
            return claims.iat.is_none_or(|iat| iat < *before);
        }
        false
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The header.
    pub header: Header,
    /// The verified claims.
    pub claims: Claims,
}

impl VerifiedToken {
    /// The token's kind (verified to be the expected one).
    #[must_use]
    pub fn kind(&self) -> Option<TokenKind> {
        self.claims.kind
    }

    /// The granted scopes.
    ///
    /// # Errors
    /// [`Error::InvalidScope`] when the `permissions` claim breaks the grammar.
    pub fn scopes(&self) -> Result<ScopeSet, Error> {
        ScopeSet::parse(&self.claims.permissions)
    }

    /// Requires `scope` and explains which grant satisfied it.
    ///
    /// # Errors
    /// [`Error::InsufficientScope`] or [`Error::InvalidScope`].
    pub fn require(&self, scope: &str) -> Result<Explanation, Error> {
        self.scopes()?.check(scope)
    }
}

/// Verifies tokens against a key set. Cheap to share behind an `Arc`; keys can be replaced
/// at run time with [`Verifier::set_keys`].
pub struct Verifier {
    config: VerifierConfig,
    keys: RwLock<Arc<KeySet>>,
    clock: SharedClock,
    revocation: Option<Arc<dyn RevocationCheck>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("keys", &read(&self.keys).len())
            .field("revocation", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using the system clock and no revocation hook.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a leeway exceeds [`MAX_LEEWAY`], the issuer or audience
    /// is empty, or no algorithm is allowed.
    pub fn new(config: VerifierConfig, keys: KeySet) -> Result<Self, Error> {
        for (name, leeway) in [
            ("exp_leeway", config.exp_leeway),
            ("nbf_leeway", config.nbf_leeway),
        ] {
            if leeway > MAX_LEEWAY {
                return Err(Error::InvalidConfig {
                    reason: format!("{name} is {}s; at most 300s is allowed", leeway.as_secs()),
                });
            }
        }
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "issuer and audience must be set; use the manager's URL or name".into(),
            });
        }
        if config.algorithms.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "allow at least one algorithm".into(),
            });
        }
        Ok(Self {
            config,
            keys: RwLock::new(Arc::new(keys)),
            clock: clock::system(),
            revocation: None,
        })
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Consults `hook` for every token after its signature and claims check out.
    #[must_use]
    pub fn with_revocation(mut self, hook: Arc<dyn RevocationCheck>) -> Self {
        self.revocation = Some(hook);
        self
    }

    /// Replaces the key set (after a JWKS refresh or a key rotation).
    pub fn set_keys(&self, keys: KeySet) {
        *write(&self.keys) = Arc::new(keys);
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn revocation(&self) -> Option<&Arc<dyn RevocationCheck>> {
        self.revocation.as_ref()
    }

    /// Verifies `token` as a token of `kind`.
    ///
    /// # Errors
    /// The typed [`Error`] for the first rule the token breaks.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken, Error> {
        self.verify_inner(token, kind, true)
    }

    /// Like [`Verifier::verify`] but accepts a correctly signed token whose `exp` has passed
    /// (every other rule still applies, including revocation). This is what
    /// `RenewNodeToken` needs: the published node renews with a possibly expired token.
    ///
    /// # Errors
    /// As [`Verifier::verify`], except [`Error::Expired`].
    pub fn verify_allow_expired(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<VerifiedToken, Error> {
        self.verify_inner(token, kind, false)
    }

    fn verify_inner(
        &self,
        token: &str,
        kind: TokenKind,
        check_exp: bool,
    ) -> Result<VerifiedToken, Error> {
        let parts = jws::split(token, self.config.max_token_len)?;
        let header = jws::parse_header(parts.header)?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(Error::AlgorithmNotAllowed {
                alg: header.alg.as_str(),
            });
        }
        {
            let keys = read(&self.keys);
            let key = keys
                .select(header.kid.as_deref())
                .ok_or(Error::UnknownKey)?;
            key.verify_parts(header.alg, parts.signing_input, parts.signature)?;
        }
        let payload = jws::b64(parts.payload, "the payload is not valid base64url")?;
        let claims = Claims::from_json(&payload)?;
        self.check_claims(&header, &claims, kind, check_exp)?;
        Ok(VerifiedToken { header, claims })
    }

    pub(crate) fn check_claims(
        &self,
        header: &Header,
        claims: &Claims,
        kind: TokenKind,
        check_exp: bool,
    ) -> Result<(), Error> {
        if claims.kind != Some(kind) {
            let found = claims.kind.map_or(KindName::Unknown, KindName::Known);
            return Err(Error::WrongKind {
                expected: kind,
                found,
            });
        }
        if header.typ.as_deref() != Some(kind.typ()) {
            return Err(Error::WrongKind {
                expected: kind,
                found: KindName::Unknown,
            });
        }
        if claims.iss.as_deref() != Some(self.config.issuer.as_str()) {
            return Err(Error::WrongIssuer {
                expected: self.config.issuer.clone(),
            });
        }
        if !claims.aud.contains(&self.config.audience) {
            return Err(Error::WrongAudience {
                expected: self.config.audience.clone(),
            });
        }
        let exp = claims.exp.ok_or(Error::BadClaim {
            claim: "exp",
            problem: "missing",
        })?;
        let now = self.clock.unix_now();
        if check_exp && now > exp.saturating_add(self.config.exp_leeway.as_secs()) {
            return Err(Error::Expired {
                expired_at: at(exp),
            });
        }
        if let Some(nbf) = claims.nbf
            && now.saturating_add(self.config.nbf_leeway.as_secs()) < nbf
        {
            return Err(Error::NotYetValid {
                not_before: at(nbf),
            });
        }
        if let Some(hook) = &self.revocation
            && hook.is_revoked(claims)
        {
            return Err(Error::Revoked);
        }
        Ok(())
    }
}

/// `unix` seconds as a time, clamped to [`MAX_TIME_CLAIM`]: claims read from JSON are
/// already bounded, but `Claims` can be built in code, and `UNIX_EPOCH + 2^63 s` overflows
/// `SystemTime` and panics.
pub(crate) fn at(unix: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix.min(MAX_TIME_CLAIM))
}
