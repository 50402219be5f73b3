//! The `manta_node` binary: hands the command line to [`manta_node::cli`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(manta_node::cli::main_with_args(std::env::args_os()))
}
