//! Issuing tokens (used by the manager): sign with the current key, set `kid`, a fresh `jti`
//! and the kind; rotate keys while keeping old public keys until their last token expires.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

use crate::claims::{Audience, Claims, MAX_TIME_CLAIM, TokenKind};
use crate::clock::{self, SharedClock};
use crate::error::Error;
use crate::keys::{KeySet, SigningKey, VerifyingKey};
use crate::scope::ScopeSet;
use crate::verify::at;

/// Default lifetimes per kind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Lifetimes {
    /// User access tokens (default 15 minutes).
    pub access: Duration,
    /// Refresh tokens (default 30 days).
    pub refresh: Duration,
    /// API tokens (default 90 days).
    pub api: Duration,
    /// Node bootstrap tokens (default 1 day).
    pub node_bootstrap: Duration,
    /// Node identity tokens (default 1 day).
    pub node_identity: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * DAY),
            api: Duration::from_secs(90 * DAY),
            node_bootstrap: Duration::from_secs(DAY),
            node_identity: Duration::from_secs(DAY),
        }
    }
}

impl Lifetimes {
    /// The lifetime for `kind`.
    #[must_use]
    pub fn for_kind(&self, kind: TokenKind) -> Duration {
        match kind {
            TokenKind::UserAccess => self.access,
            TokenKind::Refresh => self.refresh,
            TokenKind::Api => self.api,
            TokenKind::NodeBootstrap => self.node_bootstrap,
            TokenKind::NodeIdentity => self.node_identity,
        }
    }
}

/// What to put in a new token; the issuer fills in `iss`, `aud`, `iat`, `nbf`, `exp`,
/// `jti` and `kind`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The kind of token.
    pub kind: TokenKind,
    /// The subject (`sub`): user name, API token owner or node id.
    pub subject: String,
    /// The role name (`role`), informational.
    pub role: Option<String>,
    /// Granted scopes (`permissions`).
    pub scopes: ScopeSet,
    /// Node tokens: `node_id`.
    pub node_id: Option<String>,
    /// Node tokens: `cluster_id`.
    pub cluster_id: Option<String>,
    /// Node tokens: `issued_version` (must grow on each renewal).
    pub issued_version: Option<u64>,
    /// Overrides the kind's default lifetime.
    pub lifetime: Option<Duration>,
}

impl TokenRequest {
    /// A request for `kind` about `subject`, with no scopes.
    #[must_use]
    pub fn new(kind: TokenKind, subject: impl Into<String>) -> Self {
        Self {
            kind,
            subject: subject.into(),
            role: None,
            scopes: ScopeSet::default(),
            node_id: None,
            cluster_id: None,
            issued_version: None,
            lifetime: None,
        }
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the node claims (`node_id`, `cluster_id`, `issued_version`).
    #[must_use]
    pub fn node(
        mut self,
        node_id: impl Into<String>,
        cluster_id: impl Into<String>,
        issued_version: u64,
    ) -> Self {
        self.node_id = Some(node_id.into());
        self.cluster_id = Some(cluster_id.into());
        self.issued_version = Some(issued_version);
        self
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }
}

/// A freshly issued token and its claims.
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWT, to be written to the wire or a 0600 file.
    pub token: SecretString,
    /// The claims it carries.
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[REDACTED]")
            .field("claims", &self.claims)
            .finish()
    }
}

/// Mints tokens with the current signing key.
pub struct Issuer {
    issuer: String,
    audience: String,
    lifetimes: Lifetimes,
    current: SigningKey,
    /// Latest `exp` signed by `current`, so rotation knows how long to keep its public key.
    current_last_exp: AtomicU64,
    retired: Vec<(VerifyingKey, u64)>,
    clock: SharedClock,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("current", &self.current)
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer named `issuer` minting tokens for `audience` with `key`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the issuer or audience is empty or the key has no kid.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        key: SigningKey,
    ) -> Result<Self, Error> {
        let (issuer, audience) = (issuer.into(), audience.into());
        if issuer.is_empty() || audience.is_empty() || key.kid().is_empty() {
            return Err(Error::InvalidConfig {
                reason: "issuer, audience and the signing key's kid must not be empty".into(),
            });
        }
        Ok(Self {
            issuer,
            audience,
            lifetimes: Lifetimes::default(),
            current: key,
            current_last_exp: AtomicU64::new(0),
            retired: Vec::new(),
            clock: clock::system(),
        })
    }

    /// Uses `clock` for `iat`/`exp`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses these default lifetimes.
    #[must_use]
    pub fn with_lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// Signs a new token.
    ///
    /// # Errors
    /// [`Error::Signing`] if the crypto library fails, [`Error::InvalidConfig`] for a zero
    /// lifetime or one that ends after [`MAX_TIME_CLAIM`].
    pub fn issue(&self, req: &TokenRequest) -> Result<IssuedToken, Error> {
        let lifetime = req
            .lifetime
            .unwrap_or_else(|| self.lifetimes.for_kind(req.kind));
        if lifetime.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "token lifetime must be positive".into(),
            });
        }
        let now = self.clock.unix_now();
        let exp = now.saturating_add(lifetime.as_secs().max(1));
        // Every verifier, this crate's included, refuses such a token; say so now.
        if exp > MAX_TIME_CLAIM {
            return Err(Error::InvalidConfig {
                reason: "the token would expire after the year 9999; check the clock and use a shorter lifetime".into(),
            });
        }
        let claims = Claims {
            iss: Some(self.issuer.clone()),
            sub: Some(req.subject.clone()),
            aud: Audience(vec![self.audience.clone()]),
            exp: Some(exp),
            iat: Some(now),
            nbf: Some(now),
            jti: Some(new_jti()?),
            kind: Some(req.kind),
            role: req.role.clone(),
            permissions: req.scopes.to_strings(),
            node_id: req.node_id.clone(),
            cluster_id: req.cluster_id.clone(),
            issued_version: req.issued_version,
        };
        let header = serde_json::json!({
            "alg": self.current.algorithm().as_str(),
            "typ": req.kind.typ(),
            "kid": self.current.kid(),
        });
        let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let json_err = |e: serde_json::Error| Error::Signing {
            reason: e.to_string(),
        };
        let header = serde_json::to_vec(&header).map_err(json_err)?;
        let payload = serde_json::to_vec(&claims).map_err(json_err)?;
        let mut token = format!("{}.{}", enc(&header), enc(&payload));
        let sig = self.current.sign_b64(token.as_bytes())?;
        token.push('.');
        token.push_str(&sig);
        self.current_last_exp.fetch_max(exp, Ordering::Relaxed);
        Ok(IssuedToken {
            token: SecretString::from(token),
            claims,
        })
    }

    /// Makes `new_key` current. The old key's public half stays in [`Issuer::key_set`] until
    /// the last token it signed expires (plus `grace`, typically the verifier's leeway).
    pub fn rotate(&mut self, new_key: SigningKey, grace: Duration) {
        let old = std::mem::replace(&mut self.current, new_key);
        let last = self.current_last_exp.swap(0, Ordering::Relaxed);
        let now = self.clock.unix_now();
        self.retired.retain(|(_, until)| *until > now);
        if last > now.saturating_sub(grace.as_secs()) {
            self.retired.push((
                old.verifying_key().clone(),
                last.saturating_add(grace.as_secs()),
            ));
        }
    }

    /// The current signing key.
    #[must_use]
    pub fn current_key(&self) -> &SigningKey {
        &self.current
    }

    /// The keys a verifier needs: the current one and retired ones still in use.
    #[must_use]
    pub fn key_set(&self) -> KeySet {
        let now = self.clock.unix_now();
        let mut set = KeySet::new();
        for (key, until) in &self.retired {
            if *until > now {
                set.insert_until(key.clone(), at(*until));
            }
        }
        set.insert(self.current.verifying_key().clone());
        set
    }
}

/// A 128-bit random token id in lower-case hex.
///
/// Hex rather than base64url: an id is typed and pasted as a command argument
/// (`token revoke ID`), and one in 64 base64url ids begins with `-`, which every
/// argument parser takes for an option.
fn new_jti() -> Result<String, Error> {
    use std::fmt::Write as _;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Signing {
        reason: "the system random source failed".into(),
    })?;
    let mut id = String::with_capacity(32);
    for byte in b {
        let _ = write!(id, "{byte:02x}");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::new_jti;

    #[test]
    fn token_ids_can_be_passed_as_command_arguments() {
        // 2,000 ids: with base64url, one in 64 began with `-` and was parsed as an option.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let id = new_jti().unwrap();
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
            assert!(seen.insert(id), "a repeated id");
        }
    }
}
