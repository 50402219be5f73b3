//! `manta.v1.TokenService`: sessions with rotating refresh tokens, API tokens and the JWK set.

use std::sync::Arc;
use std::time::Duration;

use manta_proto::manta::v1::token_service_server::TokenService;
use manta_proto::manta::v1::{
    ApiTokenInfo, CreateApiTokenRequest, CreateApiTokenResponse, CreateSessionRequest,
    GetJwksRequest, Jwks, ListApiTokensRequest, ListApiTokensResponse, RefreshSessionRequest,
    RevokeApiTokenRequest, RevokeApiTokenResponse, RevokeSessionRequest, RevokeSessionResponse,
    Session,
};
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use super::{audit_resource, caller, peer, run, ts};
use crate::identity::{Core, NewSession};
use crate::store::{TokenKind, TokenRecord};

const REVOKE_API_TOKEN: &str = "/manta.v1.TokenService/RevokeApiToken";

/// The TokenService.
#[derive(Debug, Clone)]
pub struct TokenApi {
    core: Arc<Core>,
}

impl TokenApi {
    /// Serves tokens from the engine.
    pub fn new(core: Arc<Core>) -> Self {
        TokenApi { core }
    }
}

fn session_message(s: &NewSession) -> Session {
    Session {
        access_token: s.access_token.expose_secret().to_owned(),
        refresh_token: s.refresh_token.expose_secret().to_owned(),
        access_expires_at: Some(ts(s.access_expires_at)),
        refresh_expires_at: Some(ts(s.refresh_expires_at)),
        session_id: s.session_id.clone(),
    }
}

/// Metadata of an API token, never the token.
pub(crate) fn info_message(t: &TokenRecord, now: i64) -> ApiTokenInfo {
    ApiTokenInfo {
        token_id: t.jti.clone(),
        name: t.name.clone().unwrap_or_default(),
        scopes: t.scopes.clone(),
        created_at: Some(ts(t.issued_at)),
        expires_at: Some(ts(t.expires_at)),
        last_used_at: t.last_used_at.map(ts),
        revoked: t.revoked_at.is_some() || t.expires_at <= now,
    }
}

fn empty_refresh() -> Status {
    Status::invalid_argument("refresh_token is empty; send the refresh token from CreateSession")
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let peer = peer(&request);
        let mut req = request.into_inner();
        let username = std::mem::take(&mut req.username);
        let password = SecretString::from(std::mem::take(&mut req.password));
        let session = run(&self.core, move |core| {
            core.sign_in(&username, &password, &peer)
        })
        .await?;
        Ok(Response::new(session_message(&session)))
    }

    async fn refresh_session(
        &self,
        request: Request<RefreshSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let refresh = SecretString::from(request.into_inner().refresh_token);
        if refresh.expose_secret().is_empty() {
            return Err(empty_refresh());
        }
        let session = run(&self.core, move |core| core.refresh_session(&refresh)).await?;
        Ok(Response::new(session_message(&session)))
    }

    async fn revoke_session(
        &self,
        request: Request<RevokeSessionRequest>,
    ) -> Result<Response<RevokeSessionResponse>, Status> {
        let refresh = SecretString::from(request.into_inner().refresh_token);
        if refresh.expose_secret().is_empty() {
            return Err(empty_refresh());
        }
        run(&self.core, move |core| {
            core.revoke_session_by_refresh(&refresh)
        })
        .await?;
        Ok(Response::new(RevokeSessionResponse {}))
    }

    async fn create_api_token(
        &self,
        request: Request<CreateApiTokenRequest>,
    ) -> Result<Response<CreateApiTokenResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let ttl = (req.ttl_seconds > 0).then(|| Duration::from_secs(req.ttl_seconds));
        let issued = run(&self.core, move |core| {
            core.create_own_api_token(&caller, &req.name, req.scopes, ttl)
        })
        .await?;
        Ok(Response::new(CreateApiTokenResponse {
            info: Some(info_message(&issued.record, self.core.now_secs())),
            token: issued.token.expose_secret().to_owned(),
        }))
    }

    async fn list_api_tokens(
        &self,
        request: Request<ListApiTokensRequest>,
    ) -> Result<Response<ListApiTokensResponse>, Status> {
        let caller = caller(&request)?;
        let include_inactive = request.get_ref().include_inactive;
        let now = self.core.now_secs();
        let tokens = run(&self.core, move |core| {
            core.store().list_tokens(
                Some(&caller.user_id),
                Some(TokenKind::Api),
                include_inactive,
                now,
            )
        })
        .await?;
        Ok(Response::new(ListApiTokensResponse {
            tokens: tokens.iter().map(|t| info_message(t, now)).collect(),
        }))
    }

    async fn revoke_api_token(
        &self,
        request: Request<RevokeApiTokenRequest>,
    ) -> Result<Response<RevokeApiTokenResponse>, Status> {
        let caller = caller(&request)?;
        let id = request.get_ref().token_id.clone();
        let (jti, owner) = (id.clone(), caller.user_id.clone());
        let result = run(&self.core, move |core| {
            core.revoke_token(&jti, Some(&owner))
        })
        .await;
        audit_resource(
            &self.core,
            &request,
            REVOKE_API_TOKEN,
            &caller,
            &id,
            result.is_ok(),
            if result.is_ok() {
                "revoked own token"
            } else {
                "not an own token"
            },
        );
        result?;
        Ok(Response::new(RevokeApiTokenResponse {}))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Result<Response<Jwks>, Status> {
        Ok(Response::new(Jwks {
            json: self.core.authority().jwks(),
        }))
    }
}
