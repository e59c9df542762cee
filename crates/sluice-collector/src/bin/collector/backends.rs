//! Builds the stream and object store from the config file.
//!
//! Stands in until `sluice_backends::config::connect` exists; the sections
//! mirror the ones it will read (`[aws]`, `[stream]`, `[object_store]`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use sluice_backends::aws::{AwsClients, AwsConfig, KinesisStream, S3ObjectStore};
use sluice_backends::local::{LocalObjectStore, LocalStream};
use sluice_backends::{EventStream, ObjectStore};

/// Credentials come from the SDK's default chain (environment, profile,
/// IRSA, instance metadata).
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
pub struct StreamSection {
    /// "local" or "kinesis".
    pub kind: String,
    pub name: String,
    pub shards: u32,
    pub dir: PathBuf,
}

impl Default for StreamSection {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            name: "sluice-events".into(),
            shards: 2,
            dir: "data/stream".into(),
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

pub async fn connect(
    aws: &AwsSection,
    stream: &StreamSection,
    objects: &ObjectStoreSection,
) -> anyhow::Result<(Arc<dyn EventStream>, Arc<dyn ObjectStore>)> {
    let needs_aws = stream.kind == "kinesis" || objects.kind == "s3";
    let clients = match needs_aws {
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
    let stream: Arc<dyn EventStream> = match (stream.kind.as_str(), &clients) {
        ("local", _) => Arc::new(LocalStream::open(&stream.dir, stream.shards)?),
        ("kinesis", Some(c)) => Arc::new(KinesisStream::from_client(
            c.kinesis.clone(),
            stream.name.clone(),
        )),
        (other, _) => bail!("stream.kind {other:?}: expected \"local\" or \"kinesis\""),
    };
    let objects: Arc<dyn ObjectStore> = match (objects.kind.as_str(), &clients) {
        ("local", _) => Arc::new(LocalObjectStore::open(&objects.dir)?),
        ("s3", Some(c)) => Arc::new(S3ObjectStore::from_client(
            c.s3.clone(),
            objects.bucket.clone(),
        )),
        (other, _) => bail!("object_store.kind {other:?}: expected \"local\" or \"s3\""),
    };
    Ok((stream, objects))
}
