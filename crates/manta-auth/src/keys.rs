//! Verification keys (each bound to exactly one algorithm), signing keys, key sets by `kid`
//! and their JWKS form. Keys arrive as raw bytes, DER or JWK JSON; PEM is `manta-tls`'s job.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::jws::{self, Algorithm, Header};

/// A public (or, for HMAC, shared secret) key that verifies signatures of exactly one
/// algorithm. The binding is what makes algorithm confusion impossible: a token whose header
/// names another algorithm than the key's is refused before any cryptography runs.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    material: Material,
}

#[derive(Clone)]
enum Material {
    /// Everything `jsonwebtoken` implements. `DecodingKey` zeroizes itself on drop.
    Jwt(DecodingKey),
    /// ES512, which `jsonwebtoken` 11 does not implement: the uncompressed P-521 point.
    P521(Vec<u8>),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // HMAC keys are secrets; public keys are not, but printing them helps nobody.
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("material", &"[REDACTED]")
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidKey {
        reason: reason.into(),
    }
}

const fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// The result of [`VerifyingKey::verify_compact`]: a header and payload whose signature is
/// valid. No claim has been checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedJws {
    /// The checked header.
    pub header: Header,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
}

impl VerifyingKey {
    /// An Ed25519 public key (32 raw bytes) for EdDSA.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the key is not 32 bytes.
    pub fn ed25519(kid: impl Into<String>, public: &[u8]) -> Result<Self, Error> {
        if public.len() != 32 {
            return Err(invalid(format!(
                "an Ed25519 public key is 32 bytes, got {}; pass the raw key, not DER or PEM",
                public.len()
            )));
        }
        Ok(Self::jwt(
            kid,
            Algorithm::EdDSA,
            DecodingKey::from_ed_der(public),
        ))
    }

    /// An ECDSA public key as an uncompressed point (`04 || x || y`): 65 bytes for ES256,
    /// 97 for ES384, 133 for ES512.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `alg` is not an ECDSA algorithm or the point has the wrong
    /// length or form.
    pub fn ec_point(kid: impl Into<String>, alg: Algorithm, point: &[u8]) -> Result<Self, Error> {
        let want = match alg {
            Algorithm::ES256 => 65,
            Algorithm::ES384 => 97,
            Algorithm::ES512 => 133,
            other => return Err(invalid(format!("{other} is not an ECDSA algorithm"))),
        };
        if point.len() != want || point[0] != 4 {
            return Err(invalid(format!(
                "an {alg} public key is an uncompressed point of {want} bytes starting with 0x04"
            )));
        }
        if alg == Algorithm::ES512 {
            return Ok(Self {
                kid: kid.into(),
                alg,
                material: Material::P521(point.to_vec()),
            });
        }
        Ok(Self::jwt(kid, alg, DecodingKey::from_ec_der(point)))
    }

    /// An RSA public key from its big-endian modulus and exponent, for RS256/384/512 or
    /// PS256/384/512. The modulus must be at least 2048 bits.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `alg` is not an RSA algorithm or the modulus is too short.
    pub fn rsa(kid: impl Into<String>, alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, Error> {
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) {
            return Err(invalid(format!("{alg} is not an RSA algorithm")));
        }
        let n_trim = n.iter().position(|&b| b != 0).map_or(&[][..], |i| &n[i..]);
        if n_trim.len() < 256 {
            return Err(invalid(
                "RSA moduli shorter than 2048 bits are refused; use a larger key",
            ));
        }
        if e.is_empty() || e.len() > 8 {
            return Err(invalid("the RSA public exponent is missing or too large"));
        }
        Ok(Self::jwt(
            kid,
            alg,
            DecodingKey::from_rsa_raw_components(n, e),
        ))
    }

    /// An RSA public key from DER, either PKCS#1 `RSAPublicKey` (RFC 8017) or
    /// `SubjectPublicKeyInfo` (RFC 5280), for RS256/384/512 or PS256/384/512. `manta-tls`
    /// turns PEM into this DER.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the DER is not an RSA public key, or as [`VerifyingKey::rsa`].
    pub fn rsa_der(kid: impl Into<String>, alg: Algorithm, der: &[u8]) -> Result<Self, Error> {
        let public = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| invalid("not an RSA public key in PKCS#1 or SubjectPublicKeyInfo DER"))?;
        let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&public);
        Self::rsa(kid, alg, &parts.n, &parts.e)
    }

    /// A shared HMAC secret for HS256 (at least 32 bytes), HS384 (48) or HS512 (64).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `alg` is not HMAC or the secret is too short.
    pub fn hmac(
        kid: impl Into<String>,
        alg: Algorithm,
        secret: &SecretBox<[u8]>,
    ) -> Result<Self, Error> {
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(invalid(format!("{alg} is not an HMAC algorithm")));
        }
        let len = secret.expose_secret().len();
        let min = min_hmac_len(alg);
        if len < min {
            return Err(invalid(format!(
                "an {alg} secret must be at least {min} bytes, got {len}; generate a random one"
            )));
        }
        Ok(Self::jwt(
            kid,
            alg,
            DecodingKey::from_secret(secret.expose_secret()),
        ))
    }

    fn jwt(kid: impl Into<String>, alg: Algorithm, key: DecodingKey) -> Self {
        Self {
            kid: kid.into(),
            alg,
            material: Material::Jwt(key),
        }
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this is a shared secret (never published in a JWKS).
    #[must_use]
    pub fn is_secret(&self) -> bool {
        matches!(
            self.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        )
    }

    /// The signature layer alone: checks the compact form, the header rules and the
    /// signature, and returns the payload. Claims are not looked at; use
    /// [`crate::Verifier`] for tokens.
    ///
    /// # Errors
    /// Any structural error, [`Error::AlgorithmNotAllowed`] when the header's algorithm is
    /// not this key's, [`Error::UnknownKey`] when the header names another `kid`, and
    /// [`Error::BadSignature`].
    pub fn verify_compact(&self, token: &str) -> Result<VerifiedJws, Error> {
        let parts = jws::split(token, jws::DEFAULT_MAX_TOKEN_LEN)?;
        let header = jws::parse_header(parts.header)?;
        if header.kid.as_deref().is_some_and(|k| k != self.kid) {
            return Err(Error::UnknownKey);
        }
        self.verify_parts(header.alg, parts.signing_input, parts.signature)?;
        let payload = jws::b64(parts.payload, "the payload is not valid base64url")?;
        Ok(VerifiedJws { header, payload })
    }

    /// Checks the algorithm binding and the signature of `signing_input`.
    pub(crate) fn verify_parts(
        &self,
        alg: Algorithm,
        signing_input: &str,
        signature_b64: &str,
    ) -> Result<(), Error> {
        if alg != self.alg {
            return Err(Error::AlgorithmNotAllowed { alg: alg.as_str() });
        }
        match &self.material {
            Material::Jwt(key) => {
                // `to_jwt` is `None` only for ES512, which never uses `Material::Jwt`.
                let Some(jalg) = alg.to_jwt() else {
                    return Err(Error::BadSignature);
                };
                match jsonwebtoken::crypto::verify(
                    signature_b64,
                    signing_input.as_bytes(),
                    key,
                    jalg,
                ) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Error::BadSignature),
                    Err(e) => match e.kind() {
                        jsonwebtoken::errors::ErrorKind::Base64(_) => Err(Error::Malformed {
                            reason: "the signature is not valid base64url",
                        }),
                        _ => Err(Error::BadSignature),
                    },
                }
            }
            Material::P521(point) => {
                let sig = jws::b64(signature_b64, "the signature is not valid base64url")?;
                UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point)
                    .verify(signing_input.as_bytes(), &sig)
                    .map_err(|_| Error::BadSignature)
            }
        }
    }

    /// Parses one JWK (RFC 7517). `use` must be `sig` and `key_ops` must include `verify`
    /// when present; `alg` is required for RSA and `oct` keys and must match the curve for
    /// EC/OKP keys. Private members (`d`, ...) in a public JWK are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] saying which member is wrong.
    pub fn from_jwk_json(json: &str) -> Result<Self, Error> {
        let jwk: JwkIn = serde_json::from_str(json)
            .map_err(|_| invalid("the JWK is not a JSON object with string members"))?;
        Self::from_jwk_in(jwk)
    }

    fn from_jwk_in(jwk: JwkIn) -> Result<Self, Error> {
        if let Some(u) = &jwk.use_
            && u != "sig"
        {
            return Err(invalid("the JWK `use` is not `sig`; use a signing key"));
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.iter().any(|o| o == "verify")
        {
            return Err(invalid("the JWK `key_ops` does not include `verify`"));
        }
        let kid = jwk.kid.unwrap_or_default();
        let alg = jwk
            .alg
            .as_deref()
            .map(Algorithm::from_name)
            .transpose()
            .map_err(|_| invalid("the JWK `alg` is not a supported signature algorithm"))?;
        let b64 = |v: &Option<String>, name: &str| -> Result<Vec<u8>, Error> {
            let s = v
                .as_deref()
                .ok_or_else(|| invalid(format!("the JWK has no `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| invalid(format!("the JWK `{name}` is not valid base64url")))
        };
        match jwk.kty.as_str() {
            "OKP" => {
                if jwk.crv.as_deref() != Some("Ed25519")
                    || alg.is_some_and(|a| a != Algorithm::EdDSA)
                {
                    return Err(invalid(
                        "only OKP keys on Ed25519 with alg EdDSA are supported",
                    ));
                }
                Self::ed25519(kid, &b64(&jwk.x, "x")?)
            }
            "EC" => {
                let (curve_alg, len) = match jwk.crv.as_deref() {
                    Some("P-256") => (Algorithm::ES256, 32),
                    Some("P-384") => (Algorithm::ES384, 48),
                    Some("P-521") => (Algorithm::ES512, 66),
                    _ => return Err(invalid("the JWK `crv` must be P-256, P-384 or P-521")),
                };
                if alg.is_some_and(|a| a != curve_alg) {
                    return Err(invalid("the JWK `alg` does not match its curve"));
                }
                let (x, y) = (b64(&jwk.x, "x")?, b64(&jwk.y, "y")?);
                if x.len() != len || y.len() != len {
                    return Err(invalid(
                        "the JWK `x`/`y` have the wrong length for the curve",
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::ec_point(kid, curve_alg, &point)
            }
            "RSA" => {
                let alg =
                    alg.ok_or_else(|| invalid("an RSA JWK needs `alg` (RS256 or PS256 ...)"))?;
                Self::rsa(kid, alg, &b64(&jwk.n, "n")?, &b64(&jwk.e, "e")?)
            }
            "oct" => {
                let alg = alg.ok_or_else(|| invalid("an oct JWK needs `alg` (HS256 ...)"))?;
                let k = jwk
                    .k
                    .as_ref()
                    .ok_or_else(|| invalid("the JWK has no `k`"))?;
                let bytes = Zeroizing::new(
                    URL_SAFE_NO_PAD
                        .decode(k.expose_secret())
                        .map_err(|_| invalid("the JWK `k` is not valid base64url"))?,
                );
                Self::hmac(kid, alg, &SecretBox::new(bytes.as_slice().into()))
            }
            _ => Err(invalid("the JWK `kty` must be OKP, EC, RSA or oct")),
        }
    }

    /// The public JWK of this key; `None` for HMAC secrets, which are never published.
    #[must_use]
    pub fn to_jwk(&self) -> Option<serde_json::Value> {
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut v = match (&self.material, self.alg) {
            (_, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => return None,
            (Material::P521(p), _) => serde_json::json!({
                "kty": "EC", "crv": "P-521", "x": enc(&p[1..67]), "y": enc(&p[67..]),
            }),
            (Material::Jwt(k), Algorithm::EdDSA) => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": enc(k.try_get_as_bytes().ok()?),
            }),
            (Material::Jwt(k), Algorithm::ES256 | Algorithm::ES384) => {
                let p = k.try_get_as_bytes().ok()?;
                let half = (p.len() - 1) / 2;
                let crv = if self.alg == Algorithm::ES256 {
                    "P-256"
                } else {
                    "P-384"
                };
                serde_json::json!({
                    "kty": "EC", "crv": crv, "x": enc(&p[1..=half]), "y": enc(&p[half + 1..]),
                })
            }
            (Material::Jwt(k), _) => match k.kind() {
                jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } => {
                    serde_json::json!({ "kty": "RSA", "n": enc(n), "e": enc(e) })
                }
                jsonwebtoken::DecodingKeyKind::SecretOrDer(_) => return None,
            },
        };
        v["kid"] = self.kid.clone().into();
        v["alg"] = self.alg.as_str().into();
        v["use"] = "sig".into();
        Some(v)
    }
}

#[derive(Deserialize)]
struct JwkIn {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    k: Option<SecretString>,
}

/// A private key that signs with one algorithm, plus its public half.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    public: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &"[REDACTED]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh random Ed25519 key (EdDSA), from the operating system's random source.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the random source fails.
    pub fn generate_ed25519(kid: impl Into<String>) -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(seed.as_mut_slice())
            .map_err(|_| invalid("the system random source failed"))?;
        Self::ed25519_from_seed(kid, &SecretBox::new(Box::new(*seed)))
    }

    /// An Ed25519 key from its 32-byte seed (the private key in RFC 8032 terms).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the seed is rejected.
    pub fn ed25519_from_seed(
        kid: impl Into<String>,
        seed: &SecretBox<[u8; 32]>,
    ) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose_secret())
            .map_err(|_| invalid("the Ed25519 seed was rejected"))?;
        let pkcs8 = pair
            .to_pkcs8()
            .map_err(|_| invalid("the Ed25519 key could not be encoded"))?;
        let public = VerifyingKey::ed25519("", pair.public_key().as_ref())?;
        Ok(Self::build(
            kid.into(),
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            public,
        ))
    }

    /// An Ed25519 key from PKCS#8 DER (v1 or v2).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the DER is not an Ed25519 PKCS#8 key.
    pub fn ed25519_from_pkcs8(
        kid: impl Into<String>,
        der: &SecretBox<[u8]>,
    ) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(der.expose_secret())
            .map_err(|_| invalid("not an Ed25519 PKCS#8 DER key; convert PEM with manta-tls"))?;
        let public = VerifyingKey::ed25519("", pair.public_key().as_ref())?;
        Ok(Self::build(
            kid.into(),
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(der.expose_secret()),
            public,
        ))
    }

    /// A fresh random P-256 key (ES256).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if key generation fails.
    pub fn generate_es256(kid: impl Into<String>) -> Result<Self, Error> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| invalid("P-256 key generation failed"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| invalid("the P-256 key could not be encoded"))?;
        Self::es256_from_pkcs8(kid, &SecretBox::new(pkcs8.as_ref().into()))
    }

    /// A P-256 key (ES256) from PKCS#8 DER.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the DER is not a P-256 PKCS#8 key.
    pub fn es256_from_pkcs8(kid: impl Into<String>, der: &SecretBox<[u8]>) -> Result<Self, Error> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.expose_secret())
            .map_err(|_| invalid("not a P-256 PKCS#8 DER key; convert PEM with manta-tls"))?;
        let public = VerifyingKey::ec_point("", Algorithm::ES256, pair.public_key().as_ref())?;
        Ok(Self::build(
            kid.into(),
            Algorithm::ES256,
            EncodingKey::from_ec_der(der.expose_secret()),
            public,
        ))
    }

    /// An HS256 shared secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the secret is shorter than 32 bytes.
    pub fn hs256(kid: impl Into<String>, secret: &SecretBox<[u8]>) -> Result<Self, Error> {
        let public = VerifyingKey::hmac("", Algorithm::HS256, secret)?;
        Ok(Self::build(
            kid.into(),
            Algorithm::HS256,
            EncodingKey::from_secret(secret.expose_secret()),
            public,
        ))
    }

    fn build(kid: String, alg: Algorithm, encoding: EncodingKey, mut public: VerifyingKey) -> Self {
        public.kid.clone_from(&kid);
        Self {
            kid,
            alg,
            encoding,
            public,
        }
    }

    /// The key id put in the header of every token this key signs.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key that verifies this key's signatures.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `signing_input` and returns the base64url signature.
    pub(crate) fn sign_b64(&self, signing_input: &[u8]) -> Result<String, Error> {
        // Every algorithm a `SigningKey` can hold is implemented by jsonwebtoken.
        let Some(alg) = self.alg.to_jwt() else {
            return Err(Error::Signing {
                reason: "algorithm not implemented".into(),
            });
        };
        jsonwebtoken::crypto::sign(signing_input, &self.encoding, alg).map_err(|e| Error::Signing {
            reason: e.to_string(),
        })
    }
}

/// Verification keys by `kid`, each optionally retired at a time after which it is dropped
/// by [`KeySet::prune`] (key rotation keeps old public keys until their last token expires).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, (VerifyingKey, Option<SystemTime>)>,
}

#[derive(Serialize, Deserialize)]
struct Jwks<T> {
    keys: Vec<T>,
}

impl KeySet {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key that stays until removed.
    pub fn insert(&mut self, key: VerifyingKey) {
        self.keys.insert(key.kid.clone(), (key, None));
    }

    /// Adds (or replaces) a key that [`KeySet::prune`] removes once `until` has passed.
    pub fn insert_until(&mut self, key: VerifyingKey, until: SystemTime) {
        self.keys.insert(key.kid.clone(), (key, Some(until)));
    }

    /// Removes the key with this `kid`, returning whether it was present.
    pub fn remove(&mut self, kid: &str) -> bool {
        self.keys.remove(kid).is_some()
    }

    /// Drops retired keys whose time has passed.
    pub fn prune(&mut self, now: SystemTime) {
        self.keys
            .retain(|_, (_, until)| until.is_none_or(|t| t > now));
    }

    /// The key with this `kid`.
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|(k, _)| k)
    }

    /// The key for a token header: by `kid`, or the only key when the header has none.
    pub(crate) fn select(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next().map(|(k, _)| k),
            None => None,
        }
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// All keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.values().map(|(k, _)| k)
    }

    /// Parses a JWKS document (`{"keys":[...]}`). Every key must be valid and have a `kid`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] naming the position of the first bad key.
    pub fn from_jwks_json(json: &str) -> Result<Self, Error> {
        let jwks: Jwks<serde_json::Value> = serde_json::from_str(json)
            .map_err(|_| invalid("the JWKS is not a JSON object with a `keys` array"))?;
        let mut set = Self::new();
        for (i, v) in jwks.keys.into_iter().enumerate() {
            let jwk: JwkIn = serde_json::from_value(v)
                .map_err(|_| invalid(format!("JWKS key #{i} is not a valid JWK object")))?;
            let key = VerifyingKey::from_jwk_in(jwk).map_err(|e| match e {
                Error::InvalidKey { reason } => invalid(format!("JWKS key #{i}: {reason}")),
                other => other,
            })?;
            if key.kid.is_empty() {
                return Err(invalid(format!("JWKS key #{i} has no `kid`")));
            }
            if set.keys.contains_key(&key.kid) {
                return Err(invalid(format!("JWKS key #{i} repeats a `kid`")));
            }
            set.insert(key);
        }
        Ok(set)
    }

    /// The public keys as a JWKS document, sorted by `kid`. HMAC secrets are left out.
    #[must_use]
    pub fn to_jwks_json(&self) -> String {
        let mut keys: Vec<_> = self.iter().filter_map(VerifyingKey::to_jwk).collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::to_string(&Jwks { keys }).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(n: usize) -> SecretBox<[u8]> {
        SecretBox::new(vec![7u8; n].into_boxed_slice())
    }

    #[test]
    fn hmac_keys_shorter_than_the_hash_are_refused() {
        let e = VerifyingKey::hmac("k", Algorithm::HS256, &secret(31))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 32 bytes, got 31"), "{e}");
        assert!(SigningKey::hs256("k", &secret(31)).is_err());
        assert!(VerifyingKey::hmac("k", Algorithm::HS512, &secret(63)).is_err());
        assert!(VerifyingKey::hmac("k", Algorithm::HS256, &secret(32)).is_ok());
        assert!(VerifyingKey::hmac("k", Algorithm::ES256, &secret(32)).is_err());
    }

    #[test]
    fn bad_key_shapes_are_refused_with_a_reason() {
        assert!(
            VerifyingKey::ed25519("k", &[0; 31])
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        assert!(VerifyingKey::ec_point("k", Algorithm::ES256, &[4; 64]).is_err());
        assert!(VerifyingKey::ec_point("k", Algorithm::EdDSA, &[4; 65]).is_err());
        let e = VerifyingKey::rsa("k", Algorithm::RS256, &[0xff; 128], &[1, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("2048 bits"), "{e}");
        assert!(VerifyingKey::rsa("k", Algorithm::HS256, &[0xff; 256], &[1, 0, 1]).is_err());
    }

    #[test]
    fn debug_never_prints_key_material() {
        let s =
            SigningKey::hs256("kid-1", &SecretBox::new(vec![0xAB; 32].into_boxed_slice())).unwrap();
        let dbg = format!("{s:?} {:?}", s.verifying_key());
        assert!(dbg.contains("[REDACTED]") && dbg.contains("kid-1"));
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("abab"),
            "{dbg}"
        );
    }

    #[test]
    fn jwks_round_trip_keeps_public_keys_and_drops_secrets() {
        let ed = SigningKey::generate_ed25519("ed").unwrap();
        let ec = SigningKey::generate_es256("ec").unwrap();
        let hs = SigningKey::hs256("hs", &secret(32)).unwrap();
        let mut set = KeySet::new();
        for k in [&ed, &ec, &hs] {
            set.insert(k.verifying_key().clone());
        }
        let json = set.to_jwks_json();
        assert!(!json.contains("\"k\""), "secret leaked into JWKS: {json}");
        let back = KeySet::from_jwks_json(&json).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.get("ed").unwrap().algorithm(), Algorithm::EdDSA);
        assert_eq!(back.get("ec").unwrap().algorithm(), Algorithm::ES256);
        assert_eq!(back.to_jwks_json(), json);
    }

    #[test]
    fn rsa_der_keys_verify_rs256_and_export_as_jwk() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = VerifyingKey::rsa_der("r", Algorithm::RS256, spki.as_ref()).unwrap();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"r"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(key.verify_compact(&token).unwrap().payload, b"{}");
        let jwk = key.to_jwk().unwrap().to_string();
        let back = VerifyingKey::from_jwk_json(&jwk).unwrap();
        assert!(back.verify_compact(&token).is_ok());
        let e = VerifyingKey::rsa_der("r", Algorithm::RS256, b"junk")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an RSA public key"), "{e}");
    }

    #[test]
    fn jwk_rules() {
        let e = |j: &str| VerifyingKey::from_jwk_json(j).unwrap_err().to_string();
        assert!(e(r#"{"kty":"oct","alg":"HS256","k":"AAAA"}"#).contains("at least 32 bytes"));
        assert!(e(r#"{"kty":"oct","k":"AAAA"}"#).contains("needs `alg`"));
        assert!(e(r#"{"kty":"EC","crv":"P-256","use":"enc","x":"","y":""}"#).contains("`use`"));
        assert!(
            e(r#"{"kty":"EC","crv":"P-256","key_ops":["encrypt"],"x":"","y":""}"#)
                .contains("key_ops")
        );
        assert!(
            e(r#"{"kty":"EC","crv":"P-256","alg":"ES384","x":"","y":""}"#)
                .contains("match its curve")
        );
        assert!(e(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#).contains("needs `alg`"));
        assert!(e(r#"{"kty":"XYZ"}"#).contains("kty"));
        assert!(e(r#"{"kty":"OKP","crv":"Ed25519","x":"!!"}"#).contains("base64url"));
        assert!(e("[]").contains("not a JSON object"));
        let j = KeySet::from_jwks_json(
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#,
        );
        assert!(j.unwrap_err().to_string().contains("no `kid`"));
    }

    #[test]
    fn prune_drops_only_expired_retired_keys() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let mut set = KeySet::new();
        set.insert(
            SigningKey::generate_ed25519("current")
                .unwrap()
                .verifying_key()
                .clone(),
        );
        set.insert_until(
            SigningKey::generate_ed25519("old")
                .unwrap()
                .verifying_key()
                .clone(),
            t0,
        );
        set.prune(t0 - std::time::Duration::from_secs(1));
        assert_eq!(set.len(), 2);
        set.prune(t0);
        assert!(set.get("old").is_none() && set.get("current").is_some());
    }
}
