//! The `manta-manager` command: parses arguments, sets up logging and calls the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `try_parse` rather than `parse`: clap's own exit panics when `--help | head` closes
    // the pipe before the text is written.
    let cli = match manta_manager::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // Logs go to stderr so stdout stays clean for `token issue` in scripts. Colours only on
    // a terminal and never with `NO_COLOR` set (<https://no-color.org>): a supervisor's log
    // file or a pipe gets plain text.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MANTA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    match manta_manager::cli::run(cli, &mut input, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: anyhow::Error = e.into();
            // The reader of standard output went away (`... | head`): it has what it
            // wanted, so there is nobody to tell.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("manta-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}
