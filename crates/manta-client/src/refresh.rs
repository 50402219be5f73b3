//! The client's `Refresher` for manta-auth's token engine: a session refresh token when
//! there is one (`manta.v1.TokenService/RefreshSession`, rotating it), else the published
//! `UserManagement/RefreshUserToken` with the current token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use manta_auth::{RefreshError, RefreshFuture, Refresher};
use manta_proto::common::system::Empty;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_proto::manta::v1 as mv1;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::transport::Channel;

use crate::api::{header, lock, request, tokens};
use crate::audit;
use crate::redact::redact_tokens;

/// The session's refresh token, shared by the API and its refresher. Each refresh replaces
/// it (the manager rotates refresh tokens and revokes a family on reuse).
pub(crate) struct SessionToken(Mutex<Option<SecretString>>);

impl SessionToken {
    pub(crate) fn new(token: Option<SecretString>) -> Self {
        SessionToken(Mutex::new(token))
    }

    pub(crate) fn get(&self) -> Option<SecretString> {
        lock(&self.0).clone()
    }

    pub(crate) fn set(&self, token: SecretString) {
        *lock(&self.0) = Some(token);
    }

    pub(crate) fn clear(&self) {
        *lock(&self.0) = None;
    }
}

pub(crate) struct RpcRefresher {
    channel: Channel,
    session: Arc<SessionToken>,
    timeout: Duration,
    count: Arc<AtomicU64>,
    audit: bool,
}

impl RpcRefresher {
    pub(crate) fn new(
        channel: Channel,
        session: Arc<SessionToken>,
        timeout: Duration,
        count: Arc<AtomicU64>,
        audit: bool,
    ) -> Self {
        RpcRefresher {
            channel,
            session,
            timeout,
            count,
            audit,
        }
    }

    async fn run(&self, current: &SecretString) -> Result<SecretString, RefreshError> {
        if let Some(refresh) = self.session.get() {
            let answer = tokens(self.channel.clone())
                .refresh_session(request(
                    mv1::RefreshSessionRequest {
                        refresh_token: refresh.expose_secret().to_owned(),
                    },
                    None,
                    self.timeout,
                ))
                .await;
            return match answer {
                Ok(s) => {
                    let s = s.into_inner();
                    if !s.refresh_token.is_empty() {
                        self.session.set(SecretString::from(s.refresh_token));
                    }
                    Ok(SecretString::from(s.access_token))
                }
                Err(status) => Err(refusal(&status)),
            };
        }
        let auth = header(current).map_err(|_| RefreshError::Rejected)?;
        let answer = UserManagementClient::new(self.channel.clone())
            .refresh_user_token(request(Empty {}, Some(&auth), self.timeout))
            .await;
        match answer {
            Ok(jwt) => Ok(SecretString::from(jwt.into_inner().token)),
            Err(status) => Err(refusal(&status)),
        }
    }
}

fn refusal(status: &tonic::Status) -> RefreshError {
    use tonic::Code;
    let message = redact_tokens(status.message());
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => RefreshError::Rejected,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            RefreshError::Unavailable(message)
        }
        other => RefreshError::InvalidResponse(format!("{other:?}: {message}")),
    }
}

impl Refresher for RpcRefresher {
    fn refresh<'a>(&'a self, current: &'a SecretString) -> RefreshFuture<'a> {
        Box::pin(async move {
            let start = Instant::now();
            let result = self.run(current).await;
            if result.is_ok() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
            audit::record_text(
                self.audit,
                "refresh (automatic)",
                "",
                outcome,
                start.elapsed(),
            );
            result
        })
    }
}
