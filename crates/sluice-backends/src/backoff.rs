//! Jittered exponential backoff, the one schedule every stage retries on:
//! stream puts, object writes, shard reads and redelivered messages.

use std::time::Duration;

use rand::Rng;

/// The wait before retry number `attempt` (1 for the first retry): doubling
/// from `base` up to `max`, drawn from [half, full] of that ("equal
/// jitter"), so that many replicas failing together do not retry together,
/// and none retries at once.
pub fn backoff_delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = full / 2;
    half + rand::rng().random_range(Duration::ZERO..=full - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(400));
        let fulls = [100, 200, 400, 400, 400];
        for (attempt, full) in (1..).zip(fulls) {
            let full = Duration::from_millis(full);
            for _ in 0..100 {
                let d = backoff_delay(base, max, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        let far = backoff_delay(base, max, u32::MAX);
        assert!(far >= max / 2 && far <= max, "{far:?}");
    }

    #[test]
    fn delays_are_spread_out() {
        let delays: std::collections::HashSet<_> = (0..50)
            .map(|_| backoff_delay(Duration::from_secs(1), Duration::from_secs(1), 1))
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
