//! The loader's Prometheus metrics, and the log lines that go with them.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, exponential_buckets,
};

use crate::schema::TableReport;

pub struct LoaderMetrics {
    rows_loaded: IntCounterVec,
    rows_skipped: IntCounterVec,
    pub load_seconds: Histogram,
    pub manifests_in_flight: IntGauge,
    manifests: IntCounterVec,
    failures: IntCounterVec,
    schema_changes: IntCounterVec,
    type_conflicts: IntCounterVec,
    columns_spilled: IntCounterVec,
    /// Spilled (table, column) pairs already logged: a spilled column
    /// spills on every load of its table.
    logged_spills: Mutex<HashSet<(String, String)>>,
}

impl LoaderMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<LoaderMetrics> {
        fn counter(
            registry: &Registry,
            name: &str,
            help: &str,
            labels: &[&str],
        ) -> prometheus::Result<IntCounterVec> {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        }
        let load_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sluice_loader_load_seconds",
                "Time to load one manifest, from receive to commit",
            )
            .buckets(exponential_buckets(0.01, 2.0, 14)?),
        )?;
        registry.register(Box::new(load_seconds.clone()))?;
        let manifests_in_flight = IntGauge::new(
            "sluice_loader_manifests_in_flight",
            "Manifests received and not yet committed or given up",
        )?;
        registry.register(Box::new(manifests_in_flight.clone()))?;
        Ok(LoaderMetrics {
            rows_loaded: counter(
                registry,
                "sluice_loader_rows_loaded_total",
                "Rows inserted, per table",
                &["table"],
            )?,
            rows_skipped: counter(
                registry,
                "sluice_loader_rows_skipped_total",
                "Rows not inserted, per table and cause (duplicate: the id was already loaded)",
                &["table", "cause"],
            )?,
            load_seconds,
            manifests_in_flight,
            manifests: counter(
                registry,
                "sluice_loader_manifests_total",
                "Manifests handled, by outcome (loaded, already_loaded, retried, dead_lettered)",
                &["outcome"],
            )?,
            failures: counter(
                registry,
                "sluice_loader_failures_total",
                "Failed loads and queue operations, by cause",
                &["cause"],
            )?,
            schema_changes: counter(
                registry,
                "sluice_loader_schema_changes_total",
                "Tables created and columns added, widened or shadowed",
                &["table", "change"],
            )?,
            type_conflicts: counter(
                registry,
                "sluice_loader_type_conflicts_total",
                "Values whose type differed from their column's, by how they were stored",
                &["table", "column", "resolution"],
            )?,
            columns_spilled: counter(
                registry,
                "sluice_loader_columns_spilled_total",
                "Columns a load could not create (values kept in the JSON column), by cause",
                &["table", "cause"],
            )?,
            logged_spills: Mutex::new(HashSet::new()),
        })
    }

    pub fn manifest(&self, outcome: &str) {
        self.manifests.with_label_values(&[outcome]).inc();
    }

    pub fn failure(&self, cause: &str) {
        self.failures.with_label_values(&[cause]).inc();
    }

    /// Counts and logs what a committed load did.
    pub fn record(&self, manifest_id: &str, reports: &[TableReport]) {
        for report in reports {
            let table = report.table.as_str();
            self.rows_loaded
                .with_label_values(&[table])
                .inc_by(report.rows_loaded);
            if table != crate::sql::USERS_TABLE {
                let skipped = report.rows_in_file.saturating_sub(report.rows_loaded);
                self.rows_skipped
                    .with_label_values(&[table, "duplicate"])
                    .inc_by(skipped);
            }
            for change in &report.changes {
                self.schema_changes
                    .with_label_values(&[table, change.kind.label()])
                    .inc();
                tracing::info!(
                    table,
                    column = change.column,
                    change = change.kind.label(),
                    "schema changed"
                );
            }
            for conflict in &report.conflicts {
                self.type_conflicts
                    .with_label_values(&[table, &conflict.column, conflict.resolution.label()])
                    .inc();
            }
            for spill in &report.spilled {
                self.columns_spilled
                    .with_label_values(&[table, spill.cause.label()])
                    .inc();
                let first = self
                    .logged_spills
                    .lock()
                    .expect("spill log lock")
                    .insert((table.to_string(), spill.column.clone()));
                if first {
                    tracing::warn!(
                        table,
                        column = spill.column,
                        cause = spill.cause.label(),
                        "column not created; its values stay in the json column"
                    );
                }
            }
        }
        tracing::info!(manifest_id, tables = reports.len(), "manifest loaded");
    }
}
