//! Integration tests of manta-config's public API, as the node agent, client and manager
//! use it: files in temporary directories, environments from fixed pairs.

mod generic;
mod node_files;
mod redaction;
mod seeds;

use base64::Engine as _;

/// An unsigned JWT-shaped token with the given `exp`.
pub(crate) fn jwt(exp: u64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"),
        b64(&format!("{{\"sub\":\"node-1\",\"exp\":{exp}}}"))
    )
}

/// Writes `text` to `dir/name` with the given mode.
pub(crate) fn write(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    mode: u32,
) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}
