//! Wire compatibility with the published Manta platform: representative messages are encoded
//! and compared with protobuf bytes computed by hand from the published field numbers
//! (`../shared/reference/manta-wire/`), and decoded back. A renumbered field, a changed type
//! or a lost `optional` makes these fail even when the generated code is fresh.

use manta_proto::common::informations::{NodeOverview, PlatformInfo, Registration};
use manta_proto::common::permissions::{UserAuthorization, UserPermission};
use manta_proto::common::swarms::Graph;
use manta_proto::common::system::{Jwt, PairId};
use manta_proto::common::tasks::Task;
use manta_proto::common::user::{User, UserStatus};
use manta_proto::core::user_services::SendSwarmRequest;
use prost::Message;

/// Encodes `message`, compares with `expected`, and decodes `expected` back into `message`.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M, expected: &[u8]) {
    let bytes = message.encode_to_vec();
    assert_eq!(hex(&bytes), hex(expected), "encoding of {message:?}");
    let decoded = M::decode(expected).expect("hand-computed bytes decode");
    assert_eq!(&decoded, message);
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn user_with_authorization() {
    let user = User {
        user_id: "ab".into(),
        username: "ann".into(),
        token: Some("t".into()),
        created_at: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        status: UserStatus::Active as i32,
        authorization: Some(UserAuthorization {
            user_id: "ab".into(),
            permissions: vec![
                UserPermission::UserRead as i32,
                UserPermission::ClusterRead as i32,
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x02, b'a', b'b',             // 1 user_id
        0x12, 0x03, b'a', b'n', b'n',       // 2 username
        0x22, 0x01, b't',                   // 4 token (optional)
        0x2a, 0x02, 0x08, 0x01,             // 5 created_at { seconds: 1 }
        0x68, 0x01,                         // 13 status = ACTIVE (varint)
        0x72, 0x08,                         // 14 authorization, 8 bytes
            0x0a, 0x02, b'a', b'b',         //   1 user_id
            0x12, 0x02, 0x01, 0x0b,         //   2 permissions, packed: USER_READ=1, CLUSTER_READ=11
    ];
    check(&user, &expected);
}

#[test]
fn permission_enum_values_match_published_numbers() {
    let cases = [
        (UserPermission::UserCreate, 0),
        (UserPermission::UserList, 4),
        (UserPermission::ClusterCreate, 10),
        (UserPermission::ClusterStop, 16),
        (UserPermission::SwarmDeploy, 25),
        (UserPermission::SwarmStop, 26),
        (UserPermission::ModuleUpload, 35),
        (UserPermission::NodeList, 44),
        (UserPermission::RoleDelete, 48),
    ];
    for (permission, number) in cases {
        assert_eq!(permission as i32, number, "{permission:?}");
    }
}

#[test]
fn jwt() {
    check(&Jwt { token: "x".into() }, &[0x0a, 0x01, b'x']);
}

#[test]
fn registration_with_extensions() {
    let registration = Registration {
        mqtt_broker_host: "h".into(),
        mqtt_broker_port: 1883,
        mqtt_topics: vec!["t".into()],
        node_token: Some("n".into()),
        cluster_id: Some("c".into()),
        node_id: Some("i".into()),
        heartbeat_interval_seconds: Some(5),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'h',                   // 1 mqtt_broker_host
        0x10, 0xdb, 0x0e,                   // 2 mqtt_broker_port = 1883 (varint)
        0x1a, 0x01, b't',                   // 3 mqtt_topics
        0x22, 0x01, b'n',                   // 4 node_token (optional)
        0x2a, 0x01, b'c',                   // 5 cluster_id (optional)
        0xa2, 0x06, 0x01, b'i',             // 100 node_id (extension)
        0xa8, 0x06, 0x05,                   // 101 heartbeat_interval_seconds (extension)
    ];
    check(&registration, &expected);
}

#[test]
fn node_overview_with_extensions() {
    let overview = NodeOverview {
        platform_info: Some(PlatformInfo {
            hostname: "h".into(),
            ..Default::default()
        }),
        alias: Some("w".into()),
        requested_node_id: Some("w".into()),
        random_id: Some(false),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x03, 0x32, 0x01, b'h',       // 1 platform_info { 6 hostname }
        0xa2, 0x06, 0x01, b'w',             // 100 alias (extension)
        0xaa, 0x06, 0x01, b'w',             // 101 requested_node_id (extension)
        0xb0, 0x06, 0x00,                   // 102 random_id = false, present (extension)
    ];
    check(&overview, &expected);
}

#[test]
fn send_swarm_request() {
    let request = SendSwarmRequest {
        graph: Some(Graph {
            tasks: vec![Task {
                task_id: Some(PairId { head: 1, tail: 2 }),
                order: 3,
                alias: "a".into(),
                ..Default::default()
            }],
        }),
        name: "s".into(),
        cluster_id: "c".into(),
        max_iteration: Some(5),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x0d,                         // 1 graph, 13 bytes
            0x0a, 0x0b,                     //   1 tasks[0], 11 bytes
                0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, // 1 task_id { head: 1, tail: 2 }
                0x38, 0x03,                 //     7 order = 3
                0x4a, 0x01, b'a',           //     9 alias
        0x12, 0x01, b's',                   // 2 name
        0x1a, 0x01, b'c',                   // 3 cluster_id
        0x20, 0x05,                         // 4 max_iteration (optional)
    ];
    check(&request, &expected);
}

#[test]
fn grpc_paths_are_the_published_ones() {
    use manta_proto::core::user_services::user_management_server::UserManagementServer;
    use manta_proto::node::node_service::node_service_server::NodeServiceServer;
    use tonic::server::NamedService;
    assert_eq!(
        <UserManagementServer<()> as NamedService>::NAME,
        "core.user_services.UserManagement"
    );
    assert_eq!(
        <NodeServiceServer<()> as NamedService>::NAME,
        "node.node_service.NodeService"
    );
}

#[test]
fn descriptor_set_names_every_service() {
    let set = prost_types::FileDescriptorSet::decode(manta_proto::FILE_DESCRIPTOR_SET).unwrap();
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            f.service
                .iter()
                .map(move |s| format!("{}.{}", f.package(), s.name()))
        })
        .collect();
    for expected in [
        "core.user_services.UserManagement",
        "core.user_services.ClusterManagement",
        "core.user_services.SwarmManagement",
        "core.user_services.ModuleManagement",
        "core.user_services.NetworkManagement",
        "node.node_service.NodeService",
        "manta.v1.TokenService",
        "manta.v1.NodeSession",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} missing from {services:?}"
        );
    }
}
