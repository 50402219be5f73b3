//! Starting a real in-process manager (the manager's public library API, a SQLite store in
//! a temporary directory, 127.0.0.1 port 0) for the end-to-end tests. Modelled on
//! `crates/manta-manager/tests/it/harness.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use manta_manager::audit;
use manta_manager::identity::{Core, Lifetimes};
use manta_manager::keys::{Authority, SigningMode};
use manta_manager::ratelimit::SignInLimits;
use manta_manager::server::{ServeOptions, serve};
use manta_manager::store::{SqliteStore, Store};
use secrecy::{ExposeSecret as _, SecretString};

/// A running manager with its engine, for setup and inspection.
pub(crate) struct Manager {
    pub(crate) core: Arc<Core>,
    pub(crate) user_addr: SocketAddr,
    #[allow(dead_code, reason = "used by the node tests")]
    pub(crate) node_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// How to start a manager.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) lifetimes: Lifetimes,
    pub(crate) limits: SignInLimits,
    pub(crate) serve: ServeOptions,
    pub(crate) tls: Option<manta_tls::ServerTls>,
}

impl Manager {
    /// A plaintext manager with default lifetimes.
    pub(crate) async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A manager with `options`.
    pub(crate) async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("manager.db")).unwrap());
        let authority = Arc::new(
            Authority::open(Arc::clone(&store), SigningMode::EdDsa, "manta-test", 86_400).unwrap(),
        );
        let (sink, _writer) = audit::start(Arc::clone(&store));
        let core = Arc::new(Core::new(
            store,
            authority,
            options.lifetimes,
            options.limits,
            sink,
        ));
        let user = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (user_addr, node_addr) = (user.local_addr().unwrap(), node.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
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
            task.await.unwrap().unwrap();
        });
        Manager {
            core,
            user_addr,
            node_addr,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The user API port.
    pub(crate) fn port(&self) -> u16 {
        self.user_addr.port()
    }

    /// Adds a user with a password and scopes.
    pub(crate) fn add_user(&self, name: &str, password: &str, scopes: &[&str]) -> String {
        self.core
            .add_user(
                name,
                "",
                Some(&SecretString::from(password)),
                scopes.iter().map(|s| (*s).to_owned()).collect(),
            )
            .unwrap()
            .id
    }

    /// An API token for a user with the given scopes.
    pub(crate) fn token(&self, user: &str, scopes: &[&str]) -> SecretString {
        let u = self.core.find_user(user).unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let t = self
            .core
            .create_api_token(&u, "test", scopes, None, &u.scopes)
            .unwrap()
            .token;
        SecretString::from(t.expose_secret().to_owned())
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("graceful shutdown within 10 s")
                .unwrap();
        }
    }
}

/// A manager running on its own runtime, for tests of synchronous code (the blocking
/// facade, the `manta` command) that must not run inside a runtime themselves.
pub(crate) struct Background {
    pub(crate) manager: Option<Manager>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    /// Starts a manager with `options` on a two-thread runtime.
    pub(crate) fn start_with(options: Options) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let manager = runtime.block_on(Manager::start_with(options));
        Background {
            manager: Some(manager),
            runtime: Some(runtime),
        }
    }

    /// The manager.
    pub(crate) fn m(&self) -> &Manager {
        self.manager.as_ref().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let (Some(m), Some(rt)) = (self.manager.take(), self.runtime.take()) {
            rt.block_on(m.stop());
        }
    }
}
