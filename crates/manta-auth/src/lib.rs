//! JWT verification and issuing, permission scopes, token lifecycle and refresh.
//!
//! This crate is the one place where Manta tokens are understood: claims, token kinds,
//! signature and claim validation, scopes, and the refresh engine. It must not open sockets,
//! read configuration files or parse PEM; transports plug in through traits.
