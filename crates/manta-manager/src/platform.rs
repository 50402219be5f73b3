//! Platform resources: clusters (with their node bootstrap tokens), modules and swarms, with
//! the visibility rule that makes a resource a caller may not see look absent.
//!
//! Transport-free: the gRPC handlers and the admin CLI call it. Scheduling swarms onto nodes
//! is a later issue: a started swarm is recorded as active and stays so until stopped, with
//! no task sent to any node ([docs/manager.md](https://github.com/mantatech/manta-rs/blob/main/docs/manager.md) says so to users).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use manta_proto::common::informations::ClusterStatus;
use manta_proto::common::swarms::SwarmStatusEnum;
use manta_proto::common::system::{Networks, PairId};
use manta_proto::common::tasks::Module;
use manta_proto::core::user_services::SendSwarmRequest;
use prost::Message;
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::keys::Authority;
use crate::registry::{NodeSettings, Registry};
use crate::store::{ClusterRecord, ModuleRecord, Store, SwarmRecord, new_id};

/// Who is looking: administrators (`admin:*`) see everything, other users what they own or,
/// for clusters, what they are a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user id.
    pub user_id: String,
    /// Holds `admin:*`.
    pub admin: bool,
}

impl Viewer {
    /// The viewer behind an authenticated caller.
    pub fn of(caller: &Caller) -> Self {
        Viewer {
            user_id: caller.user_id.clone(),
            admin: caller.has(crate::scopes::ADMIN),
        }
    }

    /// The operator at the admin CLI, who sees everything.
    pub fn operator() -> Self {
        Viewer {
            user_id: String::new(),
            admin: true,
        }
    }

    fn sees_cluster(&self, c: &ClusterRecord) -> bool {
        self.admin
            || (!self.user_id.is_empty()
                && (c.owner_id == self.user_id || c.users.contains(&self.user_id)))
    }

    fn owns(&self, owner_id: &str) -> bool {
        self.admin || (!self.user_id.is_empty() && owner_id == self.user_id)
    }
}

/// A 32-hex id from the SDK's `PairId` (head = upper 64 bits, tail = lower 64 bits).
pub fn pair_to_hex(p: &PairId) -> String {
    format!("{:016x}{:016x}", p.head, p.tail)
}

fn not_found(kind: &'static str, id: &str, hint: &'static str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_owned(),
        hint,
    }
}

fn cluster_missing(id: &str) -> Error {
    not_found("cluster", id, "list your clusters with ListClusterIds")
}

fn swarm_missing(id: &str) -> Error {
    not_found("swarm", id, "list your swarms with ListSwarmIds")
}

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid {
            field,
            reason: "use 1 to 100 printable characters".into(),
        });
    }
    Ok(name.to_owned())
}

/// Clusters, modules, swarms and the node registry.
pub struct Platform {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// The platform over a store and key authority.
    pub fn new(store: Arc<dyn Store>, authority: Arc<Authority>, settings: NodeSettings) -> Self {
        let registry = Arc::new(Registry::new(Arc::clone(&store), authority, settings));
        Platform { store, registry }
    }

    /// The manager's clock's time in unix seconds.
    fn now_secs(&self) -> i64 {
        self.registry.now_secs()
    }

    /// The node registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Creates a cluster owned by `owner_id` (empty: only administrators see it).
    pub fn create_cluster(&self, owner_id: &str, name: &str) -> Result<ClusterRecord> {
        let now = self.now_secs();
        let record = ClusterRecord {
            id: new_id(),
            name: check_name("cluster name", name)?,
            owner_id: owner_id.to_owned(),
            users: Vec::new(),
            status: 0,
            created_at: now,
            updated_at: now,
            last_start: None,
            last_stop: None,
            bootstrap_not_before: 0,
            bootstrap_generation: 0,
        };
        self.store.create_cluster(&record)?;
        Ok(record)
    }

    /// The clusters a viewer sees.
    pub fn clusters(&self, viewer: &Viewer) -> Result<Vec<ClusterRecord>> {
        Ok(self
            .store
            .list_clusters()?
            .into_iter()
            .filter(|c| viewer.sees_cluster(c))
            .collect())
    }

    /// One cluster; NOT_FOUND when it does not exist or the viewer may not see it.
    pub fn cluster(&self, viewer: &Viewer, id: &str) -> Result<ClusterRecord> {
        match self.store.cluster(id.trim())? {
            Some(c) if viewer.sees_cluster(&c) => Ok(c),
            _ => Err(cluster_missing(id)),
        }
    }

    /// Starts or stops a cluster. A stopped cluster takes no new nodes and no swarm starts.
    pub fn set_cluster_running(
        &self,
        viewer: &Viewer,
        id: &str,
        running: bool,
    ) -> Result<ClusterRecord> {
        let c = self.cluster(viewer, id)?;
        let status = if running {
            ClusterStatus::Running
        } else {
            ClusterStatus::Stopped
        };
        self.store
            .set_cluster_status(&c.id, status as i32, self.now_secs())?;
        self.cluster(viewer, &c.id)
    }

    /// Deletes a cluster with its nodes (their tokens stop working) and swarms.
    pub fn delete_cluster(&self, viewer: &Viewer, id: &str) -> Result<()> {
        let c = self.cluster(viewer, id)?;
        self.store.delete_cluster(&c.id)?;
        self.registry.forget_cluster(&c.id)
    }

    /// A bootstrap token for nodes to join the cluster; `None` for the default lifetime.
    pub fn bootstrap_token(
        &self,
        cluster: &ClusterRecord,
        ttl: Option<Duration>,
    ) -> Result<SecretString> {
        let ttl = ttl.unwrap_or(self.registry.settings().bootstrap_ttl);
        // The token carries the cluster's current bootstrap generation, so read it now: a
        // record read before a revocation would mint a token that is refused at once.
        let current = self
            .store
            .cluster(&cluster.id)?
            .ok_or_else(|| cluster_missing(&cluster.id))?;
        self.registry.issue_bootstrap(&current, ttl)
    }

    /// Revokes every bootstrap token of a cluster issued so far.
    pub fn revoke_bootstrap(&self, viewer: &Viewer, id: &str) -> Result<()> {
        let c = self.cluster(viewer, id)?;
        // Exact: a token issued before this commit is refused, one issued after it (in the
        // same second, too) joins.
        self.store.revoke_bootstrap(&c.id, self.now_secs())?;
        Ok(())
    }

    /// SendModule: stores a module and returns its 32-hex id.
    pub fn send_module(&self, viewer: &Viewer, module: &Module) -> Result<ModuleRecord> {
        let name = if module.name.trim().is_empty() {
            "module".to_owned()
        } else {
            check_name("module name", &module.name)?
        };
        let record = ModuleRecord {
            id: new_id(),
            owner_id: viewer.user_id.clone(),
            name,
            created_at: self.now_secs(),
            body: module.encode_to_vec(),
        };
        self.store.insert_module(&record)?;
        Ok(record)
    }

    /// One module; NOT_FOUND when absent or not the viewer's.
    pub fn module(&self, viewer: &Viewer, id: &str) -> Result<ModuleRecord> {
        match self.store.module(id.trim())? {
            Some(m) if viewer.owns(&m.owner_id) => Ok(m),
            _ => Err(not_found(
                "module",
                id,
                "upload it with SendModule before sending a swarm that uses it",
            )),
        }
    }

    /// SendSwarm: validates and stores a swarm as pending.
    pub fn send_swarm(&self, viewer: &Viewer, request: &SendSwarmRequest) -> Result<SwarmRecord> {
        if request.network_id.is_some() && request.network_config.is_some() {
            return Err(Error::Invalid {
                field: "swarm network",
                reason: "network_id and network_config are mutually exclusive; set at most one"
                    .into(),
            });
        }
        let name = check_name("swarm name", &request.name)?;
        let cluster = self.cluster(viewer, &request.cluster_id)?;
        let graph = request.graph.clone().unwrap_or_default();
        if graph.tasks.is_empty() {
            return Err(Error::Invalid {
                field: "swarm graph",
                reason: "the swarm has no tasks; add at least one task to the graph".into(),
            });
        }
        let mut checked = HashSet::new();
        for task in &graph.tasks {
            let Some(module_id) = task.module_id.as_ref() else {
                return Err(Error::Invalid {
                    field: "swarm graph",
                    reason: format!(
                        "task {:?} names no module; upload the module with SendModule and set \
                         module_id",
                        task.alias
                    ),
                });
            };
            let id = pair_to_hex(module_id);
            if checked.insert(id.clone()) {
                self.module(viewer, &id)?;
            }
        }
        let network_type = request.network_config.as_ref().and_then(|c| c.network_type);
        let record = SwarmRecord {
            id: new_id(),
            cluster_id: cluster.id,
            owner_id: viewer.user_id.clone(),
            name,
            status: SwarmStatusEnum::Pending as i32,
            created_at: self.now_secs(),
            last_start: None,
            last_stop: None,
            max_iteration: request.max_iteration,
            network_id: request.network_id.clone(),
            network_type,
            graph: graph.encode_to_vec(),
            networks: None,
        };
        self.store.insert_swarm(&record)?;
        Ok(record)
    }

    /// One swarm; NOT_FOUND when absent or not the viewer's.
    pub fn swarm(&self, viewer: &Viewer, id: &str) -> Result<SwarmRecord> {
        match self.store.swarm(id.trim())? {
            Some(s) if viewer.owns(&s.owner_id) => Ok(s),
            _ => Err(swarm_missing(id)),
        }
    }

    /// The swarms a viewer owns (all for administrators).
    pub fn swarms(&self, viewer: &Viewer) -> Result<Vec<SwarmRecord>> {
        Ok(self
            .store
            .list_swarms()?
            .into_iter()
            .filter(|s| viewer.owns(&s.owner_id))
            .collect())
    }

    /// StartSwarm: marks the swarm active. Nothing is scheduled onto nodes yet.
    pub fn start_swarm(&self, viewer: &Viewer, id: &str) -> Result<SwarmRecord> {
        let s = self.swarm(viewer, id)?;
        let cluster = self.store.cluster(&s.cluster_id)?;
        if cluster.is_some_and(|c| c.status == ClusterStatus::Stopped as i32) {
            return Err(Error::Conflict(format!(
                "the swarm's cluster {} is stopped; start the cluster first",
                s.cluster_id
            )));
        }
        self.store
            .set_swarm_status(&s.id, SwarmStatusEnum::Active as i32, self.now_secs())?;
        self.swarm(viewer, &s.id)
    }

    /// StopSwarm: marks the swarm stopped, and removes it when `remove` is set.
    pub fn stop_swarm(&self, viewer: &Viewer, id: &str, remove: bool) -> Result<()> {
        let s = self.swarm(viewer, id)?;
        if remove {
            self.store.delete_swarm(&s.id)?;
        } else {
            self.store
                .set_swarm_status(&s.id, SwarmStatusEnum::Stopped as i32, self.now_secs())?;
        }
        Ok(())
    }

    /// RemoveSwarm: deletes the swarm and its globals.
    pub fn remove_swarm(&self, viewer: &Viewer, id: &str) -> Result<()> {
        let s = self.swarm(viewer, id)?;
        self.store.delete_swarm(&s.id)?;
        Ok(())
    }

    /// InitializeNetworks: stores the networks the SDK sends after SendSwarm.
    pub fn initialize_networks(&self, viewer: &Viewer, networks: &Networks) -> Result<()> {
        let id = networks
            .swarm_id
            .as_ref()
            .map(pair_to_hex)
            .ok_or_else(|| Error::Invalid {
                field: "swarm_id",
                reason: "set swarm_id to the id SendSwarm returned".into(),
            })?;
        let s = self.swarm(viewer, &id)?;
        self.store
            .set_swarm_networks(&s.id, &networks.encode_to_vec())?;
        Ok(())
    }

    /// InitializeGlobal: stores one global value of a swarm under its tag.
    pub fn set_global(
        &self,
        viewer: &Viewer,
        swarm: &PairId,
        tag: &str,
        data: &[u8],
    ) -> Result<String> {
        let s = self.swarm(viewer, &pair_to_hex(swarm))?;
        let tag = check_name("global tag", tag)?;
        self.store.set_swarm_global(&s.id, &tag, data)?;
        Ok(s.id)
    }

    /// The tags of a swarm's globals with their sizes in bytes.
    pub fn global_tags(&self, viewer: &Viewer, id: &str) -> Result<Vec<(String, i64)>> {
        let s = self.swarm(viewer, id)?;
        self.store.swarm_global_tags(&s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningMode;
    use crate::store::SqliteStore;
    use manta_proto::common::swarms::Graph;
    use manta_proto::common::tasks::Task;
    use manta_proto::core::user_services::NetworkConfig;

    fn platform() -> (tempfile::TempDir, Platform) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let authority =
            Arc::new(Authority::open(Arc::clone(&store), SigningMode::EdDsa, "t", 86_400).unwrap());
        let p = Platform::new(store, authority, NodeSettings::default());
        (dir, p)
    }

    fn user(id: &str) -> Viewer {
        Viewer {
            user_id: id.into(),
            admin: false,
        }
    }

    #[test]
    fn pair_ids_are_the_sdks_32_hex_split() {
        let id = "90700570a2ce4b1891b32341a192fc1a";
        let v = u128::from_str_radix(id, 16).unwrap();
        let pair = PairId {
            head: u64::try_from(v >> 64).unwrap(),
            tail: u64::try_from(v & u128::from(u64::MAX)).unwrap(),
        };
        assert_eq!(pair_to_hex(&pair), id);
        assert_eq!(pair_to_hex(&PairId { head: 0, tail: 1 }).len(), 32);
    }

    #[test]
    fn resources_of_others_look_absent_and_admins_see_all() {
        let (_d, p) = platform();
        let c = p.create_cluster("alice", "lab").unwrap();
        let alice = user("alice");
        let bob = user("bob");
        assert_eq!(p.clusters(&alice).unwrap().len(), 1);
        assert!(p.clusters(&bob).unwrap().is_empty());
        let hidden = p.cluster(&bob, &c.id).unwrap_err().to_string();
        let absent = p.cluster(&bob, "nope").unwrap_err().to_string();
        assert_eq!(hidden.replace(&c.id, "X"), absent.replace("nope", "X"));
        assert!(hidden.contains("ListClusterIds"), "{hidden}");
        p.cluster(&Viewer::operator(), &c.id).unwrap();
        // An ownerless cluster is for administrators only, not for a viewer with no id.
        let ownerless = p.create_cluster("", "ops").unwrap();
        assert!(p.cluster(&user(""), &ownerless.id).is_err());
        assert!(p.create_cluster("alice", "  ").is_err());
    }

    #[test]
    fn send_swarm_checks_network_fields_graph_and_modules() {
        let (_d, p) = platform();
        let alice = user("alice");
        let c = p.create_cluster("alice", "lab").unwrap();
        let m = p.send_module(&alice, &Module::default()).unwrap();
        let module_pair = {
            let v = u128::from_str_radix(&m.id, 16).unwrap();
            PairId {
                head: u64::try_from(v >> 64).unwrap(),
                tail: u64::try_from(v & u128::from(u64::MAX)).unwrap(),
            }
        };
        let ok = SendSwarmRequest {
            graph: Some(Graph {
                tasks: vec![Task {
                    module_id: Some(module_pair),
                    ..Task::default()
                }],
            }),
            name: "s".into(),
            cluster_id: c.id.clone(),
            ..SendSwarmRequest::default()
        };
        let check = |req: SendSwarmRequest, expected: &str| {
            let err = p.send_swarm(&alice, &req).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        };
        let mut both = ok.clone();
        both.network_id = Some("wg-1".into());
        both.network_config = Some(NetworkConfig::default());
        check(both, "mutually exclusive");
        let mut empty = ok.clone();
        empty.graph = None;
        check(empty, "no tasks");
        let mut other = ok.clone();
        other.cluster_id = "0".repeat(32);
        check(other, "no cluster");
        // Bob cannot use alice's module, even in his own cluster.
        let bob = user("bob");
        let bc = p.create_cluster("bob", "b").unwrap();
        let mut bobs = ok.clone();
        bobs.cluster_id = bc.id;
        let err = p.send_swarm(&bob, &bobs).unwrap_err().to_string();
        assert!(err.contains("no module"), "{err}");
        let s = p.send_swarm(&alice, &ok).unwrap();
        assert_eq!(s.status, SwarmStatusEnum::Pending as i32);
        assert_eq!(s.id.len(), 32);
        assert_eq!(
            p.start_swarm(&alice, &s.id).unwrap().status,
            SwarmStatusEnum::Active as i32
        );
    }
}
