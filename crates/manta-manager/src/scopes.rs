//! Scope strings (`resource:action`), how a held scope covers a required one, and the mapping
//! to the published `UserPermission` enum that `GetUser` reports.
//!
//! Gap: manta-auth (issue 3) owns the scope grammar and the scope <-> `UserPermission` mapping;
//! it had not published them when this crate was written, so this private module implements
//! the minimum the manager needs. Replace it with manta-auth's when that lands.

use manta_proto::common::permissions::UserPermission;

use crate::error::{Error, Result};

/// The scope that covers every other scope.
pub const ADMIN: &str = "admin:*";

/// Checks the grammar: a lower-case resource, a colon, and a lower-case action or `*`.
pub fn validate(scope: &str) -> Result<()> {
    let ok = scope.split_once(':').is_some_and(|(resource, action)| {
        let word =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        word(resource) && (action == "*" || word(action))
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidScope(scope.to_owned()))
    }
}

/// Parses a comma- or space-separated list, validating every entry and dropping duplicates.
pub fn parse_list(text: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for scope in text
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        validate(scope)?;
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
        }
    }
    Ok(out)
}

/// Whether one held scope grants the required one.
pub fn covers(held: &str, required: &str) -> bool {
    if held == required || held == ADMIN {
        return true;
    }
    match (held.split_once(':'), required.split_once(':')) {
        (Some((held_res, "*")), Some((req_res, _))) => held_res == req_res,
        _ => false,
    }
}

/// Whether any of the held scopes grants the required one.
pub fn any_covers(held: &[String], required: &str) -> bool {
    held.iter().any(|h| covers(h, required))
}

/// The scope named by a `UserPermission` value: `USER_READ` is `user:read`.
pub fn scope_of(permission: UserPermission) -> String {
    let name = permission.as_str_name();
    // Generated names carry the enum prefix (`USER_PERMISSION_USER_READ`); strip it.
    let name = name.strip_prefix("USER_PERMISSION_").unwrap_or(name);
    let (resource, action) = name.split_once('_').unwrap_or((name, ""));
    format!(
        "{}:{}",
        resource.to_ascii_lowercase(),
        action.to_ascii_lowercase()
    )
}

/// Every `UserPermission` value.
pub fn all_permissions() -> Vec<UserPermission> {
    (0..=255)
        .filter_map(|n| UserPermission::try_from(n).ok())
        .collect()
}

/// The published permissions that a set of scopes grants, in enum order.
pub fn permissions_of(scopes: &[String]) -> Vec<UserPermission> {
    all_permissions()
        .into_iter()
        .filter(|p| any_covers(scopes, &scope_of(*p)))
        .collect()
}

/// The scopes equivalent to a list of published permissions; all of them is `admin:*`, as
/// the published manager treats "every permission" as admin.
pub fn scopes_of(permissions: &[UserPermission]) -> Vec<String> {
    let all = all_permissions();
    if all.iter().all(|p| permissions.contains(p)) {
        return vec![ADMIN.to_owned()];
    }
    let mut out: Vec<String> = Vec::new();
    for p in permissions {
        let s = scope_of(*p);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_accepts_resource_action_and_wildcards_only() {
        for ok in ["user:read", "cluster:*", "admin:*", "node_pool:list"] {
            validate(ok).unwrap();
        }
        for bad in [
            "",
            "user",
            "user:",
            ":read",
            "User:Read",
            "user:read:x",
            "*:*",
            "user read",
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
        assert!(parse_list("user:read,bogus").is_err());
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
    }

    #[test]
    fn permissions_map_both_ways() {
        assert_eq!(scope_of(UserPermission::UserRead), "user:read");
        assert_eq!(scope_of(UserPermission::ClusterStart), "cluster:start");
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
        assert_eq!(all.len(), all_permissions().len());
        assert_eq!(scopes_of(&all), [ADMIN]);
        assert_eq!(scopes_of(&[UserPermission::NodeList]), ["node:list"]);
    }
}
