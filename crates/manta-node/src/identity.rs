//! The seed's identity model: alias, node id (the alias, or a fresh random id on each start)
//! and the per-node identity state file that keeps the manager's node token apart from the
//! configuration.
//!
//! The published agent wrote the node token over `secured_token` in the shared config file,
//! so several nodes on one file stole each other's identity and `${VAR}` references were
//! replaced by secrets (`manta-platform.md` §11.4, §11.10). Here the config is never
//! written; the node token lives in `MANTA_HOME/nodes/state/<node_id>.json` (0600).

use std::fmt;
use std::path::{Path, PathBuf};

use manta_config::{IdentityConfig, MantaHome};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::NodeError;
use crate::fsutil;

/// Longest alias accepted (longer names cannot be file names on every system once
/// suffixed; the seed recommends fewer than 50 characters, which validation warns about).
pub const MAX_ALIAS_LEN: usize = 64;

/// Whether `alias` uses only letters, digits, `-` and `_` and is 1 to
/// [`MAX_ALIAS_LEN`] characters long (the seed's "Alias format" rule, which also makes the
/// alias safe as a file name base).
pub fn is_valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= MAX_ALIAS_LEN
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The machine's host name (`uname -n`).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// An alias made from a host name: characters outside letters, digits, `-` and `_` become
/// `-` (so `web.example.com` gives `web-example-com`), cut to [`MAX_ALIAS_LEN`]; `node`
/// when nothing usable is left.
pub fn alias_from_hostname(host: &str) -> String {
    let mut alias: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_ALIAS_LEN)
        .collect();
    let trimmed = alias.trim_matches('-').len();
    if trimmed == 0 {
        alias = "node".to_owned();
    }
    alias
}

/// A fresh random node id: 32 lowercase hex characters (128 bits), the form the manager
/// uses for ids.
pub fn random_node_id() -> Result<String, NodeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        NodeError::io(
            "/dev/urandom",
            std::io::Error::other(format!("no random source: {e}")),
        )
    })?;
    Ok(hex::encode(bytes))
}

/// Who this agent is for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Human-friendly name, sent to the manager and used as the log file name base.
    pub alias: String,
    /// The node id asked for: the alias when `random_id = false`, else a fresh random id.
    pub node_id: String,
    /// Whether the id is ephemeral.
    pub random_id: bool,
}

impl NodeIdentity {
    /// Applies the seed's rules: `alias_override` (command line) first, then the
    /// configured alias, else the host name; node id = alias unless `random_id`.
    ///
    /// # Errors
    /// [`NodeError::InvalidAlias`] when the chosen alias breaks the alias rule.
    pub fn resolve(
        identity: &IdentityConfig,
        alias_override: Option<&str>,
        host: &str,
    ) -> Result<Self, NodeError> {
        let alias = match alias_override.or(identity.alias.as_deref()) {
            Some(a) if !a.is_empty() => a.to_owned(),
            _ => alias_from_hostname(host),
        };
        if !is_valid_alias(&alias) {
            return Err(NodeError::InvalidAlias { alias });
        }
        let node_id = if identity.random_id {
            random_node_id()?
        } else {
            alias.clone()
        };
        Ok(Self {
            alias,
            node_id,
            random_id: identity.random_id,
        })
    }
}

/// `MANTA_HOME/nodes/state`, where identity state files live.
pub fn state_dir(home: &MantaHome) -> PathBuf {
    home.nodes_dir().join("state")
}

/// The manager's answer to a registration, kept between runs so a node resumes its
/// identity: one file per node id, mode 0600, written atomically.
pub struct IdentityState {
    /// The node id the manager assigned (the token's `node_id` claim).
    pub node_id: String,
    /// The alias registered.
    pub alias: String,
    /// The manager's node token.
    pub node_token: SecretString,
    /// The cluster the node joined, when the manager says.
    pub cluster_id: Option<String>,
    /// `host:port` of the manager that issued the token: a token from another manager is
    /// not presented.
    pub manager: String,
    /// Whether the id was random (such state is removed on a clean stop).
    pub random_id: bool,
    /// When the node registered, unix seconds.
    pub registered_at: u64,
}

impl fmt::Debug for IdentityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityState")
            .field("node_id", &self.node_id)
            .field("alias", &self.alias)
            .field("node_token", &"[REDACTED]")
            .field("cluster_id", &self.cluster_id)
            .field("manager", &self.manager)
            .field("random_id", &self.random_id)
            .field("registered_at", &self.registered_at)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    node_id: String,
    alias: String,
    node_token: SecretString,
    #[serde(default)]
    cluster_id: Option<String>,
    manager: String,
    #[serde(default)]
    random_id: bool,
    #[serde(default)]
    registered_at: u64,
}

impl IdentityState {
    /// The state file of `node_id` under `dir`.
    pub fn path(dir: &Path, node_id: &str) -> PathBuf {
        dir.join(format!("{node_id}.json"))
    }

    /// Reads a state file; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// [`NodeError::InsecureState`] when group or others may read it,
    /// [`NodeError::CorruptState`] when it is not a state file, [`NodeError::Io`] otherwise.
    pub fn load(path: &Path) -> Result<Option<Self>, NodeError> {
        let text = match std::fs::read(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::io(path, e)),
        };
        let mode = fsutil::mode_of(path)?;
        if mode & 0o077 != 0 {
            return Err(NodeError::InsecureState {
                path: path.to_owned(),
                mode,
            });
        }
        // serde_json's messages quote offending input only for invalid escapes and unknown
        // keys, never a string value, so the token cannot leak through `detail`.
        let parsed: StateFile =
            serde_json::from_slice(&text).map_err(|e| NodeError::CorruptState {
                path: path.to_owned(),
                detail: format!("line {} column {}: {}", e.line(), e.column(), category(&e)),
            })?;
        Ok(Some(Self {
            node_id: parsed.node_id,
            alias: parsed.alias,
            node_token: parsed.node_token,
            cluster_id: parsed.cluster_id,
            manager: parsed.manager,
            random_id: parsed.random_id,
            registered_at: parsed.registered_at,
        }))
    }

    /// Writes the state atomically with mode 0600.
    ///
    /// # Errors
    /// [`NodeError::Io`] when the directory or file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), NodeError> {
        let mut text = Zeroizing::new(String::with_capacity(1024));
        text.push_str("{\n  \"node_id\": ");
        push_json(&mut text, &self.node_id);
        text.push_str(",\n  \"alias\": ");
        push_json(&mut text, &self.alias);
        text.push_str(",\n  \"node_token\": ");
        push_json(&mut text, self.node_token.expose_secret());
        text.push_str(",\n  \"cluster_id\": ");
        match &self.cluster_id {
            Some(c) => push_json(&mut text, c),
            None => text.push_str("null"),
        }
        text.push_str(",\n  \"manager\": ");
        push_json(&mut text, &self.manager);
        text.push_str(&format!(
            ",\n  \"random_id\": {},\n  \"registered_at\": {}\n}}\n",
            self.random_id, self.registered_at
        ));
        fsutil::write_atomic(path, text.as_bytes())
    }
}

/// Appends `s` as a JSON string. Written by hand so that no intermediate `String` holding
/// the token escapes the zeroized buffer.
fn push_json(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "missing or unexpected field",
        serde_json::error::Category::Eof => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(alias: Option<&str>, random_id: bool) -> IdentityConfig {
        IdentityConfig {
            secured_token: None,
            alias: alias.map(str::to_owned),
            random_id,
        }
    }

    #[test]
    fn alias_and_node_id_rules() {
        let fixed = NodeIdentity::resolve(&identity(Some("worker-1"), false), None, "h").unwrap();
        assert_eq!(
            (fixed.alias.as_str(), fixed.node_id.as_str()),
            ("worker-1", "worker-1")
        );
        let over = NodeIdentity::resolve(&identity(Some("a"), false), Some("b"), "h").unwrap();
        assert_eq!(over.node_id, "b");
        let host = NodeIdentity::resolve(&identity(None, false), None, "web.example.com").unwrap();
        assert_eq!(host.alias, "web-example-com");
        let r1 = NodeIdentity::resolve(&identity(Some("eph"), true), None, "h").unwrap();
        let r2 = NodeIdentity::resolve(&identity(Some("eph"), true), None, "h").unwrap();
        assert_eq!(r1.alias, "eph");
        assert_eq!(r1.node_id.len(), 32);
        assert!(r1.node_id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(r1.node_id, r2.node_id, "a fresh id on each start");
        let err =
            NodeIdentity::resolve(&identity(None, false), Some("bad alias"), "h").unwrap_err();
        assert!(err.to_string().contains("letters, digits"), "{err}");
        assert!(NodeIdentity::resolve(&identity(None, false), Some(&"a".repeat(65)), "h").is_err());
        assert_eq!(alias_from_hostname("..."), "node");
        assert!(!hostname().is_empty());
    }

    fn sample(token: &str) -> IdentityState {
        IdentityState {
            node_id: "worker-1".into(),
            alias: "worker-1".into(),
            node_token: SecretString::from(token),
            cluster_id: Some("c1".into()),
            manager: "127.0.0.1:5".into(),
            random_id: false,
            registered_at: 7,
        }
    }

    #[test]
    fn state_round_trips_privately_and_hides_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = IdentityState::path(dir.path(), "worker-1");
        assert!(IdentityState::load(&path).unwrap().is_none());
        sample("eyJ.secret\"tok").save(&path).unwrap();
        assert_eq!(fsutil::mode_of(&path).unwrap(), 0o600);
        let back = IdentityState::load(&path).unwrap().unwrap();
        assert_eq!(back.node_token.expose_secret(), "eyJ.secret\"tok");
        assert_eq!(back.cluster_id.as_deref(), Some("c1"));
        assert_eq!(back.registered_at, 7);
        assert!(!format!("{back:?}").contains("secret"));
    }

    #[test]
    fn state_refuses_open_permissions_and_garbage() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = IdentityState::path(dir.path(), "n");
        sample("eyJ.secret").save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = IdentityState::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        std::fs::write(&path, "{\"node_token\": \"eyJ.leak\"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = IdentityState::load(&path).unwrap_err().to_string();
        assert!(err.contains("delete it") && !err.contains("leak"), "{err}");
    }
}
