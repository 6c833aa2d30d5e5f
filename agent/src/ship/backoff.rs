//! Retry delays: exponential backoff with full jitter (a uniformly random delay between zero and an
//! exponentially growing ceiling, capped), so many agents retrying against one collector spread out.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Full-jitter exponential backoff.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    random: std::collections::hash_map::RandomState,
}

impl Backoff {
    /// Starts at `base`, doubling per failure up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            random: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The ceiling of the next delay (without jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt: uniform in `[0, ceiling]`; the ceiling doubles afterwards.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let mut hasher = self.random.build_hasher();
        hasher.write_u32(self.attempt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    /// Back to the base delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_below_a_doubling_capped_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        let mut delays = Vec::new();
        for _ in 0..12 {
            ceilings.push(b.ceiling());
            delays.push(b.next_delay());
        }
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[3], Duration::from_millis(800));
        assert_eq!(ceilings[11], Duration::from_secs(30));
        assert!(delays.iter().zip(&ceilings).all(|(d, c)| d <= c));
        assert!(delays.windows(2).any(|w| w[0] != w[1]), "jittered");
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }
}
