//! The `manta-manager` command line: `serve`, `dev`, and the admin commands that work on the
//! store directly (safe while a server runs: SQLite WAL serialises the writers).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, TlsConfig};
use crate::error::{Error, Result};
use crate::identity::Core;
use crate::keys::{Authority, rotate};
use crate::scopes;
use crate::server::{ServeOptions, serve, shutdown_signal};
use crate::store::{AuditQuery, SqliteStore, Store, millis_of};

mod pki;
mod platform;

/// The reference Manta manager: serves the published User API with real identity, tokens and
/// authorization.
#[derive(Debug, Parser)]
#[command(name = "manta-manager", version)]
pub struct Cli {
    /// A TOML configuration file (`${VAR}` references are substituted).
    #[arg(long, global = true, env = "MANTA_MANAGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `data_dir` of the configuration).
    #[arg(long, global = true, env = "MANTA_MANAGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the user API and the node API until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Starts a development manager with no setup: data in ./.manta-dev, an admin user and
    /// an admin token printed once.
    Dev(ServeArgs),
    /// Manages users.
    #[command(subcommand)]
    User(UserCommand),
    /// Issues, lists and revokes tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manages signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Shows the audit trail of authorization decisions, newest first; `audit prune`
    /// deletes old rows.
    Audit(AuditArgs),
    /// Creates and lists clusters.
    #[command(subcommand)]
    Cluster(platform::ClusterCommand),
    /// Issues and revokes node bootstrap tokens of a cluster.
    #[command(subcommand)]
    NodeToken(platform::NodeTokenCommand),
    /// Lists, shows and removes registered nodes.
    #[command(subcommand)]
    Node(platform::NodeCommand),
    /// Writes a development PKI (`pki init DIR`) for TLS and mTLS; touches no store.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Prints shell completions for bash, zsh, fish, elvish or powershell; touches no store.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The `manta-manager` command line as a clap [`clap::Command`]: what completions and the
/// release's man pages are generated from.
#[must_use]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Flags of `serve` and `dev`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address of the user API (default 0.0.0.0:50052; `dev`: 127.0.0.1:50052).
    #[arg(long)]
    pub user_listen: Option<SocketAddr>,
    /// Address of the node API (default 0.0.0.0:50051; `dev`: 127.0.0.1:50051).
    #[arg(long)]
    pub node_listen: Option<SocketAddr>,
    /// Lets every call through without a token and without audit. Only for measuring the
    /// cost of authorization; never in a deployment.
    #[arg(long)]
    pub danger_disable_authorization: bool,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user.
    Add {
        /// The user name.
        name: String,
        /// Scopes, comma separated (e.g. `user:read,cluster:*`, or `admin:*`).
        #[arg(long, default_value = "")]
        scopes: String,
        /// The email address.
        #[arg(long, default_value = "")]
        email: String,
        /// Reads the password from the first line of standard input (without it the user can
        /// only use issued tokens).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists users.
    List {
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes a user with all its tokens and sessions.
    Remove {
        /// The user name or id.
        name: String,
    },
    /// Replaces a user's scopes: removed scopes stop working in live tokens at once, added
    /// scopes apply to tokens issued afterwards.
    SetScopes {
        /// The user name or id.
        name: String,
        /// Scopes, comma separated; empty removes all.
        scopes: String,
    },
    /// Sets a user's password from standard input and revokes the user's earlier tokens.
    SetPassword {
        /// The user name or id.
        name: String,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issues an API token and prints only the token (for scripts).
    Issue {
        /// The user name or id.
        #[arg(long)]
        user: String,
        /// Scopes, comma separated; each must be held by the user. Default: all of them.
        #[arg(long)]
        scopes: Option<String>,
        /// Lifetime such as `30d`, `12h`, `15m` or seconds.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// A name to recognise the token by in listings.
        #[arg(long, default_value = "issued by manta-manager token issue")]
        name: String,
    },
    /// Lists tokens (metadata only).
    List {
        /// Only this user's tokens (name or id).
        #[arg(long)]
        user: Option<String>,
        /// Also revoked and expired tokens.
        #[arg(long)]
        all: bool,
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revokes one token by id, or every token of a user with `--user U --all`.
    Revoke {
        /// The token id (`jti`).
        id: Option<String>,
        /// The user whose tokens to revoke (with --all).
        #[arg(long)]
        user: Option<String>,
        /// Revokes every token of --user issued until now.
        #[arg(long)]
        all: bool,
    },
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates a new signing key; old keys keep verifying until their tokens expire.
    Rotate,
}

/// Flags of `audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// `prune`; without it the trail is shown.
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    /// Only events newer than this (e.g. `1h`, `30m`, `7d`).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only this user's events (name or id).
    #[arg(long)]
    pub user: Option<String>,
    /// Only methods containing this text (e.g. `GetUser`).
    #[arg(long)]
    pub method: Option<String>,
    /// Only denials.
    #[arg(long)]
    pub denied: bool,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Prints JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Deletes audit rows now: those older than `--older-than` and all but the newest
    /// `--max-rows`. Without flags it applies the configured `[audit]` retention.
    Prune {
        /// Deletes rows older than this (e.g. `30d`, `12h`).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Keeps at most this many rows, the newest.
        #[arg(long)]
        max_rows: Option<u64>,
    },
}

/// Text a user or a caller chose, made safe to print on a terminal: control characters
/// (C0, DEL and C1, which include ESC and the one-byte CSI that start ANSI sequences) and
/// the Unicode bidirectional overrides are shown escaped, as `\u{1b}`, so a token name or a
/// cluster name cannot move the cursor, rewrite earlier lines or reorder what is shown.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    std::borrow::Cow::Owned(safe)
}

/// Parses `30d`, `12h`, `15m`, `45s` or a number of seconds. Deliberately only these four
/// units: duration crates also take `M` (months), `w` and `y`, and `--ttl 30M` meaning
/// minutes must not issue a token for two and a half years.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 30d, 12h, 15m or 45s"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(factor)))
}

/// What a command needs: configuration, store and engine.
struct Context {
    config: Config,
    core: Arc<Core>,
    /// Kept so the writer lives as long as the command; it stops once the sinks are gone.
    _writer: crate::audit::AuditWriter,
}

impl Context {
    /// For admin commands: their audit writer does not prune (only `audit prune` and a
    /// serving manager delete audit rows).
    fn open(config: Config) -> Result<Self> {
        Self::open_with(config, crate::audit::Retention::off())
    }

    /// For `serve` and `dev`: the audit writer keeps the trail to the `[audit]` retention.
    fn serving(config: Config) -> Result<Self> {
        let retention = config.audit_retention();
        Self::open_with(config, retention)
    }

    fn open_with(config: Config, retention: crate::audit::Retention) -> Result<Self> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.database())?);
        let authority = Arc::new(Authority::open(
            Arc::clone(&store),
            config.signing_mode()?,
            &config.issuer,
            config.key_retention_secs(),
        )?);
        let (sink, writer) = crate::audit::start_with_clock(
            Arc::clone(&store),
            retention,
            Arc::clone(authority.clock()),
        );
        let mut core = Core::new(
            store,
            authority,
            config.lifetimes()?,
            config.sign_in_limits(),
            sink,
        )
        .with_node_settings(config.node_settings()?);
        if let Some(mqtt) = &config.mqtt {
            core = core.with_mqtt(mqtt.settings()?);
        }
        let core = Arc::new(core);
        Ok(Context {
            config,
            core,
            _writer: writer,
        })
    }

    fn store(&self) -> &dyn Store {
        self.core.store().as_ref()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Everything queued is written before the command returns.
        self.core.audit().flush();
    }
}

fn load_config(cli: &Cli, dev: bool) -> Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if dev && cli.config.is_none() {
        config.data_dir = PathBuf::from("./.manta-dev");
        config.listen.user_api = SocketAddr::from(([127, 0, 0, 1], 50052));
        config.listen.node_api = SocketAddr::from(([127, 0, 0, 1], 50051));
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir.clone_from(dir);
    }
    Ok(config)
}

/// Admin commands work on the store of a manager that exists already: a typo'd or missing
/// `--data-dir` must not create an empty store in the current directory (the user added there
/// never reaches the running manager). The error says where the directory came from.
fn require_store(cli: &Cli, config: &Config) -> Result<()> {
    let path = config.database();
    if path.exists() {
        return Ok(());
    }
    let from_env = |var: &str, value: &std::path::Path| {
        std::env::var_os(var).is_some_and(|v| std::path::Path::new(&v) == value)
    };
    let source_of_path = match (&cli.data_dir, &cli.config) {
        (Some(dir), _) if from_env("MANTA_MANAGER_DATA_DIR", dir) => {
            "named by MANTA_MANAGER_DATA_DIR".to_owned()
        }
        (Some(_), _) => "named by --data-dir".to_owned(),
        (None, Some(file)) => {
            let via = if from_env("MANTA_MANAGER_CONFIG", file) {
                "MANTA_MANAGER_CONFIG"
            } else {
                "--config"
            };
            if config.data_dir == Config::default().data_dir {
                format!(
                    "the default: {} ({via}) sets no data_dir, and neither --data-dir nor \
                     MANTA_MANAGER_DATA_DIR is set",
                    file.display()
                )
            } else {
                format!("named by data_dir in {} ({via})", file.display())
            }
        }
        (None, None) => "the default: none of --data-dir, MANTA_MANAGER_DATA_DIR, --config \
                         or MANTA_MANAGER_CONFIG is set"
            .to_owned(),
    };
    Err(Error::NoStore {
        path,
        source_of_path,
    })
}

fn read_password(input: &mut dyn BufRead) -> Result<SecretString> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|source| Error::Io {
        path: PathBuf::from("<stdin>"),
        source,
    })?;
    let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
    // Wipe the buffer that held the password before dropping it.
    zeroize::Zeroize::zeroize(&mut line);
    Ok(SecretString::from(trimmed))
}

/// `2026-11-22T10:00:00Z` for unix seconds (UTC).
fn fmt_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix {secs} (out of range)"))
}

fn io_err(source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<stdout>"),
        source,
    }
}

/// Runs a command. Output goes to `out`, passwords come from `input`.
pub fn run(cli: Cli, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<()> {
    // `pki` writes certificate files only: no configuration, no store.
    if let Command::Pki(cmd) = cli.command {
        return pki::pki_command(cmd, out);
    }
    // Completions describe the command line only: no configuration, no store.
    if let Command::Completions { shell } = cli.command {
        // clap_complete panics when its writer fails (`| head` closed the pipe), so the
        // script is rendered first and written with the error kept.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command(), "manta-manager", &mut script);
        return out.write_all(&script).map_err(io_err);
    }
    let dev = matches!(cli.command, Command::Dev(_));
    let config = load_config(&cli, dev)?;
    if !matches!(cli.command, Command::Serve(_) | Command::Dev(_)) {
        require_store(&cli, &config)?;
    }
    match cli.command {
        Command::Serve(args) => run_server(config, &args, false, out),
        Command::Dev(args) => run_server(config, &args, true, out),
        Command::User(cmd) => user_command(&Context::open(config)?, cmd, input, out),
        Command::Token(cmd) => token_command(&Context::open(config)?, cmd, out),
        Command::Keys(KeysCommand::Rotate) => {
            let ctx = Context::open(config)?;
            let kid = rotate(ctx.store())?;
            writeln!(
                out,
                "new signing key {kid}; running servers use it within 10 seconds, and tokens \
                 signed with older keys keep working until they expire"
            )
            .map_err(io_err)
        }
        Command::Audit(args) => audit_command(&Context::open(config)?, &args, out),
        Command::Cluster(cmd) => platform::cluster_command(&Context::open(config)?, cmd, out),
        Command::NodeToken(cmd) => platform::node_token_command(&Context::open(config)?, cmd, out),
        Command::Node(cmd) => platform::node_command(&Context::open(config)?, cmd, out),
        // Handled above, before the configuration is read.
        Command::Pki(_) | Command::Completions { .. } => Ok(()),
    }
}

fn dev_setup(ctx: &Context, user_local: SocketAddr) -> Result<String> {
    if ctx.store().credentials("admin")?.is_some() {
        return Ok(format!(
            "development manager (data in {}); the admin token was printed on first start.\n\
             Issue another with:\n  manta-manager --data-dir {} token issue --user admin",
            ctx.config.data_dir.display(),
            ctx.config.data_dir.display()
        ));
    }
    let password = SecretString::from(crate::store::new_id());
    let admin = ctx
        .core
        .add_user("admin", "", Some(&password), vec![scopes::ADMIN.to_owned()])?;
    let token = ctx.core.create_api_token(
        &admin,
        "dev admin token",
        admin.scopes.clone(),
        Some(Duration::from_secs(30 * 86_400)),
        &admin.scopes,
    )?;
    Ok(format!(
        "development manager ready (data in {dir}); shown once, keep them:\n\
         \n  admin password: {pw}\n  admin token:    {tok}\n\
         \nNext:\n  export MANTA_TOKEN='{tok}'\n{next}",
        dir = ctx.config.data_dir.display(),
        pw = password.expose_secret(),
        tok = token.token.expose_secret(),
        next = dev_next_steps(&ctx.config.data_dir, user_local, ctx.config.tls.as_ref()),
    ))
}

/// The banner's commands to try, for the address `dev` really listens on (port 0 becomes the
/// chosen port, a wildcard address the loopback one) and for its transport: with `[tls]` the
/// clients verify the manager against the folder's CA (and present its client pair when the
/// manager asks for one) instead of speaking plaintext.
fn dev_next_steps(
    data_dir: &std::path::Path,
    listening: SocketAddr,
    tls: Option<&TlsConfig>,
) -> String {
    let mut addr = listening;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let (sdk_env, grpcurl_transport) = match tls {
        None => (String::new(), "-plaintext".to_owned()),
        Some(tls) => {
            let folder = tls.cert_folder.display();
            let client_pair = if tls.client_auth == "none" {
                String::new()
            } else {
                format!(" -cert {folder}/client.crt -key {folder}/client.key")
            };
            (
                format!("MANTA_CERT_DIR={folder} MANTA_ENV=dev "),
                format!("-cacert {folder}/ca.crt{client_pair}"),
            )
        }
    };
    format!(
        // The token stays in the environment: a command line shows in `ps` and in shell
        // history, so neither suggestion expands it into an argument.
        "  {sdk_env}python -c \"import os; from manta import UserAPI; print(UserAPI(token=os.environ['MANTA_TOKEN'], host='{host}', port={port}).get_user())\"\n  \
         grpcurl {grpcurl_transport} -H 'authorization: ${{MANTA_TOKEN}}' -expand-headers {addr} core.user_services.UserManagement/GetUser\n  \
         manta-manager --data-dir {dir} user add alice --scopes user:read --password-stdin",
        host = addr.ip(),
        port = addr.port(),
        dir = data_dir.display(),
    )
}

/// Binds one listening socket. A busy port fails here, before `serve` or `dev` writes
/// anything to disk: `dev` would otherwise create the admin user and lose its one-time
/// password with the failed start.
fn bind_listener(
    addr: SocketAddr,
    flag: &'static str,
) -> Result<(std::net::TcpListener, SocketAddr)> {
    let listen_err = |source| Error::Listen { addr, flag, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_err)?;
    // Tokio takes the socket over inside the runtime and needs it non-blocking.
    listener.set_nonblocking(true).map_err(listen_err)?;
    let local = listener.local_addr().map_err(listen_err)?;
    Ok((listener, local))
}

fn run_server(config: Config, args: &ServeArgs, dev: bool, out: &mut dyn Write) -> Result<()> {
    let user_addr = args.user_listen.unwrap_or(config.listen.user_api);
    let node_addr = args.node_listen.unwrap_or(config.listen.node_api);
    let tls = config.tls.as_ref().map(TlsConfig::server_tls).transpose()?;
    let options = ServeOptions {
        max_message_bytes: config.listen.max_message_bytes,
        limits: config.limits()?,
        authorization: !args.danger_disable_authorization,
        ..ServeOptions::default()
    };
    // Everything that can fail on a bad flag or a busy port happens before the store exists.
    let (user, user_local) = bind_listener(user_addr, "--user-listen")?;
    let (node, node_local) = bind_listener(node_addr, "--node-listen")?;
    let ctx = Context::serving(config)?;
    let banner = if dev {
        Some(dev_setup(&ctx, user_local)?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Server(e.to_string()))?;
    let core = Arc::clone(&ctx.core);
    runtime.block_on(async move {
        // Before anything is printed: a supervisor may signal as soon as it sees the ports.
        let shutdown = shutdown_signal();
        let adopt = |listener: std::net::TcpListener, addr: SocketAddr| {
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::Server(format!("cannot listen on {addr}: {e}")))
        };
        let user = adopt(user, user_local)?;
        let node = adopt(node, node_local)?;
        if !options.authorization {
            tracing::warn!(
                "authorization is DISABLED: every call is allowed and nothing is audited"
            );
        }
        tracing::info!(user_api = %user_local, node_api = %node_local, "manta-manager serving");
        // Scripts (and the tests) read these lines to learn the bound ports.
        writeln!(out, "user api listening on {user_local}").map_err(io_err)?;
        writeln!(out, "node api listening on {node_local}").map_err(io_err)?;
        if let Some(b) = banner {
            writeln!(out, "{b}").map_err(io_err)?;
        }
        out.flush().map_err(io_err)?;
        serve(core, user, node, options, tls, shutdown).await
    })?;
    drop(ctx);
    Ok(())
}

fn user_command(
    ctx: &Context,
    cmd: UserCommand,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            scopes,
            email,
            password_stdin,
        } => {
            let scopes = scopes::parse_list(&scopes)?;
            let password = if password_stdin {
                Some(read_password(input)?)
            } else {
                None
            };
            let user = ctx
                .core
                .add_user(&name, &email, password.as_ref(), scopes)?;
            writeln!(
                out,
                "added user {} ({})",
                terminal_safe(&user.username),
                user.id
            )
            .map_err(io_err)
        }
        UserCommand::List { json } => {
            let users = ctx.store().list_users()?;
            for u in users {
                if json {
                    let v = serde_json::json!({
                        "id": u.id, "username": u.username, "email": u.email,
                        "scopes": u.scopes, "created_at": u.created_at,
                        "last_login": u.last_login,
                    });
                    writeln!(out, "{v}").map_err(io_err)?;
                } else {
                    writeln!(
                        out,
                        "{}  {:<20} {}",
                        u.id,
                        terminal_safe(&u.username),
                        if u.scopes.is_empty() {
                            "-".to_owned()
                        } else {
                            terminal_safe(&u.scopes.join(",")).into_owned()
                        }
                    )
                    .map_err(io_err)?;
                }
            }
            Ok(())
        }
        UserCommand::Remove { name } => {
            let user = ctx.core.find_user(&name)?;
            ctx.core.delete_user(None, &user.id)?;
            writeln!(
                out,
                "removed user {} with all its sessions and tokens",
                terminal_safe(&user.username)
            )
            .map_err(io_err)
        }
        UserCommand::SetScopes { name, scopes } => {
            let user = ctx.core.find_user(&name)?;
            let scopes = scopes::parse_list(&scopes)?;
            ctx.core.set_user_scopes(None, &user.id, &scopes)?;
            writeln!(
                out,
                "scopes of {}: {}",
                terminal_safe(&user.username),
                scopes.join(",")
            )
            .map_err(io_err)
        }
        UserCommand::SetPassword { name } => {
            let user = ctx.core.find_user(&name)?;
            let password = read_password(input)?;
            ctx.core.set_password(&user.id, &password)?;
            writeln!(
                out,
                "password of {} set; every session and token issued before now has ended",
                terminal_safe(&user.username)
            )
            .map_err(io_err)
        }
    }
}

fn token_command(ctx: &Context, cmd: TokenCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        TokenCommand::Issue {
            user,
            scopes,
            ttl,
            name,
        } => {
            let user = ctx.core.find_user(&user)?;
            let requested = match scopes {
                Some(s) => scopes::parse_list(&s)?,
                None => user.scopes.clone(),
            };
            let issued = ctx
                .core
                .create_api_token(&user, &name, requested, ttl, &user.scopes)?;
            // Only the token, so `TOKEN=$(manta-manager token issue ...)` works.
            writeln!(out, "{}", issued.token.expose_secret()).map_err(io_err)
        }
        TokenCommand::List { user, all, json } => {
            let user_id = match user {
                Some(u) => Some(ctx.core.find_user(&u)?.id),
                None => None,
            };
            let now = ctx.core.now_secs();
            let tokens = ctx
                .store()
                .list_tokens(user_id.as_deref(), None, all, now)?;
            for t in tokens {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&t).unwrap_or_default())
                        .map_err(io_err)?;
                } else {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.expires_at <= now {
                        "expired"
                    } else {
                        "active"
                    };
                    writeln!(
                        out,
                        "{}  {:<6} {:<7} user={} expires={} scopes={} name={}",
                        terminal_safe(&t.jti),
                        t.kind.as_str(),
                        state,
                        terminal_safe(&t.user_id),
                        fmt_time(t.expires_at),
                        terminal_safe(&t.scopes.join(",")),
                        terminal_safe(t.name.as_deref().unwrap_or("-"))
                    )
                    .map_err(io_err)?;
                }
            }
            Ok(())
        }
        TokenCommand::Revoke { id, user, all } => match (id, user, all) {
            (Some(id), None, false) => {
                ctx.core.revoke_token(&id, None)?;
                writeln!(out, "revoked token {id}").map_err(io_err)
            }
            (None, Some(user), true) => {
                let u = ctx.core.find_user(&user)?;
                ctx.core.revoke_all_of(&u.id)?;
                writeln!(
                    out,
                    "ended every session and token of {} issued until now",
                    terminal_safe(&u.username)
                )
                .map_err(io_err)
            }
            _ => Err(Error::Invalid {
                field: "arguments",
                reason: "give a token id, or --user NAME --all".into(),
            }),
        },
    }
}

fn audit_command(ctx: &Context, args: &AuditArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(AuditAction::Prune {
        older_than,
        max_rows,
    }) = &args.action
    {
        let retention = if older_than.is_none() && max_rows.is_none() {
            ctx.config.audit_retention()
        } else {
            crate::audit::Retention {
                max_age: *older_than,
                max_rows: *max_rows,
            }
        };
        let deleted = retention.prune(ctx.store(), millis_of(ctx.core.clock().as_ref()))?;
        return writeln!(out, "deleted {deleted} audit rows").map_err(io_err);
    }
    let subject = match &args.user {
        Some(u) => Some(ctx.core.find_user(u)?.id),
        None => None,
    };
    let since_ms = args.since.map(|d| {
        millis_of(ctx.core.clock().as_ref()) - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
    });
    let events = ctx.store().query_audit(&AuditQuery {
        since_ms,
        subject,
        method: args.method.clone(),
        denied_only: args.denied,
        limit: args.limit,
    })?;
    for e in events {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default()).map_err(io_err)?;
        } else {
            // A row that stands for several identical decisions says how many, and over
            // how long after the first.
            let run = if e.count > 1 {
                format!(" x{} +{}ms", e.count, e.last_at_ms - e.at_ms)
            } else {
                String::new()
            };
            writeln!(
                out,
                "{} {:<5}{run} {} subject={} resource={} peer={} cert={} reason={}",
                fmt_time(e.at_ms / 1000),
                if e.allowed { "ALLOW" } else { "DENY" },
                terminal_safe(&e.method),
                terminal_safe(e.subject.as_deref().unwrap_or("-")),
                terminal_safe(e.resource.as_deref().unwrap_or("-")),
                terminal_safe(e.peer.as_deref().unwrap_or("-")),
                terminal_safe(e.client_identity.as_deref().unwrap_or("-")),
                terminal_safe(&e.reason)
            )
            .map_err(io_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(
            parse_duration("1w")
                .unwrap_err()
                .contains("use s, m, h or d")
        );
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_time(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn cli(dir: &std::path::Path, args: &[&str]) -> Cli {
        let mut all = vec!["manta-manager", "--data-dir", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn exec(dir: &std::path::Path, args: &[&str], stdin: &str) -> Result<String> {
        let mut out = Vec::new();
        run(cli(dir, args), &mut stdin.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// A data directory holding a store, as a manager that ran once leaves it.
    fn store_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(&dir.path().join("manager.db")).unwrap();
        dir
    }

    #[test]
    fn admin_commands_never_create_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        for args in [
            &["user", "add", "alice"][..],
            &["user", "list"],
            &["token", "list"],
            &["keys", "rotate"],
            &["audit"],
            &["audit", "prune"],
            &["cluster", "list"],
            &["node-token", "revoke", "--cluster", "c1"],
            &["node", "list"],
        ] {
            let err = exec(&missing, args, "").unwrap_err().to_string();
            assert!(
                err.starts_with("no manager store at ")
                    && err.contains("typo")
                    && err.contains("named by --data-dir")
                    && err.contains("--data-dir ./.manta-dev"),
                "{args:?}: {err}"
            );
            assert!(!missing.exists(), "{args:?} created {}", missing.display());
        }
        // A configuration that names no data_dir says so instead of using ./manta-manager-data
        // silently.
        let cfg = dir.path().join("manager.toml");
        std::fs::write(&cfg, "").unwrap();
        let cli = Cli::try_parse_from([
            "manta-manager",
            "--config",
            cfg.to_str().unwrap(),
            "user",
            "list",
        ])
        .unwrap();
        if !Config::default().database().exists() {
            let err = run(cli, &mut &b""[..], &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains("sets no data_dir"), "{err}");
            assert!(!Config::default().data_dir.exists());
        }
    }

    #[test]
    fn dev_next_steps_use_the_bound_address_and_the_transport() {
        let dir = std::path::Path::new("./.manta-dev");
        let plain = dev_next_steps(dir, "0.0.0.0:40123".parse().unwrap(), None);
        assert!(
            plain.contains("grpcurl -plaintext ") && plain.contains(" 127.0.0.1:40123 "),
            "{plain}"
        );
        assert!(plain.contains("host='127.0.0.1', port=40123"), "{plain}");
        // No suggested command expands the token into its arguments (visible in `ps`).
        assert!(!plain.contains("$MANTA_TOKEN"), "{plain}");
        assert!(plain.contains("os.environ['MANTA_TOKEN']"), "{plain}");
        assert!(
            plain.contains("-H 'authorization: ${MANTA_TOKEN}' -expand-headers"),
            "{plain}"
        );
        assert!(
            plain.contains("--data-dir ./.manta-dev user add alice"),
            "{plain}"
        );
        let mut tls = TlsConfig {
            cert_folder: PathBuf::from("/etc/manta/tls"),
            client_auth: "none".into(),
        };
        let one_way = dev_next_steps(dir, "127.0.0.1:50052".parse().unwrap(), Some(&tls));
        assert!(!one_way.contains("-plaintext"), "{one_way}");
        assert!(
            one_way.contains("grpcurl -cacert /etc/manta/tls/ca.crt -H"),
            "{one_way}"
        );
        assert!(
            one_way.contains("MANTA_CERT_DIR=/etc/manta/tls MANTA_ENV=dev python"),
            "{one_way}"
        );
        tls.client_auth = "required".into();
        let mutual = dev_next_steps(dir, "[::]:50052".parse().unwrap(), Some(&tls));
        assert!(
            mutual.contains(
                "-cacert /etc/manta/tls/ca.crt -cert /etc/manta/tls/client.crt \
                 -key /etc/manta/tls/client.key"
            ) && mutual.contains(" [::1]:50052 "),
            "{mutual}"
        );
    }

    #[test]
    fn admin_commands_round_trip() {
        let dir = store_dir();
        let d = dir.path();
        exec(
            d,
            &[
                "user",
                "add",
                "ops",
                "--scopes",
                "user:read,user:list",
                "--password-stdin",
            ],
            "hunter2hunter2\n",
        )
        .unwrap();
        let err = exec(d, &["user", "add", "ops"], "").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let list = exec(d, &["user", "list", "--json"], "").unwrap();
        let v: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
        assert_eq!(v["username"], "ops");
        assert_eq!(v["scopes"], serde_json::json!(["user:read", "user:list"]));

        let token = exec(
            d,
            &[
                "token",
                "issue",
                "--user",
                "ops",
                "--scopes",
                "user:read",
                "--ttl",
                "1h",
            ],
            "",
        )
        .unwrap();
        assert_eq!(
            token.trim().split('.').count(),
            3,
            "only the JWT is printed: {token}"
        );
        let err = exec(
            d,
            &["token", "issue", "--user", "ops", "--scopes", "admin:*"],
            "",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not covered"), "{err}");

        let listed = exec(d, &["token", "list", "--json"], "").unwrap();
        let t: serde_json::Value = serde_json::from_str(listed.trim()).unwrap();
        assert!(!listed.contains(token.trim()), "listings never show tokens");
        let id = t["jti"].as_str().unwrap().to_owned();
        exec(d, &["token", "revoke", &id], "").unwrap();
        assert_eq!(
            exec(d, &["token", "list"], "").unwrap(),
            "",
            "revoked tokens are hidden"
        );
        assert!(
            exec(d, &["token", "list", "--all"], "")
                .unwrap()
                .contains("revoked")
        );
        let err = exec(d, &["token", "revoke"], "").unwrap_err();
        assert!(err.to_string().contains("--user NAME --all"), "{err}");

        exec(d, &["user", "set-scopes", "ops", "cluster:*"], "").unwrap();
        assert!(
            exec(d, &["user", "list"], "")
                .unwrap()
                .contains("cluster:*")
        );
        let err = exec(d, &["user", "set-scopes", "ops", "user:read:x"], "").unwrap_err();
        assert!(err.to_string().contains("resource:action"), "{err}");
        let out = exec(d, &["keys", "rotate"], "").unwrap();
        assert!(out.starts_with("new signing key"), "{out}");
        exec(d, &["user", "remove", "ops"], "").unwrap();
        let err = exec(d, &["user", "remove", "ops"], "").unwrap_err();
        assert!(err.to_string().contains("manta-manager user list"), "{err}");
        assert_eq!(exec(d, &["audit"], "").unwrap(), "");
    }

    #[test]
    fn audit_shows_runs_of_identical_decisions_with_their_count() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let store = SqliteStore::open(&d.join("manager.db")).unwrap();
        let event = |count, last_at_ms| crate::store::AuditEvent {
            at_ms: 1_000,
            last_at_ms,
            count,
            subject: Some("u1".into()),
            token_id: Some("t1".into()),
            method: "/core.user_services.UserManagement/GetUser".into(),
            resource: None,
            allowed: true,
            reason: "authenticated".into(),
            peer: Some("127.0.0.1:4000".into()),
            client_identity: None,
        };
        store
            .append_audit(&[event(1, 1_000), event(120, 1_048)])
            .unwrap();
        let out = exec(d, &["audit"], "").unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains("ALLOW x120 +48ms /core"), "{out}");
        assert!(
            lines[1].contains("ALLOW /core"),
            "a single decision has no count: {out}"
        );
        let json = exec(d, &["audit", "--json"], "").unwrap();
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["count"], 120);
        assert_eq!(first["last_at_ms"], 1_048);
    }
}
