//! Client side: profiles in `MANTA_HOME/config.toml` and the token lookup chain
//! (explicit, environment, `credentials.ini`, OS keyring).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::ConfigError;
use crate::fsutil;
use crate::load::{self, LoadOptions};
use crate::locations::MantaHome;

/// The environment variable naming the profile to use.
pub const MANTA_ENV: &str = "MANTA_ENV";
/// The environment variable holding the token when the profile names none.
pub const MANTA_TOKEN: &str = "MANTA_TOKEN";
/// Keyring service name (as the published SDK's documentation uses).
pub const KEYRING_SERVICE: &str = "manta";
/// Keyring entry name.
pub const KEYRING_ENTRY: &str = "api_token";
/// Keyring entry holding the session refresh token that `manta login` stores beside the
/// access token (service [`KEYRING_SERVICE`]).
pub const KEYRING_REFRESH_ENTRY: &str = "refresh_token";

/// `MANTA_HOME/config.toml`: named connection profiles.
///
/// ```toml
/// default_profile = "dev"
///
/// [profiles.dev]
/// host = "dev.manta.io"
/// port = 50052
/// token_env = "MANTA_DEV_TOKEN"
///
/// [profiles.prod]
/// host = "platform.manta.io"
/// port = 443
/// token_env = "MANTA_PROD_TOKEN"
/// cert_folder = "/etc/manta/certs"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The profile used when neither a name nor `MANTA_ENV` is given.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One environment to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Manager host (default `localhost`).
    pub host: String,
    /// User API port (default 50052, as the published SDK).
    pub port: u16,
    /// Environment variable holding this profile's token (replaces `MANTA_TOKEN`).
    pub token_env: Option<String>,
    /// Folder with `ca.crt`, `client.crt`, `client.key`; TLS is used when set.
    pub cert_folder: Option<PathBuf>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 50052,
            token_env: None,
            cert_folder: None,
        }
    }
}

impl Profile {
    /// The variable the token chain reads first: `token_env`, else `MANTA_TOKEN`.
    pub fn token_variable(&self) -> &str {
        self.token_env.as_deref().unwrap_or(MANTA_TOKEN)
    }

    /// Its manager address, `host:port` (see [`crate::manager_address`]).
    pub fn address(&self) -> String {
        crate::credentials::manager_address(&self.host, self.port)
    }
}

/// A profile chosen by [`ClientConfig::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedProfile {
    /// Its name (`default` for the built-in profile).
    pub name: String,
    /// Its settings.
    pub profile: Profile,
}

impl ClientConfig {
    /// Loads `home/config.toml`. A missing file is an empty configuration (nothing is
    /// created); every other problem is an error.
    pub fn load(home: &MantaHome, env: &Env) -> Result<Self, ConfigError> {
        let path = home.client_config();
        match load::load_file::<ClientConfig>(&path, env, &LoadOptions::new()) {
            Ok(loaded) => Ok(loaded.value),
            Err(ConfigError::NotFound { .. }) => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Chooses a profile: `name` if given, else `MANTA_ENV`, else `default_profile`, else
    /// a profile named `default`, else the built-in defaults (localhost:50052). A name that
    /// does not exist is an error listing the available ones (`path` is for that message).
    pub fn select(
        &self,
        name: Option<&str>,
        env: &Env,
        path: &Path,
    ) -> Result<SelectedProfile, ConfigError> {
        let from_env = env.get_non_empty(MANTA_ENV);
        let wanted = name
            .map(str::to_owned)
            .or_else(|| from_env.as_ref().map(|v| v.to_string()))
            .or_else(|| self.default_profile.clone());
        match wanted {
            Some(name) => match self.profiles.get(&name) {
                Some(p) => Ok(SelectedProfile {
                    name,
                    profile: p.clone(),
                }),
                None => {
                    let available: Vec<String> = self.profiles.keys().cloned().collect();
                    let suggestion = load::suggest(&name, available.iter().map(String::as_str));
                    Err(ConfigError::ProfileNotFound {
                        name,
                        path: path.to_owned(),
                        available,
                        suggestion,
                    })
                }
            },
            None => Ok(SelectedProfile {
                name: "default".to_owned(),
                profile: self.profiles.get("default").cloned().unwrap_or_default(),
            }),
        }
    }
}

/// Where the token came from. Never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// Passed explicitly (command-line option or API argument).
    Explicit,
    /// An environment variable.
    Environment {
        /// Its name.
        variable: String,
    },
    /// A credential stored in a section of a credentials file (`[auth]` for the default
    /// profile, `[profile.NAME]` for the others).
    CredentialsFile {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
    },
    /// The OS keyring.
    Keyring {
        /// Service name.
        service: String,
        /// Entry name.
        entry: String,
    },
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit => f.write_str("explicit token"),
            Self::Environment { variable } => write!(f, "environment variable {variable}"),
            Self::CredentialsFile { path, section } => {
                write!(f, "credentials file {} [{section}]", path.display())
            }
            Self::Keyring { service, entry } => write!(f, "keyring {service}/{entry}"),
        }
    }
}

/// A token and where it came from. `Debug` shows the source only.
pub struct ResolvedToken {
    /// The token.
    pub token: SecretString,
    /// Its source, safe to log.
    pub source: TokenSource,
    /// The session refresh token stored beside a stored token (never for a token from the
    /// environment or an explicit one).
    pub refresh_token: Option<SecretString>,
    /// Where a stored token is stored (`None` for a token from the environment or an
    /// explicit one, which manta never rewrites or removes).
    pub stored_in: Option<crate::credentials::CredentialStore>,
}

impl fmt::Debug for ResolvedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedToken")
            .field("token", &"[REDACTED]")
            .field("source", &self.source)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// A secret store keyed by service and entry: the OS keyring in production
/// (`OsKeyring`, feature `keyring`), [`MemoryStore`] in tests.
pub trait SecretStore: Send + Sync {
    /// The secret, `Ok(None)` when there is no such entry.
    fn get(&self, service: &str, entry: &str) -> Result<Option<SecretString>, ConfigError>;
    /// Stores or replaces the secret.
    fn set(&self, service: &str, entry: &str, secret: &SecretString) -> Result<(), ConfigError>;
    /// Deletes the entry; `Ok(false)` when there was none.
    fn delete(&self, service: &str, entry: &str) -> Result<bool, ConfigError>;
}

/// An in-process [`SecretStore`], for tests and for callers without a keyring.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<(String, String), SecretString>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), SecretString>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation
        // is a single insert/remove), so a poisoned lock is safe to reuse.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, service: &str, entry: &str) -> Result<Option<SecretString>, ConfigError> {
        Ok(self
            .lock()
            .get(&(service.to_owned(), entry.to_owned()))
            .cloned())
    }

    fn set(&self, service: &str, entry: &str, secret: &SecretString) -> Result<(), ConfigError> {
        self.lock()
            .insert((service.to_owned(), entry.to_owned()), secret.clone());
        Ok(())
    }

    fn delete(&self, service: &str, entry: &str) -> Result<bool, ConfigError> {
        Ok(self
            .lock()
            .remove(&(service.to_owned(), entry.to_owned()))
            .is_some())
    }
}

/// The OS keyring through the `keyring` crate's Linux kernel keyutils backend (no system
/// library needed). Keyutils entries live in the kernel and do not survive a reboot.
#[cfg(feature = "keyring")]
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyring;

#[cfg(feature = "keyring")]
impl OsKeyring {
    fn entry(service: &str, entry: &str) -> Result<keyring::Entry, ConfigError> {
        keyring::Entry::new(service, entry).map_err(keyring_error)
    }
}

#[cfg(feature = "keyring")]
fn keyring_error(e: keyring::Error) -> ConfigError {
    // keyring's messages describe the platform failure, never the stored secret.
    ConfigError::Keyring {
        message: e.to_string(),
    }
}

#[cfg(feature = "keyring")]
impl SecretStore for OsKeyring {
    fn get(&self, service: &str, entry: &str) -> Result<Option<SecretString>, ConfigError> {
        match Self::entry(service, entry)?.get_password() {
            Ok(p) => Ok(Some(SecretString::from(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    fn set(&self, service: &str, entry: &str, secret: &SecretString) -> Result<(), ConfigError> {
        Self::entry(service, entry)?
            .set_password(secret.expose_secret())
            .map_err(keyring_error)
    }

    fn delete(&self, service: &str, entry: &str) -> Result<bool, ConfigError> {
        match Self::entry(service, entry)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(keyring_error(e)),
        }
    }
}

/// Inputs of the client token lookup chain; see [`TokenLookup::resolve`].
pub struct TokenLookup<'a> {
    /// A token given explicitly (an API argument); wins over everything.
    pub explicit: Option<SecretString>,
    /// The selected profile as configured (before `--host`/`--port` overrides): its
    /// `token_env` is read first, and its address is where a stored credential that
    /// recorded none came from.
    pub profile: Option<&'a Profile>,
    /// The selected profile's name, whose stored credential is used (`default` when
    /// `None`); a credential stored for another profile is never returned.
    pub profile_name: Option<&'a str>,
    /// Where the token will be sent (`host:port`, see [`crate::manager_address`]) when that
    /// differs from the profile's own address; a stored credential that came from another
    /// address is then not returned. `None`: the profile's own address.
    pub address: Option<String>,
    /// The environment.
    pub env: &'a Env,
    /// Where `credentials.ini` lives.
    pub home: &'a MantaHome,
    /// The keyring; `None` skips it.
    pub store: Option<&'a dyn SecretStore>,
    /// Accept a credentials file readable by group or others.
    pub danger_allow_insecure_permissions: bool,
}

impl fmt::Debug for TokenLookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLookup")
            .field("explicit", &self.explicit.as_ref().map(|_| "[REDACTED]"))
            .field("profile", &self.profile)
            .field("profile_name", &self.profile_name)
            .field("address", &self.address)
            .field("home", &self.home)
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl<'a> TokenLookup<'a> {
    /// A lookup with no explicit token, no profile and no keyring.
    pub fn new(env: &'a Env, home: &'a MantaHome) -> Self {
        Self {
            explicit: None,
            profile: None,
            profile_name: None,
            address: None,
            env,
            home,
            store: None,
            danger_allow_insecure_permissions: false,
        }
    }

    /// Finds the token, in one order for every caller: explicit, then the profile's
    /// `token_env` variable, then `MANTA_TOKEN` (empty counts as unset), then the
    /// credential `manta login` stored for this profile: its section of `credentials.ini`
    /// (refused unless mode 0600), else its keyring entries. A stored credential is used
    /// only for the manager address it came from; a token from a variable is the user's
    /// explicit choice and is used for any address. Reports which source was used.
    pub fn resolve(self) -> Result<ResolvedToken, ConfigError> {
        let from = |token, source| ResolvedToken {
            token,
            source,
            refresh_token: None,
            stored_in: None,
        };
        if let Some(token) = self.explicit {
            if token.expose_secret().is_empty() {
                return Err(ConfigError::EmptyExplicitToken);
            }
            return Ok(from(token, TokenSource::Explicit));
        }
        let mut variables: Vec<&str> = Vec::with_capacity(2);
        if let Some(v) = self.profile.and_then(|p| p.token_env.as_deref()) {
            variables.push(v);
        }
        if !variables.contains(&MANTA_TOKEN) {
            variables.push(MANTA_TOKEN);
        }
        let mut tried = Vec::new();
        for variable in &variables {
            if let Some(value) = self.env.get_non_empty(variable) {
                let source = TokenSource::Environment {
                    variable: (*variable).to_owned(),
                };
                return Ok(from(SecretString::from(value.as_str()), source));
            }
            tried.push(format!("environment variable {variable}"));
        }
        let variable = variables[0].to_owned();

        let name = self
            .profile_name
            .unwrap_or(crate::credentials::DEFAULT_PROFILE);
        let slot = crate::credentials::CredentialSlot::new(name);
        let own = self.profile.cloned().unwrap_or_default().address();
        let target = self.address.clone().unwrap_or_else(|| own.clone());
        let mut found = crate::credentials::read_file_credential(
            self.home,
            &slot,
            self.danger_allow_insecure_permissions,
        )?;
        if found.is_none() {
            tried.push(format!(
                "{} [{}] token",
                self.home.credentials().display(),
                slot.section()
            ));
            if let Some(store) = self.store {
                let place = format!("keyring {KEYRING_SERVICE}/{}", slot.token_entry());
                match crate::credentials::read_keyring_credential(store, &slot) {
                    Ok(Some(c)) => found = Some(c),
                    Ok(None) => tried.push(place),
                    // An unusable keyring (no session keyring in cron or CI) is one more
                    // place without a token, not a reason to fail a command that has none.
                    Err(ConfigError::Keyring { message }) => {
                        tried.push(format!("{place} (unusable: {message})"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(c) = found {
            let came_from = c.address.clone().unwrap_or(own);
            if came_from == target {
                return Ok(ResolvedToken {
                    token: c.token,
                    source: c.source,
                    refresh_token: c.refresh_token,
                    stored_in: Some(c.store),
                });
            }
            // Never hand a credential to a manager other than the one that issued it: an
            // access token and a session refresh token are as good as a password there.
            tried.push(format!(
                "the credential stored for profile {name} in {} (it came from {came_from}; not sent to {target})",
                c.source
            ));
        }
        Err(ConfigError::NoToken { tried, variable })
    }
}

/// Reads `[auth] token` from a credentials file (INI: `[section]`, `key = value` or
/// `key: value`, `;` and `#` comments, optional quotes). `Ok(None)` when the file or the
/// key is missing. A file holding a token must be 0600 unless `allow_insecure`.
pub fn read_credentials_token(
    path: &Path,
    allow_insecure: bool,
) -> Result<Option<SecretString>, ConfigError> {
    read_auth_key(path, TOKEN_KEY, allow_insecure)
}

/// Reads `[auth] refresh_token` (the session's refresh token stored by `manta login`) from
/// a credentials file, with the same rules as [`read_credentials_token`]: `Ok(None)` when
/// the file or the key is missing, and a file holding it must be 0600 unless
/// `allow_insecure`.
pub fn read_credentials_refresh_token(
    path: &Path,
    allow_insecure: bool,
) -> Result<Option<SecretString>, ConfigError> {
    read_auth_key(path, REFRESH_TOKEN_KEY, allow_insecure)
}

/// The `[auth]` key of the access token in `credentials.ini`.
const TOKEN_KEY: &str = "token";
/// The `[auth]` key of the session refresh token in `credentials.ini`.
const REFRESH_TOKEN_KEY: &str = "refresh_token";

fn read_auth_key(
    path: &Path,
    key: &str,
    allow_insecure: bool,
) -> Result<Option<SecretString>, ConfigError> {
    let text = match fsutil::read_text(path, "") {
        Ok(t) => t,
        Err(ConfigError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let value = find_key(&text, AUTH_SECTION, key);
    if value.is_some() {
        fsutil::check_secret_file(path, allow_insecure)?;
    }
    Ok(value.map(SecretString::from))
}

/// Whether `line` (trimmed) is a `[section]` header, and which.
fn section_of(line: &str) -> Option<&str> {
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .map(str::trim)
}

/// The key of a `key = value` or `key: value` line.
fn key_of(line: &str) -> Option<&str> {
    line.split_once(['=', ':']).map(|(k, _)| k.trim())
}

/// The `[auth]` section: the seed's own place, which holds the `default` profile's
/// credential.
pub(crate) const AUTH_SECTION: &str = "auth";

/// The value of `wanted` in `[section]` of INI text (quotes removed); `None` when missing
/// or empty.
pub(crate) fn find_key<'t>(text: &'t str, wanted_section: &str, wanted: &str) -> Option<&'t str> {
    let mut in_auth = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(';') || line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(section) = section_of(line) {
            in_auth = section == wanted_section;
            continue;
        }
        if !in_auth {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            continue;
        };
        if key.trim() == wanted {
            let v = value.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

/// Sets (`Some`) or removes (`None`) keys of the `[auth]` section of `home/credentials.ini`
/// in one atomic 0600 write, keeping every other line. A key set is written where its old
/// line was, else at the end of `[auth]` (created when missing). Returns the path and
/// whether the text changed. A save always writes (so the file ends up 0600 even when its
/// text is unchanged); a removal that changes nothing writes nothing, and never creates
/// the file.
fn update_auth(
    home: &MantaHome,
    changes: &[(&str, Option<&SecretString>)],
) -> Result<(PathBuf, bool), ConfigError> {
    update_section(home, AUTH_SECTION, changes)
}

/// As [`update_auth`] for any `[section]` (created at the end of the file when missing).
pub(crate) fn update_section(
    home: &MantaHome,
    wanted_section: &str,
    changes: &[(&str, Option<&SecretString>)],
) -> Result<(PathBuf, bool), ConfigError> {
    let path = home.credentials();
    let old = match fsutil::read_text(&path, "") {
        Ok(t) => t,
        Err(ConfigError::NotFound { .. }) => Zeroizing::new(String::new()),
        Err(e) => return Err(e),
    };
    let extra: usize = changes
        .iter()
        .map(|(k, v)| k.len() + v.map_or(0, |v| v.expose_secret().len()) + 4)
        .sum();
    let mut out = Zeroizing::new(String::with_capacity(old.len() + extra + 8));
    let mut written = vec![false; changes.len()];
    let push_entry = |out: &mut Zeroizing<String>, key: &str, value: &SecretString| {
        out.push_str(key);
        out.push_str(" = ");
        out.push_str(value.expose_secret());
        out.push('\n');
    };
    let write_pending = |out: &mut Zeroizing<String>, written: &mut [bool]| {
        for ((key, value), done) in changes.iter().zip(written.iter_mut()) {
            if let (Some(value), false) = (value, *done) {
                push_entry(out, key, value);
                *done = true;
            }
        }
    };
    let mut in_auth = false;
    for line in old.lines() {
        let trimmed = line.trim();
        if let Some(section) = section_of(trimmed) {
            if in_auth {
                write_pending(&mut out, &mut written);
            }
            in_auth = section == wanted_section;
        } else if in_auth
            && !trimmed.starts_with(';')
            && !trimmed.starts_with('#')
            && let Some(key) = key_of(trimmed)
            && let Some(i) = changes.iter().position(|(k, _)| *k == key)
        {
            // The old line is replaced by the new value (once) or dropped (removal, or a
            // duplicate of a key already written).
            if let (Some(value), false) = (changes[i].1, written[i]) {
                push_entry(&mut out, key, value);
                written[i] = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let pending = changes
        .iter()
        .zip(&written)
        .any(|((_, v), done)| v.is_some() && !done);
    if pending {
        if !in_auth {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push('[');
            out.push_str(wanted_section);
            out.push_str("]\n");
        }
        write_pending(&mut out, &mut written);
    }
    let changed = out.as_str() != old.as_str();
    if changed || changes.iter().any(|(_, v)| v.is_some()) {
        fsutil::write_atomic(&path, out.as_bytes())?;
    }
    Ok((path, changed))
}

/// Writes `[auth] token` to `home/credentials.ini` atomically with mode 0600, keeping the
/// file's other lines (a previous token line is replaced).
pub fn save_credentials_token(
    home: &MantaHome,
    token: &SecretString,
) -> Result<PathBuf, ConfigError> {
    update_auth(home, &[(TOKEN_KEY, Some(token))]).map(|(path, _)| path)
}

/// Writes `[auth] refresh_token` (a session's refresh token) to `home/credentials.ini`
/// atomically with mode 0600, keeping the file's other lines, as
/// [`save_credentials_token`] does for the access token.
pub fn save_credentials_refresh_token(
    home: &MantaHome,
    refresh_token: &SecretString,
) -> Result<PathBuf, ConfigError> {
    update_auth(home, &[(REFRESH_TOKEN_KEY, Some(refresh_token))]).map(|(path, _)| path)
}

/// Writes both `[auth] token` and `[auth] refresh_token` to `home/credentials.ini` in one
/// atomic 0600 write, so a renewed session is never stored half (the old refresh token
/// works only once).
pub fn save_credentials_session(
    home: &MantaHome,
    token: &SecretString,
    refresh_token: &SecretString,
) -> Result<PathBuf, ConfigError> {
    update_auth(
        home,
        &[
            (TOKEN_KEY, Some(token)),
            (REFRESH_TOKEN_KEY, Some(refresh_token)),
        ],
    )
    .map(|(path, _)| path)
}

/// Removes `[auth] token` from `home/credentials.ini` (atomically, mode 0600, keeping the
/// other lines, the refresh token included). `Ok(false)` when there was none; a missing
/// file stays missing.
pub fn remove_credentials_token(home: &MantaHome) -> Result<bool, ConfigError> {
    update_auth(home, &[(TOKEN_KEY, None)]).map(|(_, changed)| changed)
}

/// Removes `[auth] refresh_token` from `home/credentials.ini` (atomically, mode 0600,
/// keeping the other lines). `Ok(false)` when there was none; a missing file stays missing.
pub fn remove_credentials_refresh_token(home: &MantaHome) -> Result<bool, ConfigError> {
    update_auth(home, &[(REFRESH_TOKEN_KEY, None)]).map(|(_, changed)| changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILES: &str = "default_profile = \"dev\"\n[profiles.dev]\nhost = \"dev.manta.io\"\ntoken_env = \"MANTA_DEV_TOKEN\"\n[profiles.prod]\nhost = \"platform.manta.io\"\nport = 443\ntoken_env = \"MANTA_PROD_TOKEN\"\ncert_folder = \"/etc/manta/certs\"\n";

    fn home_with(files: &[(&str, &str, u32)]) -> (tempfile::TempDir, MantaHome) {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path());
        for (name, text, mode) in files {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            #[cfg(not(unix))]
            let _ = mode;
        }
        (dir, home)
    }

    #[test]
    fn profile_selection_order() {
        let (_d, home) = home_with(&[("config.toml", PROFILES, 0o644)]);
        let none = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let cfg = ClientConfig::load(&home, &none).unwrap();
        let path = home.client_config();
        assert_eq!(cfg.select(None, &none, &path).unwrap().name, "dev");
        assert_eq!(cfg.select(None, &none, &path).unwrap().profile.port, 50052);
        let env = Env::from_pairs([(MANTA_ENV, "prod")]);
        let prod = cfg.select(None, &env, &path).unwrap();
        assert_eq!((prod.name.as_str(), prod.profile.port), ("prod", 443));
        assert_eq!(prod.profile.token_variable(), "MANTA_PROD_TOKEN");
        assert_eq!(cfg.select(Some("dev"), &env, &path).unwrap().name, "dev");
        let err = cfg
            .select(Some("prd"), &none, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("(profiles: dev, prod); did you mean `prod`?"),
            "{err}"
        );
    }

    #[test]
    fn missing_client_config_gives_builtin_profile_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path().join("none"));
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let cfg = ClientConfig::load(&home, &env).unwrap();
        let sel = cfg.select(None, &env, &home.client_config()).unwrap();
        assert_eq!(
            (sel.profile.host.as_str(), sel.profile.port),
            ("localhost", 50052)
        );
        assert!(!home.root().exists());
        let (_d, home) = home_with(&[("config.toml", "[profiles.dev]\nhots = \"x\"\n", 0o644)]);
        let err = ClientConfig::load(&home, &env).unwrap_err().to_string();
        assert!(
            err.contains("did you mean `host`?") && err.contains(":2:1"),
            "{err}"
        );
    }

    #[test]
    fn token_chain_order_and_sources() {
        let (_d, home) = home_with(&[(
            "credentials.ini",
            "; saved\n[other]\ntoken = no\n[auth]\ntoken = \"from-file\"\n",
            0o600,
        )]);
        let store = MemoryStore::new();
        store
            .set(
                KEYRING_SERVICE,
                KEYRING_ENTRY,
                &SecretString::from("from-keyring"),
            )
            .unwrap();
        let env = Env::from_pairs([(MANTA_TOKEN, "from-env"), ("MANTA_PROD_TOKEN", "from-prod")]);
        let prod = Profile {
            token_env: Some("MANTA_PROD_TOKEN".into()),
            ..Profile::default()
        };

        let lookup = |explicit: Option<&str>,
                      profile: Option<&Profile>,
                      env: &Env,
                      store: Option<&dyn SecretStore>| {
            let mut l = TokenLookup::new(env, &home);
            l.explicit = explicit.map(SecretString::from);
            l.profile = profile;
            l.store = store;
            l.resolve()
        };
        let r = lookup(Some("given"), Some(&prod), &env, Some(&store)).unwrap();
        assert_eq!(
            (r.token.expose_secret(), &r.source),
            ("given", &TokenSource::Explicit)
        );
        let r = lookup(None, None, &env, Some(&store)).unwrap();
        assert_eq!(r.token.expose_secret(), "from-env");
        assert_eq!(r.source.to_string(), "environment variable MANTA_TOKEN");
        let r = lookup(None, Some(&prod), &env, Some(&store)).unwrap();
        assert_eq!(r.token.expose_secret(), "from-prod");
        let empty_env = Env::from_pairs([(MANTA_TOKEN, "")]);
        let r = lookup(None, None, &empty_env, Some(&store)).unwrap();
        assert_eq!(r.token.expose_secret(), "from-file");
        assert!(matches!(r.source, TokenSource::CredentialsFile { .. }));
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("from-file"), "{dbg}");
        assert!(matches!(
            lookup(Some(""), None, &env, None),
            Err(ConfigError::EmptyExplicitToken)
        ));

        let (_d2, bare) = home_with(&[]);
        let mut l = TokenLookup::new(&empty_env, &bare);
        l.store = Some(&store);
        let r = l.resolve().unwrap();
        assert_eq!(r.token.expose_secret(), "from-keyring");
        assert_eq!(r.source.to_string(), "keyring manta/api_token");

        store.delete(KEYRING_SERVICE, KEYRING_ENTRY).unwrap();
        let mut l = TokenLookup::new(&empty_env, &bare);
        l.store = Some(&store);
        let err = l.resolve().unwrap_err().to_string();
        assert!(
            err.contains("MANTA_TOKEN")
                && err.contains("credentials.ini")
                && err.contains("keyring"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_credentials_file_is_refused_with_chmod() {
        let (_d, home) = home_with(&[("credentials.ini", "[auth]\ntoken = secret-tok\n", 0o644)]);
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let err = TokenLookup::new(&env, &home)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("secret-tok"),
            "{err}"
        );
        let mut l = TokenLookup::new(&env, &home);
        l.danger_allow_insecure_permissions = true;
        assert_eq!(l.resolve().unwrap().token.expose_secret(), "secret-tok");
        // A readable file without a token holds no secret and is fine.
        let (_d, home) = home_with(&[("credentials.ini", "[other]\nx = 1\n", 0o644)]);
        assert!(matches!(
            TokenLookup::new(&env, &home).resolve(),
            Err(ConfigError::NoToken { .. })
        ));
    }

    #[test]
    fn save_credentials_keeps_other_lines_and_is_0600() {
        let (_d, home) = home_with(&[(
            "credentials.ini",
            "# mine\n[auth]\ntoken = old\nuser = me\n[x]\ny = 1\n",
            0o644,
        )]);
        save_credentials_token(&home, &SecretString::from("new-tok")).unwrap();
        let text = std::fs::read_to_string(home.credentials()).unwrap();
        assert_eq!(
            text,
            "# mine\n[auth]\ntoken = new-tok\nuser = me\n[x]\ny = 1\n"
        );
        assert_eq!(
            read_credentials_token(&home.credentials(), false)
                .unwrap()
                .unwrap()
                .expose_secret(),
            "new-tok"
        );
        let (_d, fresh) = home_with(&[]);
        save_credentials_token(&fresh, &SecretString::from("t")).unwrap();
        assert_eq!(
            std::fs::read_to_string(fresh.credentials()).unwrap(),
            "[auth]\ntoken = t\n"
        );
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn refresh_token_is_saved_beside_the_token_and_read_back_separately() {
        let (_d, home) = home_with(&[(
            "credentials.ini",
            "# mine\n[auth]\ntoken = old\nuser = me\n[x]\ny = 1\n",
            0o644,
        )]);
        let path = home.credentials();
        save_credentials_refresh_token(&home, &SecretString::from("mrt_1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\n[auth]\ntoken = old\nuser = me\nrefresh_token = mrt_1\n[x]\ny = 1\n"
        );
        assert_eq!(mode(&path), 0o600);
        let read = |allow| read_credentials_refresh_token(&path, allow);
        assert_eq!(read(false).unwrap().unwrap().expose_secret(), "mrt_1");
        // The two keys never stand in for each other.
        assert_eq!(
            read_credentials_token(&path, false)
                .unwrap()
                .unwrap()
                .expose_secret(),
            "old"
        );

        // Both at once, in place, still 0600.
        save_credentials_session(
            &home,
            &SecretString::from("tok-2"),
            &SecretString::from("mrt_2"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\n[auth]\ntoken = tok-2\nuser = me\nrefresh_token = mrt_2\n[x]\ny = 1\n"
        );
        assert_eq!(mode(&path), 0o600);
        // Saving the access token alone leaves the refresh token where it is.
        save_credentials_token(&home, &SecretString::from("tok-3")).unwrap();
        assert_eq!(read(false).unwrap().unwrap().expose_secret(), "mrt_2");

        assert!(remove_credentials_refresh_token(&home).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\n[auth]\ntoken = tok-3\nuser = me\n[x]\ny = 1\n"
        );
        assert_eq!(mode(&path), 0o600);
        assert!(read(false).unwrap().is_none());
        assert!(!remove_credentials_refresh_token(&home).unwrap());

        // A fresh home: the section is created; removing from a missing file creates nothing.
        let (_d, fresh) = home_with(&[]);
        assert!(!remove_credentials_refresh_token(&fresh).unwrap());
        assert!(!fresh.credentials().exists());
        save_credentials_session(&fresh, &SecretString::from("t"), &SecretString::from("r"))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(fresh.credentials()).unwrap(),
            "[auth]\ntoken = t\nrefresh_token = r\n"
        );
        assert_eq!(mode(&fresh.credentials()), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn removing_the_token_keeps_the_other_lines_and_writes_0600() {
        let (_d, home) = home_with(&[(
            "credentials.ini",
            "# mine\n[auth]\ntoken = t\nrefresh_token = r\n[x]\ny = 1\n",
            0o600,
        )]);
        let path = home.credentials();
        assert!(remove_credentials_token(&home).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\n[auth]\nrefresh_token = r\n[x]\ny = 1\n"
        );
        assert_eq!(mode(&path), 0o600);
        assert!(read_credentials_token(&path, false).unwrap().is_none());
        assert!(!remove_credentials_token(&home).unwrap());

        let (_d, fresh) = home_with(&[]);
        assert!(!remove_credentials_token(&fresh).unwrap());
        assert!(!fresh.credentials().exists());
    }

    #[cfg(unix)]
    #[test]
    fn readable_file_holding_a_refresh_token_is_refused_like_the_token() {
        for file_mode in [0o640, 0o604] {
            let (_d, home) = home_with(&[(
                "credentials.ini",
                "[auth]\nrefresh_token = \"mrt_secret\"\n",
                file_mode,
            )]);
            let err = read_credentials_refresh_token(&home.credentials(), false)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("chmod 600") && !err.contains("mrt_secret"),
                "{err}"
            );
            assert_eq!(
                read_credentials_refresh_token(&home.credentials(), true)
                    .unwrap()
                    .unwrap()
                    .expose_secret(),
                "mrt_secret"
            );
        }
    }

    #[cfg(feature = "keyring")]
    #[test]
    fn os_keyring_round_trip_through_kernel_keyutils() {
        // A unique service name so parallel runs and real entries are never touched.
        let service = format!("manta-config-test-{}", std::process::id());
        let store = OsKeyring;
        assert!(store.get(&service, KEYRING_ENTRY).unwrap().is_none());
        store
            .set(&service, KEYRING_ENTRY, &SecretString::from("kr-token"))
            .unwrap();
        assert_eq!(
            store
                .get(&service, KEYRING_ENTRY)
                .unwrap()
                .unwrap()
                .expose_secret(),
            "kr-token"
        );
        assert!(store.delete(&service, KEYRING_ENTRY).unwrap());
        assert!(!store.delete(&service, KEYRING_ENTRY).unwrap());
    }
}
