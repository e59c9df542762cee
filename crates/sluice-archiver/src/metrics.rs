//! The archiver's Prometheus metrics, registered in the registry the caller
//! passes (and serves on the admin port).

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::ArchiverError;

#[derive(Clone)]
pub(crate) struct Metrics {
    pub millis_behind_latest: IntGaugeVec,
    pub records_archived: IntCounterVec,
    pub bytes_archived: IntCounterVec,
    pub objects_written: IntCounterVec,
    pub checkpoint_age: GaugeVec,
    /// Failed calls, by operation and cause; each one is retried, nothing is
    /// dropped.
    pub errors: IntCounterVec,
    /// Buffered records thrown away to be read again: a lost checkpoint race
    /// or a shutdown before a claimed range was complete.
    pub records_reread: IntCounterVec,
    pub shards_active: IntGauge,
}

/// Values of the `cause` label of `sluice_archiver_errors_total`.
pub(crate) mod cause {
    pub const THROTTLED: &str = "throttled";
    pub const TRANSIENT: &str = "transient";
    pub const PERMANENT: &str = "permanent";
    /// Another archiver wrote the shard's checkpoint first.
    pub const CHECKPOINT_RACE: &str = "checkpoint_race";
    pub const SHUTDOWN: &str = "shutdown";
}

const SHARD: &[&str] = &["shard"];

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Self, ArchiverError> {
        let m = Self {
            millis_behind_latest: IntGaugeVec::new(
                Opts::new(
                    "sluice_archiver_millis_behind_latest",
                    "How far the last read of the shard was behind its tip (MillisBehindLatest)",
                ),
                SHARD,
            )?,
            records_archived: IntCounterVec::new(
                Opts::new(
                    "sluice_archiver_records_archived_total",
                    "Stream records written to raw objects and checkpointed",
                ),
                SHARD,
            )?,
            bytes_archived: IntCounterVec::new(
                Opts::new(
                    "sluice_archiver_bytes_archived_total",
                    "Stream record bytes written to raw objects and checkpointed",
                ),
                SHARD,
            )?,
            objects_written: IntCounterVec::new(
                Opts::new(
                    "sluice_archiver_objects_written_total",
                    "Raw objects written",
                ),
                SHARD,
            )?,
            checkpoint_age: GaugeVec::new(
                Opts::new(
                    "sluice_archiver_checkpoint_age_seconds",
                    "Seconds since the shard's checkpoint last advanced; 0 while the shard is \
                     caught up with nothing waiting",
                ),
                SHARD,
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "sluice_archiver_errors_total",
                    "Failed stream or object store calls (retried), by operation and cause",
                ),
                &["operation", "cause"],
            )?,
            records_reread: IntCounterVec::new(
                Opts::new(
                    "sluice_archiver_records_reread_total",
                    "Buffered records dropped to be read again from the checkpoint, by cause",
                ),
                &["cause"],
            )?,
            shards_active: IntGauge::new(
                "sluice_archiver_shards_active",
                "Shards this replica is reading now",
            )?,
        };
        registry.register(Box::new(m.millis_behind_latest.clone()))?;
        registry.register(Box::new(m.records_archived.clone()))?;
        registry.register(Box::new(m.bytes_archived.clone()))?;
        registry.register(Box::new(m.objects_written.clone()))?;
        registry.register(Box::new(m.checkpoint_age.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.records_reread.clone()))?;
        registry.register(Box::new(m.shards_active.clone()))?;
        Ok(m)
    }

    pub fn error(&self, operation: &str, cause: &str) {
        self.errors.with_label_values(&[operation, cause]).inc();
    }

    /// Drops a finished shard's series, so dashboards do not show it stuck.
    pub fn forget_shard(&self, shard_id: &str) {
        let _ = self.millis_behind_latest.remove_label_values(&[shard_id]);
        let _ = self.checkpoint_age.remove_label_values(&[shard_id]);
    }
}
