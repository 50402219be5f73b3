//! File helpers for the node's own state files: atomic 0600 writes (through
//! `manta_config::write_private_file`, the workspace's one implementation) and permission
//! checks.

use std::fs;
use std::path::Path;

use manta_config::{Durability, write_private_file};

use crate::error::NodeError;

/// Creates `dir` (and parents) with mode 0700 when missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), NodeError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| NodeError::io(dir, e))
}

/// Writes `contents` to `path` atomically with mode 0600: temporary file in the same
/// directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    write_private_file(path, contents, Durability::Synced).map_err(|e| NodeError::io(path, e))
}

/// Replaces `path` with `contents` through a rename, so readers never see a partial file,
/// but without fsync: for status files that a crash may lose (the two fsyncs cost tens of
/// milliseconds on a busy disk, which start-up should not pay for a status line).
pub(crate) fn write_volatile(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    write_private_file(path, contents, Durability::Unsynced).map_err(|e| NodeError::io(path, e))
}

/// The permission bits of `path`.
pub(crate) fn mode_of(path: &Path) -> Result<u32, NodeError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = fs::metadata(path).map_err(|e| NodeError::io(path, e))?;
    Ok(meta.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        write_volatile(&path, b"three").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "three");
        assert_eq!(mode_of(&path).unwrap(), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()).unwrap(), 0o700);
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file may remain");
    }
}
