//! The transport-agnostic token source and refresh engine: holds the current token, renews
//! it before it expires (single-flight, with jittered exponential backoff), keeps the last
//! good token on failure, and supports explicit rotation and a one-shot refresh after the
//! server answered UNAUTHENTICATED.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret as _, SecretString};

use crate::backoff::Backoff;
use crate::clock::{self, SharedClock};
use crate::error::{Error, RefreshError};
use crate::inspect::inspect;

/// The future a [`Refresher`] returns. Boxed so that [`Refresher`] is object safe and needs
/// no `async_trait`.
pub type RefreshFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SecretString, RefreshError>> + Send + 'a>>;

/// How a token is renewed. The client implements it with `RefreshUserToken`, the node with
/// `RenewNodeToken`; both present `current` in the `authorization` metadata.
///
/// ```
/// use manta_auth::{RefreshError, RefreshFuture, Refresher};
/// use secrecy::SecretString;
///
/// struct Fixed;
/// impl Refresher for Fixed {
///     fn refresh<'a>(&'a self, _current: &'a SecretString) -> RefreshFuture<'a> {
///         Box::pin(async { Err(RefreshError::Unavailable("no server in this example".into())) })
///     }
/// }
/// ```
pub trait Refresher: Send + Sync {
    /// Exchanges `current` (which may already be expired) for a new token.
    fn refresh<'a>(&'a self, current: &'a SecretString) -> RefreshFuture<'a>;
}

/// When and how to refresh.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshConfig {
    /// Refresh once this fraction of the token's lifetime (`exp - iat`) has passed.
    /// Default 0.75; must be in (0, 1].
    pub refresh_fraction: f64,
    /// Refresh up to this fraction of the lifetime earlier, at random, so a fleet of
    /// clients does not refresh in lockstep. Default 0.1; must be in [0, refresh_fraction).
    pub jitter_fraction: f64,
    /// Never refresh later than `exp` minus this margin. Default 60 s.
    pub margin: Duration,
    /// First retry delay after a failed refresh. Default 1 s.
    pub backoff_initial: Duration,
    /// Largest retry delay. Default 300 s (the published node's cap).
    pub backoff_max: Duration,
}

impl RefreshConfig {
    /// When a token issued at `iat_ms` and expiring at `exp_ms` (unix milliseconds) should
    /// be refreshed: after `refresh_fraction` of its life, minus `jitter` (0 to 1) times
    /// `jitter_fraction` of it, and never later than `margin` before `exp`. A token whose
    /// whole life is shorter than the margin is refreshed halfway through. The one schedule
    /// for [`TokenSource`] and for callers that only ask whether a stored token is due.
    #[must_use]
    pub fn refresh_at_ms(&self, iat_ms: u64, exp_ms: u64, jitter: f64) -> u64 {
        let iat = iat_ms.min(exp_ms);
        let life = exp_ms - iat;
        let margin = u64::try_from(self.margin.as_millis()).unwrap_or(u64::MAX);
        let latest = exp_ms.saturating_sub(margin);
        if latest <= iat {
            return iat + life / 2;
        }
        let early = scale(life, self.jitter_fraction * jitter.clamp(0.0, 1.0));
        // Saturating: `life as f64` rounds up near `u64::MAX`, so the scaled life can exceed
        // `life` itself.
        iat.saturating_add(scale(life, self.refresh_fraction))
            .saturating_sub(early)
            .min(latest)
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            refresh_fraction: 0.75,
            jitter_fraction: 0.1,
            margin: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

impl RefreshConfig {
    fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: reason.into(),
            })
        };
        if !(self.refresh_fraction > 0.0 && self.refresh_fraction <= 1.0) {
            return bad("refresh_fraction must be in (0, 1]");
        }
        if !(self.jitter_fraction >= 0.0 && self.jitter_fraction < self.refresh_fraction) {
            return bad("jitter_fraction must be in [0, refresh_fraction)");
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return bad("backoff_initial must be positive and at most backoff_max");
        }
        Ok(())
    }
}

struct State {
    token: SecretString,
    generation: u64,
    /// `exp` in unix milliseconds, if the token has a readable one.
    exp_ms: Option<u64>,
    node_id: Option<String>,
    issued_version: Option<u64>,
    /// When a proactive refresh is due (unix ms); `None` means never (no readable `exp`).
    refresh_at_ms: Option<u64>,
    /// Earliest next attempt after a failure (unix ms).
    retry_at_ms: Option<u64>,
    failures: u32,
    /// Generation for which a forced (UNAUTHENTICATED) refresh was already attempted.
    forced_generation: Option<u64>,
}

/// Holds the current token and refreshes it through a [`Refresher`]. Share it behind an
/// `Arc`; every method takes `&self`.
pub struct TokenSource {
    refresher: Arc<dyn Refresher>,
    config: RefreshConfig,
    clock: SharedClock,
    state: Mutex<State>,
    /// Held while a refresh is in flight, so N concurrent callers cause one refresh.
    flight: futures_util::lock::Mutex<()>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("TokenSource")
            .field("token", &"[REDACTED]")
            .field("generation", &st.generation)
            .field("exp_ms", &st.exp_ms)
            .field("failures", &st.failures)
            .finish_non_exhaustive()
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "token lifetimes in ms are far below 2^52; beyond that the cast saturates, \
              which callers absorb with saturating arithmetic"
)]
fn scale(ms: u64, f: f64) -> u64 {
    (ms as f64 * f) as u64
}

impl TokenSource {
    /// A source holding `token`, refreshed by `refresher` with the system clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range.
    pub fn new(
        token: SecretString,
        refresher: Arc<dyn Refresher>,
        config: RefreshConfig,
    ) -> Result<Self, Error> {
        Self::with_clock(token, refresher, config, clock::system())
    }

    /// As [`TokenSource::new`] with an injected clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `config` is out of range.
    pub fn with_clock(
        token: SecretString,
        refresher: Arc<dyn Refresher>,
        config: RefreshConfig,
        clock: SharedClock,
    ) -> Result<Self, Error> {
        config.validate()?;
        let state = State {
            token: SecretString::from(""),
            generation: 0,
            exp_ms: None,
            node_id: None,
            issued_version: None,
            refresh_at_ms: None,
            retry_at_ms: None,
            failures: 0,
            forced_generation: None,
        };
        let src = Self {
            refresher,
            config,
            clock,
            state: Mutex::new(state),
            flight: futures_util::lock::Mutex::new(()),
        };
        src.install(&mut src.lock(), token);
        Ok(src)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a plain value replaced field by field; after a panic elsewhere it is
        // still a valid token and schedule.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        ms(self.clock.now())
    }

    /// Stores `token` and schedules its refresh from its (unverified) `iat` and `exp`.
    fn install(&self, st: &mut State, token: SecretString) {
        let now = self.now_ms();
        let seen = inspect(token.expose_secret()).ok();
        let claims = seen.as_ref().map(|s| &s.claims);
        st.exp_ms = claims.and_then(|c| c.exp).map(|e| e.saturating_mul(1000));
        st.node_id = claims.and_then(|c| c.node_id.clone());
        st.issued_version = claims.and_then(|c| c.issued_version);
        st.refresh_at_ms = st.exp_ms.map(|exp| {
            let iat = claims
                .and_then(|c| c.iat)
                .map_or(now, |i| i.saturating_mul(1000));
            self.config
                .refresh_at_ms(iat, exp, crate::backoff::random_unit())
        });
        st.token = token;
        st.generation += 1;
    }

    fn due(&self, st: &State, now: u64) -> bool {
        st.refresh_at_ms.is_some_and(|at| now >= at) && st.retry_at_ms.is_none_or(|r| now >= r)
    }

    fn usable(st: &State, now: u64) -> bool {
        st.exp_ms.is_none_or(|exp| now < exp)
    }

    /// The current token, refreshed first when its refresh point has passed. While a refresh
    /// fails, the last good token is returned for as long as it has not expired.
    ///
    /// # Errors
    /// [`Error::Refresh`] when the token has expired and no new one could be obtained.
    pub async fn token(&self) -> Result<SecretString, Error> {
        let generation = {
            let st = self.lock();
            if !self.due(&st, self.now_ms()) {
                return Ok(st.token.clone());
            }
            st.generation
        };
        let _flight = self.flight.lock().await;
        {
            let st = self.lock();
            let now = self.now_ms();
            if st.generation != generation || !self.due(&st, now) {
                // Someone else refreshed (or failed and scheduled a retry) while we waited.
                return if Self::usable(&st, now) || st.generation != generation {
                    Ok(st.token.clone())
                } else {
                    Err(Error::Refresh(RefreshError::Expired))
                };
            }
        }
        self.refresh_locked().await
    }

    /// Runs one refresh; the caller holds `flight`.
    async fn refresh_locked(&self) -> Result<SecretString, Error> {
        let current = self.lock().token.clone();
        let outcome = match self.refresher.refresh(&current).await {
            Ok(new) => self.accept(new),
            Err(e) => Err(e),
        };
        let mut st = self.lock();
        let now = self.now_ms();
        match outcome {
            Ok(new) => {
                st.failures = 0;
                st.retry_at_ms = None;
                self.install(&mut st, new);
                Ok(st.token.clone())
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let delay =
                    self.backoff_ms(st.failures, st.exp_ms.map(|exp| exp.saturating_sub(now)));
                st.retry_at_ms = Some(now.saturating_add(delay));
                tracing::warn!(failures = st.failures, retry_in_ms = delay, error = %e, "token refresh failed; keeping the current token");
                if Self::usable(&st, now) {
                    Ok(st.token.clone())
                } else {
                    Err(Error::Refresh(e))
                }
            }
        }
    }

    /// Exponential backoff with up to 20 % jitter, capped by `backoff_max` and, while the
    /// token is still valid, by its remaining lifetime, so a retry happens before expiry.
    fn backoff_ms(&self, failures: u32, remaining_ms: Option<u64>) -> u64 {
        let max = u64::try_from(self.config.backoff_max.as_millis()).unwrap_or(u64::MAX);
        let delay =
            Backoff::added_jitter(self.config.backoff_initial, self.config.backoff_max, 0.2)
                .capped()
                .delay(failures.saturating_sub(1));
        let jittered = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        match remaining_ms {
            Some(rem) if rem > 0 => jittered.min(max).min((rem / 2).max(1)),
            _ => jittered.min(max),
        }
    }

    /// The published node's checks on a renewed token (decoded without verification): not
    /// empty, a readable `exp` later than the old one, the same `node_id`, and a strictly
    /// greater `issued_version` when the old token had one.
    fn accept(&self, new: SecretString) -> Result<SecretString, RefreshError> {
        let bad = |why: &str| Err(RefreshError::InvalidResponse(why.into()));
        if new.expose_secret().is_empty() {
            return bad("empty token");
        }
        let st = self.lock();
        let Ok(seen) = inspect(new.expose_secret()) else {
            return bad("the new token cannot be read as a JWT");
        };
        let c = &seen.claims;
        match (st.exp_ms, c.exp) {
            (Some(_), None) => return bad("the new token has no `exp`"),
            (Some(old), Some(e)) if e.saturating_mul(1000) <= old => {
                return bad("the new token does not expire later than the current one");
            }
            _ => {}
        }
        if st.node_id.is_some() && c.node_id != st.node_id {
            return bad("the new token is for another node_id");
        }
        if let Some(old) = st.issued_version
            && c.issued_version.is_none_or(|v| v <= old)
        {
            return bad("the new token's issued_version is not greater than the current one");
        }
        Ok(new)
    }

    /// Call when the server answered UNAUTHENTICATED to a request made with `rejected`.
    /// Refreshes once for that token (whatever the schedule) and returns the token to retry
    /// with; if another caller already replaced `rejected`, returns the replacement without
    /// a refresh. A second UNAUTHENTICATED for the same token does not refresh again.
    ///
    /// # Errors
    /// [`Error::Refresh`] when the refresh fails or was already tried for this token.
    pub async fn on_unauthenticated(&self, rejected: &SecretString) -> Result<SecretString, Error> {
        let _flight = self.flight.lock().await;
        {
            let mut st = self.lock();
            if st.token.expose_secret() != rejected.expose_secret() {
                return Ok(st.token.clone());
            }
            if st.forced_generation == Some(st.generation) {
                return Err(Error::Refresh(RefreshError::Rejected));
            }
            st.forced_generation = Some(st.generation);
        }
        let before = self.lock().generation;
        let result = self.refresh_locked().await?;
        if self.lock().generation == before {
            // The refresh failed but the old token is still "usable" by the clock; the server
            // has already said it is not, so report the failure.
            return Err(Error::Refresh(RefreshError::Rejected));
        }
        Ok(result)
    }

    /// Replaces the token now (e.g. after sign-in), leaving any retry backoff as it is.
    pub fn rotate_token(&self, token: SecretString) {
        let mut st = self.lock();
        self.install(&mut st, token);
    }

    /// The current token without refreshing.
    #[must_use]
    pub fn current(&self) -> SecretString {
        self.lock().token.clone()
    }

    /// When the current token expires, if it has a readable `exp`.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.lock()
            .exp_ms
            .map(|m| SystemTime::UNIX_EPOCH + Duration::from_millis(m))
    }

    /// How long until a refresh is due (zero when due now, `None` when the token has no
    /// readable `exp` and is never refreshed). A background task can sleep this long and
    /// then call [`TokenSource::token`].
    #[must_use]
    pub fn refresh_due_in(&self) -> Option<Duration> {
        let st = self.lock();
        let at = st.refresh_at_ms?.max(st.retry_at_ms.unwrap_or(0));
        Some(Duration::from_millis(at.saturating_sub(self.now_ms())))
    }

    /// Number of refresh failures since the last success.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.lock().failures
    }
}
