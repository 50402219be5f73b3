//! Typed claim set and token kinds, with a strict JSON reader (duplicate keys refused,
//! integer-only time claims) used for every token this crate reads.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The largest time claim (`exp`, `nbf`, `iat`) accepted, in seconds since the Unix epoch:
/// 9999-12-31T23:59:59Z. Bounding the claims here means every later use (conversion to
/// [`std::time::SystemTime`] or milliseconds, `i64` columns, date formatting) is in range.
pub const MAX_TIME_CLAIM: u64 = 253_402_300_799;

/// The distinct kinds of token Manta issues. A token of one kind is refused where another is
/// expected (RFC 8725 §3.11-3.12): the kind is carried both in the `kind` claim and in the
/// header `typ`, and the verifier checks both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A short-lived user access token, sent in `authorization` on every User API call.
    UserAccess,
    /// A refresh token, exchanged for a new access token (and rotated on use).
    Refresh,
    /// A long-lived API token created by a user for automation.
    Api,
    /// A node bootstrap token (the cluster's `jwt_token`), accepted by `RegisterNode`.
    NodeBootstrap,
    /// A node identity token (`Registration.node_token`), renewed by `RenewNodeToken`.
    NodeIdentity,
}

impl TokenKind {
    /// Every kind, for iteration in tests and tables.
    pub const ALL: [TokenKind; 5] = [
        Self::UserAccess,
        Self::Refresh,
        Self::Api,
        Self::NodeBootstrap,
        Self::NodeIdentity,
    ];

    /// The value of the `kind` claim.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserAccess => "access",
            Self::Refresh => "refresh",
            Self::Api => "api",
            Self::NodeBootstrap => "node-bootstrap",
            Self::NodeIdentity => "node",
        }
    }

    /// The value of the JOSE header `typ` for this kind (explicit typing, RFC 8725 §3.11).
    #[must_use]
    pub const fn typ(self) -> &'static str {
        match self {
            Self::UserAccess => "manta-access+jwt",
            Self::Refresh => "manta-refresh+jwt",
            Self::Api => "manta-api+jwt",
            Self::NodeBootstrap => "manta-node-bootstrap+jwt",
            Self::NodeIdentity => "manta-node+jwt",
        }
    }

    /// Parses a `kind` claim value; `None` for values this crate does not know.
    #[must_use]
    pub fn from_claim(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `aud` claim: one or more audiences. Serialized as a string when there is exactly one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether `name` is one of the audiences.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// The claims of a Manta token.
///
/// Time claims are whole seconds since the Unix epoch; a token whose `exp`, `nbf` or `iat`
/// is not a non-negative JSON integer of at most [`MAX_TIME_CLAIM`] is refused. Unknown
/// claims are ignored, but duplicate keys anywhere in the payload are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer (`iss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject (`sub`): the user name, API token owner or node id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audiences (`aud`).
    #[serde(skip_serializing_if = "audience_is_empty")]
    pub aud: Audience,
    /// Expiry (`exp`), seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at (`iat`), seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before (`nbf`), seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Unique token id (`jti`), used by revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The token kind (`kind`); `None` when absent or unknown.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_kind")]
    pub kind: Option<TokenKind>,
    /// The user's role name (`role`), informational.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Granted scopes (`permissions`), in the grammar of [`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Node tokens: the node id (`node_id`); the published node checks it is unchanged on
    /// renewal and uses it as its MQTT client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Node tokens: the cluster the node belongs to (`cluster_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Node tokens: a counter that must strictly increase on each renewal (`issued_version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_version: Option<u64>,
}

fn audience_is_empty(a: &Audience) -> bool {
    a.0.is_empty()
}

#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes a reference to the field"
)]
fn ser_kind<S: Serializer>(kind: &Option<TokenKind>, s: S) -> Result<S::Ok, S::Error> {
    match kind {
        Some(k) => s.serialize_str(k.as_str()),
        None => s.serialize_none(),
    }
}

impl Claims {
    /// Claims with only the kind set; fill in the rest with the public fields or use
    /// [`crate::TokenRequest`] when issuing.
    #[must_use]
    pub fn new(kind: TokenKind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// Parses a decoded (not base64) JWT payload with the strict rules described on
    /// [`Claims`].
    ///
    /// # Errors
    /// [`Error::Malformed`] for invalid JSON, non-object payloads, duplicate keys or wrongly
    /// typed standard claims; [`Error::BadClaim`] for non-integer, negative or out-of-range
    /// (above [`MAX_TIME_CLAIM`]) time claims.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let parsed = ClaimsSeed
            .deserialize(&mut de)
            .map_err(|_| Error::Malformed {
                reason: "the payload is not a JSON object with correctly typed claims",
            })?;
        de.end().map_err(|_| Error::Malformed {
            reason: "the payload has data after the JSON object",
        })?;
        match parsed.problem {
            None => Ok(parsed.claims),
            Some(Problem::Duplicate) => Err(Error::Malformed {
                reason: "the payload has a duplicate JSON key",
            }),
            Some(Problem::Time(claim, problem)) => Err(Error::BadClaim { claim, problem }),
        }
    }
}

/// A problem found while reading, reported after parsing so that it maps to a typed error
/// rather than to serde's stringly errors.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Problem {
    Duplicate,
    Time(&'static str, &'static str),
}

struct ParsedClaims {
    claims: Claims,
    problem: Option<Problem>,
}

struct ClaimsSeed;

impl<'de> DeserializeSeed<'de> for ClaimsSeed {
    type Value = ParsedClaims;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ParsedClaims, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = ParsedClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParsedClaims, A::Error> {
        let mut c = Claims::default();
        let mut problem = None;
        let mut seen_known: u32 = 0;
        let mut seen_other: Vec<Key<'de>> = Vec::new();
        let note = |p: Problem, problem: &mut Option<Problem>| {
            problem.get_or_insert(p);
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let bit = match key.0.as_ref() {
                "iss" => 0,
                "sub" => 1,
                "aud" => 2,
                "exp" => 3,
                "iat" => 4,
                "nbf" => 5,
                "jti" => 6,
                "kind" => 7,
                "role" => 8,
                "permissions" => 9,
                "node_id" => 10,
                "cluster_id" => 11,
                "issued_version" => 12,
                _ => {
                    if seen_other.iter().any(|k| k.0 == key.0) {
                        note(Problem::Duplicate, &mut problem);
                    }
                    if map.next_value::<NoDuplicates>()?.0 {
                        note(Problem::Duplicate, &mut problem);
                    }
                    seen_other.push(key);
                    continue;
                }
            };
            if seen_known & (1 << bit) != 0 {
                note(Problem::Duplicate, &mut problem);
            }
            seen_known |= 1 << bit;
            match bit {
                0 => c.iss = Some(map.next_value()?),
                1 => c.sub = Some(map.next_value()?),
                2 => c.aud = map.next_value::<AudienceIn>()?.0,
                3 | 4 | 5 | 12 => {
                    let name = match bit {
                        3 => "exp",
                        4 => "iat",
                        5 => "nbf",
                        _ => "issued_version",
                    };
                    match map.next_value::<IntClaim>()? {
                        // A time past the bound is refused here, once, so that no later
                        // conversion of a verified or inspected claim can overflow.
                        IntClaim::Ok(v) if bit != 12 && v > MAX_TIME_CLAIM => note(
                            Problem::Time(name, "out of range (after the year 9999)"),
                            &mut problem,
                        ),
                        IntClaim::Ok(v) => match bit {
                            3 => c.exp = Some(v),
                            4 => c.iat = Some(v),
                            5 => c.nbf = Some(v),
                            _ => c.issued_version = Some(v),
                        },
                        IntClaim::Bad(why) => note(Problem::Time(name, why), &mut problem),
                    }
                }
                6 => c.jti = Some(map.next_value()?),
                7 => {
                    let kind: Key<'de> = map.next_value()?;
                    c.kind = TokenKind::from_claim(&kind.0);
                }
                8 => c.role = Some(map.next_value()?),
                9 => c.permissions = map.next_value()?,
                10 => c.node_id = Some(map.next_value()?),
                _ => c.cluster_id = Some(map.next_value()?),
            }
        }
        Ok(ParsedClaims { claims: c, problem })
    }
}

/// A JSON object key (or short string), borrowed from the input when it has no escapes.
#[derive(Debug)]
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer claim: accepted only as a non-negative JSON integer.
enum IntClaim {
    Ok(u64),
    Bad(&'static str),
}

impl<'de> Deserialize<'de> for IntClaim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IntClaim;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntClaim, E> {
                Ok(IntClaim::Ok(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntClaim, E> {
                Ok(u64::try_from(v).map_or(IntClaim::Bad("negative"), IntClaim::Ok))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IntClaim, E> {
                Ok(IntClaim::Bad(
                    "not an integer (fractions and exponents are refused)",
                ))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IntClaim, E> {
                Ok(IntClaim::Bad("a string, not an integer"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IntClaim, E> {
                Ok(IntClaim::Bad("a boolean, not an integer"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IntClaim, E> {
                Ok(IntClaim::Bad("null, not an integer"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IntClaim, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(IntClaim::Bad("an array, not an integer"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IntClaim, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(IntClaim::Bad("an object, not an integer"))
            }
        }
        d.deserialize_any(V)
    }
}

struct AudienceIn(Audience);

impl<'de> Deserialize<'de> for AudienceIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AudienceIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AudienceIn, E> {
                Ok(AudienceIn(Audience(vec![v.to_owned()])))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AudienceIn, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(AudienceIn(Audience(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value, walked only to find duplicate keys in nested objects. The flag is `true`
/// when a duplicate was found.
pub(crate) struct NoDuplicates(pub(crate) bool);

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDuplicates;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
                let mut dup = false;
                while let Some(v) = seq.next_element::<NoDuplicates>()? {
                    dup |= v.0;
                }
                Ok(NoDuplicates(dup))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
                let mut dup = false;
                let mut keys: Vec<Key<'de>> = Vec::new();
                while let Some(k) = map.next_key::<Key<'de>>()? {
                    dup |= keys.iter().any(|seen| seen.0 == k.0);
                    dup |= map.next_value::<NoDuplicates>()?.0;
                    keys.push(k);
                }
                Ok(NoDuplicates(dup))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Result<(), &str>) {
        let got = Claims::from_json(json.as_bytes());
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(needle)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(needle),
                    "{json}: error `{msg}` lacks `{needle}`"
                );
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn reads_all_claims() {
        let c = Claims::from_json(
            br#"{"iss":"m","sub":"n1","aud":["a","b"],"exp":20,"iat":10,"nbf":10,"jti":"j",
                "kind":"node","role":"r","permissions":["execute_tasks"],"node_id":"n1",
                "cluster_id":"c","issued_version":3,"extra":{"x":[1,{"y":2}]}}"#,
        )
        .unwrap();
        assert_eq!(c.kind, Some(TokenKind::NodeIdentity));
        assert_eq!(c.aud, Audience(vec!["a".into(), "b".into()]));
        assert_eq!(
            (c.exp, c.iat, c.nbf, c.issued_version),
            (Some(20), Some(10), Some(10), Some(3))
        );
        assert_eq!(c.permissions, ["execute_tasks"]);
        let back = serde_json::to_string(&c).unwrap();
        assert_eq!(Claims::from_json(back.as_bytes()).unwrap(), c);
    }

    #[test]
    fn strict_rules() {
        check(r#"{"exp":1}"#, Ok(()));
        check(r#"{"aud":"one"}"#, Ok(()));
        check(r#"{"exp":1,"exp":2}"#, Err("duplicate JSON key"));
        check(r#"{"x":1,"x":2}"#, Err("duplicate JSON key"));
        check(r#"{"x":{"y":1,"y":2}}"#, Err("duplicate JSON key"));
        check(r#"{"x":[{"y":1,"y":2}]}"#, Err("duplicate JSON key"));
        check(r#"{"exp":1.5}"#, Err("claim `exp` is not an integer"));
        check(r#"{"exp":1e9}"#, Err("claim `exp` is not an integer"));
        check(r#"{"nbf":"10"}"#, Err("claim `nbf` is a string"));
        check(r#"{"iat":-1}"#, Err("claim `iat` is negative"));
        check(r#"{"exp":null}"#, Err("claim `exp` is null"));
        check(
            r#"{"issued_version":1.0}"#,
            Err("claim `issued_version` is not an integer"),
        );
        check(
            r#"{"exp":18446744073709551616}"#,
            Err("claim `exp` is not an integer"),
        );
        check(r#"{"exp":253402300799}"#, Ok(()));
        check(
            r#"{"exp":253402300800}"#,
            Err("claim `exp` is out of range"),
        );
        check(
            r#"{"nbf":9223372036854775808}"#,
            Err("claim `nbf` is out of range"),
        );
        check(
            r#"{"iat":18446744073709551615}"#,
            Err("claim `iat` is out of range"),
        );
        check(r#"{"issued_version":18446744073709551615}"#, Ok(()));
        check(
            r#"{"sub":1}"#,
            Err("not a JSON object with correctly typed claims"),
        );
        check(r#"[1]"#, Err("not a JSON object"));
        check(r#"{"exp":1} x"#, Err("data after the JSON object"));
        check(r#"{"exp":1"#, Err("not a JSON object"));
    }

    #[test]
    fn unknown_kind_reads_as_none() {
        let c = Claims::from_json(br#"{"kind":"superuser"}"#).unwrap();
        assert_eq!(c.kind, None);
    }
}
