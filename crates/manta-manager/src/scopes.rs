//! Scope strings as the manager uses them, over manta-auth's grammar and matcher
//! ([`docs/scopes.md`](https://github.com/mantatech/manta-rs/blob/main/docs/scopes.md)): validation with the manager's error, coverage checks on plain strings
//! as stored, and the mapping to the published `UserPermission` enum that `GetUser` reports.

use manta_auth::{Scope, ScopeSet};
use manta_proto::common::permissions::UserPermission;

use crate::error::{Error, Result};

/// The scope that covers every other scope.
pub const ADMIN: &str = "admin:*";

/// Checks one scope against the grammar (`resource:action`, `resource:*`, `*:action`,
/// `admin:*` or a bare word).
pub fn validate(scope: &str) -> Result<()> {
    Scope::parse(scope)
        .map(drop)
        .map_err(|_| Error::InvalidScope(scope.to_owned()))
}

/// Parses a comma- or space-separated list typed on the command line, validating every
/// entry and dropping duplicates. A bare half of a scope (`cluster read`) is refused with
/// the scope it was probably meant to be, rather than granted as meaningless words.
pub fn parse_list(text: &str) -> Result<Vec<String>> {
    let typed: Vec<&str> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    manta_auth::check_typed_scopes(&typed).map_err(|e| Error::Invalid {
        field: "scopes",
        reason: e.to_string(),
    })?;
    let mut out: Vec<String> = Vec::new();
    for scope in typed {
        validate(scope)?;
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
        }
    }
    Ok(out)
}

/// The set of a stored list, for issuing.
pub fn set_of(scopes: &[String]) -> Result<ScopeSet> {
    ScopeSet::parse(scopes).map_err(|_| {
        Error::InvalidScope(
            scopes
                .iter()
                .find(|s| validate(s).is_err())
                .cloned()
                .unwrap_or_default(),
        )
    })
}

/// Whether one held scope grants the required one; an unparsable scope grants nothing.
pub fn covers(held: &str, required: &str) -> bool {
    match (Scope::parse(held), Scope::parse(required)) {
        (Ok(h), Ok(r)) => h.covers(&r),
        _ => false,
    }
}

/// Whether any of the held scopes grants the required one.
pub fn any_covers(held: &[String], required: &str) -> bool {
    held.iter().any(|h| covers(h, required))
}

/// The published permissions that a set of scopes grants, in enum order.
pub fn permissions_of(scopes: &[String]) -> Vec<UserPermission> {
    // Stored scopes were validated on the way in; a bad one would only grant nothing.
    let valid: Vec<&String> = scopes.iter().filter(|s| validate(s).is_ok()).collect();
    ScopeSet::parse(&valid)
        .map(|set| set.to_user_permissions())
        .unwrap_or_default()
}

/// The scopes equivalent to a list of published permissions; all of them is `admin:*`, as
/// the published manager treats "every permission" as admin.
pub fn scopes_of(permissions: &[UserPermission]) -> Vec<String> {
    let values: Vec<i32> = permissions.iter().map(|p| *p as i32).collect();
    ScopeSet::from_user_permissions(&values).to_strings()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_accepts_scopes_and_refuses_tricks() {
        for ok in [
            "user:read",
            "cluster:*",
            "admin:*",
            "node_pool:list",
            "execute_tasks",
        ] {
            validate(ok).unwrap();
        }
        for bad in [
            "",
            "user:",
            ":read",
            "User:Read",
            "user:read:x",
            "*:*",
            "user read",
            "clu*:read",
        ] {
            let err = validate(bad).unwrap_err();
            assert!(err.to_string().contains("resource:action"), "{bad}: {err}");
        }
    }

    #[test]
    fn list_parsing_splits_dedups_and_rejects_bad_entries() {
        assert_eq!(
            parse_list("user:read, user:list user:read").unwrap(),
            ["user:read", "user:list"]
        );
        assert!(parse_list("user:read,Bogus").is_err());
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn coverage_rules() {
        let check = |held: &str, required: &str, expected: bool| {
            assert_eq!(covers(held, required), expected, "{held} covers {required}");
        };
        check("user:read", "user:read", true);
        check("user:read", "user:list", false);
        check("user:*", "user:delete", true);
        check("user:*", "cluster:read", false);
        check("admin:*", "cluster:read", true);
        check("cluster:read", "admin:*", false);
        check("cluster:write", "cluster:create", true);
        check("not a scope", "user:read", false);
    }

    #[test]
    fn permissions_map_both_ways() {
        assert_eq!(
            permissions_of(&["user:read".into(), "role:*".into()]),
            [
                UserPermission::UserRead,
                UserPermission::RoleCreate,
                UserPermission::RoleRead,
                UserPermission::RoleUpdate,
                UserPermission::RoleDelete
            ]
        );
        let all = permissions_of(&[ADMIN.into()]);
        assert_eq!(all.len(), 35);
        assert_eq!(scopes_of(&all), [ADMIN]);
        assert_eq!(scopes_of(&[UserPermission::NodeList]), ["node:list"]);
    }
}
