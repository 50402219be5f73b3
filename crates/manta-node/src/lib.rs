//! The `manta_node` agent: node identity, registration with the manager, token renewal.
//!
//! It sits on top of the auth, config and TLS crates. It must never write an expanded secret
//! into a node configuration file.
