//! Group commit, on a paused clock: a quiet writer sends at once; while a
//! call is in flight, events gather and leave together when it ends; and
//! no event waits longer than the linger, even behind a stalled call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_backends::{
    EventStream, PutOutcome, PutRecord, Result, SequenceNumber, ShardInfo, ShardReader,
    StartPosition,
};
use sluice_events::proto::{CollectorMeta, Source};
use sluice_events::{BorrowedEnvelope, EncodedEvents, EncodedMeta, decode_record};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{StreamWriter, Written};
use crate::CollectorConfig;
use crate::metrics::Metrics;

const LINGER: Duration = Duration::from_millis(50);

/// One PutRecords call as the stream saw it.
#[derive(Debug)]
struct Call {
    started: Instant,
    event_ids: Vec<String>,
}

/// A stream that records each call and holds it while its gate is shut.
struct Gated {
    calls: Mutex<Vec<Call>>,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl EventStream for Gated {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        unreachable!("the writer only puts")
    }

    async fn put_records(&self, records: Vec<PutRecord>) -> Result<Vec<PutOutcome>> {
        let event_ids = records
            .iter()
            .flat_map(|r| decode_record(&r.data).expect("the writer's own record"))
            .map(|e| e.event_id)
            .collect();
        self.calls.lock().unwrap().push(Call {
            started: Instant::now(),
            event_ids,
        });
        let mut open = self.open.clone();
        open.wait_for(|o| *o).await.expect("gate kept");
        Ok((0..records.len())
            .map(|i| PutOutcome::Written {
                shard_id: "shardId-000000000000".into(),
                sequence_number: SequenceNumber::from_u128(i as u128),
            })
            .collect())
    }

    async fn open_shard(&self, _: &str, _: StartPosition) -> Result<Box<dyn ShardReader>> {
        unreachable!("the writer only puts")
    }

    async fn update_shard_count(&self, _: u32) -> Result<()> {
        unreachable!("the writer only puts")
    }
}

struct Harness {
    writer: StreamWriter,
    stream: Arc<Gated>,
    gate: watch::Sender<bool>,
}

impl Harness {
    fn start(max_concurrent_puts: usize) -> Self {
        let (gate, open) = watch::channel(true);
        let stream = Arc::new(Gated {
            calls: Mutex::default(),
            open,
        });
        let config = CollectorConfig {
            linger_ms: LINGER.as_millis() as u64,
            max_concurrent_puts,
            ..CollectorConfig::default()
        };
        let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
        let (writer, _task) = StreamWriter::spawn(stream.clone(), &config, metrics);
        Self {
            writer,
            stream,
            gate,
        }
    }

    /// A writer quiet for a linger, then event `a` in a call the stream
    /// holds, and 1 ms gone since: when that call started, and `a`'s answer.
    async fn with_stalled_call(max_concurrent_puts: usize) -> (Self, Instant, Written) {
        let harness = Self::start(max_concurrent_puts);
        tokio::time::sleep(LINGER).await;
        let start = Instant::now();
        harness.gate.send_replace(false);
        let first = harness.submit("a");
        tokio::time::sleep(Duration::from_millis(1)).await;
        (harness, start, first)
    }

    fn submit(&self, id: &str) -> Written {
        let meta = EncodedMeta::new(&Source::default(), &CollectorMeta::default());
        let mut events = EncodedEvents::with_capacity(meta, 1, 64);
        events.push(&BorrowedEnvelope {
            event_id: id.into(),
            ..BorrowedEnvelope::default()
        });
        let reservation = self.writer.reserve(events.byte_len()).unwrap();
        self.writer.submit(events, reservation).unwrap()
    }

    /// Each call's start, counted from `since`, and its events.
    fn calls(&self, since: Instant) -> Vec<(Duration, Vec<String>)> {
        let calls = self.stream.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| (c.started - since, c.event_ids.clone()))
            .collect()
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_quiet_writer_sends_at_once() {
    let harness = Harness::start(8);
    // Quiet for a while: no call started recently.
    tokio::time::sleep(LINGER).await;
    let start = Instant::now();
    harness.submit("a").await.unwrap().unwrap();
    assert_eq!(harness.calls(start), [(Duration::ZERO, ids(&["a"]))]);
}

#[tokio::test(start_paused = true)]
async fn events_gather_while_a_call_is_in_flight_and_leave_together() {
    let (harness, start, first) = Harness::with_stalled_call(1).await;
    let waiting = ["b", "c", "d"].map(|id| harness.submit(id));
    // The first call ends well within the linger of the others.
    tokio::time::sleep(Duration::from_millis(29)).await;
    harness.gate.send_replace(true);
    first.await.unwrap().unwrap();
    for written in waiting {
        written.await.unwrap().unwrap();
    }
    assert_eq!(
        harness.calls(start),
        [
            (Duration::ZERO, ids(&["a"])),
            // At once when the first call ended: one call for all three.
            (Duration::from_millis(30), ids(&["b", "c", "d"])),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_event_waits_longer_than_the_linger_behind_a_stalled_call() {
    let (harness, start, first) = Harness::with_stalled_call(2).await;
    let second = harness.submit("b");
    tokio::time::sleep(LINGER * 2).await;
    let calls = harness.calls(start);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].1, ids(&["b"]));
    // Sent one linger after it came (the clock's resolution is 1 ms).
    let waited = calls[1].0 - Duration::from_millis(1);
    assert!(
        waited >= LINGER && waited <= LINGER + Duration::from_millis(1),
        "waited {waited:?}"
    );
    harness.gate.send_replace(true);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}
