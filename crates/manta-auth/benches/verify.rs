//! Benchmarks: our verification against bare `jsonwebtoken::decode`, and cached verification.

fn main() {}
