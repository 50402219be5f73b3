//! `cargo xtask codegen [--check]`: compiles `proto/` with protox (no system `protoc`) and
//! writes prost messages plus tonic clients and servers into `crates/manta-proto/src/generated`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use prost::Message as _;

/// Where the generated code lives, relative to the workspace root.
pub(crate) const GENERATED_DIR: &str = "crates/manta-proto/src/generated";
/// The serialized `FileDescriptorSet` (without source info) used by gRPC server reflection.
const DESCRIPTOR_FILE: &str = "descriptor.bin";
/// The file prost writes with the module tree that `include!`s every package.
const INCLUDE_FILE: &str = "_includes.rs";

/// Every `.proto` file under `proto/`, sorted, as paths relative to `proto/`.
fn proto_files(proto_root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(path.strip_prefix(root)?.to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(proto_root, proto_root, &mut files)?;
    files.sort();
    Ok(files)
}

/// Generates the code for `root/proto` into `out_dir` (which must exist and be empty).
pub(crate) fn generate(root: &Path, out_dir: &Path) -> Result<()> {
    let proto_root = root.join("proto");
    let files = proto_files(&proto_root)?;
    if files.is_empty() {
        bail!("no .proto files under {}", proto_root.display());
    }
    let fds = protox::compile(&files, [&proto_root]).context("compiling proto/ with protox")?;

    // Reflection needs the descriptors but not the comments and spans: dropping them keeps the
    // committed binary small and independent of comment edits.
    let mut reflection = fds.clone();
    for file in &mut reflection.file {
        file.source_code_info = None;
    }
    fs::write(out_dir.join(DESCRIPTOR_FILE), reflection.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // manta-proto depends only on tonic's `codegen` feature; connecting is the TLS crate's
        // job, so the generated clients take any `GrpcService` instead of a transport Channel.
        .build_transport(false)
        // Methods the manager does not serve keep tonic's UNIMPLEMENTED default body; the
        // manager's unserved layer rewrites that answer to say what it does serve.
        .generate_default_stubs(true)
        .out_dir(out_dir)
        .include_file(INCLUDE_FILE)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)
        .context("generating Rust code")?;

    // rustfmt makes the output canonical, so the check does not depend on prettyplease's
    // formatting choices and the files read like the rest of the workspace.
    let mut generated: Vec<PathBuf> = fs::read_dir(out_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    generated.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    generated.sort();
    let status = std::process::Command::new(std::env::var("RUSTFMT").unwrap_or("rustfmt".into()))
        .args(["--edition", "2024"])
        .args(&generated)
        .status()
        .context("running rustfmt on the generated code (is rustfmt installed?)")?;
    if !status.success() {
        bail!("rustfmt failed on the generated code");
    }
    Ok(())
}

/// Reads every file of a directory into a map from file name to contents.
fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut map = BTreeMap::new();
    if !dir.exists() {
        return Ok(map);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            map.insert(name, fs::read(entry.path())?);
        }
    }
    Ok(map)
}

/// Regenerates into a temporary directory and lists the files that differ from `GENERATED_DIR`.
pub(crate) fn stale_files(root: &Path) -> Result<Vec<String>> {
    let tmp = tempfile::tempdir()?;
    generate(root, tmp.path())?;
    let fresh = snapshot(tmp.path())?;
    let committed = snapshot(&root.join(GENERATED_DIR))?;
    let mut stale: Vec<String> = fresh
        .iter()
        .filter(|(name, bytes)| committed.get(*name) != Some(*bytes))
        .map(|(name, _)| name.clone())
        .collect();
    stale.extend(
        committed
            .keys()
            .filter(|name| !fresh.contains_key(*name))
            .map(|name| format!("{name} (no longer generated)")),
    );
    Ok(stale)
}

/// `cargo xtask codegen`: rewrites `GENERATED_DIR`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    generate(root, tmp.path())?;
    let dest = root.join(GENERATED_DIR);
    if dest.exists() {
        fs::remove_dir_all(&dest)?;
    }
    fs::create_dir_all(&dest)?;
    for (name, bytes) in snapshot(tmp.path())? {
        fs::write(dest.join(&name), bytes)?;
    }
    println!("codegen: wrote {}", dest.display());
    Ok(())
}

/// `cargo xtask codegen --check`: fails when the committed code is stale.
pub(crate) fn check(root: &Path) -> Result<()> {
    let stale = stale_files(root)?;
    if !stale.is_empty() {
        bail!(
            "the generated code in {GENERATED_DIR} is stale ({}); run `cargo xtask codegen` and commit the result",
            stale.join(", ")
        );
    }
    println!("codegen: {GENERATED_DIR} is up to date");
    Ok(())
}
