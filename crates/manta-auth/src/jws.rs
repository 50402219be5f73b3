//! Compact JWS parsing: the cheap structural pre-checks done before any signature work
//! (size cap, compact form only, strict base64url, header rules, duplicate keys).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserializer as _;
use serde::de::{MapAccess, Visitor};

use crate::claims::{Key, NoDuplicates};
use crate::error::Error;

/// JWS signature algorithms this crate can name. Which of them a verifier accepts is decided
/// per key (see [`crate::VerifyingKey`]) and by the verifier's allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256 (keys of at least 32 bytes).
    HS256,
    /// HMAC with SHA-384 (keys of at least 48 bytes).
    HS384,
    /// HMAC with SHA-512 (keys of at least 64 bytes).
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys or larger).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Algorithms accepted by a default [`crate::VerifierConfig`]: the four Manta issues.
    pub const MANTA_DEFAULT: [Algorithm; 4] = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ];

    const ALL: [Algorithm; 13] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The JOSE name (`alg` value).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name.
    ///
    /// # Errors
    /// [`Error::AlgorithmNotAllowed`] for `none` and for names this crate does not know.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        if name.eq_ignore_ascii_case("none") {
            return Err(Error::AlgorithmNotAllowed { alg: "none" });
        }
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or(Error::AlgorithmNotAllowed { alg: "unknown" })
    }

    /// The matching `jsonwebtoken` algorithm; `None` for ES512, which it does not implement
    /// (this crate verifies ES512 with aws-lc-rs directly).
    pub(crate) const fn to_jwt(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as J;
        Some(match self {
            Self::HS256 => J::HS256,
            Self::HS384 => J::HS384,
            Self::HS512 => J::HS512,
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
            Self::ES512 => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JOSE header fields this crate acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The media type (`typ`), which carries the token kind for Manta tokens.
    pub typ: Option<String>,
}

/// The default hard cap on token length in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// A compact JWS split into its parts (still base64url).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

const fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Splits a compact JWS, refusing anything that is not exactly three base64url parts
/// (header and signature non-empty) no longer than `max_len` in total.
pub(crate) fn split(token: &str, max_len: usize) -> Result<Compact<'_>, Error> {
    if token.len() > max_len {
        return Err(Error::TooLarge {
            len: token.len(),
            max: max_len,
        });
    }
    if token.is_empty() {
        return Err(Error::Malformed {
            reason: "the token is empty",
        });
    }
    if token.trim_start().starts_with('{') {
        return Err(Error::Malformed {
            reason: "JSON serialization is not accepted, only the compact form",
        });
    }
    let bytes = token.as_bytes();
    let mut dots = [0usize; 2];
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' {
            if n == 2 {
                return Err(Error::Malformed {
                    reason: "expected three dot-separated parts (encrypted or nested tokens are \
                             not accepted)",
                });
            }
            dots[n] = i;
            n += 1;
        } else if !is_b64url(b) {
            return Err(Error::Malformed {
                reason: "the token contains a character outside the base64url alphabet",
            });
        }
    }
    if n != 2 {
        return Err(Error::Malformed {
            reason: "expected three dot-separated parts",
        });
    }
    let (header, rest) = token.split_at(dots[0]);
    let payload = &rest[1..dots[1] - dots[0]];
    let signature = &token[dots[1] + 1..];
    if header.is_empty() {
        return Err(Error::Malformed {
            reason: "the header part is empty",
        });
    }
    // An empty payload is a valid JWS (RFC 7515 allows it); claims parsing refuses it later.
    if signature.is_empty() {
        return Err(Error::Malformed {
            reason: "the signature part is empty",
        });
    }
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input: &token[..dots[1]],
    })
}

/// Strict base64url (no padding, no whitespace, canonical trailing bits).
pub(crate) fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::Malformed { reason: what })
}

/// Decodes and checks the header.
pub(crate) fn parse_header(part: &str) -> Result<Header, Error> {
    let json = b64(part, "the header is not valid base64url")?;
    parse_header_json(&json)
}

pub(crate) fn parse_header_json(json: &[u8]) -> Result<Header, Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw = de
        .deserialize_map(HeaderVisitor)
        .map_err(|_| Error::Malformed {
            reason: "the header is not a JSON object",
        })?;
    de.end().map_err(|_| Error::Malformed {
        reason: "the header has data after the JSON object",
    })?;
    if raw.duplicate {
        return Err(Error::Malformed {
            reason: "the header has a duplicate JSON key",
        });
    }
    if let Some(param) = raw.forbidden {
        return Err(Error::ForbiddenHeader { param });
    }
    let alg = match raw.alg {
        Some(name) => Algorithm::from_name(&name)?,
        None => {
            return Err(Error::Malformed {
                reason: "the header has no `alg`",
            });
        }
    };
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

#[derive(Default)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    forbidden: Option<&'static str>,
    duplicate: bool,
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut h = RawHeader::default();
        let mut seen: Vec<Key<'de>> = Vec::with_capacity(4);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            h.duplicate |= seen.iter().any(|k| k.0 == key.0);
            match key.0.as_ref() {
                "alg" => h.alg = Some(map.next_value()?),
                "kid" => h.kid = Some(map.next_value()?),
                "typ" => h.typ = Some(map.next_value()?),
                // We understand no `crit` extension, so any `crit` means a rule we would
                // silently skip (RFC 7515 §4.1.11). Embedded keys and key URLs would let the
                // token choose its own verification key.
                name @ ("crit" | "jwk" | "jku" | "x5u" | "x5c" | "b64") => {
                    h.forbidden.get_or_insert(match name {
                        "crit" => "crit",
                        "jwk" => "jwk",
                        "jku" => "jku",
                        "x5u" => "x5u",
                        "x5c" => "x5c",
                        _ => "b64",
                    });
                    h.duplicate |= map.next_value::<NoDuplicates>()?.0;
                }
                _ => h.duplicate |= map.next_value::<NoDuplicates>()?.0,
            }
            seen.push(key);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<Header, Error> {
        parse_header_json(json.as_bytes())
    }

    #[test]
    fn split_rules() {
        let check = |t: &str, needle: &str| {
            let e = split(t, 64).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: `{e}` lacks `{needle}`");
            assert!(!e.contains(t) || t.len() < 3, "error echoes the token: {e}");
        };
        check("", "empty");
        check("a.b", "three");
        check("a.b.c.d.e", "three");
        check("a.b.c.d", "three");
        check(".b.c", "header part is empty");
        assert_eq!(split("a..c", 64).unwrap().payload, "");
        check("a.b.", "signature part is empty");
        check("a.b=.c", "base64url");
        check("a.b c.d", "base64url");
        check(r#"{"payload":"x"}"#, "JSON serialization");
        check(&"a".repeat(65), "65 bytes, above the 64-byte limit");
        let ok = split("aa.bb.cc", 64).unwrap();
        assert_eq!(
            (ok.header, ok.payload, ok.signature, ok.signing_input),
            ("aa", "bb", "cc", "aa.bb")
        );
    }

    #[test]
    fn header_rules() {
        assert_eq!(
            header(r#"{"alg":"EdDSA","kid":"k"}"#)
                .unwrap()
                .kid
                .as_deref(),
            Some("k")
        );
        let e = |j: &str| header(j).unwrap_err().to_string();
        assert!(e(r#"{"alg":"none"}"#).contains("algorithm none is not accepted"));
        assert!(e(r#"{"alg":"NONE"}"#).contains("algorithm none"));
        assert!(e(r#"{"alg":"HS1"}"#).contains("algorithm unknown"));
        assert!(e(r#"{"kid":"k"}"#).contains("no `alg`"));
        assert!(e(r#"{"alg":"HS256","alg":"HS256"}"#).contains("duplicate"));
        assert!(e(r#"{"alg":"HS256","crit":["exp"]}"#).contains("`crit`"));
        assert!(e(r#"{"alg":"ES256","jwk":{"kty":"EC"}}"#).contains("`jwk`"));
        assert!(e(r#"{"alg":"RS256","jku":"https://x"}"#).contains("`jku`"));
        assert!(e(r#"{"alg":"RS256","x5u":"https://x"}"#).contains("`x5u`"));
        assert!(e(r#"{"alg":"RS256","x":{"a":1,"a":2}}"#).contains("duplicate"));
        assert!(e(r#"[1]"#).contains("not a JSON object"));
        assert!(e(r#"{"alg":5}"#).contains("not a JSON object"));
    }
}
