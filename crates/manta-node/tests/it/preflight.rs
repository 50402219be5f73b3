//! `config validate` and `start` share one pre-connection check: every configuration that
//! stops `start` before it connects makes `validate` fail with the same text and exit code,
//! and `config init` writes (and asks for) configurations that pass it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Home, bin, cli, good_jwt};

/// A port nothing listens on: a configuration that passes the checks makes `start` fail
/// with 69 (cannot reach), so a check `validate` misses shows up as a different code.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node configuration with the token in `${T}`, `extra` appended.
fn config(port: u16, security: &str, extra: &str) -> String {
    format!(
        "[identity]\nsecured_token = \"${{T}}\"\nalias = \"w1\"\n\n[network]\nmanager_host = \"localhost\"\nmanager_port = {port}\n\n{security}{extra}"
    )
}

fn tls(folder: &Path) -> String {
    format!(
        "[security]\nuse_tls = true\ncert_folder = \"{}\"\n\n",
        folder.display()
    )
}

/// A development PKI, and folders cut from it.
struct Pki {
    _dir: tempfile::TempDir,
    full: PathBuf,
    root: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full");
        manta_tls::DevPki::create(&full, &manta_tls::DevPkiOptions::default()).unwrap();
        Self {
            root: dir.path().to_path_buf(),
            _dir: dir,
            full,
        }
    }

    /// A folder `name` holding copies of `files` from the full PKI (`ca.crt` may be
    /// replaced by `ca_text`).
    fn folder(&self, name: &str, files: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(self.full.join(f), dir.join(f)).unwrap();
            if f.ends_with(".key") {
                std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600))
                    .unwrap();
            }
        }
        dir
    }
}

/// A configuration, its environment, and the text `start` must print.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, String);

#[test]
fn validate_fails_wherever_start_fails_before_connecting_with_the_same_text() {
    let pki = Pki::new();
    let port = closed_port();
    let garbage = pki.folder("garbage", &[]);
    std::fs::write(garbage.join("ca.crt"), "not a certificate\n").unwrap();
    let leaf_as_ca = pki.folder("leaf", &[]);
    std::fs::copy(pki.full.join("server.crt"), leaf_as_ca.join("ca.crt")).unwrap();
    let missing = pki.root.join("nope");
    let empty = pki.folder("empty", &[]);
    let no_ca = pki.folder("no-ca", &["client.crt", "client.key"]);
    let half = pki.folder("half", &["ca.crt", "client.crt"]);
    let tok = good_jwt();
    let cases: Vec<Case<'_>> = vec![
        (
            config(port, &tls(&missing), ""),
            vec![("T", &tok)],
            format!(
                "Error: certificate folder {} does not exist or is not a directory: create it or fix the path\n",
                missing.display()
            ),
        ),
        (
            config(port, &tls(&empty), ""),
            vec![("T", &tok)],
            format!(
                "Error: certificate folder {} holds none of ca.crt, client.crt, client.key",
                empty.display()
            ),
        ),
        (
            config(port, &tls(&no_ca), ""),
            vec![("T", &tok)],
            format!(
                "Error: CA certificate {} is missing",
                no_ca.join("ca.crt").display()
            ),
        ),
        (
            config(port, &tls(&half), ""),
            vec![("T", &tok)],
            format!(
                "Error: {} is missing: add it beside client.crt for mTLS",
                half.join("client.key").display()
            ),
        ),
        (
            config(port, &tls(&garbage), ""),
            vec![("T", &tok)],
            format!("Error: {} holds no PEM", garbage.join("ca.crt").display()),
        ),
        (
            config(port, &tls(&leaf_as_ca), ""),
            vec![("T", &tok)],
            format!(
                "Error: {} is not a CA certificate",
                leaf_as_ca.join("ca.crt").display()
            ),
        ),
        (
            config(port, "", ""),
            vec![],
            "environment variable T is not set; export it, or write a default as ${T:default}"
                .to_owned(),
        ),
        (
            config(0, "", ""),
            vec![("T", &tok)],
            "Error: manager_port must be between 1 and 65535\n".to_owned(),
        ),
        (
            config(port, "", "[logging]\nlevel = \"LOUD\"\n"),
            vec![("T", &tok)],
            "Error: unknown log level\n".to_owned(),
        ),
        (
            config(
                port,
                "[security]\nuse_tls = true\ncert_folder = \"\"\n\n",
                "",
            ),
            vec![("T", &tok)],
            "Error: cert_folder is required when use_tls is true\n".to_owned(),
        ),
        (
            config(port, "", "").replace("alias = \"w1\"", "alias = \"w 1\""),
            vec![("T", &tok)],
            "Error: Invalid alias format\n".to_owned(),
        ),
    ];
    for (text, vars, expected) in cases {
        let home = Home::new();
        let path = home.write("n", &text);
        let validate = bin(&home, &["config", "validate", "n"], &vars);
        let start = bin(&home, &["start", "n", "--console"], &vars);
        assert_eq!(validate.code, 78, "validate {text}\n{}", validate.stderr);
        assert_eq!(start.code, 78, "start {text}\n{}", start.stderr);
        assert!(
            start.stderr.contains(&expected),
            "{text}\nwanted {expected:?} in\n{}",
            start.stderr
        );
        assert_eq!(validate.stderr, start.stderr, "{text}");
        assert_eq!(
            validate.stdout,
            format!("{} is not valid\n", path.display()),
            "{text}"
        );
    }
}

#[test]
fn a_folder_that_validates_gets_start_as_far_as_connecting() {
    let pki = Pki::new();
    let port = closed_port();
    let tok = good_jwt();
    for folder in [pki.folder("ca-only", &["ca.crt"]), pki.full.clone()] {
        let home = Home::new();
        let path = home.write("n", &config(port, &tls(&folder), ""));
        let vars = [("T", tok.as_str())];
        let validate = bin(&home, &["config", "validate", "n"], &vars);
        assert_eq!(validate.code, 0, "{}", validate.stderr);
        assert_eq!(validate.stdout, format!("{} is valid\n", path.display()));
        let start = bin(&home, &["start", "n", "--console"], &vars);
        assert_eq!(start.code, 69, "{}", start.stderr);
        assert!(
            start
                .stderr
                .contains(&format!("cannot reach the manager at localhost:{port}")),
            "{}",
            start.stderr
        );
    }
}

#[test]
fn init_with_a_cert_folder_turns_tls_on() {
    let pki = Pki::new();
    let folder = pki.folder("ca-only", &["ca.crt"]);
    let home = Home::new();
    let env = home.env(&[]);
    let dir = folder.display().to_string();
    let out = cli(
        &env,
        &["config", "init", "secure", "--cert-folder", &dir],
        "",
        false,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(home.node("secure")).unwrap();
    assert!(text.contains("use_tls = true"), "{text}");
    assert!(text.contains(&format!("cert_folder = \"{dir}\"")), "{text}");
    // What was written is what start will use: the folder loads, so it validates.
    let tok = good_jwt();
    let ok = cli(
        &home.env(&[("MANTA_NODE_TOKEN", tok.as_str())]),
        &["config", "validate", "secure"],
        "",
        false,
    );
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let out = cli(
        &env,
        &["config", "init", "plain", "--alias", "p1"],
        "",
        false,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(home.node("plain")).unwrap();
    assert!(text.contains("use_tls = false"), "{text}");
}

#[test]
fn interactive_init_asks_again_after_a_bad_answer() {
    let home = Home::new();
    let env = home.env(&[]);
    let pasted = good_jwt();
    let answers =
        format!("{pasted}\nEDGE_TOKEN\nedge kitchen\nedge-kitchen\nmaybe\ny\nnohost\nmgr:7000\n");
    let out = cli(&env, &["config", "init", "edge"], &answers, true);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (question, why) in [
        (
            "Environment variable holding the node token [MANTA_NODE_TOKEN]: ",
            "that is not a variable name (letters, digits and _, e.g. MANTA_NODE_TOKEN; to use the token itself, export it in a variable); try again\n",
        ),
        (
            "Alias [",
            "invalid alias `edge kitchen`: use letters, digits, - and _ only (at most 64 characters); try again\n",
        ),
        (
            "Random node id on each start (y/n) [n]: ",
            "answer y or n; try again\n",
        ),
        (
            "Manager address [localhost:50051]: ",
            "invalid manager address `nohost`; write HOST:PORT, e.g. localhost:50051; try again\n",
        ),
    ] {
        assert_eq!(
            out.stderr.matches(question).count(),
            2,
            "{question}\n{}",
            out.stderr
        );
        assert!(out.stderr.contains(why), "{why}\n{}", out.stderr);
    }
    assert!(!out.stderr.contains(&pasted), "a pasted token was echoed");
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
fn interactive_init_stops_when_the_answers_run_out() {
    let home = Home::new();
    let env = home.env(&[]);
    for (answers, question) in [
        ("", "Environment variable holding the node token"),
        ("EDGE_TOKEN\n", "Alias"),
        // Bad answers to the end of input: an error, not a loop.
        (
            "EDGE_TOKEN\nedge-1\nmaybe\nperhaps\n",
            "Random node id on each start (y/n)",
        ),
    ] {
        let out = cli(&env, &["config", "init", "edge"], answers, true);
        assert_eq!(out.code, 1, "{answers:?}: {}", out.stderr);
        assert!(
            out.stderr.ends_with(&format!(
                "\nError: standard input ended before an answer to \"{question}\"; answer every question, or give the values as flags (manta_node config init --help)\n"
            )),
            "{answers:?}: {}",
            out.stderr
        );
        assert!(!home.node("edge").exists(), "nothing written");
    }
}

#[test]
fn the_real_process_reads_piped_answers_with_interactive() {
    use std::io::Write as _;
    let home = Home::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_manta_node"))
        .args(["config", "init", "piped", "--interactive"])
        .env_clear()
        .env("MANTA_HOME", home.root())
        .env("HOME", home.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"NODE_TOK\nbad alias\npiped-1\n\nmgr.local:6001\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("invalid alias `bad alias`"), "{stderr}");
    let text = std::fs::read_to_string(home.node("piped")).unwrap();
    for want in [
        "${NODE_TOK}",
        "alias = \"piped-1\"",
        "random_id = false",
        "manager_port = 6001",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // Without --interactive, piped input is not a terminal: no question is asked.
    let out = bin(&home, &["config", "init", "quiet", "--alias", "q1"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("Alias ["), "{}", out.stderr);
}
