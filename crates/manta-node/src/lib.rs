//! The `manta_node` agent: node identity, registration with the manager, token renewal,
//! heartbeat and process control, as a library so every command runs in-process in tests.
//!
//! - [`cli::run`]: the whole command line (`config init|validate|show|list`, `start`,
//!   `stop`, `status`) with injectable environment and streams; returns the exit code.
//! - [`Agent`]: [`Agent::prepare`] (configuration, identity, alias lock) then
//!   [`Prepared::start`] (register and spawn the loop); the [`AgentHandle`] reloads
//!   (SIGHUP) and stops (SIGTERM, with deregistration).
//! - [`NodeIdentity`] and [`IdentityState`]: the seed's alias / node id rules and the
//!   per-node 0600 state file holding the manager's node token, never the configuration.
//!
//! It never writes an expanded secret into a node configuration file. See [`docs/node.md`](https://github.com/mantatech/manta-rs/blob/main/docs/node.md).
//!
//! # Features
//!
//! - `cli` (default): the `manta_node` binary and the [`cli`] module (clap, completions).
//!   Without it the crate is the [`Agent`] library.

mod agent;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod error;
mod fsutil;
mod identity;
pub mod logging;
mod mqtt;
mod runfile;

pub use agent::{
    Agent, AgentHandle, AgentOptions, AgentState, AgentStatus, DEFAULT_HEARTBEAT, Preflight,
    Prepared, RunningAgent, preflight,
};
pub use client::{AGENT_VERSION, ManagerClient, NodeRefresher, Registered, client_tls, overview};
pub use error::{EXIT_CONFIG, EXIT_FAILURE, EXIT_NOPERM, EXIT_UNAVAILABLE, NodeError};
pub use identity::{
    IdentityState, MAX_ALIAS_LEN, NodeIdentity, alias_from_hostname, hostname, is_valid_alias,
    random_node_id, state_dir,
};
pub use mqtt::Broker;
pub use runfile::{
    RunInfo, RunLock, RunningNode, Stopped, list as list_running, process_start_ticks, run_dir,
    stop,
};

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
