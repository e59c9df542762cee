//! The stream writer: packs accepted events into aggregated records (like
//! the Kinesis Producer Library), records into PutRecords calls within the
//! Kinesis limits, retries only the entries that failed, and bounds the
//! bytes in flight so a slow stream turns into 503s rather than memory.

mod aggregator;
mod put;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounter, IntGauge};
use sluice_backends::EventStream;
use sluice_events::EncodedEvents;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::{CollectorConfig, CollectorError};

/// Room for one request's events in the in-flight budget, held until every
/// one of them is in the stream (or has failed for good).
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    gauge: IntGauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes as i64);
    }
}

/// What the writer tells a request about its events.
pub type Written = oneshot::Receiver<Result<(), String>>;

/// Tracks one submission across the records its events landed in. Each
/// record holds a clone; when the last is dropped (every record written or
/// failed for good) the submitter hears the outcome and the reservation is
/// released.
struct Ack {
    failure: Mutex<Option<String>>,
    done: Option<oneshot::Sender<Result<(), String>>>,
    events: usize,
    _reservation: Reservation,
    events_lost: IntCounter,
}

impl Ack {
    fn fail(&self, reason: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert_with(|| reason.to_owned());
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        let failure = self
            .failure
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let outcome = failure.map_or(Ok(()), Err);
        let answered = match self.done.take() {
            Some(done) => done.send(outcome.clone()).is_ok(),
            None => false,
        };
        // Nobody is waiting (buffered mode, or the client left): a failure
        // here is events acknowledged and then lost, which must be loud.
        if let (false, Err(reason)) = (answered, outcome) {
            self.events_lost.inc_by(self.events as u64);
            tracing::error!(events = self.events, %reason, "acknowledged events could not be written to the stream");
        }
    }
}

struct Submission {
    events: EncodedEvents,
    ack: Arc<Ack>,
}

pub struct StreamWriter {
    tx: mpsc::UnboundedSender<Submission>,
    budget: Arc<Semaphore>,
    capacity: usize,
    metrics: Metrics,
    closing: CancellationToken,
}

impl StreamWriter {
    /// Starts the writer; the task ends after [`StreamWriter::close`] once
    /// everything submitted is written.
    pub fn spawn(
        stream: Arc<dyn EventStream>,
        config: &CollectorConfig,
        metrics: Metrics,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let closing = CancellationToken::new();
        let putter = put::Putter::new(stream, metrics.clone());
        let aggregator = aggregator::Aggregator::new(config, putter, metrics.clone());
        let task = tokio::spawn(aggregator.run(rx, closing.clone()));
        let capacity = config.max_in_flight_bytes;
        metrics.in_flight_limit_bytes.set(capacity as i64);
        let writer = Self {
            tx,
            budget: Arc::new(Semaphore::new(capacity)),
            capacity,
            metrics,
            closing,
        };
        (writer, task)
    }

    /// Whether `bytes` more would fit now: a cheap check before reading a
    /// body the collector could not take anyway.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.budget.available_permits() >= bytes.min(self.capacity)
    }

    /// Takes room for `bytes`, or refuses at once when the budget is used up
    /// (the client is told to retry; waiting would just pile up requests).
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, CollectorError> {
        // A request larger than the whole budget waits for all of it.
        let bytes = bytes.min(self.capacity);
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(bytes as u32)
            .map_err(|_| CollectorError::Overloaded {
                limit: self.capacity,
            })?;
        self.metrics.in_flight_bytes.add(bytes as i64);
        Ok(Reservation {
            _permit: permit,
            bytes,
            gauge: self.metrics.in_flight_bytes.clone(),
        })
    }

    /// Queues events for the stream. The receiver resolves once all are
    /// written, or with the reason the stream refused them.
    pub fn submit(
        &self,
        events: EncodedEvents,
        reservation: Reservation,
    ) -> Result<Written, CollectorError> {
        let (done, written) = oneshot::channel();
        let ack = Arc::new(Ack {
            failure: Mutex::new(None),
            done: Some(done),
            events: events.len(),
            _reservation: reservation,
            events_lost: self.metrics.events_lost.clone(),
        });
        self.tx
            .send(Submission { events, ack })
            .map_err(|_| CollectorError::ShuttingDown)?;
        Ok(written)
    }

    /// Stops taking submissions; what was submitted is still written.
    pub fn close(&self) {
        self.closing.cancel();
    }
}
