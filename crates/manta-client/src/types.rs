//! The typed values the User API returns and takes, converted from and to the published
//! protobuf messages. Times are unix seconds; secrets are `SecretString`.

use std::fmt;

use manta_proto::common;
use manta_proto::manta::v1 as mv1;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

fn secs(t: Option<&prost_types::Timestamp>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.seconds).ok())
}

/// The signed-in user, as `get_user()` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct User {
    /// The user id (32 hex characters on our manager).
    pub id: String,
    /// The user name.
    pub username: String,
    /// The e-mail address (may be empty).
    pub email: String,
    /// The granted scopes (`cluster:read`, ...), derived from the published permissions.
    pub scopes: Vec<String>,
    /// The published `UserPermission` names (`CLUSTER_READ`, ...).
    pub permissions: Vec<String>,
    /// Quotas, when the manager sets them.
    pub quotas: Quotas,
    /// The account status (`ACTIVE`, `SIGNED_IN`, ...).
    pub status: String,
    /// Account creation (unix seconds).
    pub created_at: Option<u64>,
    /// Last sign-in (unix seconds).
    pub last_login: Option<u64>,
}

/// A user's quotas; `None` means "not set by the manager".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Quotas {
    /// Storage limit in GB.
    pub max_storage_gb: Option<f32>,
    /// Storage in use in GB.
    pub current_storage_gb: Option<f32>,
    /// Module limit.
    pub max_modules: Option<u32>,
    /// Concurrent task limit.
    pub max_concurrent_tasks: Option<u32>,
    /// Concurrent cluster limit.
    pub max_concurrent_clusters: Option<u32>,
    /// Concurrent swarm limit.
    pub max_concurrent_swarms: Option<u32>,
}

impl User {
    pub(crate) fn from_proto(u: common::user::User) -> Self {
        let auth = u.authorization.unwrap_or_default();
        let perms: Vec<common::permissions::UserPermission> = auth
            .permissions
            .iter()
            .filter_map(|v| common::permissions::UserPermission::try_from(*v).ok())
            .collect();
        let mut scopes: Vec<String> = perms
            .iter()
            .map(|p| manta_auth::scope_for_permission(*p).to_string())
            .collect();
        scopes.sort();
        scopes.dedup();
        let permissions = perms
            .iter()
            .map(|p| {
                p.as_str_name()
                    .trim_start_matches("USER_PERMISSION_")
                    .to_owned()
            })
            .collect();
        let q = auth.quotas.unwrap_or_default();
        let status = common::user::UserStatus::try_from(u.status).map_or_else(
            |_| format!("UNKNOWN({})", u.status),
            |s| {
                s.as_str_name()
                    .trim_start_matches("USER_STATUS_")
                    .to_owned()
            },
        );
        User {
            id: u.user_id,
            username: u.username,
            email: u.email,
            scopes,
            permissions,
            quotas: Quotas {
                max_storage_gb: q.max_storage_gb,
                current_storage_gb: q.current_storage_gb,
                max_modules: q.max_modules,
                max_concurrent_tasks: q.max_concurrent_tasks,
                max_concurrent_clusters: q.max_concurrent_clusters,
                max_concurrent_swarms: q.max_concurrent_swarms,
            },
            status,
            created_at: secs(u.created_at.as_ref()),
            last_login: secs(u.last_login.as_ref()),
        }
    }

    /// Whether the user holds `scope` exactly or through a wildcard (`cluster:*`, `admin:*`).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        let Ok(wanted) = scope.parse::<manta_auth::Scope>() else {
            return false;
        };
        self.scopes.iter().any(|s| {
            s.parse::<manta_auth::Scope>()
                .is_ok_and(|held| held.covers(&wanted))
        })
    }
}

/// Metadata of an API token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ApiTokenInfo {
    /// The token id (`jti`), used to revoke it.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Creation time (unix seconds).
    pub created_at: Option<u64>,
    /// Expiry (unix seconds).
    pub expires_at: Option<u64>,
    /// Last use, when known (unix seconds).
    pub last_used_at: Option<u64>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl ApiTokenInfo {
    pub(crate) fn from_proto(i: mv1::ApiTokenInfo) -> Self {
        ApiTokenInfo {
            id: i.token_id,
            name: i.name,
            scopes: i.scopes,
            created_at: secs(i.created_at.as_ref()),
            expires_at: secs(i.expires_at.as_ref()),
            last_used_at: secs(i.last_used_at.as_ref()),
            revoked: i.revoked,
        }
    }
}

/// A newly created API token: shown once, never again.
#[non_exhaustive]
pub struct CreatedApiToken {
    /// Its metadata.
    pub info: ApiTokenInfo,
    /// The token.
    pub token: SecretString,
}

impl fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("info", &self.info)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// A cluster (`common.cluster.Cluster`), without its node bootstrap token in `Debug`.
#[derive(Clone, Serialize)]
#[non_exhaustive]
pub struct Cluster {
    /// The cluster id.
    pub id: String,
    /// Its owner's user id.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// `CREATED`, `RUNNING` or `STOPPED`.
    pub status: String,
    /// Users with access.
    pub users: Vec<String>,
    /// Where its nodes connect.
    pub node_host: String,
    /// The node port.
    pub node_port: u32,
    /// Creation time (unix seconds).
    pub created_at: Option<u64>,
    /// The node bootstrap token (`jwt_token`), when the manager returns it. Never serialized.
    #[serde(skip)]
    pub bootstrap_token: Option<SecretString>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("owner_id", &self.owner_id)
            .field("node_host", &self.node_host)
            .field("node_port", &self.node_port)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub(crate) fn from_proto(c: common::cluster::Cluster) -> Self {
        let status = common::informations::ClusterStatus::try_from(c.status).map_or_else(
            |_| format!("UNKNOWN({})", c.status),
            |s| {
                s.as_str_name()
                    .trim_start_matches("CLUSTER_STATUS_")
                    .to_owned()
            },
        );
        Cluster {
            id: c.cluster_id,
            owner_id: c.owner_id,
            name: c.name,
            status,
            users: c.users,
            node_host: c.node_host,
            node_port: c.node_port,
            created_at: secs(c.created_at.as_ref()),
            bootstrap_token: (!c.jwt_token.is_empty()).then(|| SecretString::from(c.jwt_token)),
        }
    }
}

/// A swarm (`common.swarms.Swarm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Swarm {
    /// The swarm id.
    pub id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Its owner.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// `PENDING`, `ACTIVE`, `PAUSED`, `STOPPED` or `KILLED`.
    pub status: String,
    /// Current iteration, when running.
    pub iteration: Option<u32>,
    /// Creation time (unix seconds).
    pub created_at: Option<u64>,
}

impl Swarm {
    pub(crate) fn from_proto(s: common::swarms::Swarm) -> Self {
        let status = common::swarms::SwarmStatusEnum::try_from(s.status).map_or_else(
            |_| format!("UNKNOWN({})", s.status),
            |v| {
                let name = v.as_str_name();
                name.rsplit_once('_').map_or(name, |(_, n)| n).to_owned()
            },
        );
        Swarm {
            id: s.swarm_id,
            cluster_id: s.cluster_id,
            owner_id: s.owner_id,
            name: s.name,
            status,
            iteration: s.iteration,
            created_at: secs(s.created_at.as_ref()),
        }
    }
}

/// A module to upload (`common.tasks.Module`): zipped Python code and its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModuleSpec {
    /// The module name.
    pub name: String,
    /// The container image that runs it.
    pub image: String,
    /// The zipped program (the published SDK's `python_program`).
    #[serde(default, skip_serializing)]
    pub program: Vec<u8>,
    /// Datasets the module reads.
    #[serde(default)]
    pub datasets: Vec<String>,
}

impl ModuleSpec {
    /// A module named `name` running in `image` with the zipped `program`.
    #[must_use]
    pub fn new(name: impl Into<String>, image: impl Into<String>, program: Vec<u8>) -> Self {
        ModuleSpec {
            name: name.into(),
            image: image.into(),
            program,
            datasets: Vec::new(),
        }
    }

    pub(crate) fn to_proto(&self) -> common::tasks::Module {
        common::tasks::Module {
            python_program: self.program.clone(),
            image: self.image.clone(),
            name: self.name.clone(),
            datasets: self.datasets.clone(),
            authorization: None,
        }
    }
}

/// One task of a swarm: a module and where it sits in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSpec {
    /// A name unique within the swarm, used by `after`.
    pub alias: String,
    /// The module it runs.
    pub module: ModuleSpec,
    /// Scheduling method (`all`, `any`, ...; the published default is `all`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Aliases of the tasks that must run before this one.
    #[serde(default)]
    pub after: Vec<String>,
}

fn default_method() -> String {
    "all".to_owned()
}

impl TaskSpec {
    /// A task `alias` running `module`, scheduled on all nodes, with no predecessors.
    #[must_use]
    pub fn new(alias: impl Into<String>, module: ModuleSpec) -> Self {
        TaskSpec {
            alias: alias.into(),
            module,
            method: default_method(),
            after: Vec::new(),
        }
    }
}

/// What `deploy_swarm` sends: a named graph of tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SwarmSpec {
    /// The swarm name.
    pub name: String,
    /// Its tasks.
    pub tasks: Vec<TaskSpec>,
    /// Stop after this many iterations.
    #[serde(default)]
    pub max_iteration: Option<u32>,
}

impl SwarmSpec {
    /// A swarm `name` with `tasks`.
    #[must_use]
    pub fn new(name: impl Into<String>, tasks: Vec<TaskSpec>) -> Self {
        SwarmSpec {
            name: name.into(),
            tasks,
            max_iteration: None,
        }
    }

    /// Checks names, aliases and the `after` references before anything is sent.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the swarm needs a name".into());
        }
        if self.tasks.is_empty() {
            return Err("the swarm needs at least one task".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tasks {
            if t.alias.trim().is_empty() {
                return Err("every task needs an alias".into());
            }
            if !seen.insert(t.alias.as_str()) {
                return Err(format!("task alias `{}` is used twice", t.alias));
            }
            if t.module.image.trim().is_empty() {
                return Err(format!("task `{}` has no module image", t.alias));
            }
        }
        for t in &self.tasks {
            if let Some(missing) = t.after.iter().find(|a| !seen.contains(a.as_str())) {
                return Err(format!(
                    "task `{}` runs after `{missing}`, which is not a task of this swarm",
                    t.alias
                ));
            }
        }
        Ok(())
    }
}

/// One stored result value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResultRecord {
    /// The node that produced it.
    pub node_id: String,
    /// The task that produced it.
    pub task_id: String,
    /// The iteration.
    pub iteration: u32,
    /// The tag.
    pub tag: String,
    /// The serialized value.
    pub data: Vec<u8>,
}

/// 128-bit ids are written as 32 hex characters and split into `PairId` halves (the
/// published SDK's `x2u64`).
pub(crate) fn pair_id(hex32: &str) -> Option<common::system::PairId> {
    let v = u128::from_str_radix(hex32.trim(), 16).ok()?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the halves of a 128-bit id are taken on purpose"
    )]
    Some(common::system::PairId {
        head: (v >> 64) as u64,
        tail: v as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_scopes_come_from_published_permissions() {
        use common::permissions::{UserAuthorization, UserPermission};
        let u = User::from_proto(common::user::User {
            user_id: "ab".into(),
            username: "alice".into(),
            status: 4,
            authorization: Some(UserAuthorization {
                permissions: vec![UserPermission::ClusterRead as i32, 999],
                ..UserAuthorization::default()
            }),
            ..common::user::User::default()
        });
        assert_eq!(u.scopes, vec!["cluster:read".to_owned()]);
        assert_eq!(u.permissions, vec!["CLUSTER_READ".to_owned()]);
        assert_eq!(u.status, "SIGNED_IN");
        assert!(u.has_scope("cluster:read") && !u.has_scope("cluster:create"));
    }

    #[test]
    fn swarm_spec_refuses_bad_graphs_before_sending() {
        let m = ModuleSpec::new("m", "python:3.11", vec![1]);
        let mut a = TaskSpec::new("a", m.clone());
        a.after = vec!["zz".into()];
        let spec = SwarmSpec::new("s", vec![a]);
        assert!(spec.validate().unwrap_err().contains("`zz`"));
        let spec = SwarmSpec::new(
            "s",
            vec![TaskSpec::new("a", m.clone()), TaskSpec::new("a", m)],
        );
        assert!(spec.validate().unwrap_err().contains("used twice"));
        assert!(SwarmSpec::new("s", vec![]).validate().is_err());
    }

    #[test]
    fn ids_split_like_the_published_sdk() {
        let p = pair_id("0000000000000001000000000000000f").unwrap();
        assert_eq!((p.head, p.tail), (1, 15));
        assert!(pair_id("not hex").is_none());
    }

    #[test]
    fn debug_hides_bootstrap_and_api_tokens() {
        let c = Cluster::from_proto(common::cluster::Cluster {
            jwt_token: "eyJsecret.node.token".into(),
            ..common::cluster::Cluster::default()
        });
        let d = format!("{c:?}");
        assert!(!d.contains("eyJsecret") && d.contains("[REDACTED]"), "{d}");
        let t = CreatedApiToken {
            info: ApiTokenInfo::from_proto(mv1::ApiTokenInfo::default()),
            token: SecretString::from("api-secret-value"),
        };
        assert!(!format!("{t:?}").contains("api-secret-value"));
    }
}
