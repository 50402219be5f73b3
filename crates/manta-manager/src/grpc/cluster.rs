//! `core.user_services.ClusterManagement`: clusters with their node bootstrap token, and the
//! registered nodes of a cluster with liveness. Node software updates, metrics, errors and
//! tasks answer UNIMPLEMENTED until scheduling lands.

use std::sync::Arc;

use manta_proto::common::cluster::Cluster;
use manta_proto::common::informations::{Node, NodeStatusEnum};
use manta_proto::common::system::{CollectionIds, Empty, Response as Reply, StrId};
use manta_proto::core::user_services as us;
use manta_proto::core::user_services::cluster_management_server::ClusterManagement;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};

use super::{BoxStream, act, caller, run, ts};
use crate::identity::{Caller, Core};
use crate::platform::Viewer;
use crate::registry::{NodeView, Registry};
use crate::store::ClusterRecord;

const CM: &str = "/core.user_services.ClusterManagement/";

/// The scope that lets a caller see a cluster's bootstrap token in `jwt_token`.
const MANAGE: &str = "cluster:write";

/// The published `Cluster` message; `jwt_token` carries a fresh bootstrap token only for
/// callers who may manage the cluster.
pub(crate) fn cluster_message(
    core: &Core,
    c: &ClusterRecord,
    caller: &Caller,
) -> Result<Cluster, crate::Error> {
    let jwt_token = if caller.has(MANAGE) {
        core.platform()
            .bootstrap_token(c, None)?
            .expose_secret()
            .to_owned()
    } else {
        String::new()
    };
    Ok(Cluster {
        cluster_id: c.id.clone(),
        owner_id: c.owner_id.clone(),
        name: c.name.clone(),
        created_at: Some(ts(c.created_at)),
        updated_at: Some(ts(c.updated_at)),
        users: c.users.clone(),
        status: c.status,
        last_start: c.last_start.map(ts),
        last_stop: c.last_stop.map(ts),
        node_host: String::new(),
        node_port: 0,
        jwt_token,
        authorization: None,
        managed_versions: Vec::new(),
        version_state: None,
    })
}

/// The published `Node` message with liveness as CONNECTED or DISCONNECTED.
pub(crate) fn node_message(view: &NodeView) -> Node {
    let overview = Registry::overview(&view.record);
    Node {
        node_id: Some(view.record.id.clone()),
        status: if view.online {
            NodeStatusEnum::Connected as i32
        } else {
            NodeStatusEnum::Disconnected as i32
        },
        dataset_overviews: overview.dataset_overviews,
        platform_info: overview.platform_info,
        metrics_snapshot: None,
        created_at: Some(ts(view.record.registered_at)),
        updated_at: Some(ts(view.last_seen.unwrap_or(view.record.updated_at))),
        node_package_version: overview.node_package_version,
        node_build_version: overview.node_build_version,
        common_core_version: overview.common_core_version,
        chosen_node_package_version: None,
        update_path: overview.update_path,
        latest_update_outcome: None,
    }
}

/// The ClusterManagement service.
#[derive(Debug, Clone)]
pub struct ClusterApi {
    core: Arc<Core>,
}

impl ClusterApi {
    /// The service over an engine.
    pub fn new(core: Arc<Core>) -> Self {
        ClusterApi { core }
    }
}

type R<T> = Result<Response<T>, Status>;

impl ClusterApi {
    /// The nodes of a cluster the caller may see, with the decision audited as `method`.
    async fn cluster_nodes(
        &self,
        request: &Request<StrId>,
        method: &str,
    ) -> Result<Vec<NodeView>, Status> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            request,
            &format!("{CM}{method}"),
            &id.clone(),
            move |core, who| {
                let c = core.platform().cluster(&Viewer::of(who), &id)?;
                core.platform().registry().list(Some(&c.id))
            },
        )
        .await
    }

    /// The node ids of a cluster; with `online_only`, of those heartbeating.
    async fn node_ids(
        &self,
        request: Request<StrId>,
        method: &str,
        online_only: bool,
    ) -> R<CollectionIds> {
        let ids = self
            .cluster_nodes(&request, method)
            .await?
            .into_iter()
            .filter(|n| n.online || !online_only)
            .map(|n| n.record.id)
            .collect();
        Ok(Response::new(CollectionIds { ids }))
    }
}

#[tonic::async_trait]
impl ClusterManagement for ClusterApi {
    async fn is_available(&self, _request: Request<Empty>) -> R<Reply> {
        Ok(Response::new(Reply {
            message: "available".into(),
        }))
    }

    async fn create_cluster(&self, request: Request<us::CreateClusterRequest>) -> R<StrId> {
        let name = request
            .get_ref()
            .name
            .clone()
            .unwrap_or_else(|| "cluster".into());
        let c = act(
            &self.core,
            &request,
            &format!("{CM}CreateCluster"),
            "new cluster",
            move |core, who| core.platform().create_cluster(&who.user_id, &name),
        )
        .await?;
        Ok(Response::new(StrId { id: c.id }))
    }

    async fn start_cluster(&self, request: Request<StrId>) -> R<Cluster> {
        let id = request.get_ref().id.clone();
        let c = act(
            &self.core,
            &request,
            &format!("{CM}StartCluster"),
            &id.clone(),
            move |core, who| {
                let c = core
                    .platform()
                    .set_cluster_running(&Viewer::of(who), &id, true)?;
                cluster_message(core, &c, who)
            },
        )
        .await?;
        Ok(Response::new(c))
    }

    async fn stop_cluster(&self, request: Request<StrId>) -> R<Reply> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            &request,
            &format!("{CM}StopCluster"),
            &id.clone(),
            move |core, who| {
                core.platform()
                    .set_cluster_running(&Viewer::of(who), &id, false)
            },
        )
        .await?;
        Ok(Response::new(Reply {
            message: "cluster stopped".into(),
        }))
    }

    async fn delete_cluster(&self, request: Request<StrId>) -> R<Reply> {
        let id = request.get_ref().id.clone();
        act(
            &self.core,
            &request,
            &format!("{CM}DeleteCluster"),
            &id.clone(),
            move |core, who| core.platform().delete_cluster(&Viewer::of(who), &id),
        )
        .await?;
        Ok(Response::new(Reply {
            message: "cluster deleted".into(),
        }))
    }

    async fn list_cluster_ids(&self, request: Request<Empty>) -> R<CollectionIds> {
        let who = caller(&request)?;
        let ids = run(&self.core, move |core| {
            Ok(core
                .platform()
                .clusters(&Viewer::of(&who))?
                .into_iter()
                .map(|c| c.id)
                .collect())
        })
        .await?;
        Ok(Response::new(CollectionIds { ids }))
    }

    async fn stream_clusters(&self, request: Request<Empty>) -> R<BoxStream<Cluster>> {
        let who = caller(&request)?;
        let clusters = run(&self.core, move |core| {
            core.platform()
                .clusters(&Viewer::of(&who))?
                .iter()
                .map(|c| cluster_message(core, c, &who))
                .collect::<crate::Result<Vec<_>>>()
        })
        .await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            clusters.into_iter().map(Ok),
        ))))
    }

    async fn get_cluster(&self, request: Request<StrId>) -> R<Cluster> {
        let id = request.get_ref().id.clone();
        let c = act(
            &self.core,
            &request,
            &format!("{CM}GetCluster"),
            &id.clone(),
            move |core, who| {
                let c = core.platform().cluster(&Viewer::of(who), &id)?;
                cluster_message(core, &c, who)
            },
        )
        .await?;
        Ok(Response::new(c))
    }

    async fn list_node_ids(&self, request: Request<StrId>) -> R<CollectionIds> {
        self.node_ids(request, "ListNodeIds", false).await
    }

    async fn stream_nodes(&self, request: Request<StrId>) -> R<BoxStream<Node>> {
        let nodes: Vec<Node> = self
            .cluster_nodes(&request, "StreamNodes")
            .await?
            .iter()
            .map(node_message)
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(
            nodes.into_iter().map(Ok),
        ))))
    }

    async fn remove_node(&self, request: Request<us::NodeRequest>) -> R<Reply> {
        let us::NodeRequest {
            cluster_id,
            node_id,
        } = request.get_ref().clone();
        act(
            &self.core,
            &request,
            &format!("{CM}RemoveNode"),
            &node_id.clone(),
            move |core, who| {
                let c = core.platform().cluster(&Viewer::of(who), &cluster_id)?;
                let registry = core.platform().registry();
                if registry.get(Some(&c.id), &node_id)?.is_none() {
                    return Err(crate::Error::NotFound {
                        kind: "node",
                        id: node_id,
                        hint: "list the cluster's nodes with ListNodeIds",
                    });
                }
                registry.remove(&node_id).map(drop)
            },
        )
        .await?;
        Ok(Response::new(Reply {
            message: "node removed; its tokens no longer work".into(),
        }))
    }

    async fn get_node(&self, request: Request<us::NodeRequest>) -> R<Node> {
        let us::NodeRequest {
            cluster_id,
            node_id,
        } = request.get_ref().clone();
        let node = act(
            &self.core,
            &request,
            &format!("{CM}GetNode"),
            &node_id.clone(),
            move |core, who| {
                let c = core.platform().cluster(&Viewer::of(who), &cluster_id)?;
                let view = core
                    .platform()
                    .registry()
                    .get(Some(&c.id), &node_id)?
                    .ok_or_else(|| crate::Error::NotFound {
                        kind: "node",
                        id: node_id,
                        hint: "list the cluster's nodes with ListNodeIds",
                    })?;
                Ok(node_message(&view))
            },
        )
        .await?;
        Ok(Response::new(node))
    }

    async fn list_available_node_ids(&self, request: Request<StrId>) -> R<CollectionIds> {
        self.node_ids(request, "ListAvailableNodeIds", true).await
    }
}
