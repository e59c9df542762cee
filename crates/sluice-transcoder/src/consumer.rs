//! The queue consumer: long-polls the transcode queue for S3 notifications,
//! transcodes several objects at once, keeps their messages hidden while it
//! works, and deletes a message only once every file is written and the
//! load manifest is sent.

use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use prometheus::Registry;
use sluice_backends::notification::parse_object_created;
use sluice_backends::{
    DeadLetterBody, DeadLetterFailed, MAX_RECEIVE, ObjectStore, PutCondition, Queue, QueueMessage,
    keep_hidden, move_to_dead_letter,
};
use sluice_events::{decode_archive_header, encode_manifest};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::{TranscodeError, TranscoderConfig, transcode};

/// Pause after a failed receive, so an unreachable queue is not hammered.
const RECEIVE_BACKOFF: Duration = Duration::from_secs(1);

/// Consumes the transcode queue until `shutdown` is cancelled, then
/// finishes the objects in flight and returns.
///
/// Each message names raw objects; each object becomes Parquet files in
/// `objects` and one load manifest on `load_queue`. A message whose object
/// cannot be transcoded (not an archive, not a raw key, gone) is retried
/// with a growing delay, and after `max_attempts` receives it is sent to
/// `transcode_dlq` with the reason, and deleted.
pub async fn serve(
    config: TranscoderConfig,
    objects: Arc<dyn ObjectStore>,
    transcode_queue: Arc<dyn Queue>,
    transcode_dlq: Arc<dyn Queue>,
    load_queue: Arc<dyn Queue>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<(), TranscodeError> {
    config.validate()?;
    let worker = Arc::new(Worker {
        metrics: Metrics::register(registry)?,
        config,
        objects,
        transcode_queue,
        transcode_dlq,
        load_queue,
    });
    let permits = Arc::new(Semaphore::new(worker.config.concurrency));
    let tasks = TaskTracker::new();
    let wait = Duration::from_secs(worker.config.wait_secs);
    let visibility = worker.config.visibility_timeout();
    tracing::info!(
        concurrency = worker.config.concurrency,
        "transcoder started"
    );
    let mut token = 0u64;
    loop {
        // Receive only as many messages as there are free workers, so none
        // waits hidden in memory while its visibility runs out.
        let first = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let mut held = vec![first];
        while held.len() < MAX_RECEIVE {
            match permits.clone().try_acquire_owned() {
                Ok(permit) => held.push(permit),
                Err(_) => break,
            }
        }
        let received = tokio::select! {
            received = worker.transcode_queue.receive(held.len(), wait, Some(visibility)) => received,
            () = shutdown.cancelled() => break,
        };
        match received {
            Ok(messages) => {
                for (message, permit) in messages.into_iter().zip(held) {
                    token += 1;
                    let (worker, token) = (worker.clone(), token);
                    tasks.spawn(async move {
                        worker.handle(message, token).await;
                        drop(permit);
                    });
                }
            }
            Err(error) => {
                worker
                    .metrics
                    .failures
                    .with_label_values(&["receive"])
                    .inc();
                tracing::warn!(%error, "receiving from the transcode queue failed");
                tokio::select! {
                    () = tokio::time::sleep(RECEIVE_BACKOFF) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    tasks.close();
    tracing::info!(
        in_flight = tasks.len(),
        "transcoder stopping; finishing objects in flight"
    );
    tasks.wait().await;
    Ok(())
}

struct Worker {
    config: TranscoderConfig,
    objects: Arc<dyn ObjectStore>,
    transcode_queue: Arc<dyn Queue>,
    transcode_dlq: Arc<dyn Queue>,
    load_queue: Arc<dyn Queue>,
    metrics: Metrics,
}

impl Worker {
    async fn handle(&self, message: QueueMessage, token: u64) {
        self.metrics.in_flight.inc();
        let kept_hidden = keep_hidden(
            self.transcode_queue.as_ref(),
            &message.receipt_handle,
            self.config.visibility_timeout(),
            |extended| {
                self.metrics.refresh_age();
                if let Err(error) = extended {
                    tracing::warn!(%error, "extending a message's visibility failed");
                }
            },
        );
        let result = tokio::select! {
            result = self.process(&message, token) => result,
            never = kept_hidden => match never {},
        };
        self.metrics.done(token);
        match result {
            Ok(()) => {
                if let Err(error) = self.transcode_queue.delete(&message.receipt_handle).await {
                    // The work is done and idempotent: a redelivery redoes it.
                    tracing::warn!(%error, message_id = %message.message_id, "deleting a finished message failed");
                }
            }
            Err(error) => self.failed(&message, error).await,
        }
        self.metrics.in_flight.dec();
    }

    async fn process(&self, message: &QueueMessage, token: u64) -> Result<(), TranscodeError> {
        let created = parse_object_created(&message.body).map_err(TranscodeError::Notification)?;
        for object in created {
            self.transcode_object(&object.key, token).await?;
        }
        Ok(())
    }

    async fn transcode_object(&self, key: &str, token: u64) -> Result<(), TranscodeError> {
        let raw = self
            .objects
            .get(key)
            .await?
            .ok_or_else(|| TranscodeError::MissingObject(key.to_owned()))?;
        self.metrics.bytes_in.inc_by(raw.body.len() as u64);
        if let Ok((header, _)) = decode_archive_header(&raw.body) {
            self.metrics.working_on(token, header.created_at_us);
        }
        let raw_key = key.to_owned();
        // Converting takes a core for a while: off the async workers, so
        // heartbeats and other messages keep going.
        let output = tokio::task::spawn_blocking(move || transcode(&raw_key, &raw.body))
            .await
            .map_err(|e| TranscodeError::Internal(format!("transcoding {key} panicked: {e}")))??;
        try_join_all(output.files.iter().map(|file| {
            self.objects
                .put(&file.load.object_key, file.body.clone(), PutCondition::None)
        }))
        .await?;
        self.load_queue
            .send(&encode_manifest(&output.manifest))
            .await?;

        let bytes_out: usize = output.files.iter().map(|f| f.body.len()).sum();
        let rows: u64 = output.files.iter().map(|f| f.load.row_count).sum();
        self.metrics.objects.inc();
        self.metrics.events.inc_by(output.events);
        self.metrics.rows.inc_by(rows);
        self.metrics.bytes_out.inc_by(bytes_out as u64);
        for (cause, count) in &output.rejected {
            self.metrics
                .rejected
                .with_label_values(&[cause])
                .inc_by(*count);
        }
        tracing::info!(
            key,
            events = output.events,
            rejected = output.rejected.values().sum::<u64>(),
            tables = output.files.len(),
            bytes_out,
            "transcoded raw object"
        );
        Ok(())
    }

    async fn failed(&self, message: &QueueMessage, error: TranscodeError) {
        self.metrics
            .failures
            .with_label_values(&[error.cause()])
            .inc();
        let attempts = message.receive_count;
        if error.is_permanent() && attempts >= self.config.max_attempts {
            self.dead_letter(message, &error).await;
            return;
        }
        let delay = self.config.retry_delay(attempts);
        tracing::warn!(%error, message_id = %message.message_id, attempts, retry_in_secs = delay.as_secs(), "transcoding failed; will retry");
        if let Err(e) = self
            .transcode_queue
            .change_visibility(&message.receipt_handle, delay)
            .await
        {
            tracing::warn!(error = %e, "delaying a failed message's retry failed");
        }
    }

    /// Moves the message, with the reason, to the dead-letter queue. If the
    /// send fails, the message stays and comes back.
    async fn dead_letter(&self, message: &QueueMessage, error: &TranscodeError) {
        let letter = DeadLetterBody::new(message, error.cause(), error.to_string());
        let moved = move_to_dead_letter(
            self.transcode_queue.as_ref(),
            self.transcode_dlq.as_ref(),
            message,
            &letter,
        )
        .await;
        match moved {
            Ok(()) => self.metrics.dead_lettered.inc(),
            Err(DeadLetterFailed { sent: true, error }) => {
                self.metrics.dead_lettered.inc();
                tracing::warn!(%error, "deleting a dead-lettered message failed");
            }
            Err(DeadLetterFailed { sent: false, error }) => {
                tracing::error!(%error, message_id = %message.message_id, "sending to the dead-letter queue failed; will retry");
            }
        }
    }
}
