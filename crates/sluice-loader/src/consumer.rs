//! The queue consumer: receives load manifests, loads each in one
//! transaction, deletes the message only after the commit, and sends a
//! manifest that keeps failing to the dead-letter queue with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use sluice_backends::{
    DeadLetterBody, DeadLetterFailed, ObjectStore, Queue, QueueMessage, backoff_delay, keep_hidden,
    move_to_dead_letter,
};
use sluice_events::decode_manifest;
use sluice_events::proto::LoadManifest;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::LoaderConfig;
use crate::error::{LoaderError, Result};
use crate::metrics::LoaderMetrics;
use crate::table_locks::TableLocks;
use crate::tables::locked_tables;
use crate::warehouse::{LoadJob, LoadOutcome, Warehouse};

/// First pause before a failed manifest is tried again; it doubles with
/// each attempt.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest pause before a failed manifest is tried again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// Pause after a failed receive, so a broken queue is not hammered.
const RECEIVE_ERROR_DELAY: Duration = Duration::from_secs(1);

/// Consumes `load_queue` until `shutdown`; loads in flight then finish
/// (and are acknowledged) before this returns.
pub async fn serve(
    config: LoaderConfig,
    warehouse: Arc<dyn Warehouse>,
    objects: Arc<dyn ObjectStore>,
    load_queue: Arc<dyn Queue>,
    load_dlq: Arc<dyn Queue>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let metrics = LoaderMetrics::register(registry)
        .map_err(|e| LoaderError::Config(format!("registering metrics: {e}")))?;
    let consumer = Arc::new(Consumer {
        config,
        warehouse,
        objects,
        queue: load_queue,
        dlq: load_dlq,
        metrics,
        locks: TableLocks::default(),
    });
    tracing::info!(concurrency = consumer.config.concurrency, "loader started");
    let mut workers = JoinSet::new();
    for _ in 0..consumer.config.concurrency {
        workers.spawn(consumer.clone().run(shutdown.clone()));
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| LoaderError::Task(e.to_string()))?;
    }
    tracing::info!("loader stopped");
    Ok(())
}

struct Consumer {
    config: LoaderConfig,
    warehouse: Arc<dyn Warehouse>,
    objects: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
    dlq: Arc<dyn Queue>,
    metrics: LoaderMetrics,
    locks: TableLocks,
}

impl Consumer {
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let visibility = Some(self.config.visibility_timeout());
        loop {
            let received = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                received = self.queue.receive(1, self.config.poll_wait(), visibility) => received,
            };
            match received {
                Ok(messages) => {
                    for message in messages {
                        self.handle(message).await;
                    }
                }
                Err(error) => {
                    self.metrics.failure("queue");
                    tracing::warn!(%error, "receiving load manifests failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RECEIVE_ERROR_DELAY) => {}
                    }
                }
            }
        }
    }

    async fn handle(&self, message: QueueMessage) {
        let manifest = match decode_manifest(&message.body) {
            Ok(manifest) => manifest,
            // No retry can make it readable.
            Err(error) => {
                self.metrics.failure("manifest");
                let reason = format!("not a load manifest: {error}");
                return self.dead_letter(&message, "manifest", &reason).await;
            }
        };
        self.metrics.manifests_in_flight.inc();
        let started = Instant::now();
        let load = async {
            let _tables = self.locks.lock(&locked_tables(&manifest)).await;
            self.load(&manifest).await
        };
        // The message stays hidden while it waits for its tables, too.
        let loaded = tokio::select! {
            loaded = load => loaded,
            never = keep_hidden(
                self.queue.as_ref(),
                &message.receipt_handle,
                self.config.visibility_timeout(),
                |extended| {
                    if let Err(error) = extended {
                        self.metrics.failure("queue");
                        tracing::warn!(%error, "extending a manifest's visibility failed");
                    }
                },
            ) => match never {},
        };
        self.metrics.manifests_in_flight.dec();
        match loaded {
            Ok(outcome) => {
                self.metrics
                    .load_seconds
                    .observe(started.elapsed().as_secs_f64());
                match outcome {
                    LoadOutcome::Loaded(reports) => {
                        self.metrics.manifest("loaded");
                        self.metrics.record(&manifest.manifest_id, &reports);
                    }
                    LoadOutcome::AlreadyLoaded => {
                        self.metrics.manifest("already_loaded");
                        tracing::info!(
                            manifest_id = manifest.manifest_id,
                            "manifest already loaded"
                        );
                    }
                }
                // Committed: a failed delete only means one more delivery,
                // which the loads table then acknowledges without loading.
                if let Err(error) = self.queue.delete(&message.receipt_handle).await {
                    self.metrics.failure("queue");
                    tracing::warn!(%error, manifest_id = manifest.manifest_id, "deleting a loaded manifest failed");
                }
            }
            Err(error) => {
                self.metrics.failure(error.cause());
                if message.receive_count >= self.config.max_attempts {
                    let reason = format!(
                        "load failed on attempt {} of {}: {error}",
                        message.receive_count, self.config.max_attempts
                    );
                    self.dead_letter(&message, error.cause(), &reason).await;
                } else {
                    self.retry_later(&message, &manifest, &error).await;
                }
            }
        }
    }

    async fn load(&self, manifest: &LoadManifest) -> Result<LoadOutcome> {
        self.warehouse
            .load(LoadJob {
                manifest,
                objects: self.objects.as_ref(),
                dedupe_window_days: self.config.dedupe_window_days,
            })
            .await
    }

    async fn retry_later(
        &self,
        message: &QueueMessage,
        manifest: &LoadManifest,
        error: &LoaderError,
    ) {
        self.metrics.manifest("retried");
        let delay = backoff_delay(RETRY_DELAY, MAX_RETRY_DELAY, message.receive_count);
        tracing::warn!(
            manifest_id = manifest.manifest_id,
            attempt = message.receive_count,
            max_attempts = self.config.max_attempts,
            retry_in_ms = delay.as_millis() as u64,
            %error,
            "load failed; will retry"
        );
        if let Err(error) = self
            .queue
            .change_visibility(&message.receipt_handle, delay)
            .await
        {
            self.metrics.failure("queue");
            tracing::warn!(%error, "rescheduling a failed manifest failed");
        }
    }

    /// Moves the message to the dead-letter queue with `reason`; if that
    /// fails the message stays and comes back.
    async fn dead_letter(&self, message: &QueueMessage, cause: &str, reason: &str) {
        let letter = DeadLetterBody::new(message, cause, reason);
        let moved =
            move_to_dead_letter(self.queue.as_ref(), self.dlq.as_ref(), message, &letter).await;
        match moved {
            Ok(()) => self.metrics.manifest("dead_lettered"),
            Err(DeadLetterFailed { sent, error }) => {
                self.metrics.failure("queue");
                if sent {
                    self.metrics.manifest("dead_lettered");
                    tracing::warn!(%error, "deleting a dead-lettered manifest failed");
                } else {
                    tracing::warn!(%error, "sending to the dead-letter queue failed");
                }
            }
        }
    }
}
