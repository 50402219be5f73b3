//! The `manta-manager` command: parses arguments, sets up logging and calls the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = manta_manager::cli::Cli::parse();
    // Logs go to stderr so stdout stays clean for `token issue` in scripts.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MANTA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    match manta_manager::cli::run(cli, &mut input, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: anyhow::Error = e.into();
            eprintln!("manta-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}
