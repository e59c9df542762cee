//! The warehouse behind one trait: PostgreSQL, Redshift (both over the
//! PostgreSQL protocol, sharing one load protocol) and embedded SQLite.

mod fetch;
mod pg_copy;
mod pg_pool;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use sluice_backends::ObjectStore;
use sluice_events::proto::LoadManifest;

use crate::config::{WarehouseConfig, WarehouseKind};
use crate::error::{LoaderError, Result};
use crate::schema::TableReport;

pub use postgres::PgWarehouse;
pub use sqlite::SqliteWarehouse;

/// One manifest to load.
pub struct LoadJob<'a> {
    pub manifest: &'a LoadManifest,
    /// Where the manifest's Parquet files are (Redshift reads them itself).
    pub objects: &'a dyn ObjectStore,
    /// Rows whose id the table already holds from this many days before
    /// their received_at are skipped.
    pub dedupe_window_days: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Committed: one report per table written (users included).
    Loaded(Vec<TableReport>),
    /// The loads table already records the manifest; nothing was written.
    AlreadyLoaded,
}

#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Loads every table of the manifest, and records the manifest in the
    /// loads table, in one transaction: after an error nothing is written.
    async fn load(&self, job: LoadJob<'_>) -> Result<LoadOutcome>;
}

/// Connects to the warehouse the config names and creates the loads table.
pub async fn connect_warehouse(config: &WarehouseConfig) -> Result<Arc<dyn Warehouse>> {
    let missing = |key: &str| {
        LoaderError::Config(format!(
            "warehouse.{key} is required for kind = \"{}\"",
            config.kind.name()
        ))
    };
    Ok(match config.kind {
        WarehouseKind::Postgres => {
            let url = config.url.as_deref().ok_or_else(|| missing("url"))?;
            Arc::new(PgWarehouse::postgres(url, config.max_connections).await?)
        }
        WarehouseKind::Redshift => {
            let url = config.url.as_deref().ok_or_else(|| missing("url"))?;
            let bucket = config
                .s3_bucket
                .clone()
                .ok_or_else(|| missing("s3_bucket"))?;
            let iam_role = config.iam_role.clone().ok_or_else(|| missing("iam_role"))?;
            Arc::new(PgWarehouse::redshift(url, config.max_connections, bucket, iam_role).await?)
        }
        WarehouseKind::Sqlite => {
            let path = config.path.as_deref().ok_or_else(|| missing("path"))?;
            Arc::new(SqliteWarehouse::open(path).await?)
        }
    })
}
