//! `cargo xtask demo`: builds the three programs and runs the whole story on 127.0.0.1 with
//! temporary state (development PKI, a manager with mTLS, node agents, the `manta` command),
//! checking every step's outcome and exiting non-zero when one misbehaves.
//!
//! Every process the demo starts is owned by a [`Proc`] that kills it when dropped, so a
//! failing step never leaves a manager or an agent running. Secrets (the admin token, the
//! bootstrap token, the demo user's password, the API token) are held in `SecretString`s and
//! only handed to the child processes' environment or standard input; nothing secret is
//! printed.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use secrecy::{ExposeSecret as _, SecretString};

/// The `manta` command's exit code for "permission denied" (docs/cli.md).
const EXIT_PERMISSION_DENIED: i32 = 4;
/// The `manta` command's exit code for a refused token (docs/cli.md).
const EXIT_AUTHENTICATION: i32 = 3;
/// `manta_node`'s exit code when the manager refuses the token or the alias (docs/node.md).
const EXIT_NOPERM: i32 = 77;
/// The access-token lifetime the demo gives the manager. The client renews a token at the
/// latest 60 s before it expires (manta-auth's default margin), so a 62 s token is due two
/// seconds after it was issued: the automatic refresh shows up within the demo without the
/// token ever expiring between two steps.
const ACCESS_TTL_SECS: u64 = 62;
/// How long any single command or start-up may take before the demo calls it stuck.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The fixed alias of the first agent (and of the refused third one).
const FIXED_ALIAS: &str = "worker-1";
/// The alias of the agent with a random node id.
const RANDOM_ALIAS: &str = "edge-1";
/// The demo user who signs in with a password.
const USER: &str = "alice";

/// Builds the three programs (debug) and finds them; the demo and its tests share this.
pub(crate) fn build(root: &Path) -> Result<Bins> {
    crate::cargo(
        root,
        &[
            "build",
            "--quiet",
            "-p",
            "manta-manager",
            "-p",
            "manta-node",
            "-p",
            "manta-client",
            "--bins",
        ],
    )?;
    Bins::in_dir(&target_dir(root).join("debug"))
}

/// Runs `cargo xtask demo`: build, then the story.
pub(crate) fn run(root: &Path) -> Result<()> {
    println!("building manta-manager, manta_node and manta (debug) ...");
    let bins = build(root)?;
    let started = Instant::now();
    story(&bins)?;
    println!(
        "demo finished in {:.1} s: every step behaved as expected",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The cargo target directory (`CARGO_TARGET_DIR` when set).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Paths of the three programs.
pub(crate) struct Bins {
    pub(crate) manager: PathBuf,
    pub(crate) node: PathBuf,
    pub(crate) manta: PathBuf,
}

impl Bins {
    /// The programs in `dir` (e.g. `target/debug`); fails naming the build command when one
    /// is missing.
    pub(crate) fn in_dir(dir: &Path) -> Result<Bins> {
        let bins = Bins {
            manager: dir.join("manta-manager"),
            node: dir.join("manta_node"),
            manta: dir.join("manta"),
        };
        for b in [&bins.manager, &bins.node, &bins.manta] {
            ensure!(
                b.is_file(),
                "{} is missing; run `cargo build -p manta-manager -p manta-node -p manta-client --bins`",
                b.display()
            );
        }
        Ok(bins)
    }
}

/// A child process that is killed (and reaped) when dropped, unless it already exited.
pub(crate) struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Takes charge of `child`, named `name` in messages.
    pub(crate) fn new(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_owned(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, killing it after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("{} did not exit within {timeout:?}; killed it", self.name);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Lines a child writes to a pipe, read on a thread: new ones arrive on `lines`, and the last
/// ones are kept for error messages.
pub(crate) struct Lines {
    lines: Receiver<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Lines {
    pub(crate) fn follow(pipe: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&tail);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut t) = keep.lock() {
                    if t.len() == 20 {
                        t.pop_front();
                    }
                    t.push_back(line.clone());
                }
                // The receiver may be gone once the demo stopped listening; keep draining the
                // pipe anyway so the child never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        Lines { lines: rx, tail }
    }

    /// Waits for a line containing `needle` and returns it.
    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "no line with {needle:?} within {timeout:?}\n{}",
                        self.tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!(
                        "the process exited before printing {needle:?}\n{}",
                        self.tail()
                    )
                }
            }
        }
    }

    fn tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// A finished command: exit code and both outputs.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit code {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `cmd` as a shell-like line for messages: the program and its arguments, never the
/// environment (`Command`'s `Debug` prints the variables set on it, and those carry tokens).
pub(crate) fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion (killing it after [`STEP_TIMEOUT`]), feeding `stdin`.
fn run_cmd(cmd: &mut Command, stdin: Option<&SecretString>) -> Result<Run> {
    let shown = shown(cmd);
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    if let (Some(secret), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{}\n", secret.expose_secret()).as_bytes())?;
    }
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let mut proc = Proc { name: shown, child };
    let status = proc.wait(STEP_TIMEOUT)?;
    Ok(Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Prints one progress line.
fn step(n: &mut u32, text: &str) {
    *n += 1;
    println!("[{n:>2}] {text}");
}

/// The demo's state: temporary directory, programs and the manager's addresses.
struct Demo<'a> {
    bins: &'a Bins,
    pki: PathBuf,
    manager_config: PathBuf,
    /// The `manta` command's MANTA_HOME (profile and credentials file).
    client_home: PathBuf,
    node_port: u16,
}

impl Demo<'_> {
    /// `manta-manager --config ... ARGS`.
    fn manager(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bins.manager);
        c.arg("--config").arg(&self.manager_config).args(args);
        clean_env(&mut c);
        c
    }

    /// An admin command that must succeed; returns its standard output.
    fn admin(&self, args: &[&str], stdin: Option<&SecretString>) -> Result<String> {
        let r = run_cmd(&mut self.manager(args), stdin)?;
        ensure!(
            r.code == Some(0),
            "manta-manager {} failed: {}",
            args.join(" "),
            r.describe()
        );
        Ok(r.stdout)
    }

    /// `manta ARGS` with the demo's MANTA_HOME, and `token` in MANTA_TOKEN when given
    /// (otherwise the token comes from the credentials file `manta login` wrote).
    fn manta(&self, args: &[&str], token: Option<&SecretString>) -> Result<Run> {
        let mut c = Command::new(&self.bins.manta);
        clean_env(&mut c);
        c.env("MANTA_HOME", &self.client_home).args(args);
        if let Some(t) = token {
            c.env("MANTA_TOKEN", t.expose_secret());
        }
        run_cmd(&mut c, None)
    }

    /// `manta login` as the demo user, storing the token in the credentials file.
    fn login(&self, password: &SecretString) -> Result<()> {
        let mut c = Command::new(&self.bins.manta);
        clean_env(&mut c);
        c.env("MANTA_HOME", &self.client_home).args([
            "login",
            "-u",
            USER,
            "--password-stdin",
            "--store",
            "file",
        ]);
        let r = run_cmd(&mut c, Some(password))?;
        ensure!(r.code == Some(0), "manta login failed: {}", r.describe());
        Ok(())
    }

    /// `manta ARGS` that must exit 0; returns its standard output.
    fn manta_ok(&self, args: &[&str], token: Option<&SecretString>) -> Result<String> {
        let r = self.manta(args, token)?;
        ensure!(
            r.code == Some(0),
            "manta {} failed: {}",
            args.join(" "),
            r.describe()
        );
        Ok(r.stdout)
    }

    /// `manta_node ARGS` with `home` as MANTA_HOME and the bootstrap token in
    /// MANTA_NODE_TOKEN.
    fn node(&self, home: &Path, token: &SecretString, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bins.node);
        clean_env(&mut c);
        c.env("MANTA_HOME", home)
            .env("MANTA_NODE_TOKEN", token.expose_secret())
            .args(args);
        c
    }

    /// Writes a node configuration with `manta_node config init` (token as
    /// `${MANTA_NODE_TOKEN}`, mTLS with the demo PKI) and validates it.
    fn node_config(
        &self,
        home: &Path,
        token: &SecretString,
        alias: &str,
        random_id: bool,
    ) -> Result<()> {
        let manager = format!("127.0.0.1:{}", self.node_port);
        let pki = self.pki.to_string_lossy();
        let mut args = vec![
            "config",
            "init",
            alias,
            "--token-env",
            "MANTA_NODE_TOKEN",
            "--alias",
            alias,
            "--manager",
            &manager,
            "--tls",
            "--cert-folder",
            &pki,
            "--no-input",
        ];
        if random_id {
            args.push("--random-id");
        }
        let r = run_cmd(&mut self.node(home, token, &args), None)?;
        ensure!(r.code == Some(0), "config init failed: {}", r.describe());
        let path = home.join("nodes").join(format!("{alias}.toml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            text.contains("${MANTA_NODE_TOKEN}") && !text.contains(token.expose_secret()),
            "{} should reference ${{MANTA_NODE_TOKEN}} and hold no token:\n{text}",
            path.display()
        );
        let r = run_cmd(
            &mut self.node(home, token, &["config", "validate", alias]),
            None,
        )?;
        ensure!(
            r.code == Some(0),
            "config validate {alias} failed: {}",
            r.describe()
        );
        Ok(())
    }

    /// Starts `manta_node start ALIAS` and waits until it says it registered; returns the
    /// process and the node id the manager assigned.
    fn start_agent(
        &self,
        home: &Path,
        token: &SecretString,
        alias: &str,
    ) -> Result<(Proc, String)> {
        let mut cmd = self.node(home, token, &["start", alias]);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting manta_node")?;
        let err: Option<ChildStderr> = child.stderr.take();
        let proc = Proc {
            name: format!("manta_node {alias}"),
            child,
        };
        let lines = Lines::follow(err.context("manta_node's stderr is piped")?);
        let line = lines.wait_for("registered as", STEP_TIMEOUT)?;
        let id = line
            .split("registered as ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .context("no node id after `registered as`")?
            .to_owned();
        Ok((proc, id))
    }

    /// The manager's node list for `cluster` as JSON objects.
    fn nodes(&self, cluster: &str) -> Result<Vec<serde_json::Value>> {
        self.admin(&["node", "list", "--cluster", cluster, "--json"], None)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("node list line {l:?}")))
            .collect()
    }

    /// `manta token inspect --json` of the stored token: (token id, expiry in unix seconds).
    fn stored_token(&self) -> Result<(String, u64)> {
        let out = self.manta_ok(&["--json", "token", "inspect"], None)?;
        let v: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("token inspect output {out:?}"))?;
        let claims = &v["claims"];
        let id = claims["jti"]
            .as_str()
            .with_context(|| format!("token inspect shows no claims.jti: {out}"))?;
        let exp = claims["exp"]
            .as_u64()
            .with_context(|| format!("token inspect shows no claims.exp: {out}"))?;
        Ok((id.to_owned(), exp))
    }
}

/// Removes the variables of the caller's shell that would change what the programs do.
fn clean_env(c: &mut Command) {
    for v in [
        "MANTA_TOKEN",
        "MANTA_PROFILE",
        "MANTA_ENV",
        "MANTA_HOME",
        "MANTA_NODE_TOKEN",
        "MANTA_MANAGER_CONFIG",
        "MANTA_MANAGER_DATA_DIR",
        "MANTA_LOG",
    ] {
        c.env_remove(v);
    }
}

/// The first line of `text` up to its first `: ` after a closing parenthesis, so a long
/// error shows its headline (e.g. "error: permission denied for X (needs `scope`)").
fn first_clause(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.find("): ").map_or(line, |i| &line[..=i])
}

/// Reads a secret a command printed on its standard output.
fn secret_line(out: String) -> Result<SecretString> {
    let t = out.trim();
    ensure!(
        t.starts_with("eyJ") && !t.contains(char::is_whitespace),
        "expected one token on standard output"
    );
    Ok(SecretString::from(t.to_owned()))
}

/// The story of the issue, on 127.0.0.1 with temporary state.
pub(crate) fn story(bins: &Bins) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("manta-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tmp.path().to_path_buf();
    let mut n = 0;

    // 1. Development PKI.
    let pki = dir.join("pki");
    manta_tls::DevPki::create(&pki, &manta_tls::DevPkiOptions::default())
        .context("creating the development PKI")?;
    step(
        &mut n,
        &format!(
            "development PKI (CA, server and client certificates) in {}",
            pki.display()
        ),
    );

    // 2. The manager with mTLS and short access tokens.
    let manager_config = dir.join("manager.toml");
    std::fs::write(
        &manager_config,
        format!(
            "data_dir = {data:?}\n\n[listen]\nuser_api = \"127.0.0.1:0\"\nnode_api = \"127.0.0.1:0\"\n\n\
             [tokens]\naccess_ttl_secs = {ACCESS_TTL_SECS}\n\n\
             [tls]\ncert_folder = {pki:?}\nclient_auth = \"required\"\n",
            data = dir.join("manager").to_string_lossy(),
            pki = pki.to_string_lossy(),
        ),
    )?;
    let mut cmd = Command::new(&bins.manager);
    clean_env(&mut cmd);
    let log = std::fs::File::create(dir.join("manager.log"))?;
    let mut child = cmd
        .arg("--config")
        .arg(&manager_config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting manta-manager")?;
    let out = child
        .stdout
        .take()
        .context("the manager's stdout is piped")?;
    let mut manager = Proc {
        name: "manta-manager".into(),
        child,
    };
    let lines = Lines::follow(out);
    let port_of = |line: String| -> Result<u16> {
        line.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("no port in {line:?}"))
    };
    let user_port = port_of(lines.wait_for("user api listening on", STEP_TIMEOUT)?)?;
    let node_port = port_of(lines.wait_for("node api listening on", STEP_TIMEOUT)?)?;
    let client_home = dir.join("client-home");
    std::fs::create_dir_all(&client_home)?;
    std::fs::write(
        client_home.join("config.toml"),
        format!(
            "default_profile = \"demo\"\n\n[profiles.demo]\nhost = \"127.0.0.1\"\nport = {user_port}\ncert_folder = {:?}\n",
            pki.to_string_lossy()
        ),
    )?;
    let demo = Demo {
        bins,
        pki: pki.clone(),
        manager_config,
        client_home,
        node_port,
    };
    step(
        &mut n,
        &format!(
            "manta-manager serving with mTLS (client certificates required): user api 127.0.0.1:{user_port}, node api 127.0.0.1:{node_port}, access tokens {ACCESS_TTL_SECS} s"
        ),
    );

    // 3. An admin, its token, the demo user, a cluster and a node bootstrap token.
    demo.admin(&["user", "add", "admin", "--scopes", "admin:*"], None)?;
    let admin = secret_line(demo.admin(
        &[
            "token",
            "issue",
            "--user",
            "admin",
            "--ttl",
            "1h",
            "--name",
            "demo admin",
        ],
        None,
    )?)?;
    let password = SecretString::from(format!("demo-{}", std::process::id() ^ 0x5eed_cafe));
    demo.admin(
        &[
            "user",
            "add",
            USER,
            "--scopes",
            "user:read,cluster:read,swarm:read,module:upload,module:read",
            "--password-stdin",
        ],
        Some(&password),
    )?;
    let cluster = demo
        .admin(&["cluster", "create", "demo", "--owner", USER], None)?
        .trim()
        .to_owned();
    ensure!(!cluster.is_empty(), "cluster create printed no id");
    let bootstrap = secret_line(demo.admin(
        &["node-token", "issue", "--cluster", &cluster, "--ttl", "1h"],
        None,
    )?)?;
    step(
        &mut n,
        &format!(
            "admin token issued; user {USER} added; cluster {cluster} created; node bootstrap token issued (secrets never printed)"
        ),
    );

    // 4. Two node configurations that take the token from ${MANTA_NODE_TOKEN}.
    let home_a = dir.join("machine-a");
    demo.node_config(&home_a, &bootstrap, FIXED_ALIAS, false)?;
    demo.node_config(&home_a, &bootstrap, RANDOM_ALIAS, true)?;
    step(
        &mut n,
        &format!(
            "node configs {FIXED_ALIAS} (fixed alias) and {RANDOM_ALIAS} (random_id) written with secured_token = \"${{MANTA_NODE_TOKEN}}\"; config validate passes"
        ),
    );

    // 5. Two agents register.
    let (mut fixed, fixed_id) = demo.start_agent(&home_a, &bootstrap, FIXED_ALIAS)?;
    let (mut random, random_id) = demo.start_agent(&home_a, &bootstrap, RANDOM_ALIAS)?;
    ensure!(fixed_id != random_id, "both agents got node id {fixed_id}");
    step(
        &mut n,
        &format!(
            "agents registered: {FIXED_ALIAS} as {fixed_id} (pid {}), {RANDOM_ALIAS} as {random_id} (pid {})",
            fixed.pid(),
            random.pid()
        ),
    );

    // 6. A third agent on another machine with the same alias is refused by the manager.
    let home_b = dir.join("machine-b");
    demo.node_config(&home_b, &bootstrap, FIXED_ALIAS, false)?;
    let r = run_cmd(
        &mut demo.node(&home_b, &bootstrap, &["start", FIXED_ALIAS]),
        None,
    )?;
    let refusal = format!("Error: Node with alias '{FIXED_ALIAS}' already exists");
    ensure!(
        r.code == Some(EXIT_NOPERM) && r.stderr.contains(&refusal),
        "a third agent with alias {FIXED_ALIAS} should be refused with exit {EXIT_NOPERM} and {refusal:?}: {}",
        r.describe()
    );
    step(
        &mut n,
        &format!("third agent with alias {FIXED_ALIAS} refused (exit {EXIT_NOPERM}): {refusal}"),
    );

    // 7. whoami with the admin token.
    let who = demo.manta_ok(&["whoami"], Some(&admin))?;
    ensure!(
        who.starts_with("admin ") && who.contains("user:create") && who.contains("MANTA_TOKEN"),
        "whoami should show the admin, its scopes and the token's source:\n{who}"
    );
    step(
        &mut n,
        &format!("manta whoami: {}", who.lines().next().unwrap_or_default()),
    );

    // 8. The registered nodes, as the manager sees them.
    let nodes = demo.nodes(&cluster)?;
    let mut shown = Vec::new();
    for (alias, id) in [(FIXED_ALIAS, &fixed_id), (RANDOM_ALIAS, &random_id)] {
        let node = nodes
            .iter()
            .find(|v| v["id"] == id.as_str())
            .with_context(|| format!("node list should show {alias} as {id}: {nodes:?}"))?;
        ensure!(
            node["alias"] == alias && node["status"] == "online",
            "node {id} should be {alias}, online: {node}"
        );
        shown.push(format!(
            "{alias} {id} online (fixed alias: {})",
            node["fixed_alias"]
        ));
    }
    ensure!(
        nodes.len() == 2,
        "exactly two nodes should be registered: {nodes:?}"
    );
    step(&mut n, &format!("registered nodes: {}", shown.join("; ")));

    // 9. The demo user signs in; deploying without swarm:deploy is refused.
    demo.login(&password)?;
    let swarm = write_swarm(&dir)?;
    let swarm_arg = swarm.to_string_lossy();
    let r = demo.manta(
        &["swarm", "deploy", "--cluster", &cluster, &swarm_arg],
        None,
    )?;
    ensure!(
        r.code == Some(EXIT_PERMISSION_DENIED) && r.stderr.contains("swarm:deploy"),
        "swarm deploy without swarm:deploy should exit {EXIT_PERMISSION_DENIED} naming the scope: {}",
        r.describe()
    );
    step(
        &mut n,
        &format!(
            "{USER} signed in (token in credentials.ini, 0600); swarm deploy refused (exit {EXIT_PERMISSION_DENIED}): {}",
            first_clause(&r.stderr)
        ),
    );

    // 10. With swarm:deploy granted, the same deployment is accepted.
    demo.admin(
        &[
            "user",
            "set-scopes",
            USER,
            "user:read,cluster:read,swarm:read,swarm:deploy,module:upload,module:read",
        ],
        None,
    )?;
    // A token carries the scopes it was issued with (and never more than its user holds
    // now), so the new scope needs a new sign-in.
    demo.login(&password)?;
    let out = demo.manta_ok(
        &[
            "--json",
            "swarm",
            "deploy",
            "--cluster",
            &cluster,
            &swarm_arg,
        ],
        None,
    )?;
    let deployed: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("swarm deploy output {out:?}"))?;
    step(
        &mut n,
        &format!(
            "swarm:deploy granted, {USER} signed in again; swarm deploy accepted: {}",
            deployed["id"]
                .as_str()
                .with_context(|| format!("swarm deploy --json shows no id: {out}"))?
        ),
    );

    // 11. An API token: created, used, listed, revoked, then refused.
    let r = demo.manta(
        &[
            "--json",
            "token",
            "create",
            "--name",
            "demo-ci",
            "--scopes",
            "cluster:read",
            "--ttl",
            "1h",
        ],
        None,
    )?;
    ensure!(r.code == Some(0), "token create failed: {}", r.describe());
    let created: serde_json::Value = serde_json::from_str(&r.stdout)
        .map_err(|_| anyhow::anyhow!("token create --json printed no JSON"))?;
    let api_token = SecretString::from(
        created
            .get("token")
            .and_then(serde_json::Value::as_str)
            .context("token create --json has no token")?
            .to_owned(),
    );
    let token_id = created
        .get("id")
        .and_then(serde_json::Value::as_str)
        .context("token create --json has no id")?
        .to_owned();
    let who = demo.manta_ok(&["whoami"], Some(&api_token))?;
    ensure!(who.starts_with(USER), "whoami with the API token:\n{who}");
    let list = demo.manta_ok(&["token", "list"], None)?;
    ensure!(
        list.contains(&token_id) && list.contains("demo-ci"),
        "token list should show demo-ci ({token_id}):\n{list}"
    );
    demo.manta_ok(&["token", "revoke", &token_id], None)?;
    let r = demo.manta(&["whoami"], Some(&api_token))?;
    ensure!(
        r.code == Some(EXIT_AUTHENTICATION),
        "a revoked API token should exit {EXIT_AUTHENTICATION}: {}",
        r.describe()
    );
    step(
        &mut n,
        &format!(
            "API token demo-ci ({token_id}) created, used, listed and revoked; then refused (exit {EXIT_AUTHENTICATION})"
        ),
    );

    // 12. Automatic refresh: once the short access token is due, the next command renews it
    // and stores the new one.
    let (before_id, before_exp) = demo.stored_token()?;
    thread::sleep(Duration::from_millis(2_500));
    demo.manta_ok(&["whoami"], None)?;
    let (after_id, after_exp) = demo.stored_token()?;
    ensure!(
        after_id != before_id && after_exp > before_exp,
        "the stored token should have been renewed: before {before_id} (expires {before_exp}), after {after_id} (expires {after_exp})"
    );
    step(
        &mut n,
        &format!(
            "automatic refresh: `manta whoami` renewed {USER}'s token and stored it (token id {before_id} -> {after_id}, expiry +{} s)",
            after_exp - before_exp
        ),
    );

    // 13. Clean shutdown: the agents deregister and exit 0, then the manager exits 0.
    for (proc, alias) in [(&mut fixed, FIXED_ALIAS), (&mut random, RANDOM_ALIAS)] {
        let r = run_cmd(&mut demo.node(&home_a, &bootstrap, &["stop", alias]), None)?;
        ensure!(
            r.code == Some(0),
            "manta_node stop {alias}: {}",
            r.describe()
        );
        let status = proc.wait(STEP_TIMEOUT)?;
        ensure!(
            status.code() == Some(0),
            "agent {alias} exited with {status} after SIGTERM"
        );
    }
    let nodes = demo.nodes(&cluster)?;
    ensure!(
        nodes.iter().all(|v| v["status"] == "offline"),
        "every node should be offline after deregistering: {nodes:?}"
    );
    let r = run_cmd(
        Command::new("kill").args(["-TERM", &manager.pid().to_string()]),
        None,
    )?;
    ensure!(
        r.code == Some(0),
        "kill -TERM the manager: {}",
        r.describe()
    );
    let status = manager.wait(STEP_TIMEOUT)?;
    ensure!(
        status.code() == Some(0),
        "the manager exited with {status} after SIGTERM"
    );
    step(
        &mut n,
        "shutdown: both agents deregistered and exited 0 (SIGTERM via manta_node stop); manta-manager exited 0 on SIGTERM",
    );
    Ok(())
}

/// Writes a one-task swarm file and its (tiny) program next to it.
fn write_swarm(dir: &Path) -> Result<PathBuf> {
    let swarm = dir.join("swarm");
    std::fs::create_dir_all(&swarm)?;
    // The program is opaque bytes to the client and the manager; a real one is a zip file.
    std::fs::write(swarm.join("train.zip"), b"PK\x05\x06demo program")?;
    let path = swarm.join("swarm.json");
    std::fs::write(
        &path,
        r#"{
  "name": "demo-training",
  "max_iteration": 1,
  "tasks": [
    {"alias": "train", "module": {"name": "train", "image": "python:3.11", "program": "train.zip"}}
  ]
}
"#,
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_commands_never_carry_the_environment() {
        let mut c = Command::new("manta");
        c.env("MANTA_TOKEN", "eyJsecret.eyJx.sig")
            .args(["whoami", "--json"]);
        let text = shown(&c);
        assert_eq!(text, r#""manta" "whoami" "--json""#);
        assert!(!text.contains("eyJsecret"), "{text}");
    }

    fn debug_bins() -> Bins {
        let root = crate::workspace_root();
        build(&root).unwrap()
    }

    /// The whole demo, as `cargo xtask demo` runs it after the build (a few seconds).
    #[test]
    fn the_demo_story_passes() {
        story(&debug_bins()).unwrap();
    }

    /// A step that misbehaves (here `manta` always exits 1) fails the demo with a message
    /// naming the command and its exit code.
    #[test]
    fn a_misbehaving_step_fails_the_demo() {
        let real = debug_bins();
        let broken = Bins {
            manager: real.manager.clone(),
            node: real.node.clone(),
            manta: PathBuf::from("/bin/false"),
        };
        let err = format!("{:#}", story(&broken).unwrap_err());
        assert!(err.contains("manta whoami failed"), "{err}");
        assert!(err.contains("exit code Some(1)"), "{err}");
    }

    #[test]
    fn missing_programs_name_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bins::in_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("manta-manager is missing"), "{err}");
        assert!(err.contains("cargo build -p manta-manager"), "{err}");
    }

    #[test]
    fn long_errors_show_their_headline() {
        assert_eq!(
            first_clause("error: permission denied for x (needs `s`): more; and more\nline 2"),
            "error: permission denied for x (needs `s`)"
        );
        assert_eq!(first_clause("plain"), "plain");
        assert_eq!(first_clause(""), "");
    }

    #[test]
    fn only_a_single_token_is_taken_from_standard_output() {
        assert!(secret_line("eyJa.b.c\n".into()).is_ok());
        assert!(secret_line("error: no\n".into()).is_err());
        assert!(secret_line("eyJa.b.c eyJd.e.f\n".into()).is_err());
    }
}
