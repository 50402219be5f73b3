//! The verified-token cache: hits are answered without crypto, but expiry, revocation, kind
//! and key removal still apply.

use std::time::Duration;

use manta_auth::{CachingVerifier, Error, KeySet, TokenKind, TokenRequest};
use secrecy::ExposeSecret as _;

use crate::tokens::ed_fixture;

#[test]
fn repeat_verification_is_served_and_still_checked() {
    let f = ed_fixture();
    let t = f
        .issuer
        .issue(&TokenRequest::new(TokenKind::UserAccess, "alice"))
        .unwrap()
        .token;
    let clock = f.clock.clone();
    let cache = CachingVerifier::new(f.verifier, 2);
    let a = cache
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap();
    let b = cache
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "second verification comes from the cache"
    );
    assert_eq!(cache.len(), 1);
    // The kind is still enforced on a hit.
    assert!(matches!(
        cache.verify(t.expose_secret(), TokenKind::Refresh),
        Err(Error::WrongKind { .. })
    ));
    // Expiry is enforced on a hit.
    clock.advance(Duration::from_secs(15 * 60 + 31));
    assert!(matches!(
        cache.verify(t.expose_secret(), TokenKind::UserAccess),
        Err(Error::Expired { .. })
    ));

    let f = ed_fixture();
    let t = f
        .issuer
        .issue(&TokenRequest::new(TokenKind::UserAccess, "bob"))
        .unwrap()
        .token;
    let deny2 = f.deny.clone();
    let cache2 = CachingVerifier::new(f.verifier, 8);
    let v = cache2
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap();
    deny2.revoke_jti(v.claims.jti.clone().unwrap(), v.claims.exp.unwrap());
    assert!(matches!(
        cache2.verify(t.expose_secret(), TokenKind::UserAccess),
        Err(Error::Revoked)
    ));
}

#[test]
fn removing_a_key_empties_the_cache_and_size_is_bounded() {
    let f = ed_fixture();
    let tokens: Vec<_> = (0..5)
        .map(|i| {
            f.issuer
                .issue(&TokenRequest::new(TokenKind::UserAccess, format!("u{i}")))
                .unwrap()
                .token
        })
        .collect();
    let cache = CachingVerifier::new(f.verifier, 3);
    for t in &tokens {
        cache
            .verify(t.expose_secret(), TokenKind::UserAccess)
            .unwrap();
        assert!(cache.len() <= 3, "cache grew past its capacity");
    }
    cache.set_keys(KeySet::new());
    assert!(cache.is_empty());
    assert!(matches!(
        cache.verify(tokens[4].expose_secret(), TokenKind::UserAccess),
        Err(Error::UnknownKey)
    ));
}

#[test]
fn a_forged_token_reusing_a_cached_signature_is_not_a_hit() {
    use base64::Engine as _;
    let f = ed_fixture();
    let t = f
        .issuer
        .issue(&TokenRequest::new(TokenKind::UserAccess, "alice"))
        .unwrap()
        .token;
    let cache = CachingVerifier::new(f.verifier, 8);
    cache
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap();
    let p: Vec<&str> = t.expose_secret().split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(p[1]).unwrap()).unwrap();
    claims["permissions"] = serde_json::json!(["admin:*"]);
    let forged = format!("{}.{}.{}", p[0], b64.encode(claims.to_string()), p[2]);
    assert!(matches!(
        cache.verify(&forged, TokenKind::UserAccess),
        Err(Error::BadSignature)
    ));
}
