//! `kill -9` during a burst of token issues and revocations loses nothing acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use manta_proto::core::user_services::GetUserRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_proto::manta::v1::token_service_client::TokenServiceClient;
use manta_proto::manta::v1::{CreateApiTokenRequest, CreateSessionRequest, RevokeApiTokenRequest};
use tonic::Code;

use crate::harness::{authed, channel};
use crate::process::{Served, admin, kill_9_mid_burst};

/// Where a token stands in the burst.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Issue acknowledged, no revocation sent.
    Issued,
    /// Revocation sent but not acknowledged: either outcome is correct.
    Revoking,
    /// Revocation acknowledged.
    Revoked,
}

/// Acknowledged issues: token id -> (token, state).
type Acked = Arc<Mutex<HashMap<String, (String, State)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_issue_or_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    admin(
        data,
        None,
        &[
            "user",
            "add",
            "root",
            "--scopes",
            "admin:*",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );

    let mut served = Served::start(data, None, &[]);
    let ch = channel(served.user_addr).await;
    // Creating API tokens needs a recent password sign-in, so the burst runs in a session.
    let root = TokenServiceClient::new(ch.clone())
        .create_session(CreateSessionRequest {
            username: "root".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let acked: Acked = Arc::new(Mutex::new(HashMap::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (ch, root, acked) = (ch.clone(), root.clone(), Arc::clone(&acked));
        workers.push(tokio::spawn(async move {
            let mut c = TokenServiceClient::new(ch);
            // Bounded: at most 400 operations per worker; the kill usually comes first.
            for i in 0..200 {
                let created = c
                    .create_api_token(authed(
                        CreateApiTokenRequest {
                            name: format!("burst-{w}-{i}"),
                            scopes: vec!["user:read".into()],
                            ttl_seconds: 3600,
                        },
                        &root,
                    ))
                    .await;
                let Ok(created) = created else { return };
                let created = created.into_inner();
                let id = created.info.unwrap().token_id;
                acked
                    .lock()
                    .unwrap()
                    .insert(id.clone(), (created.token, State::Issued));
                if i % 2 == 0 {
                    acked.lock().unwrap().get_mut(&id).unwrap().1 = State::Revoking;
                    let revoked = c
                        .revoke_api_token(authed(
                            RevokeApiTokenRequest {
                                token_id: id.clone(),
                            },
                            &root,
                        ))
                        .await;
                    if revoked.is_err() {
                        return;
                    }
                    acked.lock().unwrap().get_mut(&id).unwrap().1 = State::Revoked;
                }
            }
        }));
    }
    // Let the burst run, then kill -9 in the middle of it: after twice the
    // acknowledgements asserted below, a small part of the whole burst.
    kill_9_mid_burst(&mut served, workers, || acked.lock().unwrap().len() >= 40).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "the burst acknowledged only {} issues",
        acked.len()
    );

    let restarted = Served::start(data, None, &[]);
    let mut users = UserManagementClient::new(channel(restarted.user_addr).await);
    let (mut live, mut dead) = (0, 0);
    for (id, (token, state)) in &acked {
        if *state == State::Revoking {
            continue;
        }
        let result = users
            .get_user(authed(GetUserRequest { user_id: None }, token))
            .await;
        if *state == State::Revoked {
            let err = result.expect_err("an acknowledged revocation was undone");
            assert_eq!(err.code(), Code::Unauthenticated, "{id}: {}", err.message());
            assert!(
                err.message().starts_with("revoked token"),
                "{id}: {}",
                err.message()
            );
            dead += 1;
        } else {
            result.unwrap_or_else(|e| panic!("acknowledged token {id} was forgotten: {e}"));
            live += 1;
        }
    }
    assert!(live > 0 && dead > 0, "live {live}, revoked {dead}");
    restarted.terminate();
}
