//! The layering check: reads `cargo metadata` and fails when a workspace crate depends on a
//! Manta crate that `docs/ARCHITECTURE.md` does not allow.
//!
//! The allowed edges live in one table in `docs/ARCHITECTURE.md`, between the markers
//! `<!-- layering:begin -->` and `<!-- layering:end -->`, so the document and the check
//! cannot disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Target};

/// The only external crates `manta-proto` may depend on: it holds generated code and nothing
/// else, so it must stay cheap to build and free of logic.
const PROTO_ALLOWED_DEPS: &[&str] = &["prost", "prost-types", "tonic", "tonic-prost"];

/// Allowed edges: crate name to the Manta crates it may depend on (`*` means any).
#[derive(Debug, Default)]
pub(crate) struct Rules {
    allowed: BTreeMap<String, BTreeSet<String>>,
}

impl Rules {
    /// Parses the table between the layering markers of `ARCHITECTURE.md`.
    pub(crate) fn from_architecture_doc(text: &str) -> Result<Rules> {
        let start = text
            .find("<!-- layering:begin -->")
            .context("docs/ARCHITECTURE.md has no `<!-- layering:begin -->` marker")?;
        let end = text
            .find("<!-- layering:end -->")
            .context("docs/ARCHITECTURE.md has no `<!-- layering:end -->` marker")?;
        let mut rules = Rules::default();
        for line in text[start..end].lines() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .collect();
            if cells.len() < 2 || !cells[0].starts_with("manta-") && cells[0] != "xtask" {
                continue;
            }
            let deps = cells[1]
                .split(',')
                .map(|d| d.trim().trim_matches('`').to_owned())
                .filter(|d| !d.is_empty() && d != "(none)" && d != "none")
                .collect();
            rules.allowed.insert(cells[0].to_owned(), deps);
        }
        if rules.allowed.is_empty() {
            bail!("the layering table in docs/ARCHITECTURE.md has no rows");
        }
        Ok(rules)
    }

    fn allows(&self, from: &str, to: &str) -> bool {
        self.allowed
            .get(from)
            .is_some_and(|deps| deps.contains("*") || deps.contains(to))
    }
}

/// Checks a `cargo metadata --no-deps` document against the rules; returns every violation.
pub(crate) fn violations(metadata: &Metadata, rules: &Rules) -> Vec<String> {
    let mut problems = Vec::new();
    let packages = &metadata.packages;
    let members: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    for package in packages {
        let name = package.name.as_str();
        if !rules.allowed.contains_key(name) {
            problems.push(format!(
                "crate `{name}` is not in the layering table of docs/ARCHITECTURE.md; add a row for it"
            ));
            continue;
        }
        for dep in &package.dependencies {
            let dep_name = dep.name.as_str();
            let kind = dep.kind;
            if name == "manta-proto"
                && kind != DependencyKind::Development
                && !PROTO_ALLOWED_DEPS.contains(&dep_name)
            {
                problems.push(format!(
                    "manta-proto may depend only on {PROTO_ALLOWED_DEPS:?}, not `{dep_name}`: it holds generated code only"
                ));
            }
            // A crate's dev-dependency on itself only turns on its own features for its tests
            // (manta-manager's `testing`); it is not an edge between crates.
            if !members.contains(dep_name) || dep_name == name {
                continue;
            }
            if !rules.allows(name, dep_name) {
                problems.push(format!(
                    "`{name}` depends on `{dep_name}` ({kind}), which docs/ARCHITECTURE.md does not allow"
                ));
            }
        }
        if name == "manta-proto" && package.targets.iter().any(Target::is_custom_build) {
            problems.push(
                "manta-proto must not have a build script: run `cargo xtask codegen` and commit"
                    .to_owned(),
            );
        }
    }
    problems
}

/// Runs `cargo metadata --no-deps --offline` for the workspace at `root`.
pub(crate) fn workspace_metadata(root: &Path) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.cargo_path(cargo);
    }
    command
        .current_dir(root)
        .no_deps()
        .other_options(vec!["--offline".to_owned()])
        .exec()
        .context("running cargo metadata")
}

/// `cargo xtask layering`.
pub(crate) fn check(root: &Path) -> Result<()> {
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .context("reading docs/ARCHITECTURE.md")?;
    let rules = Rules::from_architecture_doc(&doc)?;
    let problems = violations(&workspace_metadata(root)?, &rules);
    if !problems.is_empty() {
        bail!("layering check failed:\n  {}", problems.join("\n  "));
    }
    println!("layering: every dependency edge is allowed by docs/ARCHITECTURE.md");
    Ok(())
}
