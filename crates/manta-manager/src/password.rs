//! Password hashing with argon2id, and the checks a new password must pass.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A hash of a random password, verified against when the user does not exist, so that an
/// unknown user name costs the same time as a wrong password and names do not leak.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let random = SecretString::from(crate::store::new_id());
    hash_password(&random).ok()
});

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes) and a random salt.
pub fn hash_password(password: &SecretString) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::PasswordHash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::PasswordHash(e.to_string()))
}

/// Checks a password against a stored PHC string; `None` (no such user or no password) always
/// fails after the same amount of work.
pub fn verify_password(password: &SecretString, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(stored) => (stored, true),
        None => match DUMMY_HASH.as_deref() {
            Some(dummy) => (dummy, false),
            None => return false,
        },
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Refuses passwords that are too short or blank.
pub fn check_new_password(password: &SecretString) -> Result<()> {
    let p = password.expose_secret();
    if p.chars().count() < MIN_PASSWORD_LEN || p.trim().is_empty() {
        return Err(Error::Invalid {
            field: "password",
            reason: format!("use at least {MIN_PASSWORD_LEN} characters"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let pw = SecretString::from("correct horse");
        let hash = hash_password(&pw).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&pw, Some(&hash)));
        assert!(!verify_password(
            &SecretString::from("wrong horse"),
            Some(&hash)
        ));
    }

    #[test]
    fn same_password_gets_distinct_salts() {
        let pw = SecretString::from("correct horse");
        assert_ne!(hash_password(&pw).unwrap(), hash_password(&pw).unwrap());
    }

    #[test]
    fn missing_or_corrupt_hash_never_verifies() {
        let pw = SecretString::from("anything-at-all");
        assert!(!verify_password(&pw, None));
        assert!(!verify_password(&pw, Some("not a phc string")));
    }

    #[test]
    fn short_passwords_are_refused_with_the_rule() {
        let err = check_new_password(&SecretString::from("short")).unwrap_err();
        assert!(err.to_string().contains("at least 8 characters"), "{err}");
        assert!(check_new_password(&SecretString::from("        ")).is_err());
        check_new_password(&SecretString::from("long enough")).unwrap();
    }
}
