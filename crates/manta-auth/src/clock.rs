//! The one injectable clock of the workspace, so token lifetimes, caches, the refresh engine,
//! the manager's records and windows and the node agent can be tested by jumping time
//! instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of wall-clock time. Implementations must be cheap: the verifier calls `now` once
/// per verification.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (0 before the epoch).
    fn unix_now(&self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The current time as whole milliseconds since the Unix epoch (0 before the epoch).
    fn unix_millis(&self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Monotonic time since an arbitrary fixed origin, for windows and rate limits that must
    /// not jump when the wall clock is set. Never goes backwards.
    fn elapsed(&self) -> Duration;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock::elapsed`]: the first time any code asked.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn elapsed(&self) -> Duration {
        ORIGIN.elapsed()
    }
}

/// A clock that only moves when told to; clones share the same time. Its monotonic reading
/// ([`Clock::elapsed`]) moves with [`ManualClock::advance`] only, so setting the wall time
/// back does not reopen a window.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
    elapsed_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock set to `unix_secs` seconds after the epoch.
    #[must_use]
    pub fn new(unix_secs: u64) -> Self {
        Self::at_millis(unix_secs.saturating_mul(1000))
    }

    /// A clock set to the system's current time (to the millisecond), for tests whose
    /// tokens and records also meet real clocks (certificates, other processes).
    #[must_use]
    pub fn starting_now() -> Self {
        Self::at_millis(SystemClock.unix_millis())
    }

    fn at_millis(millis: u64) -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(millis)),
            elapsed_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// This clock as a [`SharedClock`] (sharing its time with `self`).
    #[must_use]
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
        self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `unix_secs` seconds after the epoch (it may go backwards).
    pub fn set(&self, unix_secs: u64) {
        self.millis
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst))
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a [`SharedClock`]: the default wherever a clock can be injected.
#[must_use]
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(1_000);
        let other = clock.clone();
        assert_eq!(clock.unix_now(), 1_000);
        other.advance(Duration::from_millis(2_500));
        assert_eq!(clock.unix_now(), 1_002);
        assert_eq!(clock.unix_millis(), 1_002_500);
        assert_eq!(clock.elapsed(), Duration::from_millis(2_500));
        clock.set(10);
        assert_eq!(other.unix_now(), 10);
        assert_eq!(
            other.elapsed(),
            Duration::from_millis(2_500),
            "set does not move it"
        );
        let shared = clock.shared();
        clock.advance(Duration::from_secs(1));
        assert_eq!(shared.unix_now(), 11);
    }

    #[test]
    fn the_system_clock_is_monotonic_and_a_manual_one_can_start_now() {
        let a = SystemClock.elapsed();
        assert!(SystemClock.elapsed() >= a);
        let manual = ManualClock::starting_now();
        assert!(manual.unix_now().abs_diff(SystemClock.unix_now()) <= 1);
    }
}
