//! Clusters and the node registry over the wire: bootstrap tokens, registration with the
//! fixed-alias rule, renewal, heartbeat and deregistration, liveness through the published
//! ClusterManagement calls, and `kill -9` during a burst of registrations.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use manta_proto::common::informations::{NodeOverview, NodeStatusEnum, PlatformInfo};
use manta_proto::common::system::{Empty, StrId};
use manta_proto::core::user_services::NodeRequest;
use manta_proto::core::user_services::cluster_management_client::ClusterManagementClient;
use manta_proto::manta::v1::node_session_client::NodeSessionClient;
use manta_proto::manta::v1::{DeregisterRequest, HeartbeatRequest};
use manta_proto::node::node_service::node_service_client::NodeServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{Manager, ManagerExt as _, authed, channel};
use crate::process::{BIN, Served, admin, kill_9_mid_burst};

pub(crate) fn overview(alias: Option<&str>, random_id: bool) -> NodeOverview {
    NodeOverview {
        platform_info: Some(PlatformInfo {
            system: "Linux".into(),
            hostname: "test-host".into(),
            ..PlatformInfo::default()
        }),
        alias: alias.map(str::to_owned),
        random_id: Some(random_id),
        ..NodeOverview::default()
    }
}

/// The decoded (unverified) payload of a JWT.
pub(crate) fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub(crate) async fn nodes(addr: SocketAddr) -> NodeServiceClient<Channel> {
    NodeServiceClient::new(channel(addr).await)
}

async fn session(addr: SocketAddr) -> NodeSessionClient<Channel> {
    NodeSessionClient::new(channel(addr).await)
}

/// A cluster owned by a fresh admin, with the admin's token and a bootstrap token.
struct Setup {
    m: Manager,
    admin: String,
    cluster: String,
    bootstrap: String,
}

async fn setup() -> Setup {
    setup_with(crate::harness::Options::default()).await
}

async fn setup_with(options: crate::harness::Options) -> Setup {
    let m = Manager::start_with(options).await;
    m.add_user("root", "password1", &["admin:*"]);
    let admin = m.token("root", &["admin:*"]);
    let mut cm = ClusterManagementClient::new(m.channel().await);
    let cluster = cm
        .create_cluster(authed(
            manta_proto::core::user_services::CreateClusterRequest {
                name: Some("lab".into()),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let got = cm
        .get_cluster(authed(
            StrId {
                id: cluster.clone(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.cluster_id, cluster);
    let bootstrap = got.jwt_token;
    assert_eq!(claims(&bootstrap)["kind"], "node-bootstrap");
    assert_eq!(claims(&bootstrap)["cluster_id"], cluster.as_str());
    Setup {
        m,
        admin,
        cluster,
        bootstrap,
    }
}

async fn register(
    addr: SocketAddr,
    token: &str,
    alias: Option<&str>,
    random_id: bool,
) -> Result<manta_proto::common::informations::Registration, tonic::Status> {
    let mut c = nodes(addr).await;
    c.register_node(authed(overview(alias, random_id), token))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_node_joins_with_the_bootstrap_token_and_shows_online_then_offline() {
    let s = setup().await;
    let mut c = nodes(s.m.node_addr).await;
    c.is_available(authed(Empty {}, &s.bootstrap))
        .await
        .unwrap();
    let reg = register(s.m.node_addr, &s.bootstrap, Some("worker-1"), false)
        .await
        .unwrap();
    let token = reg.node_token.clone().unwrap();
    let node_id = reg.node_id.clone().unwrap();
    let cl = claims(&token);
    assert_eq!(cl["node_id"], node_id.as_str());
    assert_eq!(node_id.len(), 24, "the published node_id claim is 24 hex");
    assert!(node_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(cl["cluster_id"], s.cluster.as_str());
    assert_eq!(cl["issued_version"], 1);
    assert_eq!(cl["kind"], "node");
    assert_eq!(reg.cluster_id.as_deref(), Some(s.cluster.as_str()));
    assert_eq!(reg.heartbeat_interval_seconds, Some(5));

    let mut hb = session(s.m.node_addr).await;
    let answer = hb
        .heartbeat(authed(HeartbeatRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.interval_seconds, 5);
    assert_eq!(
        answer.token_expires_at.unwrap().seconds,
        cl["exp"].as_i64().unwrap()
    );

    let mut cm = ClusterManagementClient::new(s.m.channel().await);
    let ids = cm
        .list_node_ids(authed(
            StrId {
                id: s.cluster.clone(),
            },
            &s.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(ids, std::slice::from_ref(&node_id));
    let get = |cm: &mut ClusterManagementClient<Channel>| {
        let req = authed(
            NodeRequest {
                cluster_id: s.cluster.clone(),
                node_id: node_id.clone(),
            },
            &s.admin,
        );
        let mut cm = cm.clone();
        async move { cm.get_node(req).await.unwrap().into_inner() }
    };
    let node = get(&mut cm).await;
    assert_eq!(node.status, NodeStatusEnum::Connected as i32);
    assert_eq!(node.platform_info.unwrap().hostname, "test-host");

    hb.deregister(authed(
        DeregisterRequest {
            reason: "shutdown".into(),
        },
        &token,
    ))
    .await
    .unwrap();
    assert_eq!(
        get(&mut cm).await.status,
        NodeStatusEnum::Disconnected as i32
    );
    // The identity survives a clean shutdown: the next start re-registers with it.
    let again = register(s.m.node_addr, &token, Some("worker-1"), false)
        .await
        .unwrap();
    assert_eq!(again.node_id.as_deref(), Some(node_id.as_str()));
    assert_eq!(get(&mut cm).await.status, NodeStatusEnum::Connected as i32);
}

#[tokio::test]
async fn a_second_node_with_a_live_fixed_alias_is_refused_but_the_same_node_is_not() {
    let s = setup().await;
    let first = register(s.m.node_addr, &s.bootstrap, Some("worker-1"), false)
        .await
        .unwrap();
    let err = register(s.m.node_addr, &s.bootstrap, Some("worker-1"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.message(), "Node with alias 'worker-1' already exists");

    // The same node re-registering with its identity token is not a duplicate.
    let token = first.node_token.unwrap();
    let again = register(s.m.node_addr, &token, Some("worker-1"), false)
        .await
        .unwrap();
    assert_eq!(again.node_id, first.node_id);
    assert_eq!(claims(&again.node_token.unwrap())["issued_version"], 2);

    // Ephemeral nodes (random_id) may share an alias; other aliases are free.
    register(s.m.node_addr, &s.bootstrap, Some("worker-1"), true)
        .await
        .unwrap();
    register(s.m.node_addr, &s.bootstrap, Some("worker-2"), false)
        .await
        .unwrap();

    // Once the holder is offline the alias moves to the new node and the old identity dies.
    let mut hb = session(s.m.node_addr).await;
    hb.deregister(authed(DeregisterRequest::default(), &token))
        .await
        .unwrap();
    let taker = register(s.m.node_addr, &s.bootstrap, Some("worker-1"), false)
        .await
        .unwrap();
    assert_ne!(taker.node_id, first.node_id);
    let err = hb
        .heartbeat(authed(HeartbeatRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("removed"), "{}", err.message());

    let err = register(s.m.node_addr, &s.bootstrap, Some("bad alias!"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("alias"), "{}", err.message());
}

#[tokio::test]
async fn renewal_keeps_the_node_id_and_grows_the_version_and_expiry() {
    let s = setup().await;
    let reg = register(s.m.node_addr, &s.bootstrap, None, true)
        .await
        .unwrap();
    let old = reg.node_token.unwrap();
    let mut c = nodes(s.m.node_addr).await;
    let new = c
        .renew_node_token(authed(Empty {}, &old))
        .await
        .unwrap()
        .into_inner()
        .token;
    let (o, n) = (claims(&old), claims(&new));
    assert_eq!(n["node_id"], o["node_id"]);
    assert_eq!(n["cluster_id"], o["cluster_id"]);
    assert!(n["issued_version"].as_u64() > o["issued_version"].as_u64());
    assert!(n["exp"].as_i64() > o["exp"].as_i64(), "{o} -> {n}");
    // Renewing again from the new token keeps growing; the token two versions back is dead.
    let newer = c
        .renew_node_token(authed(Empty {}, &new))
        .await
        .unwrap()
        .into_inner()
        .token;
    assert_eq!(claims(&newer)["issued_version"], 3);
    let err = c
        .renew_node_token(authed(Empty {}, &old))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("newer token"), "{}", err.message());
}

#[tokio::test]
async fn wrong_tokens_on_node_methods_are_refused_with_what_to_do() {
    let s = setup().await;
    let mut c = nodes(s.m.node_addr).await;
    let mut hb = session(s.m.node_addr).await;

    // A user token is a valid token of the wrong kind.
    let err = c
        .register_node(authed(overview(None, true), &s.admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("node token"), "{}", err.message());
    // A bootstrap token only registers.
    let err = hb
        .heartbeat(authed(HeartbeatRequest::default(), &s.bootstrap))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("RegisterNode"), "{}", err.message());
    // No token, garbage.
    let err = c
        .register_node(tonic::Request::new(overview(None, true)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c
        .register_node(authed(overview(None, true), "not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A removed node's token stops working at once.
    let reg = register(s.m.node_addr, &s.bootstrap, Some("gone"), false)
        .await
        .unwrap();
    let token = reg.node_token.unwrap();
    let mut cm = ClusterManagementClient::new(s.m.channel().await);
    cm.remove_node(authed(
        NodeRequest {
            cluster_id: s.cluster.clone(),
            node_id: reg.node_id.clone().unwrap(),
        },
        &s.admin,
    ))
    .await
    .unwrap();
    let err = hb
        .heartbeat(authed(HeartbeatRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("register it again"),
        "{}",
        err.message()
    );

    // Revoked bootstrap tokens no longer join; the registered identities stay.
    s.m.core
        .platform()
        .revoke_bootstrap(&manta_manager::platform::Viewer::operator(), &s.cluster)
        .unwrap();
    let err = register(s.m.node_addr, &s.bootstrap, None, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("node-token issue"),
        "{}",
        err.message()
    );

    // Every decision is in the audit trail.
    s.m.core.audit().flush();
    let events =
        s.m.core
            .store()
            .query_audit(&manta_manager::store::AuditQuery {
                method: Some("RegisterNode".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
    assert!(events.iter().any(|e| !e.allowed));
    assert!(events.iter().any(|e| {
        e.allowed
            && e.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("bootstrap:"))
    }));
}

#[tokio::test]
async fn cluster_reads_need_scopes_and_other_users_clusters_look_absent() {
    let s = setup().await;
    s.m.add_user("alice", "password1", &["cluster:read", "cluster:write"]);
    s.m.add_user("bob", "password1", &["cluster:read"]);
    let alice = s.m.token("alice", &["cluster:read", "cluster:write"]);
    let bob = s.m.token("bob", &["cluster:read"]);
    let bob_none = s.m.token("bob", &[]);
    let mut cm = ClusterManagementClient::new(s.m.channel().await);

    let err = cm
        .list_cluster_ids(authed(Empty {}, &bob_none))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("cluster:read"), "{}", err.message());

    let mine = cm
        .create_cluster(authed(
            manta_proto::core::user_services::CreateClusterRequest {
                name: Some("alice's".into()),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let err = cm
        .create_cluster(authed(
            manta_proto::core::user_services::CreateClusterRequest { name: None },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let ids = cm
        .list_cluster_ids(authed(Empty {}, &alice))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(
        ids,
        std::slice::from_ref(&mine),
        "alice sees only her own cluster"
    );
    let all = cm
        .list_cluster_ids(authed(Empty {}, &s.admin))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(all.len(), 2);

    // Bob may read clusters but not alice's: it looks like an unknown id.
    let hidden = cm
        .get_cluster(authed(StrId { id: mine.clone() }, &bob))
        .await
        .unwrap_err();
    let unknown = cm
        .get_cluster(authed(StrId { id: "0".repeat(32) }, &bob))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        hidden.message().replace(&mine, "X"),
        unknown.message().replace(&"0".repeat(32), "X")
    );

    // The owner with cluster:write sees the bootstrap token; stop and start change status.
    let c = cm
        .get_cluster(authed(StrId { id: mine.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert!(!c.jwt_token.is_empty());
    let stopped = cm
        .stop_cluster(authed(StrId { id: mine.clone() }, &alice))
        .await;
    stopped.unwrap();
    let err = register(s.m.node_addr, &c.jwt_token, None, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("stopped"), "{}", err.message());
    let started = cm
        .start_cluster(authed(StrId { id: mine.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.status, 1);
    register(s.m.node_addr, &started.jwt_token, None, true)
        .await
        .unwrap();

    cm.delete_cluster(authed(StrId { id: mine.clone() }, &alice))
        .await
        .unwrap();
    let err = cm
        .get_cluster(authed(StrId { id: mine }, &alice))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Its bootstrap token died with it.
    let err = register(s.m.node_addr, &c.jwt_token, None, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("deleted"), "{}", err.message());
}

/// A `manta-manager serve` child with both addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_of_registrations_loses_none_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cluster = admin(data, None, &["cluster", "create", "burst"], "");
    let cluster = cluster.trim().to_owned();
    let bootstrap = admin(
        data,
        None,
        &["node-token", "issue", "--cluster", &cluster, "--ttl", "1h"],
        "",
    );
    let bootstrap = bootstrap.trim().to_owned();
    assert_eq!(claims(&bootstrap)["cluster_id"], cluster.as_str());

    let mut served = Served::start(data, None, &[]);
    let ch = channel(served.node_addr).await;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (ch, bootstrap, acked) = (ch.clone(), bootstrap.clone(), Arc::clone(&acked));
        workers.push(tokio::spawn(async move {
            let mut c = NodeServiceClient::new(ch);
            // Bounded: at most 300 registrations per worker; the kill usually comes first.
            for i in 0..300 {
                let alias = format!("w{w}-n{i}");
                let Ok(reg) = c
                    .register_node(authed(overview(Some(&alias), false), &bootstrap))
                    .await
                else {
                    return;
                };
                let reg = reg.into_inner();
                acked.lock().unwrap().push((reg.node_id.unwrap(), alias));
            }
        }));
    }
    // Twice the acknowledgements asserted below, a small part of the whole burst.
    kill_9_mid_burst(&mut served, workers, || acked.lock().unwrap().len() >= 40).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "the burst acknowledged only {} registrations",
        acked.len()
    );
    let listed = admin(data, None, &["node", "list", "--json"], "");
    let stored: HashSet<(String, String)> = listed
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["alias"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let lost: Vec<_> = acked.iter().filter(|a| !stored.contains(a)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged registrations lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn admin_cli_manages_clusters_tokens_and_nodes_and_explains_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let id = admin(data, None, &["cluster", "create", "edge"], "");
    let id = id.trim();
    assert_eq!(id.len(), 32);
    let listed = admin(data, None, &["cluster", "list", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(v["id"], id);
    assert_eq!(v["name"], "edge");
    assert_eq!(v["status"], "created");
    let token = admin(
        data,
        None,
        &["node-token", "issue", "--cluster", id, "--ttl", "2h"],
        "",
    );
    let token = token.trim();
    assert_eq!(token.lines().count(), 1, "only the token is printed");
    let c = claims(token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(admin(data, None, &["node", "list"], ""), "");

    let fail = |args: &[&str]| -> String {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = fail(&["node-token", "issue", "--cluster", "nope"]);
    assert_eq!(
        err,
        "manta-manager: no cluster has the id or name \"nope\"; list clusters with `manta-manager cluster list`\n"
    );
    let err = fail(&["node", "show", "abc"]);
    assert!(err.contains("manta-manager node list"), "{err}");
    let err = fail(&["node", "remove", "abc"]);
    assert!(err.contains("no node"), "{err}");
    let err = fail(&["cluster", "create", " "]);
    assert!(err.contains("cluster name"), "{err}");
    let err = fail(&["node-token", "issue", "--cluster", id, "--ttl", "5x"]);
    assert!(err.contains("unknown unit"), "{err}");
}

/// `--cluster` takes the name of exactly one cluster as well as an id, in every admin
/// command that has it; a name several clusters share is refused with their ids.
#[test]
fn admin_cli_takes_a_unique_cluster_name_for_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let edge = admin(data, None, &["cluster", "create", "edge"], "");
    let edge = edge.trim();
    let token = admin(
        data,
        None,
        &["node-token", "issue", "--cluster", "edge"],
        "",
    );
    assert_eq!(claims(token.trim())["cluster_id"], edge, "{token}");
    assert_eq!(
        admin(data, None, &["node", "list", "--cluster", "edge"], ""),
        ""
    );
    let revoked = admin(
        data,
        None,
        &["node-token", "revoke", "--cluster", "edge"],
        "",
    );
    assert!(revoked.contains(&format!("cluster {edge}")), "{revoked}");

    let fail = |args: &[&str]| -> String {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let second = admin(data, None, &["cluster", "create", "edge"], "");
    let second = second.trim();
    for args in [
        &["node-token", "issue", "--cluster", "edge"][..],
        &["node-token", "revoke", "--cluster", "edge"][..],
        &["node", "list", "--cluster", "edge"][..],
    ] {
        let err = fail(args);
        assert!(
            err.starts_with("manta-manager: 2 clusters are named \"edge\" (")
                && err.contains(edge)
                && err.contains(second)
                && err.ends_with("); give the id of the one you mean instead\n"),
            "{args:?}: {err}"
        );
        let err = fail(&[args[0], args[1], "--cluster", "edgy"]);
        assert!(
            err.contains("no cluster has the id or name \"edgy\""),
            "{err}"
        );
    }
    // An id still wins, and is exact.
    let token = admin(
        data,
        None,
        &["node-token", "issue", "--cluster", second],
        "",
    );
    assert_eq!(claims(token.trim())["cluster_id"], second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_lists_shows_and_removes_a_node_of_a_running_manager() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cluster = admin(data, None, &["cluster", "create", "ops"], "");
    let cluster = cluster.trim();
    let bootstrap = admin(
        data,
        None,
        &["node-token", "issue", "--cluster", cluster],
        "",
    );
    let mut served = Served::start(data, None, &[]);
    let reg = register(served.node_addr, bootstrap.trim(), Some("edge-a"), false)
        .await
        .unwrap();
    let (id, token) = (reg.node_id.unwrap(), reg.node_token.unwrap());

    let listed = admin(
        data,
        None,
        &["node", "list", "--cluster", cluster, "--json"],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["alias"], "edge-a");
    assert_eq!(v["status"], "online");
    assert_eq!(v["hostname"], "test-host");
    assert!(!listed.contains(&token), "listings never show tokens");
    let shown = admin(data, None, &["node", "show", &id], "");
    assert!(
        shown.contains("edge-a") && shown.contains("token_expires_in"),
        "{shown}"
    );
    let text = admin(data, None, &["node", "list"], "");
    assert!(text.contains(&id) && text.contains("online"), "{text}");

    let removed = admin(data, None, &["node", "remove", &id], "");
    assert!(removed.contains("no longer work"), "{removed}");
    // The running manager (another process) refuses the very next heartbeat: "its tokens
    // stop working at once" holds without waiting for a flush.
    let err = session(served.node_addr)
        .await
        .heartbeat(authed(HeartbeatRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("removed"), "{}", err.message());
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[tokio::test]
async fn node_settings_reach_registering_nodes() {
    // `[nodes]` of the configuration (here set directly) decides what nodes are told and how
    // long their identity tokens live.
    let s = setup_with(crate::harness::Options {
        nodes: manta_manager::registry::NodeSettings {
            heartbeat_interval: Duration::from_secs(2),
            offline_after: Duration::from_secs(6),
            node_token_ttl: Duration::from_secs(90),
            ..manta_manager::registry::NodeSettings::default()
        },
        ..crate::harness::Options::default()
    })
    .await;
    let reg = register(s.m.node_addr, &s.bootstrap, Some("edge-1"), false)
        .await
        .unwrap();
    assert_eq!(reg.heartbeat_interval_seconds, Some(2));
    let token = claims(reg.node_token.as_deref().unwrap());
    let lifetime = token["exp"].as_i64().unwrap() - token["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 90, "{token}");
}

#[tokio::test]
async fn available_nodes_are_the_ones_heartbeating() {
    // The manager's clock, moved past the offline window instead of sleeping through it.
    let clock = manta_auth::ManualClock::starting_now();
    let s = setup_with(crate::harness::Options {
        nodes: manta_manager::registry::NodeSettings {
            heartbeat_interval: Duration::from_secs(1),
            offline_after: Duration::from_secs(1),
            ..manta_manager::registry::NodeSettings::default()
        },
        clock: Some(clock.shared()),
        ..crate::harness::Options::default()
    })
    .await;
    let live = register(s.m.node_addr, &s.bootstrap, Some("live"), false)
        .await
        .unwrap();
    let silent = register(s.m.node_addr, &s.bootstrap, Some("silent"), false)
        .await
        .unwrap();
    // Both registered just now: both available. Then only `live` keeps heartbeating.
    let cm = ClusterManagementClient::new(s.m.channel().await);
    let list = |available: bool| {
        let req = authed(
            StrId {
                id: s.cluster.clone(),
            },
            &s.admin,
        );
        let mut cm = cm.clone();
        async move {
            let mut ids = if available {
                cm.list_available_node_ids(req).await
            } else {
                cm.list_node_ids(req).await
            }
            .unwrap()
            .into_inner()
            .ids;
            ids.sort();
            ids
        }
    };
    let mut both = vec![
        live.node_id.clone().unwrap(),
        silent.node_id.clone().unwrap(),
    ];
    both.sort();
    assert_eq!(list(true).await, both);
    clock.advance(Duration::from_millis(2_200));
    session(s.m.node_addr)
        .await
        .heartbeat(authed(
            HeartbeatRequest::default(),
            live.node_token.as_deref().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(list(true).await, [live.node_id.clone().unwrap()]);
    assert_eq!(list(false).await, both, "offline nodes are still listed");
    // StreamNodes sends every node of the cluster, the silent one included.
    let mut stream = cm
        .clone()
        .stream_nodes(authed(
            StrId {
                id: s.cluster.clone(),
            },
            &s.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(node) = stream.message().await.unwrap() {
        streamed.push(node.node_id.unwrap());
    }
    streamed.sort();
    assert_eq!(streamed, both);
}
