//! Robustness of the real server against correctly signed tokens carrying extreme claim
//! times, and of configuration errors against values with escapes (issue 14).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use manta_manager::config::Config;
use manta_proto::core::user_services::GetUserRequest;
use secrecy::ExposeSecret as _;
use tonic::Code;

use crate::harness::{Manager, ManagerExt as _, authed};

fn me() -> GetUserRequest {
    GetUserRequest { user_id: None }
}

/// `token` with `edit` applied to its claims, signed again with the manager's own active
/// EdDSA key, so only the claims differ from a token the manager issued.
fn resigned(m: &Manager, token: &str, edit: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let edit: serde_json::Map<String, serde_json::Value> = serde_json::from_str(edit).unwrap();
    claims.extend(edit);
    // serde_json prints u64 and f64 as they were written; `1e19` becomes `1e19`.
    let payload = serde_json::to_string(&claims).unwrap();
    let input = format!("{}.{}", parts[0], B64.encode(payload));
    let keys = m.core.store().signing_keys().unwrap();
    let active = keys.iter().find(|k| k.retired_at.is_none()).unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(active.private_der.expose_secret())
        .unwrap();
    let sig = pair.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

#[tokio::test]
async fn a_signed_token_with_nbf_2_pow_63_is_unauthenticated_and_the_server_keeps_serving() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &["user:read"]);
    let good = m.token("alice", &["user:read"]);
    // The same connection throughout: a panicking request task would break it.
    let mut users = m.users().await;
    users.get_user(authed(me(), &good)).await.unwrap();
    for edit in [
        r#"{"nbf":9223372036854775808}"#,
        r#"{"nbf":18446744073709551615}"#,
        r#"{"exp":10000000000000000000}"#,
        r#"{"exp":9223372036854775807}"#,
        r#"{"iat":18446744073709551615}"#,
        r#"{"nbf":1e19}"#,
        r#"{"exp":1.5e308}"#,
        r#"{"nbf":-1}"#,
    ] {
        let forged = resigned(&m, &good, edit);
        let err = users.get_user(authed(me(), &forged)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{edit}: {err:?}");
        assert!(!err.message().contains(&forged), "the token was echoed");
        // It says what is wrong with the token, not that it is no JWT at all.
        assert!(
            err.message().contains("time claim") || err.message().contains("expired"),
            "{edit}: {}",
            err.message()
        );
        let next = users.get_user(authed(me(), &good)).await;
        assert!(next.is_ok(), "after {edit}: {next:?}");
    }
    // A control: re-signing alone changes nothing, so the refusals above are the claims'.
    let same = resigned(&m, &good, "{}");
    users.get_user(authed(me(), &same)).await.unwrap();
    m.stop().await;
}

#[test]
fn a_config_error_hides_a_substituted_value_with_escaped_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manager.toml");
    std::fs::write(&path, "[tokens]\naccess_ttl_secs = \"${N}\"\n").unwrap();
    for value in [
        "sec\"ret\"value",
        "back\\slash\\\\secret",
        "multi\nline\nsecret",
        "uni\u{1}code\u{e9}secret",
    ] {
        let env = manta_config::Env::from_pairs([("N", value)]);
        let err = Config::load_with(&path, &env).unwrap_err().to_string();
        for piece in ["ret\\", "value", "slash", "line", "code", "secret"] {
            assert!(!err.contains(piece), "{value:?}: `{piece}` leaked: {err}");
        }
        assert!(err.contains("tokens.access_ttl_secs"), "{err}");
    }
}
