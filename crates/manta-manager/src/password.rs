//! Password hashing with argon2id, and the checks a new password must pass.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
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

thread_local! {
    /// The argon2 working memory of this thread, kept between checks. Sign-in checks run on
    /// a few dedicated threads (see `crate::ratelimit`), so this bounds argon2's memory to
    /// one buffer per thread: allocating 19 MiB per check instead left a freed buffer in
    /// every malloc arena the checks touched (hundreds of MiB under a flood).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
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
    let ok = PasswordHash::new(hash)
        .ok()
        .is_some_and(|parsed| verify_in_place(password, &parsed));
    ok && real
}

/// What `PasswordVerifier::verify_password` does for argon2, with the thread's kept working
/// memory instead of a fresh allocation.
fn verify_in_place(password: &SecretString, parsed: &PasswordHash<'_>) -> bool {
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let hashed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() != blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt,
            &mut out,
            &mut memory[..],
        )
    });
    // `Output` compares in constant time.
    let ok = hashed.is_ok()
        && argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected);
    zeroize::Zeroize::zeroize(&mut out);
    ok
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
    use argon2::password_hash::PasswordVerifier;

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
    fn checks_with_kept_memory_agree_with_the_argon2_crate() {
        let pw = SecretString::from("correct horse");
        // Other parameters than the defaults, so a reused buffer of another size is resized.
        let small = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let small_hash = small
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let default_hash = hash_password(&pw).unwrap();
        for hash in [&small_hash, &default_hash, &small_hash] {
            let parsed = PasswordHash::new(hash).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"correct horse", &parsed)
                    .is_ok()
            );
            assert!(verify_password(&pw, Some(hash)));
            assert!(!verify_password(
                &SecretString::from("correct horsf"),
                Some(hash)
            ));
        }
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
