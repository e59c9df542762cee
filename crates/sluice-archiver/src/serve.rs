//! The archiver's main loop: discover shards, start a worker for each shard
//! this replica owns once its parents are archived, restart workers that
//! stopped, and on shutdown let every worker flush.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use prometheus::Registry;
use sluice_backends::{EventStream, ObjectStore, ShardInfo};
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::assignment::Assignment;
use crate::lineage::parents_archived;
use crate::metrics::Metrics;
use crate::retry::cause_of;
use crate::shard_worker::{Exit, ShardContext, archive_shard};
use crate::{ArchiverConfig, ArchiverError};

/// Archives every shard of `stream` that this replica owns into `objects`
/// until `shutdown` is cancelled; then writes every shard's buffer (object
/// and checkpoint) and returns. Metrics are registered in `registry`.
pub async fn serve(
    config: ArchiverConfig,
    stream: Arc<dyn EventStream>,
    stream_name: String,
    objects: Arc<dyn ObjectStore>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> Result<(), ArchiverError> {
    let pod_name = std::env::var("POD_NAME").ok();
    let settings = config.settings(pod_name.as_deref())?;
    let metrics = Metrics::register(registry)?;
    let assignment = Assignment {
        index: settings.replica_index,
        count: settings.replica_count,
    };
    let host = pod_name
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "archiver".into());
    tracing::info!(stream = %stream_name, replica = assignment.index, replicas = assignment.count,
        "stream archiver starting");
    let mut supervisor = Supervisor {
        ctx: Arc::new(ShardContext {
            writer_id: format!(
                "{host} pid {} replica {} of {}",
                std::process::id(),
                assignment.index,
                assignment.count
            ),
            stream,
            objects,
            stream_name,
            settings,
            metrics,
        }),
        assignment,
        workers: JoinSet::new(),
        running: HashMap::new(),
        ended: HashSet::new(),
        shutdown,
    };
    supervisor.run().await;
    Ok(())
}

struct Supervisor {
    ctx: Arc<ShardContext>,
    assignment: Assignment,
    workers: JoinSet<Result<Exit, ArchiverError>>,
    /// The shard each worker task archives.
    running: HashMap<Id, String>,
    /// Shards archived to their end: never started again.
    ended: HashSet<String>,
    shutdown: CancellationToken,
}

impl Supervisor {
    async fn run(&mut self) {
        let mut discover_at = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(joined) = self.workers.join_next_with_id() => {
                    if self.on_exit(joined) == Some(Exit::Ended) {
                        // Its children may be ready now.
                        discover_at = Instant::now();
                    }
                }
                () = tokio::time::sleep_until(discover_at.into()) => {
                    self.discover().await;
                    discover_at = Instant::now() + self.ctx.settings.discovery_interval;
                }
            }
        }
        // Workers hold the same token: each flushes and returns.
        while let Some(joined) = self.workers.join_next_with_id().await {
            self.on_exit(joined);
        }
        tracing::info!("stream archiver stopped");
    }

    fn on_exit(
        &mut self,
        joined: Result<(Id, Result<Exit, ArchiverError>), JoinError>,
    ) -> Option<Exit> {
        let id = joined.as_ref().map_or_else(JoinError::id, |(id, _)| *id);
        let shard_id = self.running.remove(&id).unwrap_or_default();
        self.ctx
            .metrics
            .shards_active
            .set(self.running.len() as i64);
        let result = match joined {
            Ok((_, result)) => result,
            Err(e) => {
                tracing::error!(shard = %shard_id, error = %e, "shard worker panicked; retrying at the next discovery");
                return None;
            }
        };
        match result {
            Ok(Exit::Ended) => {
                self.ended.insert(shard_id.clone());
                self.ctx.metrics.forget_shard(&shard_id);
                Some(Exit::Ended)
            }
            Ok(exit) => Some(exit),
            Err(e) => {
                tracing::error!(shard = %shard_id, error = %e, "shard worker failed; retrying at the next discovery");
                None
            }
        }
    }

    async fn discover(&mut self) {
        let shards = match self.ctx.stream.list_shards().await {
            Ok(shards) => shards,
            Err(e) => {
                self.ctx.metrics.error("list_shards", cause_of(&e));
                tracing::warn!(error = %e, "listing shards failed");
                return;
            }
        };
        self.ended
            .retain(|id| shards.iter().any(|s| &s.shard_id == id));
        for shard in &shards {
            let id = &shard.shard_id;
            let running = self.running.values().any(|r| r == id);
            if !self.assignment.owns(id) || running || self.ended.contains(id) {
                continue;
            }
            if self.ready(shard, &shards).await {
                self.start(id.clone());
            }
        }
        self.ctx
            .metrics
            .shards_active
            .set(self.running.len() as i64);
    }

    async fn ready(&self, shard: &ShardInfo, shards: &[ShardInfo]) -> bool {
        match parents_archived(
            shard,
            shards,
            self.ctx.objects.as_ref(),
            &self.ctx.stream_name,
        )
        .await
        {
            Ok(ready) => {
                if !ready {
                    tracing::debug!(shard = %shard.shard_id, "waiting for parent shards to be archived");
                }
                ready
            }
            Err(e) => {
                tracing::warn!(shard = %shard.shard_id, error = %e, "reading parent checkpoints failed");
                false
            }
        }
    }

    fn start(&mut self, shard_id: String) {
        tracing::info!(shard = %shard_id, "archiving shard");
        let (ctx, shutdown) = (self.ctx.clone(), self.shutdown.clone());
        let task = self
            .workers
            .spawn(archive_shard(ctx, shard_id.clone(), shutdown));
        self.running.insert(task.id(), shard_id);
    }
}
