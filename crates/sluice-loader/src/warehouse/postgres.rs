//! PostgreSQL and Redshift: one load protocol over the PostgreSQL wire
//! protocol. They differ in how a file reaches the warehouse (binary COPY
//! from the loader, or Redshift's COPY from S3 into a staging table) and in
//! the SQL dialect. PostgreSQL copies a file straight into its table when no
//! value needs converting, having looked up which ids the table already
//! holds; otherwise it stages the file and converts in SQL, as Redshift does.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_events::proto::{ColumnType, LoadManifest};
use tokio_postgres::{GenericClient, Transaction};

use super::fetch::fetch_tables;
use super::pg_copy::{copy_rows, row_keys};
use super::pg_pool::PgPool;
use super::{LoadJob, LoadOutcome, Warehouse};
use crate::error::{LoaderError, Result};
use crate::parquet_source::ParquetTable;
use crate::schema::{ChangeKind, Incoming, TablePlan, TableReport, plan_table};
use crate::sql::{self, Dialect, LOADS_TABLE, USERS_TABLE};
use crate::tables::{
    IDENTIFIES_TABLE, loads_summary, locked_tables, require_columns, users_columns,
    validate_manifest,
};
use crate::types::WhType;

/// How a table file reaches the staging table.
enum Staging {
    /// The loader reads the Parquet file and sends its rows.
    BinaryCopy,
    /// Redshift reads the Parquet file from S3 itself.
    S3 { bucket: String, iam_role: String },
}

pub struct PgWarehouse {
    pool: PgPool,
    dialect: Dialect,
    staging: Staging,
}

/// One table file to load.
enum Source {
    File(Arc<ParquetTable>),
    S3 {
        table: String,
        uri: String,
        rows: u64,
        columns: Vec<Incoming>,
    },
}

impl Source {
    fn table(&self) -> &str {
        match self {
            Source::File(file) => &file.table,
            Source::S3 { table, .. } => table,
        }
    }

    fn columns(&self) -> &[Incoming] {
        match self {
            Source::File(file) => &file.columns,
            Source::S3 { columns, .. } => columns,
        }
    }

    fn rows(&self) -> u64 {
        match self {
            Source::File(file) => file.rows,
            Source::S3 { rows, .. } => *rows,
        }
    }
}

impl PgWarehouse {
    pub async fn postgres(url: &str, max_connections: usize) -> Result<PgWarehouse> {
        Self::connect(url, max_connections, Dialect::Postgres, Staging::BinaryCopy).await
    }

    /// `bucket` holds the Parquet files, which Redshift reads assuming
    /// `iam_role`.
    pub async fn redshift(
        url: &str,
        max_connections: usize,
        bucket: String,
        iam_role: String,
    ) -> Result<PgWarehouse> {
        let staging = Staging::S3 { bucket, iam_role };
        Self::connect(url, max_connections, Dialect::Redshift, staging).await
    }

    async fn connect(
        url: &str,
        max_connections: usize,
        dialect: Dialect,
        staging: Staging,
    ) -> Result<PgWarehouse> {
        let warehouse = PgWarehouse {
            pool: PgPool::connect(url, max_connections, sql::session_setup(dialect)).await?,
            dialect,
            staging,
        };
        let mut client = warehouse.pool.get().await?;
        let tx = client
            .transaction()
            .await
            .map_err(LoaderError::postgres("creating the loads table"))?;
        // Two loaders starting together would race on CREATE TABLE IF NOT
        // EXISTS (PostgreSQL then fails one with a duplicate key).
        for lock in sql::lock_tables(dialect, &[LOADS_TABLE]) {
            tx.batch_execute(&lock)
                .await
                .map_err(LoaderError::postgres("locking the loads table"))?;
        }
        tx.batch_execute(&sql::create_loads_table(dialect))
            .await
            .map_err(LoaderError::postgres("creating the loads table"))?;
        tx.commit()
            .await
            .map_err(LoaderError::postgres("creating the loads table"))?;
        drop(client);
        Ok(warehouse)
    }

    async fn sources(&self, job: &LoadJob<'_>) -> Result<Vec<Source>> {
        match &self.staging {
            Staging::BinaryCopy => Ok(fetch_tables(job.manifest, job.objects)
                .await?
                .into_iter()
                .map(|file| Source::File(Arc::new(file)))
                .collect()),
            Staging::S3 { bucket, .. } => s3_sources(job.manifest, bucket),
        }
    }

    async fn load_table(
        &self,
        tx: &mut Transaction<'_>,
        source: &Source,
        window_days: u32,
    ) -> Result<Vec<TableReport>> {
        let table = source.table();
        let mut plan = self.evolve(tx, table, source.columns()).await?;
        let staged = match source {
            Source::File(_) => plan.staged_columns(source.columns()),
            // COPY from Parquet matches columns by position: stage them all.
            Source::S3 { columns, .. } => {
                columns.iter().map(|c| (c.source.clone(), c.ty)).collect()
            }
        };
        let limit = self.dialect.limits().max_columns;
        if staged.len() > limit {
            return Err(LoaderError::TooManyColumns {
                table: table.to_string(),
                columns: staged.len(),
                limit,
            });
        }
        plan.report.rows_in_file = source.rows();
        if let Source::File(file) = source
            && table != IDENTIFIES_TABLE
            && plan.mappings.iter().all(|m| m.source_type == m.target_type)
        {
            // Every value lands as it is, so no SQL has to convert it: the
            // rows go straight into the table, without the second copy a
            // staging table costs. (`users` is built from the staged
            // identifies, so those always stage.)
            plan.report.rows_loaded = copy_new_rows(tx, file, &plan, window_days).await?;
            return Ok(vec![plan.report]);
        }
        let context = |step: &str| format!("{step} for {table}");
        tx.batch_execute(&sql::create_staging(self.dialect, &staged))
            .await
            .map_err(LoaderError::postgres(context("creating staging")))?;
        match (source, &self.staging) {
            (Source::File(file), _) => {
                let sources = staged.iter().map(|(name, _)| name.clone()).collect();
                let names: Vec<&str> = staged.iter().map(|(name, _)| name.as_str()).collect();
                copy_rows(
                    tx,
                    file.clone(),
                    sql::STAGING,
                    sources,
                    &names,
                    HashSet::new(),
                )
                .await?;
            }
            (Source::S3 { uri, .. }, Staging::S3 { iam_role, .. }) => {
                tx.batch_execute(&sql::copy_from_s3(uri, iam_role))
                    .await
                    .map_err(LoaderError::postgres(context("copy from s3")))?;
            }
            (Source::S3 { .. }, Staging::BinaryCopy) => {
                unreachable!("s3 sources come with s3 staging")
            }
        }
        if let Some(analyze) = sql::analyze_staging(self.dialect) {
            tx.batch_execute(&analyze)
                .await
                .map_err(LoaderError::postgres(context("analyzing staging")))?;
        }
        let insert = sql::insert_new_rows(self.dialect, table, &plan.mappings, window_days);
        plan.report.rows_loaded = tx
            .execute(&insert, &[])
            .await
            .map_err(LoaderError::postgres(context("inserting new rows")))?;
        let mut reports = vec![plan.report];
        if table == IDENTIFIES_TABLE {
            let columns: Vec<Incoming> = users_columns(source.columns())
                .into_iter()
                .filter(|c| staged.iter().any(|(name, _)| *name == c.source))
                .collect();
            let mut users = self.evolve(tx, USERS_TABLE, &columns).await?;
            for statement in sql::upsert_users(self.dialect, &users.mappings) {
                users.report.rows_loaded += tx
                    .execute(&statement, &[])
                    .await
                    .map_err(LoaderError::postgres("upserting users"))?;
            }
            reports.push(users.report);
        }
        tx.batch_execute(&sql::drop_staging())
            .await
            .map_err(LoaderError::postgres(context("dropping staging")))?;
        Ok(reports)
    }

    /// Brings `table` to a schema that takes `incoming`, and says where
    /// each column goes.
    async fn evolve(
        &self,
        tx: &mut Transaction<'_>,
        table: &str,
        incoming: &[Incoming],
    ) -> Result<TablePlan> {
        let context = |step: &str| format!("{step} {table}");
        let existing: Vec<(String, Option<WhType>)> = tx
            .query(sql::describe_table(), &[&table])
            .await
            .map_err(LoaderError::postgres(context("describing")))?
            .iter()
            .map(|row| (row.get(0), WhType::from_declared(row.get(1))))
            .collect();
        let mut plan = plan_table(self.dialect, table, &existing, incoming);
        for statement in &plan.ddl {
            tx.batch_execute(statement)
                .await
                .map_err(LoaderError::postgres(context("changing the schema of")))?;
        }
        for widen in std::mem::take(&mut plan.widens) {
            let savepoint = tx
                .savepoint("sluice_widen")
                .await
                .map_err(LoaderError::postgres(context("widening a column of")))?;
            match savepoint.batch_execute(&widen.sql).await {
                Ok(()) => {
                    savepoint
                        .commit()
                        .await
                        .map_err(LoaderError::postgres(context("widening a column of")))?;
                    plan.widened(widen);
                }
                Err(error) => {
                    // A dependent view, say: the values go to a shadow column.
                    tracing::warn!(table, %error, sql = widen.sql, "column cannot be widened; using a shadow column");
                    savepoint
                        .rollback()
                        .await
                        .map_err(LoaderError::postgres(context("widening a column of")))?;
                    plan.not_widened(widen);
                }
            }
        }
        for statement in &plan.shadow_ddl {
            tx.batch_execute(statement)
                .await
                .map_err(LoaderError::postgres(context("adding a shadow column to")))?;
        }
        Ok(plan)
    }
}

/// Copies the file's rows that `table` does not already hold (see
/// [`sql::insert_new_rows`]) straight into it; every mapping keeps its type.
async fn copy_new_rows(
    tx: &Transaction<'_>,
    file: &Arc<ParquetTable>,
    plan: &TablePlan,
    window_days: u32,
) -> Result<u64> {
    let table = &plan.report.table;
    let created = plan
        .report
        .changes
        .iter()
        .any(|c| c.kind == ChangeKind::CreateTable);
    // A table created by this load holds nothing yet.
    let loaded: HashSet<String> = if created {
        HashSet::new()
    } else {
        let (ids, times) = row_keys(file.clone()).await?;
        tx.query(&sql::loaded_ids(table, window_days), &[&ids, &times])
            .await
            .map_err(LoaderError::postgres(format!(
                "finding loaded rows of {table}"
            )))?
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let sources = plan.mappings.iter().map(|m| m.source.clone()).collect();
    let targets: Vec<&str> = plan.mappings.iter().map(|m| m.target.as_str()).collect();
    copy_rows(tx, file.clone(), table, sources, &targets, loaded).await
}

async fn is_loaded(client: &impl GenericClient, manifest_id: &str) -> Result<bool> {
    let rows = client
        .query(&sql::manifest_loaded(), &[&manifest_id])
        .await
        .map_err(LoaderError::postgres("checking the loads table"))?;
    Ok(!rows.is_empty())
}

/// Redshift's sources: the manifest says what each file holds.
fn s3_sources(manifest: &LoadManifest, bucket: &str) -> Result<Vec<Source>> {
    manifest
        .tables
        .iter()
        .map(|load| {
            let columns = load
                .columns
                .iter()
                .map(|c| {
                    let ty = ColumnType::try_from(c.r#type)
                        .ok()
                        .and_then(WhType::from_column_type)
                        .ok_or_else(|| LoaderError::UnsupportedColumn {
                            table: load.table.clone(),
                            column: c.name.clone(),
                            data_type: format!("manifest column type {}", c.r#type),
                        })?;
                    Ok(Incoming {
                        source: c.name.clone(),
                        name: c.name.clone(),
                        ty,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            require_columns(&load.table, &columns)?;
            Ok(Source::S3 {
                table: load.table.clone(),
                uri: format!("s3://{bucket}/{}", load.object_key),
                rows: load.row_count,
                columns,
            })
        })
        .collect()
}

#[async_trait]
impl Warehouse for PgWarehouse {
    async fn load(&self, job: LoadJob<'_>) -> Result<LoadOutcome> {
        let manifest = job.manifest;
        validate_manifest(manifest)?;
        let mut client = self.pool.get().await?;
        // Cheap check first, so a redelivered manifest is not fetched again.
        if is_loaded(&*client, &manifest.manifest_id).await? {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let sources = self.sources(&job).await?;
        let mut tx = client
            .transaction()
            .await
            .map_err(LoaderError::postgres("beginning the load"))?;
        for lock in sql::lock_tables(self.dialect, &locked_tables(manifest)) {
            tx.batch_execute(&lock)
                .await
                .map_err(LoaderError::postgres("locking tables"))?;
        }
        // Another loader may have committed it while this one waited.
        if is_loaded(&tx, &manifest.manifest_id).await? {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let mut reports = Vec::new();
        for source in &sources {
            reports.extend(
                self.load_table(&mut tx, source, job.dedupe_window_days)
                    .await?,
            );
        }
        tx.execute(
            &sql::record_load(self.dialect),
            &[
                &manifest.manifest_id,
                &manifest.source_key,
                &loads_summary(&reports),
            ],
        )
        .await
        .map_err(LoaderError::postgres("recording the load"))?;
        tx.commit()
            .await
            .map_err(LoaderError::postgres("committing the load"))?;
        Ok(LoadOutcome::Loaded(reports))
    }
}
