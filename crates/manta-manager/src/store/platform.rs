//! Storage of platform records: clusters, registered nodes, modules and swarms. A separate trait so the identity part of the store stays readable; [`super::Store`]
//! requires it, so handlers reach both through one `dyn Store`.

use crate::error::Result;

/// A cluster as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterRecord {
    /// 32 lower-case hex characters.
    pub id: String,
    /// A display name; not unique.
    pub name: String,
    /// The owning user's id; empty for clusters created by an administrator without an owner.
    pub owner_id: String,
    /// Further users allowed to see and use the cluster.
    pub users: Vec<String>,
    /// The published `ClusterStatus`: 0 created, 1 running, 2 stopped.
    pub status: i32,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Unix seconds of the last start.
    pub last_start: Option<i64>,
    /// Unix seconds of the last stop.
    pub last_stop: Option<i64>,
    /// When the cluster's bootstrap tokens were last revoked (unix seconds). Tokens from
    /// before bootstrap generations (no `issued_version` claim) issued earlier are refused.
    pub bootstrap_not_before: i64,
    /// The generation of the cluster's bootstrap tokens, carried in their `issued_version`
    /// claim. Bootstrap tokens are not stored one by one: they are minted on demand and
    /// revoked together, by moving this on; only tokens of the current generation join.
    pub bootstrap_generation: i64,
}

/// A registered node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// 24 lower-case hex characters: the node token's `node_id` claim.
    pub id: String,
    /// The cluster the node joined.
    pub cluster_id: String,
    /// The node's alias, when it sent one.
    pub alias: Option<String>,
    /// Whether the alias is the node's fixed identity (`random_id = false`): then no second
    /// live node may hold it.
    pub fixed_alias: bool,
    /// The id the node asked for (informational; the manager assigns `id`).
    pub requested_id: Option<String>,
    /// The `issued_version` of the newest node token.
    pub issued_version: u64,
    /// When the newest node token expires (unix seconds).
    pub token_expires_at: i64,
    /// Unix seconds of the first registration.
    pub registered_at: i64,
    /// Unix seconds of the last registration or renewal.
    pub updated_at: i64,
    /// Unix seconds of the last sign of life known to the store (heartbeats are flushed in
    /// batches); `None` after a clean deregistration.
    pub last_seen: Option<i64>,
    /// The published `NodeOverview` the node sent, protobuf-encoded.
    pub overview: Vec<u8>,
}

/// A module as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRecord {
    /// 32 lower-case hex characters.
    pub id: String,
    /// The uploading user's id.
    pub owner_id: String,
    /// The module's name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The published `common.tasks.Module` message, protobuf-encoded.
    pub body: Vec<u8>,
}

/// A swarm as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmRecord {
    /// 32 lower-case hex characters.
    pub id: String,
    /// The cluster it was sent to.
    pub cluster_id: String,
    /// The sending user's id.
    pub owner_id: String,
    /// The swarm's name.
    pub name: String,
    /// The published `SwarmStatusEnum`: 0 pending, 1 active, 2 paused, 3 stopped, 4 killed.
    pub status: i32,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last start.
    pub last_start: Option<i64>,
    /// Unix seconds of the last stop.
    pub last_stop: Option<i64>,
    /// The iteration limit the user asked for.
    pub max_iteration: Option<u32>,
    /// The network the swarm runs in, when one was named.
    pub network_id: Option<String>,
    /// The published `NetworkType` of an inline network configuration.
    pub network_type: Option<i32>,
    /// The task graph (`common.swarms.Graph`), protobuf-encoded.
    pub graph: Vec<u8>,
    /// The networks set by `InitializeNetworks` (`common.system.Networks`), encoded.
    pub networks: Option<Vec<u8>>,
}

/// Everything the manager persists about platform resources.
pub trait PlatformStore {
    /// Durably creates a cluster.
    fn create_cluster(&self, cluster: &ClusterRecord) -> Result<()>;
    /// A cluster by id.
    fn cluster(&self, id: &str) -> Result<Option<ClusterRecord>>;
    /// Every cluster, oldest first.
    fn list_clusters(&self) -> Result<Vec<ClusterRecord>>;
    /// Sets a cluster's status with the start or stop time; false when there is none.
    fn set_cluster_status(&self, id: &str, status: i32, now: i64) -> Result<bool>;
    /// Durably revokes every bootstrap token of the cluster issued so far (its bootstrap
    /// generation moves on); false when there is no such cluster.
    fn revoke_bootstrap(&self, id: &str, now: i64) -> Result<bool>;
    /// Deletes a cluster with its nodes and swarms; false when there was none.
    fn delete_cluster(&self, id: &str) -> Result<bool>;

    /// Durably inserts or replaces a node, deleting the nodes in `replaces` in the same
    /// transaction (a fixed alias taken over from an offline holder).
    fn upsert_node(&self, node: &NodeRecord, replaces: &[String]) -> Result<()>;
    /// A node by id.
    fn node(&self, id: &str) -> Result<Option<NodeRecord>>;
    /// Every node, optionally of one cluster, oldest first.
    fn list_nodes(&self, cluster_id: Option<&str>) -> Result<Vec<NodeRecord>>;
    /// Every node's id with its cluster and newest token version (cheap: no overview).
    fn node_versions(&self) -> Result<Vec<(String, String, u64)>>;
    /// Durably deletes a node; its tokens stop working. False when there was none.
    fn delete_node(&self, id: &str) -> Result<bool>;
    /// Records last signs of life in bulk (one transaction); `None` marks a clean
    /// deregistration.
    fn touch_nodes(&self, seen: &[(String, Option<i64>)]) -> Result<()>;

    /// Durably stores a module.
    fn insert_module(&self, module: &ModuleRecord) -> Result<()>;
    /// A module by id.
    fn module(&self, id: &str) -> Result<Option<ModuleRecord>>;

    /// Durably stores a swarm.
    fn insert_swarm(&self, swarm: &SwarmRecord) -> Result<()>;
    /// A swarm by id.
    fn swarm(&self, id: &str) -> Result<Option<SwarmRecord>>;
    /// Every swarm, oldest first.
    fn list_swarms(&self) -> Result<Vec<SwarmRecord>>;
    /// Sets a swarm's status with the start or stop time; false when there is none.
    fn set_swarm_status(&self, id: &str, status: i32, now: i64) -> Result<bool>;
    /// Stores the networks of a swarm; false when there is no such swarm.
    fn set_swarm_networks(&self, id: &str, networks: &[u8]) -> Result<bool>;
    /// Stores (or replaces) one global value of a swarm; false when there is no such swarm.
    fn set_swarm_global(&self, id: &str, tag: &str, data: &[u8]) -> Result<bool>;
    /// The tags of a swarm's globals with their sizes in bytes, sorted by tag.
    fn swarm_global_tags(&self, id: &str) -> Result<Vec<(String, i64)>>;
    /// Deletes a swarm with its globals; false when there was none.
    fn delete_swarm(&self, id: &str) -> Result<bool>;
}
