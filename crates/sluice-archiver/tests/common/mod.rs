//! What the archiver's integration tests share: writing records, running
//! the real `serve`, and checking the archive holds every record once.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::Registry;
use sluice_archiver::checkpoint::Checkpoint;
use sluice_archiver::keys::{checkpoint_key, raw_prefix};
use sluice_archiver::{ArchiverConfig, serve};
use sluice_backends::{EventStream, ObjectStore, PutOutcome, PutRecord, SequenceNumber};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Sequence numbers written, per shard.
pub type Written = BTreeMap<String, Vec<SequenceNumber>>;

/// Small objects and fast polling, so a test sees many objects, checkpoints
/// and restarts in a few seconds.
pub fn test_config() -> ArchiverConfig {
    ArchiverConfig {
        max_object_bytes: 32 << 10,
        max_object_age_secs: 1,
        shard_discovery_interval_secs: 1,
        idle_poll_millis: 50,
        ..ArchiverConfig::default()
    }
}

/// Writes `count` records (small payloads) in PutRecords batches of `batch`,
/// retrying refused entries, each batch `pause` apart; records what the
/// stream acknowledged.
pub async fn produce(
    stream: &dyn EventStream,
    first: usize,
    count: usize,
    batch: usize,
    pause: Duration,
    written: &mut Written,
) {
    let mut pending: Vec<PutRecord> = (first..first + count)
        .map(|i| PutRecord {
            partition_key: format!("user-{i}"),
            data: Bytes::from(format!("record {i} {}", "x".repeat(i % 40))),
            explicit_hash_key: None,
        })
        .collect();
    pending.reverse();
    let mut attempts = 0;
    while !pending.is_empty() {
        let chunk: Vec<PutRecord> = (0..batch).map_while(|_| pending.pop()).collect();
        let outcomes = match stream.put_records(chunk.clone()).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                attempts += 1;
                assert!(attempts < 20 && e.is_retryable(), "put_records: {e}");
                pending.extend(chunk.into_iter().rev());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut refused = Vec::new();
        for (record, outcome) in chunk.into_iter().zip(outcomes) {
            match outcome {
                PutOutcome::Written {
                    shard_id,
                    sequence_number,
                } => written.entry(shard_id).or_default().push(sequence_number),
                PutOutcome::Failed { .. } => refused.push(record),
            }
        }
        pending.extend(refused.into_iter().rev());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

pub fn total(written: &Written) -> usize {
    written.values().map(Vec::len).sum()
}

/// A running archiver: its task (abort it to crash it), its shutdown token
/// and its metrics.
pub struct Running {
    pub task: JoinHandle<()>,
    pub shutdown: CancellationToken,
    pub registry: Registry,
}

pub fn start(
    config: ArchiverConfig,
    stream: Arc<dyn EventStream>,
    stream_name: &str,
    objects: Arc<dyn ObjectStore>,
) -> Running {
    let shutdown = CancellationToken::new();
    let registry = Registry::new();
    let task = {
        let (token, registry, name) = (shutdown.clone(), registry.clone(), stream_name.to_owned());
        tokio::spawn(async move {
            serve(config, stream, name, objects, &registry, token)
                .await
                .expect("archiver serve");
        })
    };
    Running {
        task,
        shutdown,
        registry,
    }
}

impl Running {
    /// Crash: the task is dropped mid-work, buffers unflushed.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Graceful stop: buffers are flushed before it returns.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("archiver stops within 30 s")
            .expect("archiver task");
    }

    /// Sum of a counter over all its label values.
    pub fn counter(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                label.is_none_or(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == k && l.value() == v)
                })
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

pub async fn checkpoint(
    objects: &dyn ObjectStore,
    stream: &str,
    shard: &str,
) -> Option<Checkpoint> {
    let object = objects.get(&checkpoint_key(stream, shard)).await.unwrap()?;
    Some(serde_json::from_slice(&object.body).unwrap())
}

/// Waits until every shard's checkpoint covers its last written record.
pub async fn wait_archived(
    objects: &dyn ObjectStore,
    stream: &str,
    written: &Written,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut behind = Vec::new();
        for (shard, seqs) in written {
            let last = seqs.iter().max().unwrap();
            let done = checkpoint(objects, stream, shard)
                .await
                .and_then(|c| c.sequence)
                .is_some_and(|s| &s >= last);
            if !done {
                behind.push(shard.clone());
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shards not archived in {timeout:?}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One archived object, as its key and header describe it.
#[derive(Debug)]
pub struct ArchivedObject {
    pub key: String,
    pub shard: String,
    pub first: SequenceNumber,
    pub last: SequenceNumber,
}

/// Decodes every raw object of the stream (with `decode_archive`) and
/// checks each against its key: returns the objects and, per shard and
/// sequence number, how many objects hold it.
pub async fn archived(
    objects: &dyn ObjectStore,
    stream: &str,
) -> (
    Vec<ArchivedObject>,
    HashMap<(String, SequenceNumber), usize>,
) {
    let mut found = Vec::new();
    let mut counts = HashMap::new();
    for meta in objects.list(&raw_prefix(stream)).await.unwrap() {
        let body = objects.get(&meta.key).await.unwrap().unwrap().body;
        let (header, records) = sluice_events::decode_archive(&body).unwrap();
        assert_eq!(header.stream, stream);
        let expected_tail = format!(
            "/{}/{}-{}.pb.zst",
            header.shard_id, header.first_sequence, header.last_sequence
        );
        assert!(
            meta.key.ends_with(&expected_tail),
            "{} vs header {header:?}",
            meta.key
        );
        let mut previous: Option<SequenceNumber> = None;
        for record in &records {
            let seq = SequenceNumber::parse(&record.sequence_number).unwrap();
            assert!(
                previous.as_ref().is_none_or(|p| p < &seq),
                "records out of order in {}",
                meta.key
            );
            *counts
                .entry((header.shard_id.clone(), seq.clone()))
                .or_insert(0) += 1;
            previous = Some(seq);
        }
        found.push(ArchivedObject {
            key: meta.key,
            shard: header.shard_id,
            first: SequenceNumber::parse(&header.first_sequence).unwrap(),
            last: SequenceNumber::parse(&header.last_sequence).unwrap(),
        });
    }
    (found, counts)
}

/// Every written record is in exactly one object, and the archive holds
/// nothing else.
pub async fn assert_exactly_once(
    objects: &dyn ObjectStore,
    stream: &str,
    written: &Written,
) -> Vec<ArchivedObject> {
    let (found, counts) = archived(objects, stream).await;
    let mut missing = Vec::new();
    for (shard, seqs) in written {
        for seq in seqs {
            match counts.get(&(shard.clone(), seq.clone())) {
                Some(1) => {}
                Some(n) => panic!("{shard} {seq} archived {n} times"),
                None => missing.push(format!("{shard}/{seq}")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} records not archived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        counts.len(),
        total(written),
        "the archive holds records nobody wrote"
    );
    found
}
