//! Reconnect delays: exponential, capped, with jitter.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff between reconnect attempts.
///
/// The delay before attempt `n` (counting from 0) is
/// `min(initial * factor^n, max)`, then shortened by a random fraction of up to
/// `jitter`, so that many clients dropped at once (a hub restart) do not all
/// come back in the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first reconnect attempt.
    pub initial: Duration,
    /// Growth factor per attempt.
    pub factor: f64,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Fraction (0.0 to 1.0) of a delay that may randomly be taken off it.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, at most 5 s, up to 20 % jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(5),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let max = self.max.as_secs_f64();
        // powi saturates to infinity for huge attempts; min() then caps it.
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = (self.initial.as_secs_f64() * self.factor.max(1.0).powi(exp)).min(max);
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay before attempt `attempt` (0-based), with jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let r: f64 = rand::thread_rng().gen_range(0.0..1.0);
        self.delay_with(attempt, r)
    }

    /// [`Backoff::delay`] with the random draw `r` (in `[0, 1)`) supplied.
    fn delay_with(&self, attempt: u32, r: f64) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        self.base_delay(attempt)
            .mul_f64(1.0 - jitter * r.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_from_100ms_and_caps_at_5s() {
        let b = Backoff::default();
        let ms: Vec<u128> = (0..9).map(|n| b.base_delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_fraction() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(3, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay_with(3, 0.5), Duration::from_millis(720));
        for n in 0..20 {
            let d = b.delay(n);
            assert!(d <= b.base_delay(n));
            assert!(d >= b.base_delay(n).mul_f64(0.8));
        }
    }

    #[test]
    fn no_jitter_is_deterministic() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(b.delay(1), Duration::from_millis(200));
    }
}
