//! The real binary: exit codes, start-up errors, status and stop with nothing running.

use crate::support::{Home, bin, good_jwt};

#[test]
fn start_with_a_missing_token_exits_78_with_the_seed_text() {
    let home = Home::new();
    home.write("w", "[identity]\nalias = \"worker-1\"\n");
    let out = bin(&home, &["start", "w"], &[]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("Error: secured_token is required\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Solutions:\n  - Set secured_token in configuration"),
        "{}",
        out.stderr
    );
    let out = bin(&home, &["start", "missing"], &[]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("manta_node config init"),
        "{}",
        out.stderr
    );
    // Without an argument, the published default name.
    let out = bin(&home, &["start"], &[]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains("nodes/default.toml does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn start_without_a_manager_exits_69_naming_the_address() {
    let home = Home::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    home.write(
        "w",
        &format!("[identity]\nsecured_token = \"${{TOK}}\"\nalias = \"worker-1\"\n[network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {port}\n[logging]\nlevel = \"TRACE\"\n"),
    );
    let tok = good_jwt();
    let out = bin(&home, &["start", "w"], &[("TOK", tok.as_str())]);
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot reach the manager at 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    // The log file is named after the alias and holds no token, even at TRACE.
    let log =
        std::fs::read_to_string(home.root().join("logs/nodes/worker-1.log")).unwrap_or_default();
    assert!(!log.contains(&tok) && !out.stderr.contains(&tok));
    // The alias lock was released: nothing is reported as running.
    let status = bin(&home, &["status"], &[]);
    assert_eq!(status.code, 0);
    assert_eq!(status.stdout.trim(), "No node is running");
}

#[test]
fn status_json_and_stop_with_nothing_running() {
    let home = Home::new();
    let out = bin(&home, &["status", "--json"], &[]);
    assert_eq!((out.code, out.stdout.trim()), (0, "[]"));
    let out = bin(&home, &["stop", "worker-1"], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("no running node with alias 'worker-1'; see `manta_node status`"),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_and_version() {
    let home = Home::new();
    let out = bin(&home, &["frobnicate"], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unrecognized subcommand"),
        "{}",
        out.stderr
    );
    let out = bin(&home, &["version"], &[]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("manta_node "), "{}", out.stdout);
    let out = bin(&home, &["--help"], &[]);
    assert_eq!(out.code, 0);
    for cmd in ["config", "start", "stop", "status"] {
        assert!(out.stdout.contains(cmd), "{}", out.stdout);
    }
}

#[test]
fn insecure_config_with_a_literal_token_is_refused_with_chmod() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = Home::new();
    let path = home.write(
        "lit",
        &format!("[identity]\nsecured_token = \"{}\"\n", good_jwt()),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin(&home, &["config", "validate", "lit"], &[]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr
            .contains(&format!("chmod 600 {}", path.display())),
        "{}",
        out.stderr
    );
}
