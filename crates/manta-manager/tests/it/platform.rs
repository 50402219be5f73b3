//! Swarms and modules over the wire, in the order the SDK's `deploy_swarm` sends them, with the
//! scope rules and the NOT_FOUND rule for other users' resources.

use manta_proto::common::results::Global;
use manta_proto::common::swarms::Graph;
use manta_proto::common::system::{Networks, PairId, StopSwarmRequest, StrId};
use manta_proto::common::tasks::{Module, Task};
use manta_proto::core::user_services::cluster_management_client::ClusterManagementClient;
use manta_proto::core::user_services::module_management_client::ModuleManagementClient;
use manta_proto::core::user_services::swarm_management_client::SwarmManagementClient;
use manta_proto::core::user_services::{
    CreateClusterRequest, NetworkConfig, ResultsRequest, SendSwarmRequest,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{Manager, ManagerExt as _, authed};

/// The SDK's `PairId` of a 32-hex id.
fn pair(id: &str) -> PairId {
    let v = u128::from_str_radix(id, 16).unwrap();
    PairId {
        head: u64::try_from(v >> 64).unwrap(),
        tail: u64::try_from(v & u128::from(u64::MAX)).unwrap(),
    }
}

fn str_id(id: &str) -> StrId {
    StrId { id: id.to_owned() }
}

struct Clients {
    clusters: ClusterManagementClient<Channel>,
    modules: ModuleManagementClient<Channel>,
    swarms: SwarmManagementClient<Channel>,
}

async fn clients(m: &Manager) -> Clients {
    let ch = m.channel().await;
    Clients {
        clusters: ClusterManagementClient::new(ch.clone()),
        modules: ModuleManagementClient::new(ch.clone()),
        swarms: SwarmManagementClient::new(ch),
    }
}

fn request(cluster: &str, module: &str) -> SendSwarmRequest {
    SendSwarmRequest {
        graph: Some(Graph {
            tasks: vec![Task {
                task_id: Some(PairId { head: 0, tail: 1 }),
                module_id: Some(pair(module)),
                alias: "worker".into(),
                ..Task::default()
            }],
        }),
        name: "fl".into(),
        cluster_id: cluster.into(),
        ..SendSwarmRequest::default()
    }
}

#[tokio::test]
async fn deploy_swarm_sequence_records_an_active_swarm_and_scopes_are_enforced() {
    let m = Manager::start().await;
    let deployer = [
        "cluster:read",
        "cluster:write",
        "module:upload",
        "swarm:deploy",
        "swarm:read",
    ];
    m.add_user(
        "dana",
        "password1",
        &[&deployer[..], &["results:read", "swarm:stop"]].concat(),
    );
    let dana = m.token("dana", &deployer);
    let no_deploy = m.token("dana", &["cluster:read", "module:upload", "swarm:read"]);
    let mut c = clients(&m).await;

    let cluster = c
        .clusters
        .create_cluster(authed(
            CreateClusterRequest {
                name: Some("lab".into()),
            },
            &dana,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    // SendModule: a 32-hex id, as the SDK turns it into a PairId.
    let module = c
        .modules
        .send_module(authed(
            Module {
                python_program: b"PK\x03\x04zip".to_vec(),
                image: "python:3.11".into(),
                name: "worker".into(),
                ..Module::default()
            },
            &dana,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert_eq!(module.len(), 32);
    assert!(module.bytes().all(|b| b.is_ascii_hexdigit()));

    // Without swarm:deploy the swarm is refused before anything is stored.
    let err = c
        .swarms
        .send_swarm(authed(request(&cluster, &module), &no_deploy))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("swarm:deploy"), "{}", err.message());

    // network_id and network_config together are refused.
    let mut both = request(&cluster, &module);
    both.network_id = Some("wg-x".into());
    both.network_config = Some(NetworkConfig::default());
    let err = c.swarms.send_swarm(authed(both, &dana)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("mutually exclusive"),
        "{}",
        err.message()
    );

    // A task naming a module nobody uploaded is refused with what to do.
    let err = c
        .swarms
        .send_swarm(authed(request(&cluster, &"f".repeat(32)), &dana))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("SendModule"), "{}", err.message());

    let swarm = c
        .swarms
        .send_swarm(authed(request(&cluster, &module), &dana))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(swarm.swarm_id.len(), 32);
    assert_eq!(swarm.status, 0, "pending until started");
    assert_eq!(swarm.cluster_id, cluster);

    // InitializeGlobal (client stream) and InitializeNetworks, as deploy_swarm sends them.
    let global = Global {
        swarm_id: Some(pair(&swarm.swarm_id)),
        tag: "weights".into(),
        data: vec![7; 1000],
    };
    c.swarms
        .initialize_global(authed(tokio_stream::iter([global]), &dana))
        .await
        .unwrap();
    c.swarms
        .initialize_networks(authed(
            Networks {
                swarm_id: Some(pair(&swarm.swarm_id)),
                networks: Vec::new(),
            },
            &dana,
        ))
        .await
        .unwrap();
    let err = c
        .swarms
        .start_swarm(authed(str_id(&swarm.swarm_id), &no_deploy))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    c.swarms
        .start_swarm(authed(str_id(&swarm.swarm_id), &dana))
        .await
        .unwrap();
    let got = c
        .swarms
        .get_swarm(authed(str_id(&swarm.swarm_id), &dana))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, 1, "active after StartSwarm");
    assert!(got.last_start.is_some());

    // Results: reading needs results:read; a visible swarm has none yet.
    let err = c
        .swarms
        .select_results(authed(
            ResultsRequest {
                swarm_id: swarm.swarm_id.clone(),
                ..ResultsRequest::default()
            },
            &dana,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("results:read"), "{}", err.message());
    let reader = m.token("dana", &["results:read", "swarm:stop", "swarm:read"]);
    let results: Vec<_> = c
        .swarms
        .select_results(authed(
            ResultsRequest {
                swarm_id: swarm.swarm_id.clone(),
                ..ResultsRequest::default()
            },
            &reader,
        ))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(results.is_empty());
    let tags = c
        .swarms
        .list_global_tags(authed(str_id(&swarm.swarm_id), &reader))
        .await
        .unwrap()
        .into_inner()
        .gb_usage_per_tag;
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["weights"]);

    // Another user cannot see the swarm: NOT_FOUND, like an id that does not exist.
    m.add_user("eve", "password1", &["swarm:read", "swarm:stop"]);
    let eve = m.token("eve", &["swarm:read", "swarm:stop"]);
    let err = c
        .swarms
        .get_swarm(authed(str_id(&swarm.swarm_id), &eve))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .swarms
        .stop_swarm(authed(
            StopSwarmRequest {
                swarm_id: swarm.swarm_id.clone(),
                force: false,
                remove: false,
            },
            &eve,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let ids = c
        .swarms
        .list_swarm_ids(authed(manta_proto::common::system::Empty {}, &eve))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert!(ids.is_empty());

    // The owner stops, then removes it.
    c.swarms
        .stop_swarm(authed(
            StopSwarmRequest {
                swarm_id: swarm.swarm_id.clone(),
                force: false,
                remove: false,
            },
            &reader,
        ))
        .await
        .unwrap();
    let got = c
        .swarms
        .get_swarm(authed(str_id(&swarm.swarm_id), &reader))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, 3, "stopped");
    c.swarms
        .remove_swarm(authed(str_id(&swarm.swarm_id), &reader))
        .await
        .unwrap();
    let err = c
        .swarms
        .get_swarm(authed(StrId { id: swarm.swarm_id }, &reader))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn a_stopped_cluster_starts_no_swarm() {
    let m = Manager::start().await;
    m.add_user("root", "password1", &["admin:*"]);
    let admin = m.token("root", &["admin:*"]);
    let mut c = clients(&m).await;
    let cluster = c
        .clusters
        .create_cluster(authed(CreateClusterRequest { name: None }, &admin))
        .await
        .unwrap()
        .into_inner()
        .id;
    let module = c
        .modules
        .send_module(authed(Module::default(), &admin))
        .await
        .unwrap()
        .into_inner()
        .id;
    let swarm = c
        .swarms
        .send_swarm(authed(request(&cluster, &module), &admin))
        .await
        .unwrap()
        .into_inner();
    c.clusters
        .stop_cluster(authed(StrId { id: cluster }, &admin))
        .await
        .unwrap();
    let err = c
        .swarms
        .start_swarm(authed(StrId { id: swarm.swarm_id }, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("start the cluster"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn the_seeds_cluster_create_scope_creates_clusters_and_nothing_more() {
    // The seed: `if 'cluster:create' in permissions: print("User can create clusters")`.
    // CreateCluster required `cluster:write`, so a user granted `cluster:create` could not.
    let m = Manager::start().await;
    m.add_user("erin", "password1", &["cluster:create", "cluster:read"]);
    let erin = m.token("erin", &["cluster:create", "cluster:read"]);
    let mut c = clients(&m).await;
    let id = c
        .clusters
        .create_cluster(authed(
            CreateClusterRequest {
                name: Some("lab".into()),
            },
            &erin,
        ))
        .await
        .expect("cluster:create creates a cluster")
        .into_inner()
        .id;
    // Starting it is `cluster:write`, which `cluster:create` does not cover.
    let start = c
        .clusters
        .start_cluster(authed(StrId { id: id.clone() }, &erin))
        .await
        .unwrap_err();
    assert_eq!(start.code(), Code::PermissionDenied, "{start:?}");
    assert!(
        start.message().contains("cluster:write"),
        "{}",
        start.message()
    );
}
