//! The manager's TOML configuration (read through manta-config, so `${VAR}` works) and its
//! defaults, which are the published platform's ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::audit::Retention;
use crate::error::{Error, Result};
use crate::identity::Lifetimes;
use crate::keys::SigningMode;
use crate::limits::Limits;
use crate::ratelimit::SignInLimits;
use crate::registry::NodeSettings;
use crate::server::DEFAULT_MAX_MESSAGE_BYTES;

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database lives (`manager.db`).
    pub data_dir: PathBuf,
    /// The `iss` claim of issued tokens.
    pub issuer: String,
    /// Listening addresses and limits.
    pub listen: ListenConfig,
    /// Message sizes below the large limit, connection timeouts and caps.
    pub limits: LimitsConfig,
    /// Token lifetimes.
    pub tokens: TokenConfig,
    /// How tokens are signed.
    pub signing: SigningConfig,
    /// Brute-force limits for SignIn.
    pub sign_in: SignInConfig,
    /// Node heartbeats and node token lifetimes.
    pub nodes: NodesConfig,
    /// How long the audit trail is kept.
    pub audit: AuditConfig,
    /// TLS for both APIs; absent means plaintext h2c.
    pub tls: Option<TlsConfig>,
    /// The MQTT broker of the published node transport; absent means nodes use gRPC only.
    pub mqtt: Option<MqttConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./manta-manager-data"),
            issuer: "manta-manager".into(),
            listen: ListenConfig::default(),
            limits: LimitsConfig::default(),
            tokens: TokenConfig::default(),
            signing: SigningConfig::default(),
            sign_in: SignInConfig::default(),
            nodes: NodesConfig::default(),
            audit: AuditConfig::default(),
            tls: None,
            mqtt: None,
        }
    }
}

/// `[listen]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The user API (the SDK's port), 50052 by default.
    pub user_api: SocketAddr,
    /// The node API (`manta_node`'s `manager_port`), 50051 by default.
    pub node_api: SocketAddr,
    /// Largest gRPC message in bytes: sent, and accepted by the methods that carry module
    /// code, globals and results (the others take `[limits]`).
    pub max_message_bytes: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            user_api: SocketAddr::from(([0, 0, 0, 0], 50052)),
            node_api: SocketAddr::from(([0, 0, 0, 0], 50051)),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// `[limits]`: what a client can make the manager hold, even before it authenticates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest message of an unauthenticated or identity method (sign-in, sessions, users,
    /// node registration), in bytes.
    pub identity_message_bytes: usize,
    /// Largest message of the other methods, except modules, globals and results.
    pub message_bytes: usize,
    /// Seconds from the TCP accept to the HTTP/2 preface, the TLS handshake included.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection with no open call stays open; 0 keeps it.
    pub idle_timeout_secs: u64,
    /// Seconds between HTTP/2 keepalive pings on a quiet connection (and the TCP
    /// keepalive idle time).
    pub keepalive_interval_secs: u64,
    /// Seconds a keepalive ping may go unanswered before the connection is closed.
    pub keepalive_timeout_secs: u64,
    /// Connections open at once on both listeners together.
    pub max_connections: usize,
    /// Connections open at once from one address (IPv4 address, IPv6 /64).
    pub max_connections_per_peer: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            identity_message_bytes: l.identity_message_bytes,
            message_bytes: l.message_bytes,
            handshake_timeout_secs: l.handshake_timeout.as_secs(),
            idle_timeout_secs: l.idle_timeout.map_or(0, |d| d.as_secs()),
            keepalive_interval_secs: l.keepalive_interval.as_secs(),
            keepalive_timeout_secs: l.keepalive_timeout.as_secs(),
            max_connections: l.max_connections,
            max_connections_per_peer: l.max_connections_per_peer,
        }
    }
}

/// `[tokens]`, all in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Access token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime.
    pub refresh_ttl_secs: u64,
    /// A session's maximum lifetime.
    pub session_max_secs: u64,
    /// Default API token lifetime.
    pub api_default_ttl_secs: u64,
    /// Longest API token lifetime.
    pub api_max_ttl_secs: u64,
    /// How recent a password sign-in must be for its session to create API tokens.
    pub recent_auth_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        let l = Lifetimes::default();
        TokenConfig {
            access_ttl_secs: l.access.as_secs(),
            refresh_ttl_secs: l.refresh.as_secs(),
            session_max_secs: l.session_max.as_secs(),
            api_default_ttl_secs: l.api_default.as_secs(),
            api_max_ttl_secs: l.api_max.as_secs(),
            recent_auth_secs: l.recent_auth.as_secs(),
        }
    }
}

/// `[signing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// `EdDSA` (default) or `HS256`.
    pub algorithm: String,
    /// The shared secret for HS256, at least 32 bytes; use `${VAR}`.
    pub hs256_secret: Option<SecretString>,
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            algorithm: "EdDSA".into(),
            hs256_secret: None,
        }
    }
}

/// `[sign_in]`: see `crate::ratelimit` for how the limits combine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInConfig {
    /// Attempts per peer address (IPv6: per /64) per window.
    pub attempts_per_peer: u32,
    /// Failures per user name from one peer per window; success resets it.
    pub failures_per_user: u32,
    /// Window length in seconds.
    pub window_secs: u64,
    /// Failures per user name from all peers per window before new peers are slowed down.
    pub user_slow_down_after: u32,
    /// Seconds between two attempts at a slowed-down user name from a new peer.
    pub user_slow_down_secs: u64,
    /// Seconds a peer that signed in as a user skips that user's slow-down.
    pub trusted_peer_secs: u64,
    /// Entries each limiter table holds at most.
    pub max_tracked: usize,
    /// Passwords checked with argon2 at the same time (0: the number of CPUs).
    pub concurrent_password_checks: usize,
    /// Sign-ins that may wait for a password check; more are refused at once.
    pub queued_password_checks: usize,
}

impl Default for SignInConfig {
    fn default() -> Self {
        let l = SignInLimits::default();
        SignInConfig {
            attempts_per_peer: l.per_peer,
            failures_per_user: l.failures_per_user,
            window_secs: l.window.as_secs(),
            user_slow_down_after: l.user_slow_down_after,
            user_slow_down_secs: l.user_slow_down.as_secs(),
            trusted_peer_secs: l.trust_for.as_secs(),
            max_tracked: l.max_entries,
            concurrent_password_checks: l.concurrent_checks,
            queued_password_checks: l.queued_checks,
        }
    }
}

/// `[audit]`: retention of the audit trail, enforced by the audit writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Rows older than this many days are deleted (0: kept regardless of age).
    pub max_age_days: u64,
    /// At most this many rows, the newest, are kept (0: no limit).
    pub max_rows: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let r = Retention::default();
        AuditConfig {
            max_age_days: r.max_age.map_or(0, |d| d.as_secs() / 86_400),
            max_rows: r.max_rows.unwrap_or(0),
        }
    }
}

/// `[nodes]`, all in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodesConfig {
    /// How often nodes heartbeat (sent to them in `Registration`).
    pub heartbeat_interval_secs: u64,
    /// A node silent this long is shown offline.
    pub offline_after_secs: u64,
    /// Lifetime of a node identity token; nodes renew it before it ends.
    pub token_ttl_secs: u64,
    /// How long after its expiry a node token may still be renewed (0: never).
    pub renew_grace_secs: u64,
    /// Lifetime of a cluster's bootstrap token when none is asked for.
    pub bootstrap_ttl_secs: u64,
    /// The longest lifetime a bootstrap token may be issued with.
    pub bootstrap_max_ttl_secs: u64,
}

impl Default for NodesConfig {
    fn default() -> Self {
        let n = NodeSettings::default();
        NodesConfig {
            heartbeat_interval_secs: n.heartbeat_interval.as_secs(),
            offline_after_secs: n.offline_after.as_secs(),
            token_ttl_secs: n.node_token_ttl.as_secs(),
            renew_grace_secs: n.renew_grace.as_secs(),
            bootstrap_ttl_secs: n.bootstrap_ttl.as_secs(),
            bootstrap_max_ttl_secs: n.bootstrap_max_ttl.as_secs(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Folder with `server.crt`, `server.key` and (for client certificates) `ca.crt`.
    pub cert_folder: PathBuf,
    /// `none`, `optional` or `required` client certificates (mTLS).
    #[serde(default = "default_client_auth")]
    pub client_auth: String,
}

fn default_client_auth() -> String {
    "none".into()
}

impl TlsConfig {
    /// Loads the certificate folder through manta-tls.
    pub fn server_tls(&self) -> Result<manta_tls::ServerTls> {
        let auth = match self.client_auth.as_str() {
            "none" => manta_tls::ClientAuth::None,
            "optional" => manta_tls::ClientAuth::Optional,
            "required" => manta_tls::ClientAuth::Required,
            other => {
                return Err(Error::Config(format!(
                    "tls.client_auth {other:?} is not supported; use \"none\", \"optional\" or \"required\""
                )));
            }
        };
        manta_tls::ServerTls::from_folder(&self.cert_folder, auth).map_err(Error::Tls)
    }
}

/// `[mqtt]`: the broker the published node speaks to (`docs/mqtt.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `HOST:PORT` of the broker the manager connects to.
    pub broker: String,
    /// `HOST:PORT` nodes are told in `Registration`, when they reach the broker under
    /// another name than the manager does; `broker` by default.
    pub advertise: Option<String>,
    /// The manager's broker user name.
    pub username: Option<String>,
    /// The manager's broker password; use `${VAR}`.
    pub password: Option<SecretString>,
    /// The manager's MQTT client id.
    #[serde(default = "default_mqtt_client_id")]
    pub client_id: String,
    /// TLS to the broker; by default on for port 8883 only.
    pub tls: Option<bool>,
    /// Folder with the broker's CA (`ca.crt`) and optionally the manager's `client.crt` and
    /// `client.key`; without it TLS trusts the system roots.
    pub cert_folder: Option<PathBuf>,
    /// Refused heartbeats verified and audited per second; more are dropped unverified.
    #[serde(default = "default_refusals_per_second")]
    pub refusals_per_second: u32,
}

fn default_mqtt_client_id() -> String {
    "manta-manager".into()
}

fn default_refusals_per_second() -> u32 {
    50
}

/// `HOST:PORT` (IPv6 in brackets) into its parts, or a message naming `key`.
fn host_port(key: &str, value: &str) -> Result<(String, u16)> {
    let bad = || {
        Error::Config(format!(
            "{key} {value:?} is not HOST:PORT; write e.g. \"broker.example.com:8883\""
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl MqttConfig {
    /// The transport settings, checked; TLS material is loaded through manta-tls.
    pub fn settings(&self) -> Result<crate::mqtt::MqttSettings> {
        let broker = host_port("mqtt.broker", &self.broker)?;
        let advertise = match &self.advertise {
            Some(a) => host_port("mqtt.advertise", a)?,
            None => broker.clone(),
        };
        if self.username.is_some() != self.password.is_some() {
            return Err(Error::Config(
                "mqtt.username and mqtt.password go together; set both (password = \"${MANTA_MQTT_PASSWORD}\") or neither".into(),
            ));
        }
        if self.refusals_per_second == 0 {
            return Err(Error::Config(
                "mqtt.refusals_per_second must be above zero (50 is the default)".into(),
            ));
        }
        let tls = if self.tls.unwrap_or(broker.1 == 8883) {
            let tls = match &self.cert_folder {
                Some(folder) => manta_tls::ClientTls::from_folder(folder),
                None => manta_tls::ClientTls::system_roots(),
            };
            Some(tls.map_err(Error::Tls)?)
        } else {
            None
        };
        Ok(crate::mqtt::MqttSettings {
            broker,
            advertise,
            username: self.username.clone(),
            password: self.password.clone(),
            client_id: self.client_id.clone(),
            tls,
            refusals_per_second: self.refusals_per_second,
        })
    }
}

impl Config {
    /// Loads a file through manta-config: `${VAR}` substitution, located errors, and a
    /// permission check when the HS256 secret is written in the file itself.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &manta_config::Env::process())
    }

    /// Like [`Config::load`] with an explicit environment for `${VAR}` substitution.
    pub fn load_with(path: &Path, env: &manta_config::Env) -> Result<Self> {
        let options = manta_config::LoadOptions::new()
            .secret_key("signing.hs256_secret")
            .secret_key("mqtt.password")
            .missing_file_hint("create it (see docs/manager.md) or run without --config");
        manta_config::load_file::<Config>(path, env, &options)
            .map(|loaded| loaded.value)
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("manager.db")
    }

    /// Token lifetimes, checked for consistency.
    pub fn lifetimes(&self) -> Result<Lifetimes> {
        let t = &self.tokens;
        let l = Lifetimes {
            access: Duration::from_secs(t.access_ttl_secs),
            refresh: Duration::from_secs(t.refresh_ttl_secs),
            session_max: Duration::from_secs(t.session_max_secs),
            api_default: Duration::from_secs(t.api_default_ttl_secs),
            api_max: Duration::from_secs(t.api_max_ttl_secs),
            recent_auth: Duration::from_secs(t.recent_auth_secs),
        };
        if [
            l.access,
            l.refresh,
            l.session_max,
            l.api_default,
            l.api_max,
            l.recent_auth,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return Err(Error::Config(
                "token lifetimes in [tokens] must be above zero".into(),
            ));
        }
        if l.api_default > l.api_max {
            return Err(Error::Config(
                "tokens.api_default_ttl_secs exceeds tokens.api_max_ttl_secs; lower the default"
                    .into(),
            ));
        }
        Ok(l)
    }

    /// Node settings, checked for consistency.
    pub fn node_settings(&self) -> Result<NodeSettings> {
        let n = &self.nodes;
        let bad = |what: &str| Err(Error::Config(format!("nodes.{what}")));
        if n.heartbeat_interval_secs == 0 || n.heartbeat_interval_secs > u64::from(u32::MAX) {
            return bad("heartbeat_interval_secs must be 1 or more seconds (5 is the default)");
        }
        if n.offline_after_secs < n.heartbeat_interval_secs {
            return bad(
                "offline_after_secs is shorter than heartbeat_interval_secs, so healthy nodes \
                 would show offline; use about three heartbeat intervals",
            );
        }
        if n.token_ttl_secs <= n.heartbeat_interval_secs {
            return bad(
                "token_ttl_secs must be longer than heartbeat_interval_secs, or node tokens \
                 expire between two heartbeats",
            );
        }
        if n.bootstrap_ttl_secs == 0 {
            return bad("bootstrap_ttl_secs must be above zero");
        }
        if n.bootstrap_ttl_secs > n.bootstrap_max_ttl_secs {
            return bad("bootstrap_ttl_secs exceeds bootstrap_max_ttl_secs; lower the default");
        }
        Ok(NodeSettings {
            heartbeat_interval: Duration::from_secs(n.heartbeat_interval_secs),
            offline_after: Duration::from_secs(n.offline_after_secs),
            node_token_ttl: Duration::from_secs(n.token_ttl_secs),
            renew_grace: Duration::from_secs(n.renew_grace_secs),
            bootstrap_ttl: Duration::from_secs(n.bootstrap_ttl_secs),
            bootstrap_max_ttl: Duration::from_secs(n.bootstrap_max_ttl_secs),
        })
    }

    /// The signing mode.
    pub fn signing_mode(&self) -> Result<SigningMode> {
        match (self.signing.algorithm.as_str(), &self.signing.hs256_secret) {
            ("EdDSA", _) => Ok(SigningMode::EdDsa),
            ("HS256", Some(secret)) => Ok(SigningMode::Hs256(secret.clone())),
            ("HS256", None) => Err(Error::Config(
                "signing.algorithm is HS256 but signing.hs256_secret is not set; set it, e.g. \
                 hs256_secret = \"${MANTA_HS256_SECRET}\""
                    .into(),
            )),
            (other, _) => Err(Error::Config(format!(
                "signing.algorithm {other:?} is not supported; use \"EdDSA\" or \"HS256\""
            ))),
        }
    }

    /// The message sizes, timeouts and caps, checked for consistency.
    pub fn limits(&self) -> Result<Limits> {
        let (l, large) = (&self.limits, self.listen.max_message_bytes);
        let bad = |what: &str| Err(Error::Config(format!("limits.{what}")));
        if l.identity_message_bytes < 1024 {
            return bad("identity_message_bytes must be 1024 or more (65536 is the default)");
        }
        if l.message_bytes < l.identity_message_bytes || l.message_bytes > large {
            return bad(
                "message_bytes must lie between limits.identity_message_bytes and \
                 listen.max_message_bytes; change one of them",
            );
        }
        for (key, secs) in [
            ("handshake_timeout_secs", l.handshake_timeout_secs),
            ("keepalive_interval_secs", l.keepalive_interval_secs),
            ("keepalive_timeout_secs", l.keepalive_timeout_secs),
        ] {
            if secs == 0 {
                return bad(&format!("{key} must be above zero"));
            }
        }
        if l.max_connections == 0 || l.max_connections_per_peer == 0 {
            return bad("max_connections and max_connections_per_peer must be above zero");
        }
        if l.max_connections_per_peer > l.max_connections {
            return bad(
                "max_connections_per_peer exceeds limits.max_connections; lower the per-peer cap",
            );
        }
        Ok(Limits {
            identity_message_bytes: l.identity_message_bytes,
            message_bytes: l.message_bytes,
            handshake_timeout: Duration::from_secs(l.handshake_timeout_secs),
            idle_timeout: (l.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(l.idle_timeout_secs)),
            keepalive_interval: Duration::from_secs(l.keepalive_interval_secs),
            keepalive_timeout: Duration::from_secs(l.keepalive_timeout_secs),
            max_connections: l.max_connections,
            max_connections_per_peer: l.max_connections_per_peer,
        })
    }

    /// The SignIn limits.
    pub fn sign_in_limits(&self) -> SignInLimits {
        let c = &self.sign_in;
        SignInLimits {
            per_peer: c.attempts_per_peer,
            failures_per_user: c.failures_per_user,
            window: Duration::from_secs(c.window_secs),
            user_slow_down_after: c.user_slow_down_after,
            user_slow_down: Duration::from_secs(c.user_slow_down_secs),
            trust_for: Duration::from_secs(c.trusted_peer_secs),
            max_entries: c.max_tracked,
            concurrent_checks: c.concurrent_password_checks,
            queued_checks: c.queued_password_checks,
        }
    }

    /// The audit trail's retention.
    pub fn audit_retention(&self) -> Retention {
        let a = &self.audit;
        Retention {
            max_age: (a.max_age_days > 0)
                .then(|| Duration::from_secs(a.max_age_days.saturating_mul(86_400))),
            max_rows: (a.max_rows > 0).then_some(a.max_rows),
        }
    }

    /// How long a retired key keeps verifying: the longest time any token it signed can
    /// still be presented, node tokens within their renewal grace included.
    pub fn key_retention_secs(&self) -> i64 {
        let (t, n) = (&self.tokens, &self.nodes);
        let longest = t
            .api_max_ttl_secs
            .max(t.session_max_secs)
            .max(t.access_ttl_secs)
            .max(n.token_ttl_secs.saturating_add(n.renew_grace_secs))
            .max(n.bootstrap_ttl_secs)
            .max(n.bootstrap_max_ttl_secs);
        i64::try_from(longest).unwrap_or(i64::MAX / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manager.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn empty_file_gives_published_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.listen.user_api.port(), 50052);
        assert_eq!(c.listen.node_api.port(), 50051);
        assert!(c.listen.max_message_bytes > 4 * 1024 * 1024);
        assert!(matches!(c.signing_mode().unwrap(), SigningMode::EdDsa));
    }

    #[test]
    fn node_settings_come_from_the_nodes_table_and_contradictions_are_refused() {
        assert_eq!(
            load("").unwrap().node_settings().unwrap(),
            NodeSettings::default()
        );
        let n = load(
            "[nodes]\nheartbeat_interval_secs = 1\noffline_after_secs = 3\n\
             token_ttl_secs = 60\nrenew_grace_secs = 0\nbootstrap_ttl_secs = 600\n",
        )
        .unwrap()
        .node_settings()
        .unwrap();
        assert_eq!(n.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(n.offline_after, Duration::from_secs(3));
        assert_eq!(n.node_token_ttl, Duration::from_secs(60));
        assert_eq!(n.renew_grace, Duration::ZERO);
        assert_eq!(n.bootstrap_ttl, Duration::from_secs(600));
        for (text, says) in [
            (
                "heartbeat_interval_secs = 0",
                "heartbeat_interval_secs must be 1 or more",
            ),
            ("offline_after_secs = 2", "healthy nodes would show offline"),
            ("token_ttl_secs = 5", "expire between two heartbeats"),
            (
                "bootstrap_ttl_secs = 0",
                "bootstrap_ttl_secs must be above zero",
            ),
        ] {
            let err = load(&format!("[nodes]\n{text}\n"))
                .unwrap()
                .node_settings()
                .unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
        let err = load("[nodes]\nheartbeat_secs = 5\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown key `heartbeat_secs`"),
            "{err}"
        );
    }

    #[test]
    fn limits_come_from_the_limits_table_and_contradictions_are_refused() {
        assert_eq!(load("").unwrap().limits().unwrap(), Limits::default());
        let l = load(
            "[limits]\nidentity_message_bytes = 4096\nmessage_bytes = 8192\n\
             handshake_timeout_secs = 3\nidle_timeout_secs = 0\nkeepalive_interval_secs = 5\n\
             keepalive_timeout_secs = 2\nmax_connections = 50\nmax_connections_per_peer = 5\n",
        )
        .unwrap()
        .limits()
        .unwrap();
        assert_eq!((l.identity_message_bytes, l.message_bytes), (4096, 8192));
        assert_eq!(l.handshake_timeout, Duration::from_secs(3));
        assert_eq!(l.idle_timeout, None, "0 keeps idle connections");
        assert_eq!(
            (l.keepalive_interval, l.keepalive_timeout),
            (Duration::from_secs(5), Duration::from_secs(2))
        );
        assert_eq!((l.max_connections, l.max_connections_per_peer), (50, 5));
        for (text, says) in [
            ("identity_message_bytes = 10", "1024 or more"),
            ("message_bytes = 1024", "must lie between"),
            ("message_bytes = 999999999999", "must lie between"),
            (
                "handshake_timeout_secs = 0",
                "handshake_timeout_secs must be above zero",
            ),
            ("max_connections = 0", "must be above zero"),
            ("max_connections = 10", "lower the per-peer cap"),
        ] {
            let err = load(&format!("[limits]\n{text}\n"))
                .unwrap()
                .limits()
                .unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_documented_example_file_loads_and_shows_the_default_limits() {
        let doc = include_str!("../../../docs/manager.md");
        let start = doc
            .find("```toml\ndata_dir")
            .expect("the example in docs/manager.md")
            + 8;
        let end = start + doc[start..].find("```").unwrap();
        let c = load(&doc[start..end]).unwrap();
        assert_eq!(c.limits().unwrap(), Limits::default());
    }

    #[test]
    fn retired_keys_verify_as_long_as_any_token_they_signed_can_be_presented() {
        let c = load("").unwrap();
        assert_eq!(
            c.key_retention_secs(),
            365 * 86_400,
            "the longest API token"
        );
        let c = load(
            "[tokens]\napi_max_ttl_secs = 86400\napi_default_ttl_secs = 3600\n\
             session_max_secs = 86400\n[nodes]\ntoken_ttl_secs = 86400\n\
             renew_grace_secs = 604800\nbootstrap_max_ttl_secs = 86400\n",
        )
        .unwrap();
        // A node token may renew up to a week after its one-day life ended.
        assert_eq!(c.key_retention_secs(), 86_400 + 604_800);
        let c = load("[tokens]\napi_max_ttl_secs = 86400\napi_default_ttl_secs = 3600\n").unwrap();
        assert_eq!(
            c.key_retention_secs(),
            30 * 86_400,
            "a bootstrap token of the longest lifetime, and the session's maximum"
        );
        let err = load("[nodes]\nbootstrap_ttl_secs = 100\nbootstrap_max_ttl_secs = 50\n")
            .and_then(|c| c.node_settings())
            .unwrap_err();
        assert!(err.to_string().contains("bootstrap_max_ttl_secs"), "{err}");
    }

    #[test]
    fn variables_are_substituted_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manager.toml");
        std::fs::write(
            &path,
            "data_dir = \"${DATA}\"\n[listen]\nuser_api = \"127.0.0.1:${PORT:6000}\"\n\
             [signing]\nalgorithm = \"HS256\"\nhs256_secret = \"${SECRET}\"\n",
        )
        .unwrap();
        let env = manta_config::Env::from_pairs([
            ("DATA", "/srv/manta"),
            ("SECRET", "0123456789abcdef0123456789abcdef"),
        ]);
        let c = Config::load_with(&path, &env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/manta"));
        assert_eq!(c.listen.user_api.port(), 6000);
        assert!(matches!(c.signing_mode().unwrap(), SigningMode::Hs256(_)));
        let err =
            Config::load_with(&path, &manta_config::Env::from_pairs([("DATA", "/x")])).unwrap_err();
        assert!(err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn sign_in_and_audit_tables_reach_the_limiter_and_the_retention() {
        let c = load("").unwrap();
        assert_eq!(c.sign_in_limits(), SignInLimits::default());
        assert_eq!(c.audit_retention(), Retention::default());
        assert!(c.audit_retention().max_age.is_some() && c.audit_retention().max_rows.is_some());
        let c = load(
            "[sign_in]\nfailures_per_user = 3\nuser_slow_down_after = 9\n\
             concurrent_password_checks = 2\n[audit]\nmax_age_days = 7\nmax_rows = 0\n",
        )
        .unwrap();
        let l = c.sign_in_limits();
        assert_eq!(
            (
                l.failures_per_user,
                l.user_slow_down_after,
                l.concurrent_checks
            ),
            (3, 9, 2)
        );
        let r = c.audit_retention();
        assert_eq!(r.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(r.max_rows, None, "0 turns the row limit off");
    }

    #[test]
    fn the_mqtt_table_gives_broker_settings_and_its_password_comes_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manager.toml");
        std::fs::write(
            &path,
            "[mqtt]\nbroker = \"127.0.0.1:1883\"\nadvertise = \"mqtt.example.com:1883\"\n\
             username = \"manager\"\npassword = \"${MQTT_PW}\"\n",
        )
        .unwrap();
        let env = manta_config::Env::from_pairs([("MQTT_PW", "s3cret")]);
        let s = Config::load_with(&path, &env)
            .unwrap()
            .mqtt
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.broker, ("127.0.0.1".to_owned(), 1883));
        assert_eq!(s.advertise, ("mqtt.example.com".to_owned(), 1883));
        assert_eq!(
            s.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("s3cret".into())
        );
        assert!(s.tls.is_none(), "1883 is plaintext unless tls = true");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(load("").unwrap().mqtt.is_none());
        for (text, says) in [
            ("broker = \"nohost\"", "is not HOST:PORT"),
            ("broker = \"h:0\"", "is not HOST:PORT"),
            ("broker = \"h:1\"\nusername = \"u\"", "go together"),
            ("broker = \"h:1\"\nrefusals_per_second = 0", "above zero"),
        ] {
            let err = load(&format!("[mqtt]\n{text}\n"))
                .and_then(|c| c.mqtt.unwrap().settings())
                .unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[listen]\nuser_apii = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("user_apii"), "{err}");
    }

    #[test]
    fn hs256_needs_a_secret_and_bad_algorithms_are_named() {
        let err = load("[signing]\nalgorithm = \"HS256\"\n")
            .unwrap()
            .signing_mode()
            .unwrap_err();
        assert!(err.to_string().contains("hs256_secret"), "{err}");
        let err = load("[signing]\nalgorithm = \"RS256\"\n")
            .unwrap()
            .signing_mode()
            .unwrap_err();
        assert!(err.to_string().contains("\"EdDSA\" or \"HS256\""), "{err}");
    }

    #[test]
    fn inconsistent_lifetimes_are_refused() {
        let err = load("[tokens]\napi_default_ttl_secs = 10\napi_max_ttl_secs = 5\n")
            .unwrap()
            .lifetimes()
            .unwrap_err();
        assert!(err.to_string().contains("lower the default"), "{err}");
        let err = load("[tokens]\naccess_ttl_secs = 0\n")
            .unwrap()
            .lifetimes()
            .unwrap_err();
        assert!(err.to_string().contains("above zero"), "{err}");
    }
}
