//! The in-process manager (`manta_manager::testing`) and clients for it.

use std::net::SocketAddr;

use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_proto::manta::v1::token_service_client::TokenServiceClient;
use secrecy::ExposeSecret;
use tonic::transport::Channel;

pub(crate) use manta_manager::testing::{TestManager as Manager, TestOptions as Options};

/// Clients and plain-string tokens for the tests of this crate.
pub(crate) trait ManagerExt {
    async fn channel(&self) -> Channel;
    async fn users(&self) -> UserManagementClient<Channel>;
    async fn tokens(&self) -> TokenServiceClient<Channel>;
    /// An API token for a user with the given scopes.
    fn token(&self, user: &str, scopes: &[&str]) -> String;
}

impl ManagerExt for Manager {
    async fn channel(&self) -> Channel {
        channel(self.user_addr).await
    }

    async fn users(&self) -> UserManagementClient<Channel> {
        UserManagementClient::new(self.channel().await)
    }

    async fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel().await)
    }

    fn token(&self, user: &str, scopes: &[&str]) -> String {
        self.api_token(user, scopes).expose_secret().to_owned()
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
