//! End-to-end tests: the Rust client (`manta-client` and the `manta` command) and the
//! node agent against a real in-process `manta-manager` on 127.0.0.1 port 0. They live in
//! xtask because the layering forbids client and node from depending on the manager.

mod client;
mod credentials;
mod deploy;
mod errors;
mod harness;
mod mqtt;
mod node;
