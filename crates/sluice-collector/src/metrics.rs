//! The collector's Prometheus metrics, registered once in the registry the
//! caller passes (and serves on the admin port).

use std::sync::Arc;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
};

use crate::CollectorError;
use crate::protocols::{native, protobuf, segment};

/// Every protocol a request can come in by, for the series made up front.
const PROTOCOLS: [&str; 3] = [native::PROTOCOL, segment::PROTOCOL, protobuf::PROTOCOL];

/// The series an accepted request of one protocol touches, looked up once:
/// finding a labelled series hashes its labels under a lock, which costs
/// more than the update it is for.
struct Served {
    protocol: &'static str,
    ok_requests: IntCounter,
    request_seconds: Histogram,
    events_accepted: IntCounter,
}

#[derive(Clone)]
pub struct Metrics {
    pub events_accepted: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub put_seconds: Histogram,
    pub put_failed_entries: IntCounterVec,
    pub put_errors: IntCounterVec,
    pub put_retries: IntCounter,
    pub events_per_record: Histogram,
    pub bytes_per_put: Histogram,
    pub in_flight_bytes: IntGauge,
    pub in_flight_limit_bytes: IntGauge,
    pub rejected_store_failures: IntCounter,
    pub events_lost: IntCounter,
    served: Arc<[Served]>,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Self, CollectorError> {
        let mut m = Self {
            events_accepted: IntCounterVec::new(
                Opts::new(
                    "sluice_collector_events_accepted_total",
                    "Events accepted, by client protocol",
                ),
                &["protocol"],
            )
            .expect("valid metric"),
            events_rejected: IntCounterVec::new(
                Opts::new(
                    "sluice_collector_events_rejected_total",
                    "Events rejected (and kept under rejected/), by cause",
                ),
                &["cause"],
            )
            .expect("valid metric"),
            requests: IntCounterVec::new(
                Opts::new(
                    "sluice_collector_requests_total",
                    "Requests answered, by protocol and outcome (ok or the refusal's cause)",
                ),
                &["protocol", "outcome"],
            )
            .expect("valid metric"),
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sluice_collector_request_duration_seconds",
                    "Time from request to answer",
                )
                .buckets(exponential_buckets(0.0002, 2.0, 16).expect("valid buckets")),
                &["protocol"],
            )
            .expect("valid metric"),
            put_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_collector_put_records_duration_seconds",
                    "Latency of one PutRecords call",
                )
                .buckets(exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
            )
            .expect("valid metric"),
            put_failed_entries: IntCounterVec::new(
                Opts::new(
                    "sluice_collector_put_records_failed_entries_total",
                    "PutRecords entries the stream refused (retried), by error code",
                ),
                &["code"],
            )
            .expect("valid metric"),
            put_errors: IntCounterVec::new(
                Opts::new(
                    "sluice_collector_put_records_errors_total",
                    "PutRecords calls that failed as a whole, by whether they are retried",
                ),
                &["retryable"],
            )
            .expect("valid metric"),
            put_retries: IntCounter::new(
                "sluice_collector_put_records_retries_total",
                "PutRecords calls that retried failed entries",
            )
            .expect("valid metric"),
            events_per_record: Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_collector_events_per_record",
                    "Events aggregated into one stream record",
                )
                .buckets(exponential_buckets(1.0, 2.0, 14).expect("valid buckets")),
            )
            .expect("valid metric"),
            bytes_per_put: Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_collector_put_records_bytes",
                    "Compressed bytes sent in one PutRecords call",
                )
                .buckets(exponential_buckets(1024.0, 2.0, 14).expect("valid buckets")),
            )
            .expect("valid metric"),
            in_flight_bytes: IntGauge::new(
                "sluice_collector_in_flight_bytes",
                "Bytes of accepted events not yet in the stream (buffer fill)",
            )
            .expect("valid metric"),
            in_flight_limit_bytes: IntGauge::new(
                "sluice_collector_in_flight_limit_bytes",
                "The in-flight limit; above it requests get 503",
            )
            .expect("valid metric"),
            rejected_store_failures: IntCounter::new(
                "sluice_collector_rejected_store_failures_total",
                "Rejected events that could not be written under rejected/",
            )
            .expect("valid metric"),
            events_lost: IntCounter::new(
                "sluice_collector_events_lost_total",
                "Buffered-mode events the stream refused for good after they were acknowledged",
            )
            .expect("valid metric"),
            served: Arc::new([]),
        };
        m.served = PROTOCOLS
            .iter()
            .map(|&protocol| Served {
                protocol,
                ok_requests: m.requests.with_label_values(&[protocol, "ok"]),
                request_seconds: m.request_seconds.with_label_values(&[protocol]),
                events_accepted: m.events_accepted.with_label_values(&[protocol]),
            })
            .collect();
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(m.events_accepted.clone()),
            Box::new(m.events_rejected.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.request_seconds.clone()),
            Box::new(m.put_seconds.clone()),
            Box::new(m.put_failed_entries.clone()),
            Box::new(m.put_errors.clone()),
            Box::new(m.put_retries.clone()),
            Box::new(m.events_per_record.clone()),
            Box::new(m.bytes_per_put.clone()),
            Box::new(m.in_flight_bytes.clone()),
            Box::new(m.in_flight_limit_bytes.clone()),
            Box::new(m.rejected_store_failures.clone()),
            Box::new(m.events_lost.clone()),
        ];
        for c in collectors {
            registry
                .register(c)
                .map_err(|e| CollectorError::Config(format!("registering metrics: {e}")))?;
        }
        Ok(m)
    }

    /// Counts one request to a protocol's endpoint, by its outcome.
    pub fn count_request(&self, protocol: &str, outcome: &str) {
        match (self.served(protocol), outcome) {
            (Some(served), "ok") => served.ok_requests.inc(),
            _ => self.requests.with_label_values(&[protocol, outcome]).inc(),
        }
    }

    /// Records a request's time from request to answer.
    pub fn observe_request_seconds(&self, protocol: &str, seconds: f64) {
        match self.served(protocol) {
            Some(served) => served.request_seconds.observe(seconds),
            // A path that names no protocol.
            None => self
                .request_seconds
                .with_label_values(&[protocol])
                .observe(seconds),
        }
    }

    pub fn count_accepted(&self, protocol: &str, events: usize) {
        let events = events as u64;
        match self.served(protocol) {
            Some(served) => served.events_accepted.inc_by(events),
            None => self
                .events_accepted
                .with_label_values(&[protocol])
                .inc_by(events),
        }
    }

    fn served(&self, protocol: &str) -> Option<&Served> {
        self.served.iter().find(|s| s.protocol == protocol)
    }
}
