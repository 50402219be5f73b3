//! Integration tests for manta-tls: folder loading errors, a real-handshake matrix through
//! tonic (tonic-health as the service) and certificate rotation under load.

mod load;
mod matrix;
mod rotation;
mod support;
