//! The API's token holder: the given token as is until a renewal may be needed, then
//! manta-auth's `TokenSource` (single-flight refresh, backoff, one forced refresh after
//! UNAUTHENTICATED).
//!
//! Why not hand the token to `TokenSource` at once: installing a token with an `exp` draws
//! jitter from aws-lc-rs's random generator, whose first use costs tens of milliseconds of
//! CPU (seeding). A short command such as `manta whoami` would pay that on every run for a
//! refresh it never makes. This is a gap in manta-auth (the jitter could be drawn lazily);
//! until it is closed the engine starts with an empty token (which validates the
//! configuration without drawing randomness) and receives the real one only when a refresh
//! may be due, the server refused the token, or the token is rotated after that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use manta_auth::{RefreshConfig, Refresher, SharedClock, TokenSource};
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::lock;

/// Arm the engine this long before the earliest moment it could schedule a refresh.
const ARM_EARLY: Duration = Duration::from_secs(1);

pub(crate) struct Tokens {
    engine: TokenSource,
    /// The token while the engine is not armed, with the unix time (seconds) from which a
    /// renewal may be due (`None`: never, no readable `exp`); `None` once armed. The time is
    /// computed once per token so calls do not decode the token each time.
    waiting: Mutex<Option<(SecretString, Option<f64>)>>,
    config: RefreshConfig,
    auto: bool,
    /// The refresh engine's clock, also the one that decides when to arm it.
    clock: SharedClock,
}

impl Tokens {
    pub(crate) fn new(
        token: SecretString,
        refresher: Arc<dyn Refresher>,
        config: Option<RefreshConfig>,
        clock: SharedClock,
    ) -> Result<Self, manta_auth::Error> {
        let auto = config.is_some();
        let config = config.unwrap_or_default();
        let engine = TokenSource::with_clock(
            SecretString::from(""),
            refresher,
            config.clone(),
            Arc::clone(&clock),
        )?;
        let arm_at = arm_at(&config, &token, clock.as_ref());
        Ok(Tokens {
            engine,
            waiting: Mutex::new(Some((token, arm_at))),
            config,
            auto,
            clock,
        })
    }

    /// Hands the token to the engine (once).
    fn arm(&self) {
        let mut waiting = lock(&self.waiting);
        if let Some((token, _)) = waiting.take() {
            self.engine.rotate_token(token);
        }
    }

    /// The token for the next call, renewed first when due (with auto refresh).
    pub(crate) async fn for_call(&self) -> Result<SecretString, manta_auth::Error> {
        if !self.auto {
            return Ok(self.current());
        }
        let waiting = lock(&self.waiting).clone();
        if let Some((token, arm_at)) = waiting {
            if arm_at.is_none_or(|at| unix_now(self.clock.as_ref()) < at) {
                return Ok(token);
            }
            self.arm();
        }
        self.engine.token().await
    }

    /// One renewal after the server refused `rejected` (see `TokenSource::on_unauthenticated`).
    pub(crate) async fn on_unauthenticated(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, manta_auth::Error> {
        self.arm();
        self.engine.on_unauthenticated(rejected).await
    }

    /// The current token without renewing.
    pub(crate) fn current(&self) -> SecretString {
        match &*lock(&self.waiting) {
            Some((token, _)) => token.clone(),
            None => self.engine.current(),
        }
    }

    /// Replaces the token now.
    pub(crate) fn rotate(&self, token: SecretString) {
        let mut waiting = lock(&self.waiting);
        if waiting.is_some() {
            let at = arm_at(&self.config, &token, self.clock.as_ref());
            *waiting = Some((token, at));
        } else {
            self.engine.rotate_token(token);
        }
    }
}

fn unix_now(clock: &dyn manta_auth::Clock) -> f64 {
    clock
        .now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When the engine could first want to refresh `token` (by its own schedule, with the
/// largest jitter), minus [`ARM_EARLY`]; `None` for tokens without a readable `exp`.
fn arm_at(
    config: &RefreshConfig,
    token: &SecretString,
    clock: &dyn manta_auth::Clock,
) -> Option<f64> {
    let seen = manta_auth::inspect(token.expose_secret()).ok()?;
    let exp = seen.claims.exp?.saturating_mul(1000);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "unix milliseconds of now fit a u64"
    )]
    let iat = seen.claims.iat.map_or_else(
        || (unix_now(clock) * 1000.0) as u64,
        |i| i.saturating_mul(1000),
    );
    // With the largest jitter: the earliest the engine's own schedule could pick.
    #[expect(
        clippy::cast_precision_loss,
        reason = "unix milliseconds fit an f64 exactly for thousands of years"
    )]
    let earliest = config.refresh_at_ms(iat, exp, 1.0) as f64 / 1000.0;
    Some(earliest - ARM_EARLY.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use manta_auth::{RefreshError, RefreshFuture};
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32, String);
    impl Refresher for Counting {
        fn refresh<'a>(&'a self, _current: &'a SecretString) -> RefreshFuture<'a> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let next = self.1.clone();
            Box::pin(async move {
                if next.is_empty() {
                    Err(RefreshError::Rejected)
                } else {
                    Ok(SecretString::from(next))
                }
            })
        }
    }

    fn jwt(iat: u64, exp: u64) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"EdDSA"}"#),
            b64(&format!(r#"{{"sub":"u","iat":{iat},"exp":{exp}}}"#))
        )
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test]
    async fn a_fresh_token_is_used_as_is_and_a_due_one_is_renewed_once() {
        let t = now();
        let renewed = jwt(t, t + 7200);
        let r = Arc::new(Counting(AtomicU32::new(0), renewed.clone()));
        let fresh = jwt(t, t + 3600);
        let tokens = Tokens::new(
            SecretString::from(fresh.clone()),
            r.clone(),
            Some(RefreshConfig::default()),
            manta_auth::system_clock(),
        )
        .unwrap();
        assert_eq!(tokens.for_call().await.unwrap().expose_secret(), fresh);
        assert_eq!(r.0.load(Ordering::SeqCst), 0);

        // 90 % of its life gone: due now.
        let old = jwt(t - 3240, t + 360);
        tokens.rotate(SecretString::from(old));
        assert_eq!(tokens.for_call().await.unwrap().expose_secret(), renewed);
        assert_eq!(tokens.for_call().await.unwrap().expose_secret(), renewed);
        assert_eq!(r.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_auto_refresh_nothing_is_renewed_and_refusal_renews_once() {
        let t = now();
        let r = Arc::new(Counting(AtomicU32::new(0), jwt(t, t + 60)));
        let due = SecretString::from(jwt(t - 3000, t + 10));
        let tokens = Tokens::new(due.clone(), r.clone(), None, manta_auth::system_clock()).unwrap();
        assert_eq!(
            tokens.for_call().await.unwrap().expose_secret(),
            due.expose_secret()
        );
        assert_eq!(r.0.load(Ordering::SeqCst), 0);
        let again = tokens.on_unauthenticated(&due).await.unwrap();
        assert_ne!(again.expose_secret(), due.expose_secret());
        assert_eq!(tokens.current().expose_secret(), again.expose_secret());
        assert_eq!(r.0.load(Ordering::SeqCst), 1);
    }
}
