//! Workspace automation for Manta in Rust, run as `cargo xtask <command>`.
//!
//! Commands: `codegen [--check]`, `layering`, `ci [--no-test]`, `demo`, `docs`,
//! `bench [--quick]`, `release`.

mod bench;
mod codegen;
mod demo;
mod docs;
#[cfg(test)]
mod guide;
mod layering;
mod release;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]   regenerate crates/manta-proto/src/generated from proto/ (or check it is fresh)
  layering            check crate dependencies against docs/ARCHITECTURE.md
  ci [--no-test]      fmt check, codegen and layering checks, clippy -D warnings, publish dry run, tests
  demo                build the programs and run the whole story on 127.0.0.1 (under a minute)
  docs                run the console examples of docs/guide.md, cli.md and node.md against a dev manager
  bench [--quick] [--out DIR]
                      run every benchmark, bounded in time; one table in target/bench/report.{md,json}
  release [--version X.Y.Z] [--dry-run] [--out DIR]
                      build release binaries and pack them with checksums into target/dist";

/// The command line: one subcommand, its options parsed by clap.
#[derive(Debug, clap::Parser)]
#[command(name = "cargo xtask", override_help = USAGE, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    Codegen {
        #[arg(long)]
        check: bool,
    },
    Layering,
    Ci {
        #[arg(long)]
        no_test: bool,
    },
    Demo,
    Docs,
    // `bench` and `release` hand their options to their own clap definitions
    // (`Options::parse`), which keep this tool's short error texts.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    Release {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    Help,
}

fn main() -> Result<()> {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => bail!("{}\n{USAGE}", e.render().to_string().trim_end()),
    };
    let root = workspace_root();
    match cli.command {
        Some(Cmd::Codegen { check: false }) => codegen::run(&root),
        Some(Cmd::Codegen { check: true }) => codegen::check(&root),
        Some(Cmd::Layering) => layering::check(&root),
        Some(Cmd::Ci { no_test }) => ci(&root, !no_test),
        Some(Cmd::Demo) => demo::run(&root),
        Some(Cmd::Docs) => docs::run(&root),
        Some(Cmd::Bench { args }) => bench::run(&root, &bench::Options::parse(&strs(&args))?),
        Some(Cmd::Release { args }) => {
            release::run(&root, &release::Options::parse(&strs(&args))?).map(|_| ())
        }
        Some(Cmd::Help) | None => {
            println!("{USAGE}");
            Ok(())
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Parses a subcommand's options with clap, turning clap's errors into this tool's texts:
/// "unknown COMMAND option `--x`; use HINT" and "--opt needs WHAT".
pub(crate) fn parse_options<T: clap::Args>(
    command: &str,
    args: &[&str],
    hint: &str,
    needs: &[(&str, &str)],
) -> Result<T> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true, disable_help_flag = true)]
    struct Wrapper<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match <Wrapper<T> as clap::Parser>::try_parse_from(args) {
        Ok(w) => Ok(w.inner),
        Err(e) => {
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let option = arg.split_whitespace().next().unwrap_or_default();
            match e.kind() {
                ErrorKind::UnknownArgument => {
                    bail!("unknown {command} option `{option}`; use {hint}")
                }
                _ => match needs.iter().find(|(o, _)| *o == option) {
                    Some((o, what)) => bail!("{o} needs {what}"),
                    None => bail!("{command}: {}", e.render().to_string().trim_end()),
                },
            }
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a cargo subcommand in the workspace root and fails when it fails.
fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    println!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

/// `cargo xtask ci`: every check CI runs, in the order that fails fastest.
fn ci(root: &Path, with_tests: bool) -> Result<()> {
    cargo(root, &["fmt", "--all", "--check"])?;
    codegen::check(root)?;
    layering::check(root)?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Every library crate must package and build from its package alone: path dependencies
    // carry versions, files outside a crate are not needed, README and metadata are valid.
    // Verification builds each package in target/package (slow the first time, then
    // cached); it needs no upload token and works offline with `CARGO_NET_OFFLINE=true`
    // once the registry cache holds the dependencies. `--allow-dirty` so uncommitted work
    // can be checked before it is committed.
    cargo(
        root,
        &[
            "publish",
            "--dry-run",
            "--workspace",
            "--exclude",
            "xtask",
            "--allow-dirty",
        ],
    )?;
    if with_tests {
        cargo(root, &["test", "--workspace", "--locked"])?;
    }
    println!("ci: all checks passed");
    Ok(())
}
