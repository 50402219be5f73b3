//! The blocking facade: the same User API for synchronous code. Each `UserApi` owns a
//! small tokio runtime (one worker thread) and waits for its calls on a plain channel, so
//! it works from `main` and also when called from inside another tokio runtime (where
//! `block_on` would panic; the published SDK's global event loop fails there).

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;

use crate::api::{self, UserApiBuilder};
use crate::error::{Error, Result};
use crate::types::{
    ApiTokenInfo, Cluster, CreatedApiToken, ModuleSpec, ResultRecord, Swarm, SwarmSpec, User,
};

/// The blocking User API. Calls block the calling thread until the answer arrives.
pub struct UserApi {
    api: api::UserApi,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for UserApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::UserApi")
            .field("api", &self.api)
            .finish()
    }
}

impl Drop for UserApi {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime; shutting
        // it down in the background is allowed everywhere.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("manta-client")
        .enable_all()
        .build()
        .map_err(|e| Error::Setting {
            message: format!("cannot start the client's runtime thread: {e}"),
        })
}

fn wait<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(Error::Setting {
            message: "the client's runtime stopped during the call; create a new UserApi".into(),
        })
    })
}

macro_rules! forward {
    ($(#[$doc:meta])* $name:ident () -> $ret:ty) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// As the async method of the same name.
        pub fn $name(&self) -> Result<$ret> {
            let api = self.api.clone();
            wait(self.rt(), async move { api.$name().await })
        }
    };
}

impl UserApi {
    /// Builds from an async builder inside this facade's own runtime.
    ///
    /// # Errors
    /// As [`UserApiBuilder::build`].
    pub fn from_builder(builder: UserApiBuilder) -> Result<Self> {
        let rt = runtime()?;
        let api = {
            let _inside = rt.enter();
            builder.build()?
        };
        Ok(UserApi {
            api,
            runtime: Some(rt),
        })
    }

    /// The seed's `UserAPI(token, host, port)`.
    ///
    /// # Errors
    /// As [`UserApiBuilder::build`].
    pub fn new(token: SecretString, host: impl Into<String>, port: u16) -> Result<Self> {
        Self::from_builder(UserApiBuilder::new(host, port).token(token))
    }

    /// Signs in with a user name and password.
    ///
    /// # Errors
    /// As [`UserApiBuilder::sign_in`].
    pub fn sign_in(
        builder: UserApiBuilder,
        username: &str,
        password: &SecretString,
    ) -> Result<Self> {
        let rt = runtime()?;
        let username = username.to_owned();
        let password = password.clone();
        let api = wait(
            &rt,
            async move { builder.sign_in(&username, &password).await },
        )?;
        Ok(UserApi {
            api,
            runtime: Some(rt),
        })
    }

    /// The profile's API with the token from the chain (see [`api::UserApi::from_env`]).
    ///
    /// # Errors
    /// As [`api::UserApi::from_env`].
    pub fn from_env() -> Result<Self> {
        let rt = runtime()?;
        let api = {
            let _inside = rt.enter();
            api::UserApi::from_env()?
        };
        Ok(UserApi {
            api,
            runtime: Some(rt),
        })
    }

    /// The named profile's API (see [`api::UserApi::from_profile`]).
    ///
    /// # Errors
    /// As [`api::UserApi::from_profile`].
    pub fn from_profile(name: &str) -> Result<Self> {
        let rt = runtime()?;
        let api = {
            let _inside = rt.enter();
            api::UserApi::from_profile(name)?
        };
        Ok(UserApi {
            api,
            runtime: Some(rt),
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        // Invariant: `runtime` is Some from construction until `drop`.
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// The async API this facade drives (shares the connection and token).
    #[must_use]
    pub fn as_async(&self) -> &api::UserApi {
        &self.api
    }

    /// The current access token.
    #[must_use]
    pub fn token(&self) -> SecretString {
        self.api.token()
    }

    /// Replaces the access token now.
    pub fn rotate_token(&self, token: SecretString) {
        self.api.rotate_token(token);
    }

    /// Whether all five services answer.
    #[must_use]
    pub fn is_available(&self) -> bool {
        let api = self.api.clone();
        wait(self.rt(), async move { Ok(api.is_available().await) }).unwrap_or(false)
    }

    forward!(/// The signed-in user.
        get_user() -> User);
    forward!(/// Ends the session.
        logout() -> String);

    /// Exchanges a refresh token for a new access token (the seed's `refresh_token`).
    ///
    /// # Errors
    /// As the async method.
    pub fn refresh_token(&self, refresh: &SecretString) -> Result<SecretString> {
        let (api, refresh) = (self.api.clone(), refresh.clone());
        wait(self.rt(), async move { api.refresh_token(&refresh).await })
    }
    forward!(/// Renews the current token now.
        refresh_now() -> SecretString);

    /// Lists the caller's API tokens.
    ///
    /// # Errors
    /// As the async method.
    pub fn list_api_tokens(&self, include_inactive: bool) -> Result<Vec<ApiTokenInfo>> {
        let api = self.api.clone();
        wait(self.rt(), async move {
            api.list_api_tokens(include_inactive).await
        })
    }
    forward!(/// Ids of the visible clusters.
        list_clusters() -> Vec<String>);
    forward!(/// Ids of the caller's swarms.
        list_swarms() -> Vec<String>);

    /// Creates an API token.
    ///
    /// # Errors
    /// As the async method.
    pub fn create_api_token(
        &self,
        name: &str,
        scopes: &[String],
        ttl: Option<Duration>,
    ) -> Result<CreatedApiToken> {
        let (api, name, scopes) = (self.api.clone(), name.to_owned(), scopes.to_vec());
        wait(self.rt(), async move {
            api.create_api_token(&name, &scopes, ttl).await
        })
    }

    /// Revokes an API token.
    ///
    /// # Errors
    /// As the async method.
    pub fn revoke_api_token(&self, id: &str) -> Result<()> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.revoke_api_token(&id).await })
    }

    /// One cluster.
    ///
    /// # Errors
    /// As the async method.
    pub fn get_cluster(&self, id: &str) -> Result<Cluster> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.get_cluster(&id).await })
    }

    /// Creates a cluster.
    ///
    /// # Errors
    /// As the async method.
    pub fn create_cluster(&self, name: Option<&str>) -> Result<String> {
        let (api, name) = (self.api.clone(), name.map(str::to_owned));
        wait(self.rt(), async move {
            api.create_cluster(name.as_deref()).await
        })
    }

    /// Starts a cluster.
    ///
    /// # Errors
    /// As the async method.
    pub fn start_cluster(&self, id: &str) -> Result<Cluster> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.start_cluster(&id).await })
    }

    /// Stops a cluster.
    ///
    /// # Errors
    /// As the async method.
    pub fn stop_cluster(&self, id: &str) -> Result<String> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.stop_cluster(&id).await })
    }

    /// Uploads a module.
    ///
    /// # Errors
    /// As the async method.
    pub fn upload_module(&self, module: &ModuleSpec) -> Result<String> {
        let (api, module) = (self.api.clone(), module.clone());
        wait(self.rt(), async move { api.upload_module(&module).await })
    }

    /// Deploys a swarm.
    ///
    /// # Errors
    /// As the async method.
    pub fn deploy_swarm(&self, cluster_id: &str, swarm: &SwarmSpec) -> Result<Swarm> {
        let (api, cluster_id, swarm) = (self.api.clone(), cluster_id.to_owned(), swarm.clone());
        wait(self.rt(), async move {
            api.deploy_swarm(&cluster_id, &swarm).await
        })
    }

    /// Stops a swarm.
    ///
    /// # Errors
    /// As the async method.
    pub fn stop_swarm(&self, id: &str) -> Result<String> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.stop_swarm(&id).await })
    }

    /// One swarm.
    ///
    /// # Errors
    /// As the async method.
    pub fn get_swarm(&self, id: &str) -> Result<Swarm> {
        let (api, id) = (self.api.clone(), id.to_owned());
        wait(self.rt(), async move { api.get_swarm(&id).await })
    }

    /// A swarm's results under a tag.
    ///
    /// # Errors
    /// As the async method.
    pub fn results(&self, swarm_id: &str, tag: &str) -> Result<Vec<ResultRecord>> {
        let (api, swarm_id, tag) = (self.api.clone(), swarm_id.to_owned(), tag.to_owned());
        wait(self.rt(), async move { api.results(&swarm_id, &tag).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn works_from_plain_main() {
        let api = UserApi::from_builder(
            UserApiBuilder::new("127.0.0.1", closed_port())
                .token(SecretString::from("eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln"))
                .retry_policy(api::RetryPolicy::none()),
        )
        .unwrap();
        assert!(matches!(api.get_user(), Err(Error::Unavailable { .. })));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn works_inside_another_runtime_and_drops_there() {
        let api = UserApi::from_builder(
            UserApiBuilder::new("127.0.0.1", closed_port())
                .token(SecretString::from("eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln"))
                .retry_policy(api::RetryPolicy::none()),
        )
        .unwrap();
        assert!(matches!(api.get_user(), Err(Error::Unavailable { .. })));
        assert!(!api.is_available());
        drop(api);
    }
}
