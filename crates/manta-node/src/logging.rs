//! Logging through `tracing` to stderr or to a size-rotated file named after the alias
//! (the seed: the alias is "used as log file name base").
//!
//! No token is ever logged: the agent logs only ids, aliases, addresses and manager
//! messages, and other crates' events are capped at WARN whatever the configured level, so
//! transport internals (h2, hyper, tonic) never print request headers at TRACE.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use manta_config::{Env, LoggingConfig, MantaHome};
use tracing_subscriber::EnvFilter;

use crate::error::NodeError;
use crate::fsutil;

/// The published default for `logging.filename`; while it has this value the file is
/// `MANTA_HOME/logs/nodes/<alias>.log`.
pub const DEFAULT_LOG_FILENAME: &str = "manta_node.log";

/// Where the log file of `alias` goes: `logging.filename` when changed from the default
/// (relative names are under `MANTA_HOME/logs/nodes`), else `<alias>.log` there.
pub fn log_file_path(home: &MantaHome, logging: &LoggingConfig, alias: &str) -> PathBuf {
    let dir = home.root().join("logs").join("nodes");
    if logging.filename.is_empty() || logging.filename == DEFAULT_LOG_FILENAME {
        dir.join(format!("{alias}.log"))
    } else {
        dir.join(&logging.filename)
    }
}

/// The `tracing` level name for a configured level (`WARNING` → `warn`, `CRITICAL` →
/// `error`); unknown names give `info` (validation has already reported them).
pub fn level_directive(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => "info",
    }
}

/// The filter: our crates at `level`, everything else at WARN at most.
pub fn filter(level: &str) -> EnvFilter {
    let l = level_directive(level);
    EnvFilter::new(format!(
        "warn,manta_node={l},manta_auth={l},manta_config={l},manta_tls={l}"
    ))
}

/// A log file that rotates when it passes `max_bytes`: `x.log` → `x.log.1` → … →
/// `x.log.N` (N = `backups`, the oldest is dropped).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    backups: u32,
}

impl RotatingFile {
    /// Opens (appends to) `path`, creating it 0600 and its directory 0700.
    ///
    /// # Errors
    /// [`NodeError::Io`] when the file cannot be opened.
    pub fn open(path: &Path, max_bytes: u64, backups: u32) -> Result<Self, NodeError> {
        if let Some(dir) = path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        let file = open_append(path).map_err(|e| NodeError::io(path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max_bytes: max_bytes.max(1024),
            backups,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.backups == 0 {
            self.file.set_len(0)?;
        } else {
            for i in (1..self.backups).rev() {
                let _ = fs::rename(name(i), name(i + 1));
            }
            fs::rename(&self.path, name(1))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where logs go for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (the container form, or `log_to_console = true`).
    Stderr,
    /// A rotated file.
    File(PathBuf),
    /// Nowhere (`log_to_file = false` and `log_to_console = false`).
    Off,
}

/// Chooses the target: stderr when `console` (command line) or `log_to_console`, else the
/// alias's file when `log_to_file`, else nothing.
pub fn target(home: &MantaHome, logging: &LoggingConfig, alias: &str, console: bool) -> LogTarget {
    if console || logging.log_to_console {
        LogTarget::Stderr
    } else if logging.log_to_file {
        LogTarget::File(log_file_path(home, logging, alias))
    } else {
        LogTarget::Off
    }
}

/// Whether log lines on standard error get ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>), so pipes, files and
/// supervisors' logs get plain text.
pub fn colour_on_stderr(env: &Env, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && env.get_non_empty("NO_COLOR").is_none()
}

/// Installs the global subscriber for this process. Call once, from the binary. `colour`
/// (see [`colour_on_stderr`]) applies to standard error; a file never gets colours.
///
/// # Errors
/// [`NodeError::Io`] when the log file cannot be opened.
pub fn init(target: &LogTarget, logging: &LoggingConfig, colour: bool) -> Result<(), NodeError> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&logging.level))
        .with_target(false);
    // A second call (tests running commands in one process) keeps the first subscriber.
    let _ = match target {
        LogTarget::Stderr => builder.with_ansi(colour).with_writer(io::stderr).try_init(),
        LogTarget::File(path) => {
            let max = logging.max_file_size_bytes().unwrap_or(100 << 20);
            let file = RotatingFile::open(path, max, logging.backup_count)?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        LogTarget::Off => return Ok(()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_named_after_the_alias() {
        let home = MantaHome::at("/m");
        let mut cfg = LoggingConfig::default();
        assert_eq!(
            log_file_path(&home, &cfg, "gpu-1"),
            Path::new("/m/logs/nodes/gpu-1.log")
        );
        cfg.filename = "custom.log".into();
        assert_eq!(
            log_file_path(&home, &cfg, "gpu-1"),
            Path::new("/m/logs/nodes/custom.log")
        );
        cfg.filename = "/var/log/n.log".into();
        assert_eq!(
            log_file_path(&home, &cfg, "gpu-1"),
            Path::new("/var/log/n.log")
        );
        assert_eq!(target(&home, &cfg, "a", true), LogTarget::Stderr);
        cfg.log_to_file = false;
        assert_eq!(target(&home, &cfg, "a", false), LogTarget::Off);
        assert_eq!(level_directive("warning"), "warn");
        assert_eq!(level_directive("CRITICAL"), "error");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        let none = Env::from_pairs(Vec::<(String, String)>::new());
        assert!(colour_on_stderr(&none, true));
        assert!(!colour_on_stderr(&none, false));
        assert!(!colour_on_stderr(
            &Env::from_pairs([("NO_COLOR", "1")]),
            true
        ));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(colour_on_stderr(&Env::from_pairs([("NO_COLOR", "")]), true));
    }

    #[test]
    fn rotation_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/a.log");
        let mut f = RotatingFile::open(&path, 1024, 2).unwrap();
        for i in 0..5 {
            f.write_all(&vec![b'0' + i; 800]).unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), vec![b'4'; 800]);
        assert_eq!(
            fs::read(dir.path().join("logs/a.log.1")).unwrap(),
            vec![b'3'; 800]
        );
        assert_eq!(
            fs::read(dir.path().join("logs/a.log.2")).unwrap(),
            vec![b'2'; 800]
        );
        assert!(!dir.path().join("logs/a.log.3").exists());
        assert_eq!(fsutil::mode_of(&path).unwrap(), 0o600);
    }
}
