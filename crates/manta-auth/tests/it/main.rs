//! Integration tests for manta-auth: the public API end to end.

mod cache;
mod extreme;
mod inspect;
mod refresh;
mod tokens;
mod wycheproof;
