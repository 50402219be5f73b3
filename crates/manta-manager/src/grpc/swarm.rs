//! `core.user_services.SwarmManagement`: swarms as the SDK's `deploy_swarm` sends them
//! (SendSwarm, InitializeGlobal, InitializeNetworks, StartSwarm, GetSwarm), stop and removal,
//! and reading results and global tags. Nothing is scheduled onto nodes yet, so a swarm has
//! no tasks running, no logs and no results; those reads answer empty for a swarm the caller
//! may see and NOT_FOUND otherwise.

use std::sync::Arc;

use manta_proto::common::results::Global;
use manta_proto::common::swarms::Swarm;
use manta_proto::common::system::{
    CollectionIds, Empty, Networks, Response as Reply, StopSwarmRequest, StrId,
};
use manta_proto::core::user_services as us;
use manta_proto::core::user_services::swarm_management_server::SwarmManagement;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::{BoxStream, act, caller, run, ts};
use crate::identity::Core;
use crate::platform::Viewer;
use crate::store::SwarmRecord;

const SM: &str = "/core.user_services.SwarmManagement/";

/// Bytes per gigabyte in `Tags.gb_usage_per_tag`.
const GB: f64 = 1_000_000_000.0;

/// The published `Swarm` message.
pub(crate) fn swarm_message(s: &SwarmRecord) -> Swarm {
    Swarm {
        swarm_id: s.id.clone(),
        cluster_id: s.cluster_id.clone(),
        owner_id: s.owner_id.clone(),
        name: s.name.clone(),
        created_at: Some(ts(s.created_at)),
        last_start: s.last_start.map(ts),
        last_stop: s.last_stop.map(ts),
        status: s.status,
        iteration: None,
        circular: None,
        authorization: None,
        termination_reason: None,
        killed_at: None,
        max_iteration: s.max_iteration,
        network_id: s.network_id.clone(),
        network_type: s.network_type,
    }
}

/// The SwarmManagement service.
#[derive(Debug, Clone)]
pub struct SwarmApi {
    core: Arc<Core>,
}

impl SwarmApi {
    /// The service over an engine.
    pub fn new(core: Arc<Core>) -> Self {
        SwarmApi { core }
    }
}

type R<T> = Result<Response<T>, Status>;

fn path(method: &str) -> String {
    format!("{SM}{method}")
}

#[tonic::async_trait]
impl SwarmManagement for SwarmApi {
    async fn is_available(&self, _request: Request<Empty>) -> R<Reply> {
        Ok(Response::new(Reply {
            message: "available".into(),
        }))
    }

    async fn send_swarm(&self, request: Request<us::SendSwarmRequest>) -> R<Swarm> {
        let body = request.get_ref().clone();
        let resource = format!("cluster {}", body.cluster_id);
        let s = act(
            &self.core,
            &request,
            &path("SendSwarm"),
            &resource,
            move |core, who| core.platform().send_swarm(&Viewer::of(who), &body),
        )
        .await?;
        Ok(Response::new(swarm_message(&s)))
    }

    async fn list_swarm_ids(&self, request: Request<Empty>) -> R<CollectionIds> {
        let who = caller(&request)?;
        let ids = run(&self.core, move |core| {
            Ok(core
                .platform()
                .swarms(&Viewer::of(&who))?
                .into_iter()
                .map(|s| s.id)
                .collect())
        })
        .await?;
        Ok(Response::new(CollectionIds { ids }))
    }

    async fn stream_swarms(&self, request: Request<Empty>) -> R<BoxStream<Swarm>> {
        let who = caller(&request)?;
        let swarms = run(&self.core, move |core| {
            Ok(core
                .platform()
                .swarms(&Viewer::of(&who))?
                .iter()
                .map(swarm_message)
                .collect::<Vec<_>>())
        })
        .await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            swarms.into_iter().map(Ok),
        ))))
    }

    async fn stream_swarm(&self, request: Request<StrId>) -> R<BoxStream<Swarm>> {
        let s = self.get_swarm(request).await?.into_inner();
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(s)]))))
    }

    async fn get_swarm(&self, request: Request<StrId>) -> R<Swarm> {
        let id = request.get_ref().id.clone();
        let s = act(
            &self.core,
            &request,
            &path("GetSwarm"),
            &id.clone(),
            move |core, who| core.platform().swarm(&Viewer::of(who), &id),
        )
        .await?;
        Ok(Response::new(swarm_message(&s)))
    }

    async fn start_swarm(&self, request: Request<StrId>) -> R<Reply> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            &request,
            &path("StartSwarm"),
            &id.clone(),
            move |core, who| core.platform().start_swarm(&Viewer::of(who), &id),
        )
        .await?;
        Ok(Response::new(Reply {
            message: "swarm started; scheduling onto nodes is not available in this manager \
                      yet, so no task runs"
                .into(),
        }))
    }

    async fn stop_swarm(&self, request: Request<StopSwarmRequest>) -> R<Reply> {
        let StopSwarmRequest {
            swarm_id, remove, ..
        } = request.get_ref().clone();
        act(
            &self.core,
            &request,
            &path("StopSwarm"),
            &swarm_id.clone(),
            move |core, who| {
                core.platform()
                    .stop_swarm(&Viewer::of(who), &swarm_id, remove)
            },
        )
        .await?;
        Ok(Response::new(Reply {
            message: if remove {
                "swarm stopped and removed".into()
            } else {
                "swarm stopped".into()
            },
        }))
    }

    async fn remove_swarm(&self, request: Request<StrId>) -> R<Reply> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            &request,
            &path("RemoveSwarm"),
            &id.clone(),
            move |core, who| core.platform().remove_swarm(&Viewer::of(who), &id),
        )
        .await?;
        Ok(Response::new(Reply {
            message: "swarm removed".into(),
        }))
    }

    async fn select_results(
        &self,
        request: Request<us::ResultsRequest>,
    ) -> R<BoxStream<us::ResultsResponse>> {
        let id = request.get_ref().swarm_id.clone();
        // No task has run, so a visible swarm has no results yet: an empty stream.
        act(
            &self.core,
            &request,
            &path("SelectResults"),
            &id.clone(),
            move |core, who| core.platform().swarm(&Viewer::of(who), &id).map(drop),
        )
        .await?;
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }

    async fn list_result_tags(&self, request: Request<StrId>) -> R<us::Tags> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            &request,
            &path("ListResultTags"),
            &id.clone(),
            move |core, who| core.platform().swarm(&Viewer::of(who), &id).map(drop),
        )
        .await?;
        Ok(Response::new(us::Tags::default()))
    }

    async fn initialize_global(
        &self,
        request: Request<tonic::Streaming<Global>>,
    ) -> R<manta_proto::common::system::Response> {
        let who = caller(&request)?;
        let mut stream = request.into_inner();
        while let Some(item) = stream.next().await {
            let global = item?;
            let who = who.clone();
            run(&self.core, move |core| {
                let swarm = global.swarm_id.unwrap_or_default();
                core.platform()
                    .set_global(&Viewer::of(&who), &swarm, &global.tag, &global.data)
                    .map(drop)
            })
            .await?;
        }
        // The published SDK decodes `common.system.Response` here (docs/protocol.md).
        Ok(Response::new(manta_proto::common::system::Response {
            message: "globals initialized".into(),
        }))
    }

    async fn list_global_tags(&self, request: Request<StrId>) -> R<us::Tags> {
        let id = request.get_ref().id.clone();
        let tags = act(
            &self.core,
            &request,
            &path("ListGlobalTags"),
            &id.clone(),
            move |core, who| core.platform().global_tags(&Viewer::of(who), &id),
        )
        .await?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "sizes are reported in GB as f32"
        )]
        let gb_usage_per_tag = tags
            .into_iter()
            .map(|(tag, bytes)| (tag, (bytes as f64 / GB) as f32))
            .collect();
        Ok(Response::new(us::Tags { gb_usage_per_tag }))
    }

    async fn initialize_networks(&self, request: Request<Networks>) -> R<Reply> {
        let body = request.get_ref().clone();
        let resource = body
            .swarm_id
            .as_ref()
            .map(crate::platform::pair_to_hex)
            .unwrap_or_default();
        act(
            &self.core,
            &request,
            &path("InitializeNetworks"),
            &resource,
            move |core, who| core.platform().initialize_networks(&Viewer::of(who), &body),
        )
        .await?;
        Ok(Response::new(Reply {
            message: "networks initialized".into(),
        }))
    }
}
