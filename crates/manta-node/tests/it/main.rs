//! Integration tests of the `manta_node` command line: configuration commands in-process
//! through `cli::run`, exit codes and start-up errors through the real binary.

mod commands;
mod config;
mod pipes;
mod preflight;
mod robust;
mod support;
