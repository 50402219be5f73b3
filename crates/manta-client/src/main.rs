//! The `manta` command: parses nothing itself, hands the arguments to the library.

fn main() -> std::process::ExitCode {
    manta_client::cli::main()
}
