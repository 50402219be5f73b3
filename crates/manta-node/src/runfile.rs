//! Process control for `status` and `stop`: a lock file held for the agent's lifetime plus
//! a run file describing it, in `MANTA_HOME/nodes/run/`.
//!
//! The published agent signalled PIDs read from JSON files, so a reused PID could be killed
//! (`manta-platform.md` §11.12). Here a node counts as running only while its process holds
//! an exclusive `flock` on `<alias>.lock` (the kernel drops it when the process dies, however
//! it dies), and `stop` also checks that the PID's start time still matches the one recorded,
//! so a recycled PID is never signalled.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use manta_config::MantaHome;
use rustix::fs::FlockOperation;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use crate::fsutil;

/// `MANTA_HOME/nodes/run`.
pub fn run_dir(home: &MantaHome) -> PathBuf {
    home.nodes_dir().join("run")
}

/// What a running agent says about itself (`<alias>.json`). Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The alias.
    pub alias: String,
    /// The node id of this run.
    pub node_id: String,
    /// Process id.
    pub pid: u32,
    /// The process start time in clock ticks since boot (`/proc/PID/stat` field 22), which
    /// tells a live agent from an unrelated process that got the same PID later.
    pub start_ticks: u64,
    /// The configuration file.
    pub config: PathBuf,
    /// `host:port` of the manager.
    pub manager: String,
    /// `starting`, `registered`, `reconnecting` or `stopping`.
    pub state: String,
    /// When the agent started, unix seconds.
    pub started_at: u64,
    /// The log file, when logging to a file.
    pub log_file: Option<PathBuf>,
}

/// The exclusive lock of one alias, held by the running agent. Dropping it (or the process
/// dying) releases the alias.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    info_path: PathBuf,
}

fn lock_path(dir: &Path, alias: &str) -> PathBuf {
    dir.join(format!("{alias}.lock"))
}

fn info_path(dir: &Path, alias: &str) -> PathBuf {
    dir.join(format!("{alias}.json"))
}

impl RunLock {
    /// Takes the alias's lock in `dir`.
    ///
    /// # Errors
    /// [`NodeError::DuplicateAlias`] when another live agent holds it (with its pid when
    /// known), [`NodeError::Io`] when the file cannot be opened.
    pub fn acquire(dir: &Path, alias: &str) -> Result<Self, NodeError> {
        fsutil::ensure_dir(dir)?;
        let path = lock_path(dir, alias);
        let file = open_lock(&path)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self {
                _file: file,
                info_path: info_path(dir, alias),
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(NodeError::DuplicateAlias {
                alias: alias.to_owned(),
                running_here: read_info(&info_path(dir, alias)).map(|i| i.pid),
            }),
            Err(e) => Err(NodeError::io(&path, e.into())),
        }
    }

    /// Writes (replaces) the run file.
    ///
    /// # Errors
    /// [`NodeError::Io`] when it cannot be written.
    pub fn publish(&self, info: &RunInfo) -> Result<(), NodeError> {
        // RunInfo is plain data; serialization cannot fail.
        let text = serde_json::to_vec_pretty(info).unwrap_or_default();
        // Status only: a crash may lose it (the lock tells `status` the truth anyway).
        fsutil::write_volatile(&self.info_path, &text)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The lock file stays (removing it would race with a new agent opening it); the run
        // file goes so `status` shows nothing stale after a clean exit.
        let _ = fs::remove_file(&self.info_path);
    }
}

fn open_lock(path: &Path) -> Result<File, NodeError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| NodeError::io(path, e))
}

fn read_info(path: &Path) -> Option<RunInfo> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether some process holds the alias's lock in `dir`.
fn lock_held(dir: &Path, alias: &str) -> bool {
    let Ok(file) = File::open(lock_path(dir, alias)) else {
        return false;
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
        // We got it, so nobody holds it exclusively; closing the file releases ours.
        Ok(()) => false,
        Err(_) => true,
    }
}

/// The start time of `pid` in clock ticks since boot, from `/proc/PID/stat` field 22.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (the command name) may contain spaces and parentheses: parse after the last
    // `)`. Field 3 is then the first; the start time is field 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A node found in the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningNode {
    /// What it wrote about itself.
    pub info: RunInfo,
}

/// The live agents in `dir` (lock held and run file present), sorted by alias. Stale run
/// files of dead agents are removed.
pub fn list(dir: &Path) -> Vec<RunningNode> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<RunningNode> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let alias = name.strip_suffix(".json")?.to_owned();
            let path = e.path();
            let info = read_info(&path)?;
            if lock_held(dir, &alias) {
                Some(RunningNode { info })
            } else {
                let _ = fs::remove_file(&path);
                None
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.info.alias.cmp(&b.info.alias));
    nodes
}

/// How `stop` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The alias stopped.
    pub alias: String,
    /// Its process id.
    pub pid: u32,
    /// Whether SIGKILL was needed.
    pub killed: bool,
}

/// Stops the agent with `alias` (or the only one running): SIGTERM, then wait for its lock
/// to be released; with `force`, SIGKILL after `timeout`.
///
/// # Errors
/// [`NodeError::NotRunning`], [`NodeError::Ambiguous`], [`NodeError::StopTimeout`],
/// [`NodeError::Signal`].
pub fn stop(
    dir: &Path,
    alias: Option<&str>,
    timeout: Duration,
    force: bool,
) -> Result<Stopped, NodeError> {
    let running = list(dir);
    let node = match alias {
        Some(a) => running.into_iter().find(|n| n.info.alias == a),
        None if running.len() > 1 => {
            return Err(NodeError::Ambiguous {
                aliases: running.into_iter().map(|n| n.info.alias).collect(),
            });
        }
        None => running.into_iter().next(),
    }
    .ok_or_else(|| NodeError::NotRunning {
        alias: alias.map(str::to_owned),
    })?;
    let info = node.info;
    if process_start_ticks(info.pid) != Some(info.start_ticks) {
        // The lock is held but the recorded PID is not the holder: never signal a stranger.
        return Err(NodeError::NotRunning {
            alias: Some(info.alias),
        });
    }
    let pid = Pid::from_raw(i32::try_from(info.pid).unwrap_or(0)).ok_or(NodeError::NotRunning {
        alias: Some(info.alias.clone()),
    })?;
    rustix::process::kill_process(pid, Signal::TERM).map_err(|e| NodeError::Signal {
        pid: info.pid,
        source: e.into(),
    })?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !lock_held(dir, &info.alias) {
            return Ok(Stopped {
                alias: info.alias,
                pid: info.pid,
                killed: false,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if force && process_start_ticks(info.pid) == Some(info.start_ticks) {
        rustix::process::kill_process(pid, Signal::KILL).map_err(|e| NodeError::Signal {
            pid: info.pid,
            source: e.into(),
        })?;
        let _ = fs::remove_file(info_path(dir, &info.alias));
        return Ok(Stopped {
            alias: info.alias,
            pid: info.pid,
            killed: true,
        });
    }
    Err(NodeError::StopTimeout {
        alias: info.alias,
        pid: info.pid,
        seconds: timeout.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(alias: &str, pid: u32) -> RunInfo {
        RunInfo {
            alias: alias.into(),
            node_id: alias.into(),
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
            config: "/c.toml".into(),
            manager: "127.0.0.1:1".into(),
            state: "registered".into(),
            started_at: 1,
            log_file: None,
        }
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path(), "w1").unwrap();
        lock.publish(&info("w1", std::process::id())).unwrap();
        // flock locks belong to the open file description, so a second open in this same
        // process conflicts just as another process would.
        let err = RunLock::acquire(dir.path(), "w1").unwrap_err();
        assert_eq!(
            err.headline(),
            "Node with alias 'w1' already exists",
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        let nodes = list(dir.path());
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].info.alias, "w1");
        drop(lock);
        assert!(list(dir.path()).is_empty());
        RunLock::acquire(dir.path(), "w1").unwrap();
    }

    #[test]
    fn stale_run_files_are_ignored_and_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        // A run file whose agent died (no lock held), pointing at our own live PID: the
        // published design would signal it.
        fs::write(
            dir.path().join("ghost.json"),
            serde_json::to_vec(&info("ghost", std::process::id())).unwrap(),
        )
        .unwrap();
        let err = stop(dir.path(), Some("ghost"), Duration::from_millis(10), true).unwrap_err();
        assert!(matches!(err, NodeError::NotRunning { .. }), "{err}");
        assert!(
            !dir.path().join("ghost.json").exists(),
            "stale file cleaned"
        );
        let err = stop(dir.path(), None, Duration::from_millis(10), false).unwrap_err();
        assert!(err.to_string().contains("manta_node status"), "{err}");
    }

    #[test]
    fn held_lock_with_recycled_pid_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = RunLock::acquire(dir.path(), "w2").unwrap();
        let mut i = info("w2", std::process::id());
        i.start_ticks += 1; // as if our PID had been reused by another process
        _lock.publish(&i).unwrap();
        let err = stop(dir.path(), Some("w2"), Duration::from_millis(10), true).unwrap_err();
        assert!(matches!(err, NodeError::NotRunning { .. }), "{err}");
    }

    #[test]
    fn start_ticks_of_self_is_readable() {
        let t = process_start_ticks(std::process::id()).unwrap();
        assert!(t > 0);
        assert_eq!(process_start_ticks(u32::MAX), None);
    }

    #[test]
    fn ambiguous_stop_names_the_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(dir.path(), "a").unwrap();
        a.publish(&info("a", std::process::id())).unwrap();
        let b = RunLock::acquire(dir.path(), "b").unwrap();
        b.publish(&info("b", std::process::id())).unwrap();
        let err = stop(dir.path(), None, Duration::from_millis(10), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "several nodes are running (a, b); name the one to stop"
        );
    }
}
