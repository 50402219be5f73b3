//! Editing and writing configuration files without expanding secrets: `${VAR}` references
//! and comments stay as written, files are replaced atomically with mode 0600.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use secrecy::{ExposeSecret as _, SecretString};
use toml_edit::{DocumentMut, Item, TableLike, Value};
use zeroize::Zeroizing;

use crate::error::{ConfigError, Location};
use crate::fsutil;
use crate::subst::{self, Mode};

/// A configuration file opened for editing, as written: references are not expanded.
///
/// Unquoted references such as `random_id = ${MANTA_RANDOM_ID}` are not valid TOML on their
/// own; they are held as placeholders while editing and written back verbatim.
pub struct ConfigDocument {
    doc: DocumentMut,
    prefix: String,
    refs: Vec<String>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigDocument {
    // The document may hold a literal secret, so only its origin is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDocument")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`ConfigDocument::set_secret`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretWrite {
    /// The secret was stored in the document (the file must stay 0600).
    Written,
    /// The key refers to an environment variable; it was left untouched so the file keeps
    /// `${VAR}` and the new secret must be delivered through that variable.
    KeptReference,
}

impl ConfigDocument {
    /// Opens a file for editing. A missing file is an error; nothing is created.
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let raw = fsutil::read_text(path, "create it with `manta_node config init`")?;
        let mut doc = Self::parse_at(&raw, Some(path))?;
        doc.path = Some(path.to_owned());
        Ok(doc)
    }

    /// Parses text for editing.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_at(text, None)
    }

    fn parse_at(raw: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let locate = |offset: usize| {
            let (line, column) = subst::line_col(raw, offset);
            Location {
                path: path.map(Path::to_owned),
                line,
                column,
                key: subst::key_at(raw, offset),
            }
        };
        let mut k = 0;
        let prefix = loop {
            let p = format!("__manta_ref{k}_");
            if !raw.contains(&p) {
                break p;
            }
            k += 1;
        };
        let mut refs = Vec::new();
        let s = subst::substitute(raw, Mode::Placeholder(&prefix), &mut refs).map_err(|e| {
            ConfigError::Substitution {
                location: locate(e.offset),
                kind: e.kind,
            }
        })?;
        let doc: DocumentMut = s.text.parse().map_err(|e: toml_edit::TomlError| {
            ConfigError::Syntax {
                location: locate(e.span().map_or(0, |r| s.map_offset(r.start))),
                // `message()` excludes the quoted source line that Display adds.
                message: e.message().trim().to_owned(),
                hints: vec![
                    "check quotes, brackets and `key = value` syntax on that line".to_owned(),
                ],
            }
        })?;
        Ok(Self {
            doc,
            prefix,
            refs,
            path: path.map(Path::to_owned),
        })
    }

    /// The string at a dotted key path as written in the file (references not expanded;
    /// an unquoted reference is returned as its `${...}` text).
    pub fn get_str(&self, key: &str) -> Option<String> {
        let value = self.value(key)?;
        let s = value.as_str()?;
        Some(
            self.placeholder_index(s)
                .map_or_else(|| s.to_owned(), |i| self.refs[i].clone()),
        )
    }

    /// Whether the value at `key` contains a `${...}` reference.
    pub fn is_reference(&self, key: &str) -> bool {
        self.value(key)
            .and_then(Value::as_str)
            .is_some_and(|s| self.placeholder_index(s).is_some() || contains_reference(s))
    }

    /// Sets a string. `$` is stored as `$$` so the value loads back literally.
    pub fn set_str(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set_value(key, Value::from(value.replace('$', "$$")))
    }

    /// Sets a boolean.
    pub fn set_bool(&mut self, key: &str, value: bool) -> Result<(), ConfigError> {
        self.set_value(key, Value::from(value))
    }

    /// Sets an integer.
    pub fn set_integer(&mut self, key: &str, value: i64) -> Result<(), ConfigError> {
        self.set_value(key, Value::from(value))
    }

    /// Sets the value to the reference `${variable}` (a quoted string).
    pub fn set_reference(&mut self, key: &str, variable: &str) -> Result<(), ConfigError> {
        if variable.is_empty()
            || variable.as_bytes()[0].is_ascii_digit()
            || !variable
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ConfigError::Edit {
                key: key.to_owned(),
                reason: format!("`{variable}` is not a variable name; use letters, digits and _"),
            });
        }
        self.set_value(key, Value::from(format!("${{{variable}}}")))
    }

    /// Stores a secret unless the key currently refers to an environment variable, in which
    /// case the reference is kept (see [`SecretWrite`]). Never expands anything.
    pub fn set_secret(
        &mut self,
        key: &str,
        secret: &SecretString,
    ) -> Result<SecretWrite, ConfigError> {
        if self.is_reference(key) {
            return Ok(SecretWrite::KeptReference);
        }
        let escaped = Zeroizing::new(secret.expose_secret().replace('$', "$$"));
        self.set_value(key, Value::from(escaped.as_str()))?;
        Ok(SecretWrite::Written)
    }

    /// Removes a key; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let (parents, last) = split_key(key);
        let mut table: &mut dyn TableLike = self.doc.as_table_mut();
        for part in parents {
            match table.get_mut(part).and_then(Item::as_table_like_mut) {
                Some(t) => table = t,
                None => return false,
            }
        }
        table.remove(last).is_some()
    }

    /// The text to write: the document with references restored exactly as written.
    pub fn render(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(self.doc.to_string());
        for (i, original) in self.refs.iter().enumerate().rev() {
            let placeholder = format!("\"{}{i}__\"", self.prefix);
            if text.contains(&placeholder) {
                text = Zeroizing::new(text.replace(&placeholder, original));
            }
        }
        text
    }

    /// Writes the document atomically (temp file, fsync, rename) with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        fsutil::write_atomic(path, self.render().as_bytes())
    }

    /// The file this document was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn placeholder_index(&self, s: &str) -> Option<usize> {
        s.strip_prefix(&self.prefix)?
            .strip_suffix("__")?
            .parse()
            .ok()
            .filter(|i| *i < self.refs.len())
    }

    fn value(&self, key: &str) -> Option<&Value> {
        let (parents, last) = split_key(key);
        let mut table: &dyn TableLike = self.doc.as_table();
        for part in parents {
            table = table.get(part)?.as_table_like()?;
        }
        table.get(last)?.as_value()
    }

    fn set_value(&mut self, key: &str, mut value: Value) -> Result<(), ConfigError> {
        let (parents, last) = split_key(key);
        if last.is_empty() {
            return Err(ConfigError::Edit {
                key: key.to_owned(),
                reason: "empty key".to_owned(),
            });
        }
        let mut table: &mut dyn TableLike = self.doc.as_table_mut();
        for part in parents {
            // Implicit: a new parent that only holds tables (`profiles` above
            // `[profiles.dev]`) is not written as an empty `[profiles]` header.
            let item = table.entry(part).or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                Item::Table(t)
            });
            table = item.as_table_like_mut().ok_or_else(|| ConfigError::Edit {
                key: key.to_owned(),
                reason: format!("`{part}` is not a table; edit the file by hand"),
            })?;
        }
        match table.get_mut(last) {
            Some(Item::Value(old)) => {
                // Keep the comment and spacing around the old value.
                *value.decor_mut() = old.decor().clone();
                *old = value;
            }
            Some(Item::None) | None => {
                table.insert(last, Item::Value(value));
            }
            Some(_) => {
                return Err(ConfigError::Edit {
                    key: key.to_owned(),
                    reason: "it is a table, not a value".to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn split_key(key: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or("");
    (parts, last)
}

/// Whether string content holds a `${` reference (a `$$` escape is not one).
fn contains_reference(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'$', b'$') => i += 2,
            (b'$', b'{') => return true,
            _ => i += 1,
        }
    }
    false
}

/// How `config init` writes the token.
pub enum TemplateToken {
    /// `secured_token = "${VAR}"` (recommended).
    EnvReference(String),
    /// The token itself (the file is written 0600).
    Literal(SecretString),
}

impl std::fmt::Debug for TemplateToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EnvReference(v) => f.debug_tuple("EnvReference").field(v).finish(),
            Self::Literal(_) => f.write_str("Literal([REDACTED])"),
        }
    }
}

/// The content of a new node configuration (`manta_node config init`).
#[derive(Debug)]
pub struct NodeTemplate {
    /// `metadata.name`, usually the file stem.
    pub name: String,
    /// How the token is written.
    pub token: TemplateToken,
    /// `identity.alias`, omitted when `None`.
    pub alias: Option<String>,
    /// `identity.random_id`.
    pub random_id: bool,
    /// `network.manager_host`.
    pub manager_host: String,
    /// `network.manager_port`.
    pub manager_port: u16,
    /// `security.use_tls`.
    pub use_tls: bool,
    /// `security.cert_folder`.
    pub cert_folder: String,
}

impl NodeTemplate {
    /// A template with the published defaults and `secured_token = "${MANTA_NODE_TOKEN}"`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            token: TemplateToken::EnvReference("MANTA_NODE_TOKEN".to_owned()),
            alias: None,
            random_id: false,
            manager_host: "localhost".to_owned(),
            manager_port: 50051,
            use_tls: false,
            cert_folder: "~/.manta/certs".to_owned(),
        }
    }

    /// The file text, with comments explaining each key.
    pub fn render(&self, now: SystemTime) -> Zeroizing<String> {
        let q = |s: &str| {
            format!(
                "\"{}\"",
                subst::escape_basic(&s.replace('$', "$$")).as_str()
            )
        };
        let mut out = Zeroizing::new(String::with_capacity(1024));
        out.push_str("# Manta node configuration. Values may use ${VAR}, ${VAR:default} and $$.\n");
        out.push_str("# This file may hold a secret: keep it mode 600.\n\n[identity]\n");
        out.push_str(
            "# JWT for registration; prefer an environment variable over the token itself.\n",
        );
        match &self.token {
            TemplateToken::EnvReference(var) => {
                out.push_str(&format!("secured_token = \"${{{var}}}\"\n"));
            }
            TemplateToken::Literal(token) => {
                let escaped = subst::escape_basic(&token.expose_secret().replace('$', "$$"));
                out.push_str("secured_token = \"");
                out.push_str(&escaped);
                out.push_str("\"\n");
            }
        }
        if let Some(alias) = &self.alias {
            out.push_str(&format!("alias = {}\n", q(alias)));
        }
        out.push_str(&format!("random_id = {}\n\n[network]\n", self.random_id));
        out.push_str(&format!(
            "manager_host = {}\nmanager_port = {}\n\n",
            q(&self.manager_host),
            self.manager_port
        ));
        out.push_str(&format!(
            "[security]\nuse_tls = {}\ncert_folder = {}\nverify_ssl = true\njwt_refresh_buffer_seconds = 300\n\n",
            self.use_tls,
            q(&self.cert_folder)
        ));
        out.push_str("[logging]\nlevel = \"INFO\"\nlog_to_file = true\nlog_to_console = false\n\n");
        out.push_str(&format!(
            "[metadata]\nname = {}\ncreated_at = \"{}\"\nversion = \"1.0.0\"\n",
            q(&self.name),
            crate::node::iso8601(now)
        ));
        out
    }

    /// Writes the template atomically with mode 0600; refuses to replace an existing file
    /// unless `overwrite` is set.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<(), ConfigError> {
        if !overwrite && path.exists() {
            return Err(ConfigError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        fsutil::write_atomic(path, self.render(SystemTime::now()).as_bytes())
    }
}

/// Imports an existing node configuration (`manta_node config init FILE.toml`): copies the
/// text exactly as written, references unexpanded, to `dest` atomically with mode 0600.
/// The source must parse as TOML (references allowed); `dest` is not replaced unless
/// `overwrite` is set.
pub fn import_node_config(src: &Path, dest: &Path, overwrite: bool) -> Result<(), ConfigError> {
    let raw = fsutil::read_text(src, "check the path of the file to import")?;
    ConfigDocument::parse_at(&raw, Some(src))?;
    if !overwrite && dest.exists() {
        return Err(ConfigError::AlreadyExists {
            path: dest.to_owned(),
        });
    }
    fsutil::write_atomic(dest, raw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;
    use crate::node::NodeConfig;
    use crate::node::tests::jwt;

    const SEED: &str = "# production node\n[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"  # from vault\nalias = \"prod-worker-${HOSTNAME}\"\nrandom_id = ${MANTA_RANDOM_ID}\n\n[network]\nmanager_port = ${PORT:50051}\n";

    #[test]
    fn save_after_load_writes_references_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.toml");
        std::fs::write(&path, SEED).unwrap();
        let token = jwt(Some(1_900_000_000));
        let env = Env::from_pairs([
            ("MANTA_NODE_TOKEN", token.as_str()),
            ("HOSTNAME", "h1"),
            ("MANTA_RANDOM_ID", "false"),
        ]);
        let loaded = NodeConfig::load(&path, &env).unwrap();
        assert_eq!(
            loaded.value.identity.alias.as_deref(),
            Some("prod-worker-h1")
        );

        let mut doc = ConfigDocument::open(&path).unwrap();
        doc.set_str("identity.alias", "renamed").unwrap();
        let renewed = SecretString::from(jwt(Some(2_000_000_000)));
        assert_eq!(
            doc.set_secret("identity.secured_token", &renewed).unwrap(),
            SecretWrite::KeptReference
        );
        doc.save(&path).unwrap();

        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.contains("secured_token = \"${MANTA_NODE_TOKEN}\"  # from vault"),
            "{written}"
        );
        assert!(
            written.contains("random_id = ${MANTA_RANDOM_ID}"),
            "{written}"
        );
        assert!(
            written.contains("manager_port = ${PORT:50051}"),
            "{written}"
        );
        assert!(written.starts_with("# production node\n"), "{written}");
        assert!(written.contains("alias = \"renamed\""), "{written}");
        assert!(
            !written.contains(&token) && !written.contains("eyJ"),
            "{written}"
        );
        let again = NodeConfig::load(&path, &env).unwrap().value;
        assert_eq!(again.identity.alias.as_deref(), Some("renamed"));
        #[cfg(unix)]
        assert_eq!(fsutil::mode_of(&path).unwrap(), Some(0o600));
    }

    #[test]
    fn literal_token_is_replaced_and_dollar_values_load_back_literally() {
        let mut doc = ConfigDocument::parse("[identity]\nsecured_token = \"old\"\n").unwrap();
        let new = jwt(None);
        assert_eq!(
            doc.set_secret("identity.secured_token", &SecretString::from(new.clone()))
                .unwrap(),
            SecretWrite::Written
        );
        doc.set_str("metadata.description", "costs $5 ${NOT_A_REF}")
            .unwrap();
        doc.set_bool("identity.random_id", true).unwrap();
        let text = doc.render();
        let cfg =
            NodeConfig::from_toml(&text, &Env::from_pairs::<[(&str, &str); 0], _, _>([])).unwrap();
        assert_eq!(cfg.identity.secured_token.unwrap().expose_secret(), new);
        assert_eq!(cfg.metadata.description, "costs $5 ${NOT_A_REF}");
        assert!(cfg.identity.random_id);
        assert!(doc.remove("identity.random_id"));
        assert!(!doc.remove("identity.random_id"));
        assert!(doc.set_integer("identity.secured_token.x", 1).is_err());
        assert!(format!("{doc:?}").find(&new).is_none());
    }

    #[test]
    fn get_str_and_is_reference_read_the_file_as_written() {
        let doc = ConfigDocument::parse(SEED).unwrap();
        assert_eq!(
            doc.get_str("identity.secured_token").as_deref(),
            Some("${MANTA_NODE_TOKEN}")
        );
        assert_eq!(
            doc.get_str("identity.random_id").as_deref(),
            Some("${MANTA_RANDOM_ID}")
        );
        assert!(doc.is_reference("identity.random_id"));
        assert!(doc.is_reference("identity.alias"));
        assert!(!doc.is_reference("network.nothing"));
        let err = ConfigDocument::parse("[identity\nsecured_token = \"eyJsecret\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1:") && !err.contains("eyJsecret"), "{err}");
    }

    #[test]
    fn import_copies_verbatim_with_0600_and_refuses_bad_or_existing_targets() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("published.toml");
        std::fs::write(&src, SEED).unwrap();
        let dest = dir.path().join("nodes/prod.toml");
        import_node_config(&src, &dest, false).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), SEED);
        #[cfg(unix)]
        assert_eq!(fsutil::mode_of(&dest).unwrap(), Some(0o600));
        let err = import_node_config(&src, &dest, false).unwrap_err();
        assert!(matches!(err, ConfigError::AlreadyExists { .. }), "{err}");
        import_node_config(&src, &dest, true).unwrap();

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[identity\n").unwrap();
        let other = dir.path().join("nodes/other.toml");
        let err = import_node_config(&bad, &other, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.toml:1:"), "{err}");
        assert!(!other.exists());
    }

    #[test]
    fn malformed_text_found_by_fuzzing_is_an_error_not_a_panic() {
        // toml_edit 0.23 panicked ("all items have spans") on this input; 0.25 reports it.
        for text in ["=={=\u{19}9a\u{0}\r.", "[a]\nb = ${X", "x = \"${}\""] {
            assert!(ConfigDocument::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn init_template_loads_validates_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes/worker.toml");
        let mut t = NodeTemplate::new("worker");
        t.alias = Some("gpu-1".to_owned());
        t.write(&path, false).unwrap();
        let err = t.write(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::AlreadyExists { .. }), "{err}");
        let token = jwt(None);
        let env = Env::from_pairs([("MANTA_NODE_TOKEN", token.as_str())]);
        let cfg = NodeConfig::load(&path, &env).unwrap().value;
        assert_eq!(cfg.metadata.name, "worker");
        assert!(cfg.validate(SystemTime::now()).problems.is_empty());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("${MANTA_NODE_TOKEN}")
        );

        t.token = TemplateToken::Literal(SecretString::from(token.clone()));
        t.write(&path, true).unwrap();
        let cfg = NodeConfig::load(&path, &Env::from_pairs::<[(&str, &str); 0], _, _>([])).unwrap();
        assert!(cfg.holds_literal_secret);
        assert!(!format!("{t:?}").contains(&token));
    }
}
