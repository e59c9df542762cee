//! The embedded warehouse: one SQLite file, the same tables and guarantees
//! as PostgreSQL. WAL mode lets `sluice sql` read while the loader writes.
//! SQLite cannot change a column's declared type, so conflicts go to shadow
//! columns as on Redshift; declared types follow PostgreSQL's names.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, Transaction, TransactionBehavior};
use sluice_events::proto::LoadManifest;
use sluice_events::time::format_us;

use super::fetch::fetch_tables;
use super::{LoadJob, LoadOutcome, Warehouse};
use crate::error::{LoaderError, Result};
use crate::parquet_source::{ParquetTable, Value};
use crate::schema::{Incoming, TablePlan, TableReport, plan_table};
use crate::sql::{self, Dialect, STAGING, USERS_TABLE};
use crate::tables::{IDENTIFIES_TABLE, loads_summary, users_columns, validate_manifest};
use crate::types::WhType;

const DIALECT: Dialect = Dialect::Sqlite;
/// How long a load waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteWarehouse {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteWarehouse {
    /// Opens (creating) the database file.
    pub async fn open(path: &Path) -> Result<SqliteWarehouse> {
        let path = path.to_path_buf();
        let connection = blocking(move || {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    LoaderError::Config(format!("warehouse.path {}: {e}", path.display()))
                })?;
            }
            let connection = Connection::open(&path)?;
            connection.busy_timeout(BUSY_TIMEOUT)?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            // WAL with NORMAL survives a process crash; only an OS crash can
            // lose the last commits, which the queue then redelivers.
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            connection.execute_batch(&sql::create_loads_table(DIALECT))?;
            Ok(connection)
        })
        .await?;
        Ok(SqliteWarehouse {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = self.connection.clone();
        blocking(move || work(&mut connection.lock().expect("sqlite connection lock"))).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LoaderError::Task(e.to_string()))?
}

fn is_loaded(connection: &Connection, manifest_id: &str) -> Result<bool> {
    Ok(connection
        .query_row(&sql::manifest_loaded(), [manifest_id], |_| Ok(()))
        .optional()?
        .is_some())
}

#[async_trait]
impl Warehouse for SqliteWarehouse {
    async fn load(&self, job: LoadJob<'_>) -> Result<LoadOutcome> {
        validate_manifest(job.manifest)?;
        let id = job.manifest.manifest_id.clone();
        if self.with_connection(move |c| is_loaded(c, &id)).await? {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let files = fetch_tables(job.manifest, job.objects).await?;
        let manifest = job.manifest.clone();
        let window = job.dedupe_window_days;
        self.with_connection(move |c| load(c, &manifest, &files, window))
            .await
    }
}

fn load(
    connection: &mut Connection,
    manifest: &LoadManifest,
    files: &[ParquetTable],
    window_days: u32,
) -> Result<LoadOutcome> {
    // IMMEDIATE takes the write lock now, so the check below and the load
    // see the same state, across processes too.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if is_loaded(&tx, &manifest.manifest_id)? {
        return Ok(LoadOutcome::AlreadyLoaded);
    }
    let mut reports = Vec::new();
    for file in files {
        reports.extend(load_table(&tx, file, window_days)?);
    }
    tx.execute(
        &sql::record_load(DIALECT),
        [
            &manifest.manifest_id,
            &manifest.source_key,
            &loads_summary(&reports),
        ],
    )?;
    tx.commit()?;
    Ok(LoadOutcome::Loaded(reports))
}

fn load_table(
    tx: &Transaction<'_>,
    file: &ParquetTable,
    window_days: u32,
) -> Result<Vec<TableReport>> {
    let mut plan = evolve(tx, &file.table, &file.columns)?;
    let staged = plan.staged_columns(&file.columns);
    tx.execute_batch(&sql::create_staging(DIALECT, &staged))?;
    stage_rows(tx, file, &staged)?;
    plan.report.rows_in_file = file.rows;
    plan.report.rows_loaded = tx.execute(
        &sql::insert_new_rows(DIALECT, &file.table, &plan.mappings, window_days),
        [],
    )? as u64;
    let mut reports = vec![plan.report];
    if file.table == IDENTIFIES_TABLE {
        let columns: Vec<Incoming> = users_columns(&file.columns)
            .into_iter()
            .filter(|c| staged.iter().any(|(name, _)| *name == c.source))
            .collect();
        let mut users = evolve(tx, USERS_TABLE, &columns)?;
        for statement in sql::upsert_users(DIALECT, &users.mappings) {
            users.report.rows_loaded += tx.execute(&statement, [])? as u64;
        }
        reports.push(users.report);
    }
    tx.execute_batch(&sql::drop_staging())?;
    Ok(reports)
}

fn stage_rows(
    tx: &Transaction<'_>,
    file: &ParquetTable,
    staged: &[(String, WhType)],
) -> Result<()> {
    let placeholders = vec!["?"; staged.len()].join(", ");
    let mut insert = tx.prepare(&format!("INSERT INTO {STAGING} VALUES ({placeholders})"))?;
    let names: Vec<String> = staged.iter().map(|(name, _)| name.clone()).collect();
    file.for_each_row(&names, |values| {
        for (i, value) in values.iter().enumerate() {
            insert.raw_bind_parameter(i + 1, value)?;
        }
        insert.raw_execute()?;
        Ok(())
    })
}

/// Brings `table` to a schema that takes `incoming` (see `schema`).
fn evolve(tx: &Transaction<'_>, table: &str, incoming: &[Incoming]) -> Result<TablePlan> {
    let existing = tx
        .prepare("SELECT name, type FROM pragma_table_info(?1)")?
        .query_map([table], |row| {
            let declared: String = row.get(1)?;
            Ok((row.get::<_, String>(0)?, WhType::from_declared(&declared)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan_table(DIALECT, table, &existing, incoming);
    debug_assert!(plan.widens.is_empty(), "sqlite never widens in place");
    for statement in plan.ddl.iter().chain(&plan.shadow_ddl) {
        tx.execute_batch(statement)?;
    }
    Ok(plan)
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(b))),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i)),
            Value::Float(f) => ToSqlOutput::Owned(rusqlite::types::Value::Real(f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            // ISO-8601 in UTC with fixed precision: sorts and compares as
            // text, and SQLite's date functions read it.
            Value::Timestamp(us) => ToSqlOutput::Owned(rusqlite::types::Value::Text(format_us(us))),
        })
    }
}
