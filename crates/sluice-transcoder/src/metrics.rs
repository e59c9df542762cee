//! The transcoder's Prometheus metrics. Rates (objects/s, events/s, bytes/s)
//! are `rate()` over the counters.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use sluice_events::time::now_us;

use crate::TranscodeError;

pub struct Metrics {
    pub objects: IntCounter,
    pub events: IntCounter,
    pub rows: IntCounter,
    pub rejected: IntCounterVec,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub failures: IntCounterVec,
    pub dead_lettered: IntCounter,
    pub in_flight: IntGauge,
    oldest_age: Gauge,
    /// When each object being worked on was archived, by a token per task.
    archived_at: Mutex<HashMap<u64, i64>>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, TranscodeError> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn by_cause(registry: &Registry, name: &str, help: &str) -> Result<IntCounterVec, TranscodeError> {
    let c = IntCounterVec::new(Opts::new(name, help), &["cause"])?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Self, TranscodeError> {
        let in_flight = IntGauge::new(
            "sluice_transcoder_messages_in_flight",
            "Queue messages being worked on",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let oldest_age = Gauge::new(
            "sluice_transcoder_oldest_message_age_seconds",
            "Age of the oldest raw object being transcoded, from its archive time (0 when idle)",
        )?;
        registry.register(Box::new(oldest_age.clone()))?;
        Ok(Self {
            objects: counter(
                registry,
                "sluice_transcoder_objects_total",
                "Raw objects transcoded",
            )?,
            events: counter(
                registry,
                "sluice_transcoder_events_total",
                "Events read from raw objects, rejected ones included",
            )?,
            rows: counter(
                registry,
                "sluice_transcoder_rows_total",
                "Rows written to Parquet files, all tables",
            )?,
            rejected: by_cause(
                registry,
                "sluice_transcoder_rejected_events_total",
                "Events (or undecodable stream records) written to the rejected table",
            )?,
            bytes_in: counter(
                registry,
                "sluice_transcoder_bytes_in_total",
                "Bytes of raw objects read",
            )?,
            bytes_out: counter(
                registry,
                "sluice_transcoder_bytes_out_total",
                "Bytes of Parquet written",
            )?,
            failures: by_cause(
                registry,
                "sluice_transcoder_failures_total",
                "Messages that failed an attempt, by cause",
            )?,
            dead_lettered: counter(
                registry,
                "sluice_transcoder_dead_lettered_total",
                "Messages moved to the dead-letter queue",
            )?,
            in_flight,
            oldest_age,
            archived_at: Mutex::new(HashMap::new()),
        })
    }

    /// Notes that the task `token` works on an object archived at
    /// `archived_at_us`, until [`Metrics::done`].
    pub fn working_on(&self, token: u64, archived_at_us: i64) {
        self.archived_at
            .lock()
            .expect("metrics lock")
            .insert(token, archived_at_us);
        self.refresh_age();
    }

    pub fn done(&self, token: u64) {
        self.archived_at
            .lock()
            .expect("metrics lock")
            .remove(&token);
        self.refresh_age();
    }

    /// Sets the age gauge from the objects in flight; called as they come
    /// and go, and by the heartbeat while one is slow.
    pub fn refresh_age(&self) {
        let oldest = self
            .archived_at
            .lock()
            .expect("metrics lock")
            .values()
            .min()
            .copied();
        let age = oldest.map_or(0.0, |t| (now_us() - t).max(0) as f64 / 1e6);
        self.oldest_age.set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_age_follows_the_objects_in_flight() {
        let metrics = Metrics::register(&Registry::new()).unwrap();
        let now = now_us();
        metrics.working_on(1, now - 30_000_000);
        metrics.working_on(2, now - 90_000_000);
        let age = metrics.oldest_age.get();
        assert!((90.0..95.0).contains(&age), "{age}");
        metrics.done(2);
        let age = metrics.oldest_age.get();
        assert!((30.0..35.0).contains(&age), "{age}");
        metrics.done(1);
        assert_eq!(metrics.oldest_age.get(), 0.0);
    }
}
