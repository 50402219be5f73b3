//! The Manta User API for Rust (`UserApi`), and the library behind the `manta` command.
//!
//! It sits on top of the auth, config and TLS crates and talks to a manager over gRPC. It must
//! not leak `tonic::Status` or any token through its public API.
