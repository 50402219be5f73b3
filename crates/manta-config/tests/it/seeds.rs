//! The seed's "Common Configurations" load and validate as documented.

use std::time::SystemTime;

use manta_config::{Env, MSG_TOKEN_INVALID, NodeConfig};
use secrecy::ExposeSecret as _;

use crate::jwt;

fn check(text: &str, env: &[(&str, &str)], alias: &str, random_id: bool) {
    let cfg = NodeConfig::from_toml(text, &Env::from_pairs(env.iter().copied())).unwrap();
    assert_eq!(cfg.identity.alias.as_deref(), Some(alias), "{text}");
    assert_eq!(cfg.identity.random_id, random_id, "{text}");
    let report = cfg.validate(SystemTime::now());
    assert!(!report.has_errors(), "{text}: {:?}", report.problems);
}

#[test]
fn production_development_edge_and_container_examples() {
    let t = jwt(4_102_444_800);
    check(
        "[identity]\nsecured_token = \"${MANTA_PROD_TOKEN}\"\nalias = \"prod-worker-${HOSTNAME}\"\nrandom_id = false\n",
        &[("MANTA_PROD_TOKEN", &t), ("HOSTNAME", "h7")],
        "prod-worker-h7",
        false,
    );
    check(
        "[identity]\nsecured_token = \"${NODE_TOKEN}\"\nalias = \"${HOSTNAME}\"\nrandom_id = true\n",
        &[("NODE_TOKEN", &t), ("HOSTNAME", "pod-1")],
        "pod-1",
        true,
    );
    check(
        "[identity]\nsecured_token = \"${EDGE_TOKEN}\"\nalias = \"edge-${DEVICE_ID}\"\nrandom_id = false\n",
        &[("EDGE_TOKEN", &t), ("DEVICE_ID", "kitchen")],
        "edge-kitchen",
        false,
    );
}

#[test]
fn development_placeholder_default_is_reported_as_invalid_token() {
    let text = "[identity]\nsecured_token = \"${MANTA_DEV_TOKEN:dev_token_here}\"\nalias = \"dev-${USER}-node\"\nrandom_id = true\n";
    let cfg = NodeConfig::from_toml(text, &Env::from_pairs([("USER", "ana")])).unwrap();
    assert_eq!(
        cfg.identity.secured_token.as_ref().unwrap().expose_secret(),
        "dev_token_here"
    );
    let report = cfg.validate(SystemTime::now());
    assert_eq!(report.problems[0].message, MSG_TOKEN_INVALID);
    assert!(report.problems[0].hints.iter().any(|h| h.contains("eyJ")));
}
