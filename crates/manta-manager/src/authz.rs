//! Authorization: the one table of required access per RPC, and the tower layer that enforces
//! it before any handler runs, auditing every decision.
//!
//! [`docs/authorization.md`](https://github.com/mantatech/manta-rs/blob/main/docs/authorization.md) shows the same table; a test fails when the two differ, and another
//! fails when a method of `proto/` has no entry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;

use manta_tls::PeerIdentity;

use crate::audit::{Decision, Who};
use crate::error::Error;
use crate::identity::{Caller, Core};
use crate::keys::TokenProblem;
use crate::store::TokenKind;

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (sign-in, health, reflection, JWKS, refresh with a refresh token).
    Public,
    /// Any valid user token; handlers limit what the caller sees (their own data).
    Authenticated,
    /// A valid user token carrying this scope.
    Scope(&'static str),
    /// A node identity token (issued at node registration).
    Node,
    /// A node bootstrap token of a cluster or a node identity token (joining).
    NodeJoin,
    /// A node identity token, also one expired within the renewal grace window.
    NodeRenew,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Scope(s) => write!(f, "`{s}`"),
            Access::Node => f.write_str("node"),
            Access::NodeJoin => f.write_str("node or bootstrap"),
            Access::NodeRenew => f.write_str("node, expired within grace"),
        }
    }
}

const UM: &str = "/core.user_services.UserManagement/";
const CM: &str = "/core.user_services.ClusterManagement/";
const SM: &str = "/core.user_services.SwarmManagement/";
const MM: &str = "/core.user_services.ModuleManagement/";
const NM: &str = "/core.user_services.NetworkManagement/";
const RM: &str = "/core.contexts.platform.resources.ResourceManagement/";
const NS: &str = "/node.node_service.NodeService/";
const TS: &str = "/manta.v1.TokenService/";
const NX: &str = "/manta.v1.NodeSession/";

/// Every RPC and what it requires: (service prefix, method, access).
pub const TABLE: &[(&str, &str, Access)] = &[
    (UM, "IsAvailable", Access::Authenticated),
    (UM, "RegisterUser", Access::Public),
    (UM, "ValidateUser", Access::Public),
    (UM, "SignIn", Access::Public),
    (UM, "Logout", Access::Authenticated),
    (UM, "GetUser", Access::Authenticated),
    (UM, "RefreshUserToken", Access::Authenticated),
    (UM, "ListUserIds", Access::Scope("user:list")),
    (UM, "StreamUsers", Access::Scope("user:list")),
    (UM, "DeleteUser", Access::Scope("user:delete")),
    (UM, "AddUser", Access::Scope("user:create")),
    (UM, "UpdateUserAuthorization", Access::Scope("user:update")),
    (UM, "CreateRoleDefinition", Access::Scope("role:create")),
    (UM, "GrantRole", Access::Scope("role:update")),
    (UM, "RevokeRole", Access::Scope("role:update")),
    (UM, "ListRoleAssignments", Access::Scope("role:read")),
    (UM, "ListRoleDefinitions", Access::Scope("role:read")),
    (UM, "ResolveUserDisplayNames", Access::Authenticated),
    (UM, "RequestPasswordReset", Access::Public),
    (UM, "ResetPassword", Access::Public),
    (UM, "ResendVerification", Access::Public),
    (CM, "IsAvailable", Access::Authenticated),
    (CM, "CreateCluster", Access::Scope("cluster:create")),
    (CM, "StartCluster", Access::Scope("cluster:write")),
    (CM, "StopCluster", Access::Scope("cluster:write")),
    (CM, "DeleteCluster", Access::Scope("cluster:write")),
    (CM, "ListClusterIds", Access::Scope("cluster:read")),
    (CM, "StreamClusters", Access::Scope("cluster:read")),
    (CM, "GetCluster", Access::Scope("cluster:read")),
    (CM, "UpdateClusterRuntime", Access::Scope("cluster:write")),
    (CM, "ListNodeIds", Access::Scope("cluster:read")),
    (CM, "StreamNodes", Access::Scope("cluster:read")),
    (CM, "StopNode", Access::Scope("cluster:write")),
    (CM, "RemoveNode", Access::Scope("cluster:write")),
    (CM, "UpdateNodeSoftware", Access::Scope("cluster:write")),
    (CM, "StreamNodeUpdateHistory", Access::Scope("cluster:read")),
    (
        CM,
        "ListNodeSoftwareVersions",
        Access::Scope("cluster:read"),
    ),
    (CM, "GetNode", Access::Scope("cluster:read")),
    (CM, "GetNodeResources", Access::Scope("cluster:read")),
    (CM, "StreamNodeResources", Access::Scope("cluster:read")),
    (CM, "ListAvailableNodeIds", Access::Scope("cluster:read")),
    (CM, "CollectErrors", Access::Scope("cluster:read")),
    (CM, "SelectTasks", Access::Scope("cluster:read")),
    (CM, "StreamNodeTaskStatuses", Access::Scope("cluster:read")),
    (SM, "IsAvailable", Access::Authenticated),
    (SM, "SendSwarm", Access::Scope("swarm:deploy")),
    (SM, "ListSwarmIds", Access::Scope("swarm:read")),
    (SM, "StreamSwarms", Access::Scope("swarm:read")),
    (SM, "StreamSwarm", Access::Scope("swarm:read")),
    (SM, "GetSwarm", Access::Scope("swarm:read")),
    (SM, "StreamSwarmTasks", Access::Scope("swarm:read")),
    (SM, "StreamSwarmTaskStatuses", Access::Scope("swarm:read")),
    (SM, "StartSwarm", Access::Scope("swarm:deploy")),
    (SM, "StopSwarm", Access::Scope("swarm:stop")),
    (SM, "RemoveSwarm", Access::Scope("swarm:stop")),
    (SM, "SelectResults", Access::Scope("results:read")),
    (SM, "StreamResults", Access::Scope("results:read")),
    (SM, "DeleteResults", Access::Scope("results:delete")),
    (SM, "ListResultTags", Access::Scope("results:read")),
    (SM, "CollectLogs", Access::Scope("swarm:read")),
    (SM, "StreamLogs", Access::Scope("swarm:read")),
    (SM, "InitializeGlobal", Access::Scope("swarm:deploy")),
    (SM, "SelectGlobal", Access::Scope("results:read")),
    (SM, "ListGlobalTags", Access::Scope("results:read")),
    (SM, "InitializeNetworks", Access::Scope("swarm:deploy")),
    (NM, "IsAvailable", Access::Authenticated),
    (NM, "GetNetworkStatus", Access::Scope("cluster:read")),
    (NM, "CreateNetwork", Access::Scope("cluster:write")),
    (NM, "ListNetworks", Access::Scope("cluster:read")),
    (NM, "DeleteNetwork", Access::Scope("cluster:write")),
    (MM, "IsAvailable", Access::Authenticated),
    (MM, "SendModule", Access::Scope("module:upload")),
    (MM, "ListModuleIds", Access::Scope("module:read")),
    (MM, "StreamModules", Access::Scope("module:read")),
    (MM, "GetModule", Access::Scope("module:read")),
    (MM, "UpdateModule", Access::Scope("module:upload")),
    (MM, "RemoveModule", Access::Scope("module:delete")),
    (RM, "GetResource", Access::Authenticated),
    (RM, "ListAccessibleResources", Access::Authenticated),
    (NS, "IsAvailable", Access::NodeJoin),
    (NS, "SetNodeStatus", Access::Node),
    (NS, "UpdateTask", Access::Node),
    (NS, "AddTaskLogs", Access::Node),
    (NS, "SendError", Access::Node),
    (NS, "RegisterNode", Access::NodeJoin),
    (NS, "RenewNodeToken", Access::NodeRenew),
    (NS, "SetSystemSummary", Access::Node),
    (NS, "SetOverviews", Access::Node),
    (NS, "GetTaskResult", Access::Node),
    (NS, "AddTaskResult", Access::Node),
    (NS, "GetGlobal", Access::Node),
    (NS, "SetGlobal", Access::Node),
    (NS, "StopSwarm", Access::Node),
    (NS, "GetRelation", Access::Node),
    (NS, "ScheduleTask", Access::Node),
    (NS, "RegisterWireGuardNode", Access::Node),
    (NS, "GetWireGuardPeers", Access::Node),
    (NS, "DeregisterWireGuardNode", Access::Node),
    (NS, "UpdateNodeEndpoint", Access::Node),
    (TS, "CreateSession", Access::Public),
    (TS, "RefreshSession", Access::Public),
    (TS, "RevokeSession", Access::Public),
    (TS, "CreateApiToken", Access::Authenticated),
    (TS, "ListApiTokens", Access::Authenticated),
    (TS, "RevokeApiToken", Access::Authenticated),
    (TS, "GetJwks", Access::Public),
    (NX, "Heartbeat", Access::Node),
    (NX, "Deregister", Access::Node),
];

/// Services outside `proto/` that are public as a whole: health checks and reflection.
/// Health checks are not audited (load balancers poll them every few seconds).
pub const PUBLIC_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The methods of [`PUBLIC_SERVICES`] that exist.
const PUBLIC_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// How the audit trail names a method of no table: the caller chose the path, so it is not
/// recorded as sent (a flood of long, distinct paths would grow the store without bound).
pub const UNKNOWN_SERVICE: &str = "<unknown service>";

/// The longest path text an error message repeats back to the caller.
const SHOWN_PATH_CHARS: usize = 128;

static BY_PATH: LazyLock<HashMap<String, Access>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|(svc, method, access)| (format!("{svc}{method}"), *access))
        .collect()
});

/// Every known service prefix with the audit name of its unknown methods,
/// `<prefix><unknown>`, made once so recording one copies nothing.
static UNKNOWN_IN: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    let mut prefixes: Vec<&'static str> = TABLE.iter().map(|(svc, _, _)| *svc).collect();
    prefixes.extend_from_slice(PUBLIC_SERVICES);
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
        .into_iter()
        .map(|p| (p, format!("{p}<unknown>")))
        .collect()
});

/// What a gRPC path requires; `None` for a path in no table (refused).
pub fn access_for(path: &str) -> Option<Access> {
    rule_for(path).map(|(_, access)| access)
}

/// The method name the audit trail records for a path: the path itself when it is a known
/// method, `<service prefix><unknown>` for another method of a known service, and
/// [`UNKNOWN_SERVICE`] otherwise. Always one of a fixed set of static strings, so unknown
/// paths collapse into a few rows whatever the caller sends.
pub fn audited_method(path: &str) -> &'static str {
    if let Some((known, _)) = BY_PATH.get_key_value(path) {
        return known.as_str();
    }
    if let Some(known) = PUBLIC_METHODS.iter().find(|m| **m == path) {
        return known;
    }
    UNKNOWN_IN
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or(UNKNOWN_SERVICE, |(_, name)| name.as_str())
}

/// A caller's path as an error message may repeat it: printable ASCII only (anything else
/// becomes `?`) and at most [`SHOWN_PATH_CHARS`] characters.
fn shown_path(path: &str) -> String {
    let mut shown: String = path
        .chars()
        .take(SHOWN_PATH_CHARS)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if path.chars().nth(SHOWN_PATH_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}

/// The rule of a path with the method name to audit (a static string, so recording a
/// decision does not copy it).
fn rule_for(path: &str) -> Option<(Cow<'static, str>, Access)> {
    if let Some((known, a)) = BY_PATH.get_key_value(path) {
        return Some((Cow::Borrowed(known.as_str()), *a));
    }
    PUBLIC_SERVICES
        .iter()
        .any(|p| path.starts_with(p))
        .then(|| (Cow::Borrowed(audited_method(path)), Access::Public))
}

/// Maps a library error to the gRPC status a client sees; internal details stay in the log.
pub fn status_of(err: &Error) -> Status {
    match err {
        Error::Token(p) => Status::unauthenticated(p.message()),
        Error::BadCredentials | Error::Refresh(_) | Error::SessionEnded => {
            Status::unauthenticated(err.to_string())
        }
        Error::Throttled { .. } => Status::resource_exhausted(err.to_string()),
        Error::NotRefreshable => Status::failed_precondition(err.to_string()),
        Error::UserExists(_) => Status::already_exists(err.to_string()),
        Error::UnknownUser(_) | Error::UnknownToken(_) => Status::not_found(err.to_string()),
        Error::Invalid { .. } | Error::InvalidScope(_) => Status::invalid_argument(err.to_string()),
        Error::ScopeNotHeld(_) | Error::Outranked { .. } | Error::ReauthenticationRequired(_) => {
            Status::permission_denied(err.to_string())
        }
        Error::LastAdmin => Status::failed_precondition(err.to_string()),
        Error::AliasTaken(_) => Status::already_exists(err.to_string()),
        Error::NotFound { .. } | Error::UnknownCluster(_) => Status::not_found(err.to_string()),
        Error::AmbiguousCluster { .. } => Status::invalid_argument(err.to_string()),
        Error::Conflict(_) => Status::failed_precondition(err.to_string()),
        Error::NodeRefused(_) => Status::unauthenticated(err.to_string()),
        Error::NodeForbidden(_) => Status::permission_denied(err.to_string()),
        Error::Storage { .. } => {
            tracing::error!(error = %err, "storage failure while serving a call");
            Status::unavailable("the manager's storage is unavailable; try again shortly")
        }
        _ => {
            tracing::error!(error = %err, "internal failure while serving a call");
            Status::internal("internal manager error; the manager log has the details")
        }
    }
}

/// The peer address and, under mTLS, the verified client certificate identity.
pub(crate) fn peer_of(ext: &http::Extensions) -> (Option<SocketAddr>, Option<&PeerIdentity>) {
    if let Some(info) = ext.get::<manta_tls::PeerInfo>() {
        return (info.remote_addr(), info.identity());
    }
    if let Some(info) = ext.get::<tonic::transport::server::TcpConnectInfo>() {
        return (info.remote_addr(), None);
    }
    (None, None)
}

/// The token from `authorization` metadata: the raw JWT (as the published SDK sends it) or
/// `Bearer <jwt>`.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    // `to_str` only accepts visible ASCII, so byte offsets are character offsets here.
    let scheme = value
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
        && value.as_bytes().get(6).is_none_or(u8::is_ascii_whitespace);
    let token = if scheme {
        value[6..].trim_start()
    } else {
        value
    };
    (!token.is_empty()).then_some(token)
}

/// The authorization layer: verify, decide, audit, then call the handler or refuse.
#[derive(Clone, Debug)]
pub struct AuthzLayer {
    core: Arc<Core>,
    enabled: bool,
}

impl AuthzLayer {
    /// Enforcing authorization.
    pub fn new(core: Arc<Core>) -> Self {
        AuthzLayer {
            core,
            enabled: true,
        }
    }

    /// Lets every call through as an administrator, without tokens or audit. Only for
    /// measuring the cost of authorization; never in a deployment.
    pub fn danger_disabled(core: Arc<Core>) -> Self {
        AuthzLayer {
            core,
            enabled: false,
        }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            core: Arc::clone(&self.core),
            enabled: self.enabled,
        }
    }
}

/// The service made by [`AuthzLayer`].
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    core: Arc<Core>,
    enabled: bool,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Authz<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone is not ready; swap so the ready service handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if let Some(access) = node_access(self.enabled, req.uri().path()) {
            // Node methods take node tokens, verified by the registry (grpc/node.rs).
            return match crate::grpc::authorize_node(&self.core, &req, access) {
                Ok(node) => {
                    req.extensions_mut().insert(node);
                    Box::pin(inner.call(req))
                }
                Err(status) => Box::pin(async move { Ok(status.into_http()) }),
            };
        }
        match self.decide(&req) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    req.extensions_mut().insert(caller);
                }
                Box::pin(inner.call(req))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

/// Which node tokens a node method takes; `None` for user methods (and for every method when
/// authorization is disabled).
fn node_access(enabled: bool, path: &str) -> Option<crate::registry::NodeAccess> {
    use crate::registry::NodeAccess;
    match access_for(path)? {
        _ if !enabled => None,
        Access::Node => Some(NodeAccess::Identity),
        Access::NodeJoin => Some(NodeAccess::Join),
        Access::NodeRenew => Some(NodeAccess::Renew),
        _ => None,
    }
}

/// The caller put into request extensions when authorization is disabled.
static DISABLED_CALLER: LazyLock<Arc<Caller>> = LazyLock::new(|| {
    Arc::new(Caller {
        user_id: String::new(),
        token_id: String::new(),
        kind: TokenKind::Api,
        scopes: vec![crate::scopes::ADMIN.to_owned()],
        session_id: None,
        expires_at: i64::MAX,
        generation: 0,
    })
});

impl<S> Authz<S> {
    fn decide(&self, req: &http::Request<Body>) -> Result<Option<Arc<Caller>>, Status> {
        let path = req.uri().path();
        if !self.enabled {
            return Ok(Some(Arc::clone(&DISABLED_CALLER)));
        }
        let (peer, client) = peer_of(req.extensions());
        let Some((method, access)) = rule_for(path) else {
            self.audit(
                Cow::Borrowed(audited_method(path)),
                Who::Nobody,
                false,
                "unknown method".into(),
                peer,
                client,
            );
            return Err(Status::unimplemented(format!(
                "unknown method {}; this manager serves the methods listed by server reflection",
                shown_path(path)
            )));
        };
        let audit = |who: Who, allowed: bool, reason: Cow<'static, str>| {
            self.audit(method.clone(), who, allowed, reason, peer, client);
        };
        if access == Access::Public {
            if !path.starts_with(PUBLIC_SERVICES[0]) {
                audit(Who::Nobody, true, "public method".into());
            }
            return Ok(None);
        }
        let Some(token) = bearer(req.headers()) else {
            audit(Who::Nobody, false, "missing token".into());
            return Err(Status::unauthenticated(TokenProblem::Missing.message()));
        };
        let caller = match self.core.authenticate(token) {
            Ok(c) => c,
            Err(Error::Token(p)) => {
                audit(Who::Nobody, false, format!("{p:?}").into());
                return Err(Status::unauthenticated(p.message()));
            }
            Err(other) => return Err(status_of(&other)),
        };
        match access {
            Access::Scope(scope) if !caller.has(scope) => {
                audit(
                    Who::User(caller),
                    false,
                    format!("missing scope {scope}").into(),
                );
                Err(Status::permission_denied(format!(
                    "permission denied: {path} needs scope `{scope}`, which your token lacks; \
                     ask an administrator to grant it"
                )))
            }
            Access::Node | Access::NodeJoin | Access::NodeRenew => {
                audit(Who::User(caller), false, "needs a node token".into());
                Err(Status::permission_denied(format!(
                    "permission denied: {path} is for nodes and needs a node token; \
                     user tokens cannot call it"
                )))
            }
            Access::Scope(scope) => {
                audit(Who::User(Arc::clone(&caller)), true, scope.into());
                Ok(Some(caller))
            }
            Access::Authenticated | Access::Public => {
                audit(Who::User(Arc::clone(&caller)), true, "authenticated".into());
                Ok(Some(caller))
            }
        }
    }

    fn audit(
        &self,
        method: Cow<'static, str>,
        who: Who,
        allowed: bool,
        reason: Cow<'static, str>,
        peer: Option<SocketAddr>,
        client: Option<&PeerIdentity>,
    ) {
        self.core.audit().record(Decision {
            who,
            method,
            resource: None,
            allowed,
            reason,
            peer,
            client,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_method_in_proto_has_exactly_one_entry() {
        let set = prost_types::FileDescriptorSet::decode(manta_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for file in &set.file {
            for svc in &file.service {
                for m in &svc.method {
                    methods.push(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
                }
            }
        }
        let mut missing: Vec<_> = methods
            .iter()
            .filter(|m| !BY_PATH.contains_key(*m))
            .collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "methods without an authorization rule: {missing:?}"
        );
        assert_eq!(BY_PATH.len(), TABLE.len(), "duplicate entries in TABLE");
        let extra: Vec<_> = BY_PATH.keys().filter(|k| !methods.contains(k)).collect();
        assert!(
            extra.is_empty(),
            "rules for methods that do not exist: {extra:?}"
        );
    }

    #[test]
    fn table_scopes_are_well_formed() {
        for (_, m, a) in TABLE {
            if let Access::Scope(s) = a {
                crate::scopes::validate(s).unwrap_or_else(|e| panic!("{m}: {e}"));
            }
        }
    }

    #[test]
    fn docs_show_the_same_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/authorization.md"),
        )
        .unwrap();
        let mut wrong = Vec::new();
        for (svc, method, access) in TABLE {
            let row = format!("| `{svc}{method}` | {access} |");
            if !doc.contains(&row) {
                wrong.push(row);
            }
        }
        assert!(
            wrong.is_empty(),
            "docs/authorization.md lacks these rows:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn unknown_paths_have_no_rule_and_health_is_public() {
        assert_eq!(access_for("/x.Y/Z"), None);
        assert_eq!(
            access_for("/grpc.health.v1.Health/Check"),
            Some(Access::Public)
        );
        assert_eq!(
            access_for("/core.user_services.UserManagement/ListUserIds"),
            Some(Access::Scope("user:list"))
        );
    }

    #[test]
    fn unknown_paths_are_audited_as_one_of_a_few_fixed_names() {
        let check = |path: &str, expected: &str| assert_eq!(audited_method(path), expected);
        check(
            "/core.user_services.UserManagement/GetUser",
            "/core.user_services.UserManagement/GetUser",
        );
        check(
            "/core.user_services.UserManagement/GetUserX",
            "/core.user_services.UserManagement/<unknown>",
        );
        check(
            &format!("/grpc.reflection.v1.ServerReflection/{}", "x".repeat(8192)),
            "/grpc.reflection.v1.ServerReflection/<unknown>",
        );
        check(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        );
        check(&format!("/{}", "\u{1b}[2J".repeat(1000)), UNKNOWN_SERVICE);
        check("", UNKNOWN_SERVICE);
        let long = format!("/a\u{7}/{}", "y".repeat(500));
        let shown = shown_path(&long);
        assert!(
            shown.starts_with("/a?/yyy") && shown.ends_with("..."),
            "{shown}"
        );
        assert_eq!(shown.len(), SHOWN_PATH_CHARS + 3);
    }

    #[test]
    fn bearer_accepts_raw_and_prefixed_tokens() {
        let check = |value: Option<&str>, expected: Option<&str>| {
            let mut h = http::HeaderMap::new();
            if let Some(v) = value {
                h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            }
            assert_eq!(bearer(&h), expected, "{value:?}");
        };
        check(Some("abc.def.ghi"), Some("abc.def.ghi"));
        check(Some("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        check(Some("bearer   abc.def.ghi"), Some("abc.def.ghi"));
        check(Some("Bearer "), None);
        check(Some(""), None);
        check(None, None);
    }
}
