//! Backoff across a run of failures, and bounded retries of object store
//! writes.

use std::time::Duration;

use sluice_backends::{BackendError, backoff_delay};

use crate::ArchiverError;
use crate::metrics::{Metrics, cause};

/// The delays of one run of failures (see [`backoff_delay`]), from the
/// first again after a success.
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff_delay(self.base, self.max, self.failures)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How long to wait before retrying after `error`: a throttled call waits at
/// least as long as the service asked.
pub(crate) fn delay_for(error: &BackendError, backoff: &mut Backoff) -> Duration {
    let delay = backoff.next_delay();
    match error {
        BackendError::Throttled {
            retry_after: Some(after),
            ..
        } => delay.max(*after),
        _ => delay,
    }
}

pub(crate) fn cause_of(error: &BackendError) -> &'static str {
    match error {
        BackendError::Throttled { .. } => cause::THROTTLED,
        e if e.is_retryable() => cause::TRANSIENT,
        _ => cause::PERMANENT,
    }
}

/// Retries of one write: a few attempts over a few seconds, then the error
/// goes up and the shard restarts from its checkpoint.
pub(crate) struct Retry<'a> {
    metrics: &'a Metrics,
    operation: &'static str,
    backoff: Backoff,
    attempts_left: u32,
}

const WRITE_ATTEMPTS: u32 = 6;

impl<'a> Retry<'a> {
    pub fn new(metrics: &'a Metrics, operation: &'static str) -> Self {
        Self {
            metrics,
            operation,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            attempts_left: WRITE_ATTEMPTS - 1,
        }
    }

    /// Counts the failure, then waits and returns `Ok` when another attempt
    /// is worth it, or returns the error.
    pub async fn after(&mut self, error: BackendError, target: &str) -> Result<(), ArchiverError> {
        self.metrics.error(self.operation, cause_of(&error));
        if !error.is_retryable() || self.attempts_left == 0 {
            return Err(ArchiverError::backend(
                format!("{} {target}", self.operation),
                error,
            ));
        }
        self.attempts_left -= 1;
        let delay = delay_for(&error, &mut self.backoff);
        tracing::warn!(operation = self.operation, target, error = %error, ?delay, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        let bounds = [100, 200, 400, 400, 400];
        for (d, full) in delays.iter().zip(bounds) {
            let full = Duration::from_millis(full);
            assert!(
                *d >= full / 2 && *d <= full,
                "{d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn throttling_waits_at_least_what_the_service_asked() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(10));
        let throttled = BackendError::Throttled {
            service: "kinesis",
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(delay_for(&throttled, &mut b), Duration::from_secs(2));
        assert_eq!(cause_of(&throttled), cause::THROTTLED);
        assert_eq!(
            cause_of(&BackendError::NotFound("x".into())),
            cause::PERMANENT
        );
    }
}
