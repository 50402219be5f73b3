//! `UserApi`: the async User API over one gRPC channel, with the token engine, retries for
//! idempotent calls, timeouts, error mapping and the opt-in audit trail.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use manta_auth::RefreshConfig;
use manta_config::{
    ClientConfig, Env, MantaHome, Profile, ResolvedToken, SecretStore, SelectedProfile, TokenLookup,
};
use manta_proto::common::system::{Empty, StopSwarmRequest, StrId};
use manta_proto::core::user_services as us;
use manta_proto::manta::v1 as mv1;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::audit;
use crate::error::{Error, Result, from_status};
use crate::refresh::{RpcRefresher, SessionToken};
use crate::tokens::Tokens;
use crate::types::{
    ApiTokenInfo, Cluster, CreatedApiToken, ModuleSpec, ResultRecord, Swarm, SwarmSpec, User,
    pair_id,
};

/// Largest message sent or accepted: zipped modules and results travel as single messages
/// in the published protocol, far above tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// The published SDK's per-attempt deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);

/// Default TCP (and TLS handshake) connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How idempotent calls are retried after transport failures and UNAVAILABLE answers.
/// Calls that create something (`create_cluster`, `deploy_swarm`, `upload_module`,
/// `create_api_token`, `sign_in`, `logout`) are never retried: the published SDK retries
/// them and can duplicate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    #[must_use]
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `attempt` (0-based): exponential, capped, with "equal
    /// jitter" (half fixed, half random) so clients that failed together spread out.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        manta_auth::Backoff::equal_jitter(self.initial_backoff, self.max_backoff).delay(attempt)
    }
}

/// Describes one RPC for the call wrapper.
#[derive(Clone, Copy)]
pub(crate) struct Op {
    /// The operation name in errors and the audit trail (`get_user`).
    pub(crate) name: &'static str,
    /// The gRPC method (`UserManagement/GetUser`).
    pub(crate) method: &'static str,
    /// Safe to send twice.
    pub(crate) idempotent: bool,
    /// Needs the `authorization` metadata.
    pub(crate) auth: bool,
}

const fn op(name: &'static str, method: &'static str, idempotent: bool) -> Op {
    Op {
        name,
        method,
        idempotent,
        auth: true,
    }
}

/// Builds a [`UserApi`]: target, TLS, timeouts, refresh and retry policy, user agent,
/// audit. Call [`UserApiBuilder::build`] (or [`UserApiBuilder::sign_in`]) inside a tokio
/// runtime; the blocking facade does that for you.
#[must_use]
pub struct UserApiBuilder {
    host: String,
    port: u16,
    token: Option<SecretString>,
    refresh_token: Option<SecretString>,
    cert_folder: Option<PathBuf>,
    danger_no_verify: bool,
    server_name: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
    refresh: Option<RefreshConfig>,
    retry: RetryPolicy,
    user_agent: String,
    audit: bool,
    profile: Option<String>,
    waiting: Option<WaitingNotice>,
    clock: manta_auth::SharedClock,
}

impl fmt::Debug for UserApiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserApiBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("cert_folder", &self.cert_folder)
            .field("danger_no_verify", &self.danger_no_verify)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UserApiBuilder {
    /// A builder for the manager at `host:port`, without a token.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        UserApiBuilder {
            host: host.into(),
            port,
            token: None,
            refresh_token: None,
            cert_folder: None,
            danger_no_verify: false,
            server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            refresh: Some(RefreshConfig::default()),
            retry: RetryPolicy::default(),
            user_agent: format!("manta-rs/{}", env!("CARGO_PKG_VERSION")),
            audit: false,
            profile: None,
            waiting: None,
            clock: manta_auth::system_clock(),
        }
    }

    /// Calls `notify` with a line such as "waiting for host:port to answer get_user (gives
    /// up after 45s)" when a call has had no answer for `after`; `manta` prints it when
    /// standard error is a terminal.
    pub fn waiting_notice(
        mut self,
        after: Duration,
        notify: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        self.waiting = Some(WaitingNotice {
            after,
            notify: Arc::new(notify),
        });
        self
    }

    /// The name of the configuration profile these settings came from, named in errors
    /// whose next step depends on it (a token from another manager).
    pub fn profile_name(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// A builder for a configuration profile's host, port and certificate folder.
    pub fn for_profile(profile: &Profile) -> Self {
        let mut b = UserApiBuilder::new(profile.host.clone(), profile.port);
        b.cert_folder.clone_from(&profile.cert_folder);
        b
    }

    /// The access token to send.
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// A refresh token (from a session) used to renew the access token; without one the
    /// access token renews itself with `RefreshUserToken` while it is still valid.
    pub fn refresh_token(mut self, refresh_token: SecretString) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// TLS with the folder's `ca.crt`: mTLS when the folder also holds `client.crt` and
    /// `client.key`, server-authenticated TLS with that private CA when it holds `ca.crt`
    /// alone. Half a client pair, a missing `ca.crt` or an invalid file is an error at
    /// [`UserApiBuilder::build`], never a plaintext fallback.
    pub fn cert_folder(mut self, folder: impl Into<PathBuf>) -> Self {
        self.cert_folder = Some(folder.into());
        self
    }

    /// The seed's `verify_ssl=False`: accept any server certificate. Only for tests
    /// against throwaway servers; a warning is logged.
    pub fn danger_disable_ssl_verification(mut self) -> Self {
        self.danger_no_verify = true;
        self
    }

    /// Verify the server certificate for `name` instead of the host connected to.
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// TCP and TLS connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Per-attempt call timeout (default 45 s, as the published SDK).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When to refresh the token ahead of expiry (manta-auth's engine).
    pub fn refresh_policy(mut self, config: RefreshConfig) -> Self {
        self.refresh = Some(config);
        self
    }

    /// Never refresh: send the token as given until it expires.
    pub fn no_auto_refresh(mut self) -> Self {
        self.refresh = None;
        self
    }

    /// Retries for idempotent calls.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `user-agent` sent with every call.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Record every operation in the audit trail (see [`crate::audit`]).
    pub fn audit(mut self, on: bool) -> Self {
        self.audit = on;
        self
    }

    /// The clock the refresh engine reads (the system clock by default); a test shares a
    /// [`manta_auth::ManualClock`] with its manager to jump past a token's expiry.
    pub fn clock(mut self, clock: manta_auth::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn tls(&self) -> Result<Option<manta_tls::ClientTls>> {
        let mut tls = match (&self.cert_folder, self.port) {
            (Some(folder), _) => Some(manta_tls::ClientTls::from_folder(folder)?),
            (None, 443) => Some(manta_tls::ClientTls::system_roots()?),
            (None, _) => None,
        };
        if let Some(name) = &self.server_name {
            tls = match tls {
                Some(t) => Some(t.with_server_name(name)?),
                None => {
                    return Err(Error::Setting {
                        message: "a TLS server name needs TLS; set a cert folder or use port 443"
                            .into(),
                    });
                }
            };
        }
        if self.danger_no_verify {
            tls = match tls {
                Some(t) => Some(t.danger_accept_invalid_certs()?),
                None => {
                    return Err(Error::Setting {
                        message: "turning certificate verification off needs TLS; set a cert folder or use port 443"
                            .into(),
                    });
                }
            };
        }
        Ok(tls)
    }

    fn channel(&self) -> Result<(Channel, bool, Option<manta_tls::ClientTls>)> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Setting {
                message: "UserApi must be built inside a tokio runtime; use manta_client::blocking::UserApi from synchronous code"
                    .into(),
            });
        }
        if self.host.trim().is_empty() {
            return Err(Error::Setting {
                message: "the manager host is empty; pass a host name or address".into(),
            });
        }
        let tls = self.tls()?;
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let (endpoint, connector) =
            manta_tls::endpoint(&format!("{host}:{}", self.port), tls.as_ref())?;
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(false)
            .user_agent(self.user_agent.clone())
            .map_err(|_| Error::Setting {
                message: "the user agent must be visible ASCII".into(),
            })?;
        let is_tls = connector.is_tls();
        Ok((endpoint.connect_with_connector_lazy(connector), is_tls, tls))
    }

    /// Builds the API. Nothing is sent until the first call (as the published SDK).
    ///
    /// # Errors
    /// [`Error::Tls`] for a bad certificate folder, [`Error::Setting`] for an empty host,
    /// an empty token or a call outside a tokio runtime.
    pub fn build(self) -> Result<UserApi> {
        if let Some(t) = &self.token
            && t.expose_secret().trim().is_empty()
        {
            return Err(Error::Setting {
                message:
                    "the token is empty; pass a token, export MANTA_TOKEN or run `manta login`"
                        .into(),
            });
        }
        let (channel, is_tls, client_tls) = self.channel()?;
        if !is_tls && !PLAINTEXT_SAID.swap(true, Ordering::Relaxed) {
            // Said once per process. Loopback traffic never leaves the machine, so there it
            // is information, not a warning.
            let loopback = matches!(self.host.as_str(), "localhost" | "::1" | "[::1]")
                || self
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                tracing::info!(host = %self.host, port = self.port, "plaintext connection to a loopback address");
            } else {
                tracing::warn!(
                    host = %self.host,
                    port = self.port,
                    "plaintext connection: tokens travel unencrypted; give a cert folder or use port 443 for TLS"
                );
            }
        }
        let session = Arc::new(SessionToken::new(self.refresh_token));
        let refreshes = Arc::new(AtomicU64::new(0));
        let refresher = Arc::new(RpcRefresher::new(
            channel.clone(),
            Arc::clone(&session),
            self.timeout,
            Arc::clone(&refreshes),
            self.audit,
        ));
        let tokens = Tokens::new(
            self.token.unwrap_or_else(|| SecretString::from("")),
            refresher,
            self.refresh.clone(),
            self.clock,
        )
        .map_err(|e| Error::Setting {
            message: e.to_string(),
        })?;
        Ok(UserApi {
            inner: Arc::new(Inner {
                channel,
                host: self.host,
                port: self.port,
                tls: is_tls,
                client_tls,
                tokens,
                session,
                refreshes,
                auto_refresh: self.refresh.is_some(),
                timeout: self.timeout,
                retry: self.retry,
                audit: self.audit,
                profile: self.profile,
                waiting: self.waiting,
            }),
        })
    }

    /// Signs in with a user name and password and returns an API holding the new access
    /// token (and, on managers that offer sessions, a refresh token used for automatic
    /// renewal). Tries `manta.v1.TokenService/CreateSession` first and falls back to the
    /// published `UserManagement/SignIn`. Never retried.
    ///
    /// # Errors
    /// [`Error::Authentication`] for wrong credentials, plus the errors of `build`.
    pub async fn sign_in(mut self, username: &str, password: &SecretString) -> Result<UserApi> {
        self.token = None;
        let audit_on = self.audit;
        let probe = UserApiBuilder {
            audit: audit_on,
            ..self.clone_settings()
        }
        .build()?;
        let start = Instant::now();
        let result = match probe.sign_in_rpc(username, password).await {
            Err(e) => Err(probe.explain(e).await),
            ok => ok,
        };
        audit::record(
            audit_on,
            "sign_in",
            &format!("username={username}, password=[REDACTED]"),
            result.as_ref().map(|_| ()),
            start.elapsed(),
        );
        let (access, refresh) = result?;
        self.token = Some(access);
        self.refresh_token = refresh;
        self.build()
    }

    fn clone_settings(&self) -> Self {
        UserApiBuilder {
            host: self.host.clone(),
            port: self.port,
            token: None,
            refresh_token: None,
            cert_folder: self.cert_folder.clone(),
            danger_no_verify: self.danger_no_verify,
            server_name: self.server_name.clone(),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            refresh: None,
            retry: RetryPolicy::none(),
            user_agent: self.user_agent.clone(),
            audit: self.audit,
            profile: self.profile.clone(),
            waiting: self.waiting.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

static PLAINTEXT_SAID: AtomicBool = AtomicBool::new(false);

struct Inner {
    channel: Channel,
    host: String,
    port: u16,
    tls: bool,
    /// The TLS client the channel connects with, asked why a connection failed.
    client_tls: Option<manta_tls::ClientTls>,
    tokens: Tokens,
    session: Arc<SessionToken>,
    refreshes: Arc<AtomicU64>,
    auto_refresh: bool,
    timeout: Duration,
    retry: RetryPolicy,
    audit: bool,
    profile: Option<String>,
    waiting: Option<WaitingNotice>,
}

/// A callback told once per call attempt that the manager has not answered after `after`.
#[derive(Clone)]
struct WaitingNotice {
    after: Duration,
    notify: Arc<dyn Fn(&str) + Send + Sync>,
}

/// The Manta User API. Cheap to clone (clones share the connection and the token), safe
/// to use from many tasks at once.
///
/// ```no_run
/// # async fn demo() -> manta_client::Result<()> {
/// use manta_client::UserApi;
/// use secrecy::SecretString;
///
/// let api = UserApi::new(SecretString::from("eyJ..."), "localhost", 50052)?;
/// if api.is_available().await {
///     let user = api.get_user().await?;
///     println!("token valid for user: {}", user.username);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UserApi {
    inner: Arc<Inner>,
}

impl fmt::Debug for UserApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserApi")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("tls", &self.inner.tls)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A profile with its token, as chosen by [`UserApi::resolve`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Resolved {
    /// The selected profile.
    pub profile: SelectedProfile,
    /// The token and where it came from.
    pub token: ResolvedToken,
}

impl UserApi {
    /// The seed's `UserAPI(token, host, port)`: plaintext unless the port is 443.
    ///
    /// # Errors
    /// As [`UserApiBuilder::build`].
    pub fn new(token: SecretString, host: impl Into<String>, port: u16) -> Result<Self> {
        UserApiBuilder::new(host, port).token(token).build()
    }

    /// A builder for `host:port`.
    pub fn builder(host: impl Into<String>, port: u16) -> UserApiBuilder {
        UserApiBuilder::new(host, port)
    }

    /// Signs in (see [`UserApiBuilder::sign_in`]) to a plaintext or port-443 manager.
    ///
    /// # Errors
    /// As [`UserApiBuilder::sign_in`].
    pub async fn sign_in(
        host: impl Into<String>,
        port: u16,
        username: &str,
        password: &SecretString,
    ) -> Result<Self> {
        UserApiBuilder::new(host, port)
            .sign_in(username, password)
            .await
    }

    /// Chooses the profile (`name`, else `MANTA_ENV`, else the default) from
    /// `home/config.toml` and finds its token through the chain: explicit, the profile's
    /// `token_env`, `MANTA_TOKEN`, then the credential stored for this profile in
    /// `credentials.ini` (0600 only) or the keyring (`store`).
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown profile, no token, or a readable credentials file.
    pub fn resolve(
        name: Option<&str>,
        explicit: Option<SecretString>,
        env: &Env,
        home: &MantaHome,
        store: Option<&dyn SecretStore>,
    ) -> Result<Resolved> {
        let config = ClientConfig::load(home, env)?;
        let profile = config.select(name, env, &home.client_config())?;
        let mut lookup = TokenLookup::new(env, home);
        lookup.explicit = explicit;
        lookup.profile = Some(&profile.profile);
        // The credential `manta login` stored for this profile, never another profile's.
        lookup.profile_name = Some(&profile.name);
        lookup.store = store;
        let token = lookup.resolve()?;
        tracing::debug!(profile = %profile.name, source = %token.source, "token found");
        Ok(Resolved { profile, token })
    }

    /// The selected profile (or the built-in localhost:50052) with the token from the chain,
    /// using the process environment and (feature `keyring`, on by default) the OS keyring.
    ///
    /// # Errors
    /// As [`UserApi::resolve`] and [`UserApiBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::from_named_profile(None)
    }

    /// The seed's multi-environment setup: `UserApi::from_profile("prod")` reads
    /// `[profiles.prod]` and that profile's `token_env`.
    ///
    /// # Errors
    /// As [`UserApi::resolve`] and [`UserApiBuilder::build`].
    pub fn from_profile(name: &str) -> Result<Self> {
        Self::from_named_profile(Some(name))
    }

    fn from_named_profile(name: Option<&str>) -> Result<Self> {
        let env = Env::process();
        let home = MantaHome::from_env(&env)?;
        #[cfg(feature = "keyring")]
        let store: Option<&dyn SecretStore> = Some(&manta_config::OsKeyring);
        #[cfg(not(feature = "keyring"))]
        let store: Option<&dyn SecretStore> = None;
        let r = Self::resolve(name, None, &env, &home, store)?;
        UserApiBuilder::for_profile(&r.profile.profile)
            .token(r.token.token)
            .build()
    }

    /// The manager host.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The manager port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Whether the connection uses TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.inner.tls
    }

    /// The current access token (the seed's `api.token`).
    #[must_use]
    pub fn token(&self) -> SecretString {
        self.inner.tokens.current()
    }

    /// The session's current refresh token, if this API signed in on a manager with
    /// sessions (store it to resume the session later).
    #[must_use]
    pub fn session_refresh_token(&self) -> Option<SecretString> {
        self.inner.session.get()
    }

    /// How many times the token was renewed by this API (automatically or on request).
    #[must_use]
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    /// Replaces the access token for every clone of this API, now.
    pub fn rotate_token(&self, token: SecretString) {
        self.inner.tokens.rotate(token);
    }

    async fn token_for_call(&self) -> Result<SecretString> {
        self.inner
            .tokens
            .for_call()
            .await
            .map_err(|e| Error::TokenExpired {
                message: e.to_string(),
            })
    }

    /// Runs one RPC: token, timeout, error mapping, one refresh-and-retry on
    /// UNAUTHENTICATED, retries with backoff for idempotent calls, audit.
    pub(crate) async fn call<T, F, Fut>(&self, op: Op, args: &str, mut f: F) -> Result<T>
    where
        F: FnMut(Channel, Option<AsciiMetadataValue>, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let result = match self.call_inner(op, &mut f).await {
            Err(e) => Err(self.explain(e).await),
            ok => ok,
        };
        audit::record(
            self.inner.audit,
            op.name,
            args,
            result.as_ref().map(|_| ()),
            start.elapsed(),
        );
        result
    }

    /// Replaces a generic error with the specific one its details and this connection's
    /// settings reveal: the node API on this port, a TLS/plaintext mismatch, a refused
    /// certificate, a token from another manager.
    async fn explain(&self, err: Error) -> Error {
        let address = format!("{}:{}", self.inner.host, self.inner.port);
        match err {
            // hyper fails calls on a connection that closed with a bare "operation was
            // canceled", dropping the connection's error: ask the TLS client whether the
            // manager refused it for want of a client certificate.
            Error::Unavailable { .. }
                if let Some(refusal) = self
                    .inner
                    .client_tls
                    .as_ref()
                    .and_then(manta_tls::ClientTls::client_certificate_refusal) =>
            {
                Error::Tls(refusal)
            }
            Error::Unavailable { ref message } => {
                crate::error::classify_transport(message, &address, self.inner.tls).unwrap_or(err)
            }
            Error::Authentication { ref message } if crate::error::says_foreign(message) => {
                Error::ForeignToken {
                    address,
                    profile: self.inner.profile.clone(),
                }
            }
            Error::Unimplemented { .. } if self.serves_node_api().await => {
                Error::WrongService { address }
            }
            Error::Timeout {
                operation, after, ..
            } => Error::Timeout {
                address,
                operation,
                after,
            },
            other => other,
        }
    }

    /// Awaits `call`, telling the waiting notice (when set) once that the manager has not
    /// answered yet, so a silent manager is not mistaken for a hung command.
    async fn notify_while_waiting<T>(&self, operation: &str, call: impl Future<Output = T>) -> T {
        let Some(notice) = &self.inner.waiting else {
            return call.await;
        };
        tokio::pin!(call);
        tokio::select! {
            done = &mut call => return done,
            () = tokio::time::sleep(notice.after) => {}
        }
        (notice.notify)(&format!(
            "waiting for {}:{} to answer {operation} (gives up after {:?})",
            self.inner.host, self.inner.port, self.inner.timeout
        ));
        call.await
    }

    /// Whether this port is the manager's node API. The manager's authorization layer
    /// answers before routing on both ports, so a node method alone does not tell them
    /// apart: the port must also not serve `TokenService/GetJwks`, which is public on the
    /// user API, and must answer `NodeService/IsAvailable` (here UNAUTHENTICATED, as no
    /// token is sent) with anything but UNIMPLEMENTED.
    async fn serves_node_api(&self) -> bool {
        use manta_proto::node::node_service::node_service_client::NodeServiceClient;
        let unimplemented = |r: &std::result::Result<(), tonic::Status>| {
            matches!(r, Err(s) if s.code() == tonic::Code::Unimplemented
                && std::error::Error::source(s).is_none())
        };
        let mut token_service = tokens(self.inner.channel.clone());
        let jwks =
            token_service.get_jwks(request(mv1::GetJwksRequest {}, None, self.inner.timeout));
        let served = tokio::time::timeout(self.inner.timeout, jwks).await;
        if !served.is_ok_and(|r| unimplemented(&r.map(drop))) {
            return false;
        }
        let mut nodes = NodeServiceClient::new(self.inner.channel.clone());
        let probe = nodes.is_available(request(Empty {}, None, self.inner.timeout));
        match tokio::time::timeout(self.inner.timeout, probe).await {
            Ok(r) => {
                let r = r.map(drop);
                !unimplemented(&r)
                    && r.as_ref()
                        .err()
                        .is_none_or(|s| std::error::Error::source(s).is_none())
            }
            Err(_elapsed) => false,
        }
    }

    /// [`UserApi::call`] for the many RPCs whose request is one id (`StrId`), audited as
    /// `{arg}={id}`; `f` sends the prepared request on its client.
    async fn call_by_id<T, F, Fut>(&self, op: Op, arg: &str, id: &str, f: F) -> Result<T>
    where
        F: Fn(Channel, tonic::Request<StrId>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let args = format!("{arg}={id}");
        self.call(op, &args, |ch, auth, t| {
            f(ch, request(StrId { id: id.to_owned() }, auth.as_ref(), t))
        })
        .await
    }

    async fn call_inner<T, F, Fut>(&self, op: Op, f: &mut F) -> Result<T>
    where
        F: FnMut(Channel, Option<AsciiMetadataValue>, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            let token = if op.auth {
                Some(self.token_for_call().await?)
            } else {
                None
            };
            let header = match &token {
                Some(t) if !t.expose_secret().is_empty() => Some(header(t)?),
                _ => None,
            };
            let call = tokio::time::timeout(
                self.inner.timeout,
                f(self.inner.channel.clone(), header, self.inner.timeout),
            );
            let outcome = self.notify_while_waiting(op.name, call).await;
            let err = match outcome {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Err(_elapsed) => Error::Timeout {
                    address: String::new(),
                    operation: op.name,
                    after: self.inner.timeout,
                },
                Ok(Err(status)) => {
                    let err = from_status(op.name, op.method, self.inner.timeout, &status);
                    // The authorization layer answers UNAUTHENTICATED before any handler
                    // runs, so one retry with a renewed token is safe even for calls that
                    // create something.
                    if status.code() == tonic::Code::Unauthenticated
                        && self.inner.auto_refresh
                        && !refreshed
                        && let Some(rejected) =
                            token.as_ref().filter(|t| !t.expose_secret().is_empty())
                    {
                        refreshed = true;
                        match self.inner.tokens.on_unauthenticated(rejected).await {
                            Ok(_) => continue,
                            Err(e) => {
                                tracing::debug!(operation = op.name, error = %e, "renewing a refused token failed");
                                return Err(err);
                            }
                        }
                    }
                    err
                }
            };
            let transient = err.is_transient() || matches!(err, Error::Timeout { .. });
            if transient && op.idempotent && attempt < self.inner.retry.max_retries {
                let delay = self.inner.retry.backoff(attempt);
                tracing::debug!(operation = op.name, attempt, ?delay, error = %err, "retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }

    async fn sign_in_rpc(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(SecretString, Option<SecretString>)> {
        let ch = self.inner.channel.clone();
        let session = tokens(ch.clone())
            .create_session(request(
                mv1::CreateSessionRequest {
                    username: username.to_owned(),
                    password: password.expose_secret().to_owned(),
                },
                None,
                self.inner.timeout,
            ))
            .await;
        match session {
            Ok(s) => {
                let s = s.into_inner();
                if s.access_token.is_empty() {
                    return Err(Error::InvalidResponse {
                        message: "the session has no access token".into(),
                    });
                }
                let refresh =
                    (!s.refresh_token.is_empty()).then(|| SecretString::from(s.refresh_token));
                Ok((SecretString::from(s.access_token), refresh))
            }
            // A published manager has no sessions: sign in the published way.
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                let user = users(ch)
                    .sign_in(request(
                        us::SignInRequest {
                            username: username.to_owned(),
                            password: password.expose_secret().to_owned(),
                        },
                        None,
                        self.inner.timeout,
                    ))
                    .await
                    .map_err(|s| {
                        from_status("sign_in", "UserManagement/SignIn", self.inner.timeout, &s)
                    })?;
                match user.into_inner().token {
                    Some(t) if !t.is_empty() => Ok((SecretString::from(t), None)),
                    _ => Err(Error::InvalidResponse {
                        message: "sign-in returned no token".into(),
                    }),
                }
            }
            Err(status) => Err(from_status(
                "sign_in",
                "TokenService/CreateSession",
                self.inner.timeout,
                &status,
            )),
        }
    }

    /// The seed's `is_available()`: asks all five published services, as the published SDK
    /// does. `false` on any failure; use [`UserApi::check_available`] to learn why.
    pub async fn is_available(&self) -> bool {
        match self.check_available().await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "manager not available");
                false
            }
        }
    }

    /// As [`UserApi::is_available`], with the reason when not.
    ///
    /// # Errors
    /// The first service's failure.
    pub async fn check_available(&self) -> Result<()> {
        macro_rules! probe {
            ($client:path, $method:literal) => {
                self.call(
                    op("is_available", $method, true),
                    "",
                    |ch, auth, t| async move {
                        <$client>::new(ch)
                            .is_available(request(Empty {}, auth.as_ref(), t))
                            .await
                    },
                )
                .await?;
            };
        }
        probe!(
            us::user_management_client::UserManagementClient<Channel>,
            "UserManagement/IsAvailable"
        );
        probe!(
            us::cluster_management_client::ClusterManagementClient<Channel>,
            "ClusterManagement/IsAvailable"
        );
        probe!(
            us::swarm_management_client::SwarmManagementClient<Channel>,
            "SwarmManagement/IsAvailable"
        );
        probe!(
            us::module_management_client::ModuleManagementClient<Channel>,
            "ModuleManagement/IsAvailable"
        );
        probe!(
            us::network_management_client::NetworkManagementClient<Channel>,
            "NetworkManagement/IsAvailable"
        );
        Ok(())
    }

    /// The signed-in user (`GetUser` with no id).
    ///
    /// # Errors
    /// [`Error::Authentication`] / [`Error::TokenExpired`] for a refused token, and the
    /// transport errors.
    pub async fn get_user(&self) -> Result<User> {
        let u = self
            .call(
                op("get_user", "UserManagement/GetUser", true),
                "",
                |ch, auth, t| async move {
                    users(ch)
                        .get_user(request(
                            us::GetUserRequest { user_id: None },
                            auth.as_ref(),
                            t,
                        ))
                        .await
                },
            )
            .await?;
        Ok(User::from_proto(u))
    }

    /// Ends the session on the manager: this token (and its refresh token) stop working.
    ///
    /// # Errors
    /// [`Error::Authentication`] when the token was already refused.
    pub async fn logout(&self) -> Result<String> {
        let r = self
            .call(op("logout", "UserManagement/Logout", false), "", |ch, auth, t| async move {
                users(ch).logout(request(Empty {}, auth.as_ref(), t)).await
            })
            .await?;
        self.inner.session.clear();
        Ok(r.message)
    }

    /// The seed's `refresh_token(refresh_token)`: exchanges a session refresh token for a
    /// new access token (and a new refresh token, kept by this API), switches this API to
    /// the new access token and returns it. A refresh token works once.
    ///
    /// # Errors
    /// [`Error::Authentication`] for a used, revoked or unknown refresh token.
    pub async fn refresh_token(&self, refresh_token: &SecretString) -> Result<SecretString> {
        let refresh = refresh_token.clone();
        let mut o = op("refresh_token", "TokenService/RefreshSession", false);
        o.auth = false;
        let s = self
            .call(o, "refresh_token=[REDACTED]", |ch, _auth, t| {
                let refresh = refresh.clone();
                async move {
                    tokens(ch)
                        .refresh_session(request(
                            mv1::RefreshSessionRequest {
                                refresh_token: refresh.expose_secret().to_owned(),
                            },
                            None,
                            t,
                        ))
                        .await
                }
            })
            .await?;
        if s.access_token.is_empty() {
            return Err(Error::InvalidResponse {
                message: "the refreshed session has no access token".into(),
            });
        }
        if !s.refresh_token.is_empty() {
            self.inner.session.set(SecretString::from(s.refresh_token));
        }
        let access = SecretString::from(s.access_token);
        self.inner.tokens.rotate(access.clone());
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(access)
    }

    /// Ends the session `refresh_token` belongs to (`manta.v1.TokenService/RevokeSession`):
    /// its access tokens and every refresh token of its family stop working. Needs no
    /// access token, so it also works after the access token expired.
    ///
    /// # Errors
    /// [`Error::Authentication`] for an unknown refresh token.
    pub async fn revoke_session(&self, refresh_token: &SecretString) -> Result<()> {
        let refresh = refresh_token.clone();
        let mut o = op("revoke_session", "TokenService/RevokeSession", true);
        o.auth = false;
        self.call(o, "refresh_token=[REDACTED]", |ch, _auth, t| {
            let refresh = refresh.clone();
            async move {
                tokens(ch)
                    .revoke_session(request(
                        mv1::RevokeSessionRequest {
                            refresh_token: refresh.expose_secret().to_owned(),
                        },
                        None,
                        t,
                    ))
                    .await
            }
        })
        .await?;
        if self
            .inner
            .session
            .get()
            .is_some_and(|held| held.expose_secret() == refresh_token.expose_secret())
        {
            self.inner.session.clear();
        }
        Ok(())
    }

    /// Renews the current access token now with the published `RefreshUserToken`, switches
    /// to it and returns it (`manta token refresh`).
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] for token kinds that cannot be refreshed (API tokens),
    /// [`Error::TokenExpired`] when the token already expired.
    pub async fn refresh_now(&self) -> Result<SecretString> {
        let mut o = op("refresh_now", "UserManagement/RefreshUserToken", false);
        o.auth = false;
        let current = self.inner.tokens.current();
        let auth = if current.expose_secret().is_empty() {
            None
        } else {
            Some(header(&current)?)
        };
        let jwt = self
            .call(o, "", |ch, _none, t| {
                let auth = auth.clone();
                async move {
                    users(ch)
                        .refresh_user_token(request(Empty {}, auth.as_ref(), t))
                        .await
                }
            })
            .await?;
        if jwt.token.is_empty() {
            return Err(Error::InvalidResponse {
                message: "the manager returned an empty token".into(),
            });
        }
        let token = SecretString::from(jwt.token);
        self.inner.tokens.rotate(token.clone());
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(token)
    }

    /// Creates a named API token holding `scopes` (each must be among the caller's own),
    /// valid for `ttl` (the manager's default when `None`). The token is returned once.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for a scope the caller lacks, [`Error::InvalidArgument`]
    /// for a malformed scope or name.
    pub async fn create_api_token(
        &self,
        name: &str,
        scopes: &[String],
        ttl: Option<Duration>,
    ) -> Result<CreatedApiToken> {
        let req = mv1::CreateApiTokenRequest {
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            ttl_seconds: ttl.map_or(0, |d| d.as_secs().max(1)),
        };
        let args = format!("name={name}, scopes={}", scopes.join(" "));
        let r = self
            .call(
                op("create_api_token", "TokenService/CreateApiToken", false),
                &args,
                |ch, auth, t| {
                    let req = req.clone();
                    async move {
                        tokens(ch)
                            .create_api_token(request(req, auth.as_ref(), t))
                            .await
                    }
                },
            )
            .await?;
        if r.token.is_empty() {
            return Err(Error::InvalidResponse {
                message: "the manager returned no token".into(),
            });
        }
        Ok(CreatedApiToken {
            info: ApiTokenInfo::from_proto(r.info.unwrap_or_default()),
            token: SecretString::from(r.token),
        })
    }

    /// The caller's API tokens (metadata only); `include_inactive` adds revoked and
    /// expired ones.
    ///
    /// # Errors
    /// The authentication and transport errors.
    pub async fn list_api_tokens(&self, include_inactive: bool) -> Result<Vec<ApiTokenInfo>> {
        let r = self
            .call(
                op("list_api_tokens", "TokenService/ListApiTokens", true),
                "",
                |ch, auth, t| async move {
                    tokens(ch)
                        .list_api_tokens(request(
                            mv1::ListApiTokensRequest { include_inactive },
                            auth.as_ref(),
                            t,
                        ))
                        .await
                },
            )
            .await?;
        Ok(r.tokens.into_iter().map(ApiTokenInfo::from_proto).collect())
    }

    /// Revokes one of the caller's API tokens by id.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn revoke_api_token(&self, id: &str) -> Result<()> {
        let args = format!("id={id}");
        self.call(
            op("revoke_api_token", "TokenService/RevokeApiToken", true),
            &args,
            |ch, auth, t| {
                let token_id = id.to_owned();
                async move {
                    tokens(ch)
                        .revoke_api_token(request(
                            mv1::RevokeApiTokenRequest { token_id },
                            auth.as_ref(),
                            t,
                        ))
                        .await
                }
            },
        )
        .await?;
        Ok(())
    }

    /// Ids of the clusters the caller can see (`ListClusterIds`).
    ///
    /// # Errors
    /// [`Error::Unimplemented`] on managers without clusters, and the usual errors.
    pub async fn list_clusters(&self) -> Result<Vec<String>> {
        let r = self
            .call(
                op("list_clusters", "ClusterManagement/ListClusterIds", true),
                "",
                |ch, auth, t| async move {
                    clusters(ch)
                        .list_cluster_ids(request(Empty {}, auth.as_ref(), t))
                        .await
                },
            )
            .await?;
        Ok(r.ids)
    }

    /// One cluster (`GetCluster`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when missing or not visible to the caller.
    pub async fn get_cluster(&self, id: &str) -> Result<Cluster> {
        let c = self
            .call_by_id(
                op("get_cluster", "ClusterManagement/GetCluster", true),
                "cluster_id",
                id,
                |ch, req| async move { clusters(ch).get_cluster(req).await },
            )
            .await?;
        Ok(Cluster::from_proto(c))
    }

    /// Creates a cluster and returns its id (`CreateCluster`, never retried).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] without `cluster:create`.
    pub async fn create_cluster(&self, name: Option<&str>) -> Result<String> {
        let args = format!("name={}", name.unwrap_or("-"));
        let r = self
            .call(
                op("create_cluster", "ClusterManagement/CreateCluster", false),
                &args,
                |ch, auth, t| {
                    let name = name.map(str::to_owned);
                    async move {
                        clusters(ch)
                            .create_cluster(request(
                                us::CreateClusterRequest { name },
                                auth.as_ref(),
                                t,
                            ))
                            .await
                    }
                },
            )
            .await?;
        Ok(r.id)
    }

    /// Starts a cluster (`StartCluster`).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::FailedPrecondition`] and the usual errors.
    pub async fn start_cluster(&self, id: &str) -> Result<Cluster> {
        let c = self
            .call_by_id(
                op("start_cluster", "ClusterManagement/StartCluster", false),
                "cluster_id",
                id,
                |ch, req| async move { clusters(ch).start_cluster(req).await },
            )
            .await?;
        Ok(Cluster::from_proto(c))
    }

    /// Stops a cluster (`StopCluster`) and returns the manager's message.
    ///
    /// # Errors
    /// [`Error::NotFound`] and the usual errors.
    pub async fn stop_cluster(&self, id: &str) -> Result<String> {
        let r = self
            .call_by_id(
                op("stop_cluster", "ClusterManagement/StopCluster", false),
                "cluster_id",
                id,
                |ch, req| async move { clusters(ch).stop_cluster(req).await },
            )
            .await?;
        Ok(r.message)
    }

    /// Uploads a module (`SendModule`, never retried) and returns its id.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] without `module:upload`, and the usual errors.
    pub async fn upload_module(&self, module: &ModuleSpec) -> Result<String> {
        let args = format!(
            "name={}, image={}, bytes={}",
            module.name,
            module.image,
            module.program.len()
        );
        let msg = module.to_proto();
        let r = self
            .call(
                op("upload_module", "ModuleManagement/SendModule", false),
                &args,
                |ch, auth, t| {
                    let msg = msg.clone();
                    async move {
                        us::module_management_client::ModuleManagementClient::new(ch)
                            .max_decoding_message_size(MAX_MESSAGE_BYTES)
                            .max_encoding_message_size(MAX_MESSAGE_BYTES)
                            .send_module(request(msg, auth.as_ref(), t))
                            .await
                    }
                },
            )
            .await?;
        Ok(r.id)
    }

    /// The seed's `deploy_swarm(cluster_id, swarm)`: uploads each task's module, sends the
    /// swarm graph, initializes its networks, starts it and returns it as the manager sees
    /// it (`GetSwarm`; when the token lacks `swarm:read`, as the calls returned it: status
    /// `ACTIVE`, owner and times unknown). No step is retried; a swarm that fails to start
    /// is removed again.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed spec (checked before anything is sent),
    /// and the errors of each step.
    pub async fn deploy_swarm(&self, cluster_id: &str, swarm: &SwarmSpec) -> Result<Swarm> {
        swarm
            .validate()
            .map_err(|message| Error::InvalidArgument { message })?;
        let mut module_ids = Vec::with_capacity(swarm.tasks.len());
        for task in &swarm.tasks {
            let id = self.upload_module(&task.module).await?;
            module_ids.push(pair_id(&id).ok_or_else(|| Error::InvalidResponse {
                message: "the module id is not 32 hex characters".into(),
            })?);
        }
        let mut task_ids = Vec::with_capacity(swarm.tasks.len());
        for _ in &swarm.tasks {
            task_ids.push(random_pair_id()?);
        }
        let index = |alias: &str| swarm.tasks.iter().position(|t| t.alias == alias);
        let graph_tasks = swarm
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let previous = t
                    .after
                    .iter()
                    .filter_map(|a| index(a))
                    .map(|j| task_ids[j])
                    .collect();
                let next = swarm
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, other)| other.after.contains(&t.alias))
                    .map(|(j, _)| task_ids[j])
                    .collect();
                manta_proto::common::tasks::Task {
                    task_id: Some(task_ids[i]),
                    scheduling: Some(manta_proto::common::tasks::Scheduling {
                        method: t.method.clone(),
                        ..Default::default()
                    }),
                    module_id: Some(module_ids[i]),
                    previous_tasks: previous,
                    next_tasks: next,
                    conditions: Vec::new(),
                    order: i32::try_from(i).unwrap_or(i32::MAX),
                    network: None,
                    alias: t.alias.clone(),
                }
            })
            .collect();
        let req = us::SendSwarmRequest {
            graph: Some(manta_proto::common::swarms::Graph { tasks: graph_tasks }),
            name: swarm.name.clone(),
            cluster_id: cluster_id.to_owned(),
            max_iteration: swarm.max_iteration,
            network_id: None,
            network_config: None,
        };
        let args = format!(
            "cluster_id={cluster_id}, name={}, tasks={}",
            swarm.name,
            swarm.tasks.len()
        );
        let sent = self
            .call(
                op("send_swarm", "SwarmManagement/SendSwarm", false),
                &args,
                |ch, auth, t| {
                    let req = req.clone();
                    async move { swarms(ch).send_swarm(request(req, auth.as_ref(), t)).await }
                },
            )
            .await?;
        let swarm_id = sent.swarm_id.clone();
        let networks = manta_proto::common::system::Networks {
            swarm_id: pair_id(&swarm_id),
            networks: Vec::new(),
        };
        let sid = format!("swarm_id={swarm_id}");
        let started = async {
            self.call(
                op(
                    "initialize_networks",
                    "SwarmManagement/InitializeNetworks",
                    false,
                ),
                &sid,
                |ch, auth, t| {
                    let networks = networks.clone();
                    async move {
                        swarms(ch)
                            .initialize_networks(request(networks, auth.as_ref(), t))
                            .await
                    }
                },
            )
            .await?;
            self.call_by_id(
                op("start_swarm", "SwarmManagement/StartSwarm", false),
                "swarm_id",
                &swarm_id,
                |ch, req| async move { swarms(ch).start_swarm(req).await },
            )
            .await
        }
        .await;
        if let Err(e) = started {
            // Do not leave a half-deployed swarm behind; the original error is what matters.
            let removed = self
                .call_by_id(
                    op("remove_swarm", "SwarmManagement/RemoveSwarm", false),
                    "swarm_id",
                    &swarm_id,
                    |ch, req| async move { swarms(ch).remove_swarm(req).await },
                )
                .await;
            if let Err(r) = removed {
                tracing::warn!(error = %r, "could not remove the swarm that failed to start");
            }
            return Err(e);
        }
        match self.get_swarm(&swarm_id).await {
            // Deployed and started: a token that may deploy but not read swarms
            // (`swarm:read`) must not be told that the deployment failed, or it would deploy
            // again. What the calls returned stands in for the manager's view.
            Err(Error::PermissionDenied { .. }) => Ok(Swarm {
                id: swarm_id,
                cluster_id: cluster_id.to_owned(),
                owner_id: String::new(),
                name: swarm.name.clone(),
                status: "ACTIVE".to_owned(),
                iteration: None,
                created_at: None,
            }),
            read => read,
        }
    }

    /// Stops a swarm (`StopSwarm` with `remove=false`, as the published SDK).
    ///
    /// # Errors
    /// [`Error::NotFound`] and the usual errors.
    pub async fn stop_swarm(&self, id: &str) -> Result<String> {
        let args = format!("swarm_id={id}");
        let r = self
            .call(
                op("stop_swarm", "SwarmManagement/StopSwarm", false),
                &args,
                |ch, auth, t| {
                    let swarm_id = id.to_owned();
                    async move {
                        swarms(ch)
                            .stop_swarm(request(
                                StopSwarmRequest {
                                    swarm_id,
                                    force: false,
                                    remove: false,
                                },
                                auth.as_ref(),
                                t,
                            ))
                            .await
                    }
                },
            )
            .await?;
        Ok(r.message)
    }

    /// One swarm (`GetSwarm`).
    ///
    /// # Errors
    /// [`Error::NotFound`] and the usual errors.
    pub async fn get_swarm(&self, id: &str) -> Result<Swarm> {
        let s = self
            .call_by_id(
                op("get_swarm", "SwarmManagement/GetSwarm", true),
                "swarm_id",
                id,
                |ch, req| async move { swarms(ch).get_swarm(req).await },
            )
            .await?;
        Ok(Swarm::from_proto(s))
    }

    /// Ids of the caller's swarms (`ListSwarmIds`).
    ///
    /// # Errors
    /// The usual errors.
    pub async fn list_swarms(&self) -> Result<Vec<String>> {
        let r = self
            .call(
                op("list_swarms", "SwarmManagement/ListSwarmIds", true),
                "",
                |ch, auth, t| async move {
                    swarms(ch)
                        .list_swarm_ids(request(Empty {}, auth.as_ref(), t))
                        .await
                },
            )
            .await?;
        Ok(r.ids)
    }

    /// Every stored result of `swarm_id` under `tag` (`SelectResults`, streamed and
    /// collected).
    ///
    /// # Errors
    /// [`Error::NotFound`] and the usual errors.
    pub async fn results(&self, swarm_id: &str, tag: &str) -> Result<Vec<ResultRecord>> {
        let args = format!("swarm_id={swarm_id}, tag={tag}");
        let req = us::ResultsRequest {
            swarm_id: swarm_id.to_owned(),
            tag: tag.to_owned(),
        };
        self.call(
            op("results", "SwarmManagement/SelectResults", true),
            &args,
            |ch, auth, t| {
                let req = req.clone();
                async move {
                    let mut stream = swarms(ch)
                        .select_results(request(req, auth.as_ref(), t))
                        .await?
                        .into_inner();
                    let mut out = Vec::new();
                    while let Some(r) = stream.message().await? {
                        out.push(ResultRecord {
                            node_id: r.node_id,
                            task_id: r.task_id,
                            iteration: r.iteration,
                            tag: r.tag,
                            data: r.data,
                        });
                    }
                    Ok(tonic::Response::new(out))
                }
            },
        )
        .await
    }

    /// Result tags of a swarm with their storage use in GB (`ListResultTags`).
    ///
    /// # Errors
    /// [`Error::NotFound`] and the usual errors.
    pub async fn result_tags(
        &self,
        swarm_id: &str,
    ) -> Result<std::collections::BTreeMap<String, f32>> {
        let r = self
            .call_by_id(
                op("result_tags", "SwarmManagement/ListResultTags", true),
                "swarm_id",
                swarm_id,
                |ch, req| async move { swarms(ch).list_result_tags(req).await },
            )
            .await?;
        Ok(r.gb_usage_per_tag.into_iter().collect())
    }
}

/// The `authorization` value: the raw JWT, as the published SDK sends it, marked sensitive
/// so HTTP/2 never indexes it in HPACK tables. Surrounding whitespace is dropped: a token
/// pasted into a variable or saved by an editor often ends with a newline, and a JWT never
/// contains whitespace.
pub(crate) fn header(token: &SecretString) -> Result<AsciiMetadataValue> {
    let mut v =
        AsciiMetadataValue::try_from(token.expose_secret().trim()).map_err(|_| Error::Setting {
            message:
                "the token contains characters not allowed in a header; copy the whole token again"
                    .into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A request with the token (if any) and a deadline.
pub(crate) fn request<M>(
    msg: M,
    auth: Option<&AsciiMetadataValue>,
    timeout: Duration,
) -> tonic::Request<M> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = auth {
        r.metadata_mut().insert("authorization", v.clone());
    }
    r.set_timeout(timeout);
    r
}

fn users(ch: Channel) -> us::user_management_client::UserManagementClient<Channel> {
    us::user_management_client::UserManagementClient::new(ch)
}

pub(crate) fn tokens(ch: Channel) -> mv1::token_service_client::TokenServiceClient<Channel> {
    mv1::token_service_client::TokenServiceClient::new(ch)
}

fn clusters(ch: Channel) -> us::cluster_management_client::ClusterManagementClient<Channel> {
    us::cluster_management_client::ClusterManagementClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

fn swarms(ch: Channel) -> us::swarm_management_client::SwarmManagementClient<Channel> {
    us::swarm_management_client::SwarmManagementClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn random_pair_id() -> Result<manta_proto::common::system::PairId> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Setting {
        message: format!("the system random source failed ({e}); task ids cannot be made"),
    })?;
    let v = u128::from_be_bytes(b);
    pair_id(&format!("{v:032x}")).ok_or_else(|| Error::Setting {
        message: "task id generation failed".into(),
    })
}

/// Locks a mutex, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The cell holds one value replaced whole; a panic elsewhere cannot leave it torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 0..6 {
            let d = p.backoff(attempt);
            let base = p
                .initial_backoff
                .saturating_mul(1 << attempt)
                .min(p.max_backoff);
            assert!(d >= base / 2 && d <= base, "{attempt}: {d:?} vs {base:?}");
        }
    }

    #[tokio::test]
    async fn bad_settings_are_refused_with_what_to_do() {
        let e = UserApi::new(SecretString::from(" "), "localhost", 1).unwrap_err();
        assert!(e.to_string().contains("manta login"), "{e}");
        let e = UserApi::builder("", 1).build().unwrap_err();
        assert!(e.to_string().contains("host is empty"), "{e}");
        let e = UserApi::builder("localhost", 50052)
            .danger_disable_ssl_verification()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("needs TLS"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = UserApi::builder("localhost", 50052)
            .cert_folder(dir.path())
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        assert!(e.to_string().contains("ca.crt"), "{e}");
    }

    #[test]
    fn building_outside_a_runtime_points_to_the_blocking_facade() {
        let e = UserApi::new(SecretString::from("eyJhbGciOi.x.y"), "localhost", 1).unwrap_err();
        assert!(e.to_string().contains("blocking::UserApi"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_after_bounded_retries() {
        // Bind then drop to get a port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let api = UserApi::builder("127.0.0.1", port)
            .token(SecretString::from("eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln"))
            .retry_policy(RetryPolicy {
                max_retries: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(10),
            })
            .build()
            .unwrap();
        let e = api.get_user().await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(!e.to_string().contains("eyJ"), "{e}");
        assert!(!api.is_available().await);
        let debug = format!("{api:?}");
        assert!(!debug.contains("eyJ"), "{debug}");
    }
}
