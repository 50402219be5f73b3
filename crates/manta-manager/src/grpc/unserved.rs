//! The methods this manager does not serve. Their bodies are tonic's generated default
//! stubs (`cargo xtask codegen` sets `generate_default_stubs`), which answer UNIMPLEMENTED
//! with a bare "Not yet implemented"; [`UnservedLayer`] rewrites that answer, and the
//! router's for a service not registered at all, into one that names the method and what
//! this manager does serve on that service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use manta_proto::common::system::{Empty, Response as Reply};
use tonic::body::Body;
use tonic::{Code, Request, Response, Status};

/// NetworkManagement: this manager serves only `IsAvailable`, which the SDK's
/// `is_available()` calls on all five services; every other method keeps its default stub.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unserved;

#[tonic::async_trait]
impl manta_proto::core::user_services::network_management_server::NetworkManagement for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        Ok(Response::new(Reply {
            message: "available".into(),
        }))
    }
}

/// What this manager serves, by published gRPC service: the full service name and the
/// methods its implementation in `grpc/` overrides (a test checks the names against the
/// descriptor). Bare UNIMPLEMENTED answers are rewritten for these services only; health and
/// reflection answer for themselves.
pub const SERVED: &[(&str, &[&str])] = &[
    // Not registered: every call reaches the router's fallback.
    ("core.contexts.platform.resources.ResourceManagement", &[]),
    (
        "core.user_services.UserManagement",
        &[
            "IsAvailable",
            "SignIn",
            "Logout",
            "GetUser",
            "RefreshUserToken",
            "ListUserIds",
            "StreamUsers",
            "DeleteUser",
            "AddUser",
            "UpdateUserAuthorization",
            "ResolveUserDisplayNames",
        ],
    ),
    (
        "core.user_services.ClusterManagement",
        &[
            "IsAvailable",
            "CreateCluster",
            "StartCluster",
            "StopCluster",
            "DeleteCluster",
            "ListClusterIds",
            "StreamClusters",
            "GetCluster",
            "ListNodeIds",
            "StreamNodes",
            "RemoveNode",
            "GetNode",
            "ListAvailableNodeIds",
        ],
    ),
    (
        "core.user_services.SwarmManagement",
        &[
            "IsAvailable",
            "SendSwarm",
            "ListSwarmIds",
            "StreamSwarms",
            "StreamSwarm",
            "GetSwarm",
            "StartSwarm",
            "StopSwarm",
            "RemoveSwarm",
            "SelectResults",
            "ListResultTags",
            "InitializeGlobal",
            "ListGlobalTags",
            "InitializeNetworks",
        ],
    ),
    (
        "core.user_services.ModuleManagement",
        &["IsAvailable", "SendModule", "GetModule"],
    ),
    ("core.user_services.NetworkManagement", &["IsAvailable"]),
    (
        "node.node_service.NodeService",
        &[
            "IsAvailable",
            "RegisterNode",
            "RenewNodeToken",
            "SetNodeStatus",
            "SetSystemSummary",
        ],
    ),
    ("manta.v1.NodeSession", &["Heartbeat", "Deregister"]),
    (
        "manta.v1.TokenService",
        &[
            "CreateSession",
            "RefreshSession",
            "RevokeSession",
            "CreateApiToken",
            "ListApiTokens",
            "RevokeApiToken",
            "GetJwks",
        ],
    ),
];

/// Longest method name echoed in a message; longer ones are cut (the path is attacker input).
const MAX_SHOWN: usize = 64;

/// The UNIMPLEMENTED message for `/package.Service/Method`, or `None` for a service that is
/// not one of [`SERVED`].
pub(crate) fn message(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let served = SERVED
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, methods)| *methods)?;
    let short = service.rsplit('.').next().unwrap_or(service);
    let method = match method.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{}...", &method[..cut]),
        None => method.to_owned(),
    };
    let serves = if served.is_empty() {
        "no method".to_owned()
    } else {
        served.join(", ")
    };
    Some(format!(
        "{short}/{method} is not served by this manager, which serves {serves} of {short}; \
         use a full Manta deployment for {method}"
    ))
}

/// Rewrites the bare UNIMPLEMENTED answers of tonic's default stubs and of its router (a
/// service not registered) with [`message`]. Answers with a message of their own (such as
/// the authorization layer's "unknown method") pass unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnservedLayer;

impl<S> tower::Layer<S> for UnservedLayer {
    type Service = UnservedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnservedService { inner }
    }
}

/// The service made by [`UnservedLayer`].
#[derive(Debug, Clone)]
pub struct UnservedService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What tonic's generated default stubs say.
const DEFAULT_STUB_MESSAGE: &str = "Not yet implemented";

impl<S, B> tower::Service<http::Request<B>> for UnservedService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let call = self.inner.call(req);
        Box::pin(async move {
            let mut response = call.await?;
            if is_bare_unimplemented(response.headers())
                && let Some(text) = message(&path)
            {
                // Only fails for a message that cannot be encoded; ours always can.
                let _ = Status::unimplemented(text).add_header(response.headers_mut());
            }
            Ok(response)
        })
    }
}

/// An UNIMPLEMENTED trailers-only answer with no message or the default stub's.
fn is_bare_unimplemented(headers: &http::HeaderMap) -> bool {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    if code != Some(Code::Unimplemented as i32) {
        return false;
    }
    headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|m| m.is_empty() || m == DEFAULT_STUB_MESSAGE || m == "Not%20yet%20implemented")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_what_is_served_and_what_is_not() {
        let m = message("/core.user_services.UserManagement/RegisterUser").unwrap();
        assert!(
            m.starts_with(
                "UserManagement/RegisterUser is not served by this manager, which serves \
                 IsAvailable, SignIn, Logout, GetUser,"
            ),
            "{m}"
        );
        assert!(
            m.ends_with("of UserManagement; use a full Manta deployment for RegisterUser"),
            "{m}"
        );
        let m =
            message("/core.contexts.platform.resources.ResourceManagement/ListResources").unwrap();
        assert_eq!(
            m,
            "ResourceManagement/ListResources is not served by this manager, which serves no \
             method of ResourceManagement; use a full Manta deployment for ListResources"
        );
        assert_eq!(message("/grpc.health.v1.Health/Nope"), None);
        let long = message(&format!("/manta.v1.TokenService/{}", "x".repeat(8192))).unwrap();
        assert!(long.len() < 400, "{long}");
    }

    /// Every served method exists in the published descriptor, so the list cannot name a
    /// method by a wrong spelling.
    #[test]
    fn every_served_method_is_a_method_of_its_service() {
        let text = String::from_utf8_lossy(manta_proto::FILE_DESCRIPTOR_SET);
        for (service, methods) in SERVED {
            let short = service.rsplit('.').next().unwrap();
            assert!(text.contains(short), "{service}");
            for m in *methods {
                assert!(text.contains(m), "{service}/{m}");
            }
        }
    }
}
