//! The gRPC services: the published User API, clusters, swarms, modules and the node API, the
//! `manta.v1` token and node session services, and the methods not served yet.

mod cluster;
mod module;
mod node;
mod swarm;
mod tokens;
mod unserved;
mod user;

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;

use tonic::Status;

pub use cluster::ClusterApi;
pub use module::ModuleApi;
pub(crate) use node::authorize_node;
pub use node::{NodeApi, NodeSessionApi};
pub use swarm::SwarmApi;
pub use tokens::TokenApi;
pub use unserved::{SERVED, Unserved, UnservedLayer};
pub use user::UserApi;

use crate::audit::{Decision, Who};
use crate::authz::status_of;
use crate::error::Result;
use crate::identity::{Caller, Core};

/// The boxed server stream type used by streaming methods.
pub type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// The caller the authorization layer verified; its absence means the layer was bypassed,
/// which is refused rather than trusted.
pub(crate) fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(crate::keys::TokenProblem::Missing.message()))
}

/// The peer address as a string for rate limiting and audit.
pub(crate) fn peer<T>(request: &tonic::Request<T>) -> String {
    let addr = request
        .extensions()
        .get::<manta_tls::PeerInfo>()
        .and_then(manta_tls::PeerInfo::remote_addr)
        .or_else(|| request.remote_addr());
    addr.map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs engine work (argon2, durable writes) on the blocking pool and maps its error.
pub(crate) async fn run<T, F>(core: &Arc<Core>, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(&Core) -> Result<T> + Send + 'static,
{
    let core = Arc::clone(core);
    match tokio::task::spawn_blocking(move || f(&core)).await {
        Ok(result) => result.map_err(|e| status_of(&e)),
        Err(join) => {
            tracing::error!(error = %join, "a request handler panicked");
            Err(Status::internal(
                "internal manager error; the manager log has the details",
            ))
        }
    }
}

/// Records a resource-level decision made inside a handler (the layer cannot see bodies).
pub(crate) fn audit_resource<T>(
    core: &Core,
    request: &tonic::Request<T>,
    method: &str,
    caller: &Arc<Caller>,
    resource: &str,
    allowed: bool,
    reason: &str,
) {
    let (peer, client) = crate::authz::peer_of(request.extensions());
    core.audit().record(Decision {
        who: Who::User(Arc::clone(caller)),
        method: Cow::Owned(method.to_owned()),
        resource: Some(resource.to_owned()),
        allowed,
        reason: Cow::Owned(reason.to_owned()),
        peer,
        client,
    });
}

/// Runs `f` on the blocking pool for the verified caller and records the resource-level
/// outcome in the audit trail (the layer already recorded the scope decision).
pub(crate) async fn act<T, M, F>(
    core: &Arc<Core>,
    request: &tonic::Request<M>,
    path: &str,
    resource: &str,
    f: F,
) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(&Core, &Caller) -> Result<T> + Send + 'static,
{
    let who = caller(request)?;
    let who2 = who.clone();
    let result = run(core, move |core| f(core, &who2)).await;
    let reason = match &result {
        Ok(_) => "allowed".to_owned(),
        Err(s) => format!("refused: {:?}", s.code()),
    };
    audit_resource(core, request, path, &who, resource, result.is_ok(), &reason);
    result
}

/// A protobuf timestamp from unix seconds.
pub(crate) fn ts(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}
