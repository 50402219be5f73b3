//! A reference Manta manager that serves the published gRPC protocol.
//!
//! It sits on top of the auth, config and TLS crates and owns storage, authorization and
//! audit. Its binary stays thin: everything testable lives in this library.
