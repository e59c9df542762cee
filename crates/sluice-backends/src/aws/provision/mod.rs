//! Creates the stream, buckets and queues Sluice needs, idempotently: each
//! `ensure_*` first looks for the resource, creates it only when missing,
//! and converges settings it owns. Running `sluice setup` twice is safe, and
//! with resources made elsewhere (Terraform) it needs only read permissions.

mod notification;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::Client as KinesisClient;
use aws_sdk_s3::Client as S3Client;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::QueueAttributeName;

pub use notification::ensure_bucket_notification;

use super::errors::{code_of, from_sdk, status_of};
use super::kinesis::{describe_summary, wait_active};
use crate::{BackendError, Result};

/// A new stream usually turns ACTIVE within a minute.
const CREATE_WAIT: Duration = Duration::from_secs(5 * 60);
/// Failed messages are kept as long as SQS allows (14 days) for inspection.
const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;

/// A queue's two names: the URL the SQS API takes and the ARN that policies,
/// redrive and S3 notifications take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsuredQueue {
    pub queue: QueueRef,
    pub dead_letter: Option<QueueRef>,
}

/// Creates the stream with `shards` shards unless it exists, waits until it
/// is ACTIVE, and returns its ARN. An existing stream is not resharded: that
/// is an operational decision (`EventStream::update_shard_count`).
pub async fn ensure_stream(client: &KinesisClient, name: &str, shards: u32) -> Result<String> {
    if shards == 0 {
        return Err(BackendError::InvalidArgument(
            "a stream needs at least one shard".into(),
        ));
    }
    match describe_summary(client, name).await {
        Ok(summary) => {
            if summary.open_shard_count != shards as i32 {
                tracing::warn!(
                    stream = name,
                    open_shards = summary.open_shard_count,
                    wanted = shards,
                    "stream exists with a different shard count; leaving it"
                );
            }
        }
        Err(BackendError::NotFound(_)) => {
            let created = client
                .create_stream()
                .stream_name(name)
                .shard_count(shards as i32)
                .send()
                .await;
            match created {
                Ok(_) => tracing::info!(stream = name, shards, "created stream"),
                // Someone else created it between our look and our create.
                Err(e) if code_of(&e) == Some("ResourceInUseException") => {}
                Err(e) => return Err(from_sdk("kinesis", &format!("CreateStream {name}"), e)),
            }
        }
        Err(e) => return Err(e),
    }
    wait_active(client, name, CREATE_WAIT).await?;
    Ok(describe_summary(client, name).await?.stream_arn)
}

/// Creates the bucket unless it exists, in the client's region.
pub async fn ensure_bucket(client: &S3Client, name: &str) -> Result<()> {
    let head = client.head_bucket().bucket(name).send().await;
    match head {
        Ok(_) => return Ok(()),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(from_sdk("s3", &format!("HeadBucket {name}"), e)),
    }
    let mut create = client.create_bucket().bucket(name);
    // us-east-1 is the default location and rejects being named explicitly.
    let region = client.config().region().map(|r| r.as_ref().to_owned());
    if let Some(region) = region.filter(|r| r != "us-east-1") {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {
            tracing::info!(bucket = name, "created bucket");
            Ok(())
        }
        Err(e) if code_of(&e) == Some("BucketAlreadyOwnedByYou") => Ok(()),
        Err(e) => Err(from_sdk("s3", &format!("CreateBucket {name}"), e)),
    }
}

/// Creates the queue (and its dead-letter queue) unless they exist, and sets
/// the visibility timeout and redrive policy either way, so a changed
/// setting converges on the next run.
pub async fn ensure_queue(
    client: &SqsClient,
    name: &str,
    visibility_timeout: Duration,
    dead_letter: Option<(&str, u32)>,
) -> Result<EnsuredQueue> {
    let mut attributes = HashMap::from([(
        QueueAttributeName::VisibilityTimeout,
        visibility_timeout.as_secs().to_string(),
    )]);
    let dead_letter = match dead_letter {
        Some((dlq_name, max_receive_count)) => {
            if max_receive_count == 0 {
                return Err(BackendError::InvalidArgument(
                    "max_receive_count must be at least 1".into(),
                ));
            }
            let dlq_attributes = HashMap::from([(
                QueueAttributeName::MessageRetentionPeriod,
                DEAD_LETTER_RETENTION_SECS.to_string(),
            )]);
            let dlq = ensure_queue_with(client, dlq_name, dlq_attributes).await?;
            let policy = serde_json::json!({
                "deadLetterTargetArn": dlq.arn,
                "maxReceiveCount": max_receive_count,
            });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
            Some(dlq)
        }
        None => None,
    };
    let queue = ensure_queue_with(client, name, attributes).await?;
    Ok(EnsuredQueue { queue, dead_letter })
}

async fn ensure_queue_with(
    client: &SqsClient,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<QueueRef> {
    let url = match queue_url(client, name).await? {
        Some(url) => {
            client
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| from_sdk("sqs", &format!("SetQueueAttributes {name}"), e))?;
            url
        }
        None => {
            let created = client
                .create_queue()
                .queue_name(name)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| from_sdk("sqs", &format!("CreateQueue {name}"), e))?;
            tracing::info!(queue = name, "created queue");
            created.queue_url.ok_or_else(|| BackendError::Service {
                service: "sqs",
                message: format!("CreateQueue {name}: no queue url"),
                retryable: false,
            })?
        }
    };
    let arn = queue_arn(client, &url).await?;
    Ok(QueueRef { url, arn })
}

/// The queue's URL, or `None` if there is no such queue.
pub async fn queue_url(client: &SqsClient, name: &str) -> Result<Option<String>> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(output) => Ok(output.queue_url),
        Err(e) if matches!(code_of(&e), Some("QueueDoesNotExist" | "NonExistentQueue")) => Ok(None),
        Err(e) => Err(from_sdk("sqs", &format!("GetQueueUrl {name}"), e)),
    }
}

pub async fn queue_arn(client: &SqsClient, queue_url: &str) -> Result<String> {
    let output = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| from_sdk("sqs", &format!("GetQueueAttributes {queue_url}"), e))?;
    output
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| BackendError::Service {
            service: "sqs",
            message: format!("GetQueueAttributes {queue_url}: no QueueArn"),
            retryable: false,
        })
}
