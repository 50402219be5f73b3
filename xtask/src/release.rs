//! `cargo xtask release [--version X.Y.Z] [--dry-run] [--out DIR]`: builds release binaries for
//! the host target, packs them with the README, licences and changelog into a versioned
//! `.tar.gz`, and writes SHA-256 checksums. Each archive also carries man pages
//! (`man/man1/`) for the three programs and each of their subcommands, generated with
//! clap_mangen from the programs' own clap definitions (`cli::command()` of each crate), so
//! they always match the binaries beside them.
//!
//! `--dry-run` does everything except compiling: it checks the version and the changelog, and
//! packs the archive with the binaries that are already built (listing the missing ones), so a
//! test can exercise the whole pipeline in seconds.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The binaries a release ships: (package, binary name).
const BINARIES: &[(&str, &str)] = &[
    ("manta-manager", "manta-manager"),
    ("manta-node", "manta_node"),
    ("manta-client", "manta"),
];

/// Files copied next to the binaries in every archive.
const DOCS: &[&str] = &["README.md", "LICENSE-MIT", "LICENSE-APACHE", "CHANGELOG.md"];

/// Parsed `release` arguments.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Options {
    #[arg(long, value_name = "X.Y.Z")]
    pub(crate) version: Option<String>,
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(args: &[&str]) -> Result<Options> {
        crate::parse_options(
            "release",
            args,
            "--version X.Y.Z, --dry-run, --out DIR",
            &[
                ("--out", "a directory"),
                ("--version", "a value such as 0.1.0"),
            ],
        )
    }
}

/// What a release run produced.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the command prints these paths itself; the dry-run tests read some of them"
)]
pub(crate) struct Outcome {
    pub(crate) archive: PathBuf,
    pub(crate) checksums: PathBuf,
    pub(crate) missing_binaries: Vec<String>,
    /// The man page file names packed under `man/man1/`.
    pub(crate) man_pages: Vec<String>,
}

/// The clap definitions of the shipped programs, in [`BINARIES`] order.
fn commands() -> [clap::Command; 3] {
    [
        manta_manager::cli::command(),
        manta_node::cli::command(),
        manta_client::cli::command(),
    ]
}

/// Writes a man page for each program and each of its subcommands (`manta.1`,
/// `manta-token-create.1`, ...) into `dir`; returns the file names, sorted.
pub(crate) fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for cmd in commands() {
        let name = cmd.get_name().to_owned();
        clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("writing the man pages of {name} to {}", dir.display()))?;
    }
    let mut pages = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") {
            pages.push(name);
        }
    }
    pages.sort();
    Ok(pages)
}

/// The `version` of `[workspace.package]` in the root manifest.
fn workspace_version(root: &Path) -> Result<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package
            && line.starts_with("version")
            && let Some(value) = line.split('"').nth(1)
        {
            return Ok(value.to_owned());
        }
    }
    bail!("Cargo.toml has no version in [workspace.package]")
}

/// A strict `MAJOR.MINOR.PATCH` (with an optional `-pre` suffix) check.
fn check_version(version: &str) -> Result<()> {
    let core = version.split_once('-').map_or(version, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("`{version}` is not a version of the form X.Y.Z (for example 0.2.0)");
    }
    Ok(())
}

/// Fails unless `CHANGELOG.md` has a `## [VERSION]` heading.
pub(crate) fn check_changelog(changelog: &str, version: &str) -> Result<()> {
    let heading = format!("## [{version}]");
    if !changelog
        .lines()
        .any(|l| l.trim_start().starts_with(&heading))
    {
        bail!(
            "CHANGELOG.md has no entry for {version}; add a `{heading} - YYYY-MM-DD` section before releasing"
        );
    }
    Ok(())
}

/// The host target triple, from `rustc -vV`.
fn host_target() -> Result<String> {
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV did not print a host target")
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Runs the release pipeline.
pub(crate) fn run(root: &Path, options: &Options) -> Result<Outcome> {
    let version = match &options.version {
        Some(v) => v.clone(),
        None => workspace_version(root)?,
    };
    check_version(&version)?;
    let changelog =
        fs::read_to_string(root.join("CHANGELOG.md")).context("reading CHANGELOG.md")?;
    check_changelog(&changelog, &version)?;
    let target = host_target()?;

    if !options.dry_run {
        let mut args = vec!["build", "--release", "--locked"];
        for (package, bin) in BINARIES {
            args.extend(["-p", package, "--bin", bin]);
        }
        crate::cargo(root, &args)?;
    }

    let out = options
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/dist"));
    let name = format!("manta-{version}-{target}");
    let staging = out.join(&name);
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir_all(staging.join("bin"))?;
    for doc in DOCS {
        fs::copy(root.join(doc), staging.join(doc)).with_context(|| format!("copying {doc}"))?;
    }
    let mut missing = Vec::new();
    for (_, bin) in BINARIES {
        let built = root.join("target/release").join(bin);
        if built.is_file() {
            fs::copy(&built, staging.join("bin").join(bin))?;
        } else if options.dry_run {
            missing.push((*bin).to_owned());
        } else {
            bail!(
                "{} was not built; see the cargo output above",
                built.display()
            );
        }
    }

    let man_pages = write_man_pages(&staging.join("man/man1"))?;

    let archive = out.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .current_dir(&out)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&archive)
        .arg(&name)
        .status()
        .context("running tar (is it installed?)")?;
    if !status.success() {
        bail!("tar failed to pack {}", archive.display());
    }
    fs::remove_dir_all(&staging)?;

    let bytes = fs::read(&archive)?;
    let checksums = out.join(format!("{name}.sha256"));
    fs::write(
        &checksums,
        format!("{}  {name}.tar.gz\n", sha256_hex(&bytes)),
    )?;
    println!("release: {}", archive.display());
    println!("release: {}", checksums.display());
    println!("release: {} man pages in man/man1", man_pages.len());
    if !missing.is_empty() {
        println!(
            "release (dry run): not built, so not packed: {}",
            missing.join(", ")
        );
    }
    Ok(Outcome {
        archive,
        checksums,
        missing_binaries: missing,
        man_pages,
    })
}
