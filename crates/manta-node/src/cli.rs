//! The `manta_node` command line: `config init|validate|show|list`, `start`, `stop`,
//! `status`, `version`. [`run`] takes the arguments, the environment and the three standard
//! streams, and returns the exit code, so every command is testable in-process.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use manta_config::{
    ConfigDocument, ConfigError, Env, MantaHome, NodeConfig, NodeConfigRef, NodeTemplate, Problem,
    SECURED_TOKEN_KEY, Severity, TemplateToken,
};
use secrecy::SecretString;

use crate::agent::{Agent, AgentOptions};
use crate::client::{AGENT_VERSION, ManagerClient};
use crate::error::NodeError;
use crate::identity::{IdentityState, NodeIdentity, hostname, is_valid_alias, state_dir};
use crate::logging;
use crate::runfile::{self, run_dir};

/// `manta_node`: the Manta node agent.
#[derive(Debug, Parser)]
#[command(name = "manta_node", version = AGENT_VERSION, about = "The Manta node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, check and show node configurations (MANTA_HOME/nodes/NAME.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Register with the manager and run in the foreground until SIGTERM.
    Start(StartArgs),
    /// Stop a running node (SIGTERM; it deregisters and exits).
    Stop(StopArgs),
    /// List the nodes running on this machine.
    Status(StatusArgs),
    /// Print the version.
    Version,
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The `manta_node` command line as a clap [`clap::Command`]: what completions and the
/// release's man pages are generated from.
#[must_use]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write a new configuration (interactive on a terminal).
    Init(InitArgs),
    /// Check a configuration: every rule of the seed's "Validation" section.
    Validate(ValidateArgs),
    /// Print a configuration with secrets masked.
    Show(ShowArgs),
    /// List the configurations in MANTA_HOME/nodes.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print JSON: `{"nodes_dir": DIR, "configs": [{"name", "path"}]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Configuration name (file MANTA_HOME/nodes/NAME.toml); `default` when omitted.
    name: Option<String>,
    /// Environment variable holding the token: writes secured_token = "${VAR}".
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Read a literal token from standard input instead (the file is written 0600).
    #[arg(long, conflicts_with = "token_env")]
    token_stdin: bool,
    /// The node's alias (letters, digits, - and _).
    #[arg(long)]
    alias: Option<String>,
    /// Generate a new random node id on each start.
    #[arg(long)]
    random_id: bool,
    /// The manager's address.
    #[arg(long, value_name = "HOST:PORT")]
    manager: Option<String>,
    /// Connect with TLS using the certificate folder (implied by --cert-folder).
    #[arg(long)]
    tls: bool,
    /// Certificate folder: the manager's ca.crt, plus client.crt and client.key for mTLS.
    /// Turns TLS on.
    #[arg(long, value_name = "DIR")]
    cert_folder: Option<String>,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Never prompt, even on a terminal.
    #[arg(long)]
    no_input: bool,
    /// Ask the questions even when standard input is not a terminal (answers piped in,
    /// one a line).
    #[arg(long, conflicts_with = "no_input")]
    interactive: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Configuration name or path to a .toml file.
    config: String,
    /// Also ask the manager whether it accepts the token (IsAvailable).
    #[arg(long)]
    online: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Configuration name or path to a .toml file.
    config: String,
    /// Show the effective values after ${VAR} substitution (secrets stay masked).
    #[arg(long)]
    resolved: bool,
}

#[derive(Debug, Args)]
struct StartArgs {
    /// Configuration name or path to a .toml file.
    #[arg(default_value = "default")]
    config: String,
    /// Override the configured alias.
    #[arg(long)]
    alias: Option<String>,
    /// Log to standard error instead of the log file (the container form).
    #[arg(long)]
    console: bool,
    /// Heartbeat interval in seconds (default: the manager's).
    #[arg(long, value_name = "SECONDS")]
    heartbeat: Option<u64>,
}

#[derive(Debug, Args)]
struct StopArgs {
    /// The alias of the node to stop (optional when only one runs).
    alias: Option<String>,
    /// Seconds to wait for a clean exit.
    #[arg(long, short, default_value_t = 10)]
    timeout: u64,
    /// Kill the node (SIGKILL) if it has not exited after the timeout.
    #[arg(long, short)]
    force: bool,
    /// Print JSON: `{"alias", "pid", "outcome": "stopped" | "killed"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The streams a command uses.
pub struct Io<'a> {
    /// Standard input (tokens for `--token-stdin`, answers to prompts).
    pub stdin: &'a mut dyn BufRead,
    /// Whether standard input is a terminal (prompts are shown only then).
    pub interactive: bool,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
}

/// Runs `manta_node` with `args` (the first is the program name) and returns the exit code:
/// 0 on success, 78 for configuration errors, 77 when the manager refused the token or
/// alias, 69 when it cannot be reached, 2 for usage errors, 1 otherwise.
pub fn run(args: impl IntoIterator<Item = OsString>, env: &Env, io: &mut Io<'_>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 {
                io.stdout.write_all(text.as_bytes())
            } else {
                io.stderr.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let result = match MantaHome::from_env(env) {
        Err(e) => Err(NodeError::Config(e)),
        Ok(home) => dispatch(cli.command, &home, env, io),
    };
    match result {
        Ok(code) => code,
        // The reader of standard output went away (`manta_node config list | head`): it
        // has what it wanted, so exit quietly.
        Err(NodeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            report_error(&e, io.stderr);
            e.exit_code()
        }
    }
}

fn dispatch(cmd: Command, home: &MantaHome, env: &Env, io: &mut Io<'_>) -> Result<u8, NodeError> {
    match cmd {
        Command::Version => {
            writeln!(io.stdout, "manta_node {AGENT_VERSION}").map_err(out_err)?;
            Ok(0)
        }
        Command::Config(ConfigCommand::Init(a)) => init(a, home, env, io),
        Command::Config(ConfigCommand::Validate(a)) => validate(&a, home, env, io),
        Command::Config(ConfigCommand::Show(a)) => show(&a, home, env, io),
        Command::Config(ConfigCommand::List(a)) => list(&a, home, io),
        Command::Start(a) => start(a, home, env, io),
        Command::Stop(a) => {
            let stopped = runfile::stop(
                &run_dir(home),
                a.alias.as_deref(),
                Duration::from_secs(a.timeout),
                a.force,
            )?;
            let outcome = if stopped.killed { "killed" } else { "stopped" };
            if a.json {
                let doc = serde_json::json!({
                    "alias": stopped.alias,
                    "pid": stopped.pid,
                    "outcome": outcome,
                });
                writeln!(io.stdout, "{doc:#}").map_err(out_err)?;
            } else {
                writeln!(
                    io.stdout,
                    "{outcome} node '{}' (pid {})",
                    stopped.alias, stopped.pid
                )
                .map_err(out_err)?;
            }
            Ok(0)
        }
        Command::Status(a) => status(&a, home, io),
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails (`| head` closed the pipe), so the
            // script is rendered first and written with the error kept.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "manta_node", &mut script);
            io.stdout.write_all(&script).map_err(out_err)?;
            Ok(0)
        }
    }
}

fn out_err(e: std::io::Error) -> NodeError {
    NodeError::io("<stdout>", e)
}

/// Prints an error the way the seed shows them: `Error: TEXT`, then detail and Solutions.
fn report_error(e: &NodeError, err: &mut dyn Write) {
    if let NodeError::Config(ConfigError::Validation { problems }) = e {
        print_problems(problems, err);
        return;
    }
    let _ = writeln!(err, "Error: {}", e.headline());
    if let Some(detail) = e.detail() {
        let _ = writeln!(err, "  ({detail})");
    }
    let solutions = e.solutions();
    if !solutions.is_empty() {
        let _ = writeln!(err, "Solutions:");
        for s in solutions {
            let _ = writeln!(err, "  - {s}");
        }
    }
}

fn print_problems(problems: &[Problem], out: &mut dyn Write) {
    for p in problems {
        let level = match p.severity {
            Severity::Error => "Error",
            _ => "Warning",
        };
        let _ = writeln!(out, "{level}: {}", p.message);
        let _ = match &p.detail {
            Some(d) => writeln!(out, "  key: {} ({d})", p.key),
            None => writeln!(out, "  key: {}", p.key),
        };
        if !p.hints.is_empty() {
            let _ = writeln!(out, "Solutions:");
            for h in &p.hints {
                let _ = writeln!(out, "  - {h}");
            }
        }
    }
}

fn resolve(arg: &str, home: &MantaHome) -> Result<PathBuf, NodeError> {
    Ok(NodeConfigRef::parse(arg).resolve(home)?)
}

/// Asks `question` until `parse` accepts the answer (an empty answer is `default`),
/// saying why after each refused one. The end of standard input is an error, so piped
/// answers that run out never loop.
fn ask<T>(
    io: &mut Io<'_>,
    question: &str,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, NodeError> {
    loop {
        write!(io.stderr, "{question} [{default}]: ").map_err(out_err)?;
        io.stderr.flush().map_err(out_err)?;
        let mut line = zeroize::Zeroizing::new(String::new());
        let read = io
            .stdin
            .read_line(&mut line)
            .map_err(|e| NodeError::io("<stdin>", e))?;
        if read == 0 {
            // End the prompt's line so the error starts on its own.
            let _ = writeln!(io.stderr);
            return Err(NodeError::NoAnswer {
                question: question.to_owned(),
            });
        }
        let answer = line.trim();
        match parse(if answer.is_empty() { default } else { answer }) {
            Ok(value) => return Ok(value),
            Err(why) => writeln!(io.stderr, "{why}; try again").map_err(out_err)?,
        }
    }
}

/// An answer to "Environment variable holding the node token". Never echoed: someone may
/// paste the token itself here.
fn parse_token_env(answer: &str) -> Result<String, String> {
    if is_env_name(answer) {
        Ok(answer.to_owned())
    } else {
        Err("that is not a variable name (letters, digits and _, e.g. MANTA_NODE_TOKEN; to use the token itself, export it in a variable)".to_owned())
    }
}

fn parse_alias(answer: &str) -> Result<String, String> {
    if is_valid_alias(answer) {
        Ok(answer.to_owned())
    } else {
        Err(NodeError::InvalidAlias {
            alias: answer.to_owned(),
        }
        .to_string())
    }
}

fn parse_yes_no(answer: &str) -> Result<bool, String> {
    match answer.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err("answer y or n".to_owned()),
    }
}

fn parse_manager(s: &str) -> Result<(String, u16), NodeError> {
    let bad = || {
        NodeError::Usage(format!(
            "invalid manager address `{s}`; write HOST:PORT, e.g. localhost:50051"
        ))
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn init(a: InitArgs, home: &MantaHome, env: &Env, io: &mut Io<'_>) -> Result<u8, NodeError> {
    let name = a.name.clone().unwrap_or_else(|| "default".to_owned());
    let path = home.node_config(&name)?;
    let mut t = NodeTemplate::new(&name);
    let flags_given = a.token_env.is_some()
        || a.token_stdin
        || a.alias.is_some()
        || a.random_id
        || a.manager.is_some()
        || a.tls
        || a.cert_folder.is_some();
    let mut manager = a.manager.clone();
    let mut alias = a.alias.clone();
    let mut token_env = a.token_env.clone();
    if a.interactive || (io.interactive && !flags_given && !a.no_input) {
        writeln!(io.stderr, "Creating {}", path.display()).map_err(out_err)?;
        token_env = Some(ask(
            io,
            "Environment variable holding the node token",
            "MANTA_NODE_TOKEN",
            parse_token_env,
        )?);
        let host_alias = crate::identity::alias_from_hostname(&hostname());
        alias = Some(ask(io, "Alias", &host_alias, parse_alias)?);
        t.random_id = ask(io, "Random node id on each start (y/n)", "n", parse_yes_no)?;
        let (host, port) = ask(io, "Manager address", "localhost:50051", |m| {
            parse_manager(m).map_err(|e| e.to_string())
        })?;
        manager = Some(format!("{host}:{port}"));
    } else {
        t.random_id = a.random_id;
    }
    if let Some(var) = token_env {
        if !is_env_name(&var) {
            return Err(NodeError::Usage(format!(
                "invalid variable name `{var}`; use letters, digits and _ (e.g. MANTA_NODE_TOKEN)"
            )));
        }
        t.token = TemplateToken::EnvReference(var);
    } else if a.token_stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        io.stdin
            .read_line(&mut line)
            .map_err(|e| NodeError::io("<stdin>", e))?;
        let token = line.trim();
        if token.is_empty() {
            return Err(NodeError::TokenRequired);
        }
        t.token = TemplateToken::Literal(SecretString::from(token));
    }
    if let Some(alias) = alias.filter(|a| !a.is_empty()) {
        if !is_valid_alias(&alias) {
            return Err(NodeError::InvalidAlias { alias });
        }
        t.alias = Some(alias);
    }
    if let Some(m) = manager {
        let (host, port) = parse_manager(&m)?;
        t.manager_host = host;
        t.manager_port = port;
    }
    // A certificate folder is only read with TLS on, so naming one asks for TLS.
    t.use_tls = a.tls || a.cert_folder.is_some();
    if let Some(folder) = a.cert_folder {
        t.cert_folder = folder;
    }
    t.write(&path, a.force).map_err(|e| match e {
        ConfigError::AlreadyExists { path } => NodeError::Usage(format!(
            "{} already exists; pass --force to replace it, or choose another name",
            path.display()
        )),
        other => NodeError::Config(other),
    })?;
    writeln!(io.stdout, "Wrote {}", path.display()).map_err(out_err)?;
    if let TemplateToken::EnvReference(var) = &t.token
        && env.get_non_empty(var).is_none()
    {
        writeln!(
            io.stdout,
            "Next: export {var}=<token from your admin>, then run: manta_node start {name}"
        )
        .map_err(out_err)?;
    } else {
        writeln!(io.stdout, "Next: manta_node start {name}").map_err(out_err)?;
    }
    Ok(0)
}

fn validate(
    a: &ValidateArgs,
    home: &MantaHome,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<u8, NodeError> {
    let path = resolve(&a.config, home)?;
    // The checks `start` makes before it connects, by the same code, so a configuration
    // that validates starts and one that does not fails both with the same text.
    let checked = match crate::agent::preflight(&path, env, home, None, &hostname()) {
        Ok(checked) => checked,
        Err(e) => {
            report_error(&e, io.stderr);
            writeln!(io.stdout, "{} is not valid", path.display()).map_err(out_err)?;
            return Ok(e.exit_code());
        }
    };
    print_problems(&checked.warnings, io.stdout);
    if a.online {
        let config = &checked.config;
        let token = config
            .identity
            .secured_token
            .clone()
            .ok_or(NodeError::TokenRequired)?;
        let runtime = runtime()?;
        runtime.block_on(async {
            let client = ManagerClient::with_tls(config, checked.tls.as_ref())?;
            client.is_available(&token).await?;
            writeln!(
                io.stdout,
                "The manager at {} accepts the token",
                client.endpoint()
            )
            .map_err(out_err)
        })?;
    }
    writeln!(io.stdout, "{} is valid", path.display()).map_err(out_err)?;
    Ok(0)
}

fn show(a: &ShowArgs, home: &MantaHome, env: &Env, io: &mut Io<'_>) -> Result<u8, NodeError> {
    let path = resolve(&a.config, home)?;
    if !a.resolved {
        let text = masked(ConfigDocument::open(&path)?)?;
        writeln!(io.stdout, "# {}", path.display()).map_err(out_err)?;
        io.stdout.write_all(text.as_bytes()).map_err(out_err)?;
        return Ok(0);
    }
    let cfg = NodeConfig::load(&path, env)?.value;
    let identity = NodeIdentity::resolve(&cfg.identity, None, &hostname());
    let token = match (&cfg.identity.secured_token, cfg.token_expiry()) {
        (None, _) => "(not set)".to_owned(),
        (Some(_), Some(exp)) => format!(
            "[REDACTED] (expires in {} s)",
            exp.duration_since(SystemTime::now())
                .map_or(0, |d| d.as_secs())
        ),
        (Some(_), None) => "[REDACTED]".to_owned(),
    };
    let mut lines = vec![
        format!("file = {}", path.display()),
        format!("identity.secured_token = {token}"),
        format!(
            "identity.alias = {}",
            cfg.identity.alias.as_deref().unwrap_or("(host name)")
        ),
        format!("identity.random_id = {}", cfg.identity.random_id),
    ];
    if let Ok(id) = identity {
        let node_id = if id.random_id {
            "(random on each start)".to_owned()
        } else {
            id.node_id.clone()
        };
        lines.push(format!("node id = {node_id}"));
        lines.push(format!(
            "log file = {}",
            logging::log_file_path(home, &cfg.logging, &id.alias).display()
        ));
        lines.push(format!("state dir = {}", state_dir(home).display()));
    }
    lines.extend([
        format!(
            "network.manager = {}:{}",
            cfg.network.manager_host, cfg.network.manager_port
        ),
        format!("security.use_tls = {}", cfg.security.use_tls),
        format!("security.cert_folder = {}", cfg.cert_folder(env).display()),
        format!(
            "security.jwt_refresh_buffer_seconds = {}",
            cfg.security.jwt_refresh_buffer_seconds
        ),
        format!("logging.level = {}", cfg.logging.level),
        format!("logging.log_to_file = {}", cfg.logging.log_to_file),
        format!("logging.log_to_console = {}", cfg.logging.log_to_console),
        format!("metadata.name = {}", cfg.metadata.name),
    ]);
    for l in lines {
        writeln!(io.stdout, "{l}").map_err(out_err)?;
    }
    Ok(0)
}

/// The file as written with the token masked: a literal token becomes `[REDACTED]`, a
/// reference keeps its variable name and loses any default (`${VAR:[REDACTED]}`), since a
/// default may be a literal token.
fn masked(mut doc: ConfigDocument) -> Result<zeroize::Zeroizing<String>, NodeError> {
    let Some(written) = doc.get_str(SECURED_TOKEN_KEY).map(zeroize::Zeroizing::new) else {
        return Ok(doc.render());
    };
    let plain = written
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(is_env_name);
    if plain {
        return Ok(doc.render());
    }
    if doc.is_reference(SECURED_TOKEN_KEY) && written.starts_with("${") {
        let name_len = written[2..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(written.len() - 2);
        let rest = &written[2 + name_len..];
        let op_len = rest
            .find(|c: char| !matches!(c, ':' | '-' | '?'))
            .unwrap_or(rest.len());
        let masked = format!(
            "{}{}[REDACTED]}}",
            &written[..2 + name_len],
            &rest[..op_len]
        );
        let rendered = doc.render();
        let needle = format!("\"{}\"", written.as_str());
        if rendered.contains(&needle) {
            return Ok(zeroize::Zeroizing::new(
                rendered.replace(&needle, &format!("\"{masked}\"")),
            ));
        }
    }
    // Anything else (a literal, or a reference mixed with text): mask the whole value.
    doc.set_str(SECURED_TOKEN_KEY, "[REDACTED]")?;
    Ok(doc.render())
}

fn list(a: &ListArgs, home: &MantaHome, io: &mut Io<'_>) -> Result<u8, NodeError> {
    let names = home.list_node_configs()?;
    if a.json {
        let mut configs = Vec::with_capacity(names.len());
        for name in &names {
            let path = home.node_config(name)?;
            configs.push(serde_json::json!({"name": name, "path": path}));
        }
        let v = serde_json::json!({"nodes_dir": home.nodes_dir(), "configs": configs});
        let text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".to_owned());
        writeln!(io.stdout, "{text}").map_err(out_err)?;
        return Ok(0);
    }
    if names.is_empty() {
        writeln!(
            io.stdout,
            "No configurations in {}; create one with `manta_node config init NAME`",
            home.nodes_dir().display()
        )
        .map_err(out_err)?;
    }
    for name in names {
        let path = home.node_config(&name)?;
        writeln!(io.stdout, "{name}\t{}", path.display()).map_err(out_err)?;
    }
    Ok(0)
}

fn status(a: &StatusArgs, home: &MantaHome, io: &mut Io<'_>) -> Result<u8, NodeError> {
    let nodes = runfile::list(&run_dir(home));
    if a.json {
        let infos: Vec<_> = nodes.iter().map(|n| &n.info).collect();
        let text = serde_json::to_string_pretty(&infos).unwrap_or_else(|_| "[]".to_owned());
        writeln!(io.stdout, "{text}").map_err(out_err)?;
        return Ok(0);
    }
    if nodes.is_empty() {
        writeln!(io.stdout, "No node is running").map_err(out_err)?;
        return Ok(0);
    }
    writeln!(io.stdout, "ALIAS\tNODE ID\tPID\tSTATE\tMANAGER\tCONFIG").map_err(out_err)?;
    for n in nodes {
        let i = n.info;
        writeln!(
            io.stdout,
            "{}\t{}\t{}\t{}\t{}\t{}",
            i.alias,
            i.node_id,
            i.pid,
            i.state,
            i.manager,
            i.config.display()
        )
        .map_err(out_err)?;
    }
    Ok(0)
}

fn runtime() -> Result<tokio::runtime::Runtime, NodeError> {
    // One thread: the agent is idle almost always, and a single thread keeps its memory
    // and wake-ups low.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NodeError::io("<runtime>", e))
}

fn start(a: StartArgs, home: &MantaHome, env: &Env, io: &mut Io<'_>) -> Result<u8, NodeError> {
    let path = resolve(&a.config, home)?;
    let mut options = AgentOptions::new(&path, home.clone(), env.clone());
    options.alias = a.alias;
    options.heartbeat_interval = a.heartbeat.filter(|s| *s > 0).map(Duration::from_secs);
    let mut prepared = Agent::prepare(options)?;
    print_problems(prepared.warnings(), io.stderr);
    let alias = prepared.identity().alias.clone();
    let target = logging::target(home, &prepared.config().logging, &alias, a.console);
    if let logging::LogTarget::File(path) = &target {
        prepared.set_log_file(Some(path.clone()));
    }
    let colour =
        logging::colour_on_stderr(env, std::io::IsTerminal::is_terminal(&std::io::stderr()));
    logging::init(&target, &prepared.config().logging, colour)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
        let running = prepared.start().await?;
        let status = running.handle.status();
        writeln!(
            io.stderr,
            "Node '{}' registered as {} ({}){}",
            status.alias,
            status.node_id,
            if status.resumed {
                "identity resumed"
            } else {
                "new registration"
            },
            match &target {
                logging::LogTarget::File(p) => format!("; logging to {}", p.display()),
                _ => String::new(),
            }
        )
        .map_err(out_err)?;
        let handle = running.handle.clone();
        let signals = async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => handle.reload(),
                    _ = term.recv() => { handle.shutdown(); break; }
                    _ = int.recv() => { handle.shutdown(); break; }
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = running.wait() => r,
            () = signals => Ok(()),
        }
    })?;
    Ok(0)
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, NodeError> {
    tokio::signal::unix::signal(kind).map_err(|e| NodeError::io("<signal>", e))
}

/// Runs `manta_node` for the real process: arguments, environment and standard streams.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> u8 {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut stdin = stdin.lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let mut io = Io {
        stdin: &mut stdin,
        interactive,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let code = run(args, &Env::process(), &mut io);
    let _ = io.stdout.flush();
    code
}

/// Path helper for tests and docs: where a node's state file would be.
pub fn state_file(home: &MantaHome, node_id: &str) -> PathBuf {
    IdentityState::path(&state_dir(home), node_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_addresses_and_variable_names() {
        assert_eq!(
            parse_manager("m.example:50051").unwrap(),
            ("m.example".into(), 50051)
        );
        assert_eq!(parse_manager("[::1]:5").unwrap(), ("::1".into(), 5));
        for bad in ["nohost", ":1", "h:0", "h:x"] {
            let e = parse_manager(bad).unwrap_err().to_string();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
        assert!(is_env_name("MANTA_NODE_TOKEN"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
    }
}
