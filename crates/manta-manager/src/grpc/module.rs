//! `core.user_services.ModuleManagement`: module upload (`SendModule`, 32-hex ids as the SDK
//! expects) and reading a module back; listing, updating and removing answer UNIMPLEMENTED.

use std::sync::Arc;

use manta_proto::common::system::{Empty, Response as Reply, StrId};
use manta_proto::common::tasks::Module;
use manta_proto::core::user_services::ModuleRequest;
use manta_proto::core::user_services::module_management_server::ModuleManagement;
use prost::Message;
use tonic::{Request, Response, Status};

use super::act;
use crate::identity::Core;
use crate::platform::Viewer;

const MM: &str = "/core.user_services.ModuleManagement/";

/// The ModuleManagement service.
#[derive(Debug, Clone)]
pub struct ModuleApi {
    core: Arc<Core>,
}

impl ModuleApi {
    /// The service over an engine.
    pub fn new(core: Arc<Core>) -> Self {
        ModuleApi { core }
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ModuleManagement for ModuleApi {
    async fn is_available(&self, _request: Request<Empty>) -> R<Reply> {
        Ok(Response::new(Reply {
            message: "available".into(),
        }))
    }

    async fn send_module(&self, request: Request<Module>) -> R<StrId> {
        let module = request.get_ref().clone();
        let m = act(
            &self.core,
            &request,
            &format!("{MM}SendModule"),
            "new module",
            move |core, who| core.platform().send_module(&Viewer::of(who), &module),
        )
        .await?;
        Ok(Response::new(StrId { id: m.id }))
    }

    async fn get_module(&self, request: Request<StrId>) -> R<ModuleRequest> {
        let id = request.get_ref().id.clone();
        let m = act(
            &self.core,
            &request,
            &format!("{MM}GetModule"),
            &id.clone(),
            move |core, who| core.platform().module(&Viewer::of(who), &id),
        )
        .await?;
        // Stored from a decoded message, so it decodes; a corrupt row shows as empty.
        let module = Module::decode(m.body.as_slice()).unwrap_or_default();
        Ok(Response::new(ModuleRequest {
            module: Some(module),
            module_id: m.id,
        }))
    }
}
