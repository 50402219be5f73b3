//! Tests of the workspace checks themselves: each must pass on the real tree and fail on a
//! tree that breaks its rule.

use cargo_metadata::{DependencyKind, Metadata, TargetKind};

use crate::{codegen, layering, workspace_root};

/// Adds a dependency on `dep` of `kind` to `package` (a copy of one of its own, renamed).
fn add_dependency(metadata: &mut Metadata, package: &str, dep: &str, kind: DependencyKind) {
    let package = metadata
        .packages
        .iter_mut()
        .find(|p| p.name.as_str() == package)
        .unwrap();
    let mut added = package.dependencies[0].clone();
    added.name = dep.to_owned();
    added.kind = kind;
    package.dependencies.push(added);
}

fn rules() -> layering::Rules {
    let doc = std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md")).unwrap();
    layering::Rules::from_architecture_doc(&doc).unwrap()
}

#[test]
fn committed_generated_code_is_fresh() {
    let stale = codegen::stale_files(&workspace_root()).unwrap();
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `cargo xtask codegen`"
    );
}

#[test]
fn real_workspace_respects_layering() {
    let metadata = layering::workspace_metadata(&workspace_root()).unwrap();
    let problems = layering::violations(&metadata, &rules());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A leaf crate (manta-config) that starts depending on manta-auth is reported.
#[test]
fn forbidden_edge_is_reported() {
    let mut metadata = layering::workspace_metadata(&workspace_root()).unwrap();
    add_dependency(
        &mut metadata,
        "manta-config",
        "manta-auth",
        DependencyKind::Normal,
    );
    let problems = layering::violations(&metadata, &rules());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("`manta-config` depends on `manta-auth`"),
        "{}",
        problems[0]
    );
}

/// Nothing but xtask may depend on the top-level crates.
#[test]
fn depending_on_a_binary_crate_is_reported() {
    let mut metadata = layering::workspace_metadata(&workspace_root()).unwrap();
    add_dependency(
        &mut metadata,
        "manta-auth",
        "manta-client",
        DependencyKind::Development,
    );
    let problems = layering::violations(&metadata, &rules());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`manta-auth` depends on `manta-client`"))
    );
}

#[test]
fn proto_crate_may_not_grow_dependencies_or_a_build_script() {
    let mut metadata = layering::workspace_metadata(&workspace_root()).unwrap();
    add_dependency(
        &mut metadata,
        "manta-proto",
        "serde",
        DependencyKind::Normal,
    );
    let proto = metadata
        .packages
        .iter_mut()
        .find(|p| p.name.as_str() == "manta-proto")
        .unwrap();
    let mut build_script = proto.targets[0].clone();
    build_script.name = "build-script-build".to_owned();
    build_script.kind = vec![TargetKind::CustomBuild];
    proto.targets.push(build_script);
    let problems = layering::violations(&metadata, &rules());
    assert!(
        problems.iter().any(|p| p.contains("not `serde`")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("build script")),
        "{problems:#?}"
    );
}

/// Changing one field number in a copy of proto/ makes the codegen check report stale code.
#[test]
fn editing_a_field_number_makes_codegen_stale() {
    let root = workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root.join("proto"), &tmp.path().join("proto"));
    copy_dir(
        &root.join(codegen::GENERATED_DIR),
        &tmp.path().join(codegen::GENERATED_DIR),
    );
    let user = tmp.path().join("proto/common/user.proto");
    let text = std::fs::read_to_string(&user).unwrap();
    assert!(text.contains("string username = 2;"));
    std::fs::write(
        &user,
        text.replace("string username = 2;", "string username = 15;"),
    )
    .unwrap();
    let stale = codegen::stale_files(tmp.path()).unwrap();
    assert!(
        stale.iter().any(|f| f.starts_with("common.user.rs")),
        "expected common.user.rs to be stale, got {stale:?}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The release pipeline in dry-run mode packs an archive and a matching checksum file.
#[test]
fn release_dry_run_packs_and_checksums() {
    let out = tempfile::tempdir().unwrap();
    let options = crate::release::Options {
        version: None,
        dry_run: true,
        out: Some(out.path().to_path_buf()),
    };
    let outcome = crate::release::run(&workspace_root(), &options).unwrap();
    assert!(outcome.archive.is_file());
    let name = outcome
        .archive
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("manta-0.1.0-"), "{name}");
    let sums = std::fs::read_to_string(&outcome.checksums).unwrap();
    let (digest, file) = sums.trim_end().split_once("  ").unwrap();
    assert_eq!(file, name);
    use sha2::Digest as _;
    let actual = sha2::Sha256::digest(std::fs::read(&outcome.archive).unwrap());
    let actual: String = actual.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, actual);
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&outcome.archive)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for doc in ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "CHANGELOG.md"] {
        assert!(listing.contains(doc), "{doc} missing from {listing}");
    }
    // Man pages for each program and its subcommands, generated from the clap definitions.
    for page in [
        "manta.1",
        "manta-swarm-deploy.1",
        "manta-manager.1",
        "manta-manager-node-token-issue.1",
        "manta_node.1",
        "manta_node-config-list.1",
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.ends_with(&format!("/man/man1/{page}"))),
            "{page} missing from {listing}"
        );
        assert!(outcome.man_pages.iter().any(|p| p == page), "{page}");
    }
    // Every shipped binary is either packed or reported as not built; none is lost silently.
    for bin in ["manta-manager", "manta_node", "manta"] {
        let packed = listing.lines().any(|l| l.ends_with(&format!("/bin/{bin}")));
        let missing = outcome.missing_binaries.iter().any(|m| m == bin);
        assert!(
            packed != missing,
            "{bin}: packed={packed} missing={missing}"
        );
    }
}

/// The man pages describe the real command lines: each program's page lists its
/// subcommands, and a subcommand's page its own flags.
#[test]
fn man_pages_describe_every_program_and_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let pages = crate::release::write_man_pages(dir.path()).unwrap();
    let read = |page: &str| std::fs::read_to_string(dir.path().join(page)).unwrap();
    let manta = read("manta.1");
    assert!(
        manta.starts_with(".ie") || manta.contains(".TH manta 1"),
        "{manta}"
    );
    for sub in ["login", "whoami", "cluster", "swarm", "completions"] {
        assert!(manta.contains(sub), "manta.1 lacks {sub}");
    }
    let deploy = read("manta-swarm-deploy.1");
    assert!(deploy.contains("cluster") && deploy.contains("name of exactly one cluster"));
    let manager = read("manta-manager.1");
    for sub in ["serve", "node\\-token", "completions"] {
        assert!(
            manager.contains(sub),
            "manta-manager.1 lacks {sub}: {manager}"
        );
    }
    assert!(read("manta_node.1").contains("config"));
    assert!(read("manta_node-config-list.1").contains("json"));
    // One page per program and per (nested) subcommand, clap's `help` excluded.
    let subcommands = |c: &clap::Command| {
        fn count(c: &clap::Command) -> usize {
            1 + c
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .map(count)
                .sum::<usize>()
        }
        count(c)
    };
    let expected = subcommands(&manta_client::cli::command())
        + subcommands(&manta_manager::cli::command())
        + subcommands(&manta_node::cli::command());
    assert_eq!(pages.len(), expected, "{pages:?}");
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
}

#[test]
fn release_refuses_a_version_without_changelog_entry() {
    let err = crate::release::check_changelog("# Changelog\n\n## [0.1.0] - 2026-11-22\n", "0.2.0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("CHANGELOG.md has no entry for 0.2.0"), "{err}");
    let err = crate::release::run(
        &workspace_root(),
        &crate::release::Options {
            version: Some("1.2".into()),
            dry_run: true,
            out: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a version of the form X.Y.Z"), "{err}");
}

#[test]
fn release_options_parse_and_refuse_unknown_ones() {
    let o = crate::release::Options::parse(&["--dry-run", "--version", "1.2.3", "--out", "/tmp/d"])
        .unwrap();
    assert!(o.dry_run);
    assert_eq!(o.version.as_deref(), Some("1.2.3"));
    assert_eq!(o.out, Some(std::path::PathBuf::from("/tmp/d")));
    let err = crate::release::Options::parse(&["--out"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a directory"), "{err}");
    let err = crate::release::Options::parse(&["--fast"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--fast") && err.contains("--dry-run"), "{err}");
}
