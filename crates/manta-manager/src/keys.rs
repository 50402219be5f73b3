//! Token signing keys: EdDSA (default) or HS256, rotation, verification by `kid`, and JWKS.
//!
//! Gap: manta-auth (issue 3) is meant to own issuing, verifying and key sets; it had not
//! published them when this crate was written, so this private module signs and verifies with
//! `jsonwebtoken` directly, keeping the same claim names. Replace it with manta-auth's.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{SigningKeyRecord, Store, new_id, now_secs};

/// How tokens are signed.
#[derive(Debug, Clone)]
pub enum SigningMode {
    /// Ed25519 keys generated and stored by the manager, published as a JWK set.
    EdDsa,
    /// HMAC-SHA256 with a shared secret from configuration, for deployments whose other
    /// verifiers can only share a secret. Nothing is published in the JWK set.
    Hs256(SecretString),
}

/// The claims of every token the manager issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds.
    pub nbf: i64,
    /// Token id, the handle for revocation.
    pub jti: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// `access` or `api`.
    pub kind: String,
    /// The session of an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Claims {
    /// The scopes as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(str::to_owned).collect()
    }
}

/// Why a presented token was not accepted; the messages go to the client as UNAUTHENTICATED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No `authorization` metadata.
    Missing,
    /// Not a JWT, or not valid UTF-8 or base64.
    Malformed,
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
            TokenProblem::SessionRevoked => {
                "revoked token: its session was logged out or revoked; sign in again"
            }
            TokenProblem::SubjectRevoked => {
                "revoked token: all earlier tokens of this user were revoked; sign in again"
            }
        }
    }
}

struct Verifier {
    key: DecodingKey,
    alg: Algorithm,
}

struct KeySet {
    signer_kid: String,
    signer: EncodingKey,
    alg: Algorithm,
    verifiers: HashMap<String, Verifier>,
    jwks: String,
}

/// Signs and verifies the manager's tokens with the current key set.
pub struct Authority {
    store: Arc<dyn Store>,
    mode: SigningMode,
    issuer: String,
    /// How long a retired key keeps verifying: the longest lifetime of any token.
    retention_secs: i64,
    keys: RwLock<Arc<KeySet>>,
}

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

impl Authority {
    /// Loads the key set, creating the first EdDSA key when the store has none.
    pub fn open(
        store: Arc<dyn Store>,
        mode: SigningMode,
        issuer: &str,
        retention_secs: i64,
    ) -> Result<Self> {
        if matches!(mode, SigningMode::EdDsa) && store.signing_keys()?.is_empty() {
            rotate(store.as_ref())?;
        }
        let keys = load(store.as_ref(), &mode, retention_secs)?;
        Ok(Authority {
            store,
            mode,
            issuer: issuer.to_owned(),
            retention_secs,
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Re-reads the keys, so a `keys rotate` by the CLI reaches a running server.
    pub fn reload(&self) -> Result<()> {
        let keys = load(self.store.as_ref(), &self.mode, self.retention_secs)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The issuer name put in `iss` and required on verification.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<SecretString> {
        let keys = self.current();
        let mut header = Header::new(keys.alg);
        header.kid = Some(keys.signer_kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.signer)
            .map(SecretString::from)
            .map_err(|e| Error::Key(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer and time claims; store checks come after.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenProblem> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenProblem::Malformed)?;
        let keys = self.current();
        let kid = header.kid.as_deref().unwrap_or(HS256_KID);
        let verifier = match keys.verifiers.get(kid) {
            Some(v) => v,
            None => return Err(TokenProblem::UnknownKey),
        };
        // The algorithm comes from our key, never from the token header (no alg confusion).
        if header.alg != verifier.alg {
            return Err(TokenProblem::BadSignature);
        }
        let mut validation = Validation::new(verifier.alg);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "jti"]);
        match jsonwebtoken::decode::<Claims>(token, &verifier.key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenProblem::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenProblem::BadSignature,
                _ => TokenProblem::Malformed,
            }),
        }
    }

    /// The public keys as an RFC 7517 JWK set (empty in HS256 mode).
    pub fn jwks(&self) -> String {
        self.current().jwks.clone()
    }
}

/// Generates a new EdDSA key, stores it and retires the previous ones (they keep verifying).
/// Returns the new `kid`.
pub fn rotate(store: &dyn Store) -> Result<String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| Error::Key(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| Error::Key(e.to_string()))?;
    let now = now_secs();
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

fn load(store: &dyn Store, mode: &SigningMode, retention_secs: i64) -> Result<KeySet> {
    if let SigningMode::Hs256(secret) = mode {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < 32 {
            return Err(Error::Config(
                "the HS256 secret is shorter than 32 bytes; generate one with `openssl rand -hex 32`"
                    .into(),
            ));
        }
        let mut verifiers = HashMap::new();
        verifiers.insert(
            HS256_KID.to_owned(),
            Verifier {
                key: DecodingKey::from_secret(bytes),
                alg: Algorithm::HS256,
            },
        );
        return Ok(KeySet {
            signer_kid: HS256_KID.to_owned(),
            signer: EncodingKey::from_secret(bytes),
            alg: Algorithm::HS256,
            verifiers,
            jwks: r#"{"keys":[]}"#.to_owned(),
        });
    }
    let now = now_secs();
    let records = store.signing_keys()?;
    let Some(active) = records
        .iter()
        .find(|k| k.retired_at.is_none() && k.alg == "EdDSA")
    else {
        return Err(Error::Key(
            "no active EdDSA signing key in the store".into(),
        ));
    };
    let mut verifiers = HashMap::new();
    let mut jwks = Vec::new();
    for key in records
        .iter()
        .filter(|k| k.alg == "EdDSA")
        .filter(|k| k.retired_at.is_none_or(|at| at + retention_secs > now))
    {
        let x = URL_SAFE_NO_PAD.encode(&key.public);
        let decoding =
            DecodingKey::from_ed_components(&x).map_err(|e| Error::Key(e.to_string()))?;
        verifiers.insert(
            key.kid.clone(),
            Verifier {
                key: decoding,
                alg: Algorithm::EdDSA,
            },
        );
        jwks.push(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": "EdDSA", "use": "sig",
        }));
    }
    Ok(KeySet {
        signer_kid: active.kid.clone(),
        signer: EncodingKey::from_ed_der(active.private_der.expose_secret()),
        alg: Algorithm::EdDSA,
        verifiers,
        jwks: serde_json::json!({ "keys": jwks }).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn setup(mode: SigningMode) -> (tempfile::TempDir, Arc<dyn Store>, Authority) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let auth = Authority::open(Arc::clone(&store), mode, "manta-test", 3600).unwrap();
        (dir, store, auth)
    }

    fn claims(exp_in: i64) -> Claims {
        let now = now_secs();
        Claims {
            iss: "manta-test".into(),
            sub: "u".into(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: new_id(),
            scope: "user:read".into(),
            kind: "access".into(),
            sid: None,
        }
    }

    #[test]
    fn eddsa_round_trip_and_tampering_is_detected() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        let c = claims(60);
        let token = auth.sign(&c).unwrap();
        assert_eq!(auth.verify(token.expose_secret()).unwrap(), c);
        // A flipped signature character (mid-signature, so the base64 stays well formed).
        let mut tampered: Vec<char> = token.expose_secret().chars().collect();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert_eq!(auth.verify(&tampered), Err(TokenProblem::BadSignature));
        // Escalated scopes in the payload with the original signature.
        let parts: Vec<&str> = token.expose_secret().split('.').collect();
        let mut forged = c.clone();
        forged.scope = "admin:*".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(auth.verify(&forged), Err(TokenProblem::BadSignature));
        assert_eq!(auth.verify("not-a-jwt"), Err(TokenProblem::Malformed));
    }

    #[test]
    fn expired_and_foreign_tokens_are_named() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        let token = auth.sign(&claims(-60)).unwrap();
        assert_eq!(
            auth.verify(token.expose_secret()),
            Err(TokenProblem::Expired)
        );
        let mut other = claims(60);
        other.iss = "someone-else".into();
        let token = auth.sign(&other).unwrap();
        assert_eq!(
            auth.verify(token.expose_secret()),
            Err(TokenProblem::WrongIssuer)
        );
    }

    #[test]
    fn rotated_keys_keep_verifying_old_tokens_and_jwks_lists_both() {
        let (_d, store, auth) = setup(SigningMode::EdDsa);
        let old = auth.sign(&claims(60)).unwrap();
        let kid = rotate(store.as_ref()).unwrap();
        auth.reload().unwrap();
        let new = auth.sign(&claims(60)).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(new.expose_secret())
                .unwrap()
                .kid
                .as_deref(),
            Some(kid.as_str())
        );
        auth.verify(old.expose_secret()).unwrap();
        auth.verify(new.expose_secret()).unwrap();
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
        let token = a.sign(&claims(60)).unwrap();
        assert_eq!(
            b.verify(token.expose_secret()),
            Err(TokenProblem::UnknownKey)
        );
    }

    #[test]
    fn hs256_mode_signs_with_the_shared_secret_and_refuses_short_ones() {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let (_d, _s, auth) = setup(SigningMode::Hs256(secret));
        let token = auth.sign(&claims(60)).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(token.expose_secret())
                .unwrap()
                .alg,
            Algorithm::HS256
        );
        auth.verify(token.expose_secret()).unwrap();
        assert_eq!(auth.jwks(), r#"{"keys":[]}"#);

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
    fn debug_does_not_print_keys() {
        let (_d, _s, auth) = setup(SigningMode::EdDsa);
        assert!(format!("{auth:?}").contains("[REDACTED]"));
    }
}
