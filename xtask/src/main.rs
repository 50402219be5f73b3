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
  ci [--no-test]      fmt check, clippy -D warnings, tests, codegen check, layering check
  demo                build the programs and run the whole story on 127.0.0.1 (under a minute)
  docs                run the console examples of docs/guide.md, cli.md and node.md against a dev manager
  bench [--quick] [--out DIR]
                      run every benchmark, bounded in time; one table in target/bench/report.{md,json}
  release [--version X.Y.Z] [--dry-run] [--out DIR]
                      build release binaries and pack them with checksums into target/dist";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(&root),
        ["codegen", "--check"] => codegen::check(&root),
        ["layering"] => layering::check(&root),
        ["ci"] => ci(&root, true),
        ["ci", "--no-test"] => ci(&root, false),
        ["demo"] => demo::run(&root),
        ["docs"] => docs::run(&root),
        ["bench", rest @ ..] => bench::run(&root, &bench::Options::parse(rest)?),
        ["release", rest @ ..] => release::run(&root, &release::Options::parse(rest)?).map(|_| ()),
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown command `{}`\n\n{USAGE}", args.join(" ")),
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
    if with_tests {
        cargo(root, &["test", "--workspace", "--locked"])?;
    }
    println!("ci: all checks passed");
    Ok(())
}
