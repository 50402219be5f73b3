//! TOML configuration with `${VAR}` environment substitution for nodes and clients.
//!
//! This crate is the only one that reads configuration files and environment variables for
//! configuration. It must not open sockets, parse PEM or log secret values.
