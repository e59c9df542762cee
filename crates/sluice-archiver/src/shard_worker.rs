//! Archiving one shard: read from the checkpoint on, buffer, claim a range,
//! write its object, commit the checkpoint (see [`crate::checkpoint`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_backends::{
    BackendError, EventStream, ObjectStore, PutCondition, ReadBatch, SequenceNumber, StartPosition,
    StreamRecord,
};
use tokio_util::sync::CancellationToken;

use crate::ArchiverError;
use crate::buffer::{FlushPolicy, SealedObject, ShardBuffer};
use crate::checkpoint::{Checkpoint, CheckpointStore, PendingRange};
use crate::config::Settings;
use crate::metrics::{Metrics, cause};
use crate::retry::{Backoff, Retry, cause_of, delay_for};

/// What every shard worker of one archiver shares.
pub(crate) struct ShardContext {
    pub stream: Arc<dyn EventStream>,
    pub objects: Arc<dyn ObjectStore>,
    pub stream_name: String,
    pub settings: Settings,
    pub metrics: Metrics,
    /// Names this archiver in the checkpoints it writes.
    pub writer_id: String,
}

/// Why a worker returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The shard is closed and fully archived; its children may start.
    Ended,
    /// Shutdown: everything read was flushed (or left to be read again).
    Stopped,
    /// Another archiver wrote the checkpoint; this one backs off.
    Lost,
}

/// Archives `shard_id` until it ends, shutdown, or another archiver takes
/// it. Transient failures restart the worker from the checkpoint.
pub(crate) async fn archive_shard(
    ctx: Arc<ShardContext>,
    shard_id: String,
    shutdown: CancellationToken,
) -> Result<Exit, ArchiverError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let worker = Worker::new(&ctx, &shard_id);
        match worker.run(&shutdown).await {
            Err(ArchiverError::Backend { source, operation }) if source.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(shard = %shard_id, %operation, error = %source, ?delay,
                    "shard worker failed; restarting from the checkpoint");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(Exit::Stopped),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            other => return other,
        }
    }
}

/// A compare-and-set lost, or an error.
enum Halt {
    Lost,
    Failed(ArchiverError),
}

impl From<ArchiverError> for Halt {
    fn from(e: ArchiverError) -> Self {
        Halt::Failed(e)
    }
}

struct Worker<'a> {
    ctx: &'a ShardContext,
    shard_id: &'a str,
    checkpoints: CheckpointStore,
    checkpoint: Checkpoint,
    buffer: ShardBuffer,
    policy: FlushPolicy,
    /// Set while re-reading a range claimed earlier whose object is missing:
    /// the object must end exactly at this record.
    cut: Option<SequenceNumber>,
    /// When the checkpoint last advanced, or the shard was last seen caught
    /// up with nothing waiting (the checkpoint age metric).
    settled_at: Instant,
}

impl<'a> Worker<'a> {
    fn new(ctx: &'a ShardContext, shard_id: &'a str) -> Self {
        Self {
            checkpoints: CheckpointStore::new(
                ctx.objects.clone(),
                &ctx.stream_name,
                shard_id,
                &ctx.writer_id,
            ),
            checkpoint: Checkpoint::default(),
            buffer: ShardBuffer::new(ctx.settings.max_object_bytes as usize),
            policy: FlushPolicy {
                max_bytes: ctx.settings.max_object_bytes,
                max_age: ctx.settings.max_object_age,
            },
            cut: None,
            settled_at: Instant::now(),
            ctx,
            shard_id,
        }
    }

    async fn run(mut self, shutdown: &CancellationToken) -> Result<Exit, ArchiverError> {
        match self.read_loop(shutdown).await {
            Ok(exit) => Ok(exit),
            Err(Halt::Lost) => {
                self.ctx
                    .metrics
                    .error("write_checkpoint", cause::CHECKPOINT_RACE);
                tracing::warn!(
                    shard = self.shard_id,
                    "another archiver wrote the checkpoint; backing off"
                );
                Ok(Exit::Lost)
            }
            Err(Halt::Failed(e)) => Err(e),
        }
    }

    async fn read_loop(&mut self, shutdown: &CancellationToken) -> Result<Exit, Halt> {
        self.checkpoint = self.checkpoints.load().await?;
        if self.checkpoint.shard_ended {
            return Ok(Exit::Ended);
        }
        let start = self.resume().await?;
        let mut reader = self
            .ctx
            .stream
            .open_shard(self.shard_id, start.clone())
            .await
            .map_err(|e| {
                ArchiverError::backend(format!("opening shard {} at {start:?}", self.shard_id), e)
            })?;
        let settings = &self.ctx.settings;
        let mut read_backoff = Backoff::new(settings.read_interval, Duration::from_secs(10));
        let mut next_read = Instant::now();
        loop {
            let flush_at = self
                .cut
                .is_none()
                .then(|| self.policy.deadline(&self.buffer))
                .flatten();
            let wake = flush_at.map_or(next_read, |at| at.min(next_read));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return self.stop().await,
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            if Instant::now() >= next_read {
                let started = Instant::now();
                match reader.next_batch(settings.records_per_read).await {
                    Ok(batch) => {
                        read_backoff.reset();
                        next_read = started + settings.read_interval;
                        if batch.records.is_empty() && !batch.shard_ended {
                            next_read = next_read.max(Instant::now() + settings.idle_poll);
                            if self.buffer.is_empty() {
                                self.settled_at = Instant::now();
                                self.buffer.release_spare();
                            }
                        }
                        if self.take(batch).await? {
                            return Ok(Exit::Ended);
                        }
                    }
                    Err(e) if e.is_retryable() => {
                        self.ctx.metrics.error("get_records", cause_of(&e));
                        let delay = delay_for(&e, &mut read_backoff);
                        tracing::debug!(shard = self.shard_id, error = %e, ?delay, "read failed; backing off");
                        next_read = Instant::now() + delay;
                    }
                    Err(e) => {
                        self.ctx.metrics.error("get_records", cause_of(&e));
                        return Err(ArchiverError::backend(
                            format!("reading shard {}", self.shard_id),
                            e,
                        )
                        .into());
                    }
                }
            }
            if self.cut.is_none() && self.policy.due(&self.buffer, Instant::now()).is_some() {
                self.flush().await?;
            }
            self.ctx
                .metrics
                .checkpoint_age
                .with_label_values(&[self.shard_id])
                .set(self.settled_at.elapsed().as_secs_f64());
        }
    }

    /// Finishes a range claimed before a crash (or by another archiver) and
    /// says where reading starts.
    async fn resume(&mut self) -> Result<StartPosition, Halt> {
        let Some(pending) = self.checkpoint.pending.clone() else {
            return Ok(self
                .checkpoint
                .sequence
                .clone()
                .map_or(StartPosition::TrimHorizon, StartPosition::AfterSequence));
        };
        if self.object_exists(&pending.key).await? {
            // Written, but the commit is missing: commit it now.
            tracing::info!(shard = self.shard_id, key = %pending.key, "committing a range written before a restart");
            self.commit(&pending.last).await?;
            return Ok(StartPosition::AfterSequence(pending.last));
        }
        tracing::info!(shard = self.shard_id, key = %pending.key, "re-reading a claimed range whose object is missing");
        self.cut = Some(pending.last);
        Ok(StartPosition::AtSequence(pending.first))
    }

    async fn object_exists(&self, key: &str) -> Result<bool, ArchiverError> {
        let listed = self
            .ctx
            .objects
            .list(key)
            .await
            .map_err(|e| ArchiverError::backend(format!("looking for {key}"), e))?;
        Ok(listed.iter().any(|m| m.key == key))
    }

    /// Buffers a batch, writing objects as ranges complete. True once the
    /// shard has ended and everything in it is archived.
    async fn take(&mut self, batch: ReadBatch) -> Result<bool, Halt> {
        if let Some(behind) = batch.millis_behind_latest {
            self.ctx
                .metrics
                .millis_behind_latest
                .with_label_values(&[self.shard_id])
                .set(i64::try_from(behind).unwrap_or(i64::MAX));
        }
        for record in batch.records {
            self.add(record).await?;
        }
        if !batch.shard_ended {
            return Ok(false);
        }
        self.flush().await?;
        self.checkpoint.shard_ended = true;
        self.save_checkpoint().await?;
        tracing::info!(shard = self.shard_id, children = ?batch.child_shards, "shard ended and is archived");
        Ok(true)
    }

    async fn add(&mut self, record: StreamRecord) -> Result<(), Halt> {
        if let Some(cut) = &self.cut
            && record.sequence_number > *cut
        {
            // The claimed range's last record is gone from the stream
            // (retention): close the range with what is left of it.
            tracing::warn!(shard = self.shard_id, cut = %cut, next = %record.sequence_number,
                "claimed range ends at a record no longer in the stream");
            self.flush().await?;
        }
        let at_cut = self.cut.as_ref() == Some(&record.sequence_number);
        let now = Instant::now();
        self.buffer.push(record, now);
        // Checked per record, so a large batch cannot push an object far
        // past the size limit; a claimed range ends only at its cut.
        let due = self.cut.is_none() && self.policy.due(&self.buffer, now).is_some();
        if at_cut || due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Claims (unless re-doing a claimed range), writes and commits the
    /// buffered range.
    async fn flush(&mut self) -> Result<(), Halt> {
        let Some(sealed) = self.buffer.seal(&self.ctx.stream_name, self.shard_id) else {
            return Ok(());
        };
        if self.cut.take().is_none() {
            self.checkpoint.pending = Some(PendingRange {
                first: sealed.first.clone(),
                last: sealed.last.clone(),
                key: sealed.key.clone(),
            });
            if let Err(halt) = self.save_checkpoint().await {
                if matches!(halt, Halt::Lost) {
                    self.count_reread(sealed.records, cause::CHECKPOINT_RACE);
                }
                return Err(halt);
            }
        }
        self.write_object(&sealed).await?;
        self.commit(&sealed.last).await?;
        let m = &self.ctx.metrics;
        let shard = [self.shard_id];
        m.records_archived
            .with_label_values(&shard)
            .inc_by(sealed.records);
        m.bytes_archived
            .with_label_values(&shard)
            .inc_by(sealed.data_bytes);
        m.objects_written.with_label_values(&shard).inc();
        tracing::debug!(shard = self.shard_id, key = %sealed.key, records = sealed.records,
            bytes = sealed.body.len(), "archived range");
        Ok(())
    }

    /// Create-only: an object already at the key is this same range, written
    /// by an earlier attempt, so it is left as it is (and S3 sends no second
    /// notification).
    async fn write_object(&self, sealed: &SealedObject) -> Result<(), ArchiverError> {
        let mut retry = Retry::new(&self.ctx.metrics, "put_object");
        loop {
            match self
                .ctx
                .objects
                .put(&sealed.key, sealed.body.clone(), PutCondition::IfAbsent)
                .await
            {
                Ok(_) | Err(BackendError::PreconditionFailed(_)) => return Ok(()),
                Err(e) => retry.after(e, &sealed.key).await?,
            }
        }
    }

    async fn commit(&mut self, last: &SequenceNumber) -> Result<(), Halt> {
        self.checkpoint.sequence = Some(last.clone());
        self.checkpoint.pending = None;
        self.save_checkpoint().await?;
        self.settled_at = Instant::now();
        Ok(())
    }

    async fn save_checkpoint(&mut self) -> Result<(), Halt> {
        let mut retry = Retry::new(&self.ctx.metrics, "write_checkpoint");
        loop {
            match self.checkpoints.save(&mut self.checkpoint).await {
                Ok(()) => return Ok(()),
                Err(BackendError::PreconditionFailed(_)) => return Err(Halt::Lost),
                Err(e) => retry.after(e, self.checkpoints.key()).await?,
            }
        }
    }

    /// Shutdown: write what is buffered, unless it is part of a claimed range
    /// not read to its end (its bounds are fixed; the next start re-reads it).
    async fn stop(&mut self) -> Result<Exit, Halt> {
        if self.cut.is_some() {
            self.count_reread(self.buffer.records(), cause::SHUTDOWN);
        } else {
            self.flush().await?;
        }
        self.ctx.metrics.forget_shard(self.shard_id);
        Ok(Exit::Stopped)
    }

    fn count_reread(&self, records: u64, cause: &str) {
        self.ctx
            .metrics
            .records_reread
            .with_label_values(&[cause])
            .inc_by(records);
    }
}
