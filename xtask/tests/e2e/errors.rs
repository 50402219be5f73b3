//! The `manta` command's error texts against a real manager: each names one cause and one
//! next step, and the exit codes match docs/cli.md.

use std::process::ExitCode;

use manta_client::cli::{self, Context};
use manta_config::{Env, MemoryStore};
use secrecy::ExposeSecret as _;

use crate::harness::{Background, ManagerExt as _, Options};

/// Runs `manta args` in-process with `env` (and an empty MANTA_HOME unless `env` names
/// one) and returns the exit code and what a user sees on standard error: the error line
/// after any log lines.
fn manta(env: &[(&str, &str)], args: &[&str]) -> (u8, String) {
    let home = tempfile::tempdir().unwrap();
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !env.iter().any(|(k, _)| *k == "MANTA_HOME") {
        pairs.push(("MANTA_HOME".into(), home.path().display().to_string()));
    }
    pairs.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let store = MemoryStore::new();
    let mut stdin = std::io::Cursor::new(Vec::new());
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let mut ctx = Context {
        env: Env::from_pairs(pairs),
        store: &store,
        stdin: &mut stdin,
        stdin_is_terminal: false,
        log: tracing_subscriber::fmt::writer::BoxMakeWriter::new({
            let logs = logs.clone();
            move || Shared(logs.clone())
        }),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run_with(
        std::iter::once("manta").chain(args.iter().copied()),
        &mut ctx,
        &mut out,
        &mut err,
    );
    let mut seen = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    seen.push_str(&String::from_utf8(err).unwrap());
    (exit_u8(code), seen)
}

struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn exit_u8(code: ExitCode) -> u8 {
    // ExitCode has no accessor; its Debug shows the number.
    format!("{code:?}")
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

const PASSWORD: &str = "correct horse battery";

/// A plaintext manager with alice (`swarm:deploy`) and bob (`cluster:read`).
fn manager() -> Background {
    let bg = Background::start_with(Options::default());
    bg.m().add_user("alice", PASSWORD, &["swarm:deploy"]);
    bg.m().add_user("bob", PASSWORD, &["cluster:read"]);
    bg
}

fn at(port: u16, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--host".to_owned(), "127.0.0.1".into(), "--port".into()];
    all.push(port.to_string());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn refusals_say_one_cause_and_one_next_step() {
    let bg = manager();
    let m = bg.m();
    let alice = m.token("alice", &["swarm:deploy"]);
    let env = [("MANTA_TOKEN", alice.expose_secret())];

    let (code, err) = manta(&env, &strs(&at(m.port(), &["cluster", "list"])));
    assert_eq!(code, cli::EXIT_PERMISSION);
    assert_eq!(
        err,
        "error: permission denied for list_clusters: it needs the scope `cluster:read`; ask an administrator for it\n"
    );

    let bob = m.token("bob", &["cluster:read"]);
    let id = "0123456789abcdef0123456789abcdef";
    let (code, err) = manta(
        &[("MANTA_TOKEN", bob.expose_secret())],
        &strs(&at(m.port(), &["cluster", "get", id])),
    );
    assert_eq!(code, cli::EXIT_NOT_FOUND);
    assert_eq!(
        err,
        format!(
            "error: no cluster has the id or name `{id}`; list clusters with `manta cluster list`\n"
        )
    );

    let jti = manta_auth::inspect(alice.expose_secret())
        .unwrap()
        .claims
        .jti
        .unwrap();
    m.core.revoke_token(&jti, None).unwrap();
    let (code, err) = manta(&env, &strs(&at(m.port(), &["whoami"])));
    assert_eq!(code, cli::EXIT_AUTH);
    assert_eq!(
        err,
        "error: authentication failed: revoked token; sign in again (`manta login`) or use another token\n"
    );
}

#[test]
fn refresh_warnings_appear_only_with_verbose() {
    let bg = manager();
    let port = bg.m().port();
    // A well-formed JWT the manager did not sign: refused, and the refresh engine's attempt
    // to renew it fails too.
    let forged = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU";
    let env = [("MANTA_TOKEN", forged)];
    let (code, err) = manta(&env, &strs(&at(port, &["whoami"])));
    assert_eq!(code, cli::EXIT_AUTH);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    let (_, err) = manta(&env, &strs(&at(port, &["whoami", "-v"])));
    assert!(err.contains("WARN"), "{err}");
}

#[test]
fn a_token_with_a_trailing_newline_is_accepted() {
    let bg = manager();
    let token = format!(
        " {}\n",
        bg.m().token("alice", &["swarm:deploy"]).expose_secret()
    );
    let (code, err) = manta(
        &[("MANTA_TOKEN", &token)],
        &strs(&at(bg.m().port(), &["whoami"])),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_node_api_port_is_recognised() {
    let bg = manager();
    let token = bg.m().token("alice", &["swarm:deploy"]);
    let node = bg.m().node_addr.port();
    let (code, err) = manta(
        &[("MANTA_TOKEN", token.expose_secret())],
        &strs(&at(node, &["whoami"])),
    );
    assert_eq!(code, cli::EXIT_CONFIG);
    assert_eq!(
        err,
        format!(
            "error: 127.0.0.1:{node} is the node API of a Manta manager, not the user API; use the user API port instead (usually 50052)\n"
        )
    );
}

#[test]
fn a_token_from_another_manager_names_the_profile_and_address() {
    let bg = manager();
    let other = Background::start_with(Options::default());
    other.m().add_user("alice", PASSWORD, &["swarm:deploy"]);
    let foreign = other.m().token("alice", &["swarm:deploy"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[profiles.staging]\nhost = \"127.0.0.1\"\nport = {}\n",
            bg.m().port()
        ),
    )
    .unwrap();
    let (code, err) = manta(
        &[
            ("MANTA_TOKEN", foreign.expose_secret()),
            ("MANTA_HOME", home.path().to_str().unwrap()),
        ],
        &["--profile", "staging", "whoami"],
    );
    assert_eq!(code, cli::EXIT_AUTH);
    assert_eq!(
        err,
        format!(
            "error: the token was not issued by the manager at 127.0.0.1:{} (profile `staging`); sign in to this manager (`manta login --profile staging`) or use one of its tokens\n",
            bg.m().port()
        )
    );
}

#[test]
fn scopes_split_by_a_space_are_refused_with_the_scope_meant() {
    let bg = manager();
    let token = bg.m().session_token("alice", PASSWORD);
    let (code, err) = manta(
        &[("MANTA_TOKEN", token.expose_secret())],
        &strs(&at(
            bg.m().port(),
            &[
                "token",
                "create",
                "--name",
                "ci",
                "--scopes",
                "swarm deploy",
            ],
        )),
    );
    assert_eq!(code, cli::EXIT_USAGE);
    assert_eq!(
        err,
        "error: invalid setting: --scopes: scope `swarm` has no `:` and grants nothing useful; did you mean `swarm:deploy`?\n"
    );
}

/// A TLS manager (client certificates optional), its PKI folder and a token for alice.
fn tls_manager() -> (Background, tempfile::TempDir, secrecy::SecretString) {
    let pki = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(pki.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let tls =
        manta_tls::ServerTls::from_folder(pki.path(), manta_tls::ClientAuth::Optional).unwrap();
    let bg = Background::start_with(Options {
        tls: Some(tls),
        ..Options::default()
    });
    bg.m().add_user("alice", PASSWORD, &["swarm:deploy"]);
    let token = bg.m().token("alice", &["swarm:deploy"]);
    (bg, pki, token)
}

#[test]
fn tls_and_plaintext_mismatches_name_the_flag_to_change() {
    let (tls, pki, token) = tls_manager();
    let env = [("MANTA_TOKEN", token.expose_secret())];
    let port = tls.m().port();
    let (code, err) = manta(
        &env,
        &["--host", "localhost", "--port", &port.to_string(), "whoami"],
    );
    assert_eq!(code, cli::EXIT_CONFIG);
    assert_eq!(
        err,
        format!(
            "error: TLS and plaintext do not match: localhost:{port} expects TLS but this client sends plaintext; add `--cert-folder DIR` (a folder with the manager's ca.crt)\n"
        )
    );

    let plain = manager();
    let port = plain.m().port();
    let folder = pki.path().to_str().unwrap();
    let (code, err) = manta(
        &env,
        &[
            "--host",
            "localhost",
            "--port",
            &port.to_string(),
            "--cert-folder",
            folder,
            "whoami",
        ],
    );
    assert_eq!(code, cli::EXIT_CONFIG);
    assert_eq!(
        err,
        format!(
            "error: TLS and plaintext do not match: localhost:{port} answers in plaintext but this client uses TLS; remove `--cert-folder` (or `cert_folder` in the profile)\n"
        )
    );
}

#[test]
fn a_certificate_from_another_ca_exits_7_with_the_reason() {
    let (tls, _pki, token) = tls_manager();
    let port = tls.m().port();
    let other = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(other.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let (code, err) = manta(
        &[("MANTA_TOKEN", token.expose_secret())],
        &[
            "--host",
            "localhost",
            "--port",
            &port.to_string(),
            "--cert-folder",
            other.path().to_str().unwrap(),
            "whoami",
        ],
    );
    assert_eq!(code, cli::EXIT_CONFIG);
    assert_eq!(
        err,
        format!(
            "error: TLS handshake with localhost:{port} failed: invalid peer certificate: BadSignature; check that ca.crt in the cert folder is the CA that signed the manager's certificate\n"
        )
    );
}

#[test]
fn manta_node_recognises_the_user_api_port() {
    use std::os::unix::fs::PermissionsExt as _;
    let bg = manager();
    let port = bg.m().port();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("nodes/worker.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\nalias = \"worker-1\"\n\n[network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {port}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let core = &bg.m().core;
    let cluster = core.platform().create_cluster("", "lab").unwrap();
    let token = core.platform().bootstrap_token(&cluster, None).unwrap();
    let env = Env::from_pairs([
        ("MANTA_NODE_TOKEN", token.expose_secret()),
        ("MANTA_HOME", home.path().to_str().unwrap()),
    ]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdin = std::io::Cursor::new(Vec::new());
    let code = manta_node::cli::run(
        ["manta_node", "config", "validate", "worker", "--online"].map(Into::into),
        &env,
        &mut manta_node::cli::Io {
            stdin: &mut stdin,
            interactive: false,
            stdout: &mut out,
            stderr: &mut err,
        },
    );
    let err = String::from_utf8_lossy(&err);
    assert_eq!(code, 78, "{err}");
    assert_eq!(
        err,
        format!(
            "Error: 127.0.0.1:{port} is the user API of a Manta manager, not the node API; set network.manager_port (or --manager) to the node API port\n"
        )
    );
}

#[tokio::test]
async fn a_manager_that_never_answers_is_waited_for_visibly_then_named() {
    // Accepts connections and never writes a byte, like a manager stuck before its handler.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let api = manta_client::UserApiBuilder::new("127.0.0.1", port)
        .token(secrecy::SecretString::from("a.b.c"))
        .no_auto_refresh()
        .retry_policy(manta_client::RetryPolicy::none())
        .timeout(std::time::Duration::from_secs(1))
        .waiting_notice(std::time::Duration::from_millis(100), {
            let notices = notices.clone();
            move |line| notices.lock().unwrap().push(line.to_owned())
        })
        .build()
        .unwrap();
    let e = api.get_user().await.unwrap_err();
    assert_eq!(cli::exit_code(&e), cli::EXIT_UNAVAILABLE);
    assert_eq!(
        e.to_string(),
        format!(
            "no answer from 127.0.0.1:{port} to get_user within 1s; if the manager is only slow, raise the timeout (`--timeout SECS`)"
        )
    );
    assert_eq!(
        *notices.lock().unwrap(),
        [format!(
            "waiting for 127.0.0.1:{port} to answer get_user (gives up after 1s)"
        )]
    );
}

/// A manager where `user` holds `scopes` and owns the running cluster `lab`, a token of
/// those scopes, and a one-task swarm file; the swarms the manager holds are on `platform()`.
struct Deployer {
    bg: Background,
    lab: String,
    token: secrecy::SecretString,
    _dir: tempfile::TempDir,
    file: String,
}

fn deployer(user: &str, scopes: &[&str]) -> Deployer {
    let bg = manager();
    let m = bg.m();
    m.add_user(user, PASSWORD, scopes);
    let owner = m.core.find_user(user).unwrap();
    let platform = m.core.platform();
    let lab = platform.create_cluster(&owner.id, "lab").unwrap();
    platform
        .set_cluster_running(&manta_manager::platform::Viewer::operator(), &lab.id, true)
        .unwrap();
    let token = m.token(user, scopes);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.zip"), b"PK\x03\x04").unwrap();
    let file = dir.path().join("swarm.json");
    std::fs::write(&file, r#"{"name":"fl","tasks":[{"alias":"t","module":{"name":"train","image":"python:3.11","program":"train.zip"}}]}"#).unwrap();
    let file = file.to_str().unwrap().to_owned();
    Deployer {
        lab: lab.id,
        token,
        _dir: dir,
        file,
        bg,
    }
}

impl Deployer {
    fn deploy(&self, cluster: &str) -> (u8, String) {
        let env = [("MANTA_TOKEN", self.token.expose_secret())];
        let args = at(
            self.bg.m().port(),
            &["swarm", "deploy", "--cluster", cluster, &self.file],
        );
        manta(&env, &strs(&args))
    }
}

#[test]
fn a_deployer_without_cluster_read_still_deploys_by_id() {
    let d = deployer("carol", &["swarm:deploy", "swarm:read", "module:upload"]);
    // Names cannot be looked up without `cluster:read`, but an id needs no look-up.
    let (code, err) = d.deploy(&d.lab);
    assert_eq!(code, 0, "{err}");
    let (code, err) = d.deploy("lab");
    assert_eq!(code, cli::EXIT_NOT_FOUND, "{err}");
    assert!(err.contains("\"lab\""), "{err}");
}

/// A TLS manager that requires client certificates, its PKI folder and a token for alice.
fn mtls_manager() -> (Background, tempfile::TempDir, secrecy::SecretString) {
    let pki = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(pki.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let tls =
        manta_tls::ServerTls::from_folder(pki.path(), manta_tls::ClientAuth::Required).unwrap();
    let bg = Background::start_with(Options {
        tls: Some(tls),
        ..Options::default()
    });
    bg.m().add_user("alice", PASSWORD, &["swarm:deploy"]);
    let token = bg.m().token("alice", &["swarm:deploy"]);
    (bg, pki, token)
}

/// A folder beside `pki` holding copies of `files` from it.
fn cut(pki: &std::path::Path, root: &std::path::Path, name: &str, files: &[&str]) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(pki.join(f), dir.join(f)).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn a_cert_folder_with_only_ca_crt_is_tls_and_its_limits_are_named() {
    let (tls, pki, token) = tls_manager();
    let (mtls, mtls_pki, mtls_token) = mtls_manager();
    let root = tempfile::tempdir().unwrap();
    let whoami = |port: u16, folder: &str, token: &secrecy::SecretString| {
        manta(
            &[("MANTA_TOKEN", token.expose_secret())],
            &[
                "--host",
                "localhost",
                "--port",
                &port.to_string(),
                "--cert-folder",
                folder,
                "whoami",
            ],
        )
    };
    // Server-authenticated TLS with the private CA, against a manager that does not
    // require client certificates; the full folder is mTLS there too.
    let ca_only = cut(pki.path(), root.path(), "ca-only", &["ca.crt"]);
    let port = tls.m().port();
    assert_eq!(whoami(port, &ca_only, &token), (0, String::new()));
    let full = pki.path().display().to_string();
    assert_eq!(whoami(port, &full, &token), (0, String::new()));

    // Half a client pair, no file at all, no folder: refused before anything is sent.
    let half = cut(pki.path(), root.path(), "half", &["ca.crt", "client.crt"]);
    assert_eq!(
        whoami(port, &half, &token),
        (
            cli::EXIT_CONFIG,
            format!(
                "error: TLS: {half}/client.key is missing: add it beside client.crt for mTLS, or remove client.crt to connect without a client certificate\n"
            )
        )
    );
    let half_key = cut(
        pki.path(),
        root.path(),
        "half-key",
        &["ca.crt", "client.key"],
    );
    let (code, err) = whoami(port, &half_key, &token);
    assert_eq!(code, cli::EXIT_CONFIG);
    assert!(
        err.starts_with(&format!(
            "error: TLS: {half_key}/client.crt is missing: add it beside client.key"
        )),
        "{err}"
    );
    let empty = cut(pki.path(), root.path(), "empty", &[]);
    assert_eq!(
        whoami(port, &empty, &token),
        (
            cli::EXIT_CONFIG,
            format!(
                "error: TLS: certificate folder {empty} holds none of ca.crt, client.crt, client.key: put the manager's CA certificate there as ca.crt (and client.crt with client.key for mTLS)\n"
            )
        )
    );
    let nowhere = root.path().join("nowhere").display().to_string();
    assert_eq!(
        whoami(port, &nowhere, &token),
        (
            cli::EXIT_CONFIG,
            format!(
                "error: TLS: certificate folder {nowhere} does not exist or is not a directory: create it or fix the path\n"
            )
        )
    );

    // A manager that requires client certificates: the ca.crt-only folder is told which
    // files to add; the full folder gets through.
    let ca_only = cut(mtls_pki.path(), root.path(), "mtls-ca-only", &["ca.crt"]);
    let port = mtls.m().port();
    assert_eq!(
        whoami(port, &ca_only, &mtls_token),
        (
            cli::EXIT_CONFIG,
            format!(
                "error: TLS: localhost:{port} requires a client certificate: add client.crt and client.key (issued by the manager's CA) to {ca_only}\n"
            )
        )
    );
    let full = mtls_pki.path().display().to_string();
    assert_eq!(whoami(port, &full, &mtls_token), (0, String::new()));
}

#[test]
fn a_deployer_without_swarm_read_is_told_the_swarm_was_deployed() {
    // Before: the swarm was sent and started, then reading it back was refused, and the
    // command exited 4 as if nothing had been deployed; deploying again made a second swarm.
    let d = deployer("dave", &["swarm:deploy", "module:upload", "cluster:read"]);
    let (code, err) = d.deploy("lab");
    assert_eq!((code, err.as_str()), (0, ""));
    let swarms =
        d.bg.m()
            .core
            .platform()
            .swarms(&manta_manager::platform::Viewer::operator())
            .unwrap();
    assert_eq!(swarms.len(), 1, "exactly one swarm deployed");
}
