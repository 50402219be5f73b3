//! The node API: `NodeService` registration and renewal (the published protocol) and
//! `manta.v1.NodeSession` heartbeat and deregistration. The authorization layer has already
//! verified the node's token and put a [`NodeCaller`] into the request.

use std::borrow::Cow;
use std::sync::Arc;

use manta_proto::common::informations::{NodeOverview, Registration};
use manta_proto::common::system::{Empty, Jwt, Ok as NodeOk};
use manta_proto::manta::v1::node_session_server::NodeSession;
use manta_proto::manta::v1::{
    DeregisterRequest, DeregisterResponse, HeartbeatRequest, HeartbeatResponse,
};
use manta_proto::node::node_service::node_service_server::NodeService;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};

use super::{run, ts};
use crate::audit::{Decision, Who};
use crate::identity::Core;
use crate::keys::TokenProblem;
use crate::registry::{NodeAccess, NodeCaller};

/// The node-side caller the authorization layer verified; absent means the layer was
/// bypassed, which is refused rather than trusted.
pub(crate) fn node_caller<T>(request: &Request<T>) -> Result<NodeCaller, Status> {
    request
        .extensions()
        .get::<NodeCaller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(TokenProblem::Missing.message()))
}

/// Node authorization for the layer: verifies the node-side token through the registry and
/// audits the decision. Allowed heartbeats are not recorded (like health checks, they arrive
/// every few seconds from every node); denials always are.
pub(crate) fn authorize_node(
    core: &Core,
    req: &http::Request<tonic::body::Body>,
    access: NodeAccess,
) -> Result<NodeCaller, Status> {
    let path = req.uri().path();
    let (peer, client) = crate::authz::peer_of(req.extensions());
    let audit = |who: Who, allowed: bool, reason: String| {
        core.audit().record(Decision {
            who,
            method: Cow::Owned(path.to_owned()),
            resource: None,
            allowed,
            reason: Cow::Owned(reason),
            peer,
            client,
        });
    };
    let Some(token) = crate::authz::bearer(req.headers()) else {
        audit(Who::Nobody, false, "missing token".into());
        return Err(Status::unauthenticated(TokenProblem::Missing.message()));
    };
    match core.platform().registry().authenticate(token, access) {
        Ok(node) => {
            if !path.ends_with("/Heartbeat") {
                let reason = match &node {
                    NodeCaller::Bootstrap { .. } => "bootstrap token",
                    NodeCaller::Node { .. } => "node token",
                };
                audit(
                    Who::Node {
                        subject: node.subject(),
                        token_id: node.token_id().to_owned(),
                    },
                    true,
                    reason.into(),
                );
            }
            Ok(node)
        }
        Err(e) => {
            audit(Who::Nobody, false, e.to_string());
            Err(crate::authz::status_of(&e))
        }
    }
}

fn identity(caller: &NodeCaller) -> Result<String, Status> {
    match caller {
        NodeCaller::Node { node_id, .. } => Ok(node_id.clone()),
        NodeCaller::Bootstrap { .. } => Err(Status::permission_denied(
            "permission denied: a bootstrap token can only register a node; call RegisterNode \
             and use the node token it returns",
        )),
    }
}

/// `node.node_service.NodeService`: IsAvailable, RegisterNode, RenewNodeToken, SetNodeStatus
/// and SetSystemSummary are served; task, result and WireGuard methods answer UNIMPLEMENTED
/// until scheduling lands.
#[derive(Debug, Clone)]
pub struct NodeApi {
    core: Arc<Core>,
}

impl NodeApi {
    /// The service over an engine.
    pub fn new(core: Arc<Core>) -> Self {
        NodeApi { core }
    }
}

type R<T> = Result<Response<T>, Status>;
use manta_proto::common::{informations as inf, system as sys};

#[tonic::async_trait]
impl NodeService for NodeApi {
    async fn is_available(&self, _request: Request<Empty>) -> R<NodeOk> {
        Ok(Response::new(NodeOk {}))
    }

    async fn register_node(&self, request: Request<NodeOverview>) -> R<Registration> {
        let caller = node_caller(&request)?;
        let overview = request.into_inner();
        let interval = self
            .core
            .platform()
            .registry()
            .settings()
            .heartbeat_interval;
        let issued = run(&self.core, move |core| {
            core.platform().registry().register(&caller, &overview)
        })
        .await?;
        tracing::info!(
            node_id = %issued.node_id,
            cluster_id = %issued.cluster_id,
            issued_version = issued.issued_version,
            "node registered"
        );
        // With a broker, the published node speaks MQTT to it; without one it would exit on
        // the empty host, and our node keeps to `manta.v1.NodeSession`.
        let (mqtt_broker_host, mqtt_broker_port, mqtt_topics) = match self.core.mqtt() {
            Some(m) => {
                let (host, port) = m.settings().advertise.clone();
                (
                    host,
                    u32::from(port),
                    crate::mqtt::node_topics(&issued.node_id),
                )
            }
            None => (String::new(), 0, Vec::new()),
        };
        Ok(Response::new(Registration {
            mqtt_broker_host,
            mqtt_broker_port,
            mqtt_topics,
            node_token: Some(issued.token.expose_secret().to_owned()),
            cluster_id: Some(issued.cluster_id.clone()),
            node_id: Some(issued.node_id.clone()),
            heartbeat_interval_seconds: Some(u32::try_from(interval.as_secs()).unwrap_or(u32::MAX)),
        }))
    }

    async fn renew_node_token(&self, request: Request<Empty>) -> R<Jwt> {
        let caller = node_caller(&request)?;
        let issued = run(&self.core, move |core| {
            core.platform().registry().renew(&caller)
        })
        .await?;
        Ok(Response::new(Jwt {
            token: issued.token.expose_secret().to_owned(),
        }))
    }

    /// Authenticated, so unlike the bare MQTT notice it is trusted: CONNECTED is a sign of
    /// life, DISCONNECTED marks the node offline at once.
    async fn set_node_status(&self, request: Request<inf::NodeStatus>) -> R<sys::Ok> {
        let node_id = identity(&node_caller(&request)?)?;
        let status = request.into_inner().status;
        if status == inf::NodeStatusEnum::Disconnected as i32 {
            run(&self.core, move |core| {
                core.platform().registry().deregister(&node_id)
            })
            .await?;
        } else {
            self.core
                .platform()
                .registry()
                .heartbeat(&node_id)
                .map_err(|e| crate::authz::status_of(&e))?;
        }
        Ok(Response::new(sys::Ok {}))
    }
    /// The answer to `collect_information` `set_system_summary`: a sign of life.
    async fn set_system_summary(&self, request: Request<inf::MetricsSnapshot>) -> R<sys::Ok> {
        let node_id = identity(&node_caller(&request)?)?;
        // Memory only (no blocking I/O), so it runs on the async worker directly.
        self.core
            .platform()
            .registry()
            .heartbeat(&node_id)
            .map_err(|e| crate::authz::status_of(&e))?;
        Ok(Response::new(sys::Ok {}))
    }
}

/// `manta.v1.NodeSession`: heartbeat and deregistration with the node token in metadata.
#[derive(Debug, Clone)]
pub struct NodeSessionApi {
    core: Arc<Core>,
}

impl NodeSessionApi {
    /// The service over an engine.
    pub fn new(core: Arc<Core>) -> Self {
        NodeSessionApi { core }
    }
}

#[tonic::async_trait]
impl NodeSession for NodeSessionApi {
    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> R<HeartbeatResponse> {
        let caller = node_caller(&request)?;
        let node_id = identity(&caller)?;
        let NodeCaller::Node { expires_at, .. } = caller else {
            return Err(Status::internal("node caller changed kind"));
        };
        let registry = self.core.platform().registry();
        // Memory only (no blocking I/O), so it runs on the async worker directly.
        registry
            .heartbeat(&node_id)
            .map_err(|e| crate::authz::status_of(&e))?;
        let interval = registry.settings().heartbeat_interval;
        Ok(Response::new(HeartbeatResponse {
            interval_seconds: u32::try_from(interval.as_secs()).unwrap_or(u32::MAX),
            token_expires_at: Some(ts(expires_at)),
        }))
    }

    async fn deregister(&self, request: Request<DeregisterRequest>) -> R<DeregisterResponse> {
        let caller = node_caller(&request)?;
        let node_id = identity(&caller)?;
        let reason: String = request
            .get_ref()
            .reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        tracing::info!(node_id = %node_id, reason = %reason, "node deregistered");
        run(&self.core, move |core| {
            core.platform().registry().deregister(&node_id)
        })
        .await?;
        Ok(Response::new(DeregisterResponse {}))
    }
}
