use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_backends::{MAX_VISIBILITY, MAX_WAIT, backoff_delay};

use crate::TranscodeError;

const MAX_WAIT_SECS: u64 = MAX_WAIT.as_secs();
const MAX_VISIBILITY_SECS: u64 = MAX_VISIBILITY.as_secs();

/// The `[transcoder]` section of the config file (`SLUICE_TRANSCODER__*`
/// in the environment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscoderConfig {
    /// Port of `/metrics`, `/healthz` and `/readyz`.
    pub admin_port: u16,
    /// Messages (raw objects) worked on at once. Each takes a core while it
    /// converts, so the default is the number of cores.
    pub concurrency: usize,
    /// How long a received message stays hidden; a heartbeat extends it
    /// every third of this while the object is worked on.
    pub visibility_timeout_secs: u64,
    /// Receives after which a message whose object cannot be transcoded
    /// goes to the dead-letter queue. Keep it at or below the queue's own
    /// redrive `maxReceiveCount`, so the reason travels with it.
    pub max_attempts: u32,
    /// Long-poll wait of each receive (at most 20).
    pub wait_secs: u64,
    /// Delay before a failed message is tried again; doubles with each
    /// attempt, up to the visibility timeout, and each is drawn between half
    /// and all of that, so that transcoders do not retry in lockstep.
    pub retry_delay_secs: u64,
}

impl Default for TranscoderConfig {
    fn default() -> Self {
        Self {
            admin_port: 9090,
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            visibility_timeout_secs: 120,
            max_attempts: 5,
            wait_secs: 20,
            retry_delay_secs: 10,
        }
    }
}

impl TranscoderConfig {
    /// Refuses settings that cannot work, naming the key and its bounds.
    pub fn validate(&self) -> Result<(), TranscodeError> {
        let bad = |msg: String| Err(TranscodeError::Config(msg));
        if self.concurrency == 0 {
            return bad("transcoder.concurrency must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("transcoder.max_attempts must be at least 1".into());
        }
        if self.wait_secs > MAX_WAIT_SECS {
            return bad(format!(
                "transcoder.wait_secs is {}, over the limit of {MAX_WAIT_SECS}",
                self.wait_secs
            ));
        }
        if !(1..=MAX_VISIBILITY_SECS).contains(&self.visibility_timeout_secs) {
            return bad(format!(
                "transcoder.visibility_timeout_secs must be 1..={MAX_VISIBILITY_SECS}, got {}",
                self.visibility_timeout_secs
            ));
        }
        Ok(())
    }

    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    /// How long a message that failed its `attempt`-th receive stays hidden.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let base = Duration::from_secs(self.retry_delay_secs);
        backoff_delay(base, self.visibility_timeout(), attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_retry_delays_double() {
        let config = TranscoderConfig::default();
        config.validate().unwrap();
        assert_eq!(config.admin_port, 9090);
        assert!(config.concurrency >= 1);
        for (attempt, full) in [(1, 10), (3, 40), (30, 120)] {
            let delay = config.retry_delay(attempt).as_secs_f64();
            assert!(
                (full as f64 / 2.0..=full as f64).contains(&delay),
                "{delay}"
            );
        }
    }

    #[test]
    fn names_the_bad_key() {
        let config = TranscoderConfig {
            wait_secs: 30,
            ..Default::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("transcoder.wait_secs")
        );
        let config = TranscoderConfig {
            concurrency: 0,
            ..Default::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("concurrency")
        );
    }
}
