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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{MemoryStore, Profile, TokenLookup};
    use crate::env::Env;

    fn s(v: &str) -> SecretString {
        SecretString::from(v)
    }

    /// A keyring that fails every write after the first `ok` ones: a keyring that stops
    /// working halfway through a login (quota, a revoked session keyring).
    struct FailsAfter {
        inner: MemoryStore,
        ok: std::sync::atomic::AtomicUsize,
    }

    impl SecretStore for FailsAfter {
        fn get(&self, service: &str, entry: &str) -> Result<Option<SecretString>, ConfigError> {
            self.inner.get(service, entry)
        }
        fn set(
            &self,
            service: &str,
            entry: &str,
            secret: &SecretString,
        ) -> Result<(), ConfigError> {
            use std::sync::atomic::Ordering;
            if self.ok.fetch_sub(1, Ordering::SeqCst) == 0 {
                self.ok.store(0, Ordering::SeqCst);
                return Err(ConfigError::Keyring {
                    message: "no matching entry found in secure storage".into(),
                });
            }
            self.inner.set(service, entry, secret)
        }
        fn delete(&self, service: &str, entry: &str) -> Result<bool, ConfigError> {
            self.inner.delete(service, entry)
        }
    }

    #[test]
    fn the_default_profile_keeps_the_seed_places_and_others_get_their_own() {
        let check = |profile: &str, section: &str, entry: &str, refresh: &str| {
            let slot = CredentialSlot::new(profile);
            assert_eq!(
                (slot.section(), slot.token_entry(), slot.refresh_entry()),
                (section.to_owned(), entry.to_owned(), refresh.to_owned())
            );
        };
        check("default", "auth", "api_token", "refresh_token");
        check(
            "staging",
            "profile.staging",
            "api_token@staging",
            "refresh_token@staging",
        );
    }

    #[cfg(unix)]
    #[test]
    fn file_credentials_of_two_profiles_live_side_by_side_in_one_0600_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path());
        let store = MemoryStore::new();
        let (dev, staging) = (CredentialSlot::new("dev"), CredentialSlot::new("staging"));
        let file = CredentialStore::File;
        save_credential(
            &home,
            Some(&store),
            file,
            &dev,
            &s("t-dev"),
            Some(&s("r-dev")),
            "dev:1",
        )
        .unwrap();
        save_credential(
            &home,
            Some(&store),
            file,
            &staging,
            &s("t-st"),
            None,
            "st:2",
        )
        .unwrap();
        let text = std::fs::read_to_string(home.credentials()).unwrap();
        assert_eq!(
            text,
            "[profile.dev]\ntoken = t-dev\nrefresh_token = r-dev\naddress = dev:1\n\n[profile.staging]\ntoken = t-st\naddress = st:2\n"
        );
        let mode = std::fs::metadata(home.credentials())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let d = read_file_credential(&home, &dev, false).unwrap().unwrap();
        assert_eq!(d.token.expose_secret(), "t-dev");
        assert_eq!(d.refresh_token.unwrap().expose_secret(), "r-dev");
        assert_eq!(d.address.as_deref(), Some("dev:1"));
        // Logging staging out leaves dev signed in.
        assert!(remove_file_credential(&home, &staging).unwrap());
        assert!(
            read_file_credential(&home, &staging, false)
                .unwrap()
                .is_none()
        );
        assert!(read_file_credential(&home, &dev, false).unwrap().is_some());
        // The seed's own `[auth] token` is the default profile's.
        std::fs::write(home.credentials(), "[auth]\ntoken = seed\n").unwrap();
        let seed = read_file_credential(&home, &CredentialSlot::new("default"), false)
            .unwrap()
            .unwrap();
        assert_eq!((seed.token.expose_secret(), seed.address), ("seed", None));
    }

    #[test]
    fn a_keyring_failing_halfway_keeps_neither_token() {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path());
        let slot = CredentialSlot::new("dev");
        for ok in 0..3 {
            let store = FailsAfter {
                inner: MemoryStore::new(),
                ok: ok.into(),
            };
            let r = save_credential(
                &home,
                Some(&store),
                CredentialStore::Keyring,
                &slot,
                &s("tok"),
                Some(&s("ref")),
                "dev:1",
            );
            assert!(r.is_err(), "write {ok} failed but the save succeeded");
            for entry in [
                slot.token_entry(),
                slot.refresh_entry(),
                slot.address_entry(),
            ] {
                assert!(
                    store.get(KEYRING_SERVICE, &entry).unwrap().is_none(),
                    "{entry} left behind after failing at write {ok}"
                );
            }
        }
        let store = MemoryStore::new();
        save_credential(
            &home,
            Some(&store),
            CredentialStore::Keyring,
            &slot,
            &s("tok"),
            Some(&s("ref")),
            "dev:1",
        )
        .unwrap();
        let c = read_keyring_credential(&store, &slot).unwrap().unwrap();
        assert_eq!(
            (c.token.expose_secret(), c.address.as_deref()),
            ("tok", Some("dev:1"))
        );
    }

    #[test]
    fn a_newer_login_is_never_shadowed_by_the_other_store() {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path());
        let store = MemoryStore::new();
        let slot = CredentialSlot::new("default");
        let save = |kind, token: &str| {
            save_credential(
                &home,
                Some(&store),
                kind,
                &slot,
                &s(token),
                None,
                "localhost:50052",
            )
            .unwrap()
        };
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let resolve = || {
            let mut l = TokenLookup::new(&env, &home);
            l.store = Some(&store);
            l.resolve().unwrap().token.expose_secret().to_owned()
        };
        save(CredentialStore::File, "old-file");
        save(CredentialStore::Keyring, "new-keyring");
        assert_eq!(resolve(), "new-keyring");
        save(CredentialStore::File, "newer-file");
        assert_eq!(resolve(), "newer-file");
        assert!(read_keyring_credential(&store, &slot).unwrap().is_none());
    }

    #[test]
    fn one_precedence_and_stored_credentials_stay_with_their_address() {
        let dir = tempfile::tempdir().unwrap();
        let home = MantaHome::at(dir.path());
        let store = MemoryStore::new();
        let staging = Profile {
            host: "staging.example".into(),
            token_env: Some("MANTA_STAGING_TOKEN".into()),
            ..Profile::default()
        };
        save_credential(
            &home,
            Some(&store),
            CredentialStore::Keyring,
            &CredentialSlot::new("staging"),
            &s("stored-staging"),
            Some(&s("refresh-staging")),
            &staging.address(),
        )
        .unwrap();
        let run = |pairs: &[(&str, &str)], name: &str, address: Option<&str>| {
            let env = Env::from_pairs(pairs.iter().copied());
            let mut l = TokenLookup::new(&env, &home);
            l.profile = Some(&staging);
            l.profile_name = Some(name);
            l.address = address.map(str::to_owned);
            l.store = Some(&store);
            l.resolve()
                .map(|r| (r.token.expose_secret().to_owned(), r.source.to_string()))
                .map_err(|e| e.to_string())
        };
        let both = [
            ("MANTA_STAGING_TOKEN", "from-var"),
            ("MANTA_TOKEN", "from-manta"),
        ];
        assert_eq!(run(&both, "staging", None).unwrap().0, "from-var");
        // MANTA_TOKEN is read even though the profile names token_env, and for any address.
        let manta = [("MANTA_TOKEN", "from-manta")];
        assert_eq!(
            run(&manta, "staging", Some("elsewhere:1")).unwrap().0,
            "from-manta"
        );
        let (token, source) = run(&[], "staging", None).unwrap();
        assert_eq!(token, "stored-staging");
        assert_eq!(source, "keyring manta/api_token@staging");
        // Another profile never gets it, and neither does another address.
        let err = run(&[], "dev", None).unwrap_err();
        assert!(err.contains("api_token@dev"), "{err}");
        let err = run(&[], "staging", Some("evil.example:50052")).unwrap_err();
        assert!(
            err.contains("not sent to evil.example:50052") && !err.contains("stored-staging"),
            "{err}"
        );
    }
}
