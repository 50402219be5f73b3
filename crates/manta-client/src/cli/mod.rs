//! The `manta` command, as a library: [`run`] takes the arguments and the output streams
//! and returns the exit code, so tests run it in-process; [`run_with`] also takes the
//! environment, the secret store, standard input and the log writer.
//!
//! Exit codes: 0 success, 1 other failure, 2 usage or invalid argument, 3 authentication
//! (no token, refused or expired token, wrong password, a session that can no longer be
//! renewed), 4 permission denied, 5 not found, 6 manager unreachable or timed out, 7
//! configuration or TLS (including a renewed session that could not be stored), 8 not
//! implemented by the manager; `manta token inspect` adds 10 (expired) and 11 (not yet
//! valid), a malformed token being 2.

mod args;
mod commands;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser as _;
use manta_config::{Env, SecretStore};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::error::Error;

pub(crate) use args::Cli;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any failure without a more specific code.
pub const EXIT_FAILURE: u8 = 1;
/// Bad command line or invalid argument.
pub const EXIT_USAGE: u8 = 2;
/// Not signed in, token refused or expired, wrong credentials.
pub const EXIT_AUTH: u8 = 3;
/// Signed in but lacking the scope.
pub const EXIT_PERMISSION: u8 = 4;
/// No such resource.
pub const EXIT_NOT_FOUND: u8 = 5;
/// The manager cannot be reached or did not answer in time.
pub const EXIT_UNAVAILABLE: u8 = 6;
/// Configuration, credentials file or TLS problem.
pub const EXIT_CONFIG: u8 = 7;
/// The manager does not implement the call.
pub const EXIT_UNIMPLEMENTED: u8 = 8;
/// `manta token inspect`: the token has expired.
pub const EXIT_TOKEN_EXPIRED: u8 = 10;
/// `manta token inspect`: the token is not valid yet (its `nbf` is in the future).
pub const EXIT_TOKEN_NOT_YET_VALID: u8 = 11;

/// What the command reads besides its arguments. Tests give their own; [`run`] uses the
/// process environment, the OS keyring, the real standard input and standard error.
pub struct Context<'a> {
    /// The environment (MANTA_HOME, MANTA_ENV, MANTA_TOKEN, profile variables).
    pub env: Env,
    /// The keyring (last step of the token chain; where `login` stores by default).
    pub store: &'a dyn SecretStore,
    /// Standard input (passwords with `--password-stdin`, tokens with `inspect -`).
    pub stdin: &'a mut dyn BufRead,
    /// Whether standard input is a terminal (then passwords are asked without echo).
    pub stdin_is_terminal: bool,
    /// Where log lines go.
    pub log: BoxMakeWriter,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("stdin_is_terminal", &self.stdin_is_terminal)
            .finish_non_exhaustive()
    }
}

/// The exit code for an error.
#[must_use]
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Authentication { .. }
        | Error::TokenExpired { .. }
        | Error::SessionEnded { .. }
        | Error::NotSignedIn { .. }
        | Error::ForeignToken { .. } => EXIT_AUTH,
        Error::Config(manta_config::ConfigError::NoToken { .. }) => EXIT_AUTH,
        Error::TlsMismatch { .. } | Error::TlsHandshake { .. } | Error::WrongService { .. } => {
            EXIT_CONFIG
        }
        Error::PermissionDenied { .. } => EXIT_PERMISSION,
        Error::NotFound { .. } | Error::UnknownCluster { .. } => EXIT_NOT_FOUND,
        Error::InvalidArgument { .. }
        | Error::Usage { .. }
        | Error::AmbiguousCluster { .. }
        | Error::Setting { .. }
        | Error::Token(_) => EXIT_USAGE,
        Error::Unavailable { .. } | Error::Timeout { .. } | Error::RateLimited { .. } => {
            EXIT_UNAVAILABLE
        }
        Error::Config(_) | Error::Tls(_) | Error::SessionNotStored { .. } => EXIT_CONFIG,
        Error::Unimplemented { .. } => EXIT_UNIMPLEMENTED,
        _ => EXIT_FAILURE,
    }
}

/// The `manta` command line as a clap [`clap::Command`]: what `manta completions` and the
/// release's man pages are generated from.
#[must_use]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The process entry point used by `main`: real arguments, streams, environment and keyring.
#[must_use]
pub fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock())
}

/// Runs `manta` with `args` (the first is the program name) writing to `out` and `err`,
/// with the process environment, the OS keyring and the real standard input.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    let is_terminal = stdin.is_terminal();
    let mut lock = stdin.lock();
    let store = manta_config::OsKeyring;
    let mut ctx = Context {
        env: Env::process(),
        store: &store,
        stdin: &mut lock,
        stdin_is_terminal: is_terminal,
        log: BoxMakeWriter::new(std::io::stderr),
    };
    run_with(args, &mut ctx, out, err)
}

/// As [`run`] with an explicit [`Context`].
pub fn run_with<I, T>(
    args: I,
    ctx: &mut Context<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return ExitCode::from(code);
        }
    };
    let log = std::mem::replace(&mut ctx.log, BoxMakeWriter::new(std::io::sink));
    let subscriber = subscriber(&cli, &ctx.env, log);
    let result =
        tracing::subscriber::with_default(subscriber, || commands::dispatch(cli, ctx, out));
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`manta ... | head`): it has what it wanted, so there is
        // nobody to tell and nothing failed from the user's side.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn subscriber(cli: &Cli, env: &Env, log: BoxMakeWriter) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = match cli.global.verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = env
        .get_non_empty("MANTA_LOG")
        .and_then(|f| EnvFilter::try_new(f.as_str()).ok())
        .unwrap_or_else(|| {
            let filter = EnvFilter::default().add_directive(level.into());
            // Without -v the command prints only its error: the refresh engine's warning
            // about a refused renewal says the same thing a line earlier.
            match (cli.global.verbose, "manta_auth::refresh=error".parse()) {
                (0, Ok(quiet)) => filter.add_directive(quiet),
                _ => filter,
            }
        });
    tracing_subscriber::fmt()
        .with_writer(log)
        .with_ansi(false)
        .with_env_filter(filter)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_and_usage_errors_have_distinct_exit_codes() {
        let check = |e: Error, code: u8| assert_eq!(exit_code(&e), code, "{e:?}");
        check(
            Error::Authentication {
                message: String::new(),
            },
            EXIT_AUTH,
        );
        check(
            Error::TokenExpired {
                message: String::new(),
            },
            EXIT_AUTH,
        );
        check(
            Error::SessionEnded {
                message: String::new(),
            },
            EXIT_AUTH,
        );
        check(
            Error::SessionNotStored {
                place: String::new(),
                source: Box::new(Error::Setting {
                    message: String::new(),
                }),
            },
            EXIT_CONFIG,
        );
        check(
            Error::Config(manta_config::ConfigError::NoToken {
                tried: vec![],
                variable: "MANTA_TOKEN".into(),
            }),
            EXIT_AUTH,
        );
        check(
            Error::PermissionDenied {
                operation: "x",
                scope: None,
                message: String::new(),
            },
            EXIT_PERMISSION,
        );
        check(
            Error::InvalidArgument {
                message: String::new(),
            },
            EXIT_USAGE,
        );
        check(
            Error::NotFound {
                message: String::new(),
            },
            EXIT_NOT_FOUND,
        );
        check(
            Error::Unavailable {
                message: String::new(),
            },
            EXIT_UNAVAILABLE,
        );
        check(Error::Unimplemented { method: "x" }, EXIT_UNIMPLEMENTED);
        check(
            Error::Server {
                code: "Internal".into(),
                message: String::new(),
            },
            EXIT_FAILURE,
        );
    }

    #[test]
    fn bad_command_lines_exit_2_and_help_exits_0() {
        let store = manta_config::MemoryStore::new();
        let mut stdin = std::io::Cursor::new(Vec::new());
        let mut ctx = Context {
            env: Env::from_pairs([("MANTA_HOME", "/nonexistent-manta-home")]),
            store: &store,
            stdin: &mut stdin,
            stdin_is_terminal: false,
            log: BoxMakeWriter::new(std::io::sink),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(["manta", "token", "create"], &mut ctx, &mut out, &mut err);
        assert_eq!(code, ExitCode::from(EXIT_USAGE));
        assert!(String::from_utf8_lossy(&err).contains("--name"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(["manta", "--help"], &mut ctx, &mut out, &mut err);
        assert_eq!(code, ExitCode::from(EXIT_OK));
        assert!(String::from_utf8_lossy(&out).contains("whoami"));
    }
}
