//! The node agent (`manta-node`) against a real in-process manager: registration with fixed
//! and random ids, identity resumed across restarts, duplicate aliases, a manager restart
//! mid-run, renewal, fallback to the bootstrap token, and the real `manta_node` process
//! with SIGHUP rotation, SIGTERM deregistration and no secret in its TRACE log.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use manta_auth::ManualClock;
use manta_config::{Env, MantaHome};
use manta_manager::identity::Core;
use manta_manager::store::ClusterRecord;
use manta_node::{
    Agent, AgentOptions, AgentState, AgentStatus, IdentityState, NodeError, RunningAgent,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::harness::{Manager, Options};

/// A manager on a store in a directory the test keeps, so it can be stopped and started
/// again on the same store and ports (a manager restart as operators do it); `addrs`
/// re-binds the ports a previous run got from port 0.
async fn restartable(store_dir: &Path, addrs: Option<(SocketAddr, SocketAddr)>) -> Manager {
    Manager::start_with(Options {
        data_dir: Some(store_dir.to_path_buf()),
        addrs,
        ..Options::default()
    })
    .await
}

/// A cluster and one of its bootstrap tokens.
fn cluster(core: &Core) -> (ClusterRecord, SecretString) {
    let c = core.platform().create_cluster("", "lab").unwrap();
    let token = core.platform().bootstrap_token(&c, None).unwrap();
    (c, token)
}

/// A temporary MANTA_HOME with one node configuration.
struct NodeHome {
    dir: tempfile::TempDir,
}

impl NodeHome {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn home(&self) -> MantaHome {
        MantaHome::at(self.dir.path().join("manta"))
    }

    /// Writes `nodes/NAME.toml` (0600) whose token is `${MANTA_NODE_TOKEN}`.
    fn config(&self, name: &str, port: u16, alias: Option<&str>, random_id: bool) -> PathBuf {
        let alias = alias
            .map(|a| format!("alias = \"{a}\"\n"))
            .unwrap_or_default();
        self.write(
            name,
            &format!(
                "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\n{alias}random_id = {random_id}\n\n[network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {port}\n\n[logging]\nlevel = \"TRACE\"\n"
            ),
        )
    }

    /// The configuration most tests use: `nodes/worker.toml`, fixed alias `worker-1`.
    fn worker(&self, port: u16) -> PathBuf {
        self.config("worker", port, Some("worker-1"), false)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.home().node_config(name).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// Agent options with `token` in MANTA_NODE_TOKEN and a quick heartbeat.
    fn options(&self, config: &Path, token: &SecretString) -> AgentOptions {
        let env = Env::from_pairs([
            ("MANTA_NODE_TOKEN", token.expose_secret().to_owned()),
            ("HOME", self.dir.path().display().to_string()),
        ]);
        let mut o = AgentOptions::new(config, self.home(), env);
        o.heartbeat_interval = Some(Duration::from_millis(200));
        o
    }

    fn state(&self, node_id: &str) -> Option<IdentityState> {
        IdentityState::load(&manta_node::cli::state_file(&self.home(), node_id)).unwrap()
    }
}

/// Waits until the agent's status satisfies `pred` (at most 15 s).
async fn wait_for(
    agent: &RunningAgent,
    what: &str,
    pred: impl Fn(&AgentStatus) -> bool,
) -> AgentStatus {
    let mut rx = agent.handle.watch();
    let r = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|s| pred(s))).await;
    match r {
        Ok(Ok(s)) => s.clone(),
        _ => panic!(
            "timed out waiting for {what}; status: {:?}",
            agent.handle.status()
        ),
    }
}

/// Stops the agent (deregistering) and waits for its clean exit.
async fn stop(agent: RunningAgent) {
    agent.handle.shutdown();
    agent.wait().await.unwrap();
}

fn online(core: &Core, node_id: &str) -> bool {
    core.platform()
        .registry()
        .get(None, node_id)
        .unwrap()
        .is_some_and(|v| v.online)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_id_registers_keeps_the_config_and_resumes_identity_on_restart() {
    let m = Manager::start().await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let written = std::fs::read_to_string(&cfg).unwrap();

    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let s = agent.handle.status();
    assert_eq!(
        (s.state, s.alias.as_str(), s.resumed),
        (AgentState::Registered, "worker-1", false)
    );
    let node_id = s.node_id.clone();
    assert_eq!(
        node_id.len(),
        24,
        "the manager assigns the node id: {node_id}"
    );
    assert!(online(&m.core, &node_id));
    let view = m
        .core
        .platform()
        .registry()
        .get(None, &node_id)
        .unwrap()
        .unwrap();
    assert_eq!(view.record.alias.as_deref(), Some("worker-1"));
    assert!(view.record.fixed_alias);
    wait_for(&agent, "two heartbeats", |s| s.heartbeats >= 2).await;

    // The node token is in the 0600 state file named after the alias, never in the config.
    let state = h.state("worker-1").expect("state file");
    assert_eq!(state.node_id, node_id);
    let node_token = state.node_token.expose_secret().to_owned();
    assert_ne!(node_token, bootstrap.expose_secret());
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        written,
        "config untouched"
    );

    stop(agent).await;
    assert!(!online(&m.core, &node_id), "deregistered on a clean stop");

    // Restart: the identity is resumed (same node id), not a new registration.
    let again = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let s = again.handle.status();
    assert!(s.resumed, "{s:?}");
    assert_eq!(s.node_id, node_id);
    assert!(online(&m.core, &node_id));
    assert_eq!(m.core.platform().registry().list(None).unwrap().len(), 1);
    stop(again).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_id_is_fresh_on_each_start_and_leaves_no_token_behind() {
    let m = Manager::start().await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.config("eph", m.node_addr.port(), Some("eph-1"), true);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
        let s = agent.handle.status();
        assert!(!s.resumed);
        assert!(online(&m.core, &s.node_id));
        ids.push(s.node_id);
        assert_eq!(
            agent.identity.node_id.len(),
            32,
            "random 128-bit requested id"
        );
        stop(agent).await;
    }
    assert_ne!(ids[0], ids[1]);
    let left = std::fs::read_dir(manta_node::state_dir(&h.home())).map_or(0, Iterator::count);
    assert_eq!(left, 0, "an ephemeral node's token is removed on stop");
    // A random id does not hold the alias: both records carry it, neither as fixed.
    let nodes = m.core.platform().registry().list(None).unwrap();
    assert!(
        nodes
            .iter()
            .all(|n| !n.record.fixed_alias && n.record.alias.as_deref() == Some("eph-1"))
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_alias_is_refused_here_and_across_machines() {
    let m = Manager::start().await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let first = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let node_id = first.handle.status().node_id;

    // A second agent from the same config on this machine: refused before any network.
    let err = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap_err();
    assert_eq!(err.headline(), "Node with alias 'worker-1' already exists");
    assert!(
        err.detail()
            .unwrap()
            .contains(&format!("pid {}", std::process::id()))
    );

    // The same config on another machine (another MANTA_HOME): the manager refuses it.
    let other = NodeHome::new();
    let cfg2 = other.worker(m.node_addr.port());
    let err = Agent::start(other.options(&cfg2, &bootstrap))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::DuplicateAlias {
                running_here: None,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.headline(), "Node with alias 'worker-1' already exists");
    assert_eq!(
        err.solutions(),
        [
            "Choose unique alias",
            "Enable random_id",
            "Use hostname in alias",
            "Add timestamp or random suffix"
        ]
    );
    assert_eq!(err.exit_code(), manta_node::EXIT_NOPERM);
    // Nobody stole the identity: the first node is still the alias holder and online.
    wait_for(&first, "heartbeats after the refusal", |s| {
        s.heartbeats >= 2
    })
    .await;
    assert!(online(&m.core, &node_id));
    assert!(
        other.state("worker-1").is_none(),
        "the refused node stored nothing"
    );
    stop(first).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_malformed_tokens_give_the_seed_error() {
    let m = Manager::start().await;
    let other = Manager::start().await;
    let (_c, foreign) = cluster(&other.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let err = Agent::start(h.options(&cfg, &foreign)).await.unwrap_err();
    assert_eq!(err.headline(), "Invalid or expired JWT token", "{err}");
    assert!(err.solutions().contains(&"Request new token from admin"));
    assert!(!err.to_string().contains(foreign.expose_secret()));
    // A token that is not a JWT at all never reaches the manager: configuration error 78.
    let err = Agent::start(h.options(&cfg, &SecretString::from("not-a-jwt")))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), manta_node::EXIT_CONFIG);
    assert!(
        err.to_string().contains("Invalid or expired JWT token"),
        "{err}"
    );
    m.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_restart_mid_run_reconnects_with_the_same_identity() {
    let store = tempfile::tempdir().unwrap();
    let m = restartable(store.path(), None).await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let node_id = agent.handle.status().node_id;
    let addrs = (m.user_addr, m.node_addr);
    m.stop().await;
    wait_for(&agent, "reconnecting", |s| {
        s.state == AgentState::Reconnecting
    })
    .await;
    // A real wait, on purpose: the manager stays down longer than the agent's first
    // reconnect backoff (500 ms), so at least one reconnect fails before it comes back. The
    // agent's status counts no failed attempts to wait for instead, and the manager's real
    // sockets rule out tokio's paused time.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Same store, same ports (handed out by port 0 to the first run).
    let m = restartable(store.path(), Some(addrs)).await;
    let before = agent.handle.status().heartbeats;
    let s = wait_for(&agent, "registered again", |s| {
        s.state == AgentState::Registered && s.heartbeats > before
    })
    .await;
    assert_eq!(s.node_id, node_id, "no new registration");
    assert_eq!(s.registrations, 1);
    assert!(online(&m.core, &node_id));
    stop(agent).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_before_expiry_with_a_jumped_clock_is_persisted() {
    let m = Manager::start().await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(ManualClock::new(now));
    let mut options = h.options(&cfg, &bootstrap);
    options.clock = Some(clock.clone());
    let agent = Agent::start(options).await.unwrap();
    let first = h.state("worker-1").unwrap();
    let v1 = manta_auth::inspect(first.node_token.expose_secret())
        .unwrap()
        .claims;
    // Jump to just before expiry minus the renewal buffer: the next wake-up renews.
    let exp = v1.exp.unwrap();
    clock.set(exp - 200);
    let s = wait_for(&agent, "a renewal", |s| s.renewals >= 1).await;
    clock.set(now);
    let second = h.state("worker-1").unwrap();
    let v2 = manta_auth::inspect(second.node_token.expose_secret())
        .unwrap()
        .claims;
    assert_eq!(v2.node_id, v1.node_id);
    assert!(v2.issued_version.unwrap() > v1.issued_version.unwrap());
    assert!(v2.exp.unwrap() > v1.exp.unwrap());
    assert_eq!(s.state, AgentState::Registered);
    // The renewed token works: heartbeats continue with it.
    let beats = agent.handle.status().heartbeats;
    wait_for(&agent, "heartbeats with the renewed token", |s| {
        s.heartbeats > beats + 1
    })
    .await;
    stop(agent).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_identity_falls_back_to_bootstrap_or_stops_saying_what_to_do() {
    let m = Manager::start().await;
    let (c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let old = agent.handle.status().node_id;
    // The operator removes the node: its token stops working; the agent registers again
    // with the bootstrap token and gets a new identity.
    assert!(m.core.platform().registry().remove(&old).unwrap());
    let s = wait_for(&agent, "a second registration", |s| s.registrations >= 2).await;
    assert_ne!(s.node_id, old);
    assert!(online(&m.core, &s.node_id));
    assert_eq!(h.state("worker-1").unwrap().node_id, s.node_id);

    // Removed again, and now the bootstrap tokens are revoked too: the agent stops with an
    // error that says what to do.
    m.core
        .platform()
        .revoke_bootstrap(&manta_manager::platform::Viewer::operator(), &c.id)
        .unwrap();
    assert!(m.core.platform().registry().remove(&s.node_id).unwrap());
    let err = tokio::time::timeout(Duration::from_secs(15), agent.wait())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, NodeError::IdentityLost { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("put a fresh bootstrap token in secured_token"),
        "{err}"
    );
    assert_eq!(err.exit_code(), manta_node::EXIT_NOPERM);
    m.stop().await;
}

/// The `manta_node` binary next to this test executable.
fn node_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("manta_node");
    assert!(
        bin.exists(),
        "{} is missing; build it first with `cargo build -p manta-node`",
        bin.display()
    );
    bin
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Polls `path` until it contains `needle` (at most 15 s); returns the content.
fn wait_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_process_sighup_rotates_the_token_and_stop_deregisters() {
    let bin = node_binary();
    let m = Manager::start().await;
    let (c, first) = cluster(&m.core);
    let h = NodeHome::new();
    let literal = |t: &SecretString| {
        format!(
            "[identity]\nsecured_token = \"{}\"\nalias = \"worker-1\"\n\n[network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {}\n\n[logging]\nlevel = \"TRACE\"\n",
            t.expose_secret(),
            m.node_addr.port()
        )
    };
    let cfg = h.write("worker", &literal(&first));
    let mut child = Command::new(&bin)
        .args(["start", "worker", "--heartbeat", "1"])
        .env_clear()
        .env("MANTA_HOME", h.home().root())
        .env("HOME", h.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(
        banner.starts_with("Node 'worker-1' registered as "),
        "{banner}"
    );
    let log = h.home().root().join("logs/nodes/worker-1.log");
    assert!(banner.contains(&log.display().to_string()), "{banner}");
    let node_id = h.state("worker-1").unwrap().node_id;
    assert!(online(&m.core, &node_id));

    // `status` sees it; `stop` of another alias does not touch it.
    let status = Command::new(&bin)
        .args(["status", "--json"])
        .env_clear()
        .env("MANTA_HOME", h.home().root())
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(listed[0]["alias"], "worker-1");
    assert_eq!(listed[0]["pid"], child.id());
    assert_eq!(listed[0]["state"], "registered");
    assert_eq!(listed[0]["log_file"], log.display().to_string());

    // Rotate: the old bootstrap tokens are revoked, a new one goes into the file, SIGHUP.
    m.core
        .platform()
        .revoke_bootstrap(&manta_manager::platform::Viewer::operator(), &c.id)
        .unwrap();
    // Revocation is exact: a token issued right after it works, no waiting for the clock.
    let second = m.core.platform().bootstrap_token(&c, None).unwrap();
    std::fs::write(&cfg, literal(&second)).unwrap();
    signal(&child, "-HUP");
    wait_file(&log, "configuration reloaded");
    // The node loses its identity; it can only come back with the rotated token.
    assert!(m.core.platform().registry().remove(&node_id).unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    let new_id = loop {
        let id = h.state("worker-1").map(|s| s.node_id).unwrap_or_default();
        if id != node_id && online(&m.core, &id) {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "never re-registered with the rotated token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let node_token = h.state("worker-1").unwrap().node_token;

    // `manta_node stop` sends SIGTERM after checking the lock and the process start time.
    let pid = child.id();
    let stop = Command::new(&bin)
        .args(["stop", "worker-1"])
        .env_clear()
        .env("MANTA_HOME", h.home().root())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout).trim(),
        format!("stopped node 'worker-1' (pid {pid})"),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0), "SIGTERM exits 0");
    assert!(!online(&m.core, &new_id), "deregistered on SIGTERM");
    let text = wait_file(&log, "node deregistered");
    for secret in [
        first.expose_secret(),
        second.expose_secret(),
        node_token.expose_secret(),
    ] {
        assert!(!text.contains(secret), "a token reached the TRACE log");
        // Not even its signature part.
        assert!(!text.contains(secret.rsplit('.').next().unwrap()));
    }
    assert!(
        text.contains("TRACE") || text.contains("heartbeat"),
        "the log is at TRACE:\n{text}"
    );
    let after = Command::new(&bin)
        .args(["status"])
        .env_clear()
        .env("MANTA_HOME", h.home().root())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&after.stdout).trim(),
        "No node is running"
    );
    m.stop().await;
}

/// Runs `manta_node ARGS` in-process (on a blocking thread: the command builds its own
/// runtime) and returns the exit code and everything printed.
async fn node_cli(env: Env, args: &[&str]) -> (u8, String) {
    let args: Vec<std::ffi::OsString> = std::iter::once("manta_node")
        .chain(args.iter().copied())
        .map(Into::into)
        .collect();
    tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = std::io::Cursor::new(Vec::new());
        let code = manta_node::cli::run(
            args,
            &env,
            &mut manta_node::cli::Io {
                stdin: &mut stdin,
                interactive: false,
                stdout: &mut out,
                stderr: &mut err,
            },
        );
        (
            code,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_asks_the_manager() {
    let m = Manager::start().await;
    let other = Manager::start().await;
    let (_c, good) = cluster(&m.core);
    let (_c, foreign) = cluster(&other.core);
    let h = NodeHome::new();
    h.worker(m.node_addr.port());
    let env = |t: &SecretString| {
        Env::from_pairs([
            ("MANTA_NODE_TOKEN", t.expose_secret().to_owned()),
            ("MANTA_HOME", h.home().root().display().to_string()),
        ])
    };
    let (code, out) = node_cli(env(&good), &["config", "validate", "worker", "--online"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "The manager at 127.0.0.1:{} accepts the token",
            m.node_addr.port()
        )),
        "{out}"
    );
    let (code, out) = node_cli(env(&foreign), &["config", "validate", "worker", "--online"]).await;
    assert_eq!(code, 77, "{out}");
    assert!(
        out.contains("Error: Invalid or expired JWT token\n") && out.contains("Solutions:"),
        "{out}"
    );
    assert!(!out.contains(foreign.expose_secret()));
    m.stop().await;
    let (code, out) = node_cli(env(&good), &["config", "validate", "worker", "--online"]).await;
    assert_eq!(code, 69, "{out}");
    assert!(
        out.contains("cannot reach the manager at 127.0.0.1:"),
        "{out}"
    );
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_registration_with_the_configured_cert_folder() {
    let pki = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(pki.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let tls =
        manta_tls::ServerTls::from_folder(pki.path(), manta_tls::ClientAuth::Required).unwrap();
    let m = Manager::start_with(Options {
        tls: Some(tls),
        ..Default::default()
    })
    .await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let tls_section = |folder: &Path| {
        format!(
            "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\nalias = \"secure-1\"\n\n[network]\nmanager_host = \"localhost\"\nmanager_port = {}\n\n[security]\nuse_tls = true\ncert_folder = \"{}\"\n",
            m.node_addr.port(),
            folder.display()
        )
    };
    let cfg = h.write("secure", &tls_section(pki.path()));
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let s = wait_for(&agent, "a heartbeat over mTLS", |s| s.heartbeats >= 1).await;
    assert!(online(&m.core, &s.node_id));
    stop(agent).await;

    // A folder without the client key is a configuration error naming the file, never a
    // silent fall back to plaintext.
    let partial = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "client.crt"] {
        std::fs::copy(pki.path().join(f), partial.path().join(f)).unwrap();
    }
    let cfg = h.write("secure", &tls_section(partial.path()));
    let err = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap_err();
    assert_eq!(err.exit_code(), manta_node::EXIT_CONFIG, "{err}");
    assert!(err.to_string().contains("client.key"), "{err}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_rotated_environment_token_registers_with_it() {
    let m = Manager::start().await;
    let (c, first) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let agent = Agent::start(h.options(&cfg, &first)).await.unwrap();
    let old = agent.handle.status().node_id;
    m.core
        .platform()
        .revoke_bootstrap(&manta_manager::platform::Viewer::operator(), &c.id)
        .unwrap();
    // Revocation is exact: a token issued right after it works, no waiting for the clock.
    let second = m.core.platform().bootstrap_token(&c, None).unwrap();
    agent
        .handle
        .reload_with_env(h.options(&cfg, &second).env.clone());
    wait_for(&agent, "the reload", |s| s.reloads == 1).await;
    assert!(m.core.platform().registry().remove(&old).unwrap());
    let s = wait_for(&agent, "registration with the rotated token", |s| {
        s.registrations == 2
    })
    .await;
    assert_ne!(s.node_id, old);
    assert!(online(&m.core, &s.node_id));
    stop(agent).await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_the_saved_token_expired_renews_then_resumes() {
    let m = Manager::start().await;
    let (_c, bootstrap) = cluster(&m.core);
    let h = NodeHome::new();
    let cfg = h.worker(m.node_addr.port());
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let node_id = agent.handle.status().node_id;
    stop(agent).await;
    let saved = h.state("worker-1").unwrap();
    let v1 = manta_auth::inspect(saved.node_token.expose_secret())
        .unwrap()
        .claims;
    // The node's clock says the saved token expired an hour ago (the manager's node-token
    // lifetime is not configurable here, so the expiry is seen from the node's side): the
    // agent renews it through RenewNodeToken before presenting it, and keeps its identity.
    let clock = Arc::new(ManualClock::new(v1.exp.unwrap() + 3600));
    let mut options = h.options(&cfg, &bootstrap);
    options.clock = Some(clock.clone());
    let agent = Agent::start(options).await.unwrap();
    let s = agent.handle.status();
    assert!(s.resumed && s.renewals == 1, "{s:?}");
    assert_eq!(s.node_id, node_id);
    let v2 = manta_auth::inspect(h.state("worker-1").unwrap().node_token.expose_secret())
        .unwrap()
        .claims;
    assert!(v2.issued_version.unwrap() > v1.issued_version.unwrap());
    clock.set(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    stop(agent).await;
    m.stop().await;
}

/// A manager serving TLS from a fresh development PKI, with client certificates `auth`.
async fn tls_node_manager(auth: manta_tls::ClientAuth) -> (Manager, tempfile::TempDir) {
    let pki = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(pki.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let tls = manta_tls::ServerTls::from_folder(pki.path(), auth).unwrap();
    let m = Manager::start_with(Options {
        tls: Some(tls),
        ..Default::default()
    })
    .await;
    (m, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_only_cert_folder_is_tls_without_a_client_certificate() {
    let h = NodeHome::new();
    let ca_only = |pki: &Path, name: &str| {
        let dir = h.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(pki.join("ca.crt"), dir.join("ca.crt")).unwrap();
        dir
    };
    let section = |port: u16, folder: &Path| {
        format!(
            "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\nalias = \"ca-only-1\"\n\n[network]\nmanager_host = \"localhost\"\nmanager_port = {port}\n\n[security]\nuse_tls = true\ncert_folder = \"{}\"\n",
            folder.display()
        )
    };
    let env = |t: &SecretString| {
        Env::from_pairs([
            ("MANTA_NODE_TOKEN", t.expose_secret().to_owned()),
            ("MANTA_HOME", h.home().root().display().to_string()),
        ])
    };

    // A manager that does not require client certificates: the node registers over TLS
    // trusting only the folder's CA, and validate --online gets its answer.
    let (m, pki) = tls_node_manager(manta_tls::ClientAuth::Optional).await;
    let (_c, bootstrap) = cluster(&m.core);
    let folder = ca_only(pki.path(), "optional");
    let cfg = h.write("secure", &section(m.node_addr.port(), &folder));
    let (code, out) = node_cli(
        env(&bootstrap),
        &["config", "validate", "secure", "--online"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "The manager at localhost:{} accepts the token",
            m.node_addr.port()
        )),
        "{out}"
    );
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    let s = wait_for(&agent, "a heartbeat over TLS", |s| s.heartbeats >= 1).await;
    assert!(online(&m.core, &s.node_id));
    stop(agent).await;
    m.stop().await;

    // A manager that requires them: every way in says which files to add to which folder.
    let (m, pki) = tls_node_manager(manta_tls::ClientAuth::Required).await;
    let (_c, bootstrap) = cluster(&m.core);
    let folder = ca_only(pki.path(), "required");
    let port = m.node_addr.port();
    let cfg = h.write("secure", &section(port, &folder));
    let expected = format!(
        "localhost:{port} requires a client certificate: add client.crt and client.key (issued by the manager's CA) to {}",
        folder.display()
    );
    let err = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap_err();
    assert_eq!(err.exit_code(), manta_node::EXIT_CONFIG, "{err}");
    assert_eq!(err.to_string(), expected);
    let (code, out) = node_cli(
        env(&bootstrap),
        &["config", "validate", "secure", "--online"],
    )
    .await;
    assert_eq!(code, manta_node::EXIT_CONFIG, "{out}");
    assert!(out.contains(&format!("Error: {expected}\n")), "{out}");
    let child = Command::new(node_binary())
        .args(["start", "secure", "--console"])
        .env_clear()
        .env("MANTA_HOME", h.home().root())
        .env("MANTA_NODE_TOKEN", bootstrap.expose_secret())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert_eq!(child.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.ends_with(&format!("Error: {expected}\n")),
        "{stderr}"
    );
    assert!(!stderr.contains(bootstrap.expose_secret()));
    // With the pair added the same configuration registers.
    for f in ["client.crt", "client.key"] {
        std::fs::copy(pki.path().join(f), folder.join(f)).unwrap();
    }
    let agent = Agent::start(h.options(&cfg, &bootstrap)).await.unwrap();
    wait_for(&agent, "a heartbeat over mTLS", |s| s.heartbeats >= 1).await;
    stop(agent).await;
    m.stop().await;
}
