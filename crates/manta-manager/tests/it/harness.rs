//! Starting an in-process manager and building clients for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use manta_manager::audit;
use manta_manager::identity::{Core, Lifetimes};
use manta_manager::keys::{Authority, SigningMode};
use manta_manager::ratelimit::SignInLimits;
use manta_manager::server::{ServeOptions, serve};
use manta_manager::store::{SqliteStore, Store};
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_proto::manta::v1::token_service_client::TokenServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tonic::transport::Channel;

/// A running manager with its engine, for setup and inspection.
pub(crate) struct Manager {
    pub(crate) core: Arc<Core>,
    pub(crate) user_addr: SocketAddr,
    pub(crate) node_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) lifetimes: Lifetimes,
    pub(crate) limits: SignInLimits,
    pub(crate) serve: ServeOptions,
    pub(crate) tls: Option<manta_tls::ServerTls>,
}

impl Manager {
    pub(crate) async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

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

    pub(crate) async fn channel(&self) -> Channel {
        channel(self.user_addr).await
    }

    pub(crate) async fn users(&self) -> UserManagementClient<Channel> {
        UserManagementClient::new(self.channel().await)
    }

    pub(crate) async fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel().await)
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
    pub(crate) fn token(&self, user: &str, scopes: &[&str]) -> String {
        let u = self.core.find_user(user).unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.core
            .create_api_token(&u, "test", scopes, None, &u.scopes)
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
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

pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A request carrying `authorization: <value>`.
pub(crate) fn authed<T>(message: T, value: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", value.parse().unwrap());
    r
}
