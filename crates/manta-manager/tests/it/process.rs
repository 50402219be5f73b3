//! Running the real `manta-manager` binary: admin commands, `serve`, graceful SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use manta_proto::common::system::Empty;
use manta_proto::core::user_services::user_management_client::UserManagementClient;

use crate::harness::{authed, channel};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_manta-manager");

/// Runs an admin command against a data directory and returns its stdout.
/// Admin commands never create a store, so this first creates one where a manager that ran
/// once would have left it.
pub(crate) fn admin(data: &Path, config: Option<&Path>, args: &[&str], stdin: &str) -> String {
    // --data-dir is always given and wins over the configuration, as in the binary.
    drop(manta_manager::store::SqliteStore::open(&data.join("manager.db")).unwrap());
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .args(args)
        .env_remove("MANTA_MANAGER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `manta-manager serve` (or `dev`) child process.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) user_addr: SocketAddr,
    pub(crate) node_addr: SocketAddr,
    /// The rest of its standard output.
    pub(crate) lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Served {
    pub(crate) fn start(data: &Path, config: Option<&PathBuf>, extra: &[&str]) -> Served {
        Self::start_command("serve", data, config, extra)
    }

    pub(crate) fn start_command(
        command: &str,
        data: &Path,
        config: Option<&PathBuf>,
        extra: &[&str],
    ) -> Served {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(data);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .args([
                command,
                "--user-listen",
                "127.0.0.1:0",
                "--node-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("MANTA_MANAGER_CONFIG")
            .env("MANTA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addr = |prefix: &str| -> SocketAddr {
            let line = lines.next().expect("server printed its address").unwrap();
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .parse()
                .unwrap()
        };
        let user_addr = addr("user api listening on ");
        // The node API address is printed second; reading it proves both ports are bound.
        let node_addr = addr("node api listening on ");
        Served {
            child,
            user_addr,
            node_addr,
            lines,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "manager exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "manager did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Lets a burst of `workers` run against `served` until `progressed` says enough was
/// acknowledged (well below what the workers would do in all), kills the manager with SIGKILL
/// in the middle of it, and waits for every worker to notice.
pub(crate) async fn kill_9_mid_burst(
    served: &mut Served,
    workers: Vec<tokio::task::JoinHandle<()>>,
    progressed: impl Fn() -> bool,
) {
    // Polls the workers' progress (a real process serves them, so there is no clock to
    // move); the kill comes as soon as the burst is under way, not after a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !progressed() {
        assert!(
            Instant::now() < deadline,
            "the burst made no progress within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Only a test that failed midway gets here with a live child; do not leak it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_cli_tokens_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    admin(
        data,
        None,
        &["user", "add", "root", "--scopes", "admin:*"],
        "",
    );
    let token = admin(
        data,
        None,
        &["token", "issue", "--user", "root", "--ttl", "1h"],
        "",
    );
    let token = token.trim().to_owned();
    let served = Served::start(data, None, &[]);
    let mut c = UserManagementClient::new(channel(served.user_addr).await);
    let ids = c
        .list_user_ids(authed(Empty {}, &token))
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(ids.len(), 1);
    // A revocation by the CLI reaches the running server at once.
    let listed = admin(data, None, &["token", "list", "--json"], "");
    let jti =
        serde_json::from_str::<serde_json::Value>(listed.lines().next().unwrap()).unwrap()["jti"]
            .as_str()
            .unwrap()
            .to_owned();
    admin(data, None, &["token", "revoke", &jti], "");
    let err = c.list_user_ids(authed(Empty {}, &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // Close our connection so the graceful drain does not wait for the 10 s limit.
    drop(c);
    served.terminate();
    // The audit trail survives the process and is queryable.
    let audit = admin(data, None, &["audit", "--method", "ListUserIds"], "");
    assert!(audit.contains("ALLOW") && audit.contains("DENY"), "{audit}");
    let denied = admin(data, None, &["audit", "--denied", "--json"], "");
    let first: serde_json::Value = serde_json::from_str(denied.lines().next().unwrap()).unwrap();
    assert_eq!(first["allowed"], false);
    assert!(first["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn bad_configuration_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("manager.toml");
    std::fs::write(&cfg, "[signing]\nalgorithm = \"HS256\"\n").unwrap();
    drop(manta_manager::store::SqliteStore::open(&dir.path().join("manager.db")).unwrap());
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hs256_secret"), "{err}");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_prints_a_working_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let mut served = Served::start_command("dev", &data, None, &[]);
    let mut token = None;
    for line in served.lines.by_ref().take(20) {
        let line = line.unwrap();
        if let Some(t) = line.trim().strip_prefix("admin token:") {
            token = Some(t.trim().to_owned());
            break;
        }
    }
    let token = token.expect("dev prints the admin token");
    // The commands to try name the port really bound (the test asked for port 0).
    let next: Vec<String> = served.lines.by_ref().take(5).map(Result::unwrap).collect();
    let grpcurl = next.iter().find(|l| l.contains("grpcurl")).unwrap();
    assert!(
        grpcurl.contains(&format!(
            "-plaintext -H 'authorization: ${{MANTA_TOKEN}}' -expand-headers {} ",
            served.user_addr
        )),
        "{next:?}"
    );
    let mut c = UserManagementClient::new(channel(served.user_addr).await);
    let me = c
        .get_user(authed(
            manta_proto::core::user_services::GetUserRequest { user_id: None },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "admin");
    // Every published permission: how the SDK recognises an administrator.
    assert_eq!(me.authorization.unwrap().permissions.len(), 35);
    drop(c);
    served.terminate();

    // A second start reuses the data and does not print secrets again.
    let mut again = Served::start_command("dev", &data, None, &[]);
    let banner: Vec<String> = again.lines.by_ref().take(3).map(Result::unwrap).collect();
    let banner = banner.join("\n");
    assert!(banner.contains("printed on first start"), "{banner}");
    assert!(!banner.contains(&token));
    again.terminate();
}

#[test]
fn admin_commands_without_a_data_dir_create_nothing_and_say_where_they_looked() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args(["user", "add", "alice", "--scopes", "user:read"])
        .env_remove("MANTA_MANAGER_CONFIG")
        .env_remove("MANTA_MANAGER_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "user add succeeded without a store");
    let err = String::from_utf8_lossy(&out.stderr);
    for place in [
        "manta-manager-data/manager.db",
        "--data-dir",
        "MANTA_MANAGER_DATA_DIR",
        "--config",
        "MANTA_MANAGER_CONFIG",
        "--data-dir ./.manta-dev",
    ] {
        assert!(err.contains(place), "no {place:?} in {err}");
    }
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "the command left files in the current directory"
    );
    // The variable names the directory just like the flag.
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args(["user", "list"])
        .env_remove("MANTA_MANAGER_CONFIG")
        .env("MANTA_MANAGER_DATA_DIR", cwd.path().join("elsewhere"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("named by MANTA_MANAGER_DATA_DIR"), "{err}");
    assert!(!cwd.path().join("elsewhere").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_a_busy_port_creates_nothing_and_the_next_start_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    for (user, node, flag) in [
        (taken.as_str(), "127.0.0.1:0", "--user-listen"),
        ("127.0.0.1:0", taken.as_str(), "--node-listen"),
    ] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["dev", "--user-listen", user, "--node-listen", node])
            .env_remove("MANTA_MANAGER_CONFIG")
            .env("MANTA_LOG", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success(), "dev started on a busy port");
        assert!(
            !data.exists(),
            "a failed start left {} behind",
            data.display()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cannot listen on {taken}")) && err.contains(flag),
            "{err}"
        );
    }
    drop(busy);
    // The first start that gets its ports is the first start: it shows the password.
    let mut served = Served::start_command("dev", &data, None, &[]);
    let banner: Vec<String> = served
        .lines
        .by_ref()
        .take_while(|l| l.as_ref().is_ok_and(|l| !l.contains("admin token:")))
        .map(Result::unwrap)
        .collect();
    let password = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("admin password:"))
        .map(str::trim);
    assert!(
        password.is_some_and(|p| !p.is_empty()),
        "no password in {banner:?}"
    );
    served.terminate();
}
