//! Fuzz target: substitution + TOML parsing + validation never panic, and a secret taken
//! from the environment never appears in any error text.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use manta_config::{ConfigDocument, Env, LoadOptions, NodeConfig, load_str};

/// Not a TOML scalar, so it is always inserted as a string.
const MARKER: &str = "Mk7-SECRET-zQ9";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(MARKER), "{what} leaked the secret: {text}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // When the input itself spells the marker, seeing it echoed back is not a leak.
    if text.contains(MARKER) {
        return;
    }
    let env = Env::from_pairs([
        ("MANTA_NODE_TOKEN", MARKER),
        ("PASSWORD", MARKER),
        ("PORT", "50051"),
        ("FLAG", "true"),
        ("EMPTY", ""),
    ]);
    match NodeConfig::from_toml(text, &env) {
        Ok(cfg) => {
            let report = cfg.validate(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
            for p in &report.problems {
                assert_clean("validation problem", &p.to_string());
            }
            assert_clean("Debug of NodeConfig", &format!("{cfg:?}"));
        }
        Err(e) => {
            assert_clean("node config error", &e.to_string());
            assert_clean("node config error Debug", &format!("{e:?}"));
        }
    }
    let options = LoadOptions::new().secret_key("a.password");
    if let Err(e) = load_str::<Strict>(text, &env, &options) {
        assert_clean("generic error", &e.to_string());
    }
    if let Err(e) = ConfigDocument::parse(text) {
        assert_clean("document error", &e.to_string());
    }
});

/// A small strict schema for the generic loader, so type errors and unknown keys (whose
/// messages quote values) are exercised with substituted secrets.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "only deserialized")]
struct Strict {
    a: Option<Inner>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "only deserialized")]
struct Inner {
    password: Option<String>,
    port: Option<u16>,
    flag: Option<bool>,
    name: Option<String>,
}
