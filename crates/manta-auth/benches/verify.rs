//! Benchmarks our verification against bare `jsonwebtoken::decode` of the same token (the
//! extra checks should cost under 5 %), and a repeat verification through the cache.
//!
//! Run with `cargo bench -p manta-auth --bench verify`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use manta_auth::{
    CachingVerifier, Issuer, ScopeSet, SigningKey, TokenKind, TokenRequest, Verifier,
    VerifierConfig,
};
use secrecy::{ExposeSecret as _, SecretBox};
use serde::Deserialize;

/// The same claims, read the way a bare `jsonwebtoken` user would.
#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "fields are read only to make decoding do the same work"
)]
struct BareClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    kind: String,
    permissions: Vec<String>,
}

fn case(c: &mut Criterion, name: &str, key: SigningKey, bare_key: impl Fn(&Issuer) -> DecodingKey) {
    let alg = key.algorithm();
    let issuer = Issuer::new("manta-manager", "manta", key).expect("issuer");
    let req = TokenRequest::new(TokenKind::UserAccess, "alice")
        .scopes(ScopeSet::parse(&["cluster:read", "swarm:deploy"]).expect("scopes"));
    let token = issuer.issue(&req).expect("issue").token;
    let token = token.expose_secret();
    let verifier = Verifier::new(
        VerifierConfig::new("manta-manager", "manta"),
        issuer.key_set(),
    )
    .expect("verifier");

    let jalg = match alg.as_str() {
        "HS256" => jsonwebtoken::Algorithm::HS256,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        _ => jsonwebtoken::Algorithm::EdDSA,
    };
    let mut validation = Validation::new(jalg);
    validation.set_issuer(&["manta-manager"]);
    validation.set_audience(&["manta"]);
    validation.validate_nbf = true;
    let dk = bare_key(&issuer);
    assert!(jsonwebtoken::decode::<BareClaims>(token, &dk, &validation).is_ok());
    assert!(verifier.verify(token, TokenKind::UserAccess).is_ok());

    let mut g = c.benchmark_group(format!("verify/{name}"));
    g.bench_function("jsonwebtoken::decode", |b| {
        b.iter(|| jsonwebtoken::decode::<BareClaims>(black_box(token), &dk, &validation).is_ok());
    });
    g.bench_function("manta_auth::Verifier", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(token), TokenKind::UserAccess)
                .is_ok()
        });
    });
    g.finish();

    // Criterion measures the two functions minutes apart; on a shared machine the load
    // changes in between. Alternating small batches of each and comparing medians gives a
    // ratio that drifting load affects equally.
    let batch = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..50 {
            black_box(f());
        }
        start.elapsed()
    };
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..150 {
        bare.push(batch(&|| {
            jsonwebtoken::decode::<BareClaims>(black_box(token), &dk, &validation).is_ok()
        }));
        ours.push(batch(&|| {
            verifier
                .verify(black_box(token), TokenKind::UserAccess)
                .is_ok()
        }));
    }
    bare.sort();
    ours.sort();
    let (b, o) = (bare[bare.len() / 2], ours[ours.len() / 2]);
    println!(
        "verify/{name}/interleaved: jsonwebtoken {:.2} us, manta_auth {:.2} us, throughput ratio {:.3}",
        b.as_secs_f64() * 1e6 / 50.0,
        o.as_secs_f64() * 1e6 / 50.0,
        b.as_secs_f64() / o.as_secs_f64()
    );
    if name == "EdDSA" {
        let cached = CachingVerifier::new(verifier, 10_000);
        assert!(cached.verify(token, TokenKind::UserAccess).is_ok());
        c.bench_function("verify/cached_hit", |b| {
            b.iter(|| {
                cached
                    .verify(black_box(token), TokenKind::UserAccess)
                    .is_ok()
            });
        });
    }
}

fn jwk_key(issuer: &Issuer) -> DecodingKey {
    let jwks: serde_json::Value =
        serde_json::from_str(&issuer.key_set().to_jwks_json()).expect("jwks");
    let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    DecodingKey::from_jwk(&jwk).expect("decoding key")
}

fn benches(c: &mut Criterion) {
    let secret = vec![0x5a_u8; 32];
    let hs =
        SigningKey::hs256("hs", &SecretBox::new(secret.clone().into_boxed_slice())).expect("hs");
    case(c, "HS256", hs, |_| DecodingKey::from_secret(&secret));
    case(
        c,
        "EdDSA",
        SigningKey::generate_ed25519("ed").expect("ed"),
        jwk_key,
    );
    case(
        c,
        "ES256",
        SigningKey::generate_es256("ec").expect("ec"),
        jwk_key,
    );
}

criterion_group! {
    name = verify;
    config = Criterion::default()
        .sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(verify);
