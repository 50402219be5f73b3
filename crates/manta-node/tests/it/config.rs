//! `config validate` against every example of the seed, `config init`, `show` and `list`.

use crate::support::{Home, bin, cli, good_jwt, jwt, mode};

const PRODUCTION: &str = "[identity]\nsecured_token = \"${MANTA_PROD_TOKEN}\"\nalias = \"prod-worker-${HOSTNAME}\"\nrandom_id = false\n";
const DEVELOPMENT: &str = "[identity]\nsecured_token = \"${MANTA_DEV_TOKEN:dev_token_here}\"\nalias = \"dev-${USER}-node\"\nrandom_id = true\n";
const EDGE: &str = "[identity]\nsecured_token = \"${EDGE_TOKEN}\"\nalias = \"edge-${DEVICE_ID}\"\nrandom_id = false\n";
const CONTAINER: &str =
    "[identity]\nsecured_token = \"${NODE_TOKEN}\"\nalias = \"${HOSTNAME}\"\nrandom_id = true\n";
const SEED_EXAMPLE: &str = "[identity]\nsecured_token = \"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...\"\nalias = \"gpu-worker-1\"\nrandom_id = false\n";
const ENV_REFS: &str = "[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"\nalias = \"${MANTA_NODE_ALIAS}\"\nrandom_id = ${MANTA_RANDOM_ID}\n";

/// Validates `text` with `vars` and checks the exit code and that every expected fragment
/// appears in the output.
fn check(text: &str, vars: &[(&str, &str)], code: u8, expected: &[&str]) {
    let home = Home::new();
    home.write("n", text);
    let out = cli(&home.env(vars), &["config", "validate", "n"], "", false);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, code, "{text}\n{all}");
    for e in expected {
        assert!(all.contains(e), "missing {e:?} for\n{text}\n{all}");
    }
    for (_, v) in vars {
        if v.starts_with("eyJ") {
            assert!(!all.contains(v), "a token was printed:\n{all}");
        }
    }
}

#[test]
fn seed_examples_validate_or_fail_as_the_seed_says() {
    let tok = good_jwt();
    let t = tok.as_str();
    // Production: valid with the variables exported; unset token variable is a load error.
    check(
        PRODUCTION,
        &[("MANTA_PROD_TOKEN", t), ("HOSTNAME", "h1")],
        0,
        &["is valid"],
    );
    check(
        PRODUCTION,
        &[("HOSTNAME", "h1")],
        78,
        &["MANTA_PROD_TOKEN is not set", "export it"],
    );
    // Development: the fallback `dev_token_here` is not a JWT.
    check(
        DEVELOPMENT,
        &[("USER", "ana")],
        78,
        &[
            "Error: Invalid or expired JWT token",
            "Solutions:",
            "should start with \"eyJ\"",
        ],
    );
    check(
        DEVELOPMENT,
        &[("USER", "ana"), ("MANTA_DEV_TOKEN", t)],
        0,
        &["is valid"],
    );
    // Edge and container.
    check(
        EDGE,
        &[("EDGE_TOKEN", t), ("DEVICE_ID", "kitchen")],
        0,
        &["is valid"],
    );
    check(
        EDGE,
        &[("EDGE_TOKEN", t), ("DEVICE_ID", "kitchen 2")],
        78,
        &["Error: Invalid alias format"],
    );
    check(
        CONTAINER,
        &[("NODE_TOKEN", t), ("HOSTNAME", "pod-7f9c")],
        0,
        &["is valid"],
    );
    // The seed's own example token is truncated ("...").
    check(
        SEED_EXAMPLE,
        &[],
        78,
        &[
            "Error: Invalid or expired JWT token",
            "Request new token from admin",
        ],
    );
    // Environment variables for every identity field, random_id as a boolean.
    let vars = [
        ("MANTA_NODE_TOKEN", t),
        ("MANTA_NODE_ALIAS", "prod-gpu-1"),
        ("MANTA_RANDOM_ID", "false"),
    ];
    check(ENV_REFS, &vars, 0, &["is valid"]);
    let vars = [
        ("MANTA_NODE_TOKEN", t),
        ("MANTA_NODE_ALIAS", "prod-gpu-1"),
        ("MANTA_RANDOM_ID", "maybe"),
    ];
    check(
        ENV_REFS,
        &vars,
        78,
        &["identity.random_id", "true or false"],
    );
}

#[test]
fn token_rules_print_the_seed_errors_and_solutions() {
    let expired = jwt(1_600_000_000);
    check(
        "[identity]\nalias = \"worker-1\"\n",
        &[],
        78,
        &[
            "Error: secured_token is required",
            "Solutions:",
            "Run manta_node config init to set token",
        ],
    );
    check(
        "[identity]\nsecured_token = \"<YOUR_JWT_TOKEN_HERE>\"\n",
        &[],
        78,
        &["Error: secured_token is required"],
    );
    check(
        "[identity]\nsecured_token = \"${T}\"\n",
        &[("T", expired.as_str())],
        78,
        &[
            "Error: Invalid or expired JWT token",
            "expired at 2020-09-13",
            "Check token hasn't expired",
        ],
    );
    let spaced = format!(" {}", good_jwt());
    check(
        "[identity]\nsecured_token = \"${T}\"\n",
        &[("T", spaced.as_str())],
        78,
        &[
            "Error: Invalid or expired JWT token",
            "whitespace",
            "Ensure no extra whitespace",
        ],
    );
    check(
        "[identity]\nsecured_token = \"${T}\"\nbogus = 1\n",
        &[("T", "x")],
        78,
        &["unknown key `bogus`"],
    );
    let long = format!(
        "[identity]\nsecured_token = \"${{T}}\"\nalias = \"{}\"\n",
        "a".repeat(60)
    );
    check(
        &long,
        &[("T", good_jwt().as_str())],
        0,
        &["Warning: alias is longer than 50 characters", "is valid"],
    );
}

#[test]
fn validate_names_a_missing_file_and_bad_names() {
    let home = Home::new();
    let env = home.env(&[]);
    let out = cli(&env, &["config", "validate", "production"], "", false);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("production.toml does not exist")
            && out.stderr.contains("manta_node config init"),
        "{}",
        out.stderr
    );
    assert!(!home.root().exists(), "validate must not create files");
    let out = cli(&env, &["config", "validate", "bad name"], "", false);
    assert_eq!(out.code, 78);
    assert!(out.stderr.contains("letters, digits"), "{}", out.stderr);
}

#[test]
fn init_writes_a_reference_by_default_and_refuses_to_overwrite() {
    let home = Home::new();
    let env = home.env(&[]);
    let out = cli(
        &env,
        &[
            "config",
            "init",
            "production",
            "--alias",
            "worker-1",
            "--manager",
            "m.local:6000",
        ],
        "",
        false,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = home.node("production");
    assert!(
        out.stdout.contains("export MANTA_NODE_TOKEN"),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("secured_token = \"${MANTA_NODE_TOKEN}\""),
        "{text}"
    );
    assert!(
        text.contains("alias = \"worker-1\"") && text.contains("manager_port = 6000"),
        "{text}"
    );
    assert_eq!(mode(&path), 0o600);
    // The written file validates once the variable is exported.
    let tok = good_jwt();
    let ok = cli(
        &home.env(&[("MANTA_NODE_TOKEN", tok.as_str())]),
        &["config", "validate", "production"],
        "",
        false,
    );
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    let again = cli(&env, &["config", "init", "production"], "", false);
    assert_eq!(again.code, 78);
    assert!(
        again.stderr.contains("already exists; pass --force"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "file untouched"
    );
    let forced = cli(
        &env,
        &[
            "config",
            "init",
            "production",
            "--force",
            "--token-env",
            "VAULT_TOKEN",
            "--random-id",
        ],
        "",
        false,
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("${VAULT_TOKEN}") && text.contains("random_id = true"),
        "{text}"
    );
}

#[test]
fn init_rejects_bad_input_with_what_to_do() {
    let home = Home::new();
    let env = home.env(&[]);
    for (args, expected) in [
        (
            &["config", "init", "a", "--alias", "10.0.1.5 gpu"][..],
            "invalid alias",
        ),
        (
            &["config", "init", "a", "--manager", "nohost"][..],
            "HOST:PORT",
        ),
        (
            &["config", "init", "a", "--token-env", "1BAD"][..],
            "invalid variable name",
        ),
        (&["config", "init", "../x"][..], "letters, digits"),
        (
            &["config", "init", "a", "--token-stdin"][..],
            "secured_token is required",
        ),
    ] {
        let out = cli(&env, args, "", false);
        assert_eq!(out.code, 78, "{args:?}");
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    assert!(!home.node("a").exists());
}

#[test]
fn init_literal_token_from_stdin_is_private_and_masked_by_show() {
    let home = Home::new();
    let env = home.env(&[]);
    let tok = good_jwt();
    let out = cli(
        &env,
        &["config", "init", "lit", "--token-stdin", "--alias", "w"],
        &format!("{tok}\n"),
        false,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = home.node("lit");
    assert_eq!(mode(&path), 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().contains(&tok));
    let show = cli(&env, &["config", "show", "lit"], "", false);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("secured_token = \"[REDACTED]\""),
        "{}",
        show.stdout
    );
    assert!(!show.stdout.contains(&tok));
    let resolved = cli(&env, &["config", "show", "lit", "--resolved"], "", false);
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    assert!(
        resolved
            .stdout
            .contains("identity.secured_token = [REDACTED] (expires in"),
        "{}",
        resolved.stdout
    );
    assert!(
        resolved.stdout.contains("node id = w") && resolved.stdout.contains("logs/nodes/w.log"),
        "{}",
        resolved.stdout
    );
    assert!(!resolved.stdout.contains(&tok));
}

#[test]
fn interactive_init_prompts_and_writes_the_answers() {
    let home = Home::new();
    let env = home.env(&[]);
    let out = cli(
        &env,
        &["config", "init", "edge"],
        "EDGE_TOKEN\nedge-kitchen\ny\nmgr:7000\n",
        true,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Alias ["), "{}", out.stderr);
    let text = std::fs::read_to_string(home.node("edge")).unwrap();
    for want in [
        "${EDGE_TOKEN}",
        "alias = \"edge-kitchen\"",
        "random_id = true",
        "manager_host = \"mgr\"",
        "manager_port = 7000",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn show_keeps_references_and_resolved_substitutes_non_secrets() {
    let home = Home::new();
    home.write("prod", PRODUCTION);
    let tok = good_jwt();
    let env = home.env(&[("MANTA_PROD_TOKEN", tok.as_str()), ("HOSTNAME", "h1")]);
    let show = cli(&env, &["config", "show", "prod"], "", false);
    assert!(
        show.stdout.contains("${MANTA_PROD_TOKEN}")
            && show.stdout.contains("prod-worker-${HOSTNAME}"),
        "{}",
        show.stdout
    );
    let resolved = cli(&env, &["config", "show", "prod", "--resolved"], "", false);
    assert!(
        resolved.stdout.contains("identity.alias = prod-worker-h1"),
        "{}",
        resolved.stdout
    );
    assert!(!resolved.stdout.contains(&tok), "{}", resolved.stdout);
}

#[test]
fn list_shows_names_and_creates_nothing() {
    let home = Home::new();
    let env = home.env(&[]);
    let out = cli(&env, &["config", "list"], "", false);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("manta_node config init"),
        "{}",
        out.stdout
    );
    assert!(
        !home.root().exists(),
        "list must not create a default config"
    );
    home.write("b", PRODUCTION);
    home.write("a", EDGE);
    let out = cli(&env, &["config", "list"], "", false);
    let names: Vec<_> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn list_json_is_one_object_with_the_folder_and_each_configuration() {
    let home = Home::new();
    let out = bin(&home, &["config", "list", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let nodes_dir = home.root().join("nodes");
    assert_eq!(v["nodes_dir"], nodes_dir.display().to_string());
    assert_eq!(v["configs"], serde_json::json!([]));
    home.write("b", PRODUCTION);
    home.write("a", EDGE);
    let out = bin(&home, &["config", "list", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["configs"],
        serde_json::json!([
            {"name": "a", "path": nodes_dir.join("a.toml").display().to_string()},
            {"name": "b", "path": nodes_dir.join("b.toml").display().to_string()},
        ])
    );
    // The token in a configuration never reaches the listing.
    assert!(!out.stdout.contains("secured_token"), "{}", out.stdout);
}

#[test]
fn show_masks_a_token_given_as_a_default() {
    let home = Home::new();
    let tok = good_jwt();
    for (written, shown) in [
        (
            format!("${{NODE_TOKEN:{tok}}}"),
            "secured_token = \"${NODE_TOKEN:[REDACTED]}\"",
        ),
        (
            format!("${{NODE_TOKEN:-{tok}}}"),
            "secured_token = \"${NODE_TOKEN:-[REDACTED]}\"",
        ),
        (
            format!("pre-${{X}}-{tok}"),
            "secured_token = \"[REDACTED]\"",
        ),
        (
            "${MANTA_NODE_TOKEN}".to_owned(),
            "secured_token = \"${MANTA_NODE_TOKEN}\"",
        ),
    ] {
        home.write("d", &format!("[identity]\nsecured_token = \"{written}\"\n"));
        let out = cli(&home.env(&[]), &["config", "show", "d"], "", false);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains(shown), "{written}: {}", out.stdout);
        assert!(!out.stdout.contains(&tok), "{written}: {}", out.stdout);
    }
}
