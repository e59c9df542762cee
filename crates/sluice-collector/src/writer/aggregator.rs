//! Events into records, records into calls. One task owns the open record,
//! so packing needs no locks; encoding and sending happen in put tasks.
//!
//! Calls are group commits: while no call is in flight, waiting events go
//! out at once (a quiet collector adds no wait to a request); while one is,
//! they gather until it ends, so records fill as load grows and calls never
//! queue up behind a slow stream. Calls start at most every half linger
//! (full ones aside), as each costs the stream a write (and the local
//! stream an `fdatasync`) however few events it carries; and no event waits
//! more than the linger, even behind a call that is retrying.

use std::sync::Arc;
use std::time::Duration;

use sluice_backends::aws::{MAX_CALL_BYTES, MAX_RECORDS_PER_CALL};
use tokio::sync::{Notify, Semaphore, mpsc};
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

/// Submissions taken from the queue at once, so the time to send is still
/// looked at when requests keep coming.
const MAX_TAKEN: usize = 256;

#[derive(Default)]
pub(super) struct Record {
    /// Its events as `EventBatch` bytes, compressed when it is sent.
    pub batch: Vec<u8>,
    pub events: usize,
    pub acks: Vec<Arc<Ack>>,
}

pub(super) struct Aggregator {
    record_bytes: usize,
    linger: Duration,
    /// The least time between the starts of two calls.
    min_gap: Duration,
    open: Record,
    /// The most bytes a record has held, up to a full record: what each new
    /// record reserves, so records do not grow (and copy themselves) through
    /// every power of two. A flush closes records early, so the last
    /// record's size would undershoot under rising load.
    record_capacity: usize,
    closed: Vec<Record>,
    closed_bytes: usize,
    /// One linger after the oldest unsent event arrived; set while there
    /// are unsent events.
    deadline: Option<Instant>,
    last_call: Instant,
    putter: Arc<Putter>,
    puts: Arc<Semaphore>,
    max_puts: usize,
    /// Signalled each time a call ends.
    put_ended: Arc<Notify>,
    tasks: TaskTracker,
    metrics: Metrics,
}

impl Aggregator {
    pub fn new(config: &CollectorConfig, putter: Putter, metrics: Metrics) -> Self {
        Self {
            record_bytes: config.record_bytes,
            linger: config.linger(),
            min_gap: config.linger() / 2,
            open: Record::default(),
            record_capacity: 0,
            closed: Vec::new(),
            closed_bytes: 0,
            deadline: None,
            last_call: Instant::now(),
            putter: Arc::new(putter),
            puts: Arc::new(Semaphore::new(config.max_concurrent_puts)),
            max_puts: config.max_concurrent_puts,
            put_ended: Arc::new(Notify::new()),
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
        let mut queued = Vec::with_capacity(MAX_TAKEN);
        let put_ended = self.put_ended.clone();
        // One timer for the whole run, moved only when the time to send
        // changes: a timer made afresh on every turn of the loop registers
        // with the runtime's timer wheel each time, and one due earlier than
        // the runtime's next wake-up makes it write to its wake-up eventfd
        // (a system call per batch of submissions).
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut timer_at = None;
        loop {
            let send_at = self.send_at();
            if let Some(at) = send_at
                && timer_at != send_at
            {
                timer.as_mut().reset(at);
                timer_at = send_at;
            }
            tokio::select! {
                // Sending first: under steady load the channel is always
                // ready, and waiting records must still go out.
                biased;
                () = &mut timer, if send_at.is_some() => {
                    timer_at = None;
                    self.flush().await;
                }
                // The time to send is worked out again.
                () = put_ended.notified() => {}
                // Everything already queued joins before deciding to send,
                // so a burst of requests goes out as one call.
                taken = rx.recv_many(&mut queued, MAX_TAKEN) => {
                    if taken == 0 {
                        break;
                    }
                    for submission in queued.drain(..) {
                        self.add(submission).await;
                    }
                    if self.deadline.is_none() && self.pending() {
                        self.deadline = Some(Instant::now() + self.linger);
                    }
                }
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
        let Submission { events, ack } = submission;
        for event in events.entries() {
            if self.open.events > 0 && self.open.batch.len() + event.len() > self.record_bytes {
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
            self.open.batch.extend_from_slice(event);
            self.open.events += 1;
        }
    }

    /// When the unsent events go: as soon as no call is in flight and the
    /// last started half a linger ago, at the deadline in any case.
    fn send_at(&self) -> Option<Instant> {
        let deadline = self.deadline?;
        let idle = self.puts.available_permits() == self.max_puts;
        Some(match idle {
            true => deadline.min(self.last_call + self.min_gap),
            false => deadline,
        })
    }

    fn pending(&self) -> bool {
        self.open.events > 0 || !self.closed.is_empty()
    }

    fn close_open(&mut self) {
        self.record_capacity = self
            .record_capacity
            .max(self.open.batch.len())
            .min(self.record_bytes);
        let next = Record {
            batch: Vec::with_capacity(self.record_capacity),
            ..Record::default()
        };
        let record = std::mem::replace(&mut self.open, next);
        self.metrics.events_per_record.observe(record.events as f64);
        self.closed_bytes += record.batch.len();
        self.closed.push(record);
    }

    async fn flush(&mut self) {
        if self.open.events > 0 {
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
        self.last_call = Instant::now();
        let putter = self.putter.clone();
        let put_ended = self.put_ended.clone();
        self.tasks.spawn(async move {
            putter.put(records).await;
            drop(permit);
            put_ended.notify_one();
        });
    }
}
