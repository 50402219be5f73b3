//! The generic loader as the manager uses it for its own configuration type.

use manta_config::{ConfigError, Env, LoadOptions, load_file};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::write;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagerConfig {
    listen: Listen,
    database: Database,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listen {
    port: u16,
    #[serde(default)]
    tls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Database {
    path: String,
    password: SecretString,
}

fn options() -> LoadOptions {
    LoadOptions::new().secret_key("database.password")
}

#[test]
fn env_references_load_typed_and_readable_file_is_fine_without_literal_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "manager.toml",
        "[listen]\nport = ${PORT:50052}\ntls = ${TLS}\n[database]\npath = \"${DATA}/manta.db\"\npassword = \"${DB_PASSWORD}\"\n",
        0o644,
    );
    let env = Env::from_pairs([
        ("TLS", "true"),
        ("DATA", "/var/lib/manta"),
        ("DB_PASSWORD", "pw\"with\\quotes"),
    ]);
    let loaded = load_file::<ManagerConfig>(&path, &env, &options()).unwrap();
    let cfg = loaded.value;
    assert_eq!(cfg.listen.port, 50052);
    assert!(cfg.listen.tls);
    assert_eq!(cfg.database.path, "/var/lib/manta/manta.db");
    assert_eq!(cfg.database.password.expose_secret(), "pw\"with\\quotes");
    assert!(!loaded.holds_literal_secret);
}

#[cfg(unix)]
#[test]
fn literal_secret_in_readable_file_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[listen]\nport = 1\n[database]\npath = \"x\"\npassword = \"hunter2\"\n";
    let path = write(dir.path(), "manager.toml", text, 0o644);
    let env = Env::from_pairs([("UNUSED", "")]);
    let err = load_file::<ManagerConfig>(&path, &env, &options()).unwrap_err();
    assert!(
        matches!(err, ConfigError::InsecurePermissions { mode: 0o644, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chmod 600 {}", path.display())) && !msg.contains("hunter2"),
        "{msg}"
    );
    let allowed = options().danger_allow_insecure_permissions(true);
    assert!(load_file::<ManagerConfig>(&path, &env, &allowed).is_ok());
    let path = write(dir.path(), "private.toml", text, 0o600);
    assert!(
        load_file::<ManagerConfig>(&path, &env, &options())
            .unwrap()
            .holds_literal_secret
    );
}

#[test]
fn errors_name_file_line_and_key_and_suggest() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "m.toml",
        "[listen]\nport = 1\n\n[database]\npath = \"x\"\npasword = \"${P}\"\n",
        0o600,
    );
    let env = Env::from_pairs([("P", "s3cret")]);
    let msg = load_file::<ManagerConfig>(&path, &env, &options())
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with(&format!("{}:6:1", path.display())), "{msg}");
    assert!(
        msg.contains("database.pasword") && msg.contains("did you mean `password`?"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");

    let path = write(dir.path(), "u.toml", "[listen]\nport = ${PORT}\n", 0o600);
    let msg = load_file::<ManagerConfig>(&path, &env, &options())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(":2:8 (key `listen.port`)") && msg.contains("PORT is not set"),
        "{msg}"
    );

    let missing = dir.path().join("absent.toml");
    let err = load_file::<ManagerConfig>(
        &missing,
        &env,
        &options().missing_file_hint("run `manta-manager init`"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("manta-manager init"), "{err}");
    assert!(!missing.exists());
}
