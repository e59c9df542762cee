//! Encoding records and sending them: PutRecords calls within the Kinesis
//! limits, and retries of only the entries that failed, with jittered
//! backoff, so no event is lost and none is written twice by the collector.

use std::sync::Arc;
use std::time::Duration;

use sluice_backends::aws::{MAX_CALL_BYTES, MAX_RECORDS_PER_CALL};
use sluice_backends::{EventStream, PutOutcome, PutRecord, backoff_delay};
use sluice_events::record_from_batch;

use super::Ack;
use super::aggregator::Record;
use crate::metrics::Metrics;

/// Waits between tries of a put: 50-100 ms first, doubling up to 5 s.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) struct Putter {
    stream: Arc<dyn EventStream>,
    metrics: Metrics,
}

struct Entry {
    record: PutRecord,
    /// Released (dropped) once the record is written.
    acks: Vec<Arc<Ack>>,
}

impl Entry {
    fn size(&self) -> usize {
        self.record.data.len() + self.record.partition_key.len()
    }
}

impl Putter {
    pub fn new(stream: Arc<dyn EventStream>, metrics: Metrics) -> Self {
        Self { stream, metrics }
    }

    pub async fn put(&self, records: Vec<Record>) {
        let entries = records.into_iter().map(|r| Entry {
            record: PutRecord {
                // A random key per record spreads records evenly over shards.
                partition_key: format!("{:016x}", rand::random::<u64>()),
                data: record_from_batch(&r.batch),
                explicit_hash_key: None,
            },
            acks: r.acks,
        });
        let mut call: Vec<Entry> = Vec::new();
        let mut call_bytes = 0;
        for entry in entries {
            if !call.is_empty()
                && (call.len() == MAX_RECORDS_PER_CALL
                    || call_bytes + entry.size() > MAX_CALL_BYTES)
            {
                self.put_until_written(std::mem::take(&mut call)).await;
                call_bytes = 0;
            }
            call_bytes += entry.size();
            call.push(entry);
        }
        if !call.is_empty() {
            self.put_until_written(call).await;
        }
    }

    /// Sends one call, then again only its failed entries, until every entry
    /// is written or the stream refuses the call for good.
    async fn put_until_written(&self, mut entries: Vec<Entry>) {
        let mut attempt = 0;
        loop {
            let records: Vec<PutRecord> = entries.iter().map(|e| e.record.clone()).collect();
            self.metrics
                .bytes_per_put
                .observe(entries.iter().map(Entry::size).sum::<usize>() as f64);
            let timer = self.metrics.put_seconds.start_timer();
            let result = self.stream.put_records(records).await;
            timer.observe_duration();
            match result {
                Ok(outcomes) => {
                    let sent = entries.len();
                    if outcomes.len() != sent {
                        tracing::error!(
                            sent,
                            outcomes = outcomes.len(),
                            "stream answered a different number of entries; retrying the unanswered"
                        );
                    }
                    let mut outcomes = outcomes.into_iter();
                    entries.retain(|_| match outcomes.next() {
                        Some(PutOutcome::Written { .. }) => false,
                        Some(PutOutcome::Failed { code, .. }) => {
                            self.metrics
                                .put_failed_entries
                                .with_label_values(&[&code])
                                .inc();
                            true
                        }
                        None => true,
                    });
                    if entries.is_empty() {
                        return;
                    }
                    tracing::debug!(
                        failed = entries.len(),
                        sent,
                        "retrying failed stream entries"
                    );
                }
                Err(error) if error.is_retryable() => {
                    self.metrics.put_errors.with_label_values(&["true"]).inc();
                    tracing::warn!(%error, attempt, "put to stream failed; retrying");
                }
                Err(error) => {
                    self.metrics.put_errors.with_label_values(&["false"]).inc();
                    tracing::error!(%error, records = entries.len(), "stream refused the records");
                    let reason = error.to_string();
                    for ack in entries.iter().flat_map(|e| &e.acks) {
                        ack.fail(&reason);
                    }
                    return;
                }
            }
            attempt += 1;
            self.metrics.put_retries.inc();
            tokio::time::sleep(backoff_delay(BACKOFF_BASE, BACKOFF_MAX, attempt)).await;
        }
    }
}
