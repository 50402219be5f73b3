//! The published services' methods this manager does not serve yet: each answers
//! UNIMPLEMENTED with a message naming the method, so a client learns what is missing instead
//! of timing out. Generated from the tonic traits; the bodies are identical on purpose.

use manta_proto::common::system::{Empty, Ok as NodeOk, Response as Reply};
use tonic::{Request, Response, Status};

use super::{BoxStream, not_served};

/// Every method of ClusterManagement, SwarmManagement, ModuleManagement, NetworkManagement and
/// NodeService answered as not served (NetworkManagement serves only `IsAvailable`, which the
/// SDK's `is_available()` calls on all five services). The cluster, swarm, module and node
/// services (`cluster.rs`, `swarm.rs`, `module.rs`, `node.rs`) delegate the methods they do
/// not serve yet to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unserved;

fn available() -> Result<Response<Reply>, Status> {
    Ok(Response::new(Reply {
        message: "available".into(),
    }))
}

#[tonic::async_trait]
impl manta_proto::core::user_services::cluster_management_server::ClusterManagement for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        available()
    }
    async fn create_cluster(
        &self,
        _request: Request<manta_proto::core::user_services::CreateClusterRequest>,
    ) -> Result<Response<manta_proto::common::system::StrId>, Status> {
        Err(not_served("ClusterManagement", "CreateCluster"))
    }
    async fn start_cluster(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::common::cluster::Cluster>, Status> {
        Err(not_served("ClusterManagement", "StartCluster"))
    }
    async fn stop_cluster(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("ClusterManagement", "StopCluster"))
    }
    async fn delete_cluster(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("ClusterManagement", "DeleteCluster"))
    }
    async fn list_cluster_ids(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<manta_proto::common::system::CollectionIds>, Status> {
        Err(not_served("ClusterManagement", "ListClusterIds"))
    }
    type StreamClustersStream = BoxStream<manta_proto::common::cluster::Cluster>;
    async fn stream_clusters(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::StreamClustersStream>, Status> {
        Err(not_served("ClusterManagement", "StreamClusters"))
    }
    async fn get_cluster(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::common::cluster::Cluster>, Status> {
        Err(not_served("ClusterManagement", "GetCluster"))
    }
    async fn update_cluster_runtime(
        &self,
        _request: Request<manta_proto::core::user_services::UpdateClusterRuntimeRequest>,
    ) -> Result<Response<manta_proto::common::cluster::Cluster>, Status> {
        Err(not_served("ClusterManagement", "UpdateClusterRuntime"))
    }
    async fn list_node_ids(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::common::system::CollectionIds>, Status> {
        Err(not_served("ClusterManagement", "ListNodeIds"))
    }
    type StreamNodesStream = BoxStream<manta_proto::common::informations::Node>;
    async fn stream_nodes(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Self::StreamNodesStream>, Status> {
        Err(not_served("ClusterManagement", "StreamNodes"))
    }
    async fn stop_node(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("ClusterManagement", "StopNode"))
    }
    async fn remove_node(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("ClusterManagement", "RemoveNode"))
    }
    async fn update_node_software(
        &self,
        _request: Request<manta_proto::core::user_services::UpdateNodeSoftwareRequest>,
    ) -> Result<Response<manta_proto::common::informations::Node>, Status> {
        Err(not_served("ClusterManagement", "UpdateNodeSoftware"))
    }
    type StreamNodeUpdateHistoryStream =
        BoxStream<manta_proto::common::informations::NodeUpdateAction>;
    async fn stream_node_update_history(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Self::StreamNodeUpdateHistoryStream>, Status> {
        Err(not_served("ClusterManagement", "StreamNodeUpdateHistory"))
    }
    async fn list_node_software_versions(
        &self,
        _request: Request<manta_proto::core::user_services::ListNodeSoftwareVersionsRequest>,
    ) -> Result<Response<manta_proto::core::user_services::ListNodeSoftwareVersionsResponse>, Status>
    {
        Err(not_served("ClusterManagement", "ListNodeSoftwareVersions"))
    }
    async fn get_node(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<manta_proto::common::informations::Node>, Status> {
        Err(not_served("ClusterManagement", "GetNode"))
    }
    async fn get_node_resources(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<manta_proto::common::informations::MetricsSnapshot>, Status> {
        Err(not_served("ClusterManagement", "GetNodeResources"))
    }
    type StreamNodeResourcesStream = BoxStream<manta_proto::common::informations::MetricsSnapshot>;
    async fn stream_node_resources(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Self::StreamNodeResourcesStream>, Status> {
        Err(not_served("ClusterManagement", "StreamNodeResources"))
    }
    async fn list_available_node_ids(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::common::system::CollectionIds>, Status> {
        Err(not_served("ClusterManagement", "ListAvailableNodeIds"))
    }
    type CollectErrorsStream = BoxStream<manta_proto::common::system::Error>;
    async fn collect_errors(
        &self,
        _request: Request<manta_proto::core::user_services::ErrorsRequest>,
    ) -> Result<Response<Self::CollectErrorsStream>, Status> {
        Err(not_served("ClusterManagement", "CollectErrors"))
    }
    type SelectTasksStream = BoxStream<manta_proto::core::user_services::TaskResponse>;
    async fn select_tasks(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Self::SelectTasksStream>, Status> {
        Err(not_served("ClusterManagement", "SelectTasks"))
    }
    type StreamNodeTaskStatusesStream =
        BoxStream<manta_proto::core::user_services::TaskStatusResponse>;
    async fn stream_node_task_statuses(
        &self,
        _request: Request<manta_proto::core::user_services::NodeRequest>,
    ) -> Result<Response<Self::StreamNodeTaskStatusesStream>, Status> {
        Err(not_served("ClusterManagement", "StreamNodeTaskStatuses"))
    }
}

#[tonic::async_trait]
impl manta_proto::core::user_services::swarm_management_server::SwarmManagement for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        available()
    }
    async fn send_swarm(
        &self,
        _request: Request<manta_proto::core::user_services::SendSwarmRequest>,
    ) -> Result<Response<manta_proto::common::swarms::Swarm>, Status> {
        Err(not_served("SwarmManagement", "SendSwarm"))
    }
    async fn list_swarm_ids(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<manta_proto::common::system::CollectionIds>, Status> {
        Err(not_served("SwarmManagement", "ListSwarmIds"))
    }
    type StreamSwarmsStream = BoxStream<manta_proto::common::swarms::Swarm>;
    async fn stream_swarms(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::StreamSwarmsStream>, Status> {
        Err(not_served("SwarmManagement", "StreamSwarms"))
    }
    type StreamSwarmStream = BoxStream<manta_proto::common::swarms::Swarm>;
    async fn stream_swarm(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Self::StreamSwarmStream>, Status> {
        Err(not_served("SwarmManagement", "StreamSwarm"))
    }
    async fn get_swarm(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::common::swarms::Swarm>, Status> {
        Err(not_served("SwarmManagement", "GetSwarm"))
    }
    type StreamSwarmTasksStream = BoxStream<manta_proto::core::user_services::TaskResponse>;
    async fn stream_swarm_tasks(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Self::StreamSwarmTasksStream>, Status> {
        Err(not_served("SwarmManagement", "StreamSwarmTasks"))
    }
    type StreamSwarmTaskStatusesStream =
        BoxStream<manta_proto::core::user_services::TaskStatusResponse>;
    async fn stream_swarm_task_statuses(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Self::StreamSwarmTaskStatusesStream>, Status> {
        Err(not_served("SwarmManagement", "StreamSwarmTaskStatuses"))
    }
    async fn start_swarm(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("SwarmManagement", "StartSwarm"))
    }
    async fn stop_swarm(
        &self,
        _request: Request<manta_proto::common::system::StopSwarmRequest>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("SwarmManagement", "StopSwarm"))
    }
    async fn remove_swarm(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("SwarmManagement", "RemoveSwarm"))
    }
    type SelectResultsStream = BoxStream<manta_proto::core::user_services::ResultsResponse>;
    async fn select_results(
        &self,
        _request: Request<manta_proto::core::user_services::ResultsRequest>,
    ) -> Result<Response<Self::SelectResultsStream>, Status> {
        Err(not_served("SwarmManagement", "SelectResults"))
    }
    type StreamResultsStream = BoxStream<manta_proto::core::user_services::ResultsResponse>;
    async fn stream_results(
        &self,
        _request: Request<manta_proto::core::user_services::ResultsRequest>,
    ) -> Result<Response<Self::StreamResultsStream>, Status> {
        Err(not_served("SwarmManagement", "StreamResults"))
    }
    async fn delete_results(
        &self,
        _request: Request<manta_proto::core::user_services::DeleteResultsRequest>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("SwarmManagement", "DeleteResults"))
    }
    async fn list_result_tags(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::core::user_services::Tags>, Status> {
        Err(not_served("SwarmManagement", "ListResultTags"))
    }
    type CollectLogsStream = BoxStream<manta_proto::core::user_services::LogResponse>;
    async fn collect_logs(
        &self,
        _request: Request<manta_proto::core::user_services::LogQuery>,
    ) -> Result<Response<Self::CollectLogsStream>, Status> {
        Err(not_served("SwarmManagement", "CollectLogs"))
    }
    type StreamLogsStream = BoxStream<manta_proto::core::user_services::LogResponse>;
    async fn stream_logs(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        Err(not_served("SwarmManagement", "StreamLogs"))
    }
    async fn initialize_global(
        &self,
        _request: Request<tonic::Streaming<manta_proto::common::results::Global>>,
    ) -> Result<Response<manta_proto::common::system::Response>, Status> {
        Err(not_served("SwarmManagement", "InitializeGlobal"))
    }
    type SelectGlobalStream = BoxStream<manta_proto::core::user_services::SelectGlobalResponse>;
    async fn select_global(
        &self,
        _request: Request<manta_proto::core::user_services::GlobalRequest>,
    ) -> Result<Response<Self::SelectGlobalStream>, Status> {
        Err(not_served("SwarmManagement", "SelectGlobal"))
    }
    async fn list_global_tags(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::core::user_services::Tags>, Status> {
        Err(not_served("SwarmManagement", "ListGlobalTags"))
    }
    async fn initialize_networks(
        &self,
        _request: Request<manta_proto::common::system::Networks>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("SwarmManagement", "InitializeNetworks"))
    }
}

#[tonic::async_trait]
impl manta_proto::core::user_services::module_management_server::ModuleManagement for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        available()
    }
    async fn send_module(
        &self,
        _request: Request<manta_proto::common::tasks::Module>,
    ) -> Result<Response<manta_proto::common::system::StrId>, Status> {
        Err(not_served("ModuleManagement", "SendModule"))
    }
    async fn list_module_ids(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<manta_proto::common::system::CollectionIds>, Status> {
        Err(not_served("ModuleManagement", "ListModuleIds"))
    }
    type StreamModulesStream = BoxStream<manta_proto::core::user_services::ModuleRequest>;
    async fn stream_modules(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::StreamModulesStream>, Status> {
        Err(not_served("ModuleManagement", "StreamModules"))
    }
    async fn get_module(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::core::user_services::ModuleRequest>, Status> {
        Err(not_served("ModuleManagement", "GetModule"))
    }
    async fn update_module(
        &self,
        _request: Request<manta_proto::core::user_services::ModuleRequest>,
    ) -> Result<Response<manta_proto::common::system::StrId>, Status> {
        Err(not_served("ModuleManagement", "UpdateModule"))
    }
    async fn remove_module(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("ModuleManagement", "RemoveModule"))
    }
}

#[tonic::async_trait]
impl manta_proto::core::user_services::network_management_server::NetworkManagement for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<Reply>, Status> {
        available()
    }
    async fn get_network_status(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<manta_proto::core::user_services::NetworkStatus>, Status> {
        Err(not_served("NetworkManagement", "GetNetworkStatus"))
    }
    async fn create_network(
        &self,
        _request: Request<manta_proto::core::user_services::CreateNetworkRequest>,
    ) -> Result<Response<manta_proto::core::user_services::NetworkStatus>, Status> {
        Err(not_served("NetworkManagement", "CreateNetwork"))
    }
    async fn list_networks(
        &self,
        _request: Request<manta_proto::core::user_services::ListNetworksRequest>,
    ) -> Result<Response<manta_proto::core::user_services::ListNetworksResponse>, Status> {
        Err(not_served("NetworkManagement", "ListNetworks"))
    }
    async fn delete_network(
        &self,
        _request: Request<manta_proto::common::system::StrId>,
    ) -> Result<Response<Reply>, Status> {
        Err(not_served("NetworkManagement", "DeleteNetwork"))
    }
}

#[tonic::async_trait]
impl manta_proto::node::node_service::node_service_server::NodeService for Unserved {
    async fn is_available(&self, _request: Request<Empty>) -> Result<Response<NodeOk>, Status> {
        Ok(Response::new(NodeOk {}))
    }
    async fn set_node_status(
        &self,
        _request: Request<manta_proto::common::informations::NodeStatus>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "SetNodeStatus"))
    }
    async fn update_task(
        &self,
        _request: Request<manta_proto::common::tasks::TaskUpdate>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "UpdateTask"))
    }
    async fn add_task_logs(
        &self,
        _request: Request<tonic::Streaming<manta_proto::common::system::Logs>>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "AddTaskLogs"))
    }
    async fn send_error(
        &self,
        _request: Request<manta_proto::common::system::Error>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "SendError"))
    }
    async fn register_node(
        &self,
        _request: Request<manta_proto::common::informations::NodeOverview>,
    ) -> Result<Response<manta_proto::common::informations::Registration>, Status> {
        Err(not_served("NodeService", "RegisterNode"))
    }
    async fn renew_node_token(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<manta_proto::common::system::Jwt>, Status> {
        Err(not_served("NodeService", "RenewNodeToken"))
    }
    async fn set_system_summary(
        &self,
        _request: Request<manta_proto::common::informations::MetricsSnapshot>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "SetSystemSummary"))
    }
    async fn set_overviews(
        &self,
        _request: Request<manta_proto::common::informations::DatasetOverviews>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "SetOverviews"))
    }
    type GetTaskResultStream = BoxStream<manta_proto::common::results::ChunkResultValues>;
    async fn get_task_result(
        &self,
        _request: Request<manta_proto::common::results::ResultQuery>,
    ) -> Result<Response<Self::GetTaskResultStream>, Status> {
        Err(not_served("NodeService", "GetTaskResult"))
    }
    async fn add_task_result(
        &self,
        _request: Request<tonic::Streaming<manta_proto::common::results::Result>>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "AddTaskResult"))
    }
    type GetGlobalStream = BoxStream<manta_proto::common::results::GlobalValue>;
    async fn get_global(
        &self,
        _request: Request<manta_proto::common::results::GlobalTag>,
    ) -> Result<Response<Self::GetGlobalStream>, Status> {
        Err(not_served("NodeService", "GetGlobal"))
    }
    async fn set_global(
        &self,
        _request: Request<tonic::Streaming<manta_proto::common::results::GlobalUpdate>>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "SetGlobal"))
    }
    async fn stop_swarm(
        &self,
        _request: Request<manta_proto::node::node_service::StopSwarmProcess>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "StopSwarm"))
    }
    async fn get_relation(
        &self,
        _request: Request<manta_proto::common::system::PairId>,
    ) -> Result<Response<manta_proto::common::system::PairId>, Status> {
        Err(not_served("NodeService", "GetRelation"))
    }
    async fn schedule_task(
        &self,
        _request: Request<manta_proto::common::tasks::TaskScheduling>,
    ) -> Result<Response<manta_proto::common::system::Ok>, Status> {
        Err(not_served("NodeService", "ScheduleTask"))
    }
    async fn register_wire_guard_node(
        &self,
        _request: Request<manta_proto::common::wireguard::RegisterWireGuardNodeRequest>,
    ) -> Result<Response<manta_proto::common::wireguard::RegisterWireGuardNodeResponse>, Status>
    {
        Err(not_served("NodeService", "RegisterWireGuardNode"))
    }
    async fn get_wire_guard_peers(
        &self,
        _request: Request<manta_proto::common::wireguard::WireGuardPeerRequest>,
    ) -> Result<Response<manta_proto::common::wireguard::WireGuardPeerList>, Status> {
        Err(not_served("NodeService", "GetWireGuardPeers"))
    }
    async fn deregister_wire_guard_node(
        &self,
        _request: Request<manta_proto::common::wireguard::DeregisterWireGuardNodeRequest>,
    ) -> Result<Response<manta_proto::common::wireguard::DeregisterWireGuardNodeResponse>, Status>
    {
        Err(not_served("NodeService", "DeregisterWireGuardNode"))
    }
    async fn update_node_endpoint(
        &self,
        _request: Request<manta_proto::common::wireguard::UpdateNodeEndpointRequest>,
    ) -> Result<Response<manta_proto::common::wireguard::UpdateNodeEndpointResponse>, Status> {
        Err(not_served("NodeService", "UpdateNodeEndpoint"))
    }
}
