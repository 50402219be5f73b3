//! Credentials stored by `manta login`, one per profile, each bound to the manager address
//! it came from, in the credentials file or the OS keyring.
//!
//! The `default` profile keeps the seed's own places, so files and entries written by the
//! seed's Python snippets stay readable: `[auth] token` in `credentials.ini` and the keyring
//! entry `manta`/`api_token`. Any other profile `NAME` uses `[profile.NAME]` and the entries
//! `manta`/`api_token@NAME`, `manta`/`refresh_token@NAME` and `manta`/`address@NAME`.

use secrecy::{ExposeSecret as _, SecretString};
use std::fmt;

use crate::client::{
    AUTH_SECTION, KEYRING_ENTRY, KEYRING_REFRESH_ENTRY, KEYRING_SERVICE, SecretStore, TokenSource,
    find_key, update_section,
};
use crate::error::ConfigError;
use crate::fsutil;
use crate::locations::MantaHome;

/// The name of the profile whose credential lives in the seed's places (`[auth]`,
/// `manta`/`api_token`): the built-in profile, and a profile explicitly named `default`.
pub const DEFAULT_PROFILE: &str = "default";

/// Keyring entry (service [`KEYRING_SERVICE`]) holding the manager address a keyring
/// credential came from; `address@NAME` for profile `NAME`.
pub const KEYRING_ADDRESS_ENTRY: &str = "address";

const TOKEN_KEY: &str = "token";
const REFRESH_TOKEN_KEY: &str = "refresh_token";
const ADDRESS_KEY: &str = "address";

/// The address a credential is bound to: `host:port`, host in lower case (host names are
/// case-insensitive, and the comparison must not be fooled by `LOCALHOST`).
pub fn manager_address(host: &str, port: u16) -> String {
    format!("{}:{port}", host.trim().to_ascii_lowercase())
}

/// Where `manta login` puts a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialStore {
    /// The OS keyring.
    Keyring,
    /// `credentials.ini`, mode 0600.
    File,
}

/// The places of one profile's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSlot {
    profile: String,
}

impl CredentialSlot {
    /// The slot of `profile`.
    pub fn new(profile: &str) -> Self {
        Self {
            profile: profile.to_owned(),
        }
    }

    /// The profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    fn is_default(&self) -> bool {
        self.profile == DEFAULT_PROFILE
    }

    /// The `credentials.ini` section: `auth` for the default profile, else `profile.NAME`.
    pub fn section(&self) -> String {
        if self.is_default() {
            AUTH_SECTION.to_owned()
        } else {
            format!("profile.{}", self.profile)
        }
    }

    fn entry(&self, base: &str) -> String {
        if self.is_default() {
            base.to_owned()
        } else {
            format!("{base}@{}", self.profile)
        }
    }

    /// The keyring entry of the access token.
    pub fn token_entry(&self) -> String {
        self.entry(KEYRING_ENTRY)
    }

    /// The keyring entry of the session refresh token.
    pub fn refresh_entry(&self) -> String {
        self.entry(KEYRING_REFRESH_ENTRY)
    }

    /// The keyring entry of the manager address.
    pub fn address_entry(&self) -> String {
        self.entry(KEYRING_ADDRESS_ENTRY)
    }
}

/// A credential stored for one profile. `Debug` shows no secret.
pub struct StoredCredential {
    /// The access token.
    pub token: SecretString,
    /// The session refresh token stored beside it, if any.
    pub refresh_token: Option<SecretString>,
    /// The manager address (`host:port`) it came from; `None` for credentials written
    /// before addresses were recorded (such as the seed's own `[auth] token`).
    pub address: Option<String>,
    /// Where it is stored.
    pub source: TokenSource,
    /// Which store that is.
    pub store: CredentialStore,
}

impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("address", &self.address)
            .field("source", &self.source)
            .finish()
    }
}

fn non_empty(s: Option<SecretString>) -> Option<SecretString> {
    s.filter(|s| !s.expose_secret().is_empty())
}

/// The credential of `slot` in `home/credentials.ini`, if it holds one (a file holding one
/// must be 0600 unless `allow_insecure`).
pub fn read_file_credential(
    home: &MantaHome,
    slot: &CredentialSlot,
    allow_insecure: bool,
) -> Result<Option<StoredCredential>, ConfigError> {
    let path = home.credentials();
    let text = match fsutil::read_text(&path, "") {
        Ok(t) => t,
        Err(ConfigError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let section = slot.section();
    let get = |key| find_key(&text, &section, key);
    let Some(token) = get(TOKEN_KEY) else {
        return Ok(None);
    };
    fsutil::check_secret_file(&path, allow_insecure)?;
    Ok(Some(StoredCredential {
        token: SecretString::from(token),
        refresh_token: get(REFRESH_TOKEN_KEY).map(SecretString::from),
        address: get(ADDRESS_KEY).map(str::to_owned),
        source: TokenSource::CredentialsFile { path, section },
        store: CredentialStore::File,
    }))
}

/// The credential of `slot` in the keyring, if it holds one.
pub fn read_keyring_credential(
    store: &dyn SecretStore,
    slot: &CredentialSlot,
) -> Result<Option<StoredCredential>, ConfigError> {
    let entry = slot.token_entry();
    let Some(token) = non_empty(store.get(KEYRING_SERVICE, &entry)?) else {
        return Ok(None);
    };
    let refresh_token = non_empty(store.get(KEYRING_SERVICE, &slot.refresh_entry())?);
    let address = non_empty(store.get(KEYRING_SERVICE, &slot.address_entry())?)
        .map(|a| a.expose_secret().to_owned());
    Ok(Some(StoredCredential {
        token,
        refresh_token,
        address,
        source: TokenSource::Keyring {
            service: KEYRING_SERVICE.to_owned(),
            entry,
        },
        store: CredentialStore::Keyring,
    }))
}

/// Checks that `store` can really keep a secret here, by writing, reading back and deleting
/// a probe entry. The Linux kernel keyring refuses writes in processes whose session
/// keyring they may not use (cron, CI runners, `docker exec`, ssh sessions without
/// `pam_keyinit`), and the `keyring` crate reports that refusal as "no matching entry";
/// probing first means a login never writes half a credential there.
pub fn probe_keyring(store: &dyn SecretStore) -> Result<(), ConfigError> {
    let entry = format!("probe@{}", std::process::id());
    let probe = SecretString::from("manta-keyring-probe");
    let unusable = |why: String| ConfigError::Keyring {
        message: format!("the keyring is not usable in this process ({why})"),
    };
    store
        .set(KEYRING_SERVICE, &entry, &probe)
        .map_err(|e| unusable(format!("writing failed: {e}")))?;
    let read = store.get(KEYRING_SERVICE, &entry);
    let _ = store.delete(KEYRING_SERVICE, &entry);
    match read {
        Ok(Some(s)) if s.expose_secret() == probe.expose_secret() => Ok(()),
        Ok(_) => Err(unusable(
            "a written entry could not be read back".to_owned(),
        )),
        Err(e) => Err(unusable(format!("reading failed: {e}"))),
    }
}

/// Stores the credential of `slot` (access token, session refresh token when there is one,
/// and the address it came from) in `kind`, all of it or nothing, and removes what the other
/// store held for the slot so an older credential can never shadow this one. A missing
/// refresh token removes one left from an earlier session. Returns where it went.
pub fn save_credential(
    home: &MantaHome,
    store: Option<&dyn SecretStore>,
    kind: CredentialStore,
    slot: &CredentialSlot,
    token: &SecretString,
    refresh_token: Option<&SecretString>,
    address: &str,
) -> Result<TokenSource, ConfigError> {
    match kind {
        CredentialStore::File => {
            let address = SecretString::from(address);
            let (path, _) = update_section(
                home,
                &slot.section(),
                &[
                    (TOKEN_KEY, Some(token)),
                    (REFRESH_TOKEN_KEY, refresh_token),
                    (ADDRESS_KEY, Some(&address)),
                ],
            )?;
            if let Some(store) = store {
                // The keyring may be unusable here (the reason to use the file); an entry
                // that cannot be removed cannot be read either.
                let _ = remove_keyring_credential(store, slot);
            }
            Ok(TokenSource::CredentialsFile {
                path,
                section: slot.section(),
            })
        }
        CredentialStore::Keyring => {
            let store = store.ok_or_else(|| ConfigError::Keyring {
                message: "no keyring is available to this program".to_owned(),
            })?;
            save_keyring_credential(store, slot, token, refresh_token, address)?;
            remove_file_credential(home, slot)?;
            Ok(TokenSource::Keyring {
                service: KEYRING_SERVICE.to_owned(),
                entry: slot.token_entry(),
            })
        }
    }
}

fn save_keyring_credential(
    store: &dyn SecretStore,
    slot: &CredentialSlot,
    token: &SecretString,
    refresh_token: Option<&SecretString>,
    address: &str,
) -> Result<(), ConfigError> {
    let address = SecretString::from(address);
    let entries = [
        (slot.refresh_entry(), refresh_token),
        (slot.token_entry(), Some(token)),
        (slot.address_entry(), Some(&address)),
    ];
    let mut written: Vec<&str> = Vec::with_capacity(entries.len());
    for (entry, value) in &entries {
        let result = match value {
            Some(v) => store.set(KEYRING_SERVICE, entry, v),
            None => store.delete(KEYRING_SERVICE, entry).map(|_| ()),
        };
        if let Err(e) = result {
            // Both tokens or neither: what this call wrote is taken back, so no command
            // later finds a refresh token without its access token (or the reverse).
            for done in written {
                let _ = store.delete(KEYRING_SERVICE, done);
            }
            return Err(e);
        }
        if value.is_some() {
            written.push(entry);
        }
    }
    Ok(())
}

/// Removes the credential of `slot` from `credentials.ini` (one atomic 0600 write, other
/// lines kept); `Ok(false)` when it held none.
pub fn remove_file_credential(
    home: &MantaHome,
    slot: &CredentialSlot,
) -> Result<bool, ConfigError> {
    update_section(
        home,
        &slot.section(),
        &[
            (TOKEN_KEY, None),
            (REFRESH_TOKEN_KEY, None),
            (ADDRESS_KEY, None),
        ],
    )
    .map(|(_, changed)| changed)
}

/// Removes the credential of `slot` from the keyring; `Ok(false)` when it held none.
pub fn remove_keyring_credential(
    store: &dyn SecretStore,
    slot: &CredentialSlot,
) -> Result<bool, ConfigError> {
    let mut any = false;
    for entry in [
        slot.token_entry(),
        slot.refresh_entry(),
        slot.address_entry(),
    ] {
        any |= store.delete(KEYRING_SERVICE, &entry)?;
    }
    Ok(any)
}

/// Where a credential of `slot` stored in `kind` is named in messages.
pub fn place_name(home: &MantaHome, kind: CredentialStore, slot: &CredentialSlot) -> String {
    match kind {
        CredentialStore::File => {
            format!("{} [{}]", home.credentials().display(), slot.section())
        }
        CredentialStore::Keyring => format!("keyring {KEYRING_SERVICE}/{}", slot.token_entry()),
    }
}
