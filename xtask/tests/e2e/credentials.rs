//! The credential model of the `manta` command against real managers: one stored
//! credential per profile, never sent to another profile's manager or another address;
//! logout touches only what `manta login` stored; a login in a process whose session
//! keyring cannot be used falls back to the 0600 credentials file.

use std::process::Command;

use manta_client::cli;
use manta_config::{MemoryStore, SecretStore as _};
use manta_manager::store::AuditQuery;
use secrecy::ExposeSecret as _;

use crate::client::{Captured, Cmd, PASSWORD, with_api};
use crate::harness::{Background, Manager, ManagerExt as _, Options};

/// Every authorization decision the manager recorded, oldest first.
fn audit_of(m: &Manager) -> Vec<manta_manager::store::AuditEvent> {
    m.core.audit().flush();
    let mut events = m
        .core
        .store()
        .query_audit(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .unwrap();
    events.reverse();
    events
}

fn jti(token: &str) -> String {
    manta_auth::inspect(token).unwrap().claims.jti.unwrap()
}

fn cmd<'a>(home: &tempfile::TempDir, store: &'a MemoryStore) -> Cmd<'a> {
    let home = home.path().display().to_string();
    Cmd {
        env: vec![("MANTA_HOME".into(), home.clone()), ("HOME".into(), home)],
        store,
        stdin: String::new(),
        logs: Captured::default(),
    }
}

/// `manta GLOBALS login -u alice --password-stdin EXTRA`.
fn login(cmd: &mut Cmd<'_>, globals: &[&str], extra: &[&str]) -> (u8, String, String) {
    cmd.stdin = format!("{PASSWORD}\n");
    let mut all = globals.to_vec();
    all.extend_from_slice(&["login", "-u", "alice", "--password-stdin"]);
    all.extend_from_slice(extra);
    let r = cmd.run(&all);
    cmd.stdin.clear();
    r
}

fn stop(bg: Background) {
    std::thread::spawn(move || drop(bg)).join().unwrap();
}

#[test]
fn a_login_to_one_profile_is_never_sent_to_another_profiles_manager() {
    let (dev, staging) = (
        Background::start_with(Options::default()),
        Background::start_with(Options::default()),
    );
    for bg in [&dev, &staging] {
        bg.m().add_user("alice", PASSWORD, &["cluster:read"]);
    }
    let home = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let mut cmd = cmd(&home, &store);
    // Profiles added with the command, not by hand.
    for (name, port) in [("dev", dev.m().port()), ("staging", staging.m().port())] {
        let (code, out, err) = cmd.run(&[
            "profile",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]);
        assert_eq!(code, 0, "{out} {err}");
    }
    let (code, out, err) = login(&mut cmd, &["--profile", "dev"], &["--store", "file"]);
    assert_eq!(code, 0, "{out} {err}");
    let creds = manta_config::read_file_credential(
        &manta_config::MantaHome::at(home.path()),
        &manta_config::CredentialSlot::new("dev"),
        false,
    )
    .unwrap()
    .expect("login --profile dev stores dev's credential");
    let dev_jti = jti(creds.token.expose_secret());
    let before = audit_of(staging.m()).len();

    // Staging has nothing stored: nothing of dev's reaches the staging manager.
    for args in [
        &["--profile", "staging", "whoami"][..],
        &["--profile", "staging", "token", "list"][..],
        // dev's own profile pointed at staging's address.
        &[
            "--profile",
            "dev",
            "--port",
            &staging.m().port().to_string(),
            "whoami",
        ][..],
    ] {
        let (code, _, err) = cmd.run(args);
        assert_eq!(code, cli::EXIT_AUTH, "{args:?}: {err}");
        assert!(err.contains("not signed in for profile"), "{err}");
    }
    let received = audit_of(staging.m());
    assert!(
        received
            .iter()
            .all(|e| e.token_id.as_deref() != Some(&dev_jti)),
        "staging saw dev's token: {received:?}"
    );
    assert_eq!(
        received.len(),
        before,
        "the staging manager was sent a credential: {received:?}"
    );

    // Signing in to staging (keyring) leaves dev signed in, and each goes to its own manager.
    let (code, out, err) = login(&mut cmd, &["--profile", "staging"], &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(store.get("manta", "api_token@staging").unwrap().is_some());
    for (profile, bg) in [("dev", &dev), ("staging", &staging)] {
        let (code, out, err) = cmd.run(&["--profile", profile, "whoami", "--json"]);
        assert_eq!(code, 0, "{profile}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["profile"], profile);
        assert_eq!(v["manager"], format!("127.0.0.1:{}", bg.m().port()));
    }
    let staging_saw = audit_of(staging.m());
    assert!(
        staging_saw
            .iter()
            .all(|e| e.token_id.as_deref() != Some(&dev_jti))
    );

    // `profile list` shows who holds a credential and until when.
    let (code, out, _) = cmd.run(&["profile", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("dev") && l.contains("signed in (file), token until 20")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("staging") && l.contains("signed in (keyring)")),
        "{out}"
    );

    // Logging out of staging leaves dev alone.
    let (code, out, _) = cmd.run(&["--profile", "staging", "logout"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cmd.run(&["--profile", "dev", "whoami"]).0, 0);
    assert_eq!(
        cmd.run(&["--profile", "staging", "whoami"]).0,
        cli::EXIT_AUTH
    );
    drop(cmd);
    stop(dev);
    stop(staging);
}

#[test]
fn logout_never_revokes_or_removes_a_token_from_the_environment() {
    let bg = Background::start_with(Options::default());
    bg.m().add_user("alice", PASSWORD, &["cluster:read"]);
    let port = bg.m().port();
    let api_token = bg.m().token("alice", &["cluster:read"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[profiles.default]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let store = MemoryStore::new();
    let mut cmd = cmd(&home, &store);
    cmd.env
        .push(("MANTA_TOKEN".into(), api_token.expose_secret().to_owned()));

    let (code, out, err) = cmd.run(&["whoami"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("environment variable MANTA_TOKEN"), "{out}");
    let (code, out, err) = cmd.run(&["logout"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("not logged out") && out.contains("MANTA_TOKEN") && !out.contains("removed"),
        "{out}"
    );
    let still = with_api(port, Some(api_token.expose_secret()), async |api| {
        api.get_user().await
    });
    assert!(
        still.is_ok(),
        "logout revoked the environment token: {still:?}"
    );

    // With a stored login too, logout ends that one only.
    let (code, out, err) = login(&mut cmd, &[], &["--store", "file"]);
    assert_eq!(code, 0, "{out} {err}");
    let text = std::fs::read_to_string(home.path().join("credentials.ini")).unwrap();
    assert!(text.starts_with("[auth]\ntoken = "), "{text}");
    let (code, out, err) = cmd.run(&["logout"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("logged out of profile default") && out.contains("left as is"),
        "{out}"
    );
    let still = with_api(port, Some(api_token.expose_secret()), async |api| {
        api.get_user().await
    });
    assert!(still.is_ok(), "{still:?}");
    drop(cmd);
    stop(bg);
}

/// The `manta` binary built beside this test (`cargo build -p manta-client --bin manta`).
fn manta_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("manta");
    assert!(
        bin.exists(),
        "{} is missing; build it first with `cargo build -p manta-client --bin manta`",
        bin.display()
    );
    bin
}

/// Runs `f` on a thread whose session keyring is a fresh one it may read but not write:
/// what cron jobs, CI runners, `docker exec` and ssh sessions without `pam_keyinit` get
/// when the session keyring they inherit is not theirs. Child processes started by `f`
/// inherit it; the rest of the test process keeps its own. `None` when this process already
/// has a session keyring of its own (a desktop login): changing it would touch the user's
/// real keyring, so the thread cannot be given a private one.
fn with_unwritable_session_keyring<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    use linux_keyutils::{Key, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
    std::thread::scope(|s| {
        s.spawn(|| {
            let user_session =
                KeyRing::from_special_id(KeyRingIdentifier::UserSession, false).ok()?;
            let current = KeyRing::from_special_id(KeyRingIdentifier::Session, false).ok()?;
            if current != user_session {
                return None;
            }
            // Without a session keyring of its own, asking for one with `create` joins a new
            // anonymous keyring for this thread only (the kernel's join_session_keyring).
            let private = KeyRing::from_special_id(KeyRingIdentifier::Session, true).unwrap();
            assert_ne!(private, user_session, "no private session keyring was made");
            // linux-keyutils does not expose a keyring's serial; its Debug does.
            let debug = format!("{private:?}");
            let serial: i32 = debug
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '-')
                .collect::<String>()
                .parse()
                .unwrap();
            let read_only = || Permission::VIEW | Permission::READ | Permission::SEARCH;
            Key::from_id(linux_keyutils::KeySerialId::new(serial))
                .set_perms(
                    KeyPermissionsBuilder::builder()
                        .posessor(read_only())
                        .user(read_only())
                        .build(),
                )
                .unwrap();
            Some(f())
        })
        .join()
        .unwrap()
    })
}

#[test]
fn a_login_without_a_usable_session_keyring_falls_back_to_the_credentials_file() {
    let bg = Background::start_with(Options::default());
    bg.m().add_user("alice", PASSWORD, &["cluster:read"]);
    let port = bg.m().port().to_string();
    let home = tempfile::tempdir().unwrap();
    let bin = manta_binary();
    let manta = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("MANTA_HOME", home.path())
            .args(["--host", "127.0.0.1", "--port", &port])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let password = format!("{PASSWORD}\n");
    let login = ["login", "-u", "alice", "--password-stdin"];
    let ran = with_unwritable_session_keyring(|| {
        let asked = manta(&[&login[..], &["--store", "keyring"]].concat(), &password);
        let default = manta(&login, &password);
        let whoami = manta(&["whoami"], "");
        (asked, default, whoami)
    });
    let Some((asked, default, whoami)) = ran else {
        eprintln!("skipped: this process has a session keyring of its own");
        stop(bg);
        return;
    };
    let creds = home.path().join("credentials.ini");
    // Asked for the keyring explicitly: refused before signing in, pointing at --store file.
    assert_eq!(asked.0, i32::from(cli::EXIT_USAGE), "{asked:?}");
    assert!(asked.2.contains("--store file"), "{asked:?}");
    // By default: one line says where it went instead, and both tokens are in the file.
    assert_eq!(default.0, 0, "{default:?}");
    assert_eq!(
        default.2.lines().filter(|l| l.contains("keyring")).count(),
        1,
        "{default:?}"
    );
    assert!(default.1.contains("credentials.ini"), "{default:?}");
    let text = std::fs::read_to_string(&creds).unwrap();
    assert!(
        text.contains("token = ") && text.contains("refresh_token = "),
        "both tokens are stored"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(whoami.0, 0, "{whoami:?}");
    assert!(whoami.1.contains("credentials file"), "{whoami:?}");
    stop(bg);
}
