//! The collector's Prometheus metrics, registered once in the registry the
//! caller passes (and serves on the admin port).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
};

use crate::CollectorError;

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
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Self, CollectorError> {
        let m = Self {
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
        };
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
}
