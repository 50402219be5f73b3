//! File helpers: reading into zeroized buffers, permission checks and atomic 0600 writes.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::ConfigError;

/// Reads a whole file into a buffer that is wiped on drop. Never creates the file.
pub(crate) fn read_text(path: &Path, missing_hint: &str) -> Result<Zeroizing<String>, ConfigError> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_owned(),
                hint: missing_hint.to_owned(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    // Reserve the full size up front so the buffer never reallocates (a reallocation would
    // leave an unwiped copy of the secret behind).
    let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut text = Zeroizing::new(String::with_capacity(len + 1));
    file.read_to_string(&mut text)
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(text)
}

/// Permission bits of a file (Unix); `None` elsewhere, where the check does not apply.
pub(crate) fn mode_of(path: &Path) -> Result<Option<u32>, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Some(meta.permissions().mode() & 0o7777))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Refuses a secret-holding file that group or others may read, unless `allow` is set.
pub(crate) fn check_secret_file(path: &Path, allow: bool) -> Result<(), ConfigError> {
    if allow {
        return Ok(());
    }
    match mode_of(path)? {
        Some(mode) if mode & 0o077 != 0 => Err(ConfigError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        }),
        _ => Ok(()),
    }
}

/// Writes `contents` to `path` atomically with mode 0600 and fsync (see
/// [`write_private_file`]), mapping failures to [`ConfigError::Write`].
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    write_private_file(path, contents, Durability::Synced).map_err(|source| ConfigError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Whether [`write_private_file`] waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// fsync the file before the rename and the directory after it, so the new contents
    /// survive a crash: for secrets and state that must not be lost.
    Synced,
    /// Rename without fsync: readers still never see a partial file, but a crash may lose
    /// the write. For status files, where the two fsyncs would cost start-up tens of ms.
    Unsynced,
}

/// Replaces `path` with `contents` through a temporary file in the same directory created
/// with mode 0600 and a rename, so the file is never readable by others and readers never see
/// a partial file. Creates the parent directory (mode 0700) when missing; a failed write
/// leaves no temporary copy behind. This is the one implementation of the workspace's
/// "files holding secrets are written atomically with mode 0600" rule.
pub fn write_private_file(
    path: &Path,
    contents: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
    }
    // tempfile picks an unused name in the same directory (so the rename stays on one file
    // system), creates it with the mode already set, and removes it if anything below fails
    // before `persist`, so no stray copy of a secret is left behind.
    let mut builder = tempfile::Builder::new();
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut file = builder.tempfile_in(&dir)?;
    file.write_all(contents)?;
    let synced = durability == Durability::Synced;
    if synced {
        file.as_file().sync_all()?;
    }
    file.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if synced {
        fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn atomic_write_is_0600_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.toml");
        write_atomic(&path, b"one").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(mode_of(&path).unwrap(), Some(0o600));
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1, "temporary file left behind");
    }

    #[test]
    fn group_readable_secret_file_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ini");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = check_secret_file(&path, false).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        check_secret_file(&path, true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&path, false).unwrap();
    }

    #[test]
    fn missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        let err = read_text(&path, "run `manta_node config init`").unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert!(err.to_string().contains("config init"));
        assert!(!path.exists());
    }
}
