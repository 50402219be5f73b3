//! The mapping between scopes and the published `UserPermission` enum of `manta-proto`
//! (feature `proto`): what `User.authorization.permissions` carries on the wire.

use manta_proto::common::permissions::UserPermission;

use super::{Inner, Scope, ScopeSet, Seg};

impl ScopeSet {
    /// The published `UserPermission` values this set grants, sorted, for
    /// `User.authorization.permissions`. `admin:*` yields every value, which is how the
    /// published platform recognises an administrator.
    #[must_use]
    pub fn to_user_permissions(&self) -> Vec<UserPermission> {
        all_user_permissions()
            .filter(|p| self.covers(&scope_for_permission(*p)))
            .collect()
    }

    /// The scopes for a list of published `UserPermission` wire values (`i32`). Unknown
    /// values are skipped; a list holding every value becomes `admin:*`, matching the
    /// published admin rule.
    #[must_use]
    pub fn from_user_permissions(values: &[i32]) -> Self {
        let mut set = Self::default();
        let known: Vec<UserPermission> = values
            .iter()
            .filter_map(|v| UserPermission::try_from(*v).ok())
            .collect();
        if all_user_permissions().all(|p| known.contains(&p)) {
            set.insert(Scope::admin());
            return set;
        }
        for p in known {
            set.insert(scope_for_permission(p));
        }
        set
    }
}

/// Every published `UserPermission` value, in wire order.
pub fn all_user_permissions() -> impl Iterator<Item = UserPermission> {
    (0..=48).filter_map(|v| UserPermission::try_from(v).ok())
}

/// The canonical scope of a published permission: `USER_PERMISSION_CLUSTER_START` is
/// `cluster:start`.
#[must_use]
pub fn scope_for_permission(p: UserPermission) -> Scope {
    let name = p
        .as_str_name()
        .trim_start_matches("USER_PERMISSION_")
        .to_ascii_lowercase();
    let (res, act) = name.split_once('_').unwrap_or((name.as_str(), ""));
    Scope(Inner::Pair(
        Seg::Word(res.to_owned()),
        Seg::Word(act.to_owned()),
    ))
}

/// The published permissions a single scope stands for (empty for scopes with no published
/// counterpart, such as `results:read` or `execute_tasks`).
#[must_use]
pub fn permissions_for_scope(scope: &Scope) -> Vec<UserPermission> {
    all_user_permissions()
        .filter(|p| scope.covers(&scope_for_permission(*p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).unwrap()
    }

    #[test]
    fn user_permission_mapping() {
        assert_eq!(
            scope_for_permission(UserPermission::ClusterStart).to_string(),
            "cluster:start"
        );
        assert_eq!(
            scope_for_permission(UserPermission::ModuleDownload).to_string(),
            "module:download"
        );
        assert_eq!(all_user_permissions().count(), 35);
        // Every permission round-trips through its scope.
        for p in all_user_permissions() {
            assert_eq!(permissions_for_scope(&scope_for_permission(p)), vec![p]);
        }
        let admin = ScopeSet::parse(&["admin:*"]).unwrap();
        assert_eq!(admin.to_user_permissions().len(), 35);
        let all: Vec<i32> = all_user_permissions().map(|p| p as i32).collect();
        assert_eq!(
            ScopeSet::from_user_permissions(&all).to_strings(),
            ["admin:*"]
        );
        let some = ScopeSet::from_user_permissions(&[11, 25, 999]);
        assert_eq!(some.to_strings(), ["cluster:read", "swarm:deploy"]);
        assert_eq!(
            permissions_for_scope(&s("cluster:write")),
            [
                UserPermission::ClusterCreate,
                UserPermission::ClusterUpdate,
                UserPermission::ClusterDelete
            ]
        );
        assert!(permissions_for_scope(&s("results:read")).is_empty());
        assert!(permissions_for_scope(&s("execute_tasks")).is_empty());
    }
}
