//! Our node agent over the published MQTT transport: a real Mosquitto (password file, a
//! free 127.0.0.1 port, started by the test) and an in-process manager with `[mqtt]`. The
//! agent heartbeats over the broker, answers `collect_information` over gRPC, comes back
//! after a broker restart without registering again, and names the variables when it has
//! no broker credentials. Without mosquitto the test prints why and passes as skipped,
//! except in CI (`CI=true`), where it fails.
//!
//! Liveness and the broker run on the wall clock; every wait is a bounded poll.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use manta_config::{Env, MantaHome};
use manta_manager::mqtt::MqttSettings;
use manta_manager::registry::NodeSettings;
use manta_node::{Agent, AgentOptions, NodeError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::harness::{Manager, Options};

struct Broker {
    program: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Broker {
    fn start(users: &[(&str, &str)]) -> Option<Broker> {
        let (Some(program), Some(passwd)) = (find("mosquitto"), find("mosquitto_passwd")) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mosquitto is not installed in CI"
            );
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        std::fs::write(&file, "").unwrap();
        for (user, pw) in users {
            assert!(
                Command::new(&passwd)
                    .arg("-b")
                    .arg(&file)
                    .args([user, pw])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
                file.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            program,
            dir,
            port,
            child: None,
        };
        b.spawn();
        Some(b)
    }

    fn spawn(&mut self) {
        self.child = Some(
            Command::new(&self.program)
                .arg("-c")
                .arg(self.dir.path().join("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn options(dir: &tempfile::TempDir, port: u16, env: &[(&str, &str)]) -> AgentOptions {
    use std::os::unix::fs::PermissionsExt as _;
    let home = MantaHome::at(dir.path().join("manta"));
    let path = home.node_config("worker").unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\nalias = \"worker-1\"\n\n\
             [network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {port}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut o = AgentOptions::new(&path, home, Env::from_pairs(env.iter().copied()));
    o.heartbeat_interval = Some(Duration::from_millis(300));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_node_heartbeats_over_mqtt_and_comes_back_after_a_broker_restart() {
    let Some(mut broker) = Broker::start(&[("manager", "m-pw"), ("worker-1", "w-pw")]) else {
        return;
    };
    let m = Manager::start_with(Options {
        nodes: NodeSettings {
            heartbeat_interval: Duration::from_secs(1),
            offline_after: Duration::from_secs(3),
            ..NodeSettings::default()
        },
        mqtt: Some(MqttSettings::new(
            "127.0.0.1",
            broker.port,
            "manager",
            SecretString::from("m-pw"),
        )),
        ..Options::default()
    })
    .await;
    let mqtt = m.core.mqtt().unwrap().clone();
    until("the manager subscribed", Duration::from_secs(10), || {
        mqtt.is_subscribed()
    })
    .await;
    let c = m.core.platform().create_cluster("", "lab").unwrap();
    let bootstrap = m.core.platform().bootstrap_token(&c, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = bootstrap.expose_secret().to_owned();

    // No broker credentials: a clear error naming the variables, before any heartbeat.
    let err = Agent::start(options(
        &dir,
        m.node_addr.port(),
        &[("MANTA_NODE_TOKEN", &token)],
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, NodeError::Broker { .. }), "{err}");
    assert!(
        err.to_string().contains("BROKER_USERNAME") && err.to_string().contains("BROKER_PASSWORD"),
        "{err}"
    );

    let env = [
        ("MANTA_NODE_TOKEN", token.as_str()),
        ("BROKER_USERNAME", "worker-1"),
        ("BROKER_PASSWORD", "w-pw"),
    ];
    let agent = Agent::start(options(&dir, m.node_addr.port(), &env))
        .await
        .unwrap();
    let node_id = agent.handle.status().node_id;
    let registry = m.core.platform().registry();
    until("heartbeats over MQTT", Duration::from_secs(10), || {
        mqtt.stats().accepted >= 3
    })
    .await;
    assert!(registry.get(None, &node_id).unwrap().unwrap().online);

    // collect_information reaches it; it answers over gRPC.
    mqtt.collect_information(&node_id, "set_system_summary")
        .unwrap();
    until(
        "SetSystemSummary over gRPC",
        Duration::from_secs(10),
        || m.audited_allowed("SetSystemSummary", &node_id),
    )
    .await;

    // The broker goes away long enough for the node to show offline, then comes back: the
    // node is online again with its first registration.
    broker.stop();
    until(
        "offline while the broker is down",
        Duration::from_secs(10),
        || !registry.get(None, &node_id).unwrap().unwrap().online,
    )
    .await;
    let before = mqtt.stats().accepted;
    broker.spawn();
    until(
        "heartbeats after the restart",
        Duration::from_secs(30),
        || mqtt.stats().accepted >= before + 3,
    )
    .await;
    assert!(registry.get(None, &node_id).unwrap().unwrap().online);
    assert_eq!(agent.handle.status().registrations, 1);

    // On shutdown it publishes DISCONNECTED (and deregisters over gRPC).
    let hints = mqtt.stats().hints;
    agent.handle.shutdown();
    agent.wait().await.unwrap();
    until("the DISCONNECTED notice", Duration::from_secs(5), || {
        mqtt.stats().hints > hints
    })
    .await;
    assert!(!registry.get(None, &node_id).unwrap().unwrap().online);
    m.stop().await;
}
