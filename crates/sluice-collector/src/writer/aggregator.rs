//! Events into records, records into calls. One task owns the open record,
//! so packing needs no locks; encoding and sending happen in put tasks.

use std::sync::Arc;
use std::time::Duration;

use sluice_backends::aws::{MAX_CALL_BYTES, MAX_RECORDS_PER_CALL};
use sluice_events::proto::Envelope;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::put::Putter;
use super::{Ack, Submission};
use crate::CollectorConfig;
use crate::metrics::Metrics;

/// Uncompressed bytes of closed records that trigger a call without waiting
/// for the linger: the compressed call then stays well within 5 MiB.
const CALL_PLAIN_BYTES: usize = MAX_CALL_BYTES * 4 / 5;

#[derive(Default)]
pub(super) struct Record {
    pub events: Vec<Envelope>,
    pub bytes: usize,
    pub acks: Vec<Arc<Ack>>,
}

pub(super) struct Aggregator {
    record_bytes: usize,
    linger: Duration,
    open: Record,
    closed: Vec<Record>,
    closed_bytes: usize,
    /// When the oldest unsent event has waited long enough.
    deadline: Option<Instant>,
    putter: Arc<Putter>,
    puts: Arc<Semaphore>,
    tasks: TaskTracker,
    metrics: Metrics,
}

impl Aggregator {
    pub fn new(config: &CollectorConfig, putter: Putter, metrics: Metrics) -> Self {
        Self {
            record_bytes: config.record_bytes,
            linger: config.linger(),
            open: Record::default(),
            closed: Vec::new(),
            closed_bytes: 0,
            deadline: None,
            putter: Arc::new(putter),
            puts: Arc::new(Semaphore::new(config.max_concurrent_puts)),
            tasks: TaskTracker::new(),
            metrics,
        }
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Submission>,
        closing: CancellationToken,
    ) {
        let mut receiving = true;
        loop {
            let deadline = self.deadline;
            tokio::select! {
                // The deadline first: under steady load the channel is always
                // ready, and lingering records must still go out.
                biased;
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.flush().await;
                }
                submission = rx.recv() => match submission {
                    Some(submission) => self.add(submission).await,
                    None => break,
                },
                () = closing.cancelled(), if receiving => {
                    // Ends recv() once what is queued has been taken.
                    rx.close();
                    receiving = false;
                }
            }
        }
        self.flush().await;
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("stream writer flushed");
    }

    async fn add(&mut self, submission: Submission) {
        let Submission { events, sizes, ack } = submission;
        for (event, size) in events.into_iter().zip(sizes) {
            if !self.open.events.is_empty() && self.open.bytes + size > self.record_bytes {
                self.close_open();
                if self.closed.len() >= MAX_RECORDS_PER_CALL
                    || self.closed_bytes >= CALL_PLAIN_BYTES
                {
                    self.dispatch().await;
                }
            }
            if !self.open.acks.last().is_some_and(|a| Arc::ptr_eq(a, &ack)) {
                self.open.acks.push(ack.clone());
            }
            self.open.events.push(event);
            self.open.bytes += size;
        }
        if self.linger.is_zero() {
            self.flush().await;
        } else if self.deadline.is_none() && !self.open.events.is_empty() {
            self.deadline = Some(Instant::now() + self.linger);
        }
    }

    fn close_open(&mut self) {
        // The next record likely holds as many events: room for them at
        // once instead of growing through every power of two.
        let next = Record {
            events: Vec::with_capacity(self.open.events.len()),
            ..Record::default()
        };
        let record = std::mem::replace(&mut self.open, next);
        self.metrics
            .events_per_record
            .observe(record.events.len() as f64);
        self.closed_bytes += record.bytes;
        self.closed.push(record);
    }

    async fn flush(&mut self) {
        if !self.open.events.is_empty() {
            self.close_open();
        }
        if !self.closed.is_empty() {
            self.dispatch().await;
        }
        self.deadline = None;
    }

    /// Hands the closed records to a put task, waiting while the maximum
    /// number of calls is in flight (requests then back up into the budget).
    async fn dispatch(&mut self) {
        let records = std::mem::take(&mut self.closed);
        self.closed_bytes = 0;
        let permit = self
            .puts
            .clone()
            .acquire_owned()
            .await
            .expect("the put semaphore is never closed");
        let putter = self.putter.clone();
        self.tasks.spawn(async move {
            putter.put(records).await;
            drop(permit);
        });
    }
}
