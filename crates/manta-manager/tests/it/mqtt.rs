//! The published node transport over a real Mosquitto with password authentication and
//! per-node ACLs: heartbeats verified like the gRPC path, forged and stale tokens refused and
//! audited within a budget, a forged DISCONNECTED that takes nobody offline, commands on the
//! node's topic, and the published Python node (`pip install --pre manta-node`) end to end,
//! across a broker restart.
//!
//! Each test starts its own `mosquitto` on 127.0.0.1 with a free port and a generated
//! configuration and password file. Without mosquitto (or python and pip for the published
//! node) a test prints why and passes as skipped, except in CI (`CI=true`), where it fails.
//!
//! Liveness here runs on the wall clock: the broker, the published node and the registry's
//! notion of "seen within `offline_after`" all live in real time, so every wait is a bounded
//! poll (a few seconds at most) rather than a fixed sleep.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use manta_manager::mqtt::{Heartbeat, MqttSettings};
use manta_manager::registry::NodeSettings;
use manta_proto::common::informations::{MetricsSnapshot, NodeStatus, NodeStatusEnum};
use manta_proto::common::mqtt::MqMetricsSnapshot;
use manta_proto::core::user_services::cluster_management_client::ClusterManagementClient;
use prost::Message as _;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use secrecy::SecretString;

use crate::harness::{Manager, ManagerExt as _, Options, authed};
use crate::nodes::{claims, nodes, overview};

const MANAGER_PW: &str = "manager-secret";

fn skip_or_fail(name: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} cannot run in CI: {reason}"
    );
    eprintln!("SKIPPED {name}: {reason}");
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A Mosquitto of our own: password file, ACLs as `docs/mqtt.md` shows them, a free port.
pub(crate) struct Broker {
    program: PathBuf,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker knowing `manager` and the given node accounts; `None` (after saying
    /// why) when mosquitto is not installed.
    pub(crate) fn start(test: &str, nodes: &[(&str, &str)]) -> Option<Broker> {
        let (Some(program), Some(passwd)) =
            (find_program("mosquitto"), find_program("mosquitto_passwd"))
        else {
            skip_or_fail(
                test,
                "mosquitto is not installed (apt-get install mosquitto)",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        std::fs::write(&file, "").unwrap();
        for (user, pw) in [("manager", MANAGER_PW)].iter().chain(nodes) {
            let ok = Command::new(&passwd)
                .arg("-b")
                .arg(&file)
                .args([user, pw])
                .status()
                .unwrap();
            assert!(ok.success(), "mosquitto_passwd failed");
        }
        std::fs::write(
            dir.path().join("acl"),
            "user manager\n\
             topic read manager/#\n\
             topic write manta/nodes/#\n\
             \n\
             pattern write manager/set_system_summary\n\
             pattern write manager/set_node_status\n\
             pattern write manager/update_task_status\n\
             pattern write manager/update_node_status\n\
             pattern read manta/nodes/%c/#\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 acl_file {}\npersistence false\nlog_dest stderr\n",
                file.display(),
                dir.path().join("acl").display()
            ),
        )
        .unwrap();
        let mut broker = Broker {
            program,
            dir,
            port,
            child: None,
        };
        broker.spawn();
        Some(broker)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(&self.program)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker and starts it again on the same port (its sessions are lost).
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub(crate) fn settings(&self) -> MqttSettings {
        MqttSettings::new(
            "127.0.0.1",
            self.port,
            "manager",
            SecretString::from(MANAGER_PW),
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `done` every 50 ms until it holds, failing after `limit`.
pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A manager on the broker with a cluster; returns it and the cluster's bootstrap token.
async fn manager(broker: &Broker, nodes: NodeSettings) -> (Manager, String) {
    let m = Manager::start_with(Options {
        nodes,
        mqtt: Some(broker.settings()),
        ..Options::default()
    })
    .await;
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
    let bootstrap = cm
        .get_cluster(authed(
            manta_proto::common::system::StrId { id: cluster },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .jwt_token;
    // The manager's own subscription is in place before any node publishes.
    let mqtt = m.core.mqtt().unwrap().clone();
    wait_until(
        "the manager's broker session",
        Duration::from_secs(10),
        || mqtt.is_subscribed(),
    )
    .await;
    (m, bootstrap)
}

/// Messages a raw client received: (topic, payload).
type Inbox = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A raw MQTT client standing in for a node: publishes what the test says, collects what
/// it receives.
struct RawNode {
    client: AsyncClient,
    received: Inbox,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RawNode {
    fn connect(port: u16, client_id: &str, user: &str, pw: &str, topics: Vec<String>) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_credentials(user, pw);
        let (client, mut events) = AsyncClient::new(options, 4096);
        let received: Inbox = Inbox::default();
        let connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, c, sub) = (received.clone(), connected.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            sub.subscribe(t.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                        c.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        r.lock().unwrap().push((topic, p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        RawNode {
            client,
            received,
            connected,
        }
    }

    async fn beat(&self, token: &str) {
        let payload = MqMetricsSnapshot {
            token: token.to_owned(),
            snapshot: Some(MetricsSnapshot::default()),
        }
        .encode_to_vec();
        self.client
            .publish(
                "manager/set_system_summary",
                QoS::AtMostOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    async fn disconnected(&self) {
        let payload = NodeStatus {
            status: NodeStatusEnum::Disconnected as i32,
            ..NodeStatus::default()
        }
        .encode_to_vec();
        self.client
            .publish("manager/set_node_status", QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}

/// The token with its payload's `node_id` changed and the signature kept: a forgery.
fn forged(token: &str, n: usize) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims(token);
    c["node_id"] = serde_json::Value::String(format!("{n:024x}"));
    parts[1] = b.encode(serde_json::to_vec(&c).unwrap());
    parts.join(".")
}

fn online(m: &Manager, node_id: &str) -> bool {
    m.core
        .platform()
        .registry()
        .get(None, node_id)
        .unwrap()
        .is_some_and(|v| v.online)
}

fn mqtt_denials(m: &Manager) -> Vec<manta_manager::store::AuditEvent> {
    m.core.audit().flush();
    m.core
        .store()
        .query_audit(&manta_manager::store::AuditQuery {
            method: Some("mqtt:manager/set_system_summary".into()),
            denied_only: true,
            limit: 100,
            ..Default::default()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_heartbeats_are_verified_forgeries_refused_and_a_forged_disconnect_is_ignored() {
    let name = "mqtt_heartbeats_are_verified_forgeries_refused_and_a_forged_disconnect_is_ignored";
    let Some(broker) = Broker::start(name, &[("node-a", "pw-a"), ("node-b", "pw-b")]) else {
        return;
    };
    let settings = NodeSettings {
        heartbeat_interval: Duration::from_secs(1),
        offline_after: Duration::from_secs(20),
        ..NodeSettings::default()
    };
    let (m, bootstrap) = manager(&broker, settings).await;

    // Registration names the broker and the node's own command tree.
    let reg = nodes(m.node_addr)
        .await
        .register_node(authed(overview(Some("edge-a"), false), &bootstrap))
        .await
        .unwrap()
        .into_inner();
    let node_id = reg.node_id.clone().unwrap();
    let token = reg.node_token.clone().unwrap();
    assert_eq!(reg.mqtt_broker_host, "127.0.0.1");
    assert_eq!(reg.mqtt_broker_port, u32::from(broker.port));
    assert_eq!(reg.mqtt_topics, vec![format!("manta/nodes/{node_id}/+")]);
    m.core.platform().registry().deregister(&node_id).unwrap();
    assert!(!online(&m, &node_id));

    let a = RawNode::connect(
        broker.port,
        &node_id,
        "node-a",
        "pw-a",
        reg.mqtt_topics.clone(),
    );
    wait_until("node a connected", Duration::from_secs(5), || {
        a.connected.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    a.beat(&token).await;
    let mqtt = m.core.mqtt().unwrap().clone();
    wait_until("the heartbeat accepted", Duration::from_secs(5), || {
        online(&m, &node_id)
    })
    .await;
    assert_eq!(mqtt.stats().accepted, 1);

    // Commands reach the node on the topic whose last segment names the command.
    mqtt.collect_information(&node_id, "set_system_summary")
        .unwrap();
    wait_until(
        "collect_information delivered",
        Duration::from_secs(5),
        || {
            a.received.lock().unwrap().iter().any(|(t, p)| {
                t == &format!("manta/nodes/{node_id}/collect_information")
                    && p == b"set_system_summary"
            })
        },
    )
    .await;
    // The ACLs keep another node's account from reading that topic.
    let b = RawNode::connect(
        broker.port,
        "someone-else",
        "node-b",
        "pw-b",
        vec![format!("manta/nodes/{node_id}/+"), "manta/nodes/#".into()],
    );
    wait_until("node b connected", Duration::from_secs(5), || {
        b.connected.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    mqtt.collect_information(&node_id, "set_node_status")
        .unwrap();
    wait_until(
        "the second command delivered",
        Duration::from_secs(5),
        || a.received.lock().unwrap().len() >= 2,
    )
    .await;
    assert!(
        b.received.lock().unwrap().is_empty(),
        "node b read node a's commands"
    );

    // A forged token is refused and audited; sent again it is dropped unverified.
    let fake = forged(&token, 1);
    b.beat(&fake).await;
    b.beat(&fake).await;
    wait_until("the forgery handled", Duration::from_secs(5), || {
        let s = mqtt.stats();
        s.refused == 1 && s.dropped == 1
    })
    .await;
    let denials = mqtt_denials(&m);
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert!(denials[0].subject.is_none());

    // A flood of distinct forgeries: verified and audited within the budget, the rest
    // dropped unverified; the genuine node stays online and keeps being accepted.
    let started = Instant::now();
    let flood = 2_000;
    for n in 0..flood {
        b.beat(&forged(&token, 100 + n)).await;
    }
    a.beat(&token).await;
    wait_until("the flood handled", Duration::from_secs(20), || {
        let s = mqtt.stats();
        s.refused + s.dropped >= 2 + flood as u64 && s.accepted >= 2
    })
    .await;
    let s = mqtt.stats();
    eprintln!(
        "flood of {flood} forged heartbeats handled in {:?}: {} verified and audited, {} dropped unverified",
        started.elapsed(),
        s.refused - 1,
        s.dropped - 1
    );
    assert!(s.refused < 200, "the budget bounds verification: {s:?}");
    assert!(online(&m, &node_id));

    // A forged DISCONNECTED while the node keeps heartbeating takes nobody offline.
    b.disconnected().await;
    for _ in 0..8 {
        a.beat(&token).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(mqtt.stats().hints >= 1);
    assert_eq!(mqtt.stats().confirmed_offline, 0);
    assert!(online(&m, &node_id));

    // A real one, after which the node falls silent: offline within the confirmation
    // window (3 s here), long before `offline_after` (20 s).
    a.disconnected().await;
    let at = Instant::now();
    wait_until("the disconnect confirmed", Duration::from_secs(8), || {
        !online(&m, &node_id)
    })
    .await;
    assert!(at.elapsed() < Duration::from_secs(8));
    assert_eq!(mqtt.stats().confirmed_offline, 1);

    // A removed node's token is refused (stale) and audited; the node is not listed.
    m.core.platform().registry().remove(&node_id).unwrap();
    let before = mqtt.stats().refused;
    a.beat(&token).await;
    wait_until("the stale token refused", Duration::from_secs(5), || {
        mqtt.stats().refused == before + 1
    })
    .await;
    assert!(
        m.core
            .platform()
            .registry()
            .get(None, &node_id)
            .unwrap()
            .is_none()
    );
    assert!(
        mqtt_denials(&m)
            .iter()
            .any(|e| e.reason.contains("removed from the registry"))
    );
    m.stop().await;
}

#[tokio::test]
async fn heartbeat_outcomes_without_a_broker() {
    // The inbox alone, on tokio's paused clock: the budget refills with time.
    let m = Manager::start_with(Options {
        mqtt: Some(MqttSettings {
            refusals_per_second: 2,
            ..MqttSettings::new("127.0.0.1", 1, "u", SecretString::from("p"))
        }),
        ..Options::default()
    })
    .await;
    let mqtt = m.core.mqtt().unwrap().clone();
    let now = tokio::time::Instant::now();
    let malformed = mqtt.heartbeat(&m.core, b"\xff\xff", now);
    assert_eq!(
        malformed,
        Heartbeat::Refused {
            reason: "malformed heartbeat".into()
        }
    );
    let beat = |t: &str| {
        MqMetricsSnapshot {
            token: t.into(),
            snapshot: None,
        }
        .encode_to_vec()
    };
    assert!(matches!(
        mqtt.heartbeat(&m.core, &beat("x.y.z"), now),
        Heartbeat::Refused { .. }
    ));
    assert_eq!(
        mqtt.heartbeat(&m.core, &beat("a.b.c"), now),
        Heartbeat::Dropped
    );
    let later = now + Duration::from_secs(1);
    assert!(matches!(
        mqtt.heartbeat(&m.core, &beat("a.b.c"), later),
        Heartbeat::Refused { .. }
    ));
    // A bare notice that is not DISCONNECTED schedules nothing.
    let connected = NodeStatus {
        status: NodeStatusEnum::Connected as i32,
        ..NodeStatus::default()
    }
    .encode_to_vec();
    assert_eq!(
        mqtt.node_status(&connected, now, Duration::from_secs(3)),
        None
    );
    m.stop().await;
}

/// The published node's venv (`pip install --pre manta-node`), under the target directory
/// beside the SDK's: the node pins another manta-common than the SDK, so they cannot share.
fn node_python() -> Result<PathBuf, String> {
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    let exe = std::env::current_exe().unwrap();
    let venv = exe
        .ancestors()
        .nth(3)
        .map(|t| t.join("node-venv"))
        .unwrap_or_else(|| PathBuf::from("target/node-venv"));
    let python = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import manta_node"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && has(&python) {
        return Ok(python);
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("python3 is not available: {e}"))?;
    if !created.status.success() {
        return Err("cannot create a virtualenv".into());
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--pre", "manta-node"])
        .output()
        .map_err(|e| format!("pip is not available: {e}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install --pre manta-node failed (no network?): {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    if has(&python) {
        Ok(python)
    } else {
        Err("manta-node installed but cannot be imported".into())
    }
}

/// The published node, started in the foreground in its own HOME.
struct PythonNode {
    child: Child,
    home: tempfile::TempDir,
}

impl PythonNode {
    fn start(python: &Path, manager: SocketAddr, token: &str, user: &str, pw: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let nodes = home.path().join(".manta/nodes");
        std::fs::create_dir_all(&nodes).unwrap();
        std::fs::write(
            nodes.join("edge.toml"),
            format!(
                "[identity]\nsecured_token = \"{token}\"\nalias = \"edge\"\n\
                 [network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {}\n\
                 [mqtt]\nping_interval = 1\n\
                 [execution]\nmode = \"process\"\n[tasks]\nmax_concurrent = 1\n\
                 [security]\njwt_refresh_buffer_seconds = 55\n\
                 [logging]\nlog_to_file = false\nlog_to_console = true\n",
                manager.port()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(home.path().join("node.log")).unwrap();
        let child = Command::new(python)
            .args(["-m", "manta_node", "start", "edge", "--foreground"])
            .env("HOME", home.path())
            .env("BROKER_USERNAME", user)
            .env("BROKER_PASSWORD", pw)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        PythonNode { child, home }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("node.log")).unwrap_or_default()
    }
}

impl Drop for PythonNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_python_node_stays_online_over_mqtt_renews_and_survives_a_broker_restart() {
    let name =
        "the_published_python_node_stays_online_over_mqtt_renews_and_survives_a_broker_restart";
    let Some(mut broker) = Broker::start(name, &[("edge", "edge-pw")]) else {
        return;
    };
    let python = match node_python() {
        Ok(p) => p,
        Err(reason) => return skip_or_fail(name, &reason),
    };
    // Node tokens of 60 s with the node renewing 55 s before the end: a renewal within
    // seconds of registering.
    let settings = NodeSettings {
        heartbeat_interval: Duration::from_secs(1),
        offline_after: Duration::from_secs(4),
        node_token_ttl: Duration::from_secs(60),
        ..NodeSettings::default()
    };
    let (m, bootstrap) = manager(&broker, settings).await;
    let mut node = PythonNode::start(&python, m.node_addr, &bootstrap, "edge", "edge-pw");
    let registry = m.core.platform().registry();
    let mqtt = m.core.mqtt().unwrap().clone();
    let node_id = {
        let mut id = None;
        wait_until(
            "the Python node to register",
            Duration::from_secs(60),
            || {
                assert!(
                    node.child.try_wait().unwrap().is_none(),
                    "the Python node exited:\n{}",
                    node.log()
                );
                id = registry
                    .list(None)
                    .unwrap()
                    .first()
                    .map(|v| v.record.id.clone());
                id.is_some()
            },
        )
        .await;
        id.unwrap()
    };
    wait_until("heartbeats over MQTT", Duration::from_secs(30), || {
        mqtt.stats().accepted >= 3
    })
    .await;
    assert!(online(&m, &node_id), "{}", node.log());

    // It renews its node token and its heartbeats carry the new one.
    wait_until("a renewal", Duration::from_secs(30), || {
        registry
            .get(None, &node_id)
            .unwrap()
            .unwrap()
            .record
            .issued_version
            >= 2
    })
    .await;
    let after_renewal = mqtt.stats().accepted;
    wait_until(
        "heartbeats with the renewed token",
        Duration::from_secs(10),
        || mqtt.stats().accepted >= after_renewal + 3,
    )
    .await;
    assert_eq!(mqtt.stats().refused, 0, "{}", node.log());

    // collect_information reaches it and it answers with the gRPC SetSystemSummary.
    mqtt.collect_information(&node_id, "set_system_summary")
        .unwrap();
    wait_until(
        "SetSystemSummary over gRPC",
        Duration::from_secs(15),
        || m.audited_allowed("SetSystemSummary", &node_id),
    )
    .await;

    // The broker restarts: the node reconnects and is online again without registering.
    let registered_at = registry
        .get(None, &node_id)
        .unwrap()
        .unwrap()
        .record
        .registered_at;
    broker.restart();
    let before = mqtt.stats().accepted;
    wait_until(
        "heartbeats after the broker restart",
        Duration::from_secs(40),
        || mqtt.stats().accepted >= before + 3,
    )
    .await;
    assert!(online(&m, &node_id));
    let views = registry.list(None).unwrap();
    assert_eq!(views.len(), 1, "no second registration");
    assert_eq!(views[0].record.registered_at, registered_at);

    // Removed: its heartbeats are refused and it is not listed online.
    registry.remove(&node_id).unwrap();
    let refused = mqtt.stats().refused;
    wait_until(
        "heartbeats refused after removal",
        Duration::from_secs(10),
        || mqtt.stats().refused > refused,
    )
    .await;
    assert!(registry.list(None).unwrap().iter().all(|v| !v.online));
    let _ = node.child.kill();
    m.stop().await;
}
