//! Builds the object store and the load queues from the config file.
//!
//! Stands in until `sluice_backends::config::connect` exists; the sections
//! mirror the ones it will read (`[aws]`, `[object_store]`, `[queues]`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sluice_backends::aws::{AwsClients, AwsConfig, S3ObjectStore, SqsQueue};
use sluice_backends::local::{LocalObjectStore, LocalQueue, QueueOptions};
use sluice_backends::{ObjectStore, Queue};

/// Credentials come from the SDK's default chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AwsSection {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
}

impl Default for AwsSection {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            force_path_style: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectStoreSection {
    /// "local" or "s3".
    pub kind: String,
    pub bucket: String,
    pub dir: PathBuf,
}

impl Default for ObjectStoreSection {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            bucket: "sluice".into(),
            dir: "data/objects".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct QueuesSection {
    /// "local" or "sqs".
    pub kind: String,
    /// sqs: queue URLs.
    pub load_url: Option<String>,
    pub load_dlq_url: Option<String>,
    /// local: `<dir>/load` and `<dir>/load-dlq`.
    pub dir: PathBuf,
}

impl Default for QueuesSection {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            load_url: None,
            load_dlq_url: None,
            dir: "data/queues".into(),
        }
    }
}

pub struct Backends {
    pub objects: Arc<dyn ObjectStore>,
    pub load_queue: Arc<dyn Queue>,
    pub load_dlq: Arc<dyn Queue>,
}

pub async fn connect(
    aws: &AwsSection,
    objects: &ObjectStoreSection,
    queues: &QueuesSection,
) -> anyhow::Result<Backends> {
    let clients = match objects.kind == "s3" || queues.kind == "sqs" {
        true => Some(
            AwsClients::from_config(&AwsConfig {
                region: aws.region.clone(),
                endpoint_url: aws.endpoint_url.clone(),
                force_path_style: aws.force_path_style,
                ..AwsConfig::default()
            })
            .await?,
        ),
        false => None,
    };
    let object_store: Arc<dyn ObjectStore> = match (objects.kind.as_str(), &clients) {
        ("local", _) => Arc::new(LocalObjectStore::open(&objects.dir)?),
        ("s3", Some(c)) => Arc::new(S3ObjectStore::from_client(
            c.s3.clone(),
            objects.bucket.clone(),
        )),
        (other, _) => bail!("object_store.kind {other:?}: expected \"local\" or \"s3\""),
    };
    let (load_queue, load_dlq): (Arc<dyn Queue>, Arc<dyn Queue>) =
        match (queues.kind.as_str(), &clients) {
            ("local", _) => (
                Arc::new(LocalQueue::open(
                    queues.dir.join("load"),
                    QueueOptions::default(),
                )?),
                Arc::new(LocalQueue::open(
                    queues.dir.join("load-dlq"),
                    QueueOptions::default(),
                )?),
            ),
            ("sqs", Some(c)) => {
                let url = |url: &Option<String>, key: &str| {
                    url.clone()
                        .with_context(|| format!("queues.{key} is required for kind = \"sqs\""))
                };
                (
                    Arc::new(SqsQueue::from_client(
                        c.sqs.clone(),
                        url(&queues.load_url, "load_url")?,
                    )),
                    Arc::new(SqsQueue::from_client(
                        c.sqs.clone(),
                        url(&queues.load_dlq_url, "load_dlq_url")?,
                    )),
                )
            }
            (other, _) => bail!("queues.kind {other:?}: expected \"local\" or \"sqs\""),
        };
    Ok(Backends {
        objects: object_store,
        load_queue,
        load_dlq,
    })
}
