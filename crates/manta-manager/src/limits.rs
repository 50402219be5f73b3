//! What a client can make the manager hold: message sizes per method, enforced while a
//! request body streams in, and the connection timeouts and caps of both listeners.
//!
//! Sizes come in three classes. Unauthenticated and identity methods (sign-in, sessions,
//! user management, node registration, health, reflection, and any path this file does not
//! know) take small messages; the published SDK sends zipped module code, globals and
//! results as single messages, so those few methods take the large limit; every other
//! method takes the default one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use manta_tls::{PeerInfo, StreamGuard};
use tonic::Status;
use tonic::body::Body;

/// The default limit of unauthenticated and identity methods: a sign-in, a session or a
/// user record is well under a kilobyte.
pub const DEFAULT_IDENTITY_MESSAGE_BYTES: usize = 64 * 1024;

/// The default limit of methods that carry neither module code, globals nor results
/// (gRPC's usual 4 MiB).
pub const DEFAULT_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The methods the published SDK (and node agents) send large single messages to: module
/// code, globals and results.
const LARGE_METHODS: &[&str] = &[
    "/core.user_services.ModuleManagement/SendModule",
    "/core.user_services.ModuleManagement/UpdateModule",
    "/core.user_services.SwarmManagement/InitializeGlobal",
    "/node.node_service.NodeService/AddTaskResult",
    "/node.node_service.NodeService/SetGlobal",
];

/// Services whose methods (other than [`LARGE_METHODS`] and [`IDENTITY_METHODS`]) take the
/// default limit.
const DEFAULT_SERVICES: &[&str] = &[
    "/core.user_services.ClusterManagement/",
    "/core.user_services.SwarmManagement/",
    "/core.user_services.ModuleManagement/",
    "/core.user_services.NetworkManagement/",
    "/node.node_service.NodeService/",
];

/// Identity methods inside [`DEFAULT_SERVICES`].
const IDENTITY_METHODS: &[&str] = &[
    "/node.node_service.NodeService/RegisterNode",
    "/node.node_service.NodeService/RenewNodeToken",
];

/// Which size limit a method gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeClass {
    /// Unauthenticated and identity methods, and unknown paths.
    Identity,
    /// Everything else.
    Default,
    /// Module code, globals and results.
    Large,
}

impl SizeClass {
    /// The class of a gRPC path such as `/manta.v1.TokenService/CreateSession`.
    pub fn of(path: &str) -> SizeClass {
        if LARGE_METHODS.contains(&path) {
            SizeClass::Large
        } else if IDENTITY_METHODS.contains(&path) {
            SizeClass::Identity
        } else if DEFAULT_SERVICES.iter().any(|s| path.starts_with(s)) {
            SizeClass::Default
        } else {
            SizeClass::Identity
        }
    }

    /// The configuration key that sets this class's limit.
    pub fn key(self) -> &'static str {
        match self {
            SizeClass::Identity => "limits.identity_message_bytes",
            SizeClass::Default => "limits.message_bytes",
            SizeClass::Large => "listen.max_message_bytes",
        }
    }
}

/// Timeouts and caps of the listeners, and the message sizes below the large limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message of an unauthenticated or identity method, in bytes.
    pub identity_message_bytes: usize,
    /// Largest message of any other method except modules, globals and results.
    pub message_bytes: usize,
    /// From the TCP accept to the HTTP/2 preface, the TLS handshake included.
    pub handshake_timeout: Duration,
    /// A connection with no open call this long is closed; `None` keeps it.
    pub idle_timeout: Option<Duration>,
    /// How often an HTTP/2 ping checks a connection that has been quiet (and the TCP
    /// keepalive idle time).
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Connections open at once, both listeners together.
    pub max_connections: usize,
    /// Connections open at once from one peer address (IPv4 address or IPv6 /64).
    pub max_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            identity_message_bytes: DEFAULT_IDENTITY_MESSAGE_BYTES,
            message_bytes: DEFAULT_MESSAGE_BYTES,
            handshake_timeout: manta_tls::DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Some(manta_tls::DEFAULT_IDLE_TIMEOUT),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            // Below the usual 1,024 open-file soft limit, leaving room for the store, the
            // listeners and the log.
            max_connections: 900,
            // Enough for a cluster of nodes behind one NAT address, far below the global
            // cap so one address cannot take every slot.
            max_connections_per_peer: 100,
        }
    }
}

impl Limits {
    /// The accept options of both listeners, sharing `limiter` for the global cap.
    pub fn accept_options(
        &self,
        limiter: &manta_tls::ConnectionLimiter,
    ) -> manta_tls::AcceptOptions {
        manta_tls::AcceptOptions {
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            tcp_keepalive: Some(self.keepalive_interval),
            limiter: limiter.clone(),
        }
    }
}

/// The byte limits of the three classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// [`SizeClass::Identity`].
    pub identity: usize,
    /// [`SizeClass::Default`].
    pub default: usize,
    /// [`SizeClass::Large`].
    pub large: usize,
}

impl MessageLimits {
    /// The limit of a class.
    pub fn of(&self, class: SizeClass) -> usize {
        match class {
            SizeClass::Identity => self.identity,
            SizeClass::Default => self.default,
            SizeClass::Large => self.large,
        }
    }
}

/// Refuses a request message over its method's limit as soon as its 5-byte gRPC frame
/// header arrives, before any of it is buffered, and counts each call as open on its
/// connection until the response ends (for the idle timeout).
#[derive(Debug, Clone)]
pub struct LimitsLayer {
    limits: MessageLimits,
}

impl LimitsLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: MessageLimits) -> Self {
        LimitsLayer { limits }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            limits: self.limits,
        }
    }
}

/// The service made by [`LimitsLayer`].
#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    limits: MessageLimits,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Limited<S>
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

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone is not ready; swap so the ready service handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let class = SizeClass::of(req.uri().path());
        let limit = self.limits.of(class);
        let guard = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(PeerInfo::streams)
            .map(manta_tls::StreamTracker::start);
        let req = req.map(|body| {
            Body::new(SizedBody {
                inner: body,
                scan: FrameScan::new(limit),
                class,
            })
        });
        let call = inner.call(req);
        Box::pin(async move {
            let response = call.await?;
            Ok(match guard {
                Some(guard) => response.map(|body| {
                    Body::new(GuardedBody {
                        inner: body,
                        _guard: guard,
                    })
                }),
                None => response,
            })
        })
    }
}

/// Walks the gRPC length-prefixed frames of a request body as its chunks arrive.
#[derive(Debug)]
struct FrameScan {
    limit: usize,
    header: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl FrameScan {
    fn new(limit: usize) -> Self {
        FrameScan {
            limit,
            header: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    /// Passes over `data`; `Err(length)` when a message header declares more than the limit.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), u64> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.have);
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = u64::from(u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]));
                if len > self.limit as u64 {
                    return Err(len);
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

/// A request body that fails with RESOURCE_EXHAUSTED at the first oversized message.
struct SizedBody {
    inner: Body,
    scan: FrameScan,
    class: SizeClass,
}

impl HttpBody for SizedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref()
            && let Err(len) = this.scan.scan(data)
        {
            tracing::debug!(
                bytes = len,
                limit = this.scan.limit,
                "refusing an oversized request message"
            );
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "the request message is {len} bytes, over this method's limit of {} bytes; \
                 send a smaller message or raise {} in the manager configuration",
                this.scan.limit,
                this.class.key()
            )))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its call counted as open until it is finished or dropped.
struct GuardedBody {
    inner: Body,
    _guard: StreamGuard,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn frames_over_the_limit_are_found_across_chunk_boundaries() {
        let mut body = frame(10);
        body.extend(frame(100));
        body.extend(frame(101));
        for chunk in [1, 3, 5, 7, 64, 1000] {
            let mut scan = FrameScan::new(100);
            let found = body.chunks(chunk).try_for_each(|c| scan.scan(c));
            assert_eq!(found, Err(101), "chunks of {chunk}");
        }
        let mut scan = FrameScan::new(100);
        assert_eq!(scan.scan(&body[..body.len() - 106]), Ok(()));
    }

    #[test]
    fn unauthenticated_and_unknown_methods_are_small_and_only_sdk_payloads_are_large() {
        for (path, class) in [
            (
                "/core.user_services.UserManagement/SignIn",
                SizeClass::Identity,
            ),
            (
                "/core.user_services.UserManagement/RegisterUser",
                SizeClass::Identity,
            ),
            ("/manta.v1.TokenService/CreateSession", SizeClass::Identity),
            ("/manta.v1.TokenService/RefreshSession", SizeClass::Identity),
            ("/manta.v1.NodeSession/Heartbeat", SizeClass::Identity),
            (
                "/node.node_service.NodeService/RegisterNode",
                SizeClass::Identity,
            ),
            ("/grpc.health.v1.Health/Check", SizeClass::Identity),
            ("/nope.Nothing/Here", SizeClass::Identity),
            (
                "/core.user_services.ClusterManagement/CreateCluster",
                SizeClass::Default,
            ),
            (
                "/core.user_services.SwarmManagement/SendSwarm",
                SizeClass::Default,
            ),
            (
                "/node.node_service.NodeService/AddTaskLogs",
                SizeClass::Default,
            ),
            (
                "/core.user_services.ModuleManagement/SendModule",
                SizeClass::Large,
            ),
            (
                "/core.user_services.SwarmManagement/InitializeGlobal",
                SizeClass::Large,
            ),
            (
                "/node.node_service.NodeService/AddTaskResult",
                SizeClass::Large,
            ),
            ("/node.node_service.NodeService/SetGlobal", SizeClass::Large),
        ] {
            assert_eq!(SizeClass::of(path), class, "{path}");
        }
    }

    #[test]
    fn every_listed_method_and_service_exists_in_the_proto() {
        use prost::Message as _;
        let set = prost_types::FileDescriptorSet::decode(manta_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for file in &set.file {
            for svc in &file.service {
                for m in &svc.method {
                    methods.push(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
                }
            }
        }
        for path in LARGE_METHODS.iter().chain(IDENTITY_METHODS) {
            assert!(methods.iter().any(|m| m == path), "{path} is not a method");
        }
        for service in DEFAULT_SERVICES {
            assert!(
                methods.iter().any(|m| m.starts_with(service)),
                "{service} is not a service"
            );
        }
    }
}
