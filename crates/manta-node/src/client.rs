//! The node's conversation with the manager: `IsAvailable`, `RegisterNode`,
//! `RenewNodeToken` (NodeService) and `Heartbeat`, `Deregister` (`manta.v1.NodeSession`),
//! with gRPC statuses mapped to [`NodeError`] so they never leave this crate.

use std::time::Duration;

use manta_auth::{RefreshError, RefreshFuture, Refresher};
use manta_config::{Env, NodeConfig};
use manta_proto::common::informations::{ExecutionMode, NodeOverview, PlatformInfo, Registration};
use manta_proto::common::system::Empty;
use manta_proto::manta::v1::node_session_client::NodeSessionClient;
use manta_proto::manta::v1::{DeregisterRequest, HeartbeatRequest, HeartbeatResponse};
use manta_proto::node::node_service::node_service_client::NodeServiceClient;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::error::NodeError;
use crate::identity::NodeIdentity;

/// This agent's version, sent in registrations and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Per-call deadline: the published client waits 45 s; a node agent on a health loop
/// wants to learn sooner that the manager is gone.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the manager (lazily connected, reconnected by tonic as needed).
#[derive(Debug, Clone)]
pub struct ManagerClient {
    channel: Channel,
    endpoint: String,
    /// The TLS client the channel connects with, asked why a connection failed.
    tls: Option<manta_tls::ClientTls>,
}

impl ManagerClient {
    /// A client for the manager named by `cfg.network`, with TLS from `cfg.security` when
    /// `use_tls` is set (see [`client_tls`]).
    ///
    /// # Errors
    /// [`NodeError::Tls`] when the certificate folder is unusable or the address invalid.
    pub fn new(cfg: &NodeConfig, env: &Env) -> Result<Self, NodeError> {
        Self::with_tls(cfg, client_tls(cfg, env)?.as_ref())
    }

    /// A client for the manager named by `cfg.network` with TLS material already loaded
    /// (`None`: plaintext, unless the port is 443).
    ///
    /// # Errors
    /// [`NodeError::Tls`] when the address is invalid.
    pub fn with_tls(
        cfg: &NodeConfig,
        tls: Option<&manta_tls::ClientTls>,
    ) -> Result<Self, NodeError> {
        let endpoint = format!("{}:{}", cfg.network.manager_host, cfg.network.manager_port);
        let (ep, connector) = manta_tls::endpoint(&endpoint, tls)?;
        let channel = ep
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect_with_connector_lazy(connector);
        Ok(Self {
            channel,
            endpoint,
            tls: tls.cloned(),
        })
    }

    /// `host:port` of the manager.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `NodeService/IsAvailable` with `token`.
    ///
    /// # Errors
    /// [`NodeError::Unavailable`], [`NodeError::InvalidToken`] or [`NodeError::Refused`].
    pub async fn is_available(&self, token: &SecretString) -> Result<(), NodeError> {
        let mut client = NodeServiceClient::new(self.channel.clone());
        match client.is_available(authorized(Empty {}, token)?).await {
            Ok(_) => Ok(()),
            Err(s) => Err(self.explain("IsAvailable", s, None).await),
        }
    }

    /// [`ManagerClient::map`], after checking whether UNIMPLEMENTED means this port is the
    /// manager's user API (which answers `UserManagement/IsAvailable`, as the node API
    /// does not).
    async fn explain(
        &self,
        operation: &'static str,
        status: Status,
        alias: Option<&str>,
    ) -> NodeError {
        if status.code() == Code::Unimplemented && !is_transport(&status) {
            use manta_proto::core::user_services::user_management_client::UserManagementClient;
            let mut users = UserManagementClient::new(self.channel.clone());
            let probe = tokio::time::timeout(CALL_TIMEOUT, users.is_available(Empty {})).await;
            let user_api = match probe {
                Ok(Ok(_)) => true,
                Ok(Err(s)) => s.code() != Code::Unimplemented && !is_transport(&s),
                Err(_elapsed) => false,
            };
            if user_api {
                return NodeError::WrongService {
                    endpoint: self.endpoint.clone(),
                };
            }
        }
        self.map(operation, status, alias)
    }

    /// `NodeService/RegisterNode` with `token` (bootstrap or node token).
    ///
    /// # Errors
    /// The mapped status; [`NodeError::BadResponse`] when no node token comes back.
    pub async fn register(
        &self,
        token: &SecretString,
        identity: &NodeIdentity,
    ) -> Result<Registered, NodeError> {
        let mut client = NodeServiceClient::new(self.channel.clone());
        let request = authorized(overview(identity), token)?;
        let reg: Registration = match client.register_node(request).await {
            Ok(reg) => reg.into_inner(),
            Err(s) => return Err(self.explain("RegisterNode", s, Some(&identity.alias)).await),
        };
        let bad = |detail: &str| NodeError::BadResponse {
            operation: "RegisterNode",
            detail: detail.to_owned(),
        };
        let node_token = reg
            .node_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| bad("no node token"))?;
        // Not a write: the one read of the token outside the wire and the state file, to
        // check it is a JWT and to learn `node_id`/`cluster_id` from managers that do not
        // send our Registration fields 100/101 (the published protocol).
        let claims = manta_auth::inspect(node_token.expose_secret())
            .map_err(|_| bad("the node token is not a JWT"))?
            .claims;
        let node_id = reg
            .node_id
            .filter(|n| !n.is_empty())
            .or(claims.node_id)
            .ok_or_else(|| bad("no node id"))?;
        Ok(Registered {
            node_token,
            node_id,
            cluster_id: reg
                .cluster_id
                .filter(|c| !c.is_empty())
                .or(claims.cluster_id),
            heartbeat_interval: reg
                .heartbeat_interval_seconds
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
            broker: crate::mqtt::Broker::from_registration(
                &reg.mqtt_broker_host,
                reg.mqtt_broker_port,
                reg.mqtt_topics,
            ),
        })
    }

    /// `NodeService/SetSystemSummary`: the answer to `collect_information`.
    ///
    /// # Errors
    /// The mapped status.
    pub async fn set_system_summary(&self, token: &SecretString) -> Result<(), NodeError> {
        let mut client = NodeServiceClient::new(self.channel.clone());
        let request = authorized(
            manta_proto::common::informations::MetricsSnapshot::default(),
            token,
        )?;
        client
            .set_system_summary(request)
            .await
            .map(|_| ())
            .map_err(|s| self.map("SetSystemSummary", s, None))
    }

    /// `NodeService/SetNodeStatus` CONNECTED: the answer to `collect_information`.
    ///
    /// # Errors
    /// The mapped status.
    pub async fn set_node_status(&self, token: &SecretString) -> Result<(), NodeError> {
        use manta_proto::common::informations::{NodeStatus, NodeStatusEnum};
        let mut client = NodeServiceClient::new(self.channel.clone());
        let status = NodeStatus {
            status: NodeStatusEnum::Connected as i32,
            node_package_version: Some(AGENT_VERSION.to_owned()),
            ..NodeStatus::default()
        };
        client
            .set_node_status(authorized(status, token)?)
            .await
            .map(|_| ())
            .map_err(|s| self.map("SetNodeStatus", s, None))
    }

    /// `NodeService/RenewNodeToken` presenting `current` (which may be expired).
    ///
    /// # Errors
    /// The raw status, for [`NodeRefresher`] to classify.
    async fn renew(&self, current: &SecretString) -> Result<SecretString, Status> {
        let mut client = NodeServiceClient::new(self.channel.clone());
        let request = authorized(Empty {}, current)
            .map_err(|_| Status::invalid_argument("token not ASCII"))?;
        let jwt = client.renew_node_token(request).await?.into_inner();
        Ok(SecretString::from(jwt.token))
    }

    /// `manta.v1.NodeSession/Heartbeat`.
    ///
    /// # Errors
    /// The mapped status.
    pub async fn heartbeat(
        &self,
        token: &SecretString,
        running_tasks: u32,
    ) -> Result<HeartbeatResponse, NodeError> {
        let mut client = NodeSessionClient::new(self.channel.clone());
        let request = authorized(
            HeartbeatRequest {
                running_tasks,
                agent_version: AGENT_VERSION.to_owned(),
            },
            token,
        )?;
        client
            .heartbeat(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.map("Heartbeat", s, None))
    }

    /// `manta.v1.NodeSession/Deregister`.
    ///
    /// # Errors
    /// The mapped status.
    pub async fn deregister(&self, token: &SecretString, reason: &str) -> Result<(), NodeError> {
        let mut client = NodeSessionClient::new(self.channel.clone());
        let request = authorized(
            DeregisterRequest {
                reason: reason.to_owned(),
            },
            token,
        )?;
        client
            .deregister(request)
            .await
            .map(|_| ())
            .map_err(|s| self.map("Deregister", s, None))
    }

    /// Maps a status to the node's error. The manager's messages carry no secrets
    /// ([`docs/authorization.md`](https://github.com/mantatech/manta-rs/blob/main/docs/authorization.md)), so they are kept as detail.
    fn map(&self, operation: &'static str, status: Status, alias: Option<&str>) -> NodeError {
        let detail = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_owned()
        };
        // A manager that requires the client certificate a ca.crt-only folder lacks: a
        // configuration error naming the files to add, not "cannot reach".
        // hyper may fail the call with a bare "operation was canceled" and drop the
        // connection's error, so the TLS client is asked too.
        if is_transport(&status)
            && let Some(refusal) = std::error::Error::source(&status)
                .and_then(manta_tls::TlsError::client_certificate_refusal_in)
                .or_else(|| {
                    self.tls
                        .as_ref()
                        .and_then(manta_tls::ClientTls::client_certificate_refusal)
                })
        {
            return NodeError::Tls(refusal);
        }
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                NodeError::Unavailable {
                    endpoint: self.endpoint.clone(),
                    detail,
                }
            }
            _ if is_transport(&status) => NodeError::Unavailable {
                endpoint: self.endpoint.clone(),
                detail,
            },
            Code::Unauthenticated => NodeError::InvalidToken { detail },
            Code::AlreadyExists => NodeError::DuplicateAlias {
                alias: alias.unwrap_or("?").to_owned(),
                running_here: None,
            },
            Code::PermissionDenied | Code::FailedPrecondition | Code::NotFound => {
                NodeError::Refused { operation, detail }
            }
            _ => NodeError::BadResponse { operation, detail },
        }
    }
}

/// The TLS material `cfg.security` asks for: `None` without `use_tls`; else the certificate
/// folder as manta-tls reads it (`ca.crt` alone: TLS with that private CA; with
/// `client.crt` and `client.key`: mTLS), verification turned off only by
/// `verify_ssl = false`.
///
/// # Errors
/// [`NodeError::Tls`] naming the missing or invalid file.
pub fn client_tls(cfg: &NodeConfig, env: &Env) -> Result<Option<manta_tls::ClientTls>, NodeError> {
    if !cfg.security.use_tls {
        return Ok(None);
    }
    let tls = manta_tls::ClientTls::from_folder(cfg.cert_folder(env))?;
    Ok(Some(if cfg.security.verify_ssl {
        tls
    } else {
        tls.danger_accept_invalid_certs()?
    }))
}

/// Whether a status came from the transport rather than the manager.
fn is_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Whether an error means "try again later" rather than "this will not work".
pub(crate) fn is_retryable(err: &NodeError) -> bool {
    matches!(err, NodeError::Unavailable { .. })
}

/// Wraps `message` with the raw JWT in `authorization`, as the published node sends it.
fn authorized<T>(message: T, token: &SecretString) -> Result<Request<T>, NodeError> {
    // A token file or variable often ends with a newline; a JWT never holds whitespace.
    let mut value = MetadataValue::try_from(token.expose_secret().trim()).map_err(|_| {
        NodeError::InvalidToken {
            detail: "the token contains characters that cannot be sent".to_owned(),
        }
    })?;
    // Sensitive values are never indexed by HPACK nor printed by the transport's Debug.
    value.set_sensitive(true);
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// What a successful registration gave.
pub struct Registered {
    /// The node's own token.
    pub node_token: SecretString,
    /// The assigned node id.
    pub node_id: String,
    /// The cluster joined, if said.
    pub cluster_id: Option<String>,
    /// The heartbeat interval the manager expects, if said.
    pub heartbeat_interval: Option<Duration>,
    /// The MQTT broker to heartbeat over, when the manager names one.
    pub broker: Option<crate::mqtt::Broker>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("node_token", &"[REDACTED]")
            .field("node_id", &self.node_id)
            .field("cluster_id", &self.cluster_id)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

/// The registration request: platform info plus our alias / node id extensions.
pub fn overview(identity: &NodeIdentity) -> NodeOverview {
    let uname = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    NodeOverview {
        platform_info: Some(PlatformInfo {
            system: s(uname.sysname()),
            release: s(uname.release()),
            version: s(uname.version()),
            machine: s(uname.machine()),
            processor: s(uname.machine()),
            hostname: s(uname.nodename()),
            execution_mode: ExecutionMode::Process as i32,
        }),
        dataset_overviews: None,
        node_package_version: Some(AGENT_VERSION.to_owned()),
        node_build_version: None,
        common_core_version: None,
        update_path: None,
        alias: Some(identity.alias.clone()),
        requested_node_id: Some(identity.node_id.clone()),
        random_id: Some(identity.random_id),
    }
}

/// Renews node tokens through `RenewNodeToken` for manta-auth's refresh engine.
#[derive(Debug, Clone)]
pub struct NodeRefresher {
    client: ManagerClient,
}

impl NodeRefresher {
    /// A refresher talking to `client`'s manager.
    pub fn new(client: ManagerClient) -> Self {
        Self { client }
    }
}

impl Refresher for NodeRefresher {
    fn refresh<'a>(&'a self, current: &'a SecretString) -> RefreshFuture<'a> {
        Box::pin(async move {
            match self.client.renew(current).await {
                Ok(token) => Ok(token),
                Err(s) => Err(match s.code() {
                    Code::Unauthenticated | Code::PermissionDenied | Code::NotFound => {
                        RefreshError::Rejected
                    }
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                        RefreshError::Unavailable(s.message().to_owned())
                    }
                    _ if is_transport(&s) => RefreshError::Unavailable(s.message().to_owned()),
                    _ => RefreshError::InvalidResponse(s.message().to_owned()),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_carries_alias_and_requested_id() {
        let id = NodeIdentity {
            alias: "worker-1".into(),
            node_id: "worker-1".into(),
            random_id: false,
        };
        let o = overview(&id);
        assert_eq!(o.alias.as_deref(), Some("worker-1"));
        assert_eq!(o.requested_node_id.as_deref(), Some("worker-1"));
        assert_eq!(o.random_id, Some(false));
        assert!(!o.platform_info.unwrap().system.is_empty());
    }

    #[test]
    fn authorization_is_the_raw_sensitive_jwt() {
        let token = SecretString::from("eyJa.b.c");
        let req = authorized((), &token).unwrap();
        let v = req.metadata().get("authorization").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().unwrap(), "eyJa.b.c");
        assert!(!format!("{:?}", req.metadata()).contains("eyJa"));
        let err = authorized((), &SecretString::from("bad\ntoken")).unwrap_err();
        assert_eq!(err.headline(), "Invalid or expired JWT token");
        assert!(!err.to_string().contains("bad"));
    }

    #[tokio::test]
    async fn manager_statuses_become_node_errors() {
        let client = ManagerClient::new(
            &NodeConfig::default(),
            &Env::from_pairs::<[(&str, &str); 0], _, _>([]),
        )
        .unwrap();
        let check = |status: Status, alias: Option<&str>, headline: &str, code: u8| {
            let e = client.map("RegisterNode", status, alias);
            assert!(e.headline().starts_with(headline), "{e}");
            assert_eq!(e.exit_code(), code, "{e}");
        };
        use crate::error::{EXIT_FAILURE, EXIT_NOPERM, EXIT_UNAVAILABLE};
        check(
            Status::already_exists("alias taken"),
            Some("worker-1"),
            "Node with alias 'worker-1' already exists",
            EXIT_NOPERM,
        );
        check(
            Status::unauthenticated("expired token: refresh it"),
            None,
            "Invalid or expired JWT token",
            EXIT_NOPERM,
        );
        check(
            Status::permission_denied("needs a node token"),
            None,
            "the manager refused RegisterNode: needs a node token",
            EXIT_NOPERM,
        );
        check(
            Status::unavailable("down"),
            None,
            "cannot reach the manager at localhost:50051: down",
            EXIT_UNAVAILABLE,
        );
        check(
            Status::internal("boom"),
            None,
            "the manager's answer to RegisterNode is unusable: boom",
            EXIT_FAILURE,
        );
        let e = client.map("Heartbeat", Status::unauthenticated("revoked"), None);
        assert_eq!(e.detail().as_deref(), Some("revoked"));
    }

    #[tokio::test]
    async fn unreachable_manager_is_unavailable_with_the_address() {
        // Bind then drop a listener to get a port where nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = NodeConfig::default();
        cfg.network.manager_host = "127.0.0.1".into();
        cfg.network.manager_port = port;
        let client =
            ManagerClient::new(&cfg, &Env::from_pairs::<[(&str, &str); 0], _, _>([])).unwrap();
        let err = client
            .is_available(&SecretString::from("eyJa.b.c"))
            .await
            .unwrap_err();
        assert!(matches!(err, NodeError::Unavailable { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_UNAVAILABLE);
        let refresher = NodeRefresher::new(client);
        let r = refresher.refresh(&SecretString::from("eyJa.b.c")).await;
        assert!(matches!(r, Err(RefreshError::Unavailable(_))), "{r:?}");
    }
}
