//! The published User API as a client sees it: availability, sign-in, GetUser, the
//! UNAUTHENTICATED / PERMISSION_DENIED / NOT_FOUND rules, logout, refresh, audit.

use manta_manager::store::AuditQuery;
use manta_proto::common::permissions::{UserAuthorization, UserPermission};
use manta_proto::common::system::Empty;
use manta_proto::core::user_services::cluster_management_client::ClusterManagementClient;
use manta_proto::core::user_services::module_management_client::ModuleManagementClient;
use manta_proto::core::user_services::network_management_client::NetworkManagementClient;
use manta_proto::core::user_services::swarm_management_client::SwarmManagementClient;
use manta_proto::core::user_services::{
    AddUserRequest, DeleteUserRequest, GetUserRequest, ResolveUserDisplayNamesRequest,
    SignInRequest,
};
use tonic::Code;

use crate::harness::{Manager, ManagerExt as _, authed};

fn get_me() -> GetUserRequest {
    GetUserRequest { user_id: None }
}

#[tokio::test]
async fn is_available_answers_on_all_five_services_with_a_token() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let t = m.token("alice", &[]);
    let ch = m.channel().await;
    m.users()
        .await
        .is_available(authed(Empty {}, &t))
        .await
        .unwrap();
    ClusterManagementClient::new(ch.clone())
        .is_available(authed(Empty {}, &t))
        .await
        .unwrap();
    SwarmManagementClient::new(ch.clone())
        .is_available(authed(Empty {}, &t))
        .await
        .unwrap();
    ModuleManagementClient::new(ch.clone())
        .is_available(authed(Empty {}, &t))
        .await
        .unwrap();
    NetworkManagementClient::new(ch.clone())
        .is_available(authed(Empty {}, &t))
        .await
        .unwrap();
    // Without a token: refused, and the message says what is missing.
    let err = ClusterManagementClient::new(ch)
        .is_available(Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().starts_with("missing token"),
        "{}",
        err.message()
    );
    m.stop().await;
}

#[tokio::test]
async fn sign_in_returns_the_token_in_user_token_and_get_user_maps_scopes() {
    let m = Manager::start().await;
    let id = m.add_user("alice", "password1", &["user:read", "cluster:*"]);
    let mut c = m.users().await;
    let user = c
        .sign_in(SignInRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.user_id, id);
    assert_eq!(user.user_id.len(), 32);
    let token = user.token.expect("SignIn fills User.token");
    // Raw JWT, as the published SDK sends it.
    let me = c
        .get_user(authed(get_me(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "alice");
    let perms = me.authorization.unwrap().permissions;
    assert!(perms.contains(&(UserPermission::UserRead as i32)));
    assert!(perms.contains(&(UserPermission::ClusterStop as i32)));
    assert!(!perms.contains(&(UserPermission::UserList as i32)));
    // `Bearer <jwt>` works too.
    c.get_user(authed(get_me(), &format!("Bearer {token}")))
        .await
        .unwrap();
    m.stop().await;
}

#[tokio::test]
async fn bad_passwords_are_refused_alike_and_brute_force_is_throttled() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let mut c = m.users().await;
    let try_sign_in = |name: &str, pw: &str| SignInRequest {
        username: name.into(),
        password: pw.into(),
    };
    let wrong = c
        .sign_in(try_sign_in("alice", "nope-nope"))
        .await
        .unwrap_err();
    let nobody = c
        .sign_in(try_sign_in("mallory", "nope-nope"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), nobody.message(), "user names do not leak");
    for _ in 0..4 {
        let _ = c.sign_in(try_sign_in("alice", "nope-nope")).await;
    }
    let err = c
        .sign_in(try_sign_in("alice", "password1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("wait"), "{}", err.message());
    m.stop().await;
}

#[tokio::test]
async fn token_problems_are_unauthenticated_and_say_which() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &["user:read"]);
    let t = m.token("alice", &["user:read"]);
    let mut c = m.users().await;
    let check = |result: Result<tonic::Response<_>, tonic::Status>, prefix: &str| {
        let err = result
            .map(|_: tonic::Response<manta_proto::common::user::User>| ())
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
        assert!(
            err.message().starts_with(prefix),
            "{prefix}: {}",
            err.message()
        );
    };
    check(c.get_user(get_me()).await, "missing token");
    check(
        c.get_user(authed(get_me(), "garbage")).await,
        "malformed token",
    );
    // Tampered payload (scopes escalated) with the original signature.
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!(
        "{}.{}x.{}",
        parts[0],
        &parts[1][..parts[1].len() - 1],
        parts[2]
    );
    let err = c.get_user(authed(get_me(), &forged)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // A token of another manager.
    let other = Manager::start().await;
    other.add_user("alice", "password1", &[]);
    let foreign = other.token("alice", &[]);
    check(
        c.get_user(authed(get_me(), &foreign)).await,
        "token signed with an unknown key",
    );
    // Revoked by id through the admin path.
    let jti = m.core.authenticate(&t).unwrap().token_id.clone();
    m.core.revoke_token(&jti, None).unwrap();
    check(c.get_user(authed(get_me(), &t)).await, "revoked token");
    other.stop().await;
    m.stop().await;
}

#[tokio::test]
async fn missing_scope_is_permission_denied_naming_it() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &["user:read"]);
    m.add_user("root", "password1", &["admin:*"]);
    let weak = m.token("alice", &["user:read"]);
    let strong = m.token("root", &["admin:*"]);
    let mut c = m.users().await;
    let err = c.list_user_ids(authed(Empty {}, &weak)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("`user:list`"), "{}", err.message());
    let ids = c
        .list_user_ids(authed(Empty {}, &strong))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(ids.len(), 2);
    // A user token on a node method.
    let err = manta_proto::node::node_service::node_service_client::NodeServiceClient::new(
        crate::harness::channel(m.node_addr).await,
    )
    .is_available(authed(Empty {}, &strong))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("node token"), "{}", err.message());
    m.stop().await;
}

#[tokio::test]
async fn other_users_are_not_found_without_user_read() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let bob = m.add_user("bob", "password1", &[]);
    m.add_user("carol", "password1", &["user:read"]);
    let alice = m.token("alice", &[]);
    let carol = m.token("carol", &["user:read"]);
    let mut c = m.users().await;
    let ask = |id: &str| GetUserRequest {
        user_id: Some(id.to_owned()),
    };
    let hidden = c.get_user(authed(ask(&bob), &alice)).await.unwrap_err();
    let absent = c
        .get_user(authed(ask("0123456789abcdef0123456789abcdef"), &alice))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(absent.code(), Code::NotFound);
    assert_eq!(
        hidden.message().replace(&bob, "ID"),
        absent
            .message()
            .replace("0123456789abcdef0123456789abcdef", "ID"),
        "a hidden user looks exactly like a missing one"
    );
    let seen = c
        .get_user(authed(ask(&bob), &carol))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.username, "bob");
    m.stop().await;
}

#[tokio::test]
async fn logout_makes_the_token_unusable_and_refresh_stays_in_the_session() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let mut c = m.users().await;
    let token = c
        .sign_in(SignInRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    let fresh = c
        .refresh_user_token(authed(Empty {}, &token))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_ne!(fresh, token);
    c.get_user(authed(get_me(), &fresh)).await.unwrap();
    c.logout(authed(Empty {}, &fresh)).await.unwrap();
    for t in [&token, &fresh] {
        let err = c.get_user(authed(get_me(), t)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(err.message().contains("logged out"), "{}", err.message());
    }
    // API tokens have no session to refresh.
    let api = m.token("alice", &[]);
    let err = c
        .refresh_user_token(authed(Empty {}, &api))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    m.stop().await;
}

#[tokio::test]
async fn admin_methods_add_update_delete_users_within_the_callers_scopes() {
    let m = Manager::start().await;
    m.add_user("ops", "password1", &["user:*"]);
    let ops = m.token("ops", &["user:*"]);
    let mut c = m.users().await;
    let added = c
        .add_user(authed(
            AddUserRequest {
                username: "dave".into(),
                email: "dave@example.org".into(),
                permissions: vec![],
                quotas: None,
                permissions_list: Some(manta_proto::common::permissions::UserPermissionsList {
                    permissions: vec![UserPermission::UserRead as i32],
                }),
            },
            &ops,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        added.authorization.unwrap().permissions,
        [UserPermission::UserRead as i32]
    );
    // Granting what the caller lacks is refused.
    let err = c
        .update_user_authorization(authed(
            UserAuthorization {
                user_id: added.user_id.clone(),
                permissions: vec![UserPermission::ClusterCreate as i32],
                ..Default::default()
            },
            &ops,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("cluster:create"),
        "{}",
        err.message()
    );
    let err = c
        .update_user_authorization(authed(
            UserAuthorization {
                user_id: added.user_id.clone(),
                permissions: vec![999],
                ..Default::default()
            },
            &ops,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let names = c
        .resolve_user_display_names(authed(
            ResolveUserDisplayNamesRequest {
                user_ids: vec![added.user_id.clone(), "unknown".into()],
            },
            &ops,
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(names.len(), 1, "unknown ids are omitted");
    c.delete_user(authed(
        DeleteUserRequest {
            user_id: added.user_id.clone(),
        },
        &ops,
    ))
    .await
    .unwrap();
    let err = c
        .delete_user(authed(
            DeleteUserRequest {
                user_id: added.user_id,
            },
            &ops,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    m.stop().await;
}

#[tokio::test]
async fn unserved_methods_say_so_and_identity_messages_have_a_small_limit() {
    let m = Manager::start().await;
    m.add_user("root", "password1", &["admin:*"]);
    let t = m.token("root", &["admin:*"]);
    let err = m
        .users()
        .await
        .list_role_definitions(authed(
            manta_proto::core::user_services::ListRoleDefinitionsRequest::default(),
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(
        err.message().contains("UserManagement/ListRoleDefinitions"),
        "{}",
        err.message()
    );
    // 6 MiB of user ids: UserManagement is an identity service, so its small limit
    // (limits.identity_message_bytes) refuses them before they are read.
    let ids: Vec<String> = (0..200_000).map(|i| format!("{i:032x}")).collect();
    let err = m
        .users()
        .await
        .max_encoding_message_size(64 << 20)
        .resolve_user_display_names(authed(ResolveUserDisplayNamesRequest { user_ids: ids }, &t))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("limits.identity_message_bytes"),
        "{}",
        err.message()
    );
    // A batch over the handler's cap but within the size limit is refused by the cap.
    let ids: Vec<String> = (0..501).map(|i| format!("{i:032x}")).collect();
    let err = m
        .users()
        .await
        .resolve_user_display_names(authed(ResolveUserDisplayNamesRequest { user_ids: ids }, &t))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("at most 500"), "{}", err.message());
    m.stop().await;
}

#[tokio::test]
async fn every_decision_is_audited_with_peer() {
    let m = Manager::start().await;
    let id = m.add_user("alice", "password1", &["user:read"]);
    let t = m.token("alice", &["user:read"]);
    let mut c = m.users().await;
    c.get_user(authed(get_me(), &t)).await.unwrap();
    let _ = c.list_user_ids(authed(Empty {}, &t)).await;
    let _ = c.get_user(authed(get_me(), "garbage")).await;
    m.core.audit().flush();
    let events = m
        .core
        .store()
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(events.len(), 3, "{events:#?}");
    let [bad, denied, allowed] = [&events[0], &events[1], &events[2]];
    assert!(allowed.allowed && allowed.method.ends_with("/GetUser"));
    assert_eq!(allowed.subject.as_deref(), Some(id.as_str()));
    assert!(allowed.peer.as_deref().unwrap().starts_with("127.0.0.1:"));
    assert!(!denied.allowed && denied.reason.contains("user:list"));
    assert!(!bad.allowed && bad.subject.is_none() && bad.reason == "Malformed");
    m.stop().await;
}

#[tokio::test]
async fn health_is_public_and_reports_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let m = Manager::start().await;
    let status = HealthClient::new(m.channel().await)
        .check(HealthCheckRequest {
            service: "core.user_services.UserManagement".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let err = HealthClient::new(m.channel().await)
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    m.stop().await;
}

#[tokio::test]
async fn each_connection_is_limited_to_200_concurrent_calls() {
    // Without a per-connection stream limit a client may open streams faster than the
    // manager answers; once about 2,400 requests wait unread, h2's flood guard closes the
    // connection (GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames") and every call on it
    // fails with "broken pipe". The limit makes clients queue the excess themselves.
    let m = Manager::start().await;
    let tcp = tokio::net::TcpStream::connect(m.user_addr).await.unwrap();
    let (mut send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let request = http::Request::post(format!(
        "http://{}/grpc.health.v1.Health/Check",
        m.user_addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    // An empty HealthCheckRequest: uncompressed, length 0.
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    tokio::select! {
        r = response => assert_eq!(r.unwrap().status(), http::StatusCode::OK),
        r = &mut conn => panic!("connection ended first: {r:?}"),
    }
    // The server's SETTINGS frame has arrived with the response.
    assert_eq!(
        conn.max_concurrent_send_streams(),
        manta_manager::server::MAX_STREAMS_PER_CONNECTION as usize
    );
}

#[tokio::test]
async fn helpdesk_scopes_cannot_demote_or_delete_an_administrator() {
    let m = Manager::start().await;
    let root = m.add_user("root", "password1", &["admin:*"]);
    m.add_user("desk", "password1", &["user:update", "user:delete"]);
    let desk = m.token("desk", &["user:update", "user:delete"]);
    let admin = m.token("root", &["admin:*"]);
    let mut c = m.users().await;
    let err = c
        .update_user_authorization(authed(
            UserAuthorization {
                user_id: root.clone(),
                permissions: vec![],
                ..Default::default()
            },
            &desk,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("\"root\"") && err.message().contains("admin:*"),
        "{}",
        err.message()
    );
    let err = c
        .delete_user(authed(
            DeleteUserRequest {
                user_id: root.clone(),
            },
            &desk,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    // The administrator still works, with every scope.
    let me = c
        .get_user(authed(get_me(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "root");
    // Nor can the last administrator delete itself.
    let err = c
        .delete_user(authed(DeleteUserRequest { user_id: root }, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("last administrator"),
        "{}",
        err.message()
    );
    // Refusals are in the audit trail.
    m.core.audit().flush();
    let denied = m
        .core
        .store()
        .query_audit(&AuditQuery {
            denied_only: true,
            method: Some("DeleteUser".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(denied.iter().map(|e| e.count).sum::<u64>(), 2, "{denied:?}");
    m.stop().await;
}
