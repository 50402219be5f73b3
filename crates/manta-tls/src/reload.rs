//! Hot reload by polling: a cheap file signature (device, inode, size, mtime, ctime, after
//! following symlinks) is compared every interval, which catches in-place writes, atomic
//! `mv` replacements and Kubernetes `..data` symlink swaps without an inotify dependency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::TlsError;

/// Something whose files can be watched and reloaded.
pub(crate) trait Reloadable: Send + Sync + 'static {
    /// The files whose change triggers a reload.
    fn watched_files(&self) -> Vec<PathBuf>;
    /// Loads and validates everything, then swaps; leaves the old material on error.
    fn reload(&self) -> Result<(), TlsError>;
}

/// A running watch started by `ClientTls::watch` or `ServerTls::watch`; dropping it stops
/// the watch (the last loaded material stays in use).
#[derive(Debug)]
pub struct ReloadWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl ReloadWatcher {
    pub(crate) fn spawn(target: Arc<dyn Reloadable>, every: Duration) -> Self {
        let every = every.max(Duration::from_millis(10));
        // The first snapshot is taken here, before `watch()` returns, not inside the task:
        // a task may first run after the caller has already swapped a file, and a snapshot
        // taken then would record the new files as the loaded ones and never reload them.
        let files = target.watched_files();
        let mut seen = signature(&files);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = signature(&files);
                if now == seen {
                    continue;
                }
                // Record the new state even when the reload fails: a half-written pair is
                // retried when its second file lands (which changes the signature again),
                // instead of logging the same failure every tick.
                seen = now;
                match target.reload() {
                    Ok(()) => tracing::info!(files = ?files, "TLS material reloaded"),
                    Err(err) => tracing::warn!(
                        error = %err,
                        "TLS files changed but the new material is invalid; keeping the last good certificates"
                    ),
                }
            }
        });
        Self { task }
    }

    /// Stops watching.
    pub fn stop(self) {
        // Drop aborts the task.
    }
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What changes when a file is rewritten, replaced or re-pointed; `None` while missing.
type FileSig = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn file_sig(path: &Path) -> FileSig {
    // `metadata` follows symlinks, so a `..data` swap changes the inode seen here.
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ))
    }
    #[cfg(not(unix))]
    {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        Some((0, 0, meta.len(), modified, 0, 0, 0))
    }
}

fn signature(files: &[PathBuf]) -> Vec<FileSig> {
    files.iter().map(|f| file_sig(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts reloads of one watched file.
    struct Counting {
        file: PathBuf,
        reloads: AtomicUsize,
    }

    impl Reloadable for Counting {
        fn watched_files(&self) -> Vec<PathBuf> {
            vec![self.file.clone()]
        }
        fn reload(&self) -> Result<(), TlsError> {
            self.reloads.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A file replaced right after `spawn` returns, before the watch task first runs, is
    /// reloaded: the first snapshot belongs to the caller's moment, not the task's.
    #[tokio::test(start_paused = true)]
    async fn a_change_right_after_watch_returns_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.crt");
        std::fs::write(&file, b"one").unwrap();
        let target = Arc::new(Counting {
            file: file.clone(),
            reloads: AtomicUsize::new(0),
        });
        let watcher = ReloadWatcher::spawn(target.clone(), Duration::from_millis(20));
        // On this single-threaded runtime the task has not run yet: nothing awaited.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, b"two, longer").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        // Paused time: these ticks pass at once, without sleeping.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(target.reloads.load(Ordering::SeqCst), 1);
        watcher.stop();
    }

    #[test]
    fn signature_changes_on_rewrite_mv_and_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.crt");
        std::fs::write(&file, b"one").unwrap();
        let s1 = file_sig(&file);
        assert!(s1.is_some());

        // Atomic replacement by rename: same size, new inode.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, b"two").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let s2 = file_sig(&file);
        assert_ne!(s1, s2);

        // Kubernetes layout: a.crt -> ..data/a.crt, ..data -> ..v1, then ..data -> ..v2.
        #[cfg(unix)]
        {
            let root = dir.path().join("k8s");
            std::fs::create_dir_all(root.join("..v1")).unwrap();
            std::fs::create_dir_all(root.join("..v2")).unwrap();
            std::fs::write(root.join("..v1/a.crt"), b"one").unwrap();
            std::fs::write(root.join("..v2/a.crt"), b"one").unwrap();
            std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
            std::os::unix::fs::symlink("..data/a.crt", root.join("a.crt")).unwrap();
            let before = file_sig(&root.join("a.crt"));
            std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
            std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
            let after = file_sig(&root.join("a.crt"));
            assert!(before.is_some() && after.is_some());
            assert_ne!(before, after);
        }

        std::fs::remove_file(&file).unwrap();
        assert_eq!(file_sig(&file), None);
    }
}
