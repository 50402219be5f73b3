//! `manta.v1.TokenService`: sessions with rotation and reuse detection, API tokens, JWKS.

use manta_proto::core::user_services::GetUserRequest;
use manta_proto::manta::v1::{
    CreateApiTokenRequest, CreateSessionRequest, GetJwksRequest, ListApiTokensRequest,
    RefreshSessionRequest, RevokeApiTokenRequest, RevokeSessionRequest,
};
use secrecy::ExposeSecret as _;
use tonic::Code;

use crate::harness::{Manager, ManagerExt as _, authed};

fn me() -> GetUserRequest {
    GetUserRequest { user_id: None }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let mut t = m.tokens().await;
    let mut u = m.users().await;
    let s1 = t
        .create_session(CreateSessionRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s1.access_expires_at.unwrap().seconds <= s1.refresh_expires_at.unwrap().seconds);
    let s2 = t
        .refresh_session(RefreshSessionRequest {
            refresh_token: s1.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s2.session_id, s1.session_id);
    assert_ne!(s2.refresh_token, s1.refresh_token);
    u.get_user(authed(me(), &s2.access_token)).await.unwrap();

    // Replaying the first refresh token: refused, and the whole family dies.
    let err = t
        .refresh_session(RefreshSessionRequest {
            refresh_token: s1.refresh_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("already used"), "{}", err.message());
    let err = u
        .get_user(authed(me(), &s2.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = t
        .refresh_session(RefreshSessionRequest {
            refresh_token: s2.refresh_token,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("revoked"), "{}", err.message());

    let err = t
        .refresh_session(RefreshSessionRequest {
            refresh_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    m.stop().await;
}

#[tokio::test]
async fn revoke_session_ends_access_and_refresh() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let mut t = m.tokens().await;
    let s = t
        .create_session(CreateSessionRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    t.revoke_session(RevokeSessionRequest {
        refresh_token: s.refresh_token.clone(),
    })
    .await
    .unwrap();
    let err = m
        .users()
        .await
        .get_user(authed(me(), &s.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = t
        .revoke_session(RevokeSessionRequest {
            refresh_token: "mrt_unknown".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    m.stop().await;
}

#[tokio::test]
async fn api_tokens_are_shown_once_listed_without_secret_and_revocable() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &["user:read", "cluster:read"]);
    m.add_user("bob", "password1", &["user:read"]);
    // Creating API tokens needs a recent password sign-in: alice works in a fresh session.
    let alice = m
        .session_token("alice", "password1")
        .expose_secret()
        .to_owned();
    let bob = m.token("bob", &["user:read"]);
    let mut t = m.tokens().await;

    // An API token cannot create another one, so a stolen one cannot persist itself.
    let err = t
        .create_api_token(authed(
            CreateApiTokenRequest {
                name: "child".into(),
                scopes: vec![],
                ttl_seconds: 0,
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("cannot create API tokens") && err.message().contains("manta login"),
        "{}",
        err.message()
    );

    let created = t
        .create_api_token(authed(
            CreateApiTokenRequest {
                name: "notebook".into(),
                scopes: vec!["cluster:read".into()],
                ttl_seconds: 3600,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let info = created.info.unwrap();
    assert_eq!(info.name, "notebook");
    assert_eq!(info.scopes, ["cluster:read"]);
    assert_eq!(
        info.expires_at.unwrap().seconds - info.created_at.unwrap().seconds,
        3600
    );
    m.users()
        .await
        .get_user(authed(me(), &created.token))
        .await
        .unwrap();

    // Never more than the creator holds.
    let err = t
        .create_api_token(authed(
            CreateApiTokenRequest {
                name: "greedy".into(),
                scopes: vec!["user:delete".into()],
                ttl_seconds: 0,
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("user:delete"), "{}", err.message());
    let err = t
        .create_api_token(authed(
            CreateApiTokenRequest {
                name: "bad".into(),
                scopes: vec!["not a scope".into()],
                ttl_seconds: 0,
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let listed = t
        .list_api_tokens(authed(
            ListApiTokensRequest {
                include_inactive: false,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(listed.iter().any(|i| i.token_id == info.token_id));
    m.core.audit().flush();
    // Bob cannot see or revoke Alice's token: it looks like it does not exist.
    let err = t
        .revoke_api_token(authed(
            RevokeApiTokenRequest {
                token_id: info.token_id.clone(),
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    t.revoke_api_token(authed(
        RevokeApiTokenRequest {
            token_id: info.token_id.clone(),
        },
        &alice,
    ))
    .await
    .unwrap();
    let err = m
        .users()
        .await
        .get_user(authed(me(), &created.token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let active = t
        .list_api_tokens(authed(
            ListApiTokensRequest {
                include_inactive: false,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(active.iter().all(|i| i.token_id != info.token_id));
    let all = t
        .list_api_tokens(authed(
            ListApiTokensRequest {
                include_inactive: true,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let revoked = all.iter().find(|i| i.token_id == info.token_id).unwrap();
    assert!(revoked.revoked);
    assert!(revoked.last_used_at.is_some(), "last use is recorded");
    m.stop().await;
}

#[tokio::test]
async fn jwks_is_public_and_holds_only_public_keys() {
    let m = Manager::start().await;
    let jwks = m
        .tokens()
        .await
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .json;
    let v: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let key = &v["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key.get("d").is_none());
    m.stop().await;
}
