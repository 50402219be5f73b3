//! The node registry: node bootstrap and identity tokens, registration with the fixed-alias
//! rule, renewal within a grace window, heartbeats and liveness.
//!
//! Registrations and renewals are durable (the node row is committed before the token is
//! handed out). Heartbeats only touch memory and are flushed to the store in one transaction
//! per interval, so 10,000 nodes heartbeating cost one small write every few seconds instead
//! of 2,000 fsyncs a second. Transport-free: the gRPC handlers, the authorization layer and
//! the admin CLI call it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use manta_auth::{TokenKind as AuthKind, TokenRequest};
use manta_proto::common::informations::{ClusterStatus, NodeOverview};
use prost::Message;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::keys::{Authority, TokenProblem};
use crate::store::{ClusterRecord, DataVersion, NodeRecord, Store};

/// Why a node token whose node is no longer registered is refused, and what to do.
const NODE_REMOVED: &str = "revoked node token: this node was removed from the registry; \
     register it again with a bootstrap token of its cluster";

/// Timings of the node protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSettings {
    /// How often nodes are asked to heartbeat (`Registration.heartbeat_interval_seconds`).
    pub heartbeat_interval: Duration,
    /// A node with no sign of life for this long is offline (three missed heartbeats).
    pub offline_after: Duration,
    /// Lifetime of a node identity token.
    pub node_token_ttl: Duration,
    /// How long after its expiry a node token can still be renewed by `RenewNodeToken`.
    pub renew_grace: Duration,
    /// Lifetime of the bootstrap token shown in a cluster's `jwt_token`.
    pub bootstrap_ttl: Duration,
    /// The longest lifetime a bootstrap token may be issued with: a bootstrap token admits
    /// any number of nodes, so it must not become a permanent key to the cluster.
    pub bootstrap_max_ttl: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            heartbeat_interval: Duration::from_secs(5),
            offline_after: Duration::from_secs(15),
            node_token_ttl: Duration::from_secs(12 * 3600),
            renew_grace: Duration::from_secs(7 * 86_400),
            bootstrap_ttl: Duration::from_secs(86_400),
            bootstrap_max_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A node-side caller verified by the authorization layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCaller {
    /// A bootstrap token of a cluster: may only register a new node.
    Bootstrap {
        /// The cluster the token joins.
        cluster_id: String,
        /// The token's `jti`, for the audit trail.
        token_id: String,
    },
    /// A node identity token.
    Node {
        /// The `node_id` claim.
        node_id: String,
        /// The `cluster_id` claim.
        cluster_id: String,
        /// The `issued_version` claim.
        issued_version: u64,
        /// The token's expiry (unix seconds).
        expires_at: i64,
        /// The token's `jti`, for the audit trail.
        token_id: String,
    },
}

impl NodeCaller {
    /// The subject recorded in the audit trail: the node id, or `bootstrap:<cluster>`.
    pub fn subject(&self) -> String {
        match self {
            NodeCaller::Bootstrap { cluster_id, .. } => format!("bootstrap:{cluster_id}"),
            NodeCaller::Node { node_id, .. } => node_id.clone(),
        }
    }

    /// The token id.
    pub fn token_id(&self) -> &str {
        match self {
            NodeCaller::Bootstrap { token_id, .. } | NodeCaller::Node { token_id, .. } => token_id,
        }
    }
}

/// Which node tokens a method takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAccess {
    /// A valid node identity token.
    Identity,
    /// A bootstrap token or a valid node identity token (`RegisterNode`, `IsAvailable`).
    Join,
    /// A node identity token, also one expired no longer than the grace window ago.
    Renew,
}

/// A node token newly issued at registration or renewal; shown to the node once.
pub struct NodeToken {
    /// The JWT.
    pub token: SecretString,
    /// The node id (`node_id` claim, 24 hex characters).
    pub node_id: String,
    /// The cluster id.
    pub cluster_id: String,
    /// The `issued_version` claim.
    pub issued_version: u64,
    /// Expiry, unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeToken")
            .field("token", &"[REDACTED]")
            .field("node_id", &self.node_id)
            .field("cluster_id", &self.cluster_id)
            .field("issued_version", &self.issued_version)
            .finish()
    }
}

/// A registered node with its liveness, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The stored record.
    pub record: NodeRecord,
    /// Whether it showed a sign of life within the offline threshold.
    pub online: bool,
    /// The last sign of life (unix seconds), heartbeats included.
    pub last_seen: Option<i64>,
}

/// What memory holds about a node: enough to authorize and track liveness without the store.
#[derive(Debug, Clone)]
struct Live {
    cluster_id: String,
    alias: Option<String>,
    fixed_alias: bool,
    issued_version: u64,
    last_seen: Option<i64>,
    /// The store's data version under which the node's row was last seen to exist. While
    /// the store reports the same version nothing was committed since, so the row is still
    /// there; any commit (such as `manta-manager node remove` in another process) makes the
    /// next call of this node read its row again.
    confirmed: Option<DataVersion>,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    nodes: HashMap<String, Live>,
    /// (cluster, fixed alias) -> node id.
    aliases: HashMap<(String, String), String>,
    /// Signs of life not yet written to the store.
    dirty: HashMap<String, Option<i64>>,
    /// SHA-256 of node tokens whose signature was verified -> (node id, version, exp), so a
    /// heartbeat does not pay for an Ed25519 verification every time.
    verified: HashMap<[u8; 32], (String, u64, i64)>,
}

/// The node registry. Share it behind an `Arc`.
pub struct Registry {
    store: Arc<dyn Store>,
    authority: Arc<Authority>,
    settings: NodeSettings,
    state: Mutex<State>,
    /// Serialises registrations, so two nodes racing for one alias cannot both win.
    join: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Checks an alias: 1 to 64 letters, digits, `-`, `_` or `.` (the node's log file name base).
pub fn check_alias(alias: &str) -> Result<()> {
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "alias",
            reason: "use 1 to 64 letters, digits, '-', '_' or '.' in `[identity] alias`".into(),
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// `30 days`, `12 hours`, `90 seconds`: a limit as an operator would write it.
fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

fn refused(problem: TokenProblem) -> Error {
    Error::Token(problem)
}

/// A fresh node id: 96 random bits as 24 lower-case hex characters, the published format of
/// the `node_id` claim.
fn new_node_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

impl Registry {
    /// A registry over a store and key authority.
    pub fn new(store: Arc<dyn Store>, authority: Arc<Authority>, settings: NodeSettings) -> Self {
        Registry {
            store,
            authority,
            settings,
            state: Mutex::new(State::default()),
            join: Mutex::new(()),
        }
    }

    /// The manager's clock's time in unix seconds.
    pub(crate) fn now_secs(&self) -> i64 {
        self.authority.now_secs()
    }

    /// The timings in use.
    pub fn settings(&self) -> NodeSettings {
        self.settings
    }

    /// The state, loaded from the store on first use.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        // A poisoned lock means a panic mid-update of plain maps; they stay usable.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.loaded {
            for n in self.store.list_nodes(None)? {
                Self::remember(&mut state, &n);
            }
            state.loaded = true;
        }
        Ok(state)
    }

    fn remember(state: &mut State, n: &NodeRecord) {
        if let Some(old) = state.nodes.get(&n.id)
            && let (true, Some(alias)) = (old.fixed_alias, old.alias.clone())
        {
            state.aliases.remove(&(old.cluster_id.clone(), alias));
        }
        let last_seen = state
            .nodes
            .get(&n.id)
            .and_then(|l| l.last_seen)
            .max(n.last_seen);
        if let (true, Some(alias)) = (n.fixed_alias, n.alias.clone()) {
            state
                .aliases
                .insert((n.cluster_id.clone(), alias), n.id.clone());
        }
        state.nodes.insert(
            n.id.clone(),
            Live {
                cluster_id: n.cluster_id.clone(),
                alias: n.alias.clone(),
                fixed_alias: n.fixed_alias,
                issued_version: n.issued_version,
                last_seen,
                confirmed: None,
            },
        );
    }

    fn forget(state: &mut State, id: &str) {
        if let Some(old) = state.nodes.remove(id)
            && let (true, Some(alias)) = (old.fixed_alias, old.alias)
        {
            state.aliases.remove(&(old.cluster_id, alias));
        }
        state.dirty.remove(id);
        state.verified.retain(|_, (node, _, _)| node != id);
    }

    fn is_online(&self, last_seen: Option<i64>, now: i64) -> bool {
        last_seen.is_some_and(|at| now - at <= secs(self.settings.offline_after))
    }

    /// Issues a bootstrap token for a cluster (the cluster's `jwt_token`, or
    /// `manta-manager node-token issue`).
    pub fn issue_bootstrap(&self, cluster: &ClusterRecord, ttl: Duration) -> Result<SecretString> {
        if ttl.is_zero() {
            return Err(Error::Invalid {
                field: "lifetime",
                reason: "give the bootstrap token a lifetime of at least one second".into(),
            });
        }
        if ttl > self.settings.bootstrap_max_ttl {
            return Err(Error::Invalid {
                field: "lifetime",
                reason: format!(
                    "a bootstrap token lives at most {} (nodes.bootstrap_max_ttl_secs); choose \
                     a shorter --ttl and issue a new token when it ends",
                    human_secs(self.settings.bootstrap_max_ttl.as_secs())
                ),
            });
        }
        let mut request =
            TokenRequest::new(AuthKind::NodeBootstrap, cluster.id.clone()).lifetime(ttl);
        request.cluster_id = Some(cluster.id.clone());
        request.issued_version = Some(u64::try_from(cluster.bootstrap_generation).unwrap_or(0));
        Ok(self.authority.issue_request(&request)?.token)
    }

    /// Verifies a node-side token for a method; the basis of node authorization.
    pub fn authenticate(&self, token: &str, access: NodeAccess) -> Result<NodeCaller> {
        let kind = manta_auth::inspect(token)
            .map_err(|_| refused(TokenProblem::Malformed))?
            .kind();
        match kind {
            Some(AuthKind::NodeIdentity) => self.authenticate_node(token, access),
            Some(AuthKind::NodeBootstrap) if access == NodeAccess::Join => {
                self.authenticate_bootstrap(token)
            }
            Some(AuthKind::NodeBootstrap) => Err(Error::NodeForbidden(
                "a bootstrap token can only register a node; call RegisterNode and use the \
                 node token it returns",
            )),
            _ => Err(Error::NodeForbidden(
                "this method is for nodes and needs a node token; user tokens cannot call it \
                 (register the node with its cluster's bootstrap token)",
            )),
        }
    }

    fn authenticate_bootstrap(&self, token: &str) -> Result<NodeCaller> {
        let claims = self
            .authority
            .verify_kind(token, AuthKind::NodeBootstrap, false)
            .map_err(refused)?;
        let (Some(cluster_id), Some(jti), Some(iat)) = (claims.cluster_id, claims.jti, claims.iat)
        else {
            return Err(refused(TokenProblem::Malformed));
        };
        let cluster = self.store.cluster(&cluster_id)?.ok_or(Error::NodeRefused(
            "revoked bootstrap token: its cluster was deleted; ask for a bootstrap token of \
             an existing cluster",
        ))?;
        let current = match claims.issued_version {
            // A token of this cluster's current bootstrap generation; revocation moved the
            // generation on, whatever second it happened in.
            Some(generation) => {
                i64::try_from(generation).ok() == Some(cluster.bootstrap_generation)
            }
            // A token minted before generations existed: the whole-second rule it was issued
            // under, and only while nothing has been revoked since.
            None => {
                cluster.bootstrap_generation == 0
                    && i64::try_from(iat).unwrap_or(i64::MAX) >= cluster.bootstrap_not_before
            }
        };
        if !current {
            return Err(Error::NodeRefused(
                "revoked bootstrap token: the cluster's bootstrap tokens were revoked; issue a \
                 new one with `manta-manager node-token issue`",
            ));
        }
        Ok(NodeCaller::Bootstrap {
            cluster_id,
            token_id: jti,
        })
    }

    fn authenticate_node(&self, token: &str, access: NodeAccess) -> Result<NodeCaller> {
        let now = self.now_secs();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.state()?.verified.get(&digest).cloned();
        let (node_id, version, exp, cluster_id, jti) = match cached {
            Some((node_id, version, exp)) => (node_id, version, exp, None, String::new()),
            None => {
                let claims = self
                    .authority
                    .verify_kind(token, AuthKind::NodeIdentity, access == NodeAccess::Renew)
                    .map_err(refused)?;
                let (Some(node_id), Some(version), Some(exp), Some(cluster_id), Some(jti)) = (
                    claims.node_id,
                    claims.issued_version,
                    claims.exp,
                    claims.cluster_id,
                    claims.jti,
                ) else {
                    return Err(refused(TokenProblem::Malformed));
                };
                let exp = i64::try_from(exp).unwrap_or(i64::MAX);
                (node_id, version, exp, Some(cluster_id), jti)
            }
        };
        if exp <= now {
            if access != NodeAccess::Renew {
                return Err(refused(TokenProblem::Expired));
            }
            if now - exp > secs(self.settings.renew_grace) {
                return Err(Error::NodeRefused(
                    "expired node token past the renewal grace window; register the node again \
                     with a bootstrap token of its cluster",
                ));
            }
        }
        self.confirm_registered(&node_id)?;
        let mut state = self.state()?;
        let Some(live) = state.nodes.get(&node_id) else {
            return Err(Error::NodeRefused(NODE_REMOVED));
        };
        // The newest token and the one before it are valid: a renewal whose answer was lost
        // can be retried with the previous token.
        if version.saturating_add(1) < live.issued_version {
            return Err(Error::NodeRefused(
                "revoked node token: a newer token replaced it; use the newest node token or \
                 register again",
            ));
        }
        let cluster_id = cluster_id.unwrap_or_else(|| live.cluster_id.clone());
        if cluster_id != live.cluster_id {
            return Err(refused(TokenProblem::Malformed));
        }
        if state.verified.len() > 2 * state.nodes.len() + 1024 {
            state.verified.clear();
        }
        state
            .verified
            .insert(digest, (node_id.clone(), version, exp));
        let token_id = if jti.is_empty() {
            // Cached tokens skip decoding; the audit trail names the node, which suffices.
            format!("node:{node_id}:v{version}")
        } else {
            jti
        };
        Ok(NodeCaller::Node {
            node_id,
            cluster_id,
            issued_version: version,
            expires_at: exp,
            token_id,
        })
    }

    /// Makes sure the node's row still exists, reading it only when the store changed since
    /// it was last confirmed: a removal by another process takes effect on the node's very
    /// next call, not at the next flush, at the cost of one keyed read per node per change.
    fn confirm_registered(&self, node_id: &str) -> Result<()> {
        // Read the version before the row: a commit in between only causes another read.
        let version = self.store.data_version();
        {
            let state = self.state()?;
            match state.nodes.get(node_id) {
                None => return Err(Error::NodeRefused(NODE_REMOVED)),
                Some(live) if version.is_some() && live.confirmed == version => return Ok(()),
                Some(_) => {}
            }
        }
        let row = self.store.node(node_id)?;
        let mut state = self.state()?;
        let Some(live) = state.nodes.get_mut(node_id) else {
            return Err(Error::NodeRefused(NODE_REMOVED));
        };
        match row {
            Some(r) if r.cluster_id == live.cluster_id => {
                live.issued_version = live.issued_version.max(r.issued_version);
                live.confirmed = version;
                Ok(())
            }
            _ => {
                Self::forget(&mut state, node_id);
                Err(Error::NodeRefused(NODE_REMOVED))
            }
        }
    }

    /// Signs a node token expiring strictly after `after` (the published node refuses a
    /// renewal whose `exp` is not later than the old one, even within the same second).
    fn sign_node(
        &self,
        node_id: &str,
        cluster_id: &str,
        version: u64,
        after: i64,
    ) -> Result<NodeToken> {
        let ttl = secs(self.settings.node_token_ttl);
        let lifetime = ttl.max(after - self.now_secs() + 1).max(1);
        let request = TokenRequest::new(AuthKind::NodeIdentity, node_id)
            .node(node_id, cluster_id, version)
            .lifetime(Duration::from_secs(u64::try_from(lifetime).unwrap_or(1)));
        let issued = self.authority.issue_request(&request)?;
        let expires_at = issued
            .claims
            .exp
            .and_then(|e| i64::try_from(e).ok())
            .ok_or_else(|| Error::Key("the issuer left out exp".into()))?;
        Ok(NodeToken {
            token: issued.token,
            node_id: node_id.to_owned(),
            cluster_id: cluster_id.to_owned(),
            issued_version: version,
            expires_at,
        })
    }

    /// RegisterNode: a new node (bootstrap token) or the same node again (its identity
    /// token). The node row is durable before the token is returned.
    pub fn register(&self, caller: &NodeCaller, overview: &NodeOverview) -> Result<NodeToken> {
        let alias = overview
            .alias
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        if let Some(a) = alias {
            check_alias(a)?;
        }
        let fixed = alias.is_some() && overview.random_id != Some(true);
        let requested = overview
            .requested_node_id
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty() && r.len() <= 128)
            .map(str::to_owned);
        let _join = self.join.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now_secs();
        let (node_id, cluster_id, previous) = match caller {
            NodeCaller::Bootstrap { cluster_id, .. } => {
                let cluster = self
                    .store
                    .cluster(cluster_id)?
                    .ok_or_else(|| Error::NotFound {
                        kind: "cluster",
                        id: cluster_id.clone(),
                        hint: "list clusters with `manta-manager cluster list`",
                    })?;
                if cluster.status == ClusterStatus::Stopped as i32 {
                    return Err(Error::Conflict(format!(
                        "cluster {cluster_id} is stopped; start it before nodes join"
                    )));
                }
                (new_node_id(), cluster_id.clone(), None)
            }
            NodeCaller::Node {
                node_id,
                cluster_id,
                ..
            } => {
                let record = self
                    .store
                    .node(node_id)?
                    .ok_or(Error::NodeRefused(NODE_REMOVED))?;
                (node_id.clone(), cluster_id.clone(), Some(record))
            }
        };
        let mut replaces = Vec::new();
        if fixed && let Some(a) = alias {
            let state = self.state()?;
            if let Some(holder) = state.aliases.get(&(cluster_id.clone(), a.to_owned()))
                && *holder != node_id
            {
                let live = state.nodes.get(holder).and_then(|l| l.last_seen);
                if self.is_online(live, now) {
                    return Err(Error::AliasTaken(a.to_owned()));
                }
                // The holder is offline: the alias moves to this node and the old record
                // (and with it the old node's tokens) goes.
                replaces.push(holder.clone());
            }
        }
        let version = previous.as_ref().map_or(1, |p| p.issued_version + 1);
        let after = previous.as_ref().map_or(0, |p| p.token_expires_at);
        let token = self.sign_node(&node_id, &cluster_id, version, after)?;
        let record = NodeRecord {
            id: node_id.clone(),
            cluster_id,
            alias: alias.map(str::to_owned),
            fixed_alias: fixed,
            requested_id: requested,
            issued_version: version,
            token_expires_at: token.expires_at,
            registered_at: previous.as_ref().map_or(now, |p| p.registered_at),
            updated_at: now,
            last_seen: Some(now),
            overview: overview.encode_to_vec(),
        };
        self.store.upsert_node(&record, &replaces)?;
        let mut state = self.state()?;
        for old in &replaces {
            Self::forget(&mut state, old);
        }
        Self::remember(&mut state, &record);
        if let Some(live) = state.nodes.get_mut(&node_id) {
            live.last_seen = Some(now);
        }
        Ok(token)
    }

    /// RenewNodeToken: a new token for the same node with a greater `issued_version` and a
    /// later expiry.
    pub fn renew(&self, caller: &NodeCaller) -> Result<NodeToken> {
        let NodeCaller::Node { node_id, .. } = caller else {
            return Err(Error::NodeForbidden(
                "a bootstrap token cannot be renewed; register the node to get a node token",
            ));
        };
        let _join = self.join.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self
            .store
            .node(node_id)?
            .ok_or(Error::NodeRefused(NODE_REMOVED))?;
        let now = self.now_secs();
        record.issued_version += 1;
        let token = self.sign_node(
            &record.id,
            &record.cluster_id,
            record.issued_version,
            record.token_expires_at,
        )?;
        record.token_expires_at = token.expires_at;
        record.updated_at = now;
        record.last_seen = Some(now);
        self.store.upsert_node(&record, &[])?;
        let mut state = self.state()?;
        Self::remember(&mut state, &record);
        if let Some(live) = state.nodes.get_mut(&record.id) {
            live.last_seen = Some(now);
        }
        Ok(token)
    }

    /// A heartbeat: the node is alive now. Memory only; [`Registry::flush`] persists it.
    pub fn heartbeat(&self, node_id: &str) -> Result<()> {
        let now = self.now_secs();
        let mut state = self.state()?;
        let Some(live) = state.nodes.get_mut(node_id) else {
            return Err(Error::NodeRefused(NODE_REMOVED));
        };
        live.last_seen = Some(now);
        state.dirty.insert(node_id.to_owned(), Some(now));
        Ok(())
    }

    /// Deregister: the node is offline from now on (durably), until it registers or
    /// heartbeats again. Its identity stays valid for its next start.
    pub fn deregister(&self, node_id: &str) -> Result<()> {
        {
            let mut state = self.state()?;
            if let Some(live) = state.nodes.get_mut(node_id) {
                live.last_seen = None;
            }
            state.dirty.remove(node_id);
        }
        self.store.touch_nodes(&[(node_id.to_owned(), None)])
    }

    /// Writes pending signs of life in one transaction and picks up changes other processes
    /// made (`manta-manager node remove`, a deleted cluster); the server calls it every
    /// interval, so such changes reach a running manager within one interval.
    pub fn flush(&self) -> Result<usize> {
        let pending: Vec<(String, Option<i64>)> = {
            let mut state = self.state()?;
            state.dirty.drain().collect()
        };
        self.store.touch_nodes(&pending)?;
        // Registrations write the store, then memory, under `join`: holding it here keeps a
        // node registered between the read below and the update from being forgotten.
        let _join = self.join.lock().unwrap_or_else(|p| p.into_inner());
        let stored: HashMap<String, (String, u64)> = self
            .store
            .node_versions()?
            .into_iter()
            .map(|(id, cluster, version)| (id, (cluster, version)))
            .collect();
        let mut state = self.state()?;
        let gone: Vec<String> = state
            .nodes
            .iter()
            .filter(|(id, live)| {
                stored
                    .get(*id)
                    .is_none_or(|(cluster, _)| *cluster != live.cluster_id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            Self::forget(&mut state, &id);
        }
        for (id, (_, version)) in &stored {
            if let Some(live) = state.nodes.get_mut(id) {
                live.issued_version = live.issued_version.max(*version);
            }
        }
        Ok(pending.len())
    }

    fn view(&self, record: NodeRecord, now: i64) -> Result<NodeView> {
        let state = self.state()?;
        let last_seen = match state.nodes.get(&record.id) {
            Some(live) => live.last_seen,
            None => record.last_seen,
        };
        Ok(NodeView {
            online: self.is_online(last_seen, now),
            last_seen,
            record,
        })
    }

    /// The nodes of a cluster (or all), with liveness.
    pub fn list(&self, cluster_id: Option<&str>) -> Result<Vec<NodeView>> {
        let now = self.now_secs();
        self.store
            .list_nodes(cluster_id)?
            .into_iter()
            .map(|r| self.view(r, now))
            .collect()
    }

    /// One node with liveness; `None` when there is none (or it is in another cluster).
    pub fn get(&self, cluster_id: Option<&str>, node_id: &str) -> Result<Option<NodeView>> {
        let now = self.now_secs();
        match self.store.node(node_id)? {
            Some(r) if cluster_id.is_none_or(|c| c == r.cluster_id) => Ok(Some(self.view(r, now)?)),
            _ => Ok(None),
        }
    }

    /// Removes a node: its tokens stop working at once, here and in every manager process on
    /// the same store (see `confirm_registered`). False when there was none.
    pub fn remove(&self, node_id: &str) -> Result<bool> {
        let removed = self.store.delete_node(node_id)?;
        let mut state = self.state()?;
        Self::forget(&mut state, node_id);
        Ok(removed)
    }

    /// Forgets every node of a deleted cluster (the store deleted their rows).
    pub fn forget_cluster(&self, cluster_id: &str) -> Result<()> {
        let mut state = self.state()?;
        let ids: Vec<String> = state
            .nodes
            .iter()
            .filter(|(_, l)| l.cluster_id == cluster_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            Self::forget(&mut state, &id);
        }
        Ok(())
    }

    /// The decoded overview a node sent at registration.
    pub fn overview(record: &NodeRecord) -> NodeOverview {
        // Rows are written from a valid message; a corrupt blob shows as an empty overview.
        NodeOverview::decode(record.overview.as_slice()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningMode;
    use crate::store::SqliteStore;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        registry: Registry,
        cluster: ClusterRecord,
        clock: manta_auth::ManualClock,
    }

    fn fixture(settings: NodeSettings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let clock = manta_auth::ManualClock::starting_now();
        let authority = Arc::new(
            Authority::open_with_clock(
                Arc::clone(&store),
                SigningMode::EdDsa,
                "t",
                86_400,
                clock.shared(),
            )
            .unwrap(),
        );
        let platform =
            crate::platform::Platform::new(Arc::clone(&store), Arc::clone(&authority), settings);
        let cluster = platform.create_cluster("", "c").unwrap();
        let registry = Registry::new(Arc::clone(&store), authority, settings);
        Fixture {
            _dir: dir,
            store,
            registry,
            cluster,
            clock,
        }
    }

    fn join(f: &Fixture, alias: Option<&str>) -> NodeToken {
        let bootstrap = f
            .registry
            .issue_bootstrap(&f.cluster, Duration::from_secs(60))
            .unwrap();
        let caller = f
            .registry
            .authenticate(bootstrap.expose_secret(), NodeAccess::Join)
            .unwrap();
        let overview = NodeOverview {
            alias: alias.map(str::to_owned),
            ..NodeOverview::default()
        };
        f.registry.register(&caller, &overview).unwrap()
    }

    use secrecy::ExposeSecret;

    #[test]
    fn an_expired_node_token_renews_within_the_grace_window_only() {
        let short = NodeSettings {
            node_token_ttl: Duration::from_secs(1),
            ..NodeSettings::default()
        };
        let f = fixture(short);
        let first = join(&f, Some("edge-1"));
        // Past `exp` plus the verifier's leeway.
        f.clock.advance(Duration::from_millis(2100));
        let token = first.token.expose_secret();
        let err = f
            .registry
            .authenticate(token, NodeAccess::Identity)
            .unwrap_err();
        assert!(matches!(err, Error::Token(TokenProblem::Expired)), "{err}");
        let caller = f.registry.authenticate(token, NodeAccess::Renew).unwrap();
        let renewed = f.registry.renew(&caller).unwrap();
        assert_eq!(renewed.node_id, first.node_id);
        assert_eq!(renewed.issued_version, 2);
        assert!(renewed.expires_at > first.expires_at);

        // With no grace at all, the same situation is refused with what to do.
        let strict = fixture(NodeSettings {
            node_token_ttl: Duration::from_secs(1),
            renew_grace: Duration::ZERO,
            ..NodeSettings::default()
        });
        let t = join(&strict, None);
        strict.clock.advance(Duration::from_millis(2100));
        let err = strict
            .registry
            .authenticate(t.token.expose_secret(), NodeAccess::Renew)
            .unwrap_err();
        assert!(err.to_string().contains("register the node again"), "{err}");
    }

    #[test]
    fn heartbeats_reach_the_store_only_on_flush_and_deregistration_is_durable() {
        let f = fixture(NodeSettings::default());
        let n = join(&f, Some("edge-2"));
        f.store.touch_nodes(&[(n.node_id.clone(), None)]).unwrap();
        f.registry.heartbeat(&n.node_id).unwrap();
        assert_eq!(f.store.node(&n.node_id).unwrap().unwrap().last_seen, None);
        assert_eq!(f.registry.flush().unwrap(), 1);
        assert!(
            f.store
                .node(&n.node_id)
                .unwrap()
                .unwrap()
                .last_seen
                .is_some()
        );
        assert!(f.registry.get(None, &n.node_id).unwrap().unwrap().online);
        f.registry.deregister(&n.node_id).unwrap();
        assert_eq!(f.store.node(&n.node_id).unwrap().unwrap().last_seen, None);
        assert!(!f.registry.get(None, &n.node_id).unwrap().unwrap().online);
    }

    #[test]
    fn a_node_removed_by_another_process_stops_working_at_once() {
        let f = fixture(NodeSettings::default());
        let n = join(&f, Some("edge-3"));
        let token = n.token.expose_secret();
        f.registry
            .authenticate(token, NodeAccess::Identity)
            .unwrap();
        // What `manta-manager node remove` does from another process: the row goes, this
        // registry's memory does not know yet.
        assert!(f.store.delete_node(&n.node_id).unwrap());
        let err = f
            .registry
            .authenticate(token, NodeAccess::Identity)
            .unwrap_err();
        assert!(err.to_string().contains("removed"), "{err}");
        // Its alias is free again.
        join(&f, Some("edge-3"));
    }

    #[test]
    fn revoking_bootstrap_tokens_is_exact_to_the_commit() {
        let f = fixture(NodeSettings::default());
        let day = Duration::from_secs(86_400);
        let before = f.registry.issue_bootstrap(&f.cluster, day).unwrap();
        f.registry
            .authenticate(before.expose_secret(), NodeAccess::Join)
            .unwrap();
        assert!(
            f.store
                .revoke_bootstrap(&f.cluster.id, f.registry.now_secs())
                .unwrap()
        );
        let err = f
            .registry
            .authenticate(before.expose_secret(), NodeAccess::Join)
            .unwrap_err();
        assert!(err.to_string().contains("revoked bootstrap token"), "{err}");
        // Issued right after the revocation, within the same second: it joins.
        let cluster = f.store.cluster(&f.cluster.id).unwrap().unwrap();
        let after = f.registry.issue_bootstrap(&cluster, day).unwrap();
        f.registry
            .authenticate(after.expose_secret(), NodeAccess::Join)
            .unwrap();
        // One minted from a cluster read before the revocation does not.
        let stale = f.registry.issue_bootstrap(&f.cluster, day).unwrap();
        assert!(
            f.registry
                .authenticate(stale.expose_secret(), NodeAccess::Join)
                .is_err()
        );
    }

    #[test]
    fn bootstrap_tokens_have_a_maximum_lifetime() {
        let f = fixture(NodeSettings::default());
        let err = f
            .registry
            .issue_bootstrap(&f.cluster, Duration::from_secs(99_999 * 86_400))
            .unwrap_err();
        assert!(
            err.to_string().contains("at most 30 days") && err.to_string().contains("--ttl"),
            "{err}"
        );
        f.registry
            .issue_bootstrap(&f.cluster, Duration::from_secs(30 * 86_400))
            .unwrap();
    }

    #[test]
    fn aliases_are_checked_and_node_tokens_do_not_show_in_debug() {
        for bad in ["", "has space", "x".repeat(65).as_str(), "semi;colon"] {
            let err = check_alias(bad).unwrap_err();
            assert!(err.to_string().contains("[identity] alias"), "{bad}: {err}");
        }
        check_alias("gpu-worker_1.lab").unwrap();
        let f = fixture(NodeSettings::default());
        let n = join(&f, None);
        let shown = format!("{n:?}");
        assert!(shown.contains("[REDACTED]"));
        assert!(!shown.contains(n.token.expose_secret()));
        assert_eq!(n.node_id.len(), 24);
    }
}
