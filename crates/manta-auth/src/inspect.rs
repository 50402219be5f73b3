//! Reading a token without verifying it (the seed's "decode without verification, just to
//! read exp"): for scheduling refreshes and for display, never for access decisions.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::claims::{Claims, TokenKind};
use crate::error::Error;
use crate::jws::{self, Header};
use crate::scope::ScopeSet;
use crate::verify::at;

/// A token's header and claims, read WITHOUT checking the signature. Its `Display` shows
/// the kind, subject, issuer, expiry, scopes, algorithm and key id; never the signature or
/// the token itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Inspected {
    /// The header.
    pub header: Header,
    /// The claims, unverified.
    pub claims: Claims,
}

/// Reads `token` without verifying its signature. The same structural rules as
/// verification apply (size cap, compact form, strict base64url and JSON).
///
/// # Errors
/// The structural [`Error`]s: [`Error::TooLarge`], [`Error::Malformed`],
/// [`Error::AlgorithmNotAllowed`], [`Error::ForbiddenHeader`], [`Error::BadClaim`].
pub fn inspect(token: &str) -> Result<Inspected, Error> {
    let parts = jws::split(token, jws::DEFAULT_MAX_TOKEN_LEN)?;
    let header = jws::parse_header(parts.header)?;
    let payload = jws::b64(parts.payload, "the payload is not valid base64url")?;
    let claims = Claims::from_json(&payload)?;
    Ok(Inspected { header, claims })
}

impl Inspected {
    /// The declared kind.
    #[must_use]
    pub fn kind(&self) -> Option<TokenKind> {
        self.claims.kind
    }

    /// When the token expires, if it says.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.claims.exp.map(at)
    }

    /// Time left until `exp` at `now` (zero once expired); `None` without `exp`.
    #[must_use]
    pub fn time_left(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at()
            .map(|exp| exp.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// The declared scopes.
    ///
    /// # Errors
    /// [`Error::InvalidScope`] when `permissions` breaks the grammar.
    pub fn scopes(&self) -> Result<ScopeSet, Error> {
        ScopeSet::parse(&self.claims.permissions)
    }
}

impl fmt::Display for Inspected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.claims;
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        write!(
            f,
            "kind={} sub={} iss={} alg={} kid={}",
            c.kind.map_or("unknown", TokenKind::as_str),
            opt(&c.sub),
            opt(&c.iss),
            self.header.alg,
            opt(&self.header.kid),
        )?;
        match c.exp {
            Some(exp) => {
                let now = SystemTime::now();
                match self.time_left(now) {
                    Some(left) if !left.is_zero() => {
                        write!(f, " exp={exp} (in {}s)", left.as_secs())?;
                    }
                    _ => write!(f, " exp={exp} (expired)")?,
                }
            }
            None => f.write_str(" exp=none")?,
        }
        if let Some(node) = &c.node_id {
            write!(f, " node_id={node}")?;
        }
        if let Some(v) = c.issued_version {
            write!(f, " issued_version={v}")?;
        }
        write!(f, " scopes=[{}]", c.permissions.join(" "))
    }
}
