//! A real manager in-process, for integration tests of anything that talks to one.
//!
//! [`TestManager::start`] opens a SQLite store in a fresh temporary directory, makes an EdDSA
//! signing key and serves both APIs on 127.0.0.1 with ports chosen by the system, exactly as
//! `manta-manager serve` does. The directory is removed when the value is dropped (unless
//! [`TestOptions::data_dir`] named one, for restarts). This crate's
//! tests, the workspace's end-to-end tests and its benchmarks use it; so can yours:
//!
//! ```no_run
//! # async fn example() {
//! use manta_manager::testing::TestManager;
//! use secrecy::ExposeSecret;
//!
//! let m = TestManager::start().await;
//! m.add_user("alice", "correct horse", &["user:read"]);
//! let token = m.api_token("alice", &["user:read"]);
//! // Point a client at `m.user_addr` with `token.expose_secret()`.
//! m.stop().await;
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::audit;
use crate::identity::{Core, Lifetimes};
use crate::keys::{Authority, SigningMode};
use crate::ratelimit::SignInLimits;
use crate::registry::NodeSettings;
use crate::server::{ServeOptions, serve};
use crate::store::{SqliteStore, Store};

/// How to start a [`TestManager`].
#[derive(Debug, Default)]
pub struct TestOptions {
    /// Token lifetimes.
    pub lifetimes: Lifetimes,
    /// Sign-in rate limits.
    pub limits: SignInLimits,
    /// Node heartbeat interval and node token lifetimes.
    pub nodes: NodeSettings,
    /// Server options; `authorization: false` measures the cost of authorization.
    pub serve: ServeOptions,
    /// TLS or mTLS for both listeners; plaintext h2c without it.
    pub tls: Option<manta_tls::ServerTls>,
    /// Keep the store here instead of a fresh temporary directory (kept after drop), to
    /// restart a manager on the data of an earlier one.
    pub data_dir: Option<std::path::PathBuf>,
    /// Bind these addresses instead of 127.0.0.1 with system-chosen ports, e.g. the ones an
    /// earlier manager had, so clients reconnect to the restarted one.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// The manager's one clock (tokens, sessions, nodes, audit, sign-in windows); the system
    /// clock without it. A [`manta_auth::ManualClock`] here lets a test jump past a
    /// token's expiry or a heartbeat window instead of sleeping.
    pub clock: Option<manta_auth::SharedClock>,
    /// Serve the published node transport over this MQTT broker too.
    pub mqtt: Option<crate::mqtt::MqttSettings>,
}

/// A running manager with its engine, for setup and inspection.
#[derive(Debug)]
pub struct TestManager {
    /// The engine: users, tokens, the store, the audit sink.
    pub core: Arc<Core>,
    /// The user API (the published SDK's port).
    pub user_addr: SocketAddr,
    /// The node API.
    pub node_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    data_dir: std::path::PathBuf,
    /// The temporary data directory, removed on drop; `None` with [`TestOptions::data_dir`].
    _temp: Option<tempfile::TempDir>,
}

impl TestManager {
    /// A plaintext manager with default lifetimes and limits.
    ///
    /// # Panics
    ///
    /// When the temporary directory, the store, the key or a listener cannot be made: a test
    /// cannot go on without them.
    pub async fn start() -> Self {
        Self::start_with(TestOptions::default()).await
    }

    /// A manager with `options`.
    ///
    /// # Panics
    ///
    /// As [`TestManager::start`].
    pub async fn start_with(options: TestOptions) -> Self {
        let (data_dir, temp) = match options.data_dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().expect("temporary directory for the test manager");
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&data_dir.join("manager.db")).expect("test manager store"));
        let clock = options.clock.unwrap_or_else(manta_auth::system_clock);
        let authority = Arc::new(
            Authority::open_with_clock(
                Arc::clone(&store),
                SigningMode::EdDsa,
                "manta-test",
                86_400,
                Arc::clone(&clock),
            )
            .expect("test manager signing key"),
        );
        // The writer stops by itself once the last sink (inside `core`) is dropped.
        let (sink, _writer) =
            audit::start_with_clock(Arc::clone(&store), audit::Retention::default(), clock);
        let mut core = Core::new(store, authority, options.lifetimes, options.limits, sink)
            .with_node_settings(options.nodes);
        if let Some(mqtt) = options.mqtt {
            core = core.with_mqtt(mqtt);
        }
        let core = Arc::new(core);
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (user_at, node_at) = options.addrs.unwrap_or((any, any));
        let bind = tokio::net::TcpListener::bind;
        let (user, node) = (
            bind(user_at).await.expect("bind the user API"),
            bind(node_at).await.expect("bind the node API"),
        );
        let user_addr = user.local_addr().expect("user API address");
        let node_addr = node.local_addr().expect("node API address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            Arc::clone(&core),
            user,
            node,
            options.serve,
            options.tls,
            async move {
                let _ = stopped.await;
            },
        ));
        let task = tokio::spawn(async move {
            served
                .await
                .expect("the test manager's server task")
                .expect("the test manager serves until stopped");
        });
        TestManager {
            core,
            user_addr,
            node_addr,
            stop: Some(stop),
            task: Some(task),
            data_dir,
            _temp: temp,
        }
    }

    /// The data directory (removed on drop unless it was given in [`TestOptions`]).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Adds a user with a password and scopes; returns the user id.
    ///
    /// # Panics
    ///
    /// When the user cannot be added (a duplicate name, an invalid scope).
    pub fn add_user(&self, name: &str, password: &str, scopes: &[&str]) -> String {
        self.core
            .add_user(
                name,
                "",
                Some(&SecretString::from(password)),
                scopes.iter().map(|s| (*s).to_owned()).collect(),
            )
            .expect("add a user to the test manager")
            .id
    }

    /// A new API token for a user, carrying `scopes` (at most what the user holds).
    ///
    /// # Panics
    ///
    /// When there is no such user or it does not hold the scopes.
    pub fn api_token(&self, user: &str, scopes: &[&str]) -> SecretString {
        let u = self
            .core
            .find_user(user)
            .expect("a user of the test manager");
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let issued = self
            .core
            .create_api_token(&u, "test", scopes, None, &u.scopes)
            .expect("an API token from the test manager");
        SecretString::from(issued.token.expose_secret().to_owned())
    }

    /// A session access token for a user with a password, as SignIn would give: what a
    /// call that needs a recent sign-in (CreateApiToken) must present.
    ///
    /// # Panics
    ///
    /// When the user name or password is wrong.
    pub fn session_token(&self, user: &str, password: &str) -> SecretString {
        let session = self
            .core
            .sign_in(user, &SecretString::from(password), "test")
            .expect("sign in to the test manager");
        SecretString::from(session.access_token.expose_secret().to_owned())
    }

    /// Whether the audit trail holds an allowed call of `method` (a method name such as
    /// `SetSystemSummary`, matched as the audit query matches it) by `subject`, after
    /// writing out what the audit writer still holds.
    ///
    /// # Panics
    ///
    /// When the audit query fails.
    pub fn audited_allowed(&self, method: &str, subject: &str) -> bool {
        self.core.audit().flush();
        self.core
            .store()
            .query_audit(&crate::store::AuditQuery {
                method: Some(method.to_owned()),
                subject: Some(subject.to_owned()),
                limit: 10,
                ..Default::default()
            })
            .expect("query the test manager's audit trail")
            .iter()
            .any(|e| e.allowed)
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// # Panics
    ///
    /// When the drain takes longer than 10 s or the server failed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("graceful shutdown within 10 s")
                .expect("the test manager stopped cleanly");
        }
    }
}
