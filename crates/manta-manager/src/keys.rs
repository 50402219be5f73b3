//! Token signing keys and the token authority: EdDSA (default) or HS256 keys kept in the
//! store, rotation, and issuing and verifying through manta-auth's `Issuer` and `Verifier`
//! (claims, explicit `typ` per kind, algorithm bound to each key, JWKS).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use manta_auth::{
    Clock, Issuer, KeySet, SharedClock, SigningKey, SystemClock, TokenRequest, Verifier,
    VerifierConfig, VerifyingKey,
};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::scopes;
use crate::store::{SigningKeyRecord, Store, TokenKind, new_id, secs_of};

/// How tokens are signed.
#[derive(Debug, Clone)]
pub enum SigningMode {
    /// Ed25519 keys generated and stored by the manager, published as a JWK set.
    EdDsa,
    /// HMAC-SHA256 with a shared secret from configuration, for deployments whose other
    /// verifiers can only share a secret. Nothing is published in the JWK set.
    Hs256(SecretString),
}

/// The audience of every token this manager issues and accepts.
pub const AUDIENCE: &str = "manta";

/// What the manager needs from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Subject: the user id.
    pub sub: String,
    /// Token id.
    pub jti: String,
    /// Access or API token.
    pub kind: TokenKind,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
}

/// A freshly signed token with the claims the store records.
pub struct Signed {
    /// The JWT, shown to its holder once.
    pub token: SecretString,
    /// Its id.
    pub jti: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("token", &"[REDACTED]")
            .field("jti", &self.jti)
            .field("exp", &self.exp)
            .finish()
    }
}

/// Why a presented token was not accepted; the messages go to the client as UNAUTHENTICATED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No `authorization` metadata.
    Missing,
    /// Not a JWT, or not valid UTF-8 or base64.
    Malformed,
    /// A JWT whose time claim (`exp`, `nbf`, `iat`) is not an integer or out of range.
    BadClaim,
    /// The signature does not verify, or the algorithm is not allowed.
    BadSignature,
    /// A `kid` this manager does not know (or a key retired too long ago).
    UnknownKey,
    /// Past its `exp`.
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// Issued by someone else.
    WrongIssuer,
    /// Well signed but not in this manager's records (for example from a wiped database).
    NotIssued,
    /// Revoked by id.
    Revoked,
    /// A token of a kind the user API does not take (refresh or node tokens).
    WrongKind,
    /// Its session ended (logout or refresh-token reuse).
    SessionRevoked,
    /// All tokens of the user issued before some instant were revoked (password change,
    /// `token revoke --all`, user deleted).
    SubjectRevoked,
}

impl TokenProblem {
    /// The client-facing message: what is wrong and what to do.
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Missing => {
                "missing token: send a JWT in the `authorization` metadata (sign in to get one)"
            }
            TokenProblem::Malformed => {
                "malformed token: the `authorization` metadata is not a JWT; copy the whole token"
            }
            TokenProblem::BadClaim => {
                "invalid token: a time claim (exp, nbf or iat) is not an integer or lies past the year 9999; sign in again for a token from this manager"
            }
            TokenProblem::BadSignature => {
                "invalid token signature: the token was altered or signed by another manager; sign in again"
            }
            TokenProblem::UnknownKey => {
                "token signed with an unknown key: the key was rotated out; sign in again"
            }
            TokenProblem::Expired => "expired token: refresh it or sign in again",
            TokenProblem::NotYetValid => {
                "token not valid yet: check the clocks of client and manager"
            }
            TokenProblem::WrongIssuer => "token from another issuer: use a token from this manager",
            TokenProblem::NotIssued => {
                "unknown token: this manager has no record of it; sign in again"
            }
            TokenProblem::Revoked => "revoked token: sign in again or create a new token",
            TokenProblem::WrongKind => {
                "wrong token kind: the user API takes access or api tokens; sign in to get one"
            }
            TokenProblem::SessionRevoked => {
                "revoked token: its session was logged out or revoked; sign in again"
            }
            TokenProblem::SubjectRevoked => {
                "revoked token: all earlier tokens of this user were revoked; sign in again"
            }
        }
    }
}

struct State {
    issuer: Issuer,
    verifier: Verifier,
    jwks: String,
}

/// Signs and verifies the manager's tokens with the current key set.
pub struct Authority {
    store: Arc<dyn Store>,
    mode: SigningMode,
    issuer: String,
    /// How long a retired key keeps verifying: the longest lifetime of any token.
    retention_secs: i64,
    state: RwLock<Arc<State>>,
    /// Tokens whose signature and claims verified, by SHA-256 of the token, until their
    /// `exp`. Signature checks dominate the cost of authorization; the store's revocation
    /// check still runs on every call, so revocation stays immediate. Cleared on key reload,
    /// so a key that leaves the set stops verifying at once.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Bumped by every [`Authority::reload`], so caches of verified tokens kept elsewhere
    /// (`Core`'s callers) know the key set may have changed.
    generation: AtomicU64,
    /// The manager's one clock: token times, key retention and every record's timestamp.
    clock: SharedClock,
}

/// Most cached verifications; the cache is emptied when it would grow past this.
const VERIFIED_CACHE: usize = 16_384;

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("issuer", &self.issuer)
            .field("keys", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// The `kid` of the configured HS256 secret.
const HS256_KID: &str = "hs256";

fn manta_kind(kind: TokenKind) -> manta_auth::TokenKind {
    match kind {
        TokenKind::Access => manta_auth::TokenKind::UserAccess,
        TokenKind::Api => manta_auth::TokenKind::Api,
    }
}

fn problem_of(e: &manta_auth::Error) -> TokenProblem {
    use manta_auth::Error as E;
    match e {
        E::AlgorithmNotAllowed { .. } | E::BadSignature => TokenProblem::BadSignature,
        E::UnknownKey => TokenProblem::UnknownKey,
        E::Expired { .. } => TokenProblem::Expired,
        E::NotYetValid { .. } => TokenProblem::NotYetValid,
        E::WrongIssuer { .. } | E::WrongAudience { .. } => TokenProblem::WrongIssuer,
        E::WrongKind { .. } => TokenProblem::WrongKind,
        E::Revoked => TokenProblem::Revoked,
        E::BadClaim { .. } => TokenProblem::BadClaim,
        _ => TokenProblem::Malformed,
    }
}

fn key_err(e: &manta_auth::Error) -> Error {
    Error::Key(e.to_string())
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

impl Authority {
    /// Loads the key set, creating the first EdDSA key when the store has none, on the
    /// system clock.
    pub fn open(
        store: Arc<dyn Store>,
        mode: SigningMode,
        issuer: &str,
        retention_secs: i64,
    ) -> Result<Self> {
        Self::open_with_clock(
            store,
            mode,
            issuer,
            retention_secs,
            manta_auth::system_clock(),
        )
    }

    /// As [`Authority::open`] on `clock`, which then times everything the manager built on
    /// this authority does (tokens, sessions, nodes, audit).
    pub fn open_with_clock(
        store: Arc<dyn Store>,
        mode: SigningMode,
        issuer: &str,
        retention_secs: i64,
        clock: SharedClock,
    ) -> Result<Self> {
        if matches!(mode, SigningMode::EdDsa) && store.signing_keys()?.is_empty() {
            rotate_at(store.as_ref(), clock.as_ref())?;
        }
        let state = load(store.as_ref(), &mode, issuer, retention_secs, &clock)?;
        Ok(Authority {
            store,
            mode,
            issuer: issuer.to_owned(),
            retention_secs,
            state: RwLock::new(Arc::new(state)),
            verified: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            clock,
        })
    }

    /// The clock every time in this manager comes from.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// [`Authority::clock`]'s time in unix seconds.
    pub(crate) fn now_secs(&self) -> i64 {
        secs_of(self.clock.as_ref())
    }

    /// Re-reads the keys, so a `keys rotate` by the CLI reaches a running server.
    pub fn reload(&self) -> Result<()> {
        let state = load(
            self.store.as_ref(),
            &self.mode,
            &self.issuer,
            self.retention_secs,
            &self.clock,
        )?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes whenever the keys are re-read; what was verified under another generation
    /// must be verified again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The issuer name put in `iss` and required on verification.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a token of `kind` for `subject` with these scopes and lifetime.
    pub fn sign(
        &self,
        kind: TokenKind,
        subject: &str,
        token_scopes: &[String],
        lifetime: Duration,
    ) -> Result<Signed> {
        let set = scopes::set_of(token_scopes)?;
        let request = TokenRequest::new(manta_kind(kind), subject)
            .scopes(set)
            .lifetime(lifetime);
        let issued = self
            .current()
            .issuer
            .issue(&request)
            .map_err(|e| key_err(&e))?;
        let c = &issued.claims;
        let (Some(jti), Some(iat), Some(exp)) = (c.jti.clone(), c.iat, c.exp) else {
            return Err(Error::Key("the issuer left out jti, iat or exp".into()));
        };
        Ok(Signed {
            token: issued.token,
            jti,
            iat: secs(iat),
            exp: secs(exp),
        })
    }

    /// Verifies signature, algorithm, kind, issuer, audience and time claims; store checks
    /// (revocation, sessions) come after.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenProblem> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.now_secs();
        if let Some(hit) = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .filter(|v| v.exp > now)
        {
            return Ok(hit.clone());
        }
        let verified = self.verify_uncached(token)?;
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(digest, verified.clone());
        Ok(verified)
    }

    fn verify_uncached(&self, token: &str) -> Result<Verified, TokenProblem> {
        let inspected = manta_auth::inspect(token).map_err(|e| problem_of(&e))?;
        let kind = match inspected.kind() {
            Some(manta_auth::TokenKind::UserAccess) => TokenKind::Access,
            Some(manta_auth::TokenKind::Api) => TokenKind::Api,
            _ => return Err(TokenProblem::WrongKind),
        };
        let verified = self
            .current()
            .verifier
            .verify(token, manta_kind(kind))
            .map_err(|e| problem_of(&e))?;
        let c = verified.claims;
        let (Some(sub), Some(jti), Some(exp)) = (c.sub, c.jti, c.exp) else {
            return Err(TokenProblem::Malformed);
        };
        Ok(Verified {
            sub,
            jti,
            kind,
            scopes: c.permissions,
            iat: secs(c.iat.unwrap_or(0)),
            exp: secs(exp),
        })
    }

    /// The public keys as an RFC 7517 JWK set (empty in HS256 mode).
    pub fn jwks(&self) -> String {
        self.current().jwks.clone()
    }

    /// Signs any token request; node bootstrap and identity tokens (registry.rs) use it.
    pub(crate) fn issue_request(&self, request: &TokenRequest) -> Result<manta_auth::IssuedToken> {
        self.current()
            .issuer
            .issue(request)
            .map_err(|e| key_err(&e))
    }

    /// Verifies a token of one kind; `allow_expired` accepts a correctly signed token past
    /// its `exp` (RenewNodeToken applies its own grace window).
    pub(crate) fn verify_kind(
        &self,
        token: &str,
        kind: manta_auth::TokenKind,
        allow_expired: bool,
    ) -> Result<manta_auth::Claims, TokenProblem> {
        let state = self.current();
        let verified = if allow_expired {
            state.verifier.verify_allow_expired(token, kind)
        } else {
            state.verifier.verify(token, kind)
        };
        verified.map(|v| v.claims).map_err(|e| problem_of(&e))
    }
}

/// Generates a new EdDSA key, stores it and retires the previous ones (they keep verifying).
/// Returns the new `kid`. Timed by the system clock (the admin command's).
pub fn rotate(store: &dyn Store) -> Result<String> {
    rotate_at(store, &SystemClock)
}

/// As [`rotate`], timed by `clock`.
pub fn rotate_at(store: &dyn Store, clock: &dyn Clock) -> Result<String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| Error::Key(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| Error::Key(e.to_string()))?;
    let now = secs_of(clock);
    let record = SigningKeyRecord {
        kid: new_id()[..16].to_owned(),
        alg: "EdDSA".into(),
        private_der: SecretBox::new(Box::new(pkcs8.as_ref().to_vec())),
        public: pair.public_key().as_ref().to_vec(),
        created_at: now,
        retired_at: None,
    };
    store.add_signing_key(&record, now)?;
    Ok(record.kid)
}

fn at(unix: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0))
}

fn load(
    store: &dyn Store,
    mode: &SigningMode,
    issuer: &str,
    retention_secs: i64,
    clock: &SharedClock,
) -> Result<State> {
    let (signing, keys) = match mode {
        SigningMode::Hs256(secret) => {
            let bytes = secret.expose_secret().as_bytes();
            if bytes.len() < 32 {
                return Err(Error::Config(
                    "the HS256 secret is shorter than 32 bytes; generate one with `openssl rand -hex 32`"
                        .into(),
                ));
            }
            let boxed: SecretBox<[u8]> = SecretBox::new(bytes.to_vec().into_boxed_slice());
            let key = SigningKey::hs256(HS256_KID, &boxed).map_err(|e| key_err(&e))?;
            let mut keys = KeySet::new();
            keys.insert(key.verifying_key().clone());
            (key, keys)
        }
        SigningMode::EdDsa => {
            let now = secs_of(clock.as_ref());
            let records = store.signing_keys()?;
            let Some(active) = records
                .iter()
                .find(|k| k.retired_at.is_none() && k.alg == "EdDSA")
            else {
                return Err(Error::Key(
                    "no active EdDSA signing key in the store".into(),
                ));
            };
            let der: SecretBox<[u8]> = SecretBox::new(
                active
                    .private_der
                    .expose_secret()
                    .clone()
                    .into_boxed_slice(),
            );
            let signing = SigningKey::ed25519_from_pkcs8(active.kid.clone(), &der)
                .map_err(|e| key_err(&e))?;
            let mut keys = KeySet::new();
            for key in records.iter().filter(|k| k.alg == "EdDSA") {
                let public =
                    VerifyingKey::ed25519(key.kid.clone(), &key.public).map_err(|e| key_err(&e))?;
                // Saturating: `retention_secs` comes from configuration and may be huge.
                match key.retired_at.map(|r| r.saturating_add(retention_secs)) {
                    None => keys.insert(public),
                    Some(until) if until > now => keys.insert_until(public, at(until)),
                    Some(_) => {}
                }
            }
            (signing, keys)
        }
    };
    let jwks = keys.to_jwks_json();
    let verifier = Verifier::new(VerifierConfig::new(issuer, AUDIENCE), keys)
        .map_err(|e| key_err(&e))?
        .with_clock(Arc::clone(clock));
    let issuer = Issuer::new(issuer, AUDIENCE, signing)
        .map_err(|e| key_err(&e))?
        .with_clock(Arc::clone(clock));
    Ok(State {
        issuer,
        verifier,
        jwks,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::store::SqliteStore;

    fn setup_named(
        mode: SigningMode,
        issuer: &str,
    ) -> (tempfile::TempDir, Arc<dyn Store>, Authority) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let auth = Authority::open(Arc::clone(&store), mode, issuer, 3600).unwrap();
        (dir, store, auth)
    }

    fn setup(mode: SigningMode) -> (tempfile::TempDir, Arc<dyn Store>, Authority) {
        setup_named(mode, "manta-test")
    }

    fn sign(auth: &Authority) -> Signed {
        auth.sign(
            TokenKind::Api,
            "u1",
            &["user:read".into()],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn eddsa_round_trip_and_tampering_is_detected() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        let signed = sign(&auth);
        let token = signed.token.expose_secret();
        let v = auth.verify(token).unwrap();
        assert_eq!(
            (v.sub.as_str(), v.kind, v.scopes.clone()),
            ("u1", TokenKind::Api, vec!["user:read".to_owned()])
        );
        assert_eq!((v.jti.clone(), v.exp), (signed.jti.clone(), signed.exp));
        // A flipped signature character (mid-signature, so the base64 stays well formed).
        let mut tampered: Vec<char> = token.chars().collect();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert_eq!(auth.verify(&tampered), Err(TokenProblem::BadSignature));
        // Escalated scopes in the payload with the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["permissions"] = serde_json::json!(["admin:*"]);
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let forged = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(auth.verify(&forged), Err(TokenProblem::BadSignature));
        assert_eq!(auth.verify("not-a-jwt"), Err(TokenProblem::Malformed));
    }

    #[test]
    fn access_tokens_carry_their_kind() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        let t = auth
            .sign(TokenKind::Access, "u1", &[], Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            auth.verify(t.token.expose_secret()).unwrap().kind,
            TokenKind::Access
        );
    }

    #[test]
    fn a_token_for_another_issuer_is_refused_as_such() {
        let (_d, store, a) = setup_named(SigningMode::EdDsa, "manager-a");
        let b = Authority::open(store, SigningMode::EdDsa, "manager-b", 3600).unwrap();
        let token = sign(&a);
        assert_eq!(
            b.verify(token.token.expose_secret()),
            Err(TokenProblem::WrongIssuer)
        );
    }

    #[test]
    fn rotated_keys_keep_verifying_old_tokens_and_jwks_lists_both() {
        let (_d, store, auth) = setup(SigningMode::EdDsa);
        let old = sign(&auth);
        let kid = rotate(store.as_ref()).unwrap();
        auth.reload().unwrap();
        let new = sign(&auth);
        let header = new
            .token
            .expose_secret()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["kid"], kid.as_str());
        auth.verify(old.token.expose_secret()).unwrap();
        auth.verify(new.token.expose_secret()).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&auth.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert!(
            !auth.jwks().contains("\"d\""),
            "no private part in the JWK set"
        );
    }

    #[test]
    fn a_token_from_another_manager_is_an_unknown_key() {
        let (_d1, _s1, a) = setup(SigningMode::EdDsa);
        let (_d2, _s2, b) = setup(SigningMode::EdDsa);
        let token = sign(&a);
        assert_eq!(
            b.verify(token.token.expose_secret()),
            Err(TokenProblem::UnknownKey)
        );
    }

    #[test]
    fn hs256_mode_signs_with_the_shared_secret_and_refuses_short_ones() {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let (_d, _s, auth) = setup(SigningMode::Hs256(secret));
        let token = sign(&auth);
        let header = token
            .token
            .expose_secret()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
        auth.verify(token.token.expose_secret()).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&auth.jwks()).unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            0,
            "secrets are never published"
        );

        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let err = Authority::open(
            store,
            SigningMode::Hs256(SecretString::from("short")),
            "i",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("openssl rand"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        assert!(format!("{auth:?}").contains("[REDACTED]"));
        let signed = sign(&auth);
        let shown = format!("{signed:?}");
        assert!(!shown.contains(signed.token.expose_secret()) && shown.contains("[REDACTED]"));
    }
}
