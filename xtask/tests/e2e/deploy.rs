//! The deployment files in `deploy/` against the real programs: the Kubernetes manifests and
//! the node configurations parse and agree with each other, the ConfigMap's and the Docker
//! image's `config.toml` pass `manta_node config validate` with a real bootstrap token, and
//! the systemd units and Dockerfiles run command lines the binaries accept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use secrecy::{ExposeSecret as _, SecretString};
use yaml_rust2::{Yaml, YamlLoader};

use crate::harness::Manager;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The one YAML document of `rel`.
fn manifest(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel} should hold one document");
    docs.remove(0)
}

fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, found {y:?}"))
}

/// A program built next to this test executable (`target/debug`).
fn binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        bin.exists(),
        "{} is missing; build it first with `cargo build -p {package}`",
        bin.display()
    );
    bin
}

/// A real bootstrap token from a real manager (the same kind `manta-manager node-token issue`
/// prints), for the Secret's `token` key.
async fn bootstrap_token() -> (Manager, SecretString) {
    let m = Manager::start().await;
    let cluster = m.core.platform().create_cluster("", "k8s").unwrap();
    let token = m.core.platform().bootstrap_token(&cluster, None).unwrap();
    (m, token)
}

/// `manta_node ARGS` with only the given environment (and a temporary MANTA_HOME).
fn manta_node(args: &[&str], env: &BTreeMap<&str, &str>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary("manta_node", "manta-node"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MANTA_HOME", home.path())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The ConfigMap's `config.toml`, written to a temporary file.
fn configmap_config() -> (tempfile::TempDir, PathBuf, String) {
    let cm = manifest("deploy/kubernetes/node-configmap.yaml");
    let toml = s(&cm["data"]["config.toml"], "data.config.toml").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &toml).unwrap();
    (dir, path, toml)
}

/// `config` with its certificate folder `/etc/manta/certs` (the volume the pod mounts and
/// the guide names) moved to `dir/certs`, filled with a development PKI: `validate` loads
/// the folder as `start` does, and this machine has no `/etc/manta/certs`.
fn with_mounted_certs(config: &str, dir: &Path) -> String {
    let certs = dir.join("certs");
    manta_tls::DevPki::create(&certs, &manta_tls::DevPkiOptions::default()).unwrap();
    config.replace("/etc/manta/certs", &certs.display().to_string())
}

#[test]
fn kubernetes_manifests_parse_and_refer_to_each_other() {
    let secret = manifest("deploy/kubernetes/node-secret.yaml");
    let cm = manifest("deploy/kubernetes/node-configmap.yaml");
    let deploy = manifest("deploy/kubernetes/node-deployment.yaml");
    assert_eq!(s(&secret["kind"], "Secret kind"), "Secret");
    assert_eq!(s(&cm["kind"], "ConfigMap kind"), "ConfigMap");
    assert_eq!(s(&deploy["kind"], "Deployment kind"), "Deployment");
    // The Secret documents the shape only: no real token is committed.
    let placeholder = s(&secret["stringData"]["token"], "stringData.token");
    assert!(!placeholder.starts_with("eyJ"), "a real token is committed");

    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let containers = pod["containers"].as_vec().unwrap();
    let node = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("manta-node"))
        .expect("a manta-node container");
    let args: Vec<&str> = node["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| s(a, "args"))
        .collect();
    assert_eq!(args, ["start", "/etc/manta/config.toml"]);
    assert_eq!(
        node["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );

    // The token comes from the Secret and the alias from the pod name, under the names the
    // configuration references.
    let env: BTreeMap<&str, &Yaml> = node["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| (s(&e["name"], "env name"), e))
        .collect();
    let token = &env["MANTA_NODE_TOKEN"]["valueFrom"]["secretKeyRef"];
    assert_eq!(
        token["name"].as_str(),
        secret["metadata"]["name"].as_str(),
        "MANTA_NODE_TOKEN must come from the Secret"
    );
    assert!(!secret["stringData"][s(&token["key"], "secretKeyRef.key")].is_badvalue());
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name")
    );

    // The ConfigMap is mounted where the container reads it.
    let volumes = pod["volumes"].as_vec().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == cm["metadata"]["name"].as_str())
        .expect("a volume for the ConfigMap");
    let mount = node["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"] == config_volume["name"])
        .expect("the ConfigMap volume is mounted");
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/manta/config.toml"));
    assert_eq!(mount["subPath"].as_str(), Some("config.toml"));

    // The configuration follows the seed: token and alias from the environment, random ids.
    let (_dir, _path, toml) = configmap_config();
    let parsed: toml_table::Table = toml_table::parse(&toml);
    assert_eq!(parsed["identity.secured_token"], "\"${MANTA_NODE_TOKEN}\"");
    assert_eq!(parsed["identity.alias"], "\"${POD_NAME}\"");
    assert_eq!(parsed["identity.random_id"], "true");
    // mTLS reads the folder the init container fills with the key at 0600.
    let cert_folder = parsed["security.cert_folder"].trim_matches('"');
    assert!(
        node["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"].as_str() == Some(cert_folder)),
        "{cert_folder} is not mounted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_config_validates_with_manta_node() {
    let (m, token) = bootstrap_token().await;
    let (dir, path, toml) = configmap_config();
    assert!(
        toml.contains("cert_folder = \"/etc/manta/certs\""),
        "{toml}"
    );
    std::fs::write(&path, with_mounted_certs(&toml, dir.path())).unwrap();
    let path = path.to_str().unwrap();
    let pod = "manta-node-7d9f8b6c5-x2k4q";
    let env = BTreeMap::from([
        ("MANTA_NODE_TOKEN", token.expose_secret()),
        ("POD_NAME", pod),
    ]);
    let out = manta_node(&["config", "validate", path], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is valid"),
        "{}",
        text(&out)
    );

    // The effective values: the pod name as alias, a random id, the token never shown.
    let out = manta_node(&["config", "show", path, "--resolved"], &env);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(&format!("identity.alias = {pod}")),
        "{shown}"
    );
    assert!(
        shown.contains("node id = (random on each start)"),
        "{shown}"
    );
    assert!(shown.contains("security.use_tls = true"), "{shown}");
    assert!(
        !shown.contains(token.expose_secret()),
        "the token was printed"
    );

    // Without the Secret's variable the pod fails with a configuration error naming it.
    let out = manta_node(
        &["config", "validate", path],
        &BTreeMap::from([("POD_NAME", pod)]),
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("MANTA_NODE_TOKEN"), "{}", text(&out));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_node_config_validates_and_takes_everything_from_the_environment() {
    let (m, token) = bootstrap_token().await;
    let path = root().join("deploy/docker/node.toml");
    let path = path.to_str().unwrap();
    let env = BTreeMap::from([
        ("MANTA_NODE_TOKEN", token.expose_secret()),
        ("HOSTNAME", "3f2a9c1b7d4e"),
    ]);
    let out = manta_node(&["config", "show", path, "--resolved"], &env);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    // No NODE_ALIAS: the container's host name; no manager given: Docker's host gateway.
    assert!(shown.contains("identity.alias = 3f2a9c1b7d4e"), "{shown}");
    assert!(
        shown.contains("network.manager = host.docker.internal:50051"),
        "{shown}"
    );
    let mut env = env;
    env.insert("NODE_ALIAS", "docker-node-1");
    env.insert("MANTA_MANAGER_HOST", "manager.example.org");
    let out = manta_node(&["config", "validate", path], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = manta_node(&["config", "show", path, "--resolved"], &env);
    let shown = text(&out);
    assert!(shown.contains("identity.alias = docker-node-1"), "{shown}");
    assert!(
        shown.contains("network.manager = manager.example.org:50051"),
        "{shown}"
    );
    // The image sets no token: without one, the agent refuses to start with the seed's text.
    let out = manta_node(&["start", path], &BTreeMap::from([("HOSTNAME", "h")]));
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("MANTA_NODE_TOKEN"), "{}", text(&out));
    m.stop().await;
}

/// `[Service]` keys of a systemd unit (repeated keys keep every value).
fn unit(rel: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read(rel).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{rel}: not KEY=VALUE: {line}"));
        keys.entry(format!("{section}{k}"))
            .or_default()
            .push(v.to_owned());
    }
    keys
}

#[test]
fn systemd_units_are_hardened_and_run_valid_command_lines() {
    for rel in [
        "deploy/systemd/manta-manager.service",
        "deploy/systemd/manta-node@.service",
    ] {
        let u = unit(rel);
        let one = |k: &str| {
            u.get(&format!("[Service]{k}"))
                .and_then(|v| v.last())
                .unwrap_or_else(|| panic!("{rel}: no {k}"))
                .as_str()
        };
        assert_ne!(one("User"), "root", "{rel}");
        for (k, v) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("ReadOnlyPaths", "/etc/manta"),
            ("CapabilityBoundingSet", ""),
            ("UMask", "0077"),
        ] {
            assert_eq!(one(k), v, "{rel}: {k}");
        }
        assert!(u.contains_key("[Install]WantedBy"), "{rel}");
    }

    // The manager's command line parses (clap answers --help only for a valid one).
    let u = unit("deploy/systemd/manta-manager.service");
    let exec = &u["[Service]ExecStart"][0];
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/manta-manager"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args.last(), Some(&"serve"), "{exec}");
    let out = Command::new(binary("manta-manager", "manta-manager"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{exec}: {}", text(&out));

    // The agent gets its token from the credential and starts from /etc/manta/nodes/NAME.toml.
    let u = unit("deploy/systemd/manta-node@.service");
    assert_eq!(
        u["[Service]LoadCredential"][0],
        "node-token:/etc/manta/credentials/%i.token"
    );
    let exec = &u["[Service]ExecStart"][0];
    assert!(
        exec.contains("MANTA_NODE_TOKEN=\"$$(cat \"$$CREDENTIALS_DIRECTORY/node-token\")\""),
        "{exec}"
    );
    assert!(
        exec.contains("exec /usr/local/bin/manta_node start /etc/manta/nodes/%i.toml"),
        "{exec}"
    );
    assert!(
        u["[Service]RestartPreventExitStatus"][0]
            .split_whitespace()
            .any(|c| c == "78"),
        "a configuration error (78) must not restart in a loop"
    );
    let out = manta_node(&["start", "--help"], &BTreeMap::new());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn dockerfiles_are_multi_stage_non_root_and_hold_no_token() {
    for (rel, bin) in [
        ("deploy/docker/Dockerfile.manager", "manta-manager"),
        ("deploy/docker/Dockerfile.node", "manta_node"),
    ] {
        let text = read(rel);
        let instructions: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let from = instructions
            .iter()
            .filter(|l| l.starts_with("FROM "))
            .count();
        assert!(from >= 2, "{rel}: not multi-stage");
        assert!(
            instructions
                .iter()
                .any(|l| l.contains("cargo build --release --locked") && l.contains(bin)),
            "{rel}: does not build {bin}"
        );
        let user = instructions
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{rel}: no USER"));
        assert!(
            !user.starts_with('0') && !user.starts_with("root"),
            "{rel}: USER {user}"
        );
        assert!(
            instructions
                .iter()
                .any(|l| *l == format!("ENTRYPOINT [\"{bin}\"]")),
            "{rel}: entrypoint is not {bin}"
        );
        // No token in the image: neither ENV nor ARG may carry one.
        for l in &instructions {
            if l.starts_with("ENV ") || l.starts_with("ARG ") {
                assert!(!l.contains("TOKEN") && !l.contains("eyJ"), "{rel}: {l}");
            }
        }
        let ignore = read(&format!("{rel}.dockerignore"));
        assert!(
            ignore.lines().any(|l| l.trim() == "target/"),
            "{rel}: target/ in context"
        );
        // Every COPY source outside the build stage exists in the repository.
        for l in &instructions {
            if let Some(rest) = l.strip_prefix("COPY ")
                && !rest.starts_with("--from")
                && !rest.starts_with(". ")
            {
                let src = rest.split_whitespace().next().unwrap();
                assert!(
                    root().join(src).exists(),
                    "{rel}: COPY {src} does not exist"
                );
            }
        }
    }
    let node = read("deploy/docker/Dockerfile.node");
    assert!(
        node.contains("CMD [\"start\", \"/etc/manta/config.toml\"]"),
        "{node}"
    );
}

/// A flat view of a small TOML file (`section.key` → raw value), enough to check which
/// references the deployment configuration keeps; the agent itself parses it in the tests
/// above.
mod toml_table {
    use std::collections::BTreeMap;

    pub(crate) type Table = BTreeMap<String, String>;

    pub(crate) fn parse(text: &str) -> Table {
        let mut table = Table::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = format!("{name}.");
            } else if let Some((k, v)) = line.split_once('=') {
                table.insert(format!("{section}{}", k.trim()), v.trim().to_owned());
            }
        }
        table
    }
}

/// The configuration files shown in the user guide (`docs/guide.md`): ```` ```toml ````
/// blocks whose first line names where they go.
fn guide_toml(first_line_prefix: &str) -> Vec<(String, String)> {
    let guide = read("docs/guide.md");
    let mut found = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```toml" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if let Some(head) = body.first()
            && head.starts_with(first_line_prefix)
        {
            found.push((head.to_string(), body.join("\n")));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guides_node_configurations_validate() {
    let (m, token) = bootstrap_token().await;
    let configs = guide_toml("# $MANTA_HOME/nodes/");
    assert!(configs.len() >= 2, "the guide shows node configurations");
    for (head, config) in configs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, with_mounted_certs(&config, dir.path())).unwrap();
        let env = BTreeMap::from([
            ("MANTA_NODE_TOKEN", token.expose_secret()),
            ("HOSTNAME", "guide-host"),
        ]);
        let out = manta_node(&["config", "validate", path.to_str().unwrap()], &env);
        assert_eq!(out.status.code(), Some(0), "{head}: {}", text(&out));
    }
    m.stop().await;
}

#[test]
fn the_guides_client_profiles_load() {
    let configs = guide_toml("# $MANTA_HOME/config.toml");
    assert_eq!(configs.len(), 1, "the guide shows one client config.toml");
    let dir = tempfile::tempdir().unwrap();
    let home = manta_config::MantaHome::at(dir.path());
    std::fs::write(home.client_config(), &configs[0].1).unwrap();
    let env = manta_config::Env::from_pairs([("MANTA_HOME", dir.path().to_str().unwrap())]);
    let config = manta_config::ClientConfig::load(&home, &env).unwrap();
    assert_eq!(config.default_profile.as_deref(), Some("dev"));
    let prod = &config.profiles["prod"];
    assert_eq!((prod.host.as_str(), prod.port), ("platform.manta.io", 443));
    assert_eq!(prod.token_variable(), "MANTA_PROD_TOKEN");
    assert!(prod.cert_folder.is_some(), "prod uses mTLS");
    let selected = config
        .select(Some("staging"), &env, &home.client_config())
        .unwrap();
    assert_eq!(selected.profile.host, "staging.manta.io");
    let err = config
        .select(Some("prd"), &env, &home.client_config())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prod"),
        "an unknown profile suggests the closest: {err}"
    );
}

/// systemd's own checker on both units (the template as instance `worker-1`), with the
/// binaries pointed at the ones built here: no unknown key, no bad value, executables found.
/// Machines without systemd-analyze skip this (the hardening test above still runs).
#[test]
fn systemd_analyze_accepts_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed; skipping the systemd verification");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manager = binary("manta-manager", "manta-manager");
    let node = binary("manta_node", "manta-node");
    let units = [
        (
            "deploy/systemd/manta-manager.service",
            "manta-manager.service",
        ),
        (
            "deploy/systemd/manta-node@.service",
            "manta-node@worker-1.service",
        ),
    ];
    let mut paths = Vec::new();
    for (rel, name) in units {
        let text = read(rel)
            .replace("/usr/local/bin/manta-manager", manager.to_str().unwrap())
            .replace("/usr/local/bin/manta_node", node.to_str().unwrap());
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        out.stderr.is_empty(),
        "systemd-analyze warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
