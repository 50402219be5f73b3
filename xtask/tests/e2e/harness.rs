//! The real in-process manager of `manta_manager::testing` (a SQLite store in a temporary
//! directory, 127.0.0.1 port 0) for the end-to-end tests, and a way to run one beside
//! synchronous code.

use secrecy::SecretString;

pub(crate) use manta_manager::testing::{TestManager as Manager, TestOptions as Options};

/// The calls the end-to-end tests make on a manager.
pub(crate) trait ManagerExt {
    /// The user API port.
    fn port(&self) -> u16;
    /// An API token for a user with the given scopes.
    fn token(&self, user: &str, scopes: &[&str]) -> SecretString;
}

impl ManagerExt for Manager {
    fn port(&self) -> u16 {
        self.user_addr.port()
    }

    fn token(&self, user: &str, scopes: &[&str]) -> SecretString {
        self.api_token(user, scopes)
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
