//! Inspection without verification: what a client reads to schedule refreshes.

use std::time::Duration;

use manta_auth::{Error, ScopeSet, TokenKind, TokenRequest, inspect};
use secrecy::ExposeSecret as _;

use crate::tokens::ed_fixture;

#[test]
fn reads_kind_expiry_and_scopes_without_a_key() {
    let f = ed_fixture();
    let req = TokenRequest::new(TokenKind::UserAccess, "alice")
        .scopes(ScopeSet::parse(&["swarm:deploy", "results:read"]).unwrap());
    let t = f.issuer.issue(&req).unwrap().token;
    let seen = inspect(t.expose_secret()).unwrap();
    assert_eq!(seen.kind(), Some(TokenKind::UserAccess));
    let exp = seen.expires_at().unwrap();
    let now = exp - Duration::from_secs(100);
    assert_eq!(seen.time_left(now), Some(Duration::from_secs(100)));
    assert_eq!(
        seen.time_left(exp + Duration::from_secs(5)),
        Some(Duration::ZERO)
    );
    assert_eq!(
        seen.scopes().unwrap().to_strings(),
        ["swarm:deploy", "results:read"]
    );
}

#[test]
fn display_never_prints_the_signature_or_the_token() {
    let f = ed_fixture();
    let t = f
        .issuer
        .issue(&TokenRequest::new(TokenKind::NodeIdentity, "n1").node("n1", "c1", 2))
        .unwrap()
        .token;
    let shown = inspect(t.expose_secret()).unwrap().to_string();
    let parts: Vec<&str> = t.expose_secret().split('.').collect();
    for p in &parts {
        assert!(!shown.contains(p), "display contains a token part: {shown}");
    }
    assert!(
        shown.contains("kind=node")
            && shown.contains("node_id=n1")
            && shown.contains("issued_version=2"),
        "{shown}"
    );
    assert!(
        shown.contains("(expired)") || shown.contains("(in "),
        "{shown}"
    );
}

#[test]
fn bad_input_gets_typed_errors_that_do_not_echo_it() {
    for (input, needle) in [
        ("", "empty"),
        ("not-a-jwt", "three dot-separated parts"),
        ("eyJhbGciOiJub25lIn0.e30.", "signature part is empty"),
        ("eyJhbGciOiJub25lIn0.e30.AA", "algorithm none"),
        (
            "eyJhbGciOiJFZERTQSJ9.eyJleHAiOjEuNX0.c2ln",
            "claim `exp` is not an integer",
        ),
        ("eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.c2ln", "not a JSON object"),
    ] {
        let e = inspect(input).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle), "{input:?}: `{msg}` lacks `{needle}`");
        if input.len() > 10 {
            assert!(!msg.contains(input), "error echoes the token");
        }
        assert!(matches!(
            e,
            Error::Malformed { .. } | Error::AlgorithmNotAllowed { .. } | Error::BadClaim { .. }
        ));
    }
}
