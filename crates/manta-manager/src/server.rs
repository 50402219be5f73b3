//! The gRPC servers: the user API (five published services, `manta.v1.TokenService`, health,
//! reflection) and the node API, behind the authorization layer, with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use manta_proto::core::user_services::cluster_management_server::ClusterManagementServer;
use manta_proto::core::user_services::module_management_server::ModuleManagementServer;
use manta_proto::core::user_services::network_management_server::NetworkManagementServer;
use manta_proto::core::user_services::swarm_management_server::SwarmManagementServer;
use manta_proto::core::user_services::user_management_server::UserManagementServer;
use manta_proto::manta::v1::node_session_server::NodeSessionServer;
use manta_proto::manta::v1::token_service_server::TokenServiceServer;
use manta_proto::node::node_service::node_service_server::NodeServiceServer;
use manta_tls::{ConnectionLimiter, ServerTls, TlsIncoming};
use tokio::net::TcpListener;

use crate::authz::AuthzLayer;
use crate::error::{Error, Result};
use crate::grpc::{
    ClusterApi, ModuleApi, NodeApi, NodeSessionApi, SwarmApi, TokenApi, Unserved, UnservedLayer,
    UserApi,
};
use crate::identity::Core;
use crate::limits::{Limits, LimitsLayer, MessageLimits};

/// The published SDK sends zipped module code and results as single messages; 4 MiB (tonic's
/// default) would refuse them with RESOURCE_EXHAUSTED, which the SDK then retries. Only
/// the methods that carry them accept this much (see [`crate::limits`]).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How long a graceful shutdown waits for calls in flight before closing them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How the servers behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Largest message sent, and accepted by the methods that take module code, globals
    /// and results, in bytes.
    pub max_message_bytes: usize,
    /// Smaller message limits for the other methods, and the connection timeouts and caps.
    pub limits: Limits,
    /// Enforce authorization. `false` is only for measuring its cost.
    pub authorization: bool,
    /// How often the signing keys are re-read (a `keys rotate` reaches a running server).
    pub key_reload: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            limits: Limits::default(),
            authorization: true,
            key_reload: Duration::from_secs(10),
        }
    }
}

fn layer(core: &Arc<Core>, options: &ServeOptions) -> AuthzLayer {
    if options.authorization {
        AuthzLayer::new(Arc::clone(core))
    } else {
        AuthzLayer::danger_disabled(Arc::clone(core))
    }
}

/// HTTP/2 streams one connection may have open at once (hyper's own default, which tonic
/// replaces with "unlimited" unless told). Without a limit, a client that sends calls faster
/// than the manager answers piles up unread requests until h2's flood guard closes the whole
/// connection with `GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"` (after about 2,400 on
/// the default 1 MiB window), failing every call on it. With it, clients queue the excess
/// themselves and every call completes.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 200;

// `LimitsLayer` refuses oversized messages per method before tonic sees them; tonic's own
// per-service decoding limit (the largest of the service's methods) stays as a backstop.
macro_rules! sized {
    ($server:expr, $decode:expr, $n:expr) => {
        $server
            .max_decoding_message_size($decode)
            .max_encoding_message_size($n)
    };
}

/// A server builder with the HTTP/2 settings both listeners share. The keepalive pings find
/// peers that vanished without closing (their calls would otherwise stay open forever).
fn builder(limits: &Limits) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
}

/// Descriptors kept free beside the connections: the store, the listeners, the log.
const SPARE_FILES: u64 = 64;

/// Over the open-file limit, `accept` fails before the connection cap is reached and new
/// clients wait in the backlog until they time out; say so at start.
fn warn_if_near_file_limit(max_connections: usize) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(soft) = limit.current {
        let wanted = (max_connections as u64).saturating_add(SPARE_FILES);
        if wanted > soft {
            tracing::warn!(
                max_connections,
                open_file_limit = soft,
                "limits.max_connections does not fit under the open-file limit; raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
            );
        }
    }
}

/// Serves both APIs until `shutdown` completes, then drains in-flight calls.
///
/// With `tls`, both listeners speak TLS (and mTLS per its client-auth policy); without it,
/// h2c with prior knowledge, as the published SDK uses on ports other than 443. Either way
/// the connection's peer address and verified client certificate reach the audit trail.
pub async fn serve(
    core: Arc<Core>,
    user_listener: TcpListener,
    node_listener: TcpListener,
    options: ServeOptions,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means "stop".
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let n = options.max_message_bytes;
    let sizes = MessageLimits {
        identity: options.limits.identity_message_bytes,
        default: options.limits.message_bytes,
        large: n,
    };
    let (small, default) = (sizes.identity, sizes.default);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<UserManagementServer<UserApi>>().await;
    health.set_serving::<TokenServiceServer<TokenApi>>().await;
    health.set_serving::<NodeServiceServer<NodeApi>>().await;
    health
        .set_serving::<NodeSessionServer<NodeSessionApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(manta_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Server(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(manta_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Server(e.to_string()))?;

    let user_routes = builder(&options.limits)
        .layer(LimitsLayer::new(sizes))
        .layer(layer(&core, &options))
        .layer(UnservedLayer)
        .add_service(sized!(
            UserManagementServer::new(UserApi::new(Arc::clone(&core))),
            small,
            n
        ))
        .add_service(sized!(
            ClusterManagementServer::new(ClusterApi::new(Arc::clone(&core))),
            default,
            n
        ))
        .add_service(sized!(
            SwarmManagementServer::new(SwarmApi::new(Arc::clone(&core))),
            n,
            n
        ))
        .add_service(sized!(
            ModuleManagementServer::new(ModuleApi::new(Arc::clone(&core))),
            n,
            n
        ))
        .add_service(sized!(NetworkManagementServer::new(Unserved), default, n))
        .add_service(sized!(
            TokenServiceServer::new(TokenApi::new(Arc::clone(&core))),
            small,
            n
        ))
        .add_service(health_service.clone())
        .add_service(reflection_v1.clone())
        .add_service(reflection_v1alpha.clone());
    let node_routes = builder(&options.limits)
        .layer(LimitsLayer::new(sizes))
        .layer(layer(&core, &options))
        .layer(UnservedLayer)
        .add_service(sized!(
            NodeServiceServer::new(NodeApi::new(Arc::clone(&core))),
            n,
            n
        ))
        .add_service(sized!(
            NodeSessionServer::new(NodeSessionApi::new(Arc::clone(&core))),
            small,
            n
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    // One limiter for both listeners: the global cap guards the process's file descriptors.
    let limiter = ConnectionLimiter::new(
        options.limits.max_connections,
        options.limits.max_connections_per_peer,
    );
    warn_if_near_file_limit(options.limits.max_connections);
    let accept = options.limits.accept_options(&limiter);
    let user_incoming = TlsIncoming::with_options(user_listener, tls.as_ref(), accept.clone())
        .map_err(Error::Tls)?;
    let node_incoming =
        TlsIncoming::with_options(node_listener, tls.as_ref(), accept).map_err(Error::Tls)?;
    let user = tokio::spawn(
        user_routes.serve_with_incoming_shutdown(user_incoming, wait(stop_rx.clone())),
    );
    let node = tokio::spawn(node_routes.serve_with_incoming_shutdown(node_incoming, wait(stop_rx)));

    let reload = {
        let core = Arc::clone(&core);
        let every = options.key_reload;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = core.authority().reload() {
                    tracing::warn!(error = %e, "cannot reload signing keys; keeping the current ones");
                }
            }
        })
    };

    // Heartbeats live in memory; one transaction per interval writes them to the store so
    // `manta-manager node list` (another process) sees liveness too.
    let flush = {
        let core = Arc::clone(&core);
        let every = core.platform().registry().settings().heartbeat_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let core = Arc::clone(&core);
                let flushed =
                    tokio::task::spawn_blocking(move || core.platform().registry().flush()).await;
                if let Ok(Err(e)) = flushed {
                    tracing::warn!(error = %e, "cannot record node heartbeats; retrying next interval");
                }
            }
        })
    };

    // The published node transport, when `[mqtt]` names a broker.
    let mqtt = crate::mqtt::spawn(Arc::clone(&core));

    shutdown.await;
    tracing::info!("shutting down: finishing calls in flight");
    if let Some(task) = mqtt {
        task.abort();
    }
    let _ = stop_tx.send(true);
    reload.abort();
    flush.abort();
    let (user_abort, node_abort) = (user.abort_handle(), node.abort_handle());
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { (user.await, node.await) }).await;
    core.audit().flush();
    if let Err(e) = core.platform().registry().flush() {
        tracing::warn!(error = %e, "cannot record the last node heartbeats");
    }
    let Ok(joined) = drained else {
        // A client that keeps a call open must not keep the manager alive forever.
        tracing::warn!("calls still open after {DRAIN_TIMEOUT:?}; closing them");
        user_abort.abort();
        node_abort.abort();
        return Ok(());
    };
    for result in [joined.0, joined.1] {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Server(e.to_string())),
            Err(e) => return Err(Error::Server(e.to_string())),
        }
    }
    Ok(())
}

/// A future that completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when
/// this is called, not when the future is first polled, so a signal that arrives while the
/// server is still starting is not lost to the default action. Call within a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM or SIGINT; stop the manager with SIGKILL");
                std::future::pending::<()>().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
