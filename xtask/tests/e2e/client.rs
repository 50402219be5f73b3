//! `manta-client` and the `manta` command against a real manager: every call's success
//! and refusal paths, mTLS through a cert folder, the token chain, refresh under load,
//! rotation while calls run, and a TRACE-level secret-leak check.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use manta_client::cli::{self, Context};
use manta_client::{Error, ModuleSpec, SwarmSpec, TaskSpec, UserApi, UserApiBuilder};
use manta_config::{Env, MantaHome, MemoryStore};
use manta_manager::identity::Lifetimes;
use secrecy::{ExposeSecret as _, SecretString};

use crate::harness::{Background, Manager, ManagerExt as _, Options};

pub(crate) const PASSWORD: &str = "correct horse battery";

fn pw() -> SecretString {
    SecretString::from(PASSWORD)
}

/// A manager on `clock`, so a test moves its time instead of sleeping.
async fn manual_manager(clock: &manta_auth::ManualClock) -> Manager {
    Manager::start_with(Options {
        clock: Some(clock.shared()),
        ..Options::default()
    })
    .await
}

async fn alice(m: &Manager, scopes: &[&str]) -> UserApi {
    m.add_user("alice", PASSWORD, scopes);
    UserApi::sign_in("127.0.0.1", m.port(), "alice", &pw())
        .await
        .unwrap()
}

/// `n` concurrent GetUser calls on clones of `api`; each must answer alice.
async fn get_user_together(api: &UserApi, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get_user().await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap().username, "alice");
    }
}

/// Revokes `api`'s current token on the manager, by its `jti`.
fn revoke(m: &Manager, api: &UserApi) {
    let jti = manta_auth::inspect(api.token().expose_secret())
        .unwrap()
        .claims
        .jti
        .unwrap();
    m.core.revoke_token(&jti, None).unwrap();
}

#[tokio::test]
async fn sign_in_get_user_availability_and_logout() {
    let m = Manager::start().await;
    let api = alice(&m, &["cluster:read", "swarm:deploy"]).await;
    assert!(api.is_available().await);
    let me = api.get_user().await.unwrap();
    assert_eq!(me.username, "alice");
    assert!(
        me.has_scope("cluster:read") && me.has_scope("swarm:deploy"),
        "{me:?}"
    );
    assert!(!me.has_scope("cluster:create"));
    assert!(api.session_refresh_token().is_some());

    // Wrong password: an authentication error that says what to do, without the password.
    let wrong = UserApi::sign_in(
        "127.0.0.1",
        m.port(),
        "alice",
        &SecretString::from("nope-nope"),
    )
    .await
    .unwrap_err();
    assert!(matches!(wrong, Error::Authentication { .. }), "{wrong:?}");
    assert!(
        wrong.to_string().contains("sign in again") && !wrong.to_string().contains("nope-nope")
    );

    // A garbage token is refused by the manager, not by the client.
    let bad = UserApi::new(
        SecretString::from("not-a-jwt-at-all"),
        "127.0.0.1",
        m.port(),
    )
    .unwrap();
    assert!(matches!(
        bad.get_user().await,
        Err(Error::Authentication { .. })
    ));

    api.logout().await.unwrap();
    let after = api.get_user().await.unwrap_err();
    assert!(after.is_auth(), "{after:?}");
    assert!(api.session_refresh_token().is_none());
    m.stop().await;
}

#[tokio::test]
async fn api_tokens_create_list_revoke_and_their_refusals() {
    let m = Manager::start().await;
    let api = alice(&m, &["cluster:read", "swarm:deploy"]).await;
    let created = api
        .create_api_token(
            "ci",
            &["cluster:read".to_owned()],
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert_eq!(created.info.scopes, vec!["cluster:read".to_owned()]);
    let ci = UserApi::new(created.token.clone(), "127.0.0.1", m.port()).unwrap();
    assert_eq!(ci.get_user().await.unwrap().username, "alice");

    let listed = api.list_api_tokens(false).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.id == created.info.id && t.name == "ci" && !t.revoked),
        "{listed:?}"
    );

    // A scope the caller does not hold: PERMISSION_DENIED naming it.
    match api
        .create_api_token("x", &["cluster:create".to_owned()], None)
        .await
    {
        Err(Error::PermissionDenied { scope, .. }) => {
            assert_eq!(scope.as_deref(), Some("cluster:create"))
        }
        other => panic!("{other:?}"),
    }
    let bad = api
        .create_api_token("x", &["Not A Scope!".to_owned()], None)
        .await;
    assert!(matches!(bad, Err(Error::InvalidArgument { .. })), "{bad:?}");

    api.revoke_api_token(&created.info.id).await.unwrap();
    let refused = ci.get_user().await.unwrap_err();
    assert!(
        matches!(refused, Error::Authentication { .. }),
        "{refused:?}"
    );
    let all = api.list_api_tokens(true).await.unwrap();
    assert!(all.iter().any(|t| t.id == created.info.id && t.revoked));
    assert!(matches!(
        api.revoke_api_token("no-such-id").await,
        Err(Error::NotFound { .. })
    ));
    m.stop().await;
}

/// Clusters, swarms, modules and results (issue 7). While a manager answers UNIMPLEMENTED
/// the client maps that to `Error::Unimplemented` naming the method; once served, the whole
/// life cycle runs: create, list, get, start, deploy (SendModule, SendSwarm,
/// InitializeNetworks, StartSwarm, GetSwarm), list, get and stop swarms, results, stop.
#[tokio::test]
async fn cluster_swarm_module_and_result_calls() {
    let m = Manager::start().await;
    let api = alice(&m, &["admin:*"]).await;
    m.add_user("bob", PASSWORD, &[]);
    let bob = UserApi::sign_in("127.0.0.1", m.port(), "bob", &pw())
        .await
        .unwrap();

    // Without scopes the authorization layer refuses first, naming the scope.
    match bob.create_cluster(None).await {
        Err(Error::PermissionDenied { scope: Some(s), .. }) => {
            assert!(s.starts_with("cluster:"), "{s}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bob.list_clusters().await,
        Err(Error::PermissionDenied { .. })
    ));

    // A malformed swarm is refused before anything is sent.
    let module = ModuleSpec::new("train", "python:3.11", b"PK\x03\x04".to_vec());
    let mut task = TaskSpec::new("agg", module.clone());
    task.after = vec!["missing".into()];
    let bad = api
        .deploy_swarm("c1", &SwarmSpec::new("fl", vec![task]))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, Error::InvalidArgument { .. }) && bad.to_string().contains("`missing`"),
        "{bad}"
    );

    let cluster = match api.create_cluster(Some("lab")).await {
        Err(Error::Unimplemented { method }) => {
            assert_eq!(method, "ClusterManagement/CreateCluster");
            let e = api
                .deploy_swarm(
                    "c1",
                    &SwarmSpec::new("fl", vec![TaskSpec::new("t", module)]),
                )
                .await;
            assert!(
                matches!(
                    e,
                    Err(Error::Unimplemented {
                        method: "ModuleManagement/SendModule"
                    })
                ),
                "{e:?}"
            );
            m.stop().await;
            return;
        }
        other => other.unwrap(),
    };
    assert!(api.list_clusters().await.unwrap().contains(&cluster));
    let got = api.get_cluster(&cluster).await.unwrap();
    assert_eq!(
        (got.id.as_str(), got.name.as_str()),
        (cluster.as_str(), "lab")
    );
    assert!(matches!(
        api.get_cluster("00000000000000000000000000000bad").await,
        Err(Error::NotFound { .. })
    ));
    let started = api.start_cluster(&cluster).await.unwrap();
    assert_eq!(started.status, "RUNNING");

    let mut second = TaskSpec::new(
        "aggregate",
        ModuleSpec::new("agg", "python:3.11", b"PK\x03\x04".to_vec()),
    );
    second.after = vec!["train".into()];
    let spec = SwarmSpec::new("fl", vec![TaskSpec::new("train", module), second]);
    let swarm = api.deploy_swarm(&cluster, &spec).await.unwrap();
    assert_eq!(
        (swarm.name.as_str(), swarm.cluster_id.as_str()),
        ("fl", cluster.as_str())
    );
    assert!(api.list_swarms().await.unwrap().contains(&swarm.id));
    assert_eq!(api.get_swarm(&swarm.id).await.unwrap().id, swarm.id);
    assert!(api.results(&swarm.id, "loss").await.unwrap().is_empty());
    assert!(api.result_tags(&swarm.id).await.unwrap().is_empty());
    api.stop_swarm(&swarm.id).await.unwrap();
    let stopped = api.get_swarm(&swarm.id).await.unwrap();
    assert!(
        stopped.status == "STOPPED" || stopped.status == "KILLED",
        "{stopped:?}"
    );
    assert!(matches!(
        api.stop_swarm("00000000000000000000000000000bad").await,
        Err(Error::NotFound { .. })
    ));
    api.stop_cluster(&cluster).await.unwrap();
    assert_eq!(api.get_cluster(&cluster).await.unwrap().status, "STOPPED");
    m.stop().await;
}

#[tokio::test]
async fn expiry_during_a_burst_of_concurrent_calls_causes_one_refresh() {
    // One manual clock for the manager and the client: the token expires for both when it
    // is moved, without sleeping.
    let clock = manta_auth::ManualClock::starting_now();
    let m = Manager::start_with(Options {
        lifetimes: Lifetimes {
            access: Duration::from_secs(2),
            ..Lifetimes::default()
        },
        clock: Some(clock.shared()),
        ..Options::default()
    })
    .await;
    m.add_user("alice", PASSWORD, &[]);
    let api = UserApiBuilder::new("127.0.0.1", m.port())
        .clock(clock.shared())
        .sign_in("alice", &pw())
        .await
        .unwrap();
    let first = api.token();
    clock.advance(Duration::from_millis(2600));
    get_user_together(&api, 24).await;
    assert_eq!(api.refresh_count(), 1);
    assert_ne!(api.token().expose_secret(), first.expose_secret());
    m.stop().await;
}

#[tokio::test]
async fn a_token_refused_by_the_server_is_renewed_once_and_the_calls_retried() {
    let clock = manta_auth::ManualClock::starting_now();
    let m = manual_manager(&clock).await;
    let api = alice(&m, &[]).await;
    // The renewed token must expire strictly later than the current one (manta-auth checks
    // that, with one-second resolution): the manager's clock moves on instead of a sleep.
    clock.advance(Duration::from_millis(1100));
    revoke(&m, &api);
    get_user_together(&api, 16).await;
    assert_eq!(api.refresh_count(), 1);

    // An API token (no session) that is revoked cannot be renewed: one clear error.
    let t = m.token("alice", &[]);
    let plain = UserApi::new(t, "127.0.0.1", m.port()).unwrap();
    revoke(&m, &plain);
    let e = plain.get_user().await.unwrap_err();
    assert!(
        matches!(e, Error::Authentication { .. }) && e.to_string().contains("revoked"),
        "{e}"
    );
    m.stop().await;
}

#[tokio::test]
async fn refresh_token_rotation_while_calls_run() {
    let clock = manta_auth::ManualClock::starting_now();
    let m = manual_manager(&clock).await;
    let api = alice(&m, &[]).await;
    // Renewed tokens must expire strictly later (one-second resolution).
    clock.advance(Duration::from_millis(1100));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let worker = {
        let (api, stop, calls) = (api.clone(), Arc::clone(&stop), Arc::clone(&calls));
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                api.get_user().await.unwrap();
                n += 1;
                calls.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n
        })
    };
    let r1 = api.session_refresh_token().unwrap();
    let new_access = api.refresh_token(&r1).await.unwrap();
    assert_eq!(api.token().expose_secret(), new_access.expose_secret());
    let r2 = api.session_refresh_token().unwrap();
    assert_ne!(
        r1.expose_secret(),
        r2.expose_secret(),
        "the refresh token rotates"
    );
    // The seed's pattern: a new API from the refreshed token works too.
    let again = UserApi::new(new_access, "127.0.0.1", m.port()).unwrap();
    assert_eq!(again.get_user().await.unwrap().username, "alice");
    // The worker keeps calling across the rotation: let it make a few more calls after it.
    let after = calls.load(std::sync::atomic::Ordering::Relaxed);
    while calls.load(std::sync::atomic::Ordering::Relaxed) < after + 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(worker.await.unwrap() > 0);

    // Reusing a spent refresh token is refused (and the manager ends the session).
    let reuse = api.refresh_token(&r1).await.unwrap_err();
    assert!(reuse.is_auth(), "{reuse:?}");

    // rotate_token swaps the token for every clone at once.
    let other = m.token("alice", &[]);
    let clone = api.clone();
    api.rotate_token(other.clone());
    assert_eq!(clone.token().expose_secret(), other.expose_secret());
    assert_eq!(clone.get_user().await.unwrap().username, "alice");
    m.stop().await;
}

#[tokio::test]
async fn mtls_through_a_cert_folder() {
    let pki = tempfile::tempdir().unwrap();
    manta_tls::DevPki::create(pki.path(), &manta_tls::DevPkiOptions::default()).unwrap();
    let tls =
        manta_tls::ServerTls::from_folder(pki.path(), manta_tls::ClientAuth::Required).unwrap();
    let m = Manager::start_with(Options {
        tls: Some(tls),
        ..Options::default()
    })
    .await;
    m.add_user("alice", PASSWORD, &[]);
    let api = UserApiBuilder::new("localhost", m.port())
        .cert_folder(pki.path())
        .sign_in("alice", &pw())
        .await
        .unwrap();
    assert!(api.is_tls());
    assert_eq!(api.get_user().await.unwrap().username, "alice");

    // Plaintext against a TLS manager: a mismatch, which says to add the cert folder.
    let plain = UserApiBuilder::new("localhost", m.port())
        .token(api.token())
        .retry_policy(manta_client::RetryPolicy::none())
        .build()
        .unwrap();
    let e = plain.get_user().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::TlsMismatch {
                client_tls: false,
                ..
            }
        ),
        "{e:?}"
    );

    // A folder without client.key is an error at build time, never a plaintext fallback.
    let partial = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "client.crt"] {
        std::fs::copy(pki.path().join(f), partial.path().join(f)).unwrap();
    }
    let e = UserApiBuilder::new("localhost", m.port())
        .cert_folder(partial.path())
        .token(api.token())
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Tls(_)) && e.to_string().contains("client.key"),
        "{e}"
    );
    m.stop().await;
}

fn write_mode(path: &std::path::Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn token_chain_profiles_and_the_file_permission_refusal() {
    let m = Manager::start().await;
    m.add_user("alice", PASSWORD, &[]);
    let token = m.token("alice", &[]);
    let home_dir = tempfile::tempdir().unwrap();
    let home = MantaHome::at(home_dir.path());
    write_mode(
        &home.client_config(),
        &format!(
            "default_profile = \"dev\"\n[profiles.dev]\nhost = \"127.0.0.1\"\nport = {}\ntoken_env = \"MANTA_DEV_TOKEN\"\n[profiles.prod]\nhost = \"127.0.0.1\"\nport = {}\n",
            m.port(),
            m.port()
        ),
        0o644,
    );
    let connect = |r: manta_client::Resolved| {
        UserApiBuilder::for_profile(&r.profile.profile)
            .token(r.token.token)
            .build()
            .unwrap()
    };

    // The profile's own variable.
    let env = Env::from_pairs([("MANTA_DEV_TOKEN", token.expose_secret())]);
    let r = UserApi::resolve(None, None, &env, &home, None).unwrap();
    assert_eq!(
        (r.profile.name.as_str(), r.token.source.to_string().as_str()),
        ("dev", "environment variable MANTA_DEV_TOKEN")
    );
    assert_eq!(connect(r).get_user().await.unwrap().username, "alice");

    // MANTA_ENV picks prod, whose token comes from credentials.ini, refused while readable.
    let env = Env::from_pairs([("MANTA_ENV", "prod")]);
    write_mode(
        &home.credentials(),
        &format!("[profile.prod]\ntoken = {}\n", token.expose_secret()),
        0o644,
    );
    let e = UserApi::resolve(None, None, &env, &home, None).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(
        e.to_string().contains("chmod 600") && !e.to_string().contains(token.expose_secret()),
        "{e}"
    );
    write_mode(
        &home.credentials(),
        &format!("[profile.prod]\ntoken = {}\n", token.expose_secret()),
        0o600,
    );
    let r = UserApi::resolve(None, None, &env, &home, None).unwrap();
    assert_eq!(r.profile.name, "prod");
    assert_eq!(connect(r).get_user().await.unwrap().username, "alice");

    // Then the keyring; an unknown profile lists the available ones.
    std::fs::remove_file(home.credentials()).unwrap();
    let store = MemoryStore::new();
    manta_config::SecretStore::set(&store, "manta", "api_token@prod", &token).unwrap();
    let r = UserApi::resolve(Some("prod"), None, &env, &home, Some(&store)).unwrap();
    assert_eq!(r.token.source.to_string(), "keyring manta/api_token@prod");
    let e = UserApi::resolve(Some("prd"), None, &env, &home, Some(&store)).unwrap_err();
    assert!(e.to_string().contains("did you mean `prod`?"), "{e}");
    m.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_blocking_facade_works_inside_a_runtime_against_the_manager() {
    // The manager runs on its own runtime; this test's runtime only hosts the facade call.
    let bg = std::thread::spawn(|| {
        let bg = Background::start_with(Options::default());
        bg.m().add_user("alice", PASSWORD, &[]);
        bg
    })
    .join()
    .unwrap();
    let token = bg.m().token("alice", &[]);
    let api = manta_client::blocking::UserApi::new(token, "127.0.0.1", bg.m().port()).unwrap();
    assert!(api.is_available());
    assert_eq!(api.get_user().unwrap().username, "alice");
    drop(api);
    std::thread::spawn(move || drop(bg)).join().unwrap();
}

/// Collects log output from every thread of a test.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn no_secret_appears_in_trace_logs_errors_or_audit() {
    let logs = Captured::default();
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_path = audit_dir.path().join("manta_api_audit.log");
    let subscriber = {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer({
                        let logs = logs.clone();
                        move || logs.clone()
                    })
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
            )
            .with(manta_client::audit::file_layer(&audit_path).unwrap())
    };
    // One thread, one runtime: the thread-local subscriber sees the client, the manager,
    // tonic, hyper and h2 at TRACE.
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];
    let mut errors = String::new();
    tracing::subscriber::with_default(subscriber, || {
        // Other tests of this binary run on other threads without a subscriber, and tracing
        // caches "nobody listens" per call site: recompute it now that this one listens.
        tracing::callsite::rebuild_interest_cache();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Renewed tokens must expire strictly later (one-second resolution): the shared
            // clock moves on instead of sleeping.
            let clock = manta_auth::ManualClock::starting_now();
            let m = manual_manager(&clock).await;
            m.add_user("alice", PASSWORD, &["cluster:read"]);
            let api = UserApiBuilder::new("127.0.0.1", m.port())
                .audit(true)
                .clock(clock.shared())
                .sign_in("alice", &pw())
                .await
                .unwrap();
            secrets.push(api.token().expose_secret().to_owned());
            let refresh = api.session_refresh_token().unwrap();
            secrets.push(refresh.expose_secret().to_owned());
            api.get_user().await.unwrap();
            clock.advance(Duration::from_millis(1100));
            let renewed = api.refresh_token(&refresh).await.unwrap();
            secrets.push(renewed.expose_secret().to_owned());
            secrets.push(
                api.session_refresh_token()
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
            );
            clock.advance(Duration::from_millis(1100));
            secrets.push(api.refresh_now().await.unwrap().expose_secret().to_owned());
            let created = api
                .create_api_token("ci", &["cluster:read".into()], None)
                .await
                .unwrap();
            secrets.push(created.token.expose_secret().to_owned());
            errors.push_str(&format!("{created:?}\n{api:?}\n"));
            // Errors: wrong password, a spent refresh token, a revoked token, a bad token.
            for e in [
                UserApi::sign_in(
                    "127.0.0.1",
                    m.port(),
                    "alice",
                    &SecretString::from("wrong-password-123"),
                )
                .await
                .unwrap_err(),
                api.refresh_token(&refresh).await.unwrap_err(),
                api.get_user().await.unwrap_err(),
                UserApi::new(
                    SecretString::from(secrets[1].clone()),
                    "127.0.0.1",
                    m.port(),
                )
                .unwrap()
                .get_user()
                .await
                .unwrap_err(),
            ] {
                errors.push_str(&format!("{e}\n{e:?}\n"));
            }
            secrets.push("wrong-password-123".to_owned());
            m.stop().await;
        });
    });
    let logs = logs.text();
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert!(
        logs.contains("TRACE"),
        "the capture must really be at TRACE level"
    );
    assert!(
        audit.contains("sign_in")
            && audit.contains("password=[REDACTED]")
            && audit.contains("refresh_token"),
        "{audit}"
    );
    for s in &secrets {
        for (name, text) in [("logs", &logs), ("errors", &errors), ("audit", &audit)] {
            assert!(
                !text.contains(s.as_str()),
                "a secret appeared in the {name}"
            );
        }
        // Tokens also never appear split across h2 frames: check a distinctive middle part.
        if s.len() > 60 {
            let middle = &s[s.len() / 2 - 10..s.len() / 2 + 10];
            assert!(
                !logs.contains(middle),
                "part of a token appeared in the logs"
            );
        }
    }
}

/// Runs the `manta` command in-process with its own home, keyring and standard input.
pub(crate) struct Cmd<'a> {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) store: &'a MemoryStore,
    pub(crate) stdin: String,
    pub(crate) logs: Captured,
}

impl Cmd<'_> {
    pub(crate) fn run(&self, args: &[&str]) -> (u8, String, String) {
        let mut stdin = std::io::Cursor::new(self.stdin.clone().into_bytes());
        let mut ctx = Context {
            env: Env::from_pairs(self.env.clone()),
            store: self.store,
            stdin: &mut stdin,
            stdin_is_terminal: false,
            log: tracing_subscriber::fmt::writer::BoxMakeWriter::new({
                let logs = self.logs.clone();
                move || logs.clone()
            }),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli::run_with(
            std::iter::once("manta").chain(args.iter().copied()),
            &mut ctx,
            &mut out,
            &mut err,
        );
        let code = exit_u8(code);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }
}

fn exit_u8(code: ExitCode) -> u8 {
    // ExitCode has no accessor; its Debug shows the number.
    let text = format!("{code:?}");
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn the_manta_command_end_to_end() {
    let clock = manta_auth::ManualClock::starting_now();
    let bg = Background::start_with(Options {
        clock: Some(clock.shared()),
        ..Options::default()
    });
    bg.m()
        .add_user("alice", PASSWORD, &["cluster:read", "swarm:deploy"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[profiles.local]\nhost = \"127.0.0.1\"\nport = {}\n[profiles.other]\nport = 1\n",
            bg.m().port()
        ),
    )
    .unwrap();
    let store = MemoryStore::new();
    let mut cmd = Cmd {
        env: vec![
            ("MANTA_HOME".into(), home.path().display().to_string()),
            ("MANTA_ENV".into(), "local".into()),
        ],
        store: &store,
        stdin: String::new(),
        logs: Captured::default(),
    };

    // Not signed in yet: an auth exit code and the way out.
    let (code, _, err) = cmd.run(&["whoami"]);
    assert_eq!(code, cli::EXIT_AUTH, "{err}");
    assert!(
        err.contains("--token") || err.contains("MANTA_TOKEN"),
        "{err}"
    );

    // Wrong password, then right, stored in credentials.ini with mode 0600.
    cmd.stdin = "wrong-password-1\n".into();
    let (code, _, err) = cmd.run(&[
        "login",
        "-u",
        "alice",
        "--password-stdin",
        "--store",
        "file",
        "-vvv",
    ]);
    assert_eq!(code, cli::EXIT_AUTH, "{err}");
    cmd.stdin = format!("{PASSWORD}\n");
    let (code, out, err) = cmd.run(&[
        "login",
        "-u",
        "alice",
        "--password-stdin",
        "--store",
        "file",
        "-vvv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signed in as alice"), "{out}");
    let creds = home.path().join("credentials.ini");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = SecretString::from(stored_for("local", &creds).0.unwrap());
    let logs = cmd.logs.text();
    assert!(
        logs.contains("TRACE") && !logs.contains(PASSWORD) && !logs.contains(token.expose_secret())
    );
    cmd.stdin.clear();

    let (code, out, _) = cmd.run(&["whoami"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("alice (id ")
            && out.contains("cluster:read")
            && out.contains("credentials file"),
        "{out}"
    );
    let (code, out, _) = cmd.run(&["whoami", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["username"], "alice");

    // inspect: decoded header and claims, never the signature or the token.
    let (code, out, _) = cmd.run(&["token", "inspect"]);
    assert_eq!(code, 0);
    let signature = token.expose_secret().rsplit('.').next().unwrap();
    assert!(
        out.contains("NOT verified") && out.contains("kind:") && out.contains("time left"),
        "{out}"
    );
    assert!(!out.contains(signature) && !out.contains(token.expose_secret()));
    cmd.stdin = format!("{}\n", token.expose_secret());
    let (code, out, _) = cmd.run(&["token", "inspect", "-", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["claims"]["exp"].is_u64(), "{out}");
    let (code, _, err) = cmd.run(&["token", "inspect", "not.a.jwt"]);
    assert_eq!(code, cli::EXIT_USAGE, "{err}");
    cmd.stdin.clear();

    // API tokens.
    let (code, out, err) = cmd.run(&[
        "token",
        "create",
        "--name",
        "ci",
        "--scopes",
        "cluster:read",
        "--ttl",
        "1d",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["token"].as_str().unwrap().starts_with("eyJ"));
    let (code, out, _) = cmd.run(&["token", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("ci"), "{out}");
    let (code, _, err) = cmd.run(&[
        "token",
        "create",
        "--name",
        "x",
        "--scopes",
        "cluster:create",
    ]);
    assert_eq!(code, cli::EXIT_PERMISSION, "{err}");
    let (code, out, _) = cmd.run(&["token", "revoke", &id]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = cmd.run(&["token", "revoke", "nope"]);
    assert_eq!(code, cli::EXIT_NOT_FOUND);

    // Refresh stores the new token where the old one came from. The renewed token must
    // expire strictly later (one-second resolution): the manager's clock moves on.
    clock.advance(Duration::from_millis(1100));
    let (code, out, err) = cmd.run(&["token", "refresh"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stored in") && !out.contains("eyJ"), "{out}");
    let renewed = SecretString::from(stored_for("local", &creds).0.unwrap());
    assert_ne!(renewed.expose_secret(), token.expose_secret());

    // Clusters and swarms await issue 7: UNIMPLEMENTED has its own exit code.
    let (code, _, err) = cmd.run(&["cluster", "list"]);
    assert!(code == cli::EXIT_UNIMPLEMENTED || code == 0, "{code} {err}");
    let (code, _, err) = cmd.run(&["cluster", "create", "--name", "lab"]);
    assert_eq!(code, cli::EXIT_PERMISSION, "{err}");
    assert!(err.contains("cluster:"), "{err}");
    let swarm_dir = tempfile::tempdir().unwrap();
    std::fs::write(swarm_dir.path().join("train.zip"), b"PK\x03\x04").unwrap();
    let swarm_file = swarm_dir.path().join("swarm.json");
    std::fs::write(&swarm_file, r#"{"name":"fl","tasks":[{"alias":"t","module":{"name":"train","image":"python:3.11","program":"missing.zip"}}]}"#).unwrap();
    let (code, _, err) = cmd.run(&[
        "swarm",
        "deploy",
        "--cluster",
        "c1",
        swarm_file.to_str().unwrap(),
    ]);
    assert_eq!(code, cli::EXIT_FAILURE, "{err}");
    assert!(err.contains("missing.zip"), "{err}");
    std::fs::write(&swarm_file, r#"{"name":"fl","tasks":[{"alias":"t","module":{"name":"train","image":"python:3.11","program":"train.zip"}}]}"#).unwrap();
    let (code, _, err) = cmd.run(&[
        "swarm",
        "deploy",
        "--cluster",
        "c1",
        swarm_file.to_str().unwrap(),
    ]);
    // No cluster has that id or name: refused before any module is uploaded.
    assert_eq!(code, cli::EXIT_NOT_FOUND, "{err}");
    assert!(err.contains("no cluster has the id or name `c1`"), "{err}");

    // Profiles.
    let (code, out, _) = cmd.run(&["profile", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("* local") && out.contains("  other"), "{out}");
    let (code, _, err) = cmd.run(&["profile", "use", "othr"]);
    assert_eq!(code, cli::EXIT_CONFIG);
    assert!(err.contains("did you mean `other`?"), "{err}");
    cmd.env.retain(|(k, _)| k != "MANTA_ENV");
    let (code, _, _) = cmd.run(&["profile", "use", "local"]);
    assert_eq!(code, 0);
    let (code, out, _) = cmd.run(&["profile", "list", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "local" && p["current"] == true),
        "{out}"
    );

    // Usage errors, completions, and an unreachable manager.
    assert_eq!(cmd.run(&["cluster"]).0, cli::EXIT_USAGE);
    assert_eq!(
        cmd.run(&[
            "token", "create", "--name", "x", "--scopes", "a", "--ttl", "3w"
        ])
        .0,
        cli::EXIT_USAGE
    );
    let (code, out, _) = cmd.run(&["completions", "bash"]);
    assert!(code == 0 && out.contains("manta") && out.contains("whoami"));
    // Profile `other` has nothing stored, and local's credential is never sent to it.
    assert_eq!(cmd.run(&["whoami", "--profile", "other"]).0, cli::EXIT_AUTH);

    // Logout ends the session and forgets the stored token; the keyring path too.
    let (code, out, _) = cmd.run(&["logout"]);
    assert_eq!(code, 0, "{out}");
    assert!(stored_for("local", &creds).0.is_none());
    assert_eq!(cmd.run(&["whoami"]).0, cli::EXIT_AUTH);
    cmd.stdin = format!("{PASSWORD}\n");
    assert_eq!(cmd.run(&["login", "-u", "alice", "--password-stdin"]).0, 0);
    assert!(
        manta_config::SecretStore::get(&store, "manta", "api_token@local")
            .unwrap()
            .is_some()
    );
    cmd.stdin.clear();
    assert_eq!(cmd.run(&["whoami"]).0, 0);
    assert_eq!(cmd.run(&["logout"]).0, 0);
    assert!(
        manta_config::SecretStore::get(&store, "manta", "api_token@local")
            .unwrap()
            .is_none()
    );
    let _ = std::io::stderr().flush();
}

/// A manager whose access tokens last 2 s (so `manta` finds them expired or due for renewal),
/// a MANTA_HOME with a `local` profile pointing at it, and alice signed in with `--store file`.
/// Returns the manager, the home, the keyring and the credentials file.
fn signed_in_with_short_tokens() -> (
    Background,
    tempfile::TempDir,
    MemoryStore,
    std::path::PathBuf,
) {
    let bg = Background::start_with(Options {
        lifetimes: Lifetimes {
            access: Duration::from_secs(2),
            ..Lifetimes::default()
        },
        ..Options::default()
    });
    bg.m().add_user("alice", PASSWORD, &["cluster:read"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "default_profile = \"local\"\n[profiles.local]\nhost = \"127.0.0.1\"\nport = {}\n",
            bg.m().port()
        ),
    )
    .unwrap();
    let creds = home.path().join("credentials.ini");
    (bg, home, MemoryStore::new(), creds)
}

fn cmd_for<'a>(home: &tempfile::TempDir, store: &'a MemoryStore) -> Cmd<'a> {
    Cmd {
        env: vec![("MANTA_HOME".into(), home.path().display().to_string())],
        store,
        stdin: String::new(),
        logs: Captured::default(),
    }
}

fn login(cmd: &mut Cmd<'_>, extra: &[&str]) {
    cmd.stdin = format!("{PASSWORD}\n");
    let mut args = vec!["login", "-u", "alice", "--password-stdin"];
    args.extend_from_slice(extra);
    let (code, out, err) = cmd.run(&args);
    assert_eq!(code, 0, "{out} {err}");
    cmd.stdin.clear();
}

/// The access token and session refresh token a credentials file holds for profile `local`.
fn stored(creds: &std::path::Path) -> (Option<String>, Option<String>) {
    stored_for("local", creds)
}

/// The access token and session refresh token a credentials file holds for `profile`.
fn stored_for(profile: &str, creds: &std::path::Path) -> (Option<String>, Option<String>) {
    let home = MantaHome::at(creds.parent().unwrap());
    let slot = manta_config::CredentialSlot::new(profile);
    match manta_config::read_file_credential(&home, &slot, false).unwrap() {
        Some(c) => (
            Some(c.token.expose_secret().to_owned()),
            c.refresh_token.map(|r| r.expose_secret().to_owned()),
        ),
        None => (None, None),
    }
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `f` with an API (no token, no automatic refresh) on the manager, on a runtime of its
/// own: the `manta` command must not run inside one, so the test thread has none.
pub(crate) fn with_api<T>(port: u16, token: Option<&str>, f: impl AsyncFnOnce(UserApi) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = UserApiBuilder::new("127.0.0.1", port).no_auto_refresh();
        if let Some(t) = token {
            b = b.token(SecretString::from(t.to_owned()));
        }
        f(b.build().unwrap()).await
    })
}

/// Waits (without asserting how long it takes) until `token` is past its `exp`: expired for
/// the client (the manager still accepts it for its clock-skew leeway).
///
/// A real wait of up to the 2 s token lifetime: the `manta` command builds its own client on
/// the system clock (it has no clock to inject), and the point is that the command itself
/// finds the stored token expired.
fn wait_until_expired(token: &str) {
    let exp = manta_auth::inspect(token).unwrap().claims.exp.unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_expired_stored_session_is_renewed_and_both_new_tokens_are_stored() {
    let (bg, home, store, creds) = signed_in_with_short_tokens();
    let mut cmd = cmd_for(&home, &store);

    // Credentials file: both tokens, mode 0600.
    login(&mut cmd, &["--store", "file"]);
    let (token, refresh) = stored(&creds);
    let (token, refresh) = (
        token.unwrap(),
        refresh.expect("login stores the refresh token"),
    );
    assert_eq!(mode_of(&creds), 0o600);
    wait_until_expired(&token);

    let (code, out, err) = cmd.run(&["whoami"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("session: renewable"), "{out}");
    let (new_token, new_refresh) = stored(&creds);
    let (new_token, new_refresh) = (new_token.unwrap(), new_refresh.unwrap());
    assert_ne!(new_token, token);
    assert_ne!(new_refresh, refresh);
    assert_eq!(mode_of(&creds), 0o600);
    // whoami names the place, never the refresh token.
    let (code, out, err) = cmd.run(&["whoami", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["session_renewable"], true, "{out}");
    let (_, latest) = stored(&creds);
    for text in [&out, &cmd.logs.text()] {
        for secret in [&refresh, &new_refresh, latest.as_ref().unwrap()] {
            assert!(!text.contains(secret.as_str()), "a refresh token was shown");
        }
    }

    // Keyring: the same, in the entries manta/api_token@local and manta/refresh_token@local.
    login(&mut cmd, &[]);
    let get = |entry| {
        manta_config::SecretStore::get(&store, "manta", entry)
            .unwrap()
            .map(|s| s.expose_secret().to_owned())
    };
    let (token, refresh) = (
        get("api_token@local").unwrap(),
        get("refresh_token@local").unwrap(),
    );
    // The file still holds the earlier session; the keyring login must not be shadowed by it.
    std::fs::remove_file(&creds).unwrap();
    wait_until_expired(&token);
    let (code, _, err) = cmd.run(&["token", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(get("api_token@local").unwrap(), token);
    assert_ne!(get("refresh_token@local").unwrap(), refresh);
    drop(cmd);
    std::thread::spawn(move || drop(bg)).join().unwrap();
}

#[test]
fn a_session_that_cannot_be_renewed_fails_with_the_login_hint_and_is_forgotten() {
    let (bg, home, store, creds) = signed_in_with_short_tokens();
    let port = bg.m().port();
    let mut cmd = cmd_for(&home, &store);

    // Revoked on the manager (e.g. an administrator or another logout).
    login(&mut cmd, &["--store", "file"]);
    let (token, refresh) = stored(&creds);
    with_api(port, None, async |api| {
        api.revoke_session(&SecretString::from(refresh.unwrap()))
            .await
            .unwrap();
    });
    wait_until_expired(token.as_deref().unwrap());
    let (code, _, err) = cmd.run(&["whoami"]);
    assert_eq!(code, cli::EXIT_AUTH, "{err}");
    assert!(err.contains("run `manta login` again"), "{err}");
    assert_eq!(
        stored(&creds).1,
        None,
        "the refused refresh token is removed"
    );
    assert_eq!(mode_of(&creds), 0o600);
    // Nothing left to renew with: the expired token is refused as before.
    let (code, _, err) = cmd.run(&["whoami"]);
    assert_eq!(code, cli::EXIT_AUTH, "{err}");

    // Reuse detected: someone else already used the stored refresh token.
    login(&mut cmd, &["--store", "file"]);
    let (token, refresh) = stored(&creds);
    with_api(port, None, async |api| {
        api.refresh_token(&SecretString::from(refresh.unwrap()))
            .await
            .unwrap();
    });
    wait_until_expired(token.as_deref().unwrap());
    let (code, _, err) = cmd.run(&["token", "list"]);
    assert_eq!(code, cli::EXIT_AUTH, "{err}");
    assert!(err.contains("run `manta login` again"), "{err}");
    assert_eq!(stored(&creds).1, None);
    drop(cmd);
    std::thread::spawn(move || drop(bg)).join().unwrap();
}

#[test]
fn logout_revokes_the_stored_session_and_forgets_both_tokens() {
    let (bg, home, store, creds) = signed_in_with_short_tokens();
    let port = bg.m().port();
    let mut cmd = cmd_for(&home, &store);
    std::fs::write(&creds, "# keep me\n[auth]\nuser = alice\n").unwrap();
    login(&mut cmd, &["--store", "file"]);
    let (token, refresh) = stored(&creds);
    assert!(token.is_some());
    let refresh = SecretString::from(refresh.unwrap());
    // The stored access token is one the manager does not take, so it cannot end the
    // session through the published Logout: logout must use the refresh token.
    manta_config::save_credential(
        &MantaHome::at(home.path()),
        None,
        manta_config::CredentialStore::File,
        &manta_config::CredentialSlot::new("local"),
        &SecretString::from("not-a-valid-token"),
        Some(&refresh),
        &format!("127.0.0.1:{port}"),
    )
    .unwrap();

    let (code, out, err) = cmd.run(&["logout"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("session refresh token"), "{out}");
    assert_eq!(stored(&creds), (None, None));
    let text = std::fs::read_to_string(&creds).unwrap();
    assert!(
        text.contains("# keep me") && text.contains("user = alice"),
        "{text}"
    );
    let reuse = with_api(port, None, async |api| api.refresh_token(&refresh).await);
    assert!(
        matches!(&reuse, Err(e) if e.is_auth()),
        "the old refresh token still works: {reuse:?}"
    );
    assert_eq!(cmd.run(&["whoami"]).0, cli::EXIT_AUTH);

    // The keyring: both entries go.
    login(&mut cmd, &[]);
    let get = |entry| manta_config::SecretStore::get(&store, "manta", entry).unwrap();
    let refresh = get("refresh_token@local").unwrap();
    let (code, _, err) = cmd.run(&["logout"]);
    assert_eq!(code, 0, "{err}");
    assert!(get("api_token@local").is_none() && get("refresh_token@local").is_none());
    let reuse = with_api(port, None, async |api| api.refresh_token(&refresh).await);
    assert!(matches!(&reuse, Err(e) if e.is_auth()), "{reuse:?}");
    drop(cmd);
    std::thread::spawn(move || drop(bg)).join().unwrap();
}

/// `manta args` whose standard output is one JSON document; the command must succeed.
fn json_of(cmd: &Cmd<'_>, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = cmd.run(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn clusters_are_named_by_id_or_unique_name() {
    let bg = Background::start_with(Options::default());
    bg.m().add_user("alice", PASSWORD, &["admin:*"]);
    let home = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let mut cmd = cmd_for(&home, &store);
    cmd.env.push(("MANTA_TOKEN".into(), {
        bg.m()
            .token("alice", &["admin:*"])
            .expose_secret()
            .to_owned()
    }));
    let at = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--host".to_owned(), "127.0.0.1".into(), "--port".into()];
        all.push(bg.m().port().to_string());
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };
    let run = |args: &[&str]| cmd.run(&at(args).iter().map(String::as_str).collect::<Vec<_>>());
    let json = |args: &[&str]| {
        json_of(
            &cmd,
            &at(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    let lab = json(&["cluster", "create", "--name", "lab", "--json"])["cluster_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The list shows names, for people and for scripts.
    let (code, out, _) = run(&["cluster", "list"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("{lab}  CREATED  lab\n"));
    let listed = json(&["cluster", "list", "--json"]);
    assert_eq!(listed[0]["id"], lab.as_str(), "{listed}");
    assert_eq!(listed[0]["name"], "lab", "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // A unique name works wherever a cluster is named.
    assert_eq!(
        json(&["cluster", "get", "lab", "--json"])["id"],
        lab.as_str()
    );
    assert_eq!(
        json(&["cluster", "start", "lab", "--json"])["status"],
        "RUNNING"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.zip"), b"PK\x03\x04").unwrap();
    let file = dir.path().join("swarm.json");
    std::fs::write(&file, r#"{"name":"fl","tasks":[{"alias":"t","module":{"name":"train","image":"python:3.11","program":"train.zip"}}]}"#).unwrap();
    let file = file.to_str().unwrap();
    let swarm = json(&["swarm", "deploy", "--cluster", "lab", file, "--json"]);
    assert_eq!(swarm["cluster_id"], lab.as_str(), "{swarm}");

    // A name that matches nothing, or several clusters: refused with what to do next, and
    // nothing deployed.
    let (code, out, err) = run(&["swarm", "deploy", "--cluster", "lap", file]);
    assert_eq!(code, cli::EXIT_NOT_FOUND, "{err}");
    assert_eq!(
        err,
        "error: no cluster has the id or name `lap`; list clusters with `manta cluster list`\n"
    );
    assert_eq!(out, "");
    let twin = json(&["cluster", "create", "--name", "lab", "--json"])["cluster_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for args in [
        &["swarm", "deploy", "--cluster", "lab", file][..],
        &["cluster", "get", "lab"][..],
        &["cluster", "stop", "lab"][..],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, cli::EXIT_USAGE, "{args:?}: {err}");
        assert!(
            err.starts_with("error: 2 clusters are named `lab` (")
                && err.contains(&lab)
                && err.contains(&twin)
                && err.ends_with("); give the id of the one you mean instead\n"),
            "{args:?}: {err}"
        );
        assert_eq!(out, "");
    }
    assert_eq!(
        json(&["swarm", "list", "--json"]).as_array().unwrap().len(),
        1
    );
    // An id is still exact among namesakes.
    assert_eq!(
        json(&["cluster", "get", &twin, "--json"])["id"],
        twin.as_str()
    );
    drop(bg);
}

#[test]
fn every_command_that_prints_data_prints_one_json_object_with_json() {
    let bg = Background::start_with(Options::default());
    bg.m().add_user("alice", PASSWORD, &["admin:*"]);
    let port = bg.m().port();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.local]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let store = MemoryStore::new();
    let mut cmd = cmd_for(&home, &store);

    let used = json_of(&cmd, &["profile", "use", "local", "--json"]);
    assert_eq!(
        used,
        serde_json::json!({"default_profile": "local", "config": config.display().to_string()})
    );
    login(&mut cmd, &["--store", "file"]);

    // swarm stop and cluster stop.
    let cluster = json_of(&cmd, &["cluster", "create", "--name", "lab", "--json"])["cluster_id"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(&cmd, &["cluster", "start", &cluster, "--json"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.zip"), b"PK\x03\x04").unwrap();
    let file = dir.path().join("swarm.json");
    std::fs::write(&file, r#"{"name":"fl","tasks":[{"alias":"t","module":{"name":"train","image":"python:3.11","program":"train.zip"}}]}"#).unwrap();
    let swarm = json_of(
        &cmd,
        &[
            "swarm",
            "deploy",
            "--cluster",
            &cluster,
            file.to_str().unwrap(),
            "--json",
        ],
    );
    let swarm = swarm["id"].as_str().unwrap();
    let stopped = json_of(&cmd, &["swarm", "stop", swarm, "--json"]);
    assert_eq!(stopped["swarm_id"], swarm, "{stopped}");
    assert!(
        !stopped["message"].as_str().unwrap().is_empty(),
        "{stopped}"
    );
    let stopped = json_of(&cmd, &["cluster", "stop", &cluster, "--json"]);
    assert_eq!(stopped["cluster_id"], cluster.as_str(), "{stopped}");
    assert!(stopped["message"].is_string(), "{stopped}");

    // token revoke and token refresh.
    let created = json_of(
        &cmd,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--scopes",
            "cluster:read",
            "--json",
        ],
    );
    let id = created["id"].as_str().unwrap();
    let revoked = json_of(&cmd, &["token", "revoke", id, "--json"]);
    assert_eq!(revoked, serde_json::json!({"revoked": true, "id": id}));
    let renewed = json_of(&cmd, &["token", "refresh", "--json"]);
    let creds = home.path().join("credentials.ini");
    assert_eq!(renewed["renewed"], "session", "{renewed}");
    assert_eq!(
        renewed["stored_in"],
        format!("{} [profile.local]", creds.display()),
        "{renewed}"
    );
    assert!(renewed["token_expires_at"]["unix"].is_u64(), "{renewed}");
    assert_eq!(renewed["token"], serde_json::Value::Null);

    // profile add and remove.
    let added = json_of(
        &cmd,
        &[
            "profile",
            "add",
            "staging",
            "--host",
            "staging.example",
            "--json",
        ],
    );
    assert_eq!(
        added,
        serde_json::json!({"added": "staging", "address": "staging.example:50052",
            "connection": "plaintext", "config": config.display().to_string(),
            "login": "manta --profile staging login"})
    );
    let removed = json_of(&cmd, &["profile", "remove", "staging", "--json"]);
    assert_eq!(
        removed,
        serde_json::json!({"removed": "staging", "config": config.display().to_string(),
            "default_profile_removed": false})
    );

    // logout, with something stored and then with nothing.
    let out = json_of(&cmd, &["logout", "--json"]);
    assert_eq!(
        out,
        serde_json::json!({"logged_out": true, "profile": "local",
            "manager": format!("127.0.0.1:{port}"),
            "removed_from": format!("credentials file {} [profile.local]", creds.display()),
            "removed": ["token", "refresh_token"], "token_variable_left": null})
    );
    assert_eq!(cmd.run(&["whoami"]).0, cli::EXIT_AUTH);
    cmd.env
        .push(("MANTA_TOKEN".into(), "set-by-the-user".into()));
    let out = json_of(&cmd, &["logout", "--json"]);
    assert_eq!(
        out,
        serde_json::json!({"logged_out": false, "profile": "local", "manager": null,
            "removed_from": null, "removed": [], "token_variable_left": "MANTA_TOKEN"})
    );
    drop(bg);
}
