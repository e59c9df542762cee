//! [`EventStream`] on Amazon Kinesis Data Streams.

mod limits;
mod reader;

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, Shard, StreamStatus};

pub use limits::{
    MAX_CALL_BYTES, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES, MAX_RECORDS_PER_CALL,
    check_put_records,
};
pub use reader::KinesisShardReader;

use super::errors::from_sdk;
use crate::{
    BackendError, EventStream, PutOutcome, PutRecord, Result, SequenceNumber, ShardInfo,
    ShardReader, StartPosition,
};

const SERVICE: &str = "kinesis";

/// ListShards accepts up to 10,000 per page. Asking for the maximum keeps
/// almost every stream to one page, which also sidesteps moto's broken
/// second page (see AWS-EMULATOR.md); paging stays correct for AWS.
const LIST_SHARDS_PAGE: i32 = 10_000;

/// Resharding a large stream can take a long time; give up waiting after this.
const RESHARD_WAIT: Duration = Duration::from_secs(30 * 60);

#[derive(Clone, Debug)]
pub struct KinesisStream {
    client: Client,
    stream_name: String,
}

impl KinesisStream {
    pub fn new(sdk: &SdkConfig, stream_name: impl Into<String>) -> Self {
        Self::from_client(Client::new(sdk), stream_name)
    }

    pub fn from_client(client: Client, stream_name: impl Into<String>) -> Self {
        Self {
            client,
            stream_name: stream_name.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }
}

#[async_trait]
impl EventStream for KinesisStream {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        list_shards(&self.client, &self.stream_name).await
    }

    async fn put_records(&self, records: Vec<PutRecord>) -> Result<Vec<PutOutcome>> {
        if records.is_empty() {
            // PutRecords requires at least one entry; nothing to do is not an error.
            return Ok(Vec::new());
        }
        check_put_records(&records)?;
        let count = records.len();
        let entries = records
            .into_iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.to_vec()))
                    .partition_key(r.partition_key)
                    .set_explicit_hash_key(r.explicit_hash_key)
                    .build()
                    .map_err(|e| BackendError::InvalidArgument(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, &format!("PutRecords to {}", self.stream_name), e))?;
        if output.records.len() != count {
            // Without a one-to-one answer we cannot tell which entries landed;
            // a retry of the whole batch is the at-least-once way out.
            return Err(BackendError::Service {
                service: SERVICE,
                message: format!(
                    "PutRecords to {} answered {} entries for {count} records",
                    self.stream_name,
                    output.records.len()
                ),
                retryable: true,
            });
        }
        output.records.into_iter().map(put_outcome).collect()
    }

    async fn open_shard(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>> {
        let reader = KinesisShardReader::open(
            self.client.clone(),
            self.stream_name.clone(),
            shard_id.to_owned(),
            start,
        )
        .await?;
        Ok(Box::new(reader))
    }

    async fn update_shard_count(&self, target: u32) -> Result<()> {
        if target == 0 {
            return Err(BackendError::InvalidArgument(
                "target shard count must be at least 1".into(),
            ));
        }
        let target_i32 = i32::try_from(target)
            .map_err(|_| BackendError::InvalidArgument(format!("shard count {target}")))?;
        // UpdateShardCount to the current count is rejected by AWS; treat it
        // as done so callers can converge idempotently.
        let summary = describe_summary(&self.client, &self.stream_name).await?;
        if summary.open_shard_count == target_i32 && summary.stream_status == StreamStatus::Active {
            return Ok(());
        }
        wait_active(&self.client, &self.stream_name, RESHARD_WAIT).await?;
        self.client
            .update_shard_count()
            .stream_name(&self.stream_name)
            .target_shard_count(target_i32)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    SERVICE,
                    &format!("UpdateShardCount of {} to {target}", self.stream_name),
                    e,
                )
            })?;
        wait_active(&self.client, &self.stream_name, RESHARD_WAIT).await
    }
}

fn put_outcome(entry: aws_sdk_kinesis::types::PutRecordsResultEntry) -> Result<PutOutcome> {
    if let Some(code) = entry.error_code {
        return Ok(PutOutcome::Failed {
            code,
            message: entry.error_message.unwrap_or_default(),
        });
    }
    match (entry.shard_id, entry.sequence_number) {
        (Some(shard_id), Some(seq)) => Ok(PutOutcome::Written {
            shard_id,
            sequence_number: parse_sequence(&seq)?,
        }),
        // Neither a failure nor a position: report it as a failed entry so
        // the caller retries it rather than assume it was written.
        _ => Ok(PutOutcome::Failed {
            code: "InternalFailure".into(),
            message: "PutRecords entry without error, shard id or sequence number".into(),
        }),
    }
}

pub(crate) fn parse_sequence(s: &str) -> Result<SequenceNumber> {
    SequenceNumber::parse(s).ok_or_else(|| BackendError::Service {
        service: SERVICE,
        message: format!("sequence number {s:?} is not decimal"),
        retryable: false,
    })
}

/// Every shard of the stream, following `NextToken` to the end.
pub(crate) async fn list_shards(client: &Client, stream_name: &str) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // AWS rejects StreamName together with NextToken: the token alone
        // names the stream on later pages.
        let request = match &next_token {
            None => client
                .list_shards()
                .stream_name(stream_name)
                .max_results(LIST_SHARDS_PAGE),
            Some(token) => client
                .list_shards()
                .next_token(token)
                .max_results(LIST_SHARDS_PAGE),
        };
        let output = request
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, &format!("ListShards of {stream_name}"), e))?;
        for shard in output.shards.unwrap_or_default() {
            shards.push(shard_info(shard)?);
        }
        match output.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(shards),
        }
    }
}

fn shard_info(shard: Shard) -> Result<ShardInfo> {
    let bad = |what: &str| BackendError::Service {
        service: SERVICE,
        message: format!("shard {}: {what}", shard.shard_id),
        retryable: false,
    };
    let range = shard
        .hash_key_range
        .as_ref()
        .ok_or_else(|| bad("no hash key range"))?;
    let hash_key_start = range
        .starting_hash_key
        .parse()
        .map_err(|_| bad("bad starting hash key"))?;
    let hash_key_end = range
        .ending_hash_key
        .parse()
        .map_err(|_| bad("bad ending hash key"))?;
    let sequences = shard
        .sequence_number_range
        .as_ref()
        .ok_or_else(|| bad("no sequence number range"))?;
    let starting_sequence = parse_sequence(&sequences.starting_sequence_number)?;
    let ending_sequence = sequences
        .ending_sequence_number
        .as_deref()
        .map(parse_sequence)
        .transpose()?;
    Ok(ShardInfo {
        shard_id: shard.shard_id,
        parent_shard_id: shard.parent_shard_id,
        adjacent_parent_shard_id: shard.adjacent_parent_shard_id,
        hash_key_start,
        hash_key_end,
        starting_sequence,
        ending_sequence,
    })
}

pub(crate) async fn describe_summary(
    client: &Client,
    stream_name: &str,
) -> Result<aws_sdk_kinesis::types::StreamDescriptionSummary> {
    client
        .describe_stream_summary()
        .stream_name(stream_name)
        .send()
        .await
        .map_err(|e| {
            from_sdk(
                SERVICE,
                &format!("DescribeStreamSummary of {stream_name}"),
                e,
            )
        })?
        .stream_description_summary
        .ok_or_else(|| BackendError::Service {
            service: SERVICE,
            message: format!("DescribeStreamSummary of {stream_name}: empty answer"),
            retryable: true,
        })
}

/// Polls until the stream is ACTIVE (after create or reshard). DescribeStreamSummary
/// allows 20 calls per second per account, so the poll backs off to 5 s.
pub(crate) async fn wait_active(
    client: &Client,
    stream_name: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        let summary = describe_summary(client, stream_name).await?;
        match summary.stream_status {
            StreamStatus::Active => return Ok(()),
            StreamStatus::Deleting => {
                return Err(BackendError::NotFound(format!(
                    "stream {stream_name} is being deleted"
                )));
            }
            _ => {}
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(BackendError::Service {
                service: SERVICE,
                message: format!(
                    "stream {stream_name} still {} after {timeout:?}",
                    summary.stream_status
                ),
                retryable: true,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
