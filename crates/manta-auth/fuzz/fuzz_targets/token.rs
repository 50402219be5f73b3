//! Fuzzes token parsing: inspection, verification and the signature layer must return a
//! typed error (never panic) for any input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use manta_auth::{Claims, KeySet, SigningKey, TokenKind, Verifier, VerifierConfig, inspect};

fn verifier() -> &'static (Verifier, SigningKey) {
    static V: OnceLock<(Verifier, SigningKey)> = OnceLock::new();
    V.get_or_init(|| {
        let key = SigningKey::generate_ed25519("k").expect("key generation");
        let mut keys = KeySet::new();
        keys.insert(key.verifying_key().clone());
        let v = Verifier::new(VerifierConfig::new("i", "a"), keys).expect("verifier");
        (v, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Claims::from_json(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let (v, key) = verifier();
        let _ = inspect(s);
        let _ = v.verify(s, TokenKind::UserAccess);
        let _ = key.verifying_key().verify_compact(s);
        let _ = manta_auth::VerifyingKey::from_jwk_json(s);
        let _ = KeySet::from_jwks_json(s);
    }
});
