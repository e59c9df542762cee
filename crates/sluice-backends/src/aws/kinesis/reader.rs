//! A [`ShardReader`] that hides Kinesis shard iterators.
//!
//! Iterators expire five minutes after they are issued. The reader keeps the
//! sequence number of the last record it returned and, when an iterator has
//! expired, asks for a new one just after it, so a slow consumer neither
//! loses nor repeats records.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;

use super::{SERVICE, list_shards, parse_sequence};
use crate::aws::errors::{code_of, from_sdk};
use crate::{ReadBatch, Result, SequenceNumber, ShardReader, StartPosition, StreamRecord};

/// GetRecords returns at most this many records per call.
const MAX_RECORDS_PER_GET: usize = 10_000;

pub struct KinesisShardReader {
    client: Client,
    stream_name: String,
    shard_id: String,
    start: StartPosition,
    /// For `Latest`: when the first iterator was requested, so an iterator
    /// that expires before any record arrived is renewed at that instant
    /// (`AT_TIMESTAMP`) instead of at a later "latest", which would skip
    /// whatever was written in between.
    opened_at: SystemTime,
    /// Whether an iterator was ever issued (the first `Latest` is literal).
    issued: bool,
    iterator: Option<String>,
    last_sequence: Option<SequenceNumber>,
    /// Set once a read found the shard closed and exhausted.
    ended: Option<Vec<String>>,
}

impl KinesisShardReader {
    pub(super) async fn open(
        client: Client,
        stream_name: String,
        shard_id: String,
        start: StartPosition,
    ) -> Result<Self> {
        let mut reader = Self {
            client,
            stream_name,
            shard_id,
            start,
            opened_at: SystemTime::now(),
            issued: false,
            iterator: None,
            last_sequence: None,
            ended: None,
        };
        // Get the first iterator now: it fixes where `Latest` starts, and a
        // missing shard or stream fails at open rather than at first read.
        reader.iterator = Some(reader.fresh_iterator().await?);
        reader.issued = true;
        Ok(reader)
    }

    async fn fresh_iterator(&self) -> Result<String> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream_name)
            .shard_id(&self.shard_id);
        let request = match (&self.last_sequence, &self.start) {
            (Some(last), _) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(last.as_str()),
            (None, StartPosition::TrimHorizon) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, StartPosition::Latest) if !self.issued => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
            (None, StartPosition::Latest) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from(self.opened_at)),
            (None, StartPosition::AtSequence(seq)) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(seq.as_str()),
            (None, StartPosition::AfterSequence(seq)) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq.as_str()),
        };
        let output = request.send().await.map_err(|e| {
            from_sdk(
                SERVICE,
                &format!("GetShardIterator of {}/{}", self.stream_name, self.shard_id),
                e,
            )
        })?;
        output
            .shard_iterator
            .ok_or_else(|| crate::BackendError::Service {
                service: SERVICE,
                message: format!(
                    "GetShardIterator of {}/{}: no iterator",
                    self.stream_name, self.shard_id
                ),
                retryable: true,
            })
    }

    /// One GetRecords call, renewing the iterator once if it has expired.
    async fn get_records(&mut self, limit: i32) -> Result<GetRecordsOutput> {
        let mut renewed = false;
        loop {
            let iterator = match self.iterator.take() {
                Some(it) => it,
                None => self.fresh_iterator().await?,
            };
            let result = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit)
                .send()
                .await;
            match result {
                Ok(output) => return Ok(output),
                Err(e) if !renewed && code_of(&e) == Some("ExpiredIteratorException") => {
                    tracing::debug!(
                        stream = %self.stream_name,
                        shard = %self.shard_id,
                        "shard iterator expired, renewing"
                    );
                    renewed = true;
                }
                Err(e) => {
                    // Throttling and transient failures leave the iterator
                    // valid: keep it so the caller's retry resumes in place.
                    self.iterator = Some(iterator);
                    let context = format!("GetRecords of {}/{}", self.stream_name, self.shard_id);
                    return Err(from_sdk(SERVICE, &context, e));
                }
            }
        }
    }

    /// The shards that replaced this one: from GetRecords' `ChildShards`
    /// when the service sent them, else from the listing's parent links.
    async fn children(&self, from_response: Option<Vec<String>>) -> Result<Vec<String>> {
        if let Some(children) = from_response.filter(|c| !c.is_empty()) {
            return Ok(children);
        }
        let shards = list_shards(&self.client, &self.stream_name).await?;
        Ok(shards
            .into_iter()
            .filter(|s| {
                s.parent_shard_id.as_deref() == Some(self.shard_id.as_str())
                    || s.adjacent_parent_shard_id.as_deref() == Some(self.shard_id.as_str())
            })
            .map(|s| s.shard_id)
            .collect())
    }
}

#[async_trait]
impl ShardReader for KinesisShardReader {
    async fn next_batch(&mut self, max: usize) -> Result<ReadBatch> {
        if let Some(children) = &self.ended {
            return Ok(ReadBatch {
                shard_ended: true,
                child_shards: children.clone(),
                ..ReadBatch::default()
            });
        }
        let limit = max.clamp(1, MAX_RECORDS_PER_GET) as i32;
        let output = self.get_records(limit).await?;

        let mut records = Vec::with_capacity(output.records.len());
        for record in output.records {
            let sequence_number = parse_sequence(&record.sequence_number)?;
            records.push(StreamRecord {
                arrival: record
                    .approximate_arrival_timestamp
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .unwrap_or_else(SystemTime::now),
                partition_key: record.partition_key.unwrap_or_default(),
                data: Bytes::from(record.data.into_inner()),
                sequence_number,
            });
        }
        if let Some(last) = records.last() {
            self.last_sequence = Some(last.sequence_number.clone());
        }
        let millis_behind_latest = output
            .millis_behind_latest
            .and_then(|m| u64::try_from(m).ok());

        let mut batch = ReadBatch {
            records,
            millis_behind_latest,
            shard_ended: false,
            child_shards: Vec::new(),
        };
        match output.next_shard_iterator {
            Some(next) => self.iterator = Some(next),
            None => {
                // No next iterator: the shard is closed and read to its end.
                let from_response = output
                    .child_shards
                    .map(|c| c.into_iter().map(|c| c.shard_id).collect());
                let children = match self.children(from_response).await {
                    Ok(children) => children,
                    // Never drop records already consumed: hand them over
                    // now; the next call renews after the last of them,
                    // finds the end again and retries the lookup.
                    Err(e) if batch.records.is_empty() => return Err(e),
                    Err(e) => {
                        tracing::warn!(
                            stream = %self.stream_name,
                            shard = %self.shard_id,
                            error = %e,
                            "closed shard: child lookup failed, will retry"
                        );
                        return Ok(batch);
                    }
                };
                batch.shard_ended = true;
                batch.child_shards = children.clone();
                self.ended = Some(children);
            }
        }
        Ok(batch)
    }
}
