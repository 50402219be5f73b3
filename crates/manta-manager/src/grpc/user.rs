//! `core.user_services.UserManagement`: the published User API over the identity engine.

use std::sync::Arc;

use manta_proto::common::permissions::{UserAuthorization, UserPermission};
use manta_proto::common::system::{CollectionIds, Empty, Jwt, Response as Reply};
use manta_proto::common::user::{User, UserStatus};
use manta_proto::core::user_services::user_management_server::UserManagement;
use manta_proto::core::user_services::{
    AddUserRequest, DeleteUserRequest, GetUserRequest, ResolveUserDisplayNamesRequest,
    ResolveUserDisplayNamesResponse, SignInRequest, UserDisplayName,
};
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use super::{BoxStream, audit_resource, caller, peer, run, ts};
use crate::error::Error;
use crate::identity::Core;
use crate::scopes;
use crate::store::UserRecord;

const GET_USER: &str = "/core.user_services.UserManagement/GetUser";
const DELETE_USER: &str = "/core.user_services.UserManagement/DeleteUser";
const UPDATE_AUTHZ: &str = "/core.user_services.UserManagement/UpdateUserAuthorization";

/// The most ids one ResolveUserDisplayNames call may ask for.
const MAX_RESOLVE: usize = 500;

/// The UserManagement service.
#[derive(Debug, Clone)]
pub struct UserApi {
    core: Arc<Core>,
}

impl UserApi {
    /// Serves users from the engine.
    pub fn new(core: Arc<Core>) -> Self {
        UserApi { core }
    }
}

/// The published `User` message for a stored user, permissions mapped from scopes.
pub(crate) fn user_message(u: &UserRecord) -> User {
    let permissions = scopes::permissions_of(&u.scopes)
        .into_iter()
        .map(|p| p as i32)
        .collect();
    User {
        user_id: u.id.clone(),
        username: u.username.clone(),
        email: u.email.clone(),
        token: None,
        created_at: Some(ts(u.created_at)),
        last_login: u.last_login.map(ts),
        last_logout: u.last_logout.map(ts),
        last_activity: None,
        updated_at: Some(ts(u.updated_at)),
        registered_at: Some(ts(u.created_at)),
        verified_at: None,
        password_changed_at: u.password_changed_at.map(ts),
        status: UserStatus::Active as i32,
        authorization: Some(UserAuthorization {
            user_id: u.id.clone(),
            permissions,
            quotas: None,
            permissions_updated_at: Some(ts(u.scopes_updated_at)),
            quotas_updated_at: None,
        }),
    }
}

fn permissions_from(values: &[i32]) -> Result<Vec<UserPermission>, Status> {
    values
        .iter()
        .map(|v| {
            UserPermission::try_from(*v).map_err(|_| {
                Status::invalid_argument(format!(
                    "unknown UserPermission value {v}; use the values of common.permissions.UserPermission"
                ))
            })
        })
        .collect()
}

fn not_found_user(id: &str) -> Status {
    Status::not_found(format!("no user {id:?}; list users with ListUserIds"))
}

#[tonic::async_trait]
impl UserManagement for UserApi {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        Ok(Response::new(Reply {
            message: "available".into(),
        }))
    }

    async fn sign_in(&self, request: Request<SignInRequest>) -> Result<Response<User>, Status> {
        let peer = peer(&request);
        let mut req = request.into_inner();
        let username = std::mem::take(&mut req.username);
        let password = SecretString::from(std::mem::take(&mut req.password));
        let session = run(&self.core, move |core| {
            core.sign_in(&username, &password, &peer)
        })
        .await?;
        let mut user = user_message(&session.user);
        user.status = UserStatus::SignedIn as i32;
        user.last_login = Some(ts(self.core.now_secs()));
        // The published SDK reads the token from `User.token`.
        user.token = Some(session.access_token.expose_secret().to_owned());
        Ok(Response::new(user))
    }

    async fn logout(&self, request: Request<Empty>) -> Result<Response<Reply>, Status> {
        let caller = caller(&request)?;
        run(&self.core, move |core| core.logout(&caller)).await?;
        Ok(Response::new(Reply {
            message: "logged out; the token no longer works".into(),
        }))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let caller = caller(&request)?;
        let wanted = request
            .get_ref()
            .user_id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| caller.user_id.clone());
        // Another user's record needs `user:read`; without it the answer is the same NOT_FOUND
        // as for a user that does not exist, so existence does not leak.
        if wanted != caller.user_id && !caller.has("user:read") {
            audit_resource(
                &self.core,
                &request,
                GET_USER,
                &caller,
                &wanted,
                false,
                "not own user and no user:read",
            );
            return Err(not_found_user(&wanted));
        }
        let found = self
            .core
            .store()
            .user_by_id(&wanted)
            .map_err(|e| crate::authz::status_of(&e))?;
        match found {
            Some(u) => Ok(Response::new(user_message(&u))),
            None => Err(not_found_user(&wanted)),
        }
    }

    async fn refresh_user_token(&self, request: Request<Empty>) -> Result<Response<Jwt>, Status> {
        let caller = caller(&request)?;
        let issued = run(&self.core, move |core| core.refresh_access(&caller)).await?;
        Ok(Response::new(Jwt {
            token: issued.token.expose_secret().to_owned(),
        }))
    }

    async fn list_user_ids(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<CollectionIds>, Status> {
        let users = run(&self.core, |core| core.store().list_users()).await?;
        Ok(Response::new(CollectionIds {
            ids: users.into_iter().map(|u| u.id).collect(),
        }))
    }

    async fn stream_users(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<BoxStream<User>>, Status> {
        let users = run(&self.core, |core| core.store().list_users()).await?;
        let messages: Vec<Result<User, Status>> =
            users.iter().map(|u| Ok(user_message(u))).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<Reply>, Status> {
        let caller = caller(&request)?;
        let id = request.get_ref().user_id.clone();
        let target = id.clone();
        let held = caller.scopes.clone();
        let deleted = run(&self.core, move |core| {
            core.delete_user(Some(&held), &target)
        })
        .await;
        let reason = match &deleted {
            Ok(true) => "deleted".to_owned(),
            Ok(false) => "no such user".to_owned(),
            Err(s) => format!("refused: {:?}", s.code()),
        };
        let allowed = matches!(deleted, Ok(true));
        audit_resource(
            &self.core,
            &request,
            DELETE_USER,
            &caller,
            &id,
            allowed,
            &reason,
        );
        let deleted = deleted?;
        if !deleted {
            return Err(not_found_user(&id));
        }
        Ok(Response::new(Reply {
            message: format!("user {id} deleted with all its tokens"),
        }))
    }

    async fn add_user(&self, request: Request<AddUserRequest>) -> Result<Response<User>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        #[allow(
            deprecated,
            reason = "the published SDK still fills the deprecated field 3"
        )]
        let values = match &req.permissions_list {
            Some(list) => list.permissions.clone(),
            None => req.permissions.clone(),
        };
        let wanted = scopes::scopes_of(&permissions_from(&values)?);
        // Nobody grants more than they hold.
        if let Some(s) = wanted.iter().find(|s| !caller.has(s)) {
            return Err(crate::authz::status_of(&Error::ScopeNotHeld(s.clone())));
        }
        let user = run(&self.core, move |core| {
            core.add_user(&req.username, &req.email, None, wanted)
        })
        .await?;
        Ok(Response::new(user_message(&user)))
    }

    async fn update_user_authorization(
        &self,
        request: Request<UserAuthorization>,
    ) -> Result<Response<Reply>, Status> {
        let caller = caller(&request)?;
        let id = request.get_ref().user_id.clone();
        let wanted = scopes::scopes_of(&permissions_from(&request.get_ref().permissions)?);
        let target = id.clone();
        let held = caller.scopes.clone();
        let updated = run(&self.core, move |core| {
            match core.set_user_scopes(Some(&held), &target, &wanted) {
                Err(Error::UnknownUser(_)) => Ok(false),
                other => other.map(|()| true),
            }
        })
        .await;
        let reason = match &updated {
            Ok(true) => "permissions replaced".to_owned(),
            Ok(false) => "no such user".to_owned(),
            Err(s) => format!("refused: {:?}", s.code()),
        };
        let allowed = matches!(updated, Ok(true));
        audit_resource(
            &self.core,
            &request,
            UPDATE_AUTHZ,
            &caller,
            &id,
            allowed,
            &reason,
        );
        let updated = updated?;
        if !updated {
            return Err(not_found_user(&id));
        }
        Ok(Response::new(Reply {
            message: format!("permissions of user {id} updated; live tokens follow at once"),
        }))
    }

    async fn resolve_user_display_names(
        &self,
        request: Request<ResolveUserDisplayNamesRequest>,
    ) -> Result<Response<ResolveUserDisplayNamesResponse>, Status> {
        let ids = request.into_inner().user_ids;
        if ids.len() > MAX_RESOLVE {
            return Err(Status::invalid_argument(format!(
                "too many user ids ({}); send at most {MAX_RESOLVE} per call",
                ids.len()
            )));
        }
        let users = run(&self.core, move |core| {
            let mut out = std::collections::HashMap::new();
            for id in ids {
                if let Some(u) = core.store().user_by_id(&id)? {
                    out.insert(
                        id,
                        UserDisplayName {
                            username: u.username,
                        },
                    );
                }
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(ResolveUserDisplayNamesResponse { users }))
    }
}
