//! Which backends a stage uses, from configuration: the `[aws]`, `[stream]`,
//! `[object_store]` and `[queues]` sections every Sluice service shares.
//! `connect` builds them; `provision` creates the AWS resources they need.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aws::{
    AwsClients, AwsConfig, KinesisStream, S3ObjectStore, SqsQueue, ensure_bucket,
    ensure_bucket_notification, ensure_queue, ensure_stream, provision::queue_url,
};
use crate::local::{LocalObjectStore, LocalQueue, LocalStream, NotificationRule, QueueOptions};
use crate::{BackendError, EventStream, ObjectStore, Queue, Result};

/// The prefix whose new objects are announced on the transcode queue.
pub const RAW_PREFIX: &str = "raw/";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendsConfig {
    #[serde(skip_serializing)]
    pub aws: AwsConfig,
    pub stream: StreamConfig,
    pub object_store: ObjectStoreConfig,
    pub queues: QueuesConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Kinesis,
    #[default]
    Local,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    pub kind: StreamKind,
    pub name: String,
    /// Shards a new stream is created with (`sluice setup`, or a new local
    /// stream directory).
    pub shards: u32,
    /// Local only: the stream's directory.
    pub dir: PathBuf,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            kind: StreamKind::default(),
            name: "sluice-events".into(),
            shards: 4,
            dir: "data/stream".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    S3,
    #[default]
    Local,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    pub kind: ObjectStoreKind,
    pub bucket: String,
    /// Local only: the root directory of the objects.
    pub dir: PathBuf,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        Self {
            kind: ObjectStoreKind::default(),
            bucket: "sluice-events".into(),
            dir: "data/objects".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Sqs,
    #[default]
    Local,
}

/// Each SQS queue is found by its URL when set, else by its name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesConfig {
    pub kind: QueueKind,
    pub transcode_name: String,
    pub transcode_url: Option<String>,
    pub transcode_dlq_name: String,
    pub transcode_dlq_url: Option<String>,
    pub load_name: String,
    pub load_url: Option<String>,
    pub load_dlq_name: String,
    pub load_dlq_url: Option<String>,
    /// Default visibility timeout of both queues; stages extend it while
    /// they work on a message.
    pub visibility_timeout_secs: u64,
    /// Receives after which the queue itself dead-letters a message (the
    /// redrive policy). Stages dead-letter earlier, with the reason; this is
    /// the backstop for a stage that crashes on a message every time.
    pub max_receive_count: u32,
    /// Local only: the directory holding one directory per queue.
    pub dir: PathBuf,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            kind: QueueKind::default(),
            transcode_name: "sluice-transcode".into(),
            transcode_url: None,
            transcode_dlq_name: "sluice-transcode-dlq".into(),
            transcode_dlq_url: None,
            load_name: "sluice-load".into(),
            load_url: None,
            load_dlq_name: "sluice-load-dlq".into(),
            load_dlq_url: None,
            visibility_timeout_secs: 60,
            max_receive_count: 10,
            dir: "data/queues".into(),
        }
    }
}

impl BackendsConfig {
    /// Everything on local disk under `data_dir`: the single-machine mode.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            aws: AwsConfig::default(),
            stream: StreamConfig {
                kind: StreamKind::Local,
                dir: data_dir.join("stream"),
                ..StreamConfig::default()
            },
            object_store: ObjectStoreConfig {
                kind: ObjectStoreKind::Local,
                dir: data_dir.join("objects"),
                ..ObjectStoreConfig::default()
            },
            queues: QueuesConfig {
                kind: QueueKind::Local,
                dir: data_dir.join("queues"),
                ..QueuesConfig::default()
            },
        }
    }

    /// Everything on AWS APIs at `endpoint` (an emulator), with the default
    /// resource names.
    pub fn emulated_aws(endpoint: impl Into<String>) -> Self {
        Self {
            aws: AwsConfig::emulator(endpoint),
            stream: StreamConfig {
                kind: StreamKind::Kinesis,
                ..StreamConfig::default()
            },
            object_store: ObjectStoreConfig {
                kind: ObjectStoreKind::S3,
                ..ObjectStoreConfig::default()
            },
            queues: QueuesConfig {
                kind: QueueKind::Sqs,
                ..QueuesConfig::default()
            },
        }
    }

    fn uses_aws(&self) -> bool {
        self.stream.kind == StreamKind::Kinesis
            || self.object_store.kind == ObjectStoreKind::S3
            || self.queues.kind == QueueKind::Sqs
    }
}

/// The connected backends a stage takes its parts from.
#[derive(Clone)]
pub struct Backends {
    pub stream_name: String,
    pub stream: Arc<dyn EventStream>,
    pub objects: Arc<dyn ObjectStore>,
    pub transcode_queue: Arc<dyn Queue>,
    pub transcode_dlq: Arc<dyn Queue>,
    pub load_queue: Arc<dyn Queue>,
    pub load_dlq: Arc<dyn Queue>,
}

/// Opens every backend the configuration names. Local directories are
/// created as needed; AWS resources must exist (see [`provision`]).
pub async fn connect(config: &BackendsConfig) -> Result<Backends> {
    let clients = match config.uses_aws() {
        true => Some(AwsClients::from_config(&config.aws).await?),
        false => None,
    };
    let aws = || {
        clients
            .as_ref()
            .expect("AWS clients exist when a backend uses AWS")
    };
    let queues = &config.queues;
    let (transcode_queue, transcode_dlq, load_queue, load_dlq) = match queues.kind {
        QueueKind::Local => {
            let (transcode, transcode_dlq) =
                local_queue_pair(queues, &queues.transcode_name, &queues.transcode_dlq_name)?;
            let (load, load_dlq) =
                local_queue_pair(queues, &queues.load_name, &queues.load_dlq_name)?;
            (transcode, transcode_dlq, load, load_dlq)
        }
        QueueKind::Sqs => {
            let sqs = &aws().sqs;
            (
                sqs_queue(sqs, &queues.transcode_name, &queues.transcode_url).await?,
                sqs_queue(sqs, &queues.transcode_dlq_name, &queues.transcode_dlq_url).await?,
                sqs_queue(sqs, &queues.load_name, &queues.load_url).await?,
                sqs_queue(sqs, &queues.load_dlq_name, &queues.load_dlq_url).await?,
            )
        }
    };
    let objects: Arc<dyn ObjectStore> = match config.object_store.kind {
        ObjectStoreKind::Local => Arc::new(
            LocalObjectStore::open(&config.object_store.dir)?
                .with_bucket_name(&config.object_store.bucket)
                .with_notification(
                    NotificationRule::new(transcode_queue.clone()).prefix(RAW_PREFIX),
                ),
        ),
        ObjectStoreKind::S3 => Arc::new(S3ObjectStore::from_client(
            aws().s3.clone(),
            &config.object_store.bucket,
        )),
    };
    let stream: Arc<dyn EventStream> = match config.stream.kind {
        StreamKind::Local => Arc::new(LocalStream::open(&config.stream.dir, config.stream.shards)?),
        StreamKind::Kinesis => Arc::new(KinesisStream::from_client(
            aws().kinesis.clone(),
            &config.stream.name,
        )),
    };
    Ok(Backends {
        stream_name: config.stream.name.clone(),
        stream,
        objects,
        transcode_queue,
        transcode_dlq,
        load_queue,
        load_dlq,
    })
}

fn local_queue_pair(
    config: &QueuesConfig,
    name: &str,
    dlq_name: &str,
) -> Result<(Arc<dyn Queue>, Arc<dyn Queue>)> {
    let visibility = Duration::from_secs(config.visibility_timeout_secs);
    let dlq: Arc<dyn Queue> = Arc::new(LocalQueue::open(
        config.dir.join(dlq_name),
        QueueOptions::default(),
    )?);
    let options = QueueOptions::default()
        .visibility_timeout(visibility)
        .dead_letter(dlq.clone(), config.max_receive_count);
    let queue: Arc<dyn Queue> = Arc::new(LocalQueue::open(config.dir.join(name), options)?);
    Ok((queue, dlq))
}

async fn sqs_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    url: &Option<String>,
) -> Result<Arc<dyn Queue>> {
    let url = match url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => url.to_owned(),
        None => queue_url(sqs, name).await?.ok_or_else(|| {
            BackendError::NotFound(format!("SQS queue {name} (run `sluice setup`)"))
        })?,
    };
    Ok(Arc::new(SqsQueue::from_client(sqs.clone(), url)))
}

/// What [`provision`] created or found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub stream_arn: Option<String>,
    pub transcode_queue_url: Option<String>,
    pub load_queue_url: Option<String>,
}

/// Creates, idempotently, every AWS resource the configuration names: the
/// stream, the bucket, both queues with their dead-letter queues and redrive
/// policies, and the bucket's ObjectCreated notification on `raw/` to the
/// transcode queue. Local backends need nothing beyond [`connect`].
pub async fn provision(config: &BackendsConfig) -> Result<Provisioned> {
    let mut done = Provisioned::default();
    if !config.uses_aws() {
        connect(config).await?;
        return Ok(done);
    }
    let clients = AwsClients::from_config(&config.aws).await?;
    if config.stream.kind == StreamKind::Kinesis {
        done.stream_arn =
            Some(ensure_stream(&clients.kinesis, &config.stream.name, config.stream.shards).await?);
    }
    if config.object_store.kind == ObjectStoreKind::S3 {
        ensure_bucket(&clients.s3, &config.object_store.bucket).await?;
    }
    if config.queues.kind == QueueKind::Sqs {
        let q = &config.queues;
        let visibility = Duration::from_secs(q.visibility_timeout_secs);
        let transcode = ensure_queue(
            &clients.sqs,
            &q.transcode_name,
            visibility,
            Some((&q.transcode_dlq_name, q.max_receive_count)),
        )
        .await?;
        let load = ensure_queue(
            &clients.sqs,
            &q.load_name,
            visibility,
            Some((&q.load_dlq_name, q.max_receive_count)),
        )
        .await?;
        if config.object_store.kind == ObjectStoreKind::S3 {
            ensure_bucket_notification(
                &clients.s3,
                &clients.sqs,
                &config.object_store.bucket,
                &transcode.queue.url,
                RAW_PREFIX,
                "",
            )
            .await?;
        }
        done.transcode_queue_url = Some(transcode.queue.url);
        done.load_queue_url = Some(load.queue.url);
    }
    Ok(done)
}
