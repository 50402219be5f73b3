//! The one jittered exponential backoff of the workspace: the client's retries, the node
//! agent's reconnects and the refresh engine's retries all compute their delays here.

use std::time::Duration;

/// Capped exponential backoff with random jitter.
///
/// The exponential base for attempt `n` (0-based) is `initial × 2ⁿ`, capped at `max`. The
/// delay is that base scaled by a random factor in `[low, high]`, so callers that failed
/// together spread out; with [`Backoff::capped`] the jittered delay is capped at `max` too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    low: f64,
    high: f64,
    cap_jittered: bool,
}

impl Backoff {
    /// "Equal jitter": half the base fixed, half random, so delays lie in `[base / 2, base]`
    /// and never exceed `max`.
    #[must_use]
    pub fn equal_jitter(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            low: 0.5,
            high: 1.0,
            cap_jittered: false,
        }
    }

    /// The base plus up to `fraction` of it at random: delays lie in
    /// `[base, base × (1 + fraction)]` (so up to `max × (1 + fraction)` unless
    /// [`Backoff::capped`]).
    #[must_use]
    pub fn added_jitter(initial: Duration, max: Duration, fraction: f64) -> Self {
        Backoff {
            initial,
            max,
            low: 1.0,
            high: 1.0 + fraction.max(0.0),
            cap_jittered: false,
        }
    }

    /// Caps the jittered delay at `max` as well as the base.
    #[must_use]
    pub fn capped(mut self) -> Self {
        self.cap_jittered = true;
        self
    }

    /// The delay before retry `attempt` (0-based), with fresh randomness.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_unit())
    }

    /// The delay before retry `attempt` (0-based) for a random `unit` in `[0, 1]` (clamped):
    /// 0 gives the shortest delay of the range, 1 the longest.
    #[must_use]
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(31))
            .min(self.max);
        let factor = self.low + (self.high - self.low) * unit.clamp(0.0, 1.0);
        let jittered = mul(base, factor);
        if self.cap_jittered {
            jittered.min(self.max)
        } else {
            jittered
        }
    }
}

/// `d × f` without panicking on overflow (it saturates).
fn mul(d: Duration, f: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * f).unwrap_or(Duration::MAX)
}

/// A random number in `[0, 1)`.
pub(crate) fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    // Jitter only spreads load; if the random source fails, no jitter is still correct.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 0.0;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 random bits are plenty for jitter"
    )]
    let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn check(b: Backoff, attempt: u32, low: Duration, high: Duration) {
        assert_eq!(
            b.delay_with(attempt, 0.0),
            low,
            "attempt {attempt}, low end"
        );
        assert_eq!(
            b.delay_with(attempt, 1.0),
            high,
            "attempt {attempt}, high end"
        );
        for _ in 0..50 {
            let d = b.delay(attempt);
            assert!(d >= low && d <= high, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn equal_jitter_lies_between_half_the_base_and_the_base() {
        let b = Backoff::equal_jitter(100 * MS, 2_000 * MS);
        check(b, 0, 50 * MS, 100 * MS);
        check(b, 1, 100 * MS, 200 * MS);
        check(b, 4, 800 * MS, 1_600 * MS);
        check(b, 5, 1_000 * MS, 2_000 * MS);
        check(b, u32::MAX, 1_000 * MS, 2_000 * MS);
    }

    #[test]
    fn added_jitter_lies_above_the_base_and_capped_stays_under_max() {
        let b = Backoff::added_jitter(500 * MS, 30_000 * MS, 0.25);
        check(b, 0, 500 * MS, 625 * MS);
        check(b, 2, 2_000 * MS, 2_500 * MS);
        check(b, 100, 30_000 * MS, 37_500 * MS);

        let c = Backoff::added_jitter(1_000 * MS, 300_000 * MS, 0.2).capped();
        check(c, 0, 1_000 * MS, 1_200 * MS);
        check(c, 8, 256_000 * MS, 300_000 * MS);
        check(c, u32::MAX, 300_000 * MS, 300_000 * MS);
    }

    #[test]
    fn jitter_varies_and_huge_settings_saturate() {
        let b = Backoff::equal_jitter(Duration::from_secs(1), Duration::from_secs(60));
        let spread: std::collections::HashSet<_> = (0..20).map(|_| b.delay(3)).collect();
        assert!(spread.len() > 1, "jitter must vary");
        let huge = Backoff::added_jitter(Duration::MAX, Duration::MAX, 1.0);
        assert_eq!(huge.delay_with(3, 1.0), Duration::MAX);
        assert_eq!(huge.capped().delay_with(3, 1.0), Duration::MAX);
    }
}
