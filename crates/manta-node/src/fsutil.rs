//! File helpers for the node's own state files: atomic 0600 writes and permission checks.
//!
//! `manta-config` has the same helpers but keeps them crate-private (its public API only
//! writes configuration documents), so the node carries this small copy for its state,
//! lock and run files.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    write_replace(path, contents, true)
}

/// Replaces `path` with `contents` through a rename, so readers never see a partial file,
/// but without fsync: for status files that a crash may lose (the two fsyncs cost tens of
/// milliseconds on a busy disk, which start-up should not pay for a status line).
pub(crate) fn write_volatile(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    write_replace(path, contents, false)
}

fn write_replace(path: &Path, contents: &[u8], durable: bool) -> Result<(), NodeError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    ensure_dir(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        if durable {
            fs::File::open(&dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        // A failed write must not leave a stray copy of a token behind.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| NodeError::io(path, e))
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
