//! Where configuration lives: `MANTA_HOME` (default `~/.manta`), node configurations by
//! name or by path, the client configuration and the credentials file.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::ConfigError;

/// The Manta home directory: `$MANTA_HOME`, else `$HOME/.manta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MantaHome {
    root: PathBuf,
}

impl MantaHome {
    /// Resolves the home from `MANTA_HOME`, then `HOME`. Creates nothing.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        if let Some(home) = env.get_non_empty("MANTA_HOME") {
            return Ok(Self {
                root: PathBuf::from(home.as_str()),
            });
        }
        let home = env.get_non_empty("HOME").ok_or(ConfigError::NoHome)?;
        Ok(Self {
            root: Path::new(home.as_str()).join(".manta"),
        })
    }

    /// A home at an explicit directory (tests, `--home` options).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `nodes/`, holding `NAME.toml` node configurations.
    pub fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    /// `nodes/NAME.toml`, after checking that `name` is a plain name.
    pub fn node_config(&self, name: &str) -> Result<PathBuf, ConfigError> {
        check_name(name)?;
        Ok(self.nodes_dir().join(format!("{name}.toml")))
    }

    /// `config.toml`, the client profiles.
    pub fn client_config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `credentials.ini`, the client token file.
    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials.ini")
    }

    /// `certs/`, the default certificate folder.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// Names of the node configurations in `nodes/`, sorted. A missing directory is an
    /// empty list (nothing is created).
    pub fn list_node_configs(&self) -> Result<Vec<String>, ConfigError> {
        let dir = self.nodes_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ConfigError::Read { path: dir, source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".toml")?;
                check_name(stem).ok()?;
                e.file_type().ok()?.is_file().then(|| stem.to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// A node configuration named on the command line: `production` or
/// `/etc/manta/config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeConfigRef {
    /// A name, resolved to `MANTA_HOME/nodes/NAME.toml`.
    Name(String),
    /// A path, used as is.
    Path(PathBuf),
}

impl NodeConfigRef {
    /// A path if the argument contains a path separator or ends in `.toml`, else a name.
    pub fn parse(arg: &str) -> Self {
        if arg.contains('/') || arg.contains(std::path::MAIN_SEPARATOR) || arg.ends_with(".toml") {
            Self::Path(PathBuf::from(arg))
        } else {
            Self::Name(arg.to_owned())
        }
    }

    /// The file this refers to.
    pub fn resolve(&self, home: &MantaHome) -> Result<PathBuf, ConfigError> {
        match self {
            Self::Name(name) => home.node_config(name),
            Self::Path(path) => Ok(path.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manta_home_overrides_home() {
        let env = Env::from_pairs([("HOME", "/home/u"), ("MANTA_HOME", "/srv/manta")]);
        assert_eq!(
            MantaHome::from_env(&env).unwrap().root(),
            Path::new("/srv/manta")
        );
        let env = Env::from_pairs([("HOME", "/home/u"), ("MANTA_HOME", "")]);
        let home = MantaHome::from_env(&env).unwrap();
        assert_eq!(
            home.node_config("prod").unwrap(),
            Path::new("/home/u/.manta/nodes/prod.toml")
        );
        assert_eq!(
            home.credentials(),
            Path::new("/home/u/.manta/credentials.ini")
        );
        let err = MantaHome::from_env(&Env::from_pairs::<[(&str, &str); 0], _, _>([])).unwrap_err();
        assert!(err.to_string().contains("set MANTA_HOME or HOME"));
    }

    #[test]
    fn names_and_paths() {
        let home = MantaHome::at("/h");
        assert_eq!(
            NodeConfigRef::parse("prod"),
            NodeConfigRef::Name("prod".into())
        );
        assert_eq!(
            NodeConfigRef::parse("/etc/manta/config.toml")
                .resolve(&home)
                .unwrap(),
            Path::new("/etc/manta/config.toml")
        );
        assert_eq!(
            NodeConfigRef::parse("local.toml"),
            NodeConfigRef::Path("local.toml".into())
        );
        let err = home
            .node_config("../../etc/passwd")
            .unwrap_err()
            .to_string();
        assert!(err.contains("letters, digits"), "{err}");
        assert!(home.node_config("").is_err());
    }

    #[test]
    fn listing_ignores_other_files_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path().join("m"));
        assert!(home.list_node_configs().unwrap().is_empty());
        assert!(!home.root().exists(), "listing must not create the home");
        std::fs::create_dir_all(home.nodes_dir().join("instances")).unwrap();
        for f in ["b.toml", "a.toml", "notes.txt", "bad name.toml"] {
            std::fs::write(home.nodes_dir().join(f), "").unwrap();
        }
        assert_eq!(home.list_node_configs().unwrap(), ["a", "b"]);
    }
}
