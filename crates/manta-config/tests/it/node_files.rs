//! The node agent's flow: init by name under MANTA_HOME, load, validate, edit, save.

use std::time::SystemTime;

use manta_config::{
    ConfigDocument, ConfigError, Env, MantaHome, NodeConfig, NodeConfigRef, NodeTemplate,
    SecretWrite, TemplateToken,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{jwt, write};

#[test]
fn init_by_name_then_start_by_name_and_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let token = jwt(4_102_444_800);
    let env = Env::from_pairs([
        ("MANTA_HOME", dir.path().to_str().unwrap()),
        ("MANTA_NODE_TOKEN", token.as_str()),
    ]);
    let home = MantaHome::from_env(&env).unwrap();
    let path = NodeConfigRef::parse("production").resolve(&home).unwrap();
    assert_eq!(path, dir.path().join("nodes/production.toml"));
    NodeTemplate::new("production").write(&path, false).unwrap();
    assert_eq!(home.list_node_configs().unwrap(), ["production"]);

    let by_path = NodeConfigRef::parse(path.to_str().unwrap())
        .resolve(&home)
        .unwrap();
    let loaded = NodeConfig::load(&by_path, &env).unwrap();
    assert!(!loaded.holds_literal_secret);
    let cfg = loaded.value;
    assert_eq!(
        cfg.identity.secured_token.as_ref().unwrap().expose_secret(),
        token
    );
    assert!(
        cfg.validate(SystemTime::now())
            .into_result()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn renewal_persists_a_literal_token_but_keeps_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let old = jwt(1_000);
    let new = SecretString::from(jwt(4_102_444_800));

    let literal = write(
        dir.path(),
        "lit.toml",
        &format!("[identity]\nsecured_token = \"{old}\" # issued by admin\n"),
        0o600,
    );
    let mut doc = ConfigDocument::open(&literal).unwrap();
    assert_eq!(
        doc.set_secret("identity.secured_token", &new).unwrap(),
        SecretWrite::Written
    );
    doc.save(&literal).unwrap();
    let text = std::fs::read_to_string(&literal).unwrap();
    assert!(
        text.contains(new.expose_secret())
            && text.contains("# issued by admin")
            && !text.contains(&old),
        "{text}"
    );

    let referenced = write(
        dir.path(),
        "ref.toml",
        "[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"\n",
        0o600,
    );
    let mut doc = ConfigDocument::open(&referenced).unwrap();
    assert_eq!(
        doc.set_secret("identity.secured_token", &new).unwrap(),
        SecretWrite::KeptReference
    );
    doc.save(&referenced).unwrap();
    assert_eq!(
        std::fs::read_to_string(&referenced).unwrap(),
        "[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"\n"
    );
}

#[cfg(unix)]
#[test]
fn readable_node_config_with_literal_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut template = NodeTemplate::new("edge");
    template.token = TemplateToken::Literal(SecretString::from(jwt(4_102_444_800)));
    let path = dir.path().join("edge.toml");
    template.write(&path, false).unwrap();
    let env = Env::from_pairs([("HOME", "/nonexistent")]);
    assert!(NodeConfig::load(&path, &env).is_ok(), "init writes 0600");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = NodeConfig::load(&path, &env).unwrap_err();
    assert!(
        matches!(err, ConfigError::InsecurePermissions { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"));
}

#[test]
fn loading_a_missing_node_config_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodes/default.toml");
    let env = Env::from_pairs([("HOME", "/nonexistent")]);
    let err = NodeConfig::load(&path, &env).unwrap_err().to_string();
    assert!(err.contains("manta_node config init"), "{err}");
    assert!(ConfigDocument::open(&path).is_err());
    assert!(!dir.path().join("nodes").exists());
}
