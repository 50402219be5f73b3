//! Certificate folders, rustls client and server configurations, and mTLS for tonic.
//!
//! This crate is the only one that parses PEM or builds rustls configurations. It must not
//! read configuration files or know about tokens.
