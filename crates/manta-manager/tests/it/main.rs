//! Integration tests of manta-manager: a real server on 127.0.0.1:0 over a real SQLite store
//! in a temporary directory, called through manta-proto's generated clients.

mod abuse;
mod cli_errors;
mod durability;
mod hardening;
mod harness;
mod interop;
mod limits;
mod mqtt;
mod nodes;
mod pipes;
mod pki;
mod platform;
mod process;
mod robust;
mod sdk_platform;
mod tls;
mod tokens;
mod unserved;
mod user_api;
mod wire_schema;
