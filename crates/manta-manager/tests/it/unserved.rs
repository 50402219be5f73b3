//! Methods this manager does not serve: a real tonic client on 127.0.0.1:0 gets
//! UNIMPLEMENTED with a message that names the method and what is served on that service.

use manta_proto::common::system::StrId;
use manta_proto::core::contexts::platform::resources::resource_management_client::ResourceManagementClient;
use manta_proto::core::user_services::module_management_client::ModuleManagementClient;
use manta_proto::core::user_services::network_management_client::NetworkManagementClient;
use manta_proto::core::user_services::{ListNetworksRequest, ListRoleDefinitionsRequest};
use tonic::Code;

use crate::harness::{Manager, ManagerExt as _, authed};

/// Asserts an UNIMPLEMENTED answer whose message names `method` and lists `serves`.
fn check(status: &tonic::Status, method: &str, serves: &str) {
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let m = status.message();
    assert!(m.contains(method), "{m}");
    assert!(m.contains(serves), "{m}");
    assert!(m.contains("use a full Manta deployment"), "{m}");
    assert!(
        !m.contains("it serves users, tokens and authorization"),
        "{m}"
    );
    assert!(!m.contains("Not yet implemented"), "{m}");
}

#[tokio::test]
async fn unserved_methods_name_what_the_service_serves() {
    let m = Manager::start().await;
    m.add_user("root", "password1", &["admin:*"]);
    let t = m.token("root", &["admin:*"]);

    let err = m
        .users()
        .await
        .list_role_definitions(authed(ListRoleDefinitionsRequest::default(), &t))
        .await
        .unwrap_err();
    check(
        &err,
        "UserManagement/ListRoleDefinitions",
        "serves IsAvailable, SignIn, Logout, GetUser, RefreshUserToken",
    );

    let err = ModuleManagementClient::new(m.channel().await)
        .update_module(authed(Default::default(), &t))
        .await
        .unwrap_err();
    check(
        &err,
        "ModuleManagement/UpdateModule",
        "serves IsAvailable, SendModule, GetModule of ModuleManagement",
    );

    let err = NetworkManagementClient::new(m.channel().await)
        .list_networks(authed(ListNetworksRequest::default(), &t))
        .await
        .unwrap_err();
    check(
        &err,
        "NetworkManagement/ListNetworks",
        "serves IsAvailable of NetworkManagement",
    );

    // ResourceManagement is not registered at all: the router's bare answer gets a message.
    let err = ResourceManagementClient::new(m.channel().await)
        .get_resource(authed(StrId { id: "r".into() }, &t))
        .await
        .unwrap_err();
    check(
        &err,
        "ResourceManagement/GetResource",
        "serves no method of ResourceManagement",
    );
    m.stop().await;
}
