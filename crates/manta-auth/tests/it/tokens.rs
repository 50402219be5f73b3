//! Issuing and verifying tokens end to end: every rule a verifier enforces, with the error a
//! caller sees.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use manta_auth::{
    DenyList, Error, Issuer, KeySet, KindName, ManualClock, ScopeSet, SigningKey, TokenKind,
    TokenRequest, Verifier, VerifierConfig,
};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};

const T0: u64 = 1_800_000_000;

pub(crate) struct Fixture {
    pub(crate) clock: ManualClock,
    pub(crate) issuer: Issuer,
    pub(crate) verifier: Verifier,
    pub(crate) deny: Arc<DenyList>,
}

pub(crate) fn fixture(key: SigningKey) -> Fixture {
    let clock = ManualClock::new(T0);
    let issuer = Issuer::new("manta-manager", "manta", key)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let deny = Arc::new(DenyList::new());
    let verifier = Verifier::new(
        VerifierConfig::new("manta-manager", "manta"),
        issuer.key_set(),
    )
    .unwrap()
    .with_clock(Arc::new(clock.clone()))
    .with_revocation(deny.clone());
    Fixture {
        clock,
        issuer,
        verifier,
        deny,
    }
}

pub(crate) fn ed_fixture() -> Fixture {
    fixture(SigningKey::generate_ed25519("ed-1").unwrap())
}

fn access(f: &Fixture, scopes: &[&str]) -> SecretString {
    let req =
        TokenRequest::new(TokenKind::UserAccess, "alice").scopes(ScopeSet::parse(scopes).unwrap());
    f.issuer.issue(&req).unwrap().token
}

fn parts(token: &SecretString) -> Vec<String> {
    token
        .expose_secret()
        .split('.')
        .map(str::to_owned)
        .collect()
}

fn json_part(part: &str) -> serde_json::Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

/// Replaces the header of a signed token (the signature no longer matches, so this only tests
/// checks that run before the signature).
fn with_header(token: &SecretString, header: &serde_json::Value) -> String {
    let p = parts(token);
    format!("{}.{}.{}", B64.encode(header.to_string()), p[1], p[2])
}

#[test]
fn each_algorithm_round_trips_and_sets_kid_jti_kind() {
    let hs = SigningKey::hs256("hs-1", &SecretBox::new(vec![9u8; 32].into_boxed_slice())).unwrap();
    for key in [
        SigningKey::generate_ed25519("k").unwrap(),
        SigningKey::generate_es256("k").unwrap(),
        hs,
    ] {
        let alg = key.algorithm();
        let f = fixture(key);
        let t = access(&f, &["cluster:read"]);
        let v = f
            .verifier
            .verify(t.expose_secret(), TokenKind::UserAccess)
            .unwrap();
        assert_eq!(v.header.alg, alg);
        assert_eq!(v.header.kid.as_deref(), Some(f.issuer.current_key().kid()));
        assert_eq!(v.header.typ.as_deref(), Some("manta-access+jwt"));
        assert_eq!(v.claims.sub.as_deref(), Some("alice"));
        assert_eq!(v.claims.exp, Some(T0 + 15 * 60));
        assert_eq!(
            v.require("cluster:read").unwrap().granted_by.to_string(),
            "cluster:read"
        );
        assert!(matches!(
            v.require("cluster:delete"),
            Err(Error::InsufficientScope { .. })
        ));
        let again = access(&f, &[]);
        let j1 = f
            .verifier
            .verify(again.expose_secret(), TokenKind::UserAccess)
            .unwrap()
            .claims
            .jti;
        assert!(
            j1.is_some() && j1 != v.claims.jti,
            "every token gets a fresh jti"
        );
    }
}

#[test]
fn a_token_of_one_kind_is_refused_where_another_is_expected() {
    let f = ed_fixture();
    for issued in TokenKind::ALL {
        let t = f
            .issuer
            .issue(&TokenRequest::new(issued, "n1"))
            .unwrap()
            .token;
        for expected in TokenKind::ALL {
            let r = f.verifier.verify(t.expose_secret(), expected);
            if issued == expected {
                assert!(r.is_ok(), "{issued} as {expected}: {r:?}");
            } else {
                let e = r.unwrap_err();
                assert!(
                    matches!(e, Error::WrongKind { expected: x, found: KindName::Known(y) } if x == expected && y == issued),
                    "{issued} as {expected}: {e:?}"
                );
                assert!(
                    e.to_string()
                        .contains(&format!("expected a {expected} token"))
                );
            }
        }
    }
}

#[test]
fn expiry_and_not_before_use_separate_leeways() {
    let f = ed_fixture();
    let t = access(&f, &[]);
    f.clock.advance(Duration::from_secs(15 * 60 + 30));
    assert!(
        f.verifier
            .verify(t.expose_secret(), TokenKind::UserAccess)
            .is_ok(),
        "within exp leeway"
    );
    f.clock.advance(Duration::from_secs(1));
    let e = f
        .verifier
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("expired at {}", T0 + 900)),
        "{e}"
    );
    // RenewNodeToken accepts expired but correctly signed tokens.
    assert!(
        f.verifier
            .verify_allow_expired(t.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );

    // A token issued "in the future" (issuer clock ahead) is refused beyond the nbf leeway.
    let f = ed_fixture();
    f.clock.advance(Duration::from_secs(31));
    let future = access(&f, &[]);
    f.clock.set(T0);
    let e = f
        .verifier
        .verify(future.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(matches!(e, Error::NotYetValid { .. }), "{e:?}");
    f.clock.advance(Duration::from_secs(1));
    assert!(
        f.verifier
            .verify(future.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );
}

#[test]
fn leeways_are_bounded() {
    let mut cfg = VerifierConfig::new("i", "a");
    cfg.exp_leeway = Duration::from_secs(301);
    let e = Verifier::new(cfg, KeySet::new()).unwrap_err().to_string();
    assert!(e.contains("exp_leeway is 301s; at most 300s"), "{e}");
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let f = ed_fixture();
    let t = access(&f, &[]);
    let keys = f.issuer.key_set();
    let other_iss =
        Verifier::new(VerifierConfig::new("someone-else", "manta"), keys.clone()).unwrap();
    let e = other_iss
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(
        matches!(e, Error::WrongIssuer { .. }) && e.to_string().contains("`someone-else`"),
        "{e}"
    );
    let other_aud = Verifier::new(VerifierConfig::new("manta-manager", "other"), keys).unwrap();
    let e = other_aud
        .verify(t.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(matches!(e, Error::WrongAudience { .. }), "{e:?}");
}

#[test]
fn tampering_and_foreign_keys_are_refused() {
    let f = ed_fixture();
    let t = access(&f, &["cluster:read"]);
    let p = parts(&t);
    // Swap in a payload granting admin:*.
    let mut claims = json_part(&p[1]);
    claims["permissions"] = serde_json::json!(["admin:*"]);
    let forged = format!("{}.{}.{}", p[0], B64.encode(claims.to_string()), p[2]);
    assert!(matches!(
        f.verifier.verify(&forged, TokenKind::UserAccess),
        Err(Error::BadSignature)
    ));
    // A token from another issuer's key with the same kid.
    let other = fixture(SigningKey::generate_ed25519("ed-1").unwrap());
    let t2 = access(&other, &[]);
    assert!(matches!(
        f.verifier.verify(t2.expose_secret(), TokenKind::UserAccess),
        Err(Error::BadSignature)
    ));
    // An unknown kid.
    let stranger = fixture(SigningKey::generate_ed25519("ed-9").unwrap());
    let t3 = access(&stranger, &[]);
    let e = f
        .verifier
        .verify(t3.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(matches!(e, Error::UnknownKey), "{e:?}");
}

#[test]
fn algorithm_confusion_is_impossible() {
    // An HS256 token "signed" with the Ed25519 public key bytes must not verify against it.
    let f = ed_fixture();
    let t = access(&f, &[]);
    let p = parts(&t);
    let jwks: serde_json::Value = serde_json::from_str(&f.issuer.key_set().to_jwks_json()).unwrap();
    let public = B64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let header = serde_json::json!({"alg":"HS256","kid":"ed-1","typ":"manta-access+jwt"});
    let input = format!("{}.{}", B64.encode(header.to_string()), p[1]);
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let forged = format!("{input}.{}", B64.encode(mac.as_ref()));
    let e = f
        .verifier
        .verify(&forged, TokenKind::UserAccess)
        .unwrap_err();
    assert!(
        matches!(e, Error::AlgorithmNotAllowed { alg: "HS256" }),
        "{e:?}"
    );
}

#[test]
fn hostile_headers_are_refused_before_any_crypto() {
    let f = ed_fixture();
    let t = access(&f, &[]);
    let check = |header: serde_json::Value, needle: &str| {
        let token = with_header(&t, &header);
        let e = f
            .verifier
            .verify(&token, TokenKind::UserAccess)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{header}: `{e}` lacks `{needle}`");
        assert!(!e.contains(&token[..20]), "error echoes the token");
    };
    check(
        serde_json::json!({"alg":"none","kid":"ed-1"}),
        "algorithm none",
    );
    check(
        serde_json::json!({"alg":"EdDSA","kid":"ed-1","crit":["exp"]}),
        "`crit`",
    );
    check(
        serde_json::json!({"alg":"EdDSA","kid":"ed-1","jwk":{"kty":"OKP"}}),
        "`jwk`",
    );
    check(
        serde_json::json!({"alg":"EdDSA","kid":"ed-1","jku":"https://evil"}),
        "`jku`",
    );
    check(
        serde_json::json!({"alg":"EdDSA","kid":"ed-1","x5u":"https://evil"}),
        "`x5u`",
    );
    check(
        serde_json::json!({"alg":"RS384","kid":"ed-1"}),
        "algorithm RS384 is not accepted",
    );
    let dup = format!(
        "{}.{}",
        B64.encode(r#"{"alg":"EdDSA","alg":"EdDSA","kid":"ed-1"}"#),
        &t.expose_secret()[t.expose_secret().find('.').unwrap() + 1..]
    );
    let e = f
        .verifier
        .verify(&dup, TokenKind::UserAccess)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate JSON key"), "{e}");
    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts(&t)[1]);
    assert!(f.verifier.verify(&none, TokenKind::UserAccess).is_err());
}

#[test]
fn size_cap_and_non_compact_forms_are_refused() {
    let f = ed_fixture();
    let huge = "a".repeat(9000);
    let e = f
        .verifier
        .verify(&huge, TokenKind::UserAccess)
        .unwrap_err()
        .to_string();
    assert!(e.contains("9000 bytes, above the 8192-byte limit"), "{e}");
    let json = r#"{"payload":"e30","protected":"e30","signature":"AA"}"#;
    let e = f
        .verifier
        .verify(json, TokenKind::UserAccess)
        .unwrap_err()
        .to_string();
    assert!(e.contains("JSON serialization is not accepted"), "{e}");
    let e = f
        .verifier
        .verify("a.b.c.d.e", TokenKind::UserAccess)
        .unwrap_err()
        .to_string();
    assert!(e.contains("three dot-separated parts"), "{e}");
    let t = access(&f, &[]);
    let spaced = format!(" {}", t.expose_secret());
    assert!(f.verifier.verify(&spaced, TokenKind::UserAccess).is_err());
}

#[test]
fn revocation_by_jti_and_by_subject() {
    let f = ed_fixture();
    let t1 = access(&f, &[]);
    let v1 = f
        .verifier
        .verify(t1.expose_secret(), TokenKind::UserAccess)
        .unwrap();
    f.deny
        .revoke_jti(v1.claims.jti.clone().unwrap(), v1.claims.exp.unwrap());
    let e = f
        .verifier
        .verify(t1.expose_secret(), TokenKind::UserAccess)
        .unwrap_err();
    assert!(
        matches!(e, Error::Revoked) && e.to_string().contains("revoked"),
        "{e:?}"
    );
    let t2 = access(&f, &[]);
    assert!(
        f.verifier
            .verify(t2.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );
    // "Log out everywhere" at T0+10: older tokens die, newer ones live.
    f.deny.revoke_subject_before("alice", T0 + 10);
    assert!(matches!(
        f.verifier.verify(t2.expose_secret(), TokenKind::UserAccess),
        Err(Error::Revoked)
    ));
    f.clock.advance(Duration::from_secs(10));
    let t3 = access(&f, &[]);
    assert!(
        f.verifier
            .verify(t3.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );
    // Revocation applies to expired-but-renewable node tokens too.
    assert!(
        f.verifier
            .verify_allow_expired(t2.expose_secret(), TokenKind::UserAccess)
            .is_err()
    );
}

#[test]
fn rotation_keeps_old_keys_until_their_last_token_expires() {
    let mut f = ed_fixture();
    let old = access(&f, &[]);
    f.clock.advance(Duration::from_secs(60));
    f.issuer.rotate(
        SigningKey::generate_ed25519("ed-2").unwrap(),
        Duration::from_secs(30),
    );
    let new = access(&f, &[]);
    f.verifier.set_keys(f.issuer.key_set());
    assert_eq!(f.issuer.key_set().len(), 2);
    assert!(
        f.verifier
            .verify(old.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );
    assert!(
        f.verifier
            .verify(new.expose_secret(), TokenKind::UserAccess)
            .is_ok()
    );
    let jwks = f.issuer.key_set().to_jwks_json();
    assert!(jwks.contains("ed-1") && jwks.contains("ed-2"));
    // After the old key's last token expired (plus grace), the old key leaves the set.
    f.clock.set(T0 + 900 + 31);
    let set = f.issuer.key_set();
    assert!(set.get("ed-1").is_none() && set.get("ed-2").is_some());
}

#[test]
fn node_tokens_carry_the_published_node_claims() {
    let f = ed_fixture();
    let req = TokenRequest::new(TokenKind::NodeIdentity, "node-7").node("node-7", "cluster-1", 3);
    let t = f.issuer.issue(&req).unwrap().token;
    let claims = json_part(&parts(&t)[1]);
    assert_eq!(claims["node_id"], "node-7");
    assert_eq!(claims["cluster_id"], "cluster-1");
    assert_eq!(claims["issued_version"], 3);
    assert!(
        claims["exp"].is_u64() && claims["iat"].is_u64(),
        "integer time claims: {claims}"
    );
    let v = f
        .verifier
        .verify(t.expose_secret(), TokenKind::NodeIdentity)
        .unwrap();
    assert_eq!(v.claims.node_id.as_deref(), Some("node-7"));
}

#[test]
fn issued_token_debug_is_redacted() {
    let f = ed_fixture();
    let issued = f
        .issuer
        .issue(&TokenRequest::new(TokenKind::Api, "bot"))
        .unwrap();
    let dbg = format!("{issued:?}");
    assert!(dbg.contains("[REDACTED]"));
    assert!(
        !dbg.contains(&parts(&issued.token)[2]),
        "signature leaked into Debug"
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_gets_an_error_not_a_panic(s in "[A-Za-z0-9_.{}\" :=-]{0,300}") {
        let f = ed_fixture();
        proptest::prop_assert!(f.verifier.verify(&s, TokenKind::UserAccess).is_err());
        let _ = manta_auth::inspect(&s);
    }

    #[test]
    fn any_single_byte_change_breaks_a_valid_token(pos in 0usize..400, byte in b'0'..=b'z') {
        let f = ed_fixture();
        let t = access(&f, &["cluster:read"]);
        let mut raw = t.expose_secret().as_bytes().to_vec();
        let pos = pos % raw.len();
        proptest::prop_assume!(raw[pos] != byte);
        raw[pos] = byte;
        let changed = String::from_utf8(raw).unwrap();
        proptest::prop_assert!(f.verifier.verify(&changed, TokenKind::UserAccess).is_err());
    }
}
