//! Permission scopes: the grammar (see [`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md)), the matcher, explanations of which
//! grant satisfied a check, and (feature `proto`, in [`permission`]) the mapping to the
//! published `UserPermission` enum.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

#[cfg(feature = "proto")]
pub(crate) mod permission;

/// Longest accepted scope string, in bytes.
pub const MAX_SCOPE_LEN: usize = 64;
/// Most scopes accepted in one set (one token).
pub const MAX_SCOPES: usize = 128;

/// One segment of a scope: a word or the whole-segment wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Seg {
    Any,
    Word(String),
}

impl Seg {
    fn as_str(&self) -> &str {
        match self {
            Self::Any => "*",
            Self::Word(w) => w,
        }
    }
}

/// A parsed scope: `word`, `resource:action`, `resource:*`, `*:action` or `admin:*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Inner);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Inner {
    /// `admin:*`: everything.
    Admin,
    /// A bare word such as `execute_tasks`; covers only itself.
    Word(String),
    /// `resource:action` where either side may be `*` (not both).
    Pair(Seg, Seg),
}

fn check_word(w: &str, what: &str) -> Result<(), Error> {
    let ok = w.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && w.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else if w.contains('*') {
        Err(Error::InvalidScope {
            reason: format!("`*` is only allowed as a whole {what}, as in `cluster:*`"),
        })
    } else if w.is_empty() {
        Err(Error::InvalidScope {
            reason: format!("the {what} is empty"),
        })
    } else {
        Err(Error::InvalidScope {
            reason: format!(
                "the {what} must start with a-z and contain only a-z, 0-9, `_` and `-`"
            ),
        })
    }
}

impl Scope {
    /// Parses one scope.
    ///
    /// # Errors
    /// [`Error::InvalidScope`] saying which rule of the grammar failed.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(Error::InvalidScope {
                reason: format!("a scope is at most {MAX_SCOPE_LEN} bytes, got {}", s.len()),
            });
        }
        let mut parts = s.split(':');
        let first = parts.next().unwrap_or_default();
        let Some(second) = parts.next() else {
            if s == "*" {
                return Err(Error::InvalidScope {
                    reason: "a bare `*` is not a scope; use `admin:*` for everything".into(),
                });
            }
            check_word(s, "word")?;
            return Ok(Self(Inner::Word(s.to_owned())));
        };
        if parts.next().is_some() {
            return Err(Error::InvalidScope {
                reason: "a scope has at most one `:`".into(),
            });
        }
        let seg = |w: &str, what| -> Result<Seg, Error> {
            if w == "*" {
                Ok(Seg::Any)
            } else {
                check_word(w, what).map(|()| Seg::Word(w.to_owned()))
            }
        };
        let (res, act) = (seg(first, "resource")?, seg(second, "action")?);
        match (&res, &act) {
            (Seg::Word(r), Seg::Any) if r == "admin" => Ok(Self(Inner::Admin)),
            (Seg::Any, Seg::Any) => Err(Error::InvalidScope {
                reason: "`*:*` is not a scope; use `admin:*` for everything".into(),
            }),
            _ => Ok(Self(Inner::Pair(res, act))),
        }
    }

    /// `admin:*`.
    #[must_use]
    pub fn admin() -> Self {
        Self(Inner::Admin)
    }

    /// Whether this scope, as a grant, covers `required` (which may itself be a wildcard:
    /// a grant covers it when it covers everything it stands for).
    ///
    /// Besides the wildcards, one action alias exists: `write` covers `create`, `update` and
    /// `delete` (the seed's `cluster:write`). No published permission maps to `write`, so
    /// the `UserPermission` round trip stays exact.
    #[must_use]
    pub fn covers(&self, required: &Scope) -> bool {
        match (&self.0, &required.0) {
            (Inner::Admin, _) => true,
            (_, Inner::Admin) => false,
            (Inner::Word(a), Inner::Word(b)) => a == b,
            (Inner::Pair(gr, ga), Inner::Pair(rr, ra)) => {
                seg_covers(gr, rr, |a, b| a == b) && seg_covers(ga, ra, action_covers)
            }
            _ => false,
        }
    }

    /// The resource part (`None` for bare words and `admin:*`).
    #[must_use]
    pub fn resource(&self) -> Option<&str> {
        match &self.0 {
            Inner::Pair(r, _) => Some(r.as_str()),
            _ => None,
        }
    }
}

fn seg_covers(grant: &Seg, required: &Seg, word: impl Fn(&str, &str) -> bool) -> bool {
    match (grant, required) {
        (Seg::Any, _) => true,
        (Seg::Word(_), Seg::Any) => false,
        (Seg::Word(g), Seg::Word(r)) => word(g, r),
    }
}

fn action_covers(grant: &str, required: &str) -> bool {
    grant == required || (grant == "write" && matches!(required, "create" | "update" | "delete"))
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Admin => f.write_str("admin:*"),
            Inner::Word(w) => f.write_str(w),
            Inner::Pair(r, a) => write!(f, "{}:{}", r.as_str(), a.as_str()),
        }
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A set of granted scopes (what a token carries in `permissions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

/// Why a check passed: the grant that satisfied it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// The scope that was required.
    pub required: Scope,
    /// The granted scope that covers it.
    pub granted_by: Scope,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is granted by `{}`", self.required, self.granted_by)
    }
}

impl ScopeSet {
    /// Parses a list of scope strings (duplicates are kept once).
    ///
    /// # Errors
    /// [`Error::InvalidScope`] for the first bad scope (by position) or when there are more
    /// than [`MAX_SCOPES`].
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, Error> {
        if items.len() > MAX_SCOPES {
            return Err(Error::InvalidScope {
                reason: format!(
                    "at most {MAX_SCOPES} scopes are accepted, got {}",
                    items.len()
                ),
            });
        }
        let mut set = Self::default();
        for (i, s) in items.iter().enumerate() {
            let scope = Scope::parse(s.as_ref()).map_err(|e| match e {
                Error::InvalidScope { reason } => Error::InvalidScope {
                    reason: format!("scope #{i}: {reason}"),
                },
                other => other,
            })?;
            set.insert(scope);
        }
        Ok(set)
    }

    /// Parses a space-separated list, the OAuth `scope` form.
    ///
    /// # Errors
    /// As [`ScopeSet::parse`].
    pub fn parse_spaced(s: &str) -> Result<Self, Error> {
        let items: Vec<&str> = s.split_ascii_whitespace().collect();
        Self::parse(&items)
    }

    /// Adds a scope (kept once).
    pub fn insert(&mut self, scope: Scope) {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
    }

    /// The scopes, in insertion order.
    #[must_use]
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether some grant covers `required`.
    #[must_use]
    pub fn covers(&self, required: &Scope) -> bool {
        self.scopes.iter().any(|g| g.covers(required))
    }

    /// Which grant satisfies `required`: an exact match is preferred over a wildcard, so the
    /// explanation names the narrowest grant that applies.
    #[must_use]
    pub fn explain(&self, required: &Scope) -> Option<Explanation> {
        let rank = |g: &Scope| match &g.0 {
            _ if g == required => 0,
            Inner::Admin => 2,
            _ => 1,
        };
        let granted_by = self
            .scopes
            .iter()
            .filter(|g| g.covers(required))
            .min_by_key(|g| rank(g))?;
        Some(Explanation {
            required: required.clone(),
            granted_by: granted_by.clone(),
        })
    }

    /// Checks `required` (a scope string) and explains the result.
    ///
    /// # Errors
    /// [`Error::InvalidScope`] when `required` does not parse, [`Error::InsufficientScope`]
    /// when nothing covers it.
    pub fn check(&self, required: &str) -> Result<Explanation, Error> {
        let req = Scope::parse(required)?;
        self.explain(&req).ok_or_else(|| Error::InsufficientScope {
            required: req.to_string(),
        })
    }

    /// The scopes as strings (for the `permissions` claim).
    #[must_use]
    pub fn to_strings(&self) -> Vec<String> {
        self.scopes.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).unwrap()
    }

    fn check(input: &str, expected: Result<&str, &str>) {
        match (Scope::parse(input), expected) {
            (Ok(sc), Ok(shown)) => assert_eq!(sc.to_string(), shown),
            (Err(e), Err(needle)) => {
                let m = e.to_string();
                assert!(m.contains(needle), "{input:?}: `{m}` lacks `{needle}`");
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn grammar() {
        check("cluster:read", Ok("cluster:read"));
        check("admin:*", Ok("admin:*"));
        check("cluster:*", Ok("cluster:*"));
        check("*:read", Ok("*:read"));
        check("execute_tasks", Ok("execute_tasks"));
        check("access_datasets", Ok("access_datasets"));
        check("", Err("word is empty"));
        check("*", Err("use `admin:*`"));
        check("*:*", Err("use `admin:*`"));
        check(
            "cluster:read*",
            Err("`*` is only allowed as a whole action"),
        );
        check("clu*:read", Err("`*` is only allowed as a whole resource"));
        check("cluster:", Err("action is empty"));
        check(":read", Err("resource is empty"));
        check("a:b:c", Err("at most one `:`"));
        check("Cluster:read", Err("must start with a-z"));
        check("cluster:re ad", Err("only a-z"));
        check("1cluster:read", Err("must start with a-z"));
        check(&"a".repeat(65), Err("at most 64 bytes, got 65"));
    }

    #[test]
    fn matching_and_aliases() {
        let set =
            ScopeSet::parse(&["cluster:read", "swarm:*", "execute_tasks", "module:write"]).unwrap();
        for ok in [
            "cluster:read",
            "swarm:deploy",
            "swarm:*",
            "execute_tasks",
            "module:create",
            "module:update",
            "module:delete",
            "module:write",
        ] {
            assert!(set.covers(&s(ok)), "{ok}");
        }
        for no in [
            "cluster:list",
            "cluster:write",
            "cluster:update",
            "cluster:*",
            "module:upload",
            "admin:*",
            "execute",
            "access_datasets",
            "*:read",
            "node:read",
        ] {
            assert!(!set.covers(&s(no)), "{no}");
        }
        let admin = ScopeSet::parse(&["admin:*"]).unwrap();
        assert!(admin.covers(&s("execute_tasks")) && admin.covers(&s("*:read")));
    }

    #[test]
    fn explain_names_the_narrowest_grant() {
        let set = ScopeSet::parse(&["admin:*", "swarm:*", "swarm:deploy"]).unwrap();
        assert_eq!(
            set.check("swarm:deploy").unwrap().granted_by,
            s("swarm:deploy")
        );
        assert_eq!(set.check("swarm:stop").unwrap().granted_by, s("swarm:*"));
        assert_eq!(
            set.check("node:read").unwrap().to_string(),
            "`node:read` is granted by `admin:*`"
        );
        let none = ScopeSet::parse(&["cluster:read"]).unwrap();
        let e = none.check("cluster:delete").unwrap_err().to_string();
        assert!(e.contains("does not grant `cluster:delete`"), "{e}");
        assert!(matches!(
            none.check("bad*"),
            Err(Error::InvalidScope { .. })
        ));
    }

    #[test]
    fn set_limits() {
        let many: Vec<String> = (0..129).map(|i| format!("w{i}")).collect();
        assert!(
            ScopeSet::parse(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 128 scopes")
        );
        let e = ScopeSet::parse(&["ok", "no*"]).unwrap_err().to_string();
        assert!(e.contains("scope #1"), "{e}");
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_]{0,6}"
    }

    fn scope_str() -> impl Strategy<Value = String> {
        prop_oneof![
            word(),
            (word(), word()).prop_map(|(r, a)| format!("{r}:{a}")),
            word().prop_map(|r| format!("{r}:*")),
            word().prop_map(|a| format!("*:{a}")),
            Just("admin:*".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn a_set_covers_each_member(items in proptest::collection::vec(scope_str(), 1..8)) {
            let set = ScopeSet::parse(&items).unwrap();
            for i in &items {
                prop_assert!(set.covers(&s(i)));
            }
        }

        #[test]
        fn resource_wildcard_covers_exactly_its_resource(r in word(), r2 in word(), a in word()) {
            prop_assume!(r != "admin");
            let g = s(&format!("{r}:*"));
            let ra = format!("{r}:{a}");
            prop_assert!(g.covers(&s(&ra)));
            prop_assert_eq!(g.covers(&s(&format!("{r2}:{a}"))), r == r2);
            prop_assert!(!g.covers(&s(&a)));
            prop_assert!(!g.covers(&Scope::admin()));
        }

        #[test]
        fn action_wildcard_covers_exactly_its_action(r in word(), a in word(), a2 in word()) {
            let g = s(&format!("*:{a}"));
            let ra = format!("{r}:{a}");
            prop_assert!(g.covers(&s(&ra)));
            prop_assert_eq!(g.covers(&s(&format!("{r}:{a2}"))), action_covers(&a, &a2));
        }

        #[test]
        fn exact_scopes_cover_only_themselves_or_their_aliases(x in scope_str(), y in scope_str()) {
            let (gx, gy) = (s(&x), s(&y));
            if gx.covers(&gy) && gy.covers(&gx) {
                prop_assert_eq!(gx, gy);
            }
        }

        #[test]
        fn string_tricks_are_rejected_or_grant_nothing(
            r in word(), a in word(), junk in "[*?.%/ ]{1,3}"
        ) {
            for trick in [format!("{r}:{a}{junk}"), format!("{r}{junk}:{a}"), format!("{r}:{junk}{a}")] {
                if let Ok(parsed) = Scope::parse(&trick) {
                    // Only pure `*` segments may parse, and then they mean a whole segment.
                    prop_assert!(parsed.to_string() == trick);
                    prop_assert!(!trick.contains(['?', '.', '%', '/', ' ']));
                }
            }
        }

        #[test]
        fn parse_never_panics(x in "\\PC{0,80}") {
            let _ = Scope::parse(&x);
        }
    }
}
