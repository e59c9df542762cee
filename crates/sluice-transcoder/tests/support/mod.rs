//! What the transcoder tests share: raw archive objects built the way the
//! stream-archiver builds them, a running transcoder on the local backend
//! or on moto (S3 + SQS, with the bucket notification provisioned), and
//! Parquet read back with the `parquet` crate.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prometheus::Registry;
use sluice_backends::aws::{
    AwsClients, AwsConfig, S3ObjectStore, SqsQueue, ensure_bucket, ensure_bucket_notification,
    ensure_queue,
};
use sluice_backends::local::{LocalObjectStore, LocalQueue, NotificationRule, QueueOptions};
use sluice_backends::{ObjectStore, PutCondition, Queue};
use sluice_events::proto::{ArchiveHeader, ArchivedRecord, Envelope, EventType, LoadManifest};
use sluice_events::{ArchiveWriter, decode_manifest, encode_record};
use sluice_testkit::{MotoServer, unique_name};
pub use sluice_transcoder::TranscoderConfig;
use sluice_transcoder::{TranscodeError, serve};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// 2024-05-01T12:00:00Z.
pub const T0: i64 = 1_714_564_800_000_000;
pub const STREAM: &str = "events";
pub const SHARD: &str = "shardId-000000000001";

/// A text cell, as the readers below give it.
pub fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

pub fn track(id: &str, event: &str, properties: &str) -> Envelope {
    Envelope {
        event_id: id.into(),
        r#type: EventType::Track as i32,
        event: event.into(),
        user_id: "user-1".into(),
        anonymous_id: "anon-1".into(),
        timestamp_us: T0,
        sent_at_us: T0 + 1_000,
        received_at_us: T0 + 2_000,
        properties_json: properties.into(),
        context_json: r#"{"library":{"name":"analytics.js","version":"4.1.0"},"ip":"10.0.0.1"}"#
            .into(),
        ..Default::default()
    }
}

pub fn other(id: &str, event_type: EventType) -> Envelope {
    Envelope {
        event_id: id.into(),
        r#type: event_type as i32,
        user_id: "user-1".into(),
        timestamp_us: T0,
        received_at_us: T0 + 2_000,
        context_json: r#"{"library":{"name":"analytics-ios"}}"#.into(),
        ..Default::default()
    }
}

/// The raw key and bytes of an archive holding one stream record per entry
/// of `records`, starting at sequence number `first`.
pub fn archive(first: u64, records: &[Vec<Envelope>]) -> (String, Vec<u8>) {
    let data: Vec<Vec<u8>> = records.iter().map(|r| encode_record(r).to_vec()).collect();
    archive_of_records(first, data)
}

/// Like [`archive`], with the stream records' bytes given as they are.
pub fn archive_of_records(first: u64, records: Vec<Vec<u8>>) -> (String, Vec<u8>) {
    let mut writer = ArchiveWriter::new();
    let last = first + records.len() as u64 - 1;
    for (i, data) in records.into_iter().enumerate() {
        writer.push(&ArchivedRecord {
            sequence_number: (first + i as u64).to_string(),
            arrival_us: T0 + 5_000,
            partition_key: format!("pk-{i}"),
            data,
        });
    }
    let header = ArchiveHeader {
        stream: STREAM.into(),
        shard_id: SHARD.into(),
        first_sequence: first.to_string(),
        last_sequence: last.to_string(),
        record_count: last - first + 1,
        created_at_us: T0 + 60_000_000,
    };
    (raw_key(first, last), writer.finish(&header))
}

pub fn raw_key(first: u64, last: u64) -> String {
    format!("raw/{STREAM}/dt=2024-05-01/hh=12/{SHARD}/{first}-{last}.pb.zst")
}

pub fn table_key(table: &str, first: u64, last: u64) -> String {
    format!("tables/{table}/dt=2024-05-01/{STREAM}-{SHARD}-{first}-{last}.parquet")
}

pub fn test_config() -> TranscoderConfig {
    TranscoderConfig {
        concurrency: 2,
        visibility_timeout_secs: 30,
        max_attempts: 2,
        wait_secs: 1,
        retry_delay_secs: 0,
        ..Default::default()
    }
}

/// A transcoder running on one set of backends.
pub struct Harness {
    pub backend: &'static str,
    pub objects: Arc<dyn ObjectStore>,
    pub transcode_queue: Arc<dyn Queue>,
    pub dlq: Arc<dyn Queue>,
    pub load_queue: Arc<dyn Queue>,
    pub registry: Registry,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), TranscodeError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// On-disk backends in a temp dir; the store notifies the transcode
    /// queue of every key under `raw/`.
    pub fn local(config: TranscoderConfig) -> Self {
        Self::local_wrapped(config, |objects| objects)
    }

    /// [`Harness::local`], with the transcoder seeing the store through
    /// `wrap` (a double that injects delays or faults).
    pub fn local_wrapped(
        config: TranscoderConfig,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let queue = |name: &str| -> Arc<dyn Queue> {
            Arc::new(LocalQueue::open(dir.path().join(name), QueueOptions::default()).unwrap())
        };
        let transcode_queue = queue("transcode");
        let objects = LocalObjectStore::open(dir.path().join("objects"))
            .unwrap()
            .with_notification(NotificationRule::new(transcode_queue.clone()).prefix("raw/"));
        let (dlq, load_queue) = (queue("transcode-dlq"), queue("load"));
        Self::start(
            "local",
            config,
            wrap(Arc::new(objects)),
            transcode_queue,
            dlq,
            load_queue,
            Some(dir),
        )
    }

    /// S3 and SQS on moto, provisioned as `sluice setup` would: a bucket
    /// whose `raw/` keys notify the transcode queue.
    pub async fn moto(config: TranscoderConfig) -> Self {
        let moto = MotoServer::shared().await;
        let clients = AwsClients::from_config(&AwsConfig::emulator(moto.endpoint()))
            .await
            .unwrap();
        let bucket = unique_name("transcoder");
        ensure_bucket(&clients.s3, &bucket).await.unwrap();
        let queue = |name: String| {
            let clients = clients.clone();
            async move {
                let ensured = ensure_queue(&clients.sqs, &name, Duration::from_secs(30), None)
                    .await
                    .unwrap();
                ensured.queue.url
            }
        };
        let transcode_url = queue(unique_name("transcode")).await;
        ensure_bucket_notification(
            &clients.s3,
            &clients.sqs,
            &bucket,
            &transcode_url,
            "raw/",
            "",
        )
        .await
        .unwrap();
        let sqs = |url: String| -> Arc<dyn Queue> {
            Arc::new(SqsQueue::from_client(clients.sqs.clone(), url))
        };
        let dlq = sqs(queue(unique_name("transcode-dlq")).await);
        let load_queue = sqs(queue(unique_name("load")).await);
        Self::start(
            "moto",
            config,
            Arc::new(S3ObjectStore::from_client(clients.s3.clone(), bucket)),
            sqs(transcode_url),
            dlq,
            load_queue,
            None,
        )
    }

    pub async fn on(backend: &str, config: TranscoderConfig) -> Self {
        match backend {
            "local" => Self::local(config),
            "moto" => Self::moto(config).await,
            other => panic!("no backend {other}"),
        }
    }

    fn start(
        backend: &'static str,
        config: TranscoderConfig,
        objects: Arc<dyn ObjectStore>,
        transcode_queue: Arc<dyn Queue>,
        dlq: Arc<dyn Queue>,
        load_queue: Arc<dyn Queue>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let registry = Registry::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (objects, q, d, l) = (
                objects.clone(),
                transcode_queue.clone(),
                dlq.clone(),
                load_queue.clone(),
            );
            let (registry, shutdown) = (registry.clone(), shutdown.clone());
            async move { serve(config, objects, q, d, l, &registry, shutdown).await }
        });
        Self {
            backend,
            objects,
            transcode_queue,
            dlq,
            load_queue,
            registry,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn put_raw(&self, key: &str, body: Vec<u8>) {
        self.objects
            .put(key, Bytes::from(body), PutCondition::None)
            .await
            .unwrap();
    }

    /// The next message on `queue` (deleted), within `within`.
    async fn next_body(queue: &Arc<dyn Queue>, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let messages = queue
                .receive(1, Duration::from_secs(1), Some(Duration::from_secs(30)))
                .await
                .unwrap();
            if let Some(m) = messages.into_iter().next() {
                queue.delete(&m.receipt_handle).await.unwrap();
                return Some(m.body);
            }
        }
        None
    }

    pub async fn next_manifest(&self) -> LoadManifest {
        let body = Self::next_body(&self.load_queue, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{}: no load manifest within 30 s", self.backend));
        decode_manifest(&body).unwrap()
    }

    /// Whether a load manifest arrives within `within`.
    pub async fn no_manifest_within(&self, within: Duration) -> bool {
        Self::next_body(&self.load_queue, within).await.is_none()
    }

    pub async fn next_dead_letter(&self) -> serde_json::Value {
        let body = Self::next_body(&self.dlq, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{}: nothing dead-lettered within 30 s", self.backend));
        serde_json::from_str(&body).unwrap()
    }

    pub async fn bytes(&self, key: &str) -> Bytes {
        self.objects
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no object {key}"))
            .body
    }

    pub async fn table(&self, key: &str) -> Table {
        Table::read(self.bytes(key).await)
    }

    /// The sum of a counter's or gauge's series, those with label value
    /// `cause` only when given.
    pub fn metric(&self, name: &str, cause: Option<&str>) -> f64 {
        use prometheus::proto::MetricType;
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter().map(move |m| (f.get_field_type(), m)))
            .filter(|(_, m)| cause.is_none_or(|c| m.get_label().iter().any(|l| l.value() == c)))
            .map(|(kind, m)| match kind {
                MetricType::COUNTER => m.get_counter().get_value(),
                _ => m.get_gauge().get_value(),
            })
            .sum()
    }

    /// Stops the transcoder and waits for it; it must have ended cleanly.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("serve stops within 30 s of shutdown")
            .unwrap()
            .unwrap();
    }
}

/// A Parquet file read back: its Arrow schema and all its rows.
pub struct Table {
    pub schema: SchemaRef,
    pub batch: RecordBatch,
}

impl Table {
    pub fn read(bytes: Bytes) -> Table {
        // Test files are small: one batch holds them whole.
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .with_batch_size(1 << 20)
            .build()
            .unwrap();
        let schema = reader.schema();
        let mut batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert!(batches.len() <= 1, "{} batches", batches.len());
        let batch = batches
            .pop()
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        Table { schema, batch }
    }

    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn data_type(&self, name: &str) -> DataType {
        self.schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("no column {name} in {:?}", self.column_names()))
            .data_type()
            .clone()
    }

    fn column(&self, name: &str) -> &dyn Array {
        self.batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.column_names()))
            .as_ref()
    }

    pub fn strings(&self, name: &str) -> Vec<Option<String>> {
        self.column(name)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    pub fn ints(&self, name: &str) -> Vec<Option<i64>> {
        self.column(name)
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    pub fn floats(&self, name: &str) -> Vec<Option<f64>> {
        self.column(name)
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    }

    pub fn bools(&self, name: &str) -> Vec<Option<bool>> {
        self.column(name).as_boolean().iter().collect()
    }

    pub fn times(&self, name: &str) -> Vec<Option<i64>> {
        self.column(name)
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect()
    }

    /// Column names by the JSON path they were flattened from
    /// (`["properties", "a", "b"]`), from the `sluice.path` field metadata.
    pub fn by_path(&self) -> HashMap<Vec<String>, String> {
        self.schema
            .fields()
            .iter()
            .filter_map(|f| {
                let path = f.metadata().get(sluice_transcoder::PATH_METADATA)?;
                Some((serde_json::from_str(path).unwrap(), f.name().clone()))
            })
            .collect()
    }
}
